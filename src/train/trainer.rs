//! The training loop of [`super::train`]: validation, optimisation steps and what is written
//! after each step, as methods of one [`Trainer`] holding the run's fixed parts and bookkeeping.

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::tensor::Device;
use std::path::PathBuf;

use super::eval::{Evaluator, write_renders};
use super::optim::{clamp_gradients, global_norm, learning_rate, scale_gradients};
use super::plots::{self, ControlSnapshot};
use super::profile::PhaseProfiler;
use super::run::{CheckpointState, RunDir, RunMeta, unix_now};
use super::{
    MAX_CONSECUTIVE_SKIPS, Mode, RunSummary, TrainEvent, TrainOptions, dry_controls, dump_controls,
    temperature,
};
use crate::config::{Config, GradClipMode};
use crate::data::{Batch, BatchSampler, Dataset};
use crate::dsp::to_vec;
use crate::error::{Error, Result};
use crate::loss::{Objective, Spectrograms};
use crate::model::{DdspModel, synth_config};
use crate::synth::{Synth, SynthControls, SynthOutput};

/// Columns of `logs/val.csv`.
const VAL_HEADER: [&str; 3] = ["step", "spectral_paper", "f0_cents_median"];

/// What one optimisation step did.
enum StepOutcome {
    /// The weights were updated; mean loss terms (in `loss_names` order) and the gradient norm
    /// before clipping (NaN in dry mode).
    Applied { losses: Vec<f32>, grad_norm: f32 },
    /// A loss or gradient was not finite: the weights are unchanged.
    Skipped { grad_norm: f32 },
}

/// A run in progress.
pub(crate) struct Trainer<'a> {
    config: &'a Config,
    options: &'a TrainOptions,
    data: &'a Dataset,
    run: RunDir,
    ad: Device,
    plain: Device,
    objective: Objective,
    plain_objective: Objective,
    evaluator: Evaluator,
    synth_plain: Synth,
    sampler: BatchSampler,
    /// Target spectrograms of the fixed batch (`fixedBatch`), computed once.
    fixed_spec: Option<Spectrograms>,
    /// `total` and every objective term, the loss columns of `logs/train.csv`.
    loss_names: Vec<&'static str>,
    profiler: Option<(PhaseProfiler, PathBuf)>,
    snapshots: Vec<ControlSnapshot>,
    state: CheckpointState,
    meta: RunMeta,
    first_val: Option<f64>,
    consecutive_skips: usize,
}

