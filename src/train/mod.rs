//! Training: the loop behind `ddspe2e train`, its run directory, checkpoints and renders.
//!
//! [`train`] runs `dry` (pipeline sanity: cached features rendered with fixed controls, losses
//! logged, no model) or `m2` (decoder + synth trained end to end with Adam). Every step's loss
//! terms go to `logs/train.csv`; validation (the paper's multi-scale spectral loss and the
//! configured objective) to `logs/val.csv`; checkpoints to `checkpoints/step_N`, `latest` and
//! `best`; renders of fixed validation chunks to `renders/step_N/`.

mod dump;
mod optim;
pub mod plots;
mod run;

pub use dump::dump_controls;
pub use optim::{clamp_gradients, global_norm, learning_rate, scale_gradients};
pub use run::{CheckpointState, RunDir, RunMeta, default_run_name, read_state, unix_now};

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};
use std::path::{Path, PathBuf};

use crate::config::{Config, GradClipMode, SpectralLossMode};
use crate::data::{Batch, BatchSampler, Dataset, Split};
use crate::device::SelectedDevice;
use crate::dsp::{from_vec, to_vec};
use crate::error::{Error, Result};
use crate::features::audio::write_wav;
use crate::loss::{Objective, Schedule, SpectralLoss, SpectralLossConfig, Spectrograms, frame_rms};
use crate::model::{DdspModel, synth_config};
use crate::synth::{SynthControls, SynthOutput};

/// `dry` or `m2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    /// Run name (default: timestamp).
    pub run_name: Option<String>,
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

/// Per-phase step timings for `--kernel-dump`.
///
/// Burn 0.22 exposes neither the compiled kernels' sources nor a per-op profiler, only
/// device-timed windows; this profiler synchronises the device at each phase boundary and
/// records wall-clock milliseconds of `data` (batch upload), `forward` (decoder, synth, loss
/// and its read-back), `backward` (gradients and accumulation) and `optimizer` (gradient norm,
/// clipping, Adam), one CSV row per step.
pub struct PhaseProfiler {
    device: Device,
    last: std::time::Instant,
    phases: [f64; 4],
}

impl PhaseProfiler {
    const NAMES: [&'static str; 4] = ["data", "forward", "backward", "optimizer"];

    fn new(device: Device) -> Self {
        Self {
            device,
            last: std::time::Instant::now(),
            phases: [0.0; 4],
        }
    }

    /// Close the current phase `i` (after a device sync) and start the next.
    fn mark(&mut self, i: usize) {
        let _ = self.device.sync();
        let now = std::time::Instant::now();
        self.phases[i] += (now - self.last).as_secs_f64() * 1e3;
        self.last = now;
    }

    fn start(&mut self) {
        let _ = self.device.sync();
        self.last = std::time::Instant::now();
        self.phases = [0.0; 4];
    }
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
        /// Paper spectral loss on the validation chunks.
        spectral: f64,
        /// Median |cents| between f0 re-tracked on the renders and the input f0.
        f0_cents: f64,
        /// Whether it is the best so far.
        best: bool,
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
/// Validation chunks evaluated (and the first two rendered).
pub const VAL_CHUNKS: usize = 16;

/// The paper's spectral loss (L1, 2048..64, 75% overlap, mag + logmag, eps 1e-5): the
/// validation metric, whatever the training objective.
pub fn paper_spectral_loss(device: &Device) -> SpectralLoss {
    SpectralLossConfig::new(vec![2048, 1024, 512, 256, 128, 64])
        .with_hop_divisor(4)
        .with_mode(SpectralLossMode::L1)
        .with_log_epsilon(1e-5)
        .init(device)
}

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

fn temperature(config: &Config, step: usize) -> f64 {
    Schedule {
        start: config.softmax_temp,
        end: config.softmax_temp_end.unwrap_or(config.softmax_temp),
        warmup: config.softmax_temp_warmup_steps,
        ramp: config.softmax_temp_ramp_steps,
    }
    .at(step)
}

fn sha256_file(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| crate::io::sha256_hex(&b))
        .unwrap_or_default()
}

struct Evaluator {
    metric: SpectralLoss,
    targets: Vec<(Batch, Spectrograms)>,
}

impl Evaluator {
    fn new(data: &Dataset, pool: Vec<usize>, batch_size: usize, device: &Device) -> Self {
        let metric = paper_spectral_loss(device);
        let chunks: Vec<usize> = pool.into_iter().take(VAL_CHUNKS).collect();
        let targets = chunks
            .chunks(batch_size.max(1))
            .map(|ids| {
                let refs: Vec<_> = ids.iter().map(|&i| &data.chunks[i]).collect();
                let batch = Batch::from_chunks(&refs, device);
                let spec = metric.target_spectrograms(batch.audio.clone());
                (batch, spec)
            })
            .collect();
        Self { metric, targets }
    }

