//! Control heads: raw network outputs to scaled synthesizer controls, per head mode, with
//! optional causal smoothing.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::{sigmoid, softmax, softplus};
use burn::tensor::module::conv1d;
use burn::tensor::ops::{ConvOptions, PadMode};
use burn::tensor::{Device, Tensor};

use crate::config::{ControlSmoothing, HarmonicHeadMode, SmoothingTarget};
use crate::dsp::{exp_sigmoid, from_vec, normalize_harmonics};
use crate::synth::SynthControls;

/// Bias added to raw noise magnitudes before `exp_sigmoid` (DDSP's `initial_bias`).
pub const NOISE_BIAS: f64 = -5.0;

/// Configuration of [`ControlHeads`].
#[derive(Config, Debug)]
pub struct HeadsConfig {
    /// Width of the backbone's output.
    pub d_input: usize,
    /// Harmonics `K`.
    pub harmonics: usize,
    /// Head parameterisation.
    pub mode: HarmonicHeadMode,
    /// Noise bands of the paper's filtered noise (exp-sigmoid mode).
    #[config(default = 65)]
    pub noise_bands: usize,
    /// Other modes: filter the noise (else white noise times a gain).
    #[config(default = false)]
    pub noise_filter: bool,
    /// Other modes: filter bands when `noise_filter`.
    #[config(default = 15)]
    pub noise_filter_size: usize,
    /// Sample rate, for the Nyquist mask of the exp-sigmoid head.
    #[config(default = 16000.0)]
    pub sample_rate: f64,
    /// softmax-db: floor `a` in `(1 - a) softmax + a / K`.
    #[config(default = 0.0)]
    pub softmax_amp_floor: f64,
    /// softmax-db: lowest gain, dB.
    #[config(default = -50.0)]
    pub softmax_gain_min_db: f64,
    /// softmax-db: highest gain, dB.
    #[config(default = 6.0)]
    pub softmax_gain_max_db: f64,
    /// Causal smoothing of control streams.
    #[config(default = "ControlSmoothing::Off")]
    pub smoothing: ControlSmoothing,
    /// One-pole coefficient.
    #[config(default = 0.8)]
    pub smoothing_alpha: f64,
    /// FIR smoothing length, frames.
    #[config(default = 5)]
    pub smoothing_fir_size: usize,
    /// Streams to smooth.
    #[config(default = "vec![SmoothingTarget::HarmonicGain, SmoothingTarget::NoiseGain]")]
    pub smoothing_targets: Vec<SmoothingTarget>,
}

impl HeadsConfig {
    /// Noise head outputs: `noise_bands` (exp-sigmoid), else a gain plus the filter bands.
    pub fn noise_outputs(&self) -> usize {
        match self.mode {
            HarmonicHeadMode::ExpSigmoid => self.noise_bands,
            _ => {
                1 + if self.noise_filter {
                    self.noise_filter_size
                } else {
                    0
                }
            }
        }
    }

    /// Build the heads.
    pub fn init(&self, device: &Device) -> ControlHeads {
        let kernel = match self.smoothing {
            ControlSmoothing::Off => Vec::new(),
            ControlSmoothing::Onepole => onepole_kernel(self.smoothing_alpha),
            ControlSmoothing::Fir => {
                vec![1.0 / self.smoothing_fir_size as f32; self.smoothing_fir_size]
            }
        };
        ControlHeads {
            amplitude: LinearConfig::new(self.d_input, 1).init(device),
            distribution: LinearConfig::new(self.d_input, self.harmonics).init(device),
            noise: LinearConfig::new(self.d_input, self.noise_outputs()).init(device),
            mode: self.mode,
            sample_rate: self.sample_rate,
            softmax_amp_floor: self.softmax_amp_floor,
            gain_db: (self.softmax_gain_min_db, self.softmax_gain_max_db),
            smoothing_kernel: kernel,
            smoothing_targets: self.smoothing_targets.clone(),
        }
    }
}

/// Truncated, renormalised one-pole impulse response `(1 - a) a^k` (until `a^k < 1e-3`).
fn onepole_kernel(a: f64) -> Vec<f32> {
    let len = if a <= 0.0 {
        1
    } else {
        ((1e-3f64.ln() / a.ln()).ceil() as usize).clamp(1, 512)
    };
    let w: Vec<f64> = (0..len).map(|k| (1.0 - a) * a.powi(k as i32)).collect();
    let sum: f64 = w.iter().sum();
    w.into_iter().map(|v| (v / sum) as f32).collect()
}

/// Causal FIR smoothing along frames: `y[t] = sum_k w[k] x[t - k]`, the first frame held
/// before the start. `[B, F, C]` -> `[B, F, C]`.
pub fn causal_smooth(x: Tensor<3>, kernel: &[f32]) -> Tensor<3> {
    if kernel.len() <= 1 {
        return x;
    }
    let [b, f, c] = x.dims();
    let l = kernel.len();
    let flat = x.swap_dims(1, 2).reshape([b * c, 1, f]);
    let padded = flat.pad([(0, 0), (0, 0), (l - 1, 0)], PadMode::Edge);
    // conv1d correlates, so the kernel is reversed.
    let reversed: Vec<f32> = kernel.iter().rev().copied().collect();
    let weight = from_vec(reversed, [1, 1, l], &padded.device());
    let options = ConvOptions {
        stride: [1],
        padding: [(0, 0)],
        dilation: [1],
        groups: 1,
    };
    conv1d(padded, weight, None, options)
        .reshape([b, c, f])
        .swap_dims(1, 2)
}

