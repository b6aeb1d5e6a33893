//! Every `ddsp::Config` key as a command-line flag, generated from the config itself.

use clap::{Arg, ArgMatches, Args, Command, FromArgMatches, parser::ValueSource};
use ddsp::Config;
use std::path::PathBuf;

/// `--config FILE` plus one `--kebab-key VALUE` flag per config option.
#[derive(Clone, Debug, Default)]
pub struct ConfigArgs {
    /// JSON config file (defaults < file < flags).
    pub file: Option<PathBuf>,
    /// `(json key, value)` pairs given on the command line.
    pub overrides: Vec<(String, String)>,
}

impl ConfigArgs {
    /// Resolve and validate the config.
    pub fn resolve(&self) -> ddsp::Result<Config> {
        Config::from_sources(self.file.as_deref(), &self.overrides)
    }
}

const HEADING: &str = "Config overrides (see `dump-config`)";

impl Args for ConfigArgs {
    fn augment_args(cmd: Command) -> Command {
        let mut cmd = cmd.arg(
            Arg::new("config")
                .long("config")
                .value_name("JSON")
                .value_parser(clap::value_parser!(PathBuf))
                .help("JSON config file; flags below override it"),
        );
        for spec in Config::option_specs() {
            let mut arg = Arg::new(spec.key.clone())
                .long(spec.flags[0].clone())
                .value_name("VALUE")
                .num_args(1)
                .allow_hyphen_values(true)
                .help_heading(HEADING)
                .help(format!("default: {}", spec.default));
            for alias in &spec.flags[1..] {
                arg = arg.visible_alias(alias.clone());
            }
            cmd = cmd.arg(arg);
        }
        cmd
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for ConfigArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut args = Self::default();
        args.update_from_arg_matches(matches)?;
        Ok(args)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        if let Some(file) = matches.get_one::<PathBuf>("config") {
            self.file = Some(file.clone());
        }
        for spec in Config::option_specs() {
            if matches.value_source(&spec.key) == Some(ValueSource::CommandLine)
                && let Some(v) = matches.get_one::<String>(&spec.key)
            {
                self.overrides.push((spec.key.clone(), v.clone()));
            }
        }
        Ok(())
    }
}
