//! `ddspe2e`: the end-to-end DDSP command-line tool, a thin layer over the `ddsp` library.
//!
//! Run `cargo run --example ddspe2e -- --help` for the commands.

mod eval;
mod overrides;
mod render;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};

use overrides::ConfigArgs;

#[derive(Parser)]
#[command(
    name = "ddspe2e",
    version,
    about = "End-to-end DDSP: preprocess audio folders, train, render, evaluate"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

/// Steps a new run trains for unless `--steps` says otherwise.
const DEFAULT_STEPS: usize = 1000;

/// `train`'s own flags (the config flags come with `ConfigArgs`).
#[derive(clap::Args)]
struct TrainArgs {
    /// Cache folder made by `preprocess` (with --resume: the run's own by default).
    #[arg(long, required_unless_present = "resume")]
    cache: Option<PathBuf>,
    /// Audio folder to preprocess into `--cache` first (skipped work is reused).
    #[arg(long)]
    input: Option<PathBuf>,
    /// `dry` (pipeline sanity, no model) or `m2` (decoder + synth).
    #[arg(long, default_value = "m2")]
    mode: ddsp::train::Mode,
    /// Total training steps (default 1000; with --resume: the run's own).
    #[arg(long)]
    steps: Option<usize>,
    /// Parent folder of run directories.
    #[arg(long, default_value = "runs")]
    runs_dir: PathBuf,
    /// Run name (default: run-YYYYMMDD-HHMMSS).
    #[arg(long)]
    run_name: Option<String>,
    /// Continue the run in this directory from its latest checkpoint.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Replace the outputs of an earlier run of the same name (without it, reusing a run's
    /// name is an error).
    #[arg(long, conflicts_with = "resume")]
    overwrite: bool,
    /// Start from these weights (a checkpoint folder or a .safetensors/.bpk file).
    #[arg(long, conflicts_with = "resume")]
    init_checkpoint: Option<PathBuf>,
    /// Split to train on.
    #[arg(long, default_value = "train")]
    split: ddsp::data::Split,
    /// Compute device.
    #[arg(long, default_value = "auto")]
    device: ddsp::DeviceChoice,
    /// Write the source of every kernel the GPU backend compiles (WGSL, SPIR-V, MSL or CUDA's
    /// LLVM IR) to PATH, or to <run-dir>/kernels.log with no value or `true`, and a
    /// per-step, per-phase timing profile (data/forward/backward/optimizer) to
    /// <run-dir>/profile.csv. On flex there are no kernels: the file says so.
    #[arg(long, value_name = "PATH", num_args = 0..=1, default_missing_value = "true")]
    kernel_dump: Option<String>,
}

impl TrainArgs {
    /// The run directory this invocation trains in (a new run gets its name now).
    fn run_dir(&mut self) -> PathBuf {
        match &self.resume {
            Some(dir) => dir.clone(),
            None => self.runs_dir.join(
                self.run_name
                    .get_or_insert_with(ddsp::train::default_run_name),
            ),
        }
    }

    /// Where `--kernel-dump` writes kernel sources, if it was given.
    fn kernel_path(&mut self) -> Option<PathBuf> {
        let value = self.kernel_dump.clone()?;
        Some(match value.as_str() {
            "true" | "" => self.run_dir().join("kernels.log"),
            path => PathBuf::from(path),
        })
    }

