//! `ddspe2e eval`: magenta's resynthesis metrics for a checkpoint on a cache split or on whole
//! files, or for any target/render pair.

use anyhow::{Result, bail};
use ddsp::infer::eval::{Report, eval_cache, eval_files, eval_pair};
use ddsp::infer::{Checkpoint, InputLevel, Model};
use indicatif::ProgressBar;
use std::path::PathBuf;

/// `eval`'s flags: `--run` with `--cache` (or the run's own cache) or `--input`, or
/// `--target` with `--render`.
#[derive(clap::Args)]
pub struct EvalArgs {
    /// The run (or checkpoint directory) to evaluate.
    #[arg(long)]
    run: Option<PathBuf>,
    /// Which checkpoint of the run: best, latest or step_N.
    #[arg(long, default_value = "best")]
    checkpoint: Checkpoint,
    /// Cache whose chunks to render and score (default: the run's own cache).
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Split of the cache.
    #[arg(long, default_value = "val")]
    split: ddsp::data::Split,
    /// Score at most this many chunks.
    #[arg(long)]
    limit: Option<usize>,
    /// Resynthesise and score these audio files instead of cache chunks.
    #[arg(long, num_args = 1..)]
    input: Vec<PathBuf>,
    /// Score the --input files at their own level instead of peak-normalising each (for
    /// pieces cut from longer recordings at their training gain, such as held-out parts).
    #[arg(long, requires = "input")]
    keep_level: bool,
    /// The reference of a pair to score (with --render; no model needed).
    #[arg(long)]
    target: Option<PathBuf>,
    /// The render of a pair to score (with --target).
    #[arg(long)]
    render: Option<PathBuf>,
    /// Write metrics.json and metrics.csv here (a run's evaluation defaults to
    /// <run>/eval/<checkpoint>-<split>).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
    /// Compute device.
    #[arg(long, default_value = "auto")]
    device: ddsp::DeviceChoice,
}

pub fn eval(args: &EvalArgs) -> Result<()> {
    let device = ddsp::device::select(args.device)?;
    let (report, default_output): (Report, Option<PathBuf>) =
        match (&args.run, &args.target, &args.render) {
            (None, Some(target), Some(render)) => {
                (eval_pair(target, render, &device.device)?, None)
            }
            (Some(run), None, None) => {
                let model = Model::load(run, args.checkpoint, &device.device)?
                    .with_input_level(InputLevel::keep_if(args.keep_level));
                for note in model.notes() {
                    eprintln!("note: {note}");
                }
                eprintln!("model {} (step {})", model.dir().display(), model.step());
                let bar = ProgressBar::new(0);
                let mut progress = |done: usize, total: usize| {
                    bar.set_length(total as u64);
                    bar.set_position(done as u64);
                };
                let report = if !args.input.is_empty() {
                    eval_files(&model, &args.input, &mut progress)?
                } else {
                    let cache = match &args.cache {
                        Some(c) => c.clone(),
                        None => run_cache(run)?,
                    };
                    eval_cache(&model, &cache, args.split, args.limit, &mut progress)?
                };
                bar.finish_and_clear();
                let name = if args.input.is_empty() {
                    format!("{}-{}", args.checkpoint.folder(), args.split)
                } else {
                    format!("{}-files", args.checkpoint.folder())
                };
                let out = run
                    .join("checkpoints")
                    .is_dir()
                    .then(|| run.join("eval").join(name));
                (report, out)
            }
            _ => bail!(
                "give --run RUN (with --cache DIR or --input FILES), or --target T --render R"
            ),
        };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        print!("{}", report.table());
    }
    if let Some(dir) = args.output.clone().or(default_output) {
        report.write(&dir)?;
        eprintln!("wrote {}/metrics.json and metrics.csv", dir.display());
    }
    Ok(())
}

/// The cache a run trained on, from its `run_meta.json`.
fn run_cache(run: &std::path::Path) -> Result<PathBuf> {
    let path = run.join("run_meta.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("{}: {e}; give --cache", path.display()))?;
    let meta: ddsp::train::RunMeta = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}; give --cache", path.display()))?;
    Ok(PathBuf::from(meta.cache))
}
