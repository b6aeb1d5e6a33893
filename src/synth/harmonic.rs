//! Harmonic (additive) synthesizer.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::config::AmpResample;
use crate::dsp;

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
}

impl HarmonicConfig {
    /// Build the synthesizer (it has no trainable parameters).
    pub fn init(&self, _device: &Device) -> Harmonic {
        Harmonic {
            sample_rate: self.sample_rate,
            hop: self.hop,
            amp_resample: self.amp_resample,
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
    amp_resample: AmpResample,
}

impl Harmonic {
    /// DDSP's `get_controls` for the paper's parameterisation: `exp_sigmoid` on the raw
    /// amplitude `[B, F, 1]` and distribution `[B, F, K]`, then the distribution is
    /// Nyquist-masked and normalised ([`dsp::normalize_harmonics`]). Returns
    /// `(amplitude [B, F], distribution [B, F, K])`.
    pub fn controls_from_raw(
        &self,
        raw_amplitude: Tensor<3>,
        raw_distribution: Tensor<3>,
        f0_hz: Tensor<2>,
    ) -> (Tensor<2>, Tensor<3>) {
        let [b, f, _] = raw_amplitude.dims();
        let amplitude = dsp::exp_sigmoid(raw_amplitude).reshape([b, f]);
        let distribution =
            dsp::normalize_harmonics(dsp::exp_sigmoid(raw_distribution), f0_hz, self.sample_rate);
        (amplitude, distribution)
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

    /// Samples per control frame.
    pub fn hop(&self) -> usize {
        self.hop
    }

    /// Audio sample rate, Hz.
    pub fn sample_rate(&self) -> f64 {
        self.sample_rate
    }
}