/// Linear projections to raw controls and their scaling into [`SynthControls`].
#[derive(Module, Debug)]
pub struct ControlHeads {
    amplitude: Linear,
    distribution: Linear,
    noise: Linear,
    #[module(skip)]
    mode: HarmonicHeadMode,
    #[module(skip)]
    sample_rate: f64,
    #[module(skip)]
    softmax_amp_floor: f64,
    #[module(skip)]
    gain_db: (f64, f64),
    #[module(skip)]
    smoothing_kernel: Vec<f32>,
    #[module(skip)]
    smoothing_targets: Vec<SmoothingTarget>,
}

impl ControlHeads {
    /// The head mode.
    pub fn mode(&self) -> HarmonicHeadMode {
        self.mode
    }

    /// The causal smoothing kernel (empty when smoothing is off).
    pub fn smoothing_kernel(&self) -> &[f32] {
        &self.smoothing_kernel
    }

    fn smooth(&self, x: Tensor<3>, target: SmoothingTarget) -> Tensor<3> {
        if self.smoothing_targets.contains(&target) {
            causal_smooth(x, &self.smoothing_kernel)
        } else {
            x
        }
    }

    /// Scaled controls from backbone features `[B, F, d]` and the f0 they play, `[B, F]`.
    /// `temperature` is the softmax temperature (softmax-db mode) at this step.
    ///
    /// - `exp-sigmoid`: `amp = exp_sigmoid(a)`, `dist = normalize(exp_sigmoid(d))` with
    ///   harmonics at or above Nyquist removed; noise `exp_sigmoid(n - 5)`.
    /// - `legacy`: `amp = sigmoid(a)`, `dist = sigmoid(d) / K`.
    /// - `normalized`: `amp = softplus(a)`, `dist = softplus(d) / sum softplus(d)`.
    /// - `softmax-db`: `dist = (1 - floor) softmax(d / T) + floor / K`,
    ///   `amp = 10^(g_dB / 20)` with `g_dB = min + (max - min) sigmoid(a)`.
    /// - Noise in the non-paper modes: `sigmoid(gain)`, times `sigmoid(bands)` when filtered.
    pub fn controls(
        &self,
        features: Tensor<3>,
        f0_hz: Tensor<2>,
        temperature: f64,
    ) -> SynthControls {
        let [b, f, _] = features.dims();
        let raw_amp = self.amplitude.forward(features.clone());
        let raw_dist = self.distribution.forward(features.clone());
        let raw_noise = self.noise.forward(features);
        let k = raw_dist.dims()[2];
        let (amplitude, distribution) = match self.mode {
            HarmonicHeadMode::ExpSigmoid => (
                exp_sigmoid(raw_amp),
                normalize_harmonics(exp_sigmoid(raw_dist), f0_hz.clone(), self.sample_rate),
            ),
            HarmonicHeadMode::Legacy => (sigmoid(raw_amp), sigmoid(raw_dist).div_scalar(k as f64)),
            HarmonicHeadMode::Normalized => {
                let d = softplus(raw_dist, 1.0);
                let total = d.clone().sum_dim(2).clamp_min(1e-7);
                (softplus(raw_amp, 1.0), d / total)
            }
            HarmonicHeadMode::SoftmaxDb => {
                let a = self.softmax_amp_floor;
                let p = softmax(raw_dist.div_scalar(temperature), 2)
                    .mul_scalar(1.0 - a)
                    .add_scalar(a / k as f64);
                let (lo, hi) = self.gain_db;
                let db = sigmoid(raw_amp).mul_scalar(hi - lo).add_scalar(lo);
                (db.mul_scalar(std::f64::consts::LN_10 / 20.0).exp(), p)
            }
        };
        let noise = match self.mode {
            HarmonicHeadMode::ExpSigmoid => exp_sigmoid(raw_noise.add_scalar(NOISE_BIAS)),
            _ => {
                let m = raw_noise.dims()[2];
                let gain = sigmoid(raw_noise.clone().slice([0..b, 0..f, 0..1]));
                if m > 1 {
                    gain * sigmoid(raw_noise.slice([0..b, 0..f, 1..m]))
                } else {
                    gain
                }
            }
        };
        let amplitude = self.smooth(amplitude, SmoothingTarget::HarmonicGain);
        let distribution = self.smooth(distribution, SmoothingTarget::HarmonicDistribution);
        let noise = self.smooth(noise, SmoothingTarget::NoiseGain);
        SynthControls {
            f0_hz,
            amplitude: amplitude.reshape([b, f]),
            distribution,
            noise_magnitudes: Some(noise),
        }
    }
}
