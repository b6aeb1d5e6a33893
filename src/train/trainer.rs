//! The training loop of [`super::train`]: validation, optimisation steps and what is written
//! after each step, as methods of one [`Trainer`] holding the run's fixed parts and bookkeeping.

use burn::module::Module;
use burn::tensor::Device;
use std::path::PathBuf;

use super::control_stats::{CollapseWatch, ControlStats};
use super::eval::{Evaluator, write_renders};
use super::optim::learning_rate;
use super::plots::{self, ControlSnapshot};
use super::profile::PhaseProfiler;
use super::run::{CheckpointState, RunDir, RunMeta, RunStatus, step_label, unix_now};
use super::step::{StepOutcome, StepRunner, add_mean, forward_batch};
use super::{
    MAX_CONSECUTIVE_SKIPS, Mode, RunSummary, TrainEvent, TrainOptions, dry_controls, dump_controls,
};
use crate::config::Config;
use crate::data::{Batch, BatchSampler, Dataset};
use crate::dsp::to_vec;
use crate::error::{Error, Result};
use crate::loss::Objective;
use crate::model::DdspModel;
use crate::synth::{Synth, SynthControls, SynthOutput};

/// Columns of `logs/val.csv`: magenta's spectral loss, the median f0 distance of the renders
/// in cents, magenta's loudness L1 (dB), f0 L1 (cents) and outlier ratio.
const VAL_HEADER: [&str; 6] = [
    "step",
    "spectral_paper",
    "f0_cents_median",
    "loudness_l1_db",
    "f0_l1_cents",
    "outlier_ratio",
];

/// Everything a [`Trainer`] starts from: a run whose directory, state and metadata are ready.
pub(crate) struct RunSetup<'a> {
    pub config: &'a Config,
    pub options: &'a TrainOptions,
    pub data: &'a Dataset,
    pub run: RunDir,
    /// Chunk indices to train on.
    pub pool: Vec<usize>,
    /// Chunk indices to validate on.
    pub val_pool: Vec<usize>,
    /// The training device (autodiff).
    pub ad: Device,
    /// The same device without autodiff, for validation and renders.
    pub plain: Device,
    pub state: CheckpointState,
    pub meta: RunMeta,
}

/// A run in progress.
pub(crate) struct Trainer<'a> {
    config: &'a Config,
    options: &'a TrainOptions,
    data: &'a Dataset,
    run: RunDir,
    ad: Device,
    plain: Device,
    /// The objective on the plain device (dry mode's losses).
    plain_objective: Objective,
    evaluator: Evaluator,
    /// The synthesizer alone, for dry mode.
    synth_plain: Synth,
    sampler: BatchSampler,
    /// `total` and every objective term: the loss columns of `logs/train.csv`.
    loss_names: Vec<&'static str>,
    profile_path: Option<PathBuf>,
    snapshots: Vec<ControlSnapshot>,
    state: CheckpointState,
    meta: RunMeta,
    first_val: Option<f64>,
    consecutive_skips: usize,
    /// Watches the logged control statistics for a collapse onto one harmonic.
    collapse: CollapseWatch,
}

impl<'a> Trainer<'a> {
    /// Set up the loop.
    pub(crate) fn new(setup: RunSetup<'a>) -> Self {
        let RunSetup {
            config,
            options,
            data,
            run,
            pool,
            val_pool,
            ad,
            plain,
            state,
            meta,
        } = setup;
        let mut sampler = BatchSampler::new(
            pool,
            config.batch_size,
            config.shuffle,
            config.fixed_batch,
            config.seed,
        );
        sampler.skip(state.step * config.grad_accum_steps);
        let plain_objective = config.objective_config().init(&plain);
        let loss_names = std::iter::once("total")
            .chain(plain_objective.term_names())
            .collect();
        let profile_path = options.profile.as_ref().map(|p| {
            if p.as_os_str().is_empty() {
                run.root.join("profile.csv")
            } else {
                p.clone()
            }
        });
        Self {
            config,
            options,
            data,
            evaluator: Evaluator::new(data, val_pool, config, &plain),
            synth_plain: config.synth_config().init(&plain),
            plain_objective,
            sampler,
            loss_names,
            profile_path,
            snapshots: Vec::new(),
            run,
            ad,
            plain,
            state,
            meta,
            first_val: None,
            consecutive_skips: 0,
            collapse: CollapseWatch::default(),
        }
    }