impl<'a> Trainer<'a> {
    /// Set up the loop for a run whose directory, state and metadata are ready. `pool` and
    /// `val_pool` are the chunk indices to train and validate on.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        config: &'a Config,
        options: &'a TrainOptions,
        data: &'a Dataset,
        run: RunDir,
        pool: Vec<usize>,
        val_pool: Vec<usize>,
        ad: &Device,
        plain: &Device,
        state: CheckpointState,
        meta: RunMeta,
    ) -> Self {
        let mut sampler = BatchSampler::new(
            pool,
            config.batch_size,
            config.shuffle,
            config.fixed_batch,
            config.seed,
        );
        sampler.skip(state.step * config.grad_accum_steps);
        let objective = Objective::new(config, ad);
        let loss_names = std::iter::once("total")
            .chain(super::objective_term_names(&objective, config))
            .collect();
        let profiler = options.profile.as_ref().map(|p| {
            let path = if p.as_os_str().is_empty() {
                run.root.join("profile.csv")
            } else {
                p.clone()
            };
            (PhaseProfiler::new(ad.clone()), path)
        });
        Self {
            config,
            options,
            data,
            ad: ad.clone(),
            plain: plain.clone(),
            plain_objective: Objective::new(config, plain),
            objective,
            evaluator: Evaluator::new(data, val_pool, config.batch_size, plain),
            synth_plain: synth_config(config).init(plain),
            sampler,
            fixed_spec: None,
            loss_names,
            profiler,
            snapshots: Vec::new(),
            run,
            state,
            meta,
            first_val: None,
            consecutive_skips: 0,
        }
    }

    /// Train from the state's step to `options.steps`, validating every `evalEvery` steps
    /// (before the step, so step 0 is the baseline) and once at the end.
    pub(crate) fn run(
        mut self,
        mut model: DdspModel,
        mut optimizer: ModuleOptimizer,
        on_event: &mut dyn FnMut(TrainEvent),
    ) -> Result<RunSummary> {
        let mut step = self.state.step;
        let mut last_losses = Vec::new();
        while step < self.options.steps {
            if self.config.eval_every > 0
                && step.is_multiple_of(self.config.eval_every)
                && self.validate(&model, &optimizer, step, on_event)?
            {
                on_event(TrainEvent::EarlyStopped { step });
                self.meta.status = "early-stopped".into();
                break;
            }
            let lr = learning_rate(self.config, step, self.options.steps);
            let (updated, outcome) = self.step(model, &mut optimizer, step, lr)?;
            model = updated;
            match outcome {
                StepOutcome::Skipped { grad_norm } => self.skipped(step, grad_norm, on_event)?,
                StepOutcome::Applied { losses, grad_norm } => {
                    self.consecutive_skips = 0;
                    last_losses = self.log_step(step + 1, lr, &losses, grad_norm, on_event)?;
                    self.after_step(&model, &optimizer, step + 1, on_event)?;
                }
            }
            step += 1;
            self.meta.steps = step;
            self.sync_meta();
        }
        if self.config.eval_every > 0 && self.meta.status == "running" {
            self.validate(&model, &optimizer, step, on_event)?;
        }
        if self.meta.status == "running" {
            self.meta.status = "finished".into();
        }
        self.meta.steps = step;
        self.sync_meta();
        self.meta.ended_unix = Some(unix_now());
        self.run.write_meta(&self.meta)?;
        let logs = self.run.root.join("logs");
        plots::plot_losses(&logs, &logs.join("loss_curves.png"))?;
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

    /// Render `batch` with `model`, an inference copy (`model.valid()`), or with the dry
    /// controls in dry mode; the decoder's controls come back in m2 mode.
    fn render(
        &self,
        model: &DdspModel,
        batch: &Batch,
        step: usize,
    ) -> (SynthOutput, Option<SynthControls>) {
        let seed = self.config.seed;
        match self.options.mode {
            Mode::Dry => (
                self.synth_plain
                    .forward(dry_controls(batch, self.config), seed),
                None,
            ),
            Mode::M2 => {
                let out = model.forward_batch(batch, temperature(self.config, step), seed);
                (out.audio, Some(out.controls))
            }
        }
    }

    /// Validate at `step`: log it, keep the best checkpoint, and say whether early stopping
    /// should end the run.
    fn validate(
        &mut self,
        model: &DdspModel,
        optimizer: &ModuleOptimizer,
        step: usize,
        on_event: &mut dyn FnMut(TrainEvent),
    ) -> Result<bool> {
        // One inference copy of the model for all validation batches.
        let inference = model.valid();
        let (v, cents) = self
            .evaluator
            .evaluate(&|b: &Batch| self.render(&inference, b, step).0, self.config);
        self.first_val.get_or_insert(v);
        let improved = self
            .state
            .best_val
            .is_none_or(|b| v < b - self.config.early_stop_min_delta);
        if improved {
            self.state.best_val = Some(v);
            self.state.best_step = Some(step);
            self.state.evals_without_improvement = 0;
            self.state.step = step;
            if self.options.mode == Mode::M2 {
                let p = self
                    .run
                    .save_checkpoint("best", model, Some(optimizer), &self.state)?;
                on_event(TrainEvent::Checkpoint { path: p });
            }
        } else if step > 0 {
            self.state.evals_without_improvement += 1;
        }
        self.run.append_csv(
            "val",
            &VAL_HEADER,
            &[step.to_string(), format!("{v:.6}"), format!("{cents:.3}")],
        )?;
        on_event(TrainEvent::Eval {
            step,
            spectral: v,
            f0_cents: cents,
            best: improved,
        });
        Ok(self.config.early_stop_patience > 0
            && self.state.evals_without_improvement >= self.config.early_stop_patience)
    }

    /// One optimisation step (`gradAccumSteps` micro-batches, clipping, Adam), or in dry mode
    /// the losses of one batch. Non-finite values leave the weights untouched.
    fn step(
        &mut self,
        mut model: DdspModel,
        optimizer: &mut ModuleOptimizer,
        step: usize,
        lr: f64,
    ) -> Result<(DdspModel, StepOutcome)> {
        let (config, data) = (self.config, self.data);
        let accum = config.grad_accum_steps;
        if let Some((p, _)) = self.profiler.as_mut() {
            p.start();
        }
        let mut accumulator = GradientsAccumulator::new();
        let mut sums = vec![0.0f32; self.loss_names.len()];
        for micro in 0..accum {
            let ids = self.sampler.next_batch();
            let refs: Vec<_> = ids.iter().map(|&i| &data.chunks[i]).collect();
            let noise_seed =
                config.seed ^ ((step * accum + micro) as u64).wrapping_mul(0x9E37_79B9);
            if self.options.mode == Mode::Dry {
                let batch = Batch::from_chunks(&refs, &self.plain);
                let controls = dry_controls(&batch, config);
                let distribution = controls.distribution.clone();
                let out = self.synth_plain.forward(controls, noise_seed);
                let report = self.plain_objective.evaluate(
                    out.audio,
                    batch.audio,
                    None,
                    Some(distribution),
                    step,
                );
                for (s, (_, v)) in sums.iter_mut().zip(report.values()) {
                    *s += v / accum as f32;
                }
                continue;
            }
            let batch = Batch::from_chunks(&refs, &self.ad);
            self.mark(0);
            if config.fixed_batch && self.fixed_spec.is_none() && self.objective.uses_spectral() {
                self.fixed_spec = Some(
                    self.objective
                        .spectral
                        .target_spectrograms(batch.audio.clone()),
                );
            }
            let out = model.forward_batch(&batch, temperature(config, step), noise_seed);
            let report = self.objective.evaluate(
                out.audio.audio,
                batch.audio.clone(),
                self.fixed_spec.as_ref(),
                Some(out.controls.distribution),
                step,
            );
            let values = report.values();
            self.mark(1);
            if values.iter().any(|(_, v)| !v.is_finite()) {
                return Ok((
                    model,
                    StepOutcome::Skipped {
                        grad_norm: f32::NAN,
                    },
                ));
            }
            for (s, (_, v)) in sums.iter_mut().zip(&values) {
                *s += v / accum as f32;
            }
            let loss = report.total.div_scalar(accum as f64);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            accumulator.accumulate(&model, grads);
            self.mark(2);
        }
        if self.options.mode == Mode::Dry {
            let outcome = StepOutcome::Applied {
                losses: sums,
                grad_norm: f32::NAN,
            };
            return Ok((model, outcome));
        }
        let mut grads = accumulator.grads();
        let grad_norm = global_norm(&model, &grads)
            .map(|n| to_vec(n)[0])
            .unwrap_or(0.0);
        if !grad_norm.is_finite() {
            return Ok((model, StepOutcome::Skipped { grad_norm }));
        }
        if config.grad_clip > 0.0 {
            match config.grad_clip_mode {
                GradClipMode::Global if grad_norm as f64 > config.grad_clip => {
                    scale_gradients(&model, &mut grads, config.grad_clip / grad_norm as f64)
                }
                GradClipMode::Element => clamp_gradients(&model, &mut grads, config.grad_clip),
                _ => {}
            }
        }
        model = optimizer.step(lr, model, grads);
        if let Some((p, path)) = self.profiler.as_mut() {
            p.mark(3);
            let mut header = vec!["step"];
            header.extend(PhaseProfiler::NAMES);
            let mut row = vec![(step + 1).to_string()];
            row.extend(p.phases.iter().map(|ms| format!("{ms:.3}")));
            crate::io::append_csv_row(path, &header, &row)?;
        }
        let outcome = StepOutcome::Applied {
            losses: sums,
            grad_norm,
        };
        Ok((model, outcome))
    }

    /// Close profiler phase `i`, when profiling.
    fn mark(&mut self, i: usize) {
        if let Some((p, _)) = self.profiler.as_mut() {
            p.mark(i);
        }
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
        self.meta.status = "failed: repeated non-finite steps".into();
        self.meta.skipped_steps = self.state.skipped_steps;
        self.meta.ended_unix = Some(unix_now());
        self.run.write_meta(&self.meta)?;
        Err(Error::Training(format!(
            "{MAX_CONSECUTIVE_SKIPS} consecutive steps had a non-finite loss or gradient at step {step}; \
             stopped. The last good checkpoint is in {} (try a lower lr or gradClip)",
            self.run.checkpoint("latest").display()
        )))
    }

    /// Append a finished step to `logs/train.csv` and report it; returns the named losses.
    fn log_step(
        &mut self,
        step: usize,
        lr: f64,
        losses: &[f32],
        grad_norm: f32,
        on_event: &mut dyn FnMut(TrainEvent),
    ) -> Result<Vec<(&'static str, f32)>> {
        let mut header: Vec<&str> = vec!["step", "lr"];
        header.extend(self.loss_names.iter().copied());
        header.push("grad_norm");
        let mut row = vec![step.to_string(), format!("{lr:.6e}")];
        row.extend(losses.iter().map(|v| format!("{v:.6}")));
        row.push(format!("{grad_norm:.6}"));
        self.run.append_csv("train", &header, &row)?;
        let named: Vec<_> = self
            .loss_names
            .iter()
            .copied()
            .zip(losses.iter().copied())
            .collect();
        on_event(TrainEvent::Step {
            step,
            losses: named.clone(),
            lr,
        });
        self.state.step = step;
        Ok(named)
    }

    /// After `step` steps: checkpoints (`checkpointEvery` and the last step), renders and
    /// control dumps, from one validation forward pass.
    fn after_step(
        &mut self,
        model: &DdspModel,
        optimizer: &ModuleOptimizer,
        step: usize,
        on_event: &mut dyn FnMut(TrainEvent),
    ) -> Result<()> {
        let config = self.config;
        let m2 = self.options.mode == Mode::M2;
        let last = step == self.options.steps;
        if m2 && (step.is_multiple_of(config.checkpoint_every) || last) {
            let name = format!("step_{step:08}");
            self.run
                .save_checkpoint(&name, model, Some(optimizer), &self.state)?;
            let p = self
                .run
                .save_checkpoint("latest", model, Some(optimizer), &self.state)?;
            on_event(TrainEvent::Checkpoint { path: p });
            let logs = self.run.root.join("logs");
            plots::plot_losses(&logs, &logs.join("loss_curves.png"))?;
        }
        let render_every = config.render_every();
        let render_now = render_every > 0 && (step.is_multiple_of(render_every) || last);
        let dump_now =
            m2 && config.dump_controls_every > 0 && step.is_multiple_of(config.dump_controls_every);
        if !render_now && !dump_now {
            return Ok(());
        }
        let batch = &self.evaluator.targets[0].0;
        let (audio, controls) = self.render(&model.valid(), batch, step);
        if render_now {
            let dir = self.run.renders(step);
            write_renders(&dir, batch, &audio, config.sample_rate.round() as u32, 2)?;
            let n = config.chunk_size;
            plots::plot_spectrograms(
                &to_vec(batch.audio.clone())[..n],
                &to_vec(audio.audio)[..n],
                &dir.join("spectrogram.png"),
            )?;
        }
        if let (true, Some(controls)) = (dump_now, controls) {
            let dir = self.run.root.join("logs").join("controls");
            let snapshot = dump_controls(&dir, step, &controls, config)?;
            let plots_dir = dir.join("plots");
            plots::plot_controls(
                &snapshot,
                &plots_dir.join(format!("step_{step:06}_controls.png")),
            )?;
            self.snapshots.push(snapshot);
            plots::plot_controls_compare(&self.snapshots, &plots_dir.join("steps_compare.png"))?;
        }
        Ok(())
    }
}
