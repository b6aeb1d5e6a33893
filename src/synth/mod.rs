//! Synthesizers and effects as Burn modules (the counterpart of magenta `ddsp/synths.py` and
//! `effects.py`): [`Harmonic`], [`FilteredNoise`], [`Reverb`], and [`Synth`], which sums the
//! harmonic and noise branches and applies the reverb, each part switchable.
//!
//! Split as in DDSP: [`Synth::get_controls`] scales a decoder's raw outputs ([`RawControls`])
//! into [`SynthControls`] (each synthesizer owns its scaling, then optional causal smoothing),
//! and [`Synth::forward`] renders scaled controls as a pure function of them.

mod frame;
mod frame_synth;
mod harmonic;
mod noise;
mod pieces;
mod residual;
mod reverb;
mod smoothing;

pub use frame::{ControlFrames, FrameControls, RawFrames};
pub use frame_synth::FrameSynth;
pub use harmonic::{Harmonic, HarmonicConfig, HarmonicScaling};
pub use noise::{FilteredNoise, FilteredNoiseConfig, NoiseScaling};
pub use pieces::SynthState;
pub use residual::{ControlResidual, ar_states, ar_step};
pub use reverb::{Reverb, ReverbConfig};
pub use smoothing::{ControlSmoother, ControlSmoothing, SmoothingConfig, SmoothingTarget};

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// Reverb effect (`reverb` in the config).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ReverbMode {
    /// No reverb.
    Off,
    /// Trainable FIR impulse response of `reverbLength` taps.
    Fir,
    /// Exponentially decaying noise with trainable gain and decay.
    ExpDecay,
}

/// A decoder's raw, unscaled outputs at frame rate, as [`Synth::get_controls`] takes them.
#[derive(Clone, Debug)]
pub struct RawControls {
    /// Overall harmonic amplitude: `[B, F, 1]`.
    pub amplitude: Tensor<3>,
    /// Harmonic distribution: `[B, F, K]`.
    pub distribution: Tensor<3>,
    /// Noise: `[B, F, R]`, `R` = [`FilteredNoiseConfig::raw_channels`].
    pub noise: Tensor<3>,
}

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

/// Configuration of [`Synth`]: its parts' configurations.
#[derive(Config, Debug)]
pub struct SynthConfig {
    /// The harmonic branch.
    pub harmonic: HarmonicConfig,
    /// The noise branch (none: no noise).
    pub noise: Option<FilteredNoiseConfig>,
    /// The reverb (none: dry).
    pub reverb: Option<ReverbConfig>,
    /// Causal smoothing of the scaled controls.
    #[config(default = "SmoothingConfig::new()")]
    pub smoothing: SmoothingConfig,
    /// The AR residual path's coefficient `a`: the raw controls are increments of
    /// `s[t] = a s[t-1] + delta[t]` ([`ar_states`]); none: the raw controls are the logits.
    #[config(default = "None")]
    pub residual: Option<f64>,
}

impl SynthConfig {
    /// The paper's synthesizer at a sample rate and frame hop: `exp_sigmoid` harmonic controls
    /// and 65-band filtered noise, linear amplitude upsampling, no reverb.
    pub fn paper(sample_rate: f64, hop: usize) -> Self {
        Self::new(HarmonicConfig::new(sample_rate, hop))
            .with_noise(Some(FilteredNoiseConfig::new(hop)))
    }

    /// Raw noise values per frame a decoder must provide (0 without a noise branch).
    pub fn raw_noise_channels(&self) -> usize {
        self.noise
            .as_ref()
            .map(FilteredNoiseConfig::raw_channels)
            .unwrap_or(0)
    }

    /// Build the synth.
    pub fn init(&self, device: &Device) -> Synth {
        Synth {
            harmonic: self.harmonic.init(device),
            noise: self.noise.as_ref().map(|n| n.init(device)),
            reverb: self.reverb.as_ref().map(|r| r.init(device)),
            smoother: self.smoothing.init(),
            residual: self.residual,
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
    #[module(skip)]
    smoother: ControlSmoother,
    #[module(skip)]
    residual: Option<f64>,
}

impl Synth {
    /// Scale a decoder's raw outputs into controls for `f0_hz: [B, F]` (DDSP's
    /// `get_controls`): each branch's scaling ([`Harmonic::get_controls`],
    /// [`FilteredNoise::get_controls`]), then the configured causal smoothing.
    /// `temperature` is the softmax temperature at this step (softmax-db scaling).
    pub fn get_controls(
        &self,
        raw: RawControls,
        f0_hz: Tensor<2>,
        temperature: f64,
    ) -> SynthControls {
        self.scale(raw, f0_hz, temperature, None)
    }

    /// [`Self::get_controls`] for the next piece of a longer signal: the smoothing continues
    /// the state's earlier frames.
    pub fn get_controls_continued(
        &self,
        raw: RawControls,
        f0_hz: Tensor<2>,
        temperature: f64,
        state: &mut SynthState,
    ) -> SynthControls {
        self.scale(raw, f0_hz, temperature, Some(state))
    }

    fn scale(
        &self,
        raw: RawControls,
        f0_hz: Tensor<2>,
        temperature: f64,
        mut state: Option<&mut SynthState>,
    ) -> SynthControls {
        let [b, f, _] = raw.amplitude.dims();
        let raw = match self.residual {
            Some(a) => {
                let mut states = |x: Tensor<3>, i: usize| {
                    let last = state.as_deref_mut().and_then(|s| s.residual[i].take());
                    let (y, end) = ar_states(x, a, last);
                    if let Some(s) = state.as_deref_mut() {
                        s.residual[i] = Some(end);
                    }
                    y
                };
                RawControls {
                    amplitude: states(raw.amplitude, 0),
                    distribution: states(raw.distribution, 1),
                    noise: states(raw.noise, 2),
                }
            }
            None => raw,
        };
        let (amplitude, distribution) =
            self.harmonic
                .get_controls(raw.amplitude, raw.distribution, f0_hz.clone(), temperature);
        let noise = self.noise.as_ref().map(|n| n.get_controls(raw.noise));
        let mut smooth = |x: Tensor<3>, target: SmoothingTarget| match state.as_deref_mut() {
            Some(s) => self.smoother.apply_continued(x, target, s.history(target)),
            None => self.smoother.apply(x, target),
        };
        let amplitude = smooth(amplitude, SmoothingTarget::HarmonicGain);
        let distribution = smooth(distribution, SmoothingTarget::HarmonicDistribution);
        let noise_magnitudes = noise.map(|n| smooth(n, SmoothingTarget::NoiseGain));
        SynthControls {
            f0_hz,
            amplitude: amplitude.reshape([b, f]),
            distribution,
            noise_magnitudes,
        }
    }

    /// The control smoother.
    pub fn smoother(&self) -> &ControlSmoother {
        &self.smoother
    }

    /// The AR residual path's coefficient, when it is on.
    pub fn residual(&self) -> Option<f64> {
        self.residual
    }

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
