//! Harmonic (additive) synthesizer and the scaling of its raw controls.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::activation::{sigmoid, softmax, softplus};
use burn::tensor::{Device, Int, Tensor};
use serde::{Deserialize, Serialize};

use crate::dsp::{self, AmpResample};

/// How raw network outputs become the harmonic amplitude and distribution
/// (`harmonicHeadMode` in the config).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum HarmonicScaling {
    /// Sigmoid amplitudes and gain, with `1/K` harmonic scaling (the original tool's default).
    Legacy,
    /// Softplus amplitudes normalised per frame, softplus gain, no `1/K` scaling.
    Normalized,
    /// Softmax distribution with temperature and floor, gain bounded in dB.
    SoftmaxDb,
    /// The DDSP paper: `exp_sigmoid` amplitude and distribution, Nyquist-masked and normalised.
    ExpSigmoid,
}

/// Configuration of [`Harmonic`].
#[derive(Config, Debug)]
pub struct HarmonicConfig {
    /// Audio sample rate, Hz.
    pub sample_rate: f64,
    /// Samples per control frame.
    pub hop: usize,
    /// How amplitudes are upsampled from frames to samples.
    #[config(default = "AmpResample::Linear")]
    pub amp_resample: AmpResample,
    /// How raw controls are scaled ([`Harmonic::get_controls`]).
    #[config(default = "HarmonicScaling::ExpSigmoid")]
    pub scaling: HarmonicScaling,
    /// softmax-db: floor `a` in `(1 - a) softmax + a / K`.
    #[config(default = 0.0)]
    pub softmax_amp_floor: f64,
    /// softmax-db: lowest gain, dB.
    #[config(default = -50.0)]
    pub softmax_gain_min_db: f64,
    /// softmax-db: highest gain, dB.
    #[config(default = 6.0)]
    pub softmax_gain_max_db: f64,
}

impl HarmonicConfig {
    /// Build the synthesizer (it has no trainable parameters).
    pub fn init(&self, _device: &Device) -> Harmonic {
        Harmonic {
            sample_rate: self.sample_rate,
            hop: self.hop,
            amp_resample: self.amp_resample,
            scaling: self.scaling,
            softmax_amp_floor: self.softmax_amp_floor,
            gain_db: (self.softmax_gain_min_db, self.softmax_gain_max_db),
        }
    }
}

/// Harmonic synthesizer: a bank of sinusoids at integer multiples of f0.
///
/// Controls are frame-rate: `f0_hz: [B, F]`, `amplitude: [B, F]` (overall amplitude) and
/// `distribution: [B, F, K]` (relative harmonic amplitudes, normally summing to 1 per frame).
/// Output is `[B, F * hop]`.
#[derive(Module, Debug)]
pub struct Harmonic {
    #[module(skip)]
    sample_rate: f64,
    #[module(skip)]
    hop: usize,
    #[module(skip)]
    pub(super) amp_resample: AmpResample,
    #[module(skip)]
    pub(super) scaling: HarmonicScaling,
    #[module(skip)]
    pub(super) softmax_amp_floor: f64,
    #[module(skip)]
    pub(super) gain_db: (f64, f64),
}

impl Harmonic {
    /// DDSP's `get_controls`: the raw amplitude `[B, F, 1]` and distribution `[B, F, K]` of a
    /// decoder scaled into `(amplitude [B, F, 1], distribution [B, F, K])` for the f0 they play,
    /// `[B, F]`. `temperature` is the softmax temperature (softmax-db) at this step.
    ///
    /// - `exp-sigmoid` (the paper): `amp = exp_sigmoid(a)`, `dist = normalize(exp_sigmoid(d))`
    ///   with harmonics at or above Nyquist removed ([`dsp::normalize_harmonics`]).
    /// - `legacy`: `amp = sigmoid(a)`, `dist = sigmoid(d) / K`.
    /// - `normalized`: `amp = softplus(a)`, `dist = softplus(d) / sum softplus(d)`.
    /// - `softmax-db`: `dist = (1 - floor) softmax(d / T) + floor / K`,
    ///   `amp = 10^(g_dB / 20)` with `g_dB = min + (max - min) sigmoid(a)`.
    pub fn get_controls(
        &self,
        raw_amplitude: Tensor<3>,
        raw_distribution: Tensor<3>,
        f0_hz: Tensor<2>,
        temperature: f64,
    ) -> (Tensor<3>, Tensor<3>) {
        let k = raw_distribution.dims()[2];
        match self.scaling {
            HarmonicScaling::ExpSigmoid => (
                dsp::exp_sigmoid(raw_amplitude),
                dsp::normalize_harmonics(
                    dsp::exp_sigmoid(raw_distribution),
                    f0_hz,
                    self.sample_rate,
                ),
            ),
            HarmonicScaling::Legacy => (
                sigmoid(raw_amplitude),
                sigmoid(raw_distribution).div_scalar(k as f64),
            ),
            HarmonicScaling::Normalized => {
                let d = softplus(raw_distribution, 1.0);
                let total = d.clone().sum_dim(2).clamp_min(1e-7);
                (softplus(raw_amplitude, 1.0), d / total)
            }
            HarmonicScaling::SoftmaxDb => {
                let a = self.softmax_amp_floor;
                let p = softmax(raw_distribution.div_scalar(temperature), 2)
                    .mul_scalar(1.0 - a)
                    .add_scalar(a / k as f64);
                let (lo, hi) = self.gain_db;
                let db = sigmoid(raw_amplitude).mul_scalar(hi - lo).add_scalar(lo);
                (db.mul_scalar(std::f64::consts::LN_10 / 20.0).exp(), p)
            }
        }
    }

    /// Render audio `[B, F * hop]` from scaled controls.
    pub fn forward(
        &self,
        f0_hz: Tensor<2>,
        amplitude: Tensor<2>,
        distribution: Tensor<3>,
    ) -> Tensor<2> {
        let harmonic_amplitudes = distribution * amplitude.unsqueeze_dim::<3>(2);
        dsp::harmonic_synthesis(
            f0_hz,
            harmonic_amplitudes,
            self.hop,
            self.sample_rate,
            self.amp_resample,
        )
    }

    /// Render the first `F` of `F + 1` frames continuing a longer signal: the extra frame is
    /// the one the last hop moves towards, `phase` the oscillator phase at the first frame
    /// (see [`dsp::harmonic_synthesis_from`]). Returns `[B, F * hop]` and the phase after.
    pub fn forward_from(
        &self,
        f0_hz: Tensor<2>,
        amplitude: Tensor<2>,
        distribution: Tensor<3>,
        phase: Option<Tensor<2, Int>>,
    ) -> (Tensor<2>, Tensor<2, Int>) {
        let harmonic_amplitudes = distribution * amplitude.unsqueeze_dim::<3>(2);
        dsp::harmonic_synthesis_from(
            f0_hz,
            harmonic_amplitudes,
            self.hop,
            self.sample_rate,
            self.amp_resample,
            phase,
        )
    }

    /// Samples per control frame.
    pub fn hop(&self) -> usize {
        self.hop
    }

    /// Audio sample rate, Hz.
    pub fn sample_rate(&self) -> f64 {
        self.sample_rate
    }
}
