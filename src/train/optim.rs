//! Learning-rate schedules and gradient clipping.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

use crate::config::{Config, LrSchedule};

/// Learning rate at `step` (0-based) of a run of `total` steps.
///
/// Linear warmup from `lr / warmup` to `lr` over `lrWarmupSteps`, then: `none` keeps `lr`;
/// `exp` is `lr * lrDecayRate^((step - warmup) / lrDecaySteps)` (continuous, as TensorFlow's
/// `exponential_decay`, the paper: 0.98 every 10k steps); `cosine` goes from `lr` to `lrMin`
/// over the remaining steps. The result is never below `lrMin` (except during warmup).
pub fn learning_rate(config: &Config, step: usize, total: usize) -> f64 {
    let warmup = config.lr_warmup_steps;
    if step < warmup {
        return config.lr * (step + 1) as f64 / warmup as f64;
    }
    let t = (step - warmup) as f64;
    let lr = match config.lr_schedule {
        LrSchedule::None => config.lr,
        LrSchedule::Exp => config.lr * config.lr_decay_rate.powf(t / config.lr_decay_steps as f64),
        LrSchedule::Cosine => {
            let span = total.saturating_sub(warmup).max(1) as f64;
            let progress = (t / span).min(1.0);
            config.lr_min
                + 0.5
                    * (config.lr - config.lr_min)
                    * (1.0 + (std::f64::consts::PI * progress).cos())
        }
    };
    lr.max(config.lr_min.min(config.lr))
}

struct SquaredNorm<'a> {
    grads: &'a GradientsParams,
    total: Option<Tensor<1>>,
}

impl ModuleVisitor for SquaredNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            let s = g.powf_scalar(2.0).sum().reshape([1]);
            self.total = Some(match self.total.take() {
                Some(t) => t + s,
                None => s,
            });
        }
    }
}

/// The norm of all gradients together, `sqrt(sum_params sum g^2)`, as a `[1]` tensor on the
/// gradients' device (NaN or Inf when any gradient is).
pub fn global_norm<M: Module>(model: &M, grads: &GradientsParams) -> Option<Tensor<1>> {
    let mut v = SquaredNorm { grads, total: None };
    model.visit(&mut v);
    v.total.map(|t| t.sqrt())
}

struct MapGrads<'a, F: Fn(Tensor<1>) -> Tensor<1>> {
    grads: &'a mut GradientsParams,
    f: F,
}

impl<F: Fn(Tensor<1>) -> Tensor<1>> ModuleVisitor for MapGrads<'_, F> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            let shape = g.dims();
            let flat: Tensor<1> = g.flatten(0, D - 1);
            self.grads
                .register::<D>(param.id, (self.f)(flat).reshape(shape));
        }
    }
}

/// Multiply every gradient by `factor` (global-norm clipping: `factor = clip / norm`).
pub fn scale_gradients<M: Module>(model: &M, grads: &mut GradientsParams, factor: f64) {
    model.visit(&mut MapGrads {
        grads,
        f: |g| g.mul_scalar(factor),
    });
}

/// Clamp every gradient element to `[-clip, clip]` (the original tool's clipping).
pub fn clamp_gradients<M: Module>(model: &M, grads: &mut GradientsParams, clip: f64) {
    model.visit(&mut MapGrads {
        grads,
        f: |g| g.clamp(-clip, clip),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::{from_vec, to_vec};
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::Device;

    #[test]
    fn schedules_follow_their_formulas() {
        let mut c = Config {
            lr: 1e-3,
            lr_min: 1e-5,
            ..Config::default()
        };
        assert_eq!(learning_rate(&c, 500, 1000), 1e-3);
        c.lr_schedule = LrSchedule::Exp;
        c.lr_decay_steps = 100;
        c.lr_decay_rate = 0.5;
        assert!((learning_rate(&c, 100, 1000) - 5e-4).abs() < 1e-12);
        assert!((learning_rate(&c, 150, 1000) - 1e-3 * 0.5f64.powf(1.5)).abs() < 1e-12);
        assert_eq!(learning_rate(&c, 10_000, 100_000), 1e-5, "floored at lrMin");
        c.lr_schedule = LrSchedule::Cosine;
        c.lr_warmup_steps = 10;
        assert!((learning_rate(&c, 0, 110) - 1e-4).abs() < 1e-12, "warmup");
        assert!((learning_rate(&c, 10, 110) - 1e-3).abs() < 1e-12);
        assert!((learning_rate(&c, 60, 110) - (1e-5 + 0.5 * (1e-3 - 1e-5))).abs() < 1e-12);
        assert!((learning_rate(&c, 110, 110) - 1e-5).abs() < 1e-12);
    }

    #[test]
    fn global_clipping_scales_and_element_clipping_clamps() {
        let device = Device::flex().autodiff();
        let lin: Linear = LinearConfig::new(3, 2).init(&device);
        let x = from_vec(vec![1.0, -2.0, 3.0, 0.5, 4.0, -1.0], [2, 3], &device);
        let loss = lin.forward(x).mul_scalar(10.0).sum();
        let mut grads = GradientsParams::from_grads(loss.backward(), &lin);
        let w0 = to_vec(grads.get::<2>(lin.weight.id).unwrap());
        let b0 = to_vec(grads.get::<1>(lin.bias.as_ref().unwrap().id).unwrap());
        let expected: f32 = w0.iter().chain(&b0).map(|g| g * g).sum::<f32>().sqrt();
        let norm = to_vec(global_norm(&lin, &grads).unwrap())[0];
        assert!((norm - expected).abs() < 1e-3 * expected);
        scale_gradients(&lin, &mut grads, 3.0 / norm as f64);
        let after = to_vec(global_norm(&lin, &grads).unwrap())[0];
        assert!((after - 3.0).abs() < 1e-4, "clipped norm {after}");
        clamp_gradients(&lin, &mut grads, 0.1);
        let w = to_vec(grads.get::<2>(lin.weight.id).unwrap());
        assert!(w.iter().all(|g| g.abs() <= 0.1 + 1e-7));
    }
}