    /// Mean paper spectral loss (mag + logmag) over the evaluation chunks, and the median
    /// distance in cents between the f0 re-tracked on the renders and the input f0, over
    /// frames both call voiced (NaN when there are none).
    fn evaluate(&self, render: &dyn Fn(&Batch) -> SynthOutput, config: &Config) -> (f64, f64) {
        let mut total = 0.0;
        let mut count = 0usize;
        let mut cents = Vec::new();
        let pitch = crate::features::pitch_config(config);
        for (batch, spec) in &self.targets {
            let out = render(batch);
            let audio = to_vec(out.audio.clone());
            let t = self.metric.forward_with_target(out.audio, spec);
            let v = to_vec(t.magnitude + t.log_magnitude)[0] as f64;
            let n = batch.ids.len();
            total += v * n as f64;
            count += n;
            let f0 = to_vec(batch.f0_hz.clone());
            let uv = to_vec(batch.voiced_prob.clone());
            let [_, frames] = batch.f0_hz.dims();
            let len = audio.len() / n;
            for i in 0..n {
                let track =
                    crate::features::pitch::track_pitch(&audio[i * len..(i + 1) * len], &pitch);
                for j in 0..frames.min(track.f0_hz.len()) {
                    let voiced_in = uv[i * frames + j] as f64 >= config.voiced_threshold;
                    let voiced_out = track.voiced_prob[j] as f64 >= config.voiced_threshold;
                    if voiced_in && voiced_out {
                        cents.push(
                            (1200.0 * (track.f0_hz[j] as f64 / f0[i * frames + j] as f64).log2())
                                .abs(),
                        );
                    }
                }
            }
        }
        cents.sort_by(f64::total_cmp);
        let median = cents.get(cents.len() / 2).copied().unwrap_or(f64::NAN);
        (total / count.max(1) as f64, median)
    }
}

fn write_renders(
    dir: &Path,
    batch: &Batch,
    out: &SynthOutput,
    sample_rate: u32,
    limit: usize,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let [b, n] = batch.audio.dims();
    let parts = [
        ("target", to_vec(batch.audio.clone())),
        ("prediction", to_vec(out.audio.clone())),
        ("harmonic", to_vec(out.harmonic.clone())),
        ("noise", to_vec(out.noise.clone())),
    ];
    for i in 0..b.min(limit) {
        let id = batch.ids[i].replace(':', "_");
        for (name, data) in &parts {
            write_wav(
                &dir.join(format!("{id}_{name}.wav")),
                &data[i * n..(i + 1) * n],
                sample_rate,
            )?;
        }
    }
    Ok(())
}

/// Train on a cache. `config` must match the cache's feature options; on `resume`, the run's
/// own `resolved_config.json` is used instead.
pub fn train(
    config: &Config,
    cache: &Path,
    device: &SelectedDevice,
    options: &TrainOptions,
    on_event: &mut dyn FnMut(TrainEvent),
) -> Result<RunSummary> {
    let (config, run_dir, resume_dir) = match &options.resume {
        Some(dir) => {
            let cfg = Config::from_json_file(&dir.join("resolved_config.json"))?;
            (
                cfg,
                dir.clone(),
                Some(dir.join("checkpoints").join("latest")),
            )
        }
        None => {
            let name = options.run_name.clone().unwrap_or_else(default_run_name);
            (config.clone(), options.runs_dir.join(name), None)
        }
    };
    config.validate()?;
    let data = Dataset::open(cache, &config)?;
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
    config.write_json(&run_dir.join("resolved_config.json"))?;

    let ad = device.device.clone().autodiff();
    let plain = device.device.clone();
    let mut model = DdspModel::new(&config, &ad);
    let mut optimizer: ModuleOptimizer = AdamConfig::new().with_epsilon(1e-7).init();
    let mut state = CheckpointState {
        step: 0,
        best_val: None,
        best_step: None,
        evals_without_improvement: 0,
        skipped_steps: 0,
        config: config.clone(),
    };
    if let Some(latest) = &resume_dir {
        state = read_state(latest)?;
        model = model.load_weights(&latest.join("model.bpk"))?;
        optimizer = run::load_optimizer(latest, optimizer)?;
        run.truncate_csv("train", state.step)?;
        run.truncate_csv("val", state.step)?;
    } else if let Some(init) = &options.init_checkpoint {
        let file = if init.is_dir() {
            init.join("model.safetensors")
        } else {
            init.clone()
        };
        model = model.load_weights(&file)?;
    }

    let started = unix_now();
    let mut meta = RunMeta {
        crate_version: env!("CARGO_PKG_VERSION").to_string(),
        mode: format!("{:?}", options.mode).to_lowercase(),
        device: device.description.clone(),
        cache: cache.display().to_string(),
        cache_manifest_sha256: sha256_file(&cache.join(crate::data::MANIFEST)),
        started_unix: started,
        ended_unix: None,
        steps: state.step,
        steps_requested: options.steps,
        best_val_loss: state.best_val,
        best_step: state.best_step,
        skipped_steps: state.skipped_steps,
        status: "running".into(),
    };
    run.write_meta(&meta)?;
    on_event(TrainEvent::Started {
        run_dir: run_dir.clone(),
        start_step: state.step,
        steps: options.steps,
    });

    let accum = config.grad_accum_steps;
    let mut sampler = BatchSampler::new(
        pool,
        config.batch_size,
        config.shuffle,
        config.fixed_batch,
        config.seed,
    );
    sampler.skip(state.step * accum);
    let objective = Objective::new(&config, &ad);
    let plain_objective = Objective::new(&config, &plain);
    let evaluator = Evaluator::new(&data, val_pool, config.batch_size, &plain);
    let synth_plain = synth_config(&config).init(&plain);
    let sr = config.sample_rate.round() as u32;
    let mut fixed_spec: Option<Spectrograms> = None;
    let mut consecutive_skips = 0usize;
    let mut last_losses = Vec::new();
    let mut first_val = None;
    let loss_names: Vec<&'static str> = std::iter::once("total")
        .chain(objective_term_names(&objective, &config))
        .collect();
    let mut header: Vec<&str> = vec!["step", "lr"];
    header.extend(loss_names.iter().copied());
    header.push("grad_norm");

    let evaluate = |model: &DdspModel, step: usize| -> (f64, f64) {
        match options.mode {
            Mode::Dry => evaluator.evaluate(
                &|b: &Batch| synth_plain.forward(dry_controls(b, &config), config.seed),
                &config,
            ),
            Mode::M2 => {
                let m = model.valid();
                evaluator.evaluate(
                    &|b: &Batch| {
                        m.forward_batch(b, temperature(&config, step), config.seed)
                            .audio
                    },
                    &config,
                )
            }
        }
    };
    let val_header = ["step", "spectral_paper", "f0_cents_median"];

    let mut snapshots = Vec::new();
    let mut profiler = options
        .profile
        .as_ref()
        .map(|_| PhaseProfiler::new(ad.clone()));
    let profile_path = match &options.profile {
        Some(p) if p.as_os_str().is_empty() => run_dir.join("profile.csv"),
        Some(p) => p.clone(),
        None => PathBuf::new(),
    };
    let profile_path = profile_path.as_path();
    let mut profile_header = vec!["step"];
    profile_header.extend(PhaseProfiler::NAMES.iter().copied());
    let mut step = state.step;
    while step < options.steps {
        // Validation (and the best checkpoint) before the step, so step 0 is the baseline.
        if config.eval_every > 0 && step.is_multiple_of(config.eval_every) {
            let (v, cents) = evaluate(&model, step);
            first_val.get_or_insert(v);
            let improved = state
                .best_val
                .is_none_or(|b| v < b - config.early_stop_min_delta);
            if improved {
                state.best_val = Some(v);
                state.best_step = Some(step);
                state.evals_without_improvement = 0;
                state.step = step;
                if options.mode == Mode::M2 {
                    let p = run.save_checkpoint("best", &model, Some(&optimizer), &state)?;
                    on_event(TrainEvent::Checkpoint { path: p });
                }
            } else if step > 0 {
                state.evals_without_improvement += 1;
            }
            run.append_csv(
                "val",
                &val_header,
                &[step.to_string(), format!("{v:.6}"), format!("{cents:.3}")],
            )?;
            on_event(TrainEvent::Eval {
                step,
                spectral: v,
                f0_cents: cents,
                best: improved,
            });
            if config.early_stop_patience > 0
                && state.evals_without_improvement >= config.early_stop_patience
            {
                on_event(TrainEvent::EarlyStopped { step });
                meta.status = "early-stopped".into();
                break;
            }
        }

        let lr = learning_rate(&config, step, options.steps);
        if let Some(p) = profiler.as_mut() {
            p.start();
        }
        let mut accumulator = GradientsAccumulator::new();
        let mut sums: Vec<f32> = vec![0.0; loss_names.len()];
        let mut finite = true;
        for micro in 0..accum {
            let ids = sampler.next_batch();
            let refs: Vec<_> = ids.iter().map(|&i| &data.chunks[i]).collect();
            let noise_seed =
                config.seed ^ ((step * accum + micro) as u64).wrapping_mul(0x9E37_79B9);
            match options.mode {
                Mode::Dry => {
                    let batch = Batch::from_chunks(&refs, &plain);
                    let controls = dry_controls(&batch, &config);
                    let distribution = controls.distribution.clone();
                    let out = synth_plain.forward(controls, noise_seed);
                    let report = plain_objective.evaluate(
                        out.audio,
                        batch.audio,
                        None,
                        Some(distribution),
                        step,
                    );
                    for (s, (_, v)) in sums.iter_mut().zip(report.values()) {
                        *s += v / accum as f32;
                    }
                }
                Mode::M2 => {
                    let batch = Batch::from_chunks(&refs, &ad);
                    if let Some(p) = profiler.as_mut() {
                        p.mark(0);
                    }
                    if config.fixed_batch && fixed_spec.is_none() && objective.uses_spectral() {
                        fixed_spec =
                            Some(objective.spectral.target_spectrograms(batch.audio.clone()));
                    }
                    let out = model.forward_batch(&batch, temperature(&config, step), noise_seed);
                    let report = objective.evaluate(
                        out.audio.audio,
                        batch.audio.clone(),
                        fixed_spec.as_ref(),
                        Some(out.controls.distribution),
                        step,
                    );
                    let values = report.values();
                    if let Some(p) = profiler.as_mut() {
                        p.mark(1);
                    }
                    if values.iter().any(|(_, v)| !v.is_finite()) {
                        finite = false;
                        break;
                    }
                    for (s, (_, v)) in sums.iter_mut().zip(&values) {
                        *s += v / accum as f32;
                    }
                    let loss = report.total.div_scalar(accum as f64);
                    let grads = GradientsParams::from_grads(loss.backward(), &model);
                    accumulator.accumulate(&model, grads);
                    if let Some(p) = profiler.as_mut() {
                        p.mark(2);
                    }
                }
            }
        }
        let mut grad_norm = f32::NAN;
        if options.mode == Mode::M2 && finite {
            let mut grads = accumulator.grads();
            grad_norm = global_norm(&model, &grads)
                .map(|n| to_vec(n)[0])
                .unwrap_or(0.0);
            if grad_norm.is_finite() {
                if config.grad_clip > 0.0 {
                    match config.grad_clip_mode {
                        GradClipMode::Global if grad_norm as f64 > config.grad_clip => {
                            scale_gradients(&model, &mut grads, config.grad_clip / grad_norm as f64)
                        }
                        GradClipMode::Element => {
                            clamp_gradients(&model, &mut grads, config.grad_clip)
                        }
                        _ => {}
                    }
                }
                model = optimizer.step(lr, model, grads);
                if let Some(p) = profiler.as_mut() {
                    p.mark(3);
                    let mut row = vec![(step + 1).to_string()];
                    row.extend(p.phases.iter().map(|ms| format!("{ms:.3}")));
                    crate::io::append_csv_row(profile_path, &profile_header, &row)?;
                }
            } else {
                finite = false;
            }
        }
        if !finite {
            state.skipped_steps += 1;
            consecutive_skips += 1;
            let reason =
                format!("non-finite loss or gradient (norm {grad_norm}); weights unchanged");
            on_event(TrainEvent::Skipped { step, reason });
            if consecutive_skips >= MAX_CONSECUTIVE_SKIPS {
                meta.status = "failed: repeated non-finite steps".into();
                meta.skipped_steps = state.skipped_steps;
                meta.ended_unix = Some(unix_now());
                run.write_meta(&meta)?;
                return Err(Error::Training(format!(
                    "{MAX_CONSECUTIVE_SKIPS} consecutive steps had a non-finite loss or gradient at step {step}; \
                     stopped. The last good checkpoint is in {} (try a lower lr or gradClip)",
                    run.checkpoint("latest").display()
                )));
            }
            step += 1;
            continue;
        }
        consecutive_skips = 0;
        step += 1;
        last_losses = loss_names
            .iter()
            .copied()
            .zip(sums.iter().copied())
            .collect();
        let mut row = vec![step.to_string(), format!("{lr:.6e}")];
        row.extend(sums.iter().map(|v| format!("{v:.6}")));
        row.push(format!("{grad_norm:.6}"));
        run.append_csv("train", &header, &row)?;
        on_event(TrainEvent::Step {
            step,
            losses: last_losses.clone(),
            lr,
        });
        state.step = step;

        let last = step == options.steps;
        if options.mode == Mode::M2 && (step.is_multiple_of(config.checkpoint_every) || last) {
            let name = format!("step_{step:08}");
            run.save_checkpoint(&name, &model, Some(&optimizer), &state)?;
            let p = run.save_checkpoint("latest", &model, Some(&optimizer), &state)?;
            on_event(TrainEvent::Checkpoint { path: p });
            let logs = run.root.join("logs");
            plots::plot_losses(&logs, &logs.join("loss_curves.png"))?;
        }
        let render_every = config.render_every();
        let render_now = render_every > 0 && (step.is_multiple_of(render_every) || last);
        let dump_now = options.mode == Mode::M2
            && config.dump_controls_every > 0
            && step.is_multiple_of(config.dump_controls_every);
        if render_now || dump_now {
            // One forward pass on the first validation batch serves renders and dumps.
            let (batch, _) = &evaluator.targets[0];
            let (audio, controls) = match options.mode {
                Mode::Dry => (
                    synth_plain.forward(dry_controls(batch, &config), config.seed),
                    None,
                ),
                Mode::M2 => {
                    let out =
                        model
                            .valid()
                            .forward_batch(batch, temperature(&config, step), config.seed);
                    (out.audio, Some(out.controls))
                }
            };
            if render_now {
                write_renders(&run.renders(step), batch, &audio, sr, 2)?;
                let n = config.chunk_size;
                plots::plot_spectrograms(
                    &to_vec(batch.audio.clone())[..n],
                    &to_vec(audio.audio.clone())[..n],
                    &run.renders(step).join("spectrogram.png"),
                )?;
            }
            if let (true, Some(controls)) = (dump_now, controls) {
                let dir = run.root.join("logs").join("controls");
                let snapshot = dump_controls(&dir, step, &controls, &config)?;
                let plots_dir = dir.join("plots");
                plots::plot_controls(
                    &snapshot,
                    &plots_dir.join(format!("step_{step:06}_controls.png")),
                )?;
                snapshots.push(snapshot);
                plots::plot_controls_compare(&snapshots, &plots_dir.join("steps_compare.png"))?;
            }
        }
        meta.steps = step;
        meta.best_val_loss = state.best_val;
        meta.best_step = state.best_step;
        meta.skipped_steps = state.skipped_steps;
    }
    // Final validation.
    if config.eval_every > 0 && meta.status == "running" {
        let (v, cents) = evaluate(&model, step);
        first_val.get_or_insert(v);
        run.append_csv(
            "val",
            &val_header,
            &[step.to_string(), format!("{v:.6}"), format!("{cents:.3}")],
        )?;
        let improved = state.best_val.is_none_or(|b| v < b);
        if improved {
            state.best_val = Some(v);
            state.best_step = Some(step);
            if options.mode == Mode::M2 {
                run.save_checkpoint("best", &model, Some(&optimizer), &state)?;
            }
        }
        on_event(TrainEvent::Eval {
            step,
            spectral: v,
            f0_cents: cents,
            best: improved,
        });
    }
    if meta.status == "running" {
        meta.status = "finished".into();
    }
    meta.steps = step;
    meta.best_val_loss = state.best_val;
    meta.best_step = state.best_step;
    meta.skipped_steps = state.skipped_steps;
    meta.ended_unix = Some(unix_now());
    run.write_meta(&meta)?;
    let logs = run.root.join("logs");
    plots::plot_losses(&logs, &logs.join("loss_curves.png"))?;
    Ok(RunSummary {
        run_dir,
        steps: step,
        last_losses,
        best_val: state.best_val,
        first_val,
        skipped_steps: state.skipped_steps,
    })
}

/// The loss terms the objective reports for this config, in order.
fn objective_term_names(objective: &Objective, config: &Config) -> Vec<&'static str> {
    let mut names = Vec::new();
    if objective.uses_spectral() {
        names.push("spectral");
        names.push("logmag");
    }
    if config.mse_weight > 0.0 {
        names.push("mse");
    }
    if config.loudness_loss_weight > 0.0 || config.loudness_loss_weight_end.unwrap_or(0.0) > 0.0 {
        names.push("loudness");
    }
    if config.harmonic_entropy_weight > 0.0
        || config.harmonic_entropy_weight_end.unwrap_or(0.0) > 0.0
    {
        names.push("entropy");
    }
    if config.harmonic_concentration_weight > 0.0
        || config.harmonic_concentration_weight_end.unwrap_or(0.0) > 0.0
    {
        names.push("concentration");
    }
    names
}

#[cfg(test)]
mod tests;
