//! Training: the loop behind `ddspe2e train`, its run directory, checkpoints and renders.
//!
//! [`train`] runs `dry` (pipeline sanity: cached features rendered with fixed controls, losses
//! logged, no model) or `m2` (decoder + synth trained end to end with Adam). Every step's loss
//! terms go to `logs/train.csv`; validation (the paper's multi-scale spectral loss and the
//! configured objective) to `logs/val.csv`; checkpoints to `checkpoints/step_N`, `latest` and
//! `best`; renders of fixed validation chunks to `renders/step_N/`.

pub mod control_stats;
mod dump;
mod eval;
mod optim;
pub mod plots;
mod profile;
pub mod report;
mod run;
mod step;
mod trainer;

pub use dump::dump_controls;
pub use eval::VAL_CHUNKS;
pub use optim::{clamp_gradients, global_norm, learning_rate, scale_gradients};
pub use profile::{Phase, PhaseProfiler};
pub use run::{
    CheckpointState, RunDir, RunMeta, RunStatus, check_run_name, default_run_name, find_checkpoint,
    holds_a_run, load_optimizer, read_meta, read_state, remove_run, step_label, unix_now,
    unverified_note, utc_fields, verify_checksum,
};
pub use step::{StepOutcome, StepRunner, adam, forward_batch};

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::data::{Batch, Dataset, Split};
use crate::device::SelectedDevice;
use crate::dsp::from_vec;
use crate::error::{Error, Result};
use crate::loss::frame_rms;
use crate::model::DdspModel;
use crate::synth::SynthControls;
use trainer::{RunSetup, Trainer};

/// `dry` or `m2`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// No model: fixed controls from the cached features, losses only.
    Dry,
    /// Decoder + synth trained end to end.
    M2,
}

impl std::str::FromStr for Mode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "dry" => Ok(Mode::Dry),
            "m2" => Ok(Mode::M2),
            other => Err(Error::Config(format!(
                "unknown mode `{other}` (expected dry or m2)"
            ))),
        }
    }
}

/// Options of one `train` invocation (the config holds everything else).
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// Training mode.
    pub mode: Mode,
    /// Total steps (a resumed run continues up to this).
    pub steps: usize,
    /// Parent of run directories.
    pub runs_dir: PathBuf,
    /// Run name (default: timestamp): a plain folder name ([`check_run_name`]).
    pub run_name: Option<String>,
    /// Replace the outputs of a run already in the run directory; without it such a run is
    /// an error (use `resume` to continue it).
    pub overwrite: bool,
    /// Continue the run in this directory from its latest checkpoint.
    pub resume: Option<PathBuf>,
    /// Initialise weights (only) from this checkpoint folder or weight file.
    pub init_checkpoint: Option<PathBuf>,
    /// Split to train on.
    pub split: Split,
    /// Write a per-step, per-phase timing profile (CSV) here; an empty path means
    /// `<run dir>/profile.csv`. See [`PhaseProfiler`].
    pub profile: Option<PathBuf>,
}