    /// Train from the state's step to `options.steps`, validating every `evalEvery` steps
    /// (before the step, so step 0 is the baseline) and once at the end.
    pub(crate) fn run(
        mut self,
        runner: StepRunner,
        on_event: &mut dyn FnMut(TrainEvent),
    ) -> Result<RunSummary> {
        let result = self.run_steps(runner, on_event);
        if let Err(e) = &result {
            // The run's status says how it ended (best effort: the error is what matters).
            self.meta.status = RunStatus::Failed(e.to_string());
            self.meta.ended_unix = Some(unix_now());
            self.sync_meta();
            let _ = self.run.write_meta(&self.meta);
        }
        result
    }

    fn run_steps(
        &mut self,
        mut runner: StepRunner,
        on_event: &mut dyn FnMut(TrainEvent),
    ) -> Result<RunSummary> {
        if self.profile_path.is_some() {
            runner = runner.with_profiler(&self.ad);
        }
        let mut step = self.state.step;
        let mut last_losses = Vec::new();
        while step < self.options.steps {
            if self.config.eval_every > 0
                && step.is_multiple_of(self.config.eval_every)
                && self.validate(&runner, step, on_event)?
            {
                on_event(TrainEvent::EarlyStopped { step });
                self.meta.status = RunStatus::EarlyStopped;
                break;
            }
            let lr = learning_rate(self.config, step, self.options.steps);
            let logged = step == 0 || (step + 1).is_multiple_of(self.config.log_every.max(1));
            if logged {
                runner.request_control_stats();
            }
            let outcome = match self.options.mode {
                Mode::Dry => self.dry_step(step),
                Mode::M2 => self.optimise(&mut runner, step, lr)?,
            };
            let stats = runner.take_control_stats();
            match outcome {
                StepOutcome::Skipped { grad_norm } => self.skipped(step, grad_norm, on_event)?,
                StepOutcome::Applied { losses, grad_norm } => {
                    self.consecutive_skips = 0;
                    if let Some(stats) = stats {
                        self.log_controls(step + 1, &stats, on_event)?;
                    }
                    self.log_step(step + 1, lr, &losses, grad_norm, on_event)?;
                    last_losses = losses;
                    self.after_step(&runner, step + 1, on_event)?;
                }
            }
            step += 1;
            self.meta.steps = step;
            self.sync_meta();
        }
        if self.config.eval_every > 0 && self.meta.status == RunStatus::Running {
            self.validate(&runner, step, on_event)?;
        }
        if self.meta.status == RunStatus::Running {
            self.meta.status = RunStatus::Finished;
        }
        self.meta.steps = step;
        self.sync_meta();
        self.meta.ended_unix = Some(unix_now());
        self.run.write_meta(&self.meta)?;
        let logs = self.run.root.join("logs");
        plots::plot_losses(&logs, &logs.join("loss_curves.png"))?;
        plots::plot_control_stats(&logs, &logs.join("control_stats.png"))?;
        Ok(RunSummary {
            run_dir: self.run.root.clone(),
            steps: step,
            last_losses,
            best_val: self.state.best_val,
            first_val: self.first_val,
            skipped_steps: self.state.skipped_steps,
        })
    }

    /// Copy the state's bookkeeping into the run metadata.
    fn sync_meta(&mut self) {
        self.meta.best_val_loss = self.state.best_val;
        self.meta.best_step = self.state.best_step;
        self.meta.skipped_steps = self.state.skipped_steps;
    }

    /// One optimisation step of the model on `gradAccumSteps` batches from the sampler, with
    /// its profile row when profiling.
    fn optimise(&mut self, runner: &mut StepRunner, step: usize, lr: f64) -> Result<StepOutcome> {
        let (data, ad, sampler) = (self.data, &self.ad, &mut self.sampler);
        let batches = (0..self.config.grad_accum_steps).map(|_| {
            let ids = sampler.next_batch();
            let refs: Vec<_> = ids.iter().map(|&i| &data.chunks[i]).collect();
            Batch::from_chunks(&refs, ad)
        });
        let outcome = runner.step(batches, step, lr);
        if let (StepOutcome::Applied { .. }, Some(path), Some(profile)) =
            (&outcome, &self.profile_path, runner.profile())
        {
            let mut header = vec!["step"];
            header.extend(PhaseProfiler::NAMES);
            let mut row = vec![(step + 1).to_string()];
            row.extend(profile.phases.iter().map(|ms| format!("{ms:.3}")));
            crate::io::append_csv_row(path, &header, &row)?;
        }
        Ok(outcome)
    }

