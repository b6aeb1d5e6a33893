//! `ddspe2e`: the end-to-end DDSP command-line tool, a thin layer over the `ddsp` library.
//!
//! Run `cargo run --example ddspe2e -- --help` for the commands.

mod overrides;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};

use overrides::ConfigArgs;

#[derive(Parser)]
#[command(
    name = "ddspe2e",
    version,
    about = "End-to-end DDSP: preprocess WAV folders, train, render"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Turn a folder of WAV files into a feature cache (chunks, f0, voicing, loudness).
    Preprocess {
        /// Folder scanned recursively for .wav files.
        #[arg(long)]
        input: PathBuf,
        /// Cache folder to write (created if needed; reused work is skipped).
        #[arg(long)]
        cache: PathBuf,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Summarise a cache: totals per split, feature statistics, chunk rows.
    InspectCache {
        /// Cache folder.
        #[arg(long)]
        cache: PathBuf,
        /// Only this split (train or val).
        #[arg(long)]
        split: Option<ddsp::data::Split>,
        /// At most this many chunk rows.
        #[arg(long)]
        limit: Option<usize>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Write the resolved configuration (defaults < --config < flags) as JSON.
    DumpConfig {
        /// Where to write the JSON (stdout when omitted).
        #[arg(long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        config: ConfigArgs,
    },
}

fn preprocess(input: &Path, cache: &Path, config: &ddsp::Config) -> Result<()> {
    use ddsp::data::PreprocessEvent;
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} files {msg}",
        )
        .expect("valid template"),
    );
    let start = std::time::Instant::now();
    let report = ddsp::data::preprocess(input, cache, config, &|event| match event {
        PreprocessEvent::Started { files } => bar.set_length(files as u64),
        PreprocessEvent::FileDone {
            path,
            chunks,
            reused,
        } => {
            bar.set_message(format!(
                "{path}: {chunks} chunks{}",
                if reused { " (reused)" } else { "" }
            ));
            bar.inc(1);
        }
        PreprocessEvent::FileSkipped { path, reason } => {
            bar.println(format!("warning: skipped {path}: {reason}"));
            bar.inc(1);
        }
    })?;
    bar.finish_and_clear();
    let m = &report.manifest;
    let count = |s| m.chunks.iter().filter(|c| c.split == s).count();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "cache {}: {} file(s) used ({} reused), {} skipped; {} train + {} val chunks",
        cache.display(),
        m.sources.len(),
        report.reused,
        m.skipped.len(),
        count(ddsp::data::Split::Train),
        count(ddsp::data::Split::Val)
    );
    if report.seconds_processed > 0.0 {
        println!(
            "analysed {:.1} s of audio in {:.2} s ({:.0}x real time)",
            report.seconds_processed,
            secs,
            report.seconds_processed / secs
        );
    }
    for s in &m.skipped {
        println!("  skipped {}: {}", s.path, s.reason);
    }
    Ok(())
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Cmd::Preprocess {
            input,
            cache,
            config,
        } => preprocess(&input, &cache, &config.resolve()?)?,
        Cmd::InspectCache {
            cache,
            split,
            limit,
            json,
        } => {
            let report = ddsp::data::inspect(&cache, split, limit)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{report}");
            }
        }
        Cmd::DumpConfig { output, config } => {
            let config = config.resolve()?;
            match output {
                Some(path) => {
                    config
                        .write_json(&path)
                        .with_context(|| format!("writing {}", path.display()))?;
                    eprintln!("wrote {}", path.display());
                }
                None => print!("{}", config.to_json_string()),
            }
        }
    }
    Ok(())
}