/// What the loop reports as it goes.
#[derive(Clone, Debug)]
pub enum TrainEvent {
    /// The run started (or resumed at `start_step`).
    Started {
        /// Run directory.
        run_dir: PathBuf,
        /// First step to run.
        start_step: usize,
        /// Last step.
        steps: usize,
    },
    /// A step finished; `losses` holds `total` and every term.
    Step {
        /// Steps done.
        step: usize,
        /// Loss terms.
        losses: Vec<(&'static str, f32)>,
        /// Learning rate used.
        lr: f64,
    },
    /// A step was skipped (non-finite loss or gradient).
    Skipped {
        /// The step.
        step: usize,
        /// Why.
        reason: String,
    },
    /// Validation ran.
    Eval {
        /// Steps done.
        step: usize,
        /// The metrics on the validation chunks (magenta's spectral loss decides "best").
        scores: crate::metrics::Summary,
        /// Whether it is the best so far.
        best: bool,
    },
    /// Something the user should know that does not stop the run (for example a checkpoint
    /// recovered after an interrupted save).
    Note {
        /// The message.
        message: String,
    },
    /// A checkpoint was written.
    Checkpoint {
        /// Its folder.
        path: PathBuf,
    },
    /// Early stopping ended the run.
    EarlyStopped {
        /// At this step.
        step: usize,
    },
}

/// The outcome of a run.
#[derive(Clone, Debug)]
pub struct RunSummary {
    /// Run directory.
    pub run_dir: PathBuf,
    /// Steps completed.
    pub steps: usize,
    /// Losses of the last step.
    pub last_losses: Vec<(&'static str, f32)>,
    /// Best validation spectral loss.
    pub best_val: Option<f64>,
    /// Validation spectral loss after the first evaluation (step 0 of this run).
    pub first_val: Option<f64>,
    /// Steps skipped for non-finite values.
    pub skipped_steps: usize,
}

/// Consecutive skipped steps after which the run stops.
pub const MAX_CONSECUTIVE_SKIPS: usize = 20;

/// Fixed controls for `dry` mode: f0 from the cache, amplitude `sqrt(2)` times the target's
/// frame RMS, a `1/k` harmonic roll-off, and quiet flat noise.
pub fn dry_controls(batch: &Batch, config: &Config) -> SynthControls {
    let device = batch.audio.device();
    let [b, f] = batch.f0_hz.dims();
    let rms = frame_rms(batch.audio.clone(), config.frame_size, config.frame_hop);
    let amplitude = rms.slice([0..b, 0..f]).mul_scalar(std::f64::consts::SQRT_2);
    let k = config.harmonics;
    let total: f64 = (1..=k).map(|i| 1.0 / i as f64).sum();
    let rolloff: Vec<f32> = (1..=k).map(|i| (1.0 / i as f64 / total) as f32).collect();
    let distribution = from_vec(rolloff, [1, 1, k], &device).repeat(&[b, f, 1]);
    SynthControls {
        f0_hz: batch.f0_hz.clone(),
        amplitude,
        distribution: crate::dsp::normalize_harmonics(
            distribution,
            batch.f0_hz.clone(),
            config.sample_rate,
        ),
        noise_magnitudes: Some(Tensor::full([b, f, 8], 1e-3, &device)),
    }
}

fn sha256_file(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| crate::io::sha256_hex(&b))
        .unwrap_or_default()
}

/// Train on a cache. `config` must match the cache's feature options; on `resume`, the run's
/// own `resolved_config.json` is used instead. Resuming loads the optimizer state through Burn's
/// default device: see [`load_optimizer`] (`BURN_DEVICE=flex` keeps it off the GPU).
pub fn train(
    config: &Config,
    cache: &Path,
    device: &SelectedDevice,
    options: &TrainOptions,
    on_event: &mut dyn FnMut(TrainEvent),
) -> Result<RunSummary> {
    if let (Some(_), Some(init)) = (&options.resume, &options.init_checkpoint) {
        return Err(Error::Config(format!(
            "--init-checkpoint {} cannot be used with --resume: a resumed run continues from its \
             own latest checkpoint",
            init.display()
        )));
    }
    let (config, run_dir, resume_dir) = match &options.resume {
        Some(dir) => {
            if !dir.join("resolved_config.json").is_file() {
                return Err(Error::Input {
                    path: dir.clone(),
                    reason: "not a run directory (no resolved_config.json) to resume".into(),
                });
            }
            let cfg = Config::from_json_file(&dir.join("resolved_config.json"))?;
            let checkpoints = dir.join("checkpoints");
            let Some(latest) = find_checkpoint(&checkpoints, "latest") else {
                return Err(Error::Checkpoint {
                    path: checkpoints.join("latest"),
                    reason: format!(
                        "no checkpoint yet: the run stopped before its first one (every {} \
                         steps); train it again with --run-name and --overwrite",
                        cfg.checkpoint_every
                    ),
                });
            };
            if latest != checkpoints.join("latest") {
                on_event(TrainEvent::Note {
                    message: format!(
                        "{} is missing (a checkpoint save was interrupted); resuming from {}, \
                         put back in its place",
                        checkpoints.join("latest").display(),
                        latest.display()
                    ),
                });
            }
            (cfg, dir.clone(), Some(latest))
        }
        None => {
            let name = options.run_name.clone().unwrap_or_else(default_run_name);
            check_run_name(&name)?;
            let dir = options.runs_dir.join(name);
            if holds_a_run(&dir) {
                if !options.overwrite {
                    return Err(Error::Config(format!(
                        "{}: a run already exists there; continue it with --resume {0}, pick \
                         another --run-name, or pass --overwrite to replace it",
                        dir.display()
                    )));
                }
                remove_run(&dir)?;
            }
            (config.clone(), dir, None)
        }
    };
    config.validate()?;
    let data = Dataset::open(cache, &config)?;
    if let Some(message) = data.unverified_note() {
        on_event(TrainEvent::Note { message });
    }
    let pool = data.indices(options.split);
    if pool.is_empty() {
        return Err(Error::Cache {
            path: cache.to_path_buf(),
            reason: format!("no {} chunks to train on", options.split),
        });
    }
    let val_pool = match data.indices(Split::Val) {
        v if !v.is_empty() => v,
        _ => pool.clone(),
    };
    let run = RunDir::create(&run_dir)?;
    let resume_dir = match resume_dir {
        // A checkpoint recovered from an interrupted save goes back in its place now (a run
        // already at its last step would never save it again).
        Some(_) => {
            run.restore_checkpoint("latest")?;
            run.restore_checkpoint("best")?;
            Some(run.checkpoint("latest"))
        }
        None => None,
    };
    config.write_json(&run_dir.join("resolved_config.json"))?;

    let ad = device.device.clone().autodiff();
    let plain = device.device.clone();
    let mut model = DdspModel::new(&config, &ad);
    let mut optimizer = adam();
    let data_stats = crate::data::DataStats::of(&data, options.split);
    let mut state = CheckpointState {
        step: 0,
        best_val: None,
        best_step: None,
        evals_without_improvement: 0,
        skipped_steps: 0,
        config: config.clone(),
        data_stats: data_stats.clone(),
        sha256: Default::default(),
    };
    if let Some(latest) = &resume_dir {
        state = read_state(latest)?;
        let model_checked = verify_checksum(latest, &state, "model.bpk")?;
        let optimizer_checked = verify_checksum(latest, &state, "optimizer.bpk")?;
        if !(model_checked && optimizer_checked) {
            on_event(TrainEvent::Note {
                message: unverified_note(latest),
            });
        }
        state.data_stats = state.data_stats.or(data_stats);
        model = model.load_weights(&latest.join("model.bpk"))?;
        optimizer = run::load_optimizer(latest, optimizer)?;
        // Train rows are logged for the steps done; validation at `state.step` ran after the
        // checkpoint was written and runs again on resume.
        run.truncate_csv("train", state.step + 1)?;
        run.truncate_csv("val", state.step)?;
    } else if let Some(init) = &options.init_checkpoint {
        let file = if init.is_dir() {
            if init.join("state.json").is_file()
                && !verify_checksum(init, &read_state(init)?, "model.safetensors")?
            {
                on_event(TrainEvent::Note {
                    message: unverified_note(init),
                });
            }
            init.join("model.safetensors")
        } else {
            init.clone()
        };
        model = model.load_weights(&file)?;
    }

    let meta = RunMeta {
        crate_version: env!("CARGO_PKG_VERSION").to_string(),
        mode: options.mode,
        device: device.description.clone(),
        cache: cache.display().to_string(),
        cache_manifest_sha256: sha256_file(&cache.join(crate::data::MANIFEST)),
        started_unix: unix_now(),
        ended_unix: None,
        steps: state.step,
        steps_requested: options.steps,
        best_val_loss: state.best_val,
        best_step: state.best_step,
        skipped_steps: state.skipped_steps,
        status: RunStatus::Running,
    };
    run.write_meta(&meta)?;
    on_event(TrainEvent::Started {
        run_dir: run_dir.clone(),
        start_step: state.step,
        steps: options.steps,
    });

    let runner = StepRunner::from_parts(&config, model, optimizer, &ad);
    Trainer::new(RunSetup {
        config: &config,
        options,
        data: &data,
        run,
        pool,
        val_pool,
        ad,
        plain,
        state,
        meta,
    })
    .run(runner, on_event)
}

#[cfg(test)]
mod tests;
