//! One optimisation step, as a pipeline whose parts read on their own: forward and losses per
//! micro-batch, backward into an accumulator, gradient norm and clipping, Adam.

use burn::lr_scheduler::module_lr_scheduler::{ModuleLearningRate, ModuleLrScheduler};
use burn::module::ParamGroup;
use burn::optim::{AdamConfig, GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::tensor::Device;

use super::control_stats::ControlStats;
use super::optim::{clamp_gradients, global_norm, scale_gradients};
use super::profile::{Phase, PhaseProfiler};
use crate::config::{Config, GradClipMode};
use crate::data::Batch;
use crate::dsp::to_vec;
use crate::loss::{LossReport, Objective, SpectralLoss, Spectrograms};
use crate::model::{DdspModel, ModelOutput};
use crate::schedule::Schedule;

/// What one optimisation step did.
#[derive(Clone, Debug, PartialEq)]
pub enum StepOutcome {
    /// The weights were updated.
    Applied {
        /// `("total", v)` and every objective term, averaged over the micro-batches.
        losses: Vec<(&'static str, f32)>,
        /// Norm of all gradients together before clipping (NaN when there was no backward
        /// pass, as in dry mode).
        grad_norm: f32,
    },
    /// A loss or gradient was not finite: the weights are unchanged.
    Skipped {
        /// The gradient norm (NaN when the loss already was).
        grad_norm: f32,
    },
}

/// Forward a batch through a model (`temperature`: the softmax temperature at the step).
pub fn forward_batch(model: &DdspModel, batch: &Batch, temperature: f64, seed: u64) -> ModelOutput {
    model.forward(
        batch.f0_hz.clone(),
        batch.loudness_db.clone(),
        batch.voiced_prob.clone(),
        batch.mfcc.clone(),
        temperature,
        seed,
    )
}

/// Gradient clipping: off (threshold 0), by the global norm (the paper) or per element (the
/// original tool).
#[derive(Clone, Copy, Debug)]
struct Clip {
    mode: GradClipMode,
    threshold: f64,
}

/// The model and optimiser of a run and everything one step needs: the objective, the
/// temperature schedule, clipping and the noise seed. [`StepRunner::step`] runs one step.
pub struct StepRunner {
    /// `None` only while Adam consumes and returns the model inside a step.
    model: Option<DdspModel>,
    optimizer: ModuleOptimizer,
    objective: Objective,
    temperature: Schedule,
    clip: Clip,
    seed: u64,
    /// Target spectrograms of the chunks seen, kept across steps.
    targets: TargetCache,
    profiler: Option<PhaseProfiler>,
    /// `Some(None)`: statistics requested for the next step; `Some(Some(_))`: computed.
    control_stats: Option<Option<ControlStats>>,
    /// The reverb's parameters and their learning-rate multiplier (`reverbLrScale`), when it
    /// is not 1.
    reverb_lr: Option<(ParamGroup, f64)>,
}

impl StepRunner {
    /// A fresh model ([`DdspModel::new`]) and Adam on an autodiff `device`.
    pub fn new(config: &Config, device: &Device) -> Self {
        Self::from_parts(config, DdspModel::new(config, device), adam(), device)
    }

    /// Continue with a given model and optimiser state.
    pub fn from_parts(
        config: &Config,
        model: DdspModel,
        optimizer: ModuleOptimizer,
        device: &Device,
    ) -> Self {
        let reverb_lr = (config.reverb_lr_scale != 1.0)
            .then(|| model.synth.reverb.clone())
            .flatten()
            .map(|reverb| (ParamGroup::ids_from_module(reverb), config.reverb_lr_scale));
        Self {
            model: Some(model),
            optimizer,
            objective: config.objective_config().init(device),
            temperature: config.temperature(),
            clip: Clip {
                mode: config.grad_clip_mode,
                threshold: config.grad_clip,
            },
            seed: config.seed,
            targets: TargetCache::new(config.target_cache_mb << 20),
            profiler: None,
            control_stats: None,
            reverb_lr,
        }
    }

    /// Time the phases of every step ([`PhaseProfiler`]), synchronising `device`.
    pub fn with_profiler(mut self, device: &Device) -> Self {
        self.profiler = Some(PhaseProfiler::new(device.clone()));
        self
    }

    /// The phase timings of the last step, when profiling.
    pub fn profile(&self) -> Option<&PhaseProfiler> {
        self.profiler.as_ref()
    }

    /// The model.
    pub fn model(&self) -> &DdspModel {
        self.model
            .as_ref()
            .expect("the model is only taken inside a step")
    }

    /// The optimiser.
    pub fn optimizer(&self) -> &ModuleOptimizer {
        &self.optimizer
    }

    /// The objective.
    pub fn objective(&self) -> &Objective {
        &self.objective
    }

    /// Compute the control statistics of the next step's first micro-batch (read back from
    /// the device: only on logged steps).
    pub fn request_control_stats(&mut self) {
        self.control_stats = Some(None);
    }

    /// The statistics requested with [`Self::request_control_stats`], once the step ran.
    pub fn take_control_stats(&mut self) -> Option<ControlStats> {
        self.control_stats.take().flatten()
    }

    /// The softmax temperature at `step`.
    pub fn temperature(&self, step: usize) -> f64 {
        self.temperature.at(step)
    }

    /// One optimisation step number `step` (0-based) at learning rate `lr` on `batches`, the
    /// micro-batches whose gradients are averaged (`gradAccumSteps` of them; drawn lazily, so
    /// a step skipped for a non-finite loss draws no further batch). Non-finite values leave
    /// the weights untouched.
    pub fn step<I>(&mut self, batches: I, step: usize, lr: f64) -> StepOutcome
    where
        I: IntoIterator<Item = Batch>,
        I::IntoIter: ExactSizeIterator,
    {
        let batches = batches.into_iter();
        let micro_batches = batches.len();
        self.start();
        let mut accumulator = GradientsAccumulator::new();
        let mut sums: Vec<(&'static str, f32)> = Vec::new();
        for (micro, batch) in batches.enumerate() {
            self.mark(Phase::Data);
            let seed =
                self.seed ^ ((step * micro_batches + micro) as u64).wrapping_mul(0x9E37_79B9);
            let report = self.losses(&batch, step, seed);
            self.mark(Phase::Forward);
            // Backward is queued before the values are read back, so a GPU keeps working
            // through the one sync of the micro-batch.
            let loss = report.total.clone().div_scalar(micro_batches as f64);
            let grads = GradientsParams::from_grads(loss.backward(), self.model());
            let values = report.values();
            if values.iter().any(|(_, v)| !v.is_finite()) {
                return StepOutcome::Skipped {
                    grad_norm: f32::NAN,
                };
            }
            add_mean(&mut sums, &values, micro_batches);
            accumulator.accumulate(self.model(), grads);
            self.mark(Phase::Backward);
        }
        let outcome = self.apply(accumulator, lr, sums);
        self.mark(Phase::Optimizer);
        outcome
    }

    /// Forward one micro-batch and evaluate the objective on it.
    fn losses(&mut self, batch: &Batch, step: usize, seed: u64) -> LossReport {
        let targets = self
            .objective
            .uses_spectral()
            .then(|| self.targets.get(&self.objective.spectral, batch));
        let out = forward_batch(self.model(), batch, self.temperature(step), seed);
        if self.control_stats == Some(None) {
            self.control_stats = Some(Some(ControlStats::of(&out.controls)));
        }
        self.objective.evaluate(
            out.audio.audio,
            batch.audio.clone(),
            targets.as_ref(),
            Some(out.controls.distribution),
            step,
        )
    }

    /// Norm, clipping and Adam on the accumulated gradients.
    fn apply(
        &mut self,
        mut accumulator: GradientsAccumulator<DdspModel>,
        lr: f64,
        losses: Vec<(&'static str, f32)>,
    ) -> StepOutcome {
        let model = self
            .model
            .take()
            .expect("the model is only taken inside a step");
        let mut grads = accumulator.grads();
        let grad_norm = global_norm(&model, &grads)
            .map(|n| to_vec(n)[0])
            .unwrap_or(0.0);
        if !grad_norm.is_finite() {
            self.model = Some(model);
            return StepOutcome::Skipped { grad_norm };
        }
        let Clip { mode, threshold } = self.clip;
        if threshold > 0.0 {
            match mode {
                GradClipMode::Global if grad_norm as f64 > threshold => {
                    scale_gradients(&model, &mut grads, threshold / grad_norm as f64)
                }
                GradClipMode::Element => clamp_gradients(&model, &mut grads, threshold),
                GradClipMode::Global => {}
            }
        }
        let policy: ModuleLearningRate = match &self.reverb_lr {
            Some((reverb, scale)) => ModuleLrScheduler::new(lr)
                .with_group(reverb.clone(), lr * scale)
                .step(),
            None => lr.into(),
        };
        self.model = Some(self.optimizer.step(policy, model, grads));
        StepOutcome::Applied { losses, grad_norm }
    }

    fn start(&mut self) {
        if let Some(p) = self.profiler.as_mut() {
            p.start();
        }
    }

    fn mark(&mut self, phase: Phase) {
        if let Some(p) = self.profiler.as_mut() {
            p.mark(phase);
        }
    }

    /// The model and optimiser, to save or keep.
    pub fn into_parts(self) -> (DdspModel, ModuleOptimizer) {
        (
            self.model.expect("the model is only taken inside a step"),
            self.optimizer,
        )
    }
}

/// The target spectrograms of batch items by audio fingerprint, computed once and kept while
/// they fit in a memory budget (beyond it they are computed every step).
struct TargetCache {
    budget: usize,
    used: usize,
    by_key: std::collections::HashMap<u64, Spectrograms>,
}

impl TargetCache {
    fn new(budget: usize) -> Self {
        Self {
            budget,
            used: 0,
            by_key: Default::default(),
        }
    }

    /// The batch's target spectrograms, from the cache where it has them.
    fn get(&mut self, spectral: &SpectralLoss, batch: &Batch) -> Spectrograms {
        if self.budget == 0 {
            return spectral.target_spectrograms(batch.audio.clone());
        }
        let missing: Vec<usize> = (0..batch.keys.len())
            .filter(|&i| !self.by_key.contains_key(&batch.keys[i]))
            .collect();
        if !missing.is_empty() {
            let all = spectral.target_spectrograms(batch.audio.clone());
            for &i in &missing {
                let item = all.item(i);
                let bytes = item.bytes();
                if self.used + bytes > self.budget {
                    // Full: this batch's targets as computed, the cache as it is.
                    return all;
                }
                self.used += bytes;
                self.by_key.insert(batch.keys[i], item);
            }
        }
        Spectrograms::cat(batch.keys.iter().map(|k| self.by_key[k].clone()).collect())
    }
}

/// Adam as the paper uses it (TensorFlow's epsilon 1e-7).
pub fn adam() -> ModuleOptimizer {
    AdamConfig::new().with_epsilon(1e-7).init()
}

/// Add `values / n` to the running sums, matched by name (the first call fixes the names).
pub(crate) fn add_mean(
    sums: &mut Vec<(&'static str, f32)>,
    values: &[(&'static str, f32)],
    n: usize,
) {
    for &(name, v) in values {
        match sums.iter_mut().find(|(s, _)| *s == name) {
            Some((_, s)) => *s += v / n as f32,
            None => sums.push((name, v / n as f32)),
        }
    }
}
