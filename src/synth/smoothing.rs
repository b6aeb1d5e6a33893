//! Causal smoothing of scaled control streams along frames (the alignment plan's
//! "recurrent-lite" controls).

use burn::config::Config;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::dsp;

/// Causal smoothing of control streams (`controlSmoothing`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ControlSmoothing {
    /// No smoothing.
    Off,
    /// `y[t] = a*y[t-1] + (1-a)*x[t]`.
    Onepole,
    /// Causal moving-average FIR of `fir_size` frames.
    Fir,
    /// Second-order low-pass (biquad) at `cutoff` cycles per frame, quality `q`.
    Biquad,
}

/// Which control streams are smoothed (`controlSmoothingTargets`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum SmoothingTarget {
    /// Overall harmonic amplitude.
    HarmonicGain,
    /// Noise magnitudes / gain.
    NoiseGain,
    /// Harmonic distribution.
    HarmonicDistribution,
}

/// Configuration of [`ControlSmoother`].
#[derive(Config, Debug)]
pub struct SmoothingConfig {
    /// The smoothing filter.
    #[config(default = "ControlSmoothing::Off")]
    pub mode: ControlSmoothing,
    /// One-pole coefficient `a`.
    #[config(default = 0.8)]
    pub alpha: f64,
    /// FIR smoothing length, frames.
    #[config(default = 5)]
    pub fir_size: usize,
    /// Biquad cutoff, cycles per frame (below 0.5).
    #[config(default = 0.08)]
    pub cutoff: f64,
    /// Biquad quality factor (`1/sqrt(2)`: Butterworth).
    #[config(default = "std::f64::consts::FRAC_1_SQRT_2")]
    pub q: f64,
    /// Streams to smooth.
    #[config(default = "vec![SmoothingTarget::HarmonicGain, SmoothingTarget::NoiseGain]")]
    pub targets: Vec<SmoothingTarget>,
}

impl SmoothingConfig {
    /// Build the smoother.
    pub fn init(&self) -> ControlSmoother {
        let kernel = match self.mode {
            ControlSmoothing::Off => Vec::new(),
            ControlSmoothing::Onepole => dsp::onepole_kernel(self.alpha),
            ControlSmoothing::Fir => vec![1.0 / self.fir_size as f32; self.fir_size],
            ControlSmoothing::Biquad => dsp::biquad_lowpass_kernel(self.cutoff, self.q),
        };
        ControlSmoother {
            kernel,
            targets: self.targets.clone(),
        }
    }
}

/// A causal FIR applied along frames to the selected control streams
/// ([`dsp::causal_smooth`]).
#[derive(Clone, Debug, Default)]
pub struct ControlSmoother {
    kernel: Vec<f32>,
    pub(super) targets: Vec<SmoothingTarget>,
}

impl ControlSmoother {
    /// The smoothing kernel (empty when smoothing is off).
    pub fn kernel(&self) -> &[f32] {
        &self.kernel
    }

    /// Smooth `x: [B, F, C]` if `target` is selected, else return it unchanged.
    pub fn apply(&self, x: Tensor<3>, target: SmoothingTarget) -> Tensor<3> {
        if self.targets.contains(&target) {
            dsp::causal_smooth(x, &self.kernel)
        } else {
            x
        }
    }

    /// [`Self::apply`] continuing the frames before `x`: `history` holds the last
    /// `kernel - 1` input frames of the previous piece (the first frame held before the first
    /// piece) and is updated for the next one.
    pub fn apply_continued(
        &self,
        x: Tensor<3>,
        target: SmoothingTarget,
        history: &mut Option<Tensor<3>>,
    ) -> Tensor<3> {
        let l = self.kernel.len();
        if !self.targets.contains(&target) || l <= 1 {
            return x;
        }
        let [b, f, c] = x.dims();
        let before = history
            .take()
            .unwrap_or_else(|| x.clone().slice([0..b, 0..1, 0..c]).repeat_dim(1, l - 1));
        let all = Tensor::cat(vec![before.clone(), x.clone()], 1);
        *history = Some(all.slice([0..b, f..f + l - 1, 0..c]));
        dsp::causal_smooth_from(x, &self.kernel, Some(before))
    }
}
