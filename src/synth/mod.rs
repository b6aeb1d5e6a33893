//! Synthesizers and effects as Burn modules (the counterpart of magenta `ddsp/synths.py` and
//! `effects.py`): [`Harmonic`], [`FilteredNoise`], [`Reverb`], and [`Synth`], which sums the
//! harmonic and noise branches and applies the reverb, each part switchable.
//!
//! Split as in DDSP: `controls_from_raw` scales raw network outputs, `forward` renders from
//! scaled controls and is a pure function of them.

mod harmonic;
mod noise;
mod reverb;

pub use harmonic::{Harmonic, HarmonicConfig};
pub use noise::{FilteredNoise, FilteredNoiseConfig};
pub use reverb::{Reverb, ReverbConfig};

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::config::{AmpResample, ReverbMode};

/// Scaled synthesizer controls at frame rate.
#[derive(Clone, Debug)]
pub struct SynthControls {
    /// Fundamental frequency, Hz: `[B, F]`.
    pub f0_hz: Tensor<2>,
    /// Overall harmonic amplitude: `[B, F]`.
    pub amplitude: Tensor<2>,
    /// Harmonic distribution: `[B, F, K]`.
    pub distribution: Tensor<3>,
    /// Noise band magnitudes: `[B, F, M]` (ignored when the noise branch is off).
    pub noise_magnitudes: Option<Tensor<3>>,
}

/// The rendered audio, with each branch kept for renders and diagnostics.
#[derive(Clone, Debug)]
pub struct SynthOutput {
    /// Final audio (harmonic + noise, then reverb): `[B, N]`.
    pub audio: Tensor<2>,
    /// Harmonic branch alone: `[B, N]`.
    pub harmonic: Tensor<2>,
    /// Noise branch alone (zeros when off): `[B, N]`.
    pub noise: Tensor<2>,
}

/// Configuration of [`Synth`].
#[derive(Config, Debug)]
pub struct SynthConfig {
    /// Audio sample rate, Hz.
    pub sample_rate: f64,
    /// Samples per control frame.
    pub hop: usize,
    /// Amplitude upsampling.
    #[config(default = "AmpResample::Linear")]
    pub amp_resample: AmpResample,
    /// Render the filtered-noise branch.
    #[config(default = true)]
    pub noise: bool,
    /// Noise FIR taps (0: full length).
    #[config(default = 0)]
    pub noise_window_size: usize,
    /// Reverb mode (`off` disables it).
    #[config(default = "ReverbMode::Off")]
    pub reverb: ReverbMode,
    /// Reverb length, samples.
    #[config(default = 48000)]
    pub reverb_length: usize,
    /// Seed for the reverb's initialisation and noise.
    #[config(default = 0)]
    pub seed: u64,
}

impl SynthConfig {
    /// Build the synth.
    pub fn init(&self, device: &Device) -> Synth {
        Synth {
            harmonic: HarmonicConfig::new(self.sample_rate, self.hop)
                .with_amp_resample(self.amp_resample)
                .init(device),
            noise: self.noise.then(|| {
                FilteredNoiseConfig::new(self.hop)
                    .with_window_size(self.noise_window_size)
                    .init(device)
            }),
            reverb: (self.reverb != ReverbMode::Off).then(|| {
                ReverbConfig::new(self.reverb_length)
                    .with_mode(self.reverb)
                    .with_seed(self.seed)
                    .init(device)
            }),
        }
    }
}

/// Harmonic plus filtered noise, then optional reverb.
#[derive(Module, Debug)]
pub struct Synth {
    /// The harmonic branch.
    pub harmonic: Harmonic,
    /// The noise branch, when enabled.
    pub noise: Option<FilteredNoise>,
    /// The reverb, when enabled.
    pub reverb: Option<Reverb>,
}

impl Synth {
    /// Render controls; `seed` selects the noise (use a new one per training step).
    pub fn forward(&self, controls: SynthControls, seed: u64) -> SynthOutput {
        let harmonic =
            self.harmonic
                .forward(controls.f0_hz, controls.amplitude, controls.distribution);
        let noise = match (&self.noise, controls.noise_magnitudes) {
            (Some(synth), Some(mags)) => synth.forward(mags, seed),
            _ => harmonic.zeros_like(),
        };
        let dry = harmonic.clone() + noise.clone();
        let audio = match &self.reverb {
            Some(reverb) => reverb.forward(dry),
            None => dry,
        };
        SynthOutput {
            audio,
            harmonic,
            noise,
        }
    }
}

#[cfg(test)]
mod tests;