    /// Dry mode: the losses of the dry controls on `gradAccumSteps` batches; nothing learns.
    fn dry_step(&mut self, step: usize) -> StepOutcome {
        let micro_batches = self.config.grad_accum_steps;
        let mut losses = Vec::new();
        for micro in 0..micro_batches {
            let ids = self.sampler.next_batch();
            let refs: Vec<_> = ids.iter().map(|&i| &self.data.chunks[i]).collect();
            let batch = Batch::from_chunks(&refs, &self.plain);
            let seed = self.config.seed
                ^ ((step * micro_batches + micro) as u64).wrapping_mul(0x9E37_79B9);
            let controls = dry_controls(&batch, self.config);
            let distribution = controls.distribution.clone();
            let out = self.synth_plain.forward(controls, seed);
            let report = self.plain_objective.evaluate(
                out.audio,
                batch.audio,
                None,
                Some(distribution),
                step,
            );
            add_mean(&mut losses, &report.values(), micro_batches);
        }
        StepOutcome::Applied {
            losses,
            grad_norm: f32::NAN,
        }
    }

    /// Render `batch` with an inference copy of the model (`model.valid()`), or with the dry
    /// controls in dry mode; the decoder's controls come back in m2 mode.
    fn render(
        &self,
        model: &DdspModel,
        batch: &Batch,
        temperature: f64,
    ) -> (SynthOutput, Option<SynthControls>) {
        let seed = self.config.seed;
        match self.options.mode {
            Mode::Dry => (
                self.synth_plain
                    .forward(dry_controls(batch, self.config), seed),
                None,
            ),
            Mode::M2 => {
                let out = forward_batch(model, batch, temperature, seed);
                (out.audio, Some(out.controls))
            }
        }
    }

    /// Validate at `step`: log it, keep the best checkpoint, and say whether early stopping
    /// should end the run.
    fn validate(
        &mut self,
        runner: &StepRunner,
        step: usize,
        on_event: &mut dyn FnMut(TrainEvent),
    ) -> Result<bool> {
        // One inference copy of the model for all validation batches.
        let inference = runner.model().valid();
        let temperature = runner.temperature(step);
        let scores = self
            .evaluator
            .evaluate(&|b: &Batch| self.render(&inference, b, temperature).0);
        let v = scores.spectral;
        self.first_val.get_or_insert(v);
        let improved = improves(self.state.best_val, v, self.config.early_stop_min_delta);
        if improved {
            self.state.best_val = Some(v);
            self.state.best_step = Some(step);
            self.state.evals_without_improvement = 0;
            self.state.step = step;
            if self.options.mode == Mode::M2 {
                let p = self.run.save_checkpoint(
                    "best",
                    runner.model(),
                    Some(runner.optimizer()),
                    &self.state,
                )?;
                on_event(TrainEvent::Checkpoint { path: p });
            }
        } else if step > 0 {
            self.state.evals_without_improvement += 1;
        }
        let optional = |x: Option<f64>| x.map(|v| format!("{v:.3}")).unwrap_or_default();
        self.run.append_csv(
            "val",
            &VAL_HEADER,
            &[
                step.to_string(),
                format!("{v:.6}"),
                format!("{:.3}", scores.f0_median_cents),
                format!("{:.4}", scores.loudness_l1_db),
                optional(scores.f0_l1_cents),
                optional(scores.outlier_ratio),
            ],
        )?;
        on_event(TrainEvent::Eval {
            step,
            scores,
            best: improved,
        });
        Ok(self.config.early_stop_patience > 0
            && self.state.evals_without_improvement >= self.config.early_stop_patience)
    }

    /// Count a skipped step; too many in a row end the run with an error.
    fn skipped(
        &mut self,
        step: usize,
        grad_norm: f32,
        on_event: &mut dyn FnMut(TrainEvent),
    ) -> Result<()> {
        self.state.skipped_steps += 1;
        self.consecutive_skips += 1;
        let reason = format!("non-finite loss or gradient (norm {grad_norm}); weights unchanged");
        on_event(TrainEvent::Skipped { step, reason });
        if self.consecutive_skips < MAX_CONSECUTIVE_SKIPS {
            return Ok(());
        }
        self.meta.status = RunStatus::Failed("repeated non-finite steps".into());
        self.meta.skipped_steps = self.state.skipped_steps;
        self.meta.ended_unix = Some(unix_now());
        self.run.write_meta(&self.meta)?;
        let checkpoint = match super::find_checkpoint(&self.run.root.join("checkpoints"), "latest")
        {
            Some(dir) => format!("The last good checkpoint is in {}", dir.display()),
            None => format!(
                "No checkpoint was written before (the first comes at step {})",
                self.config.checkpoint_every
            ),
        };
        Err(Error::Training(format!(
            "{MAX_CONSECUTIVE_SKIPS} consecutive steps had a non-finite loss or gradient at step {step}; \
             stopped. {checkpoint} (try a lower lr or gradClip)"
        )))
    }

