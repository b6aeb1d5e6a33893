//! Filtered-noise synthesizer and the scaling of its raw controls.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::dsp;

/// How raw network outputs become noise band magnitudes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum NoiseScaling {
    /// The paper: `exp_sigmoid(raw + initial_bias)` per band.
    ExpSigmoid,
    /// The original tool: a gain `sigmoid(raw_0)`, times `sigmoid(raw_1..)` per band when the
    /// noise is filtered (`bands > 0`), else white noise times the gain.
    SigmoidGain,
}

/// Configuration of [`FilteredNoise`].
#[derive(Config, Debug)]
pub struct FilteredNoiseConfig {
    /// Samples per control frame.
    pub hop: usize,
    /// Filter bands from 0 Hz to Nyquist (`SigmoidGain`: 0 = unfiltered white noise).
    #[config(default = 65)]
    pub bands: usize,
    /// How raw controls are scaled ([`FilteredNoise::get_controls`]).
    #[config(default = "NoiseScaling::ExpSigmoid")]
    pub scaling: NoiseScaling,
    /// FIR taps per frame; 0 uses the full `2 (bands - 1)` (DDSP's default rule).
    #[config(default = 0)]
    pub window_size: usize,
    /// `ExpSigmoid`: bias added to raw magnitudes (DDSP's `initial_bias`; -5 starts the noise
    /// quiet).
    #[config(default = -5.0)]
    pub initial_bias: f64,
}

impl FilteredNoiseConfig {
    /// Raw values per frame the decoder must provide.
    pub fn raw_channels(&self) -> usize {
        match self.scaling {
            NoiseScaling::ExpSigmoid => self.bands,
            NoiseScaling::SigmoidGain => 1 + self.bands,
        }
    }

    /// Build the synthesizer (it has no trainable parameters).
    pub fn init(&self, _device: &Device) -> FilteredNoise {
        FilteredNoise {
            hop: self.hop,
            window_size: self.window_size,
            scaling: self.scaling,
            initial_bias: self.initial_bias,
        }
    }
}

/// Uniform white noise filtered frame by frame by linear-phase FIR filters whose magnitude
/// responses are the controls: `magnitudes: [B, F, M]` (M bands from 0 Hz to Nyquist) ->
/// `[B, F * hop]`. The noise comes from a seeded host generator, so the output is the same on
/// every device for the same seed.
#[derive(Module, Debug)]
pub struct FilteredNoise {
    #[module(skip)]
    hop: usize,
    #[module(skip)]
    pub(super) window_size: usize,
    #[module(skip)]
    pub(super) scaling: NoiseScaling,
    #[module(skip)]
    pub(super) initial_bias: f64,
}

impl FilteredNoise {
    /// DDSP's `get_controls`: band magnitudes `[B, F, M]` from raw values `[B, F, raw]`
    /// ([`FilteredNoiseConfig::raw_channels`]), per [`NoiseScaling`].
    pub fn get_controls(&self, raw: Tensor<3>) -> Tensor<3> {
        match self.scaling {
            NoiseScaling::ExpSigmoid => dsp::exp_sigmoid(raw.add_scalar(self.initial_bias)),
            NoiseScaling::SigmoidGain => {
                let [b, f, m] = raw.dims();
                let gain = sigmoid(raw.clone().slice([0..b, 0..f, 0..1]));
                if m > 1 {
                    gain * sigmoid(raw.slice([0..b, 0..f, 1..m]))
                } else {
                    gain
                }
            }
        }
    }

    /// Render `[B, F * hop]` filtered noise from magnitudes `[B, F, M]`.
    pub fn forward(&self, magnitudes: Tensor<3>, seed: u64) -> Tensor<2> {
        let [b, f, m] = magnitudes.dims();
        let noise = dsp::uniform_noise(b, f * self.hop, seed, 0, &magnitudes.device());
        self.filter(noise, magnitudes, m)
    }

    /// Filter given audio `[B, F * hop]` with the per-frame magnitude responses.
    pub fn filter(&self, audio: Tensor<2>, magnitudes: Tensor<3>, n_bands: usize) -> Tensor<2> {
        let irs = dsp::frequency_impulse_response(magnitudes, self.window_size);
        dsp::frame_convolve(audio, irs, self.delay(n_bands))
    }

    /// The filters' delay for `n_bands` magnitudes, samples: half their taps. [`Self::forward`]
    /// compensates it (its output is centred); [`Self::forward_full`] does not.
    pub fn delay(&self, n_bands: usize) -> usize {
        dsp::fir_window_size(n_bands, self.window_size) / 2
    }

    /// Frames of a longer signal: the noise from sample `offset` of the seeded stream, filtered
    /// and overlap-added without compensating the delay: `[B, F * hop + taps - 1]`, the last
    /// `taps - 1` samples being the tail later frames add to.
    pub fn forward_full(&self, magnitudes: Tensor<3>, seed: u64, offset: u64) -> Tensor<2> {
        let [b, f, _] = magnitudes.dims();
        let noise = dsp::uniform_noise(b, f * self.hop, seed, offset, &magnitudes.device());
        let irs = dsp::frequency_impulse_response(magnitudes, self.window_size);
        dsp::frame_convolve_full(noise, irs)
    }
}