    fn options(&self) -> ddsp::train::TrainOptions {
        ddsp::train::TrainOptions {
            mode: self.mode,
            steps: self.steps.unwrap_or(DEFAULT_STEPS),
            runs_dir: self.runs_dir.clone(),
            run_name: self.run_name.clone(),
            overwrite: self.overwrite,
            resume: self.resume.clone(),
            init_checkpoint: self.init_checkpoint.clone(),
            split: self.split,
            profile: self.kernel_dump.is_some().then(PathBuf::new),
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Turn a folder of audio files into a feature cache (chunks, f0, voicing, loudness).
    Preprocess {
        /// Folder scanned recursively for audio files (.wav, .flac, .mp3, .ogg, .aiff).
        #[arg(long)]
        input: PathBuf,
        /// Cache folder to write (created if needed; reused work is skipped).
        #[arg(long)]
        cache: PathBuf,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Train a model on a cache (or an audio folder, preprocessed first) and write a run directory.
    Train {
        #[command(flatten)]
        args: TrainArgs,
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
    /// Render a recording through a trained model (timbre transfer).
    Render(render::RenderArgs),
    /// Score a model's renders (or any render/target pair) with magenta's metrics.
    Eval(eval::EvalArgs),
    /// Write one self-contained HTML page on one or more runs: loss curves, validation and
    /// control statistics, spectrograms and players for the renders, eval metrics, config.
    Report {
        /// Run directories; several are shown side by side, their losses overlaid.
        #[arg(required = true, value_name = "RUN")]
        runs: Vec<PathBuf>,
        /// The HTML file to write (default: RUN/report.html for one run; required for several).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
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
            if bar.is_hidden() {
                eprintln!("warning: skipped {path}: {reason}");
            } else {
                bar.println(format!("warning: skipped {path}: {reason}"));
            }
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

fn train(
    config: &ddsp::Config,
    cache: &Path,
    device: &ddsp::SelectedDevice,
    options: &ddsp::train::TrainOptions,
) -> Result<()> {
    use ddsp::train::TrainEvent;
    let bar = ProgressBar::new(options.steps as u64).with_style(
        ProgressStyle::with_template(
            "[{elapsed_precise}] {bar:30} {pos}/{len} steps  {per_sec}  eta {eta}  {msg}",
        )
        .expect("valid template"),
    );
    let log_every = config.log_every.max(1);
    // A hidden bar (output not a terminal) drops its println; log lines must still appear.
    let say = |line: String| {
        if bar.is_hidden() {
            eprintln!("{line}");
        } else {
            bar.println(line);
        }
    };
    let summary = ddsp::train::train(config, cache, device, options, &mut |event| match event {
        TrainEvent::Started {
            run_dir,
            start_step,
            steps,
        } => {
            bar.set_position(start_step as u64);
            say(format!(
                "run {} (steps {start_step}..{steps})",
                run_dir.display()
            ));
        }
        TrainEvent::Step { step, losses, lr } => {
            bar.set_position(step as u64);
            let total = losses.first().map(|(_, v)| *v).unwrap_or(f32::NAN);
            bar.set_message(format!("loss {total:.4}"));
            if step % log_every == 0 {
                let terms: Vec<String> =
                    losses.iter().map(|(n, v)| format!("{n} {v:.4}")).collect();
                say(format!("step {step:>6}  lr {lr:.2e}  {}", terms.join("  ")));
            }
        }
        TrainEvent::Skipped { step, reason } => say(format!("step {step}: skipped: {reason}")),
        TrainEvent::Eval { step, scores, best } => say(format!(
            "step {step:>6}  val spectral (paper) {:.4}  loudness {:.2} dB  f0 {} cents{}",
            scores.spectral,
            scores.loudness_l1_db,
            scores
                .f0_l1_cents
                .map(|c| format!("{c:.1}"))
                .unwrap_or_else(|| "-".into()),
            if best { "  (best)" } else { "" }
        )),
        TrainEvent::Note { message } => say(format!("note: {message}")),
        TrainEvent::Checkpoint { .. } => {}
        TrainEvent::EarlyStopped { step } => say(format!("early stop at step {step}")),
    })?;
    bar.finish_and_clear();
    println!(
        "finished {} steps in {}; best val spectral loss {}",
        summary.steps,
        summary.run_dir.display(),
        summary
            .best_val
            .map(|v| format!("{v:.4}"))
            .unwrap_or_else(|| "-".into())
    );
    Ok(())
}

fn main() {
    if std::env::var_os("BURN_DEVICE").is_none() {
        // SAFETY: the first statement of `main`, before any thread exists (nothing reads the
        // environment concurrently). Burn loads a resumed run's optimizer state on its default
        // device; on the CPU it is moved to the training device at the next step, whereas the
        // built-in default (the first GPU backend) would set up wgpu behind `--device flex`.
        unsafe { std::env::set_var("BURN_DEVICE", "flex") };
    }
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {}", report(&e));
        std::process::exit(1);
    }
}

/// An error with its causes, `message: cause: cause`, leaving out a cause whose text is already
/// in what comes before (the library's errors print their OS error themselves, and also
/// return it as their source).
fn report(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Cmd::Preprocess {
            input,
            cache,
            config,
        } => preprocess(&input, &cache, &config.resolve()?)?,
        Cmd::Train { mut args, config } => {
            if let Some(run) = &args.resume
                && (config.file.is_some() || !config.overrides.is_empty())
            {
                let mut ignored: Vec<String> =
                    config.file.iter().map(|_| "--config".into()).collect();
                ignored.extend(config.overrides.iter().map(|(key, _)| key.clone()));
                eprintln!(
                    "note: --resume continues with {}; ignoring {}",
                    run.join("resolved_config.json").display(),
                    ignored.join(", ")
                );
            }
            let config = config.resolve()?;
            // A resumed run keeps its own cache and step count unless told otherwise.
            if let Some(run) = &args.resume
                && (args.cache.is_none() || args.steps.is_none())
            {
                let meta = ddsp::train::read_meta(run)?;
                args.cache.get_or_insert_with(|| PathBuf::from(&meta.cache));
                args.steps.get_or_insert(meta.steps_requested);
            }
            let cache = args.cache.clone().context("train needs --cache")?;
            if let Some(input) = &args.input {
                preprocess(input, &cache, &config)?;
            }
            // CubeCL reads its logging setup once, when the first device is touched.
            let kernels = args.kernel_path();
            let gpu_build = cfg!(any(feature = "wgpu", feature = "cuda"));
            if let (Some(path), true) = (
                &kernels,
                gpu_build && args.device != ddsp::DeviceChoice::Flex,
            ) {
                ddsp::device::log_kernels(path)?;
            }
            let device = ddsp::device::select(args.device)?;
            eprintln!("device: {}", device.description);
            train(&config, &cache, &device, &args.options())?;
            if let Some(path) = &kernels {
                if device.backend == ddsp::DeviceChoice::Flex {
                    ddsp::io::write_atomic(
                        path,
                        format!("{}\n", ddsp::device::FLEX_HAS_NO_KERNELS).as_bytes(),
                    )?;
                    eprintln!("{}", ddsp::device::FLEX_HAS_NO_KERNELS);
                } else {
                    // CubeCL writes its log from a background thread: let it finish.
                    std::thread::sleep(std::time::Duration::from_millis(500));
                    eprintln!("kernel sources: {}", path.display());
                }
            }
        }
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
        Cmd::Render(args) => render::render(&args)?,
        Cmd::Eval(args) => eval::eval(&args)?,
        Cmd::Report { runs, out } => {
            let path = ddsp::train::report::write_report(&runs, out.as_deref())?;
            let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
            println!("wrote {} ({:.1} MB)", path.display(), bytes as f64 / 1e6);
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