    /// Append a finished step to `logs/train.csv`, its losses matched to the columns by name,
    /// and report it.
    fn log_step(
        &mut self,
        step: usize,
        lr: f64,
        losses: &[(&'static str, f32)],
        grad_norm: f32,
        on_event: &mut dyn FnMut(TrainEvent),
    ) -> Result<()> {
        let mut header: Vec<&str> = vec!["step", "lr"];
        header.extend(self.loss_names.iter().copied());
        header.push("grad_norm");
        let mut row = vec![step.to_string(), format!("{lr:.6e}")];
        row.extend(self.loss_names.iter().map(|name| {
            let value = losses.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
            value.map(|v| format!("{v:.6}")).unwrap_or_default()
        }));
        row.push(format!("{grad_norm:.6}"));
        self.run.append_csv("train", &header, &row)?;
        on_event(TrainEvent::Step {
            step,
            losses: losses.to_vec(),
            lr,
        });
        self.state.step = step;
        Ok(())
    }

    /// Append the control statistics after `step` to `logs/controls.csv`, and warn once when
    /// the harmonic distribution keeps collapsing.
    fn log_controls(
        &mut self,
        step: usize,
        stats: &ControlStats,
        on_event: &mut dyn FnMut(TrainEvent),
    ) -> Result<()> {
        let mut header = vec!["step"];
        header.extend(ControlStats::COLUMNS);
        let mut row = vec![step.to_string()];
        row.extend(stats.values().iter().map(|v| format!("{v:.6}")));
        self.run.append_csv("controls", &header, &row)?;
        if let Some(message) = self.collapse.observe(stats, step) {
            on_event(TrainEvent::Note { message });
        }
        Ok(())
    }

    /// After `step` steps: checkpoints (`checkpointEvery` and the last step), renders and
    /// control dumps, from one validation forward pass.
    fn after_step(
        &mut self,
        runner: &StepRunner,
        step: usize,
        on_event: &mut dyn FnMut(TrainEvent),
    ) -> Result<()> {
        let config = self.config;
        let m2 = self.options.mode == Mode::M2;
        let last = step == self.options.steps;
        if m2 && (step.is_multiple_of(config.checkpoint_every) || last) {
            let (model, optimizer) = (runner.model(), Some(runner.optimizer()));
            self.run
                .save_checkpoint(&step_label(step), model, optimizer, &self.state)?;
            let p = self
                .run
                .save_checkpoint("latest", model, optimizer, &self.state)?;
            on_event(TrainEvent::Checkpoint { path: p });
            let logs = self.run.root.join("logs");
            plots::plot_losses(&logs, &logs.join("loss_curves.png"))?;
            plots::plot_control_stats(&logs, &logs.join("control_stats.png"))?;
        }
        let render_every = config.render_every();
        let render_now = render_every > 0 && (step.is_multiple_of(render_every) || last);
        let dump_now =
            m2 && config.dump_controls_every > 0 && step.is_multiple_of(config.dump_controls_every);
        if !render_now && !dump_now {
            return Ok(());
        }
        let batch = &self.evaluator.targets[0].batch;
        let (audio, controls) =
            self.render(&runner.model().valid(), batch, runner.temperature(step));
        if render_now {
            let dir = self.run.renders(step);
            write_renders(&dir, batch, &audio, config.sample_rate.round() as u32, 2)?;
            let n = config.chunk_size;
            plots::plot_spectrograms(
                &to_vec(batch.audio.clone())[..n],
                &to_vec(audio.audio)[..n],
                config.sample_rate,
                &dir.join("spectrogram.png"),
            )?;
        }
        if let (true, Some(controls)) = (dump_now, controls) {
            let dir = self.run.root.join("logs").join("controls");
            let snapshot = dump_controls(&dir, step, &controls, config)?;
            let plots_dir = dir.join("plots");
            plots::plot_controls(
                &snapshot,
                &plots_dir.join(format!("{}_controls.png", step_label(step))),
            )?;
            self.snapshots.push(snapshot);
            plots::plot_controls_compare(&self.snapshots, &plots_dir.join("steps_compare.png"))?;
        }
        Ok(())
    }
}

/// Whether validation loss `v` beats `best` by more than `min_delta`. A non-finite `v` is never
/// better (a diverged evaluation must not become the best checkpoint), and a non-finite
/// `best` (from an older state file) counts as none.
pub(super) fn improves(best: Option<f64>, v: f64, min_delta: f64) -> bool {
    v.is_finite()
        && best
            .filter(|b| b.is_finite())
            .is_none_or(|b| v < b - min_delta)
}
