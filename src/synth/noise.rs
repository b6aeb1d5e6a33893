//! Filtered-noise synthesizer.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::dsp;

/// Configuration of [`FilteredNoise`].
#[derive(Config, Debug)]
pub struct FilteredNoiseConfig {
    /// Samples per control frame.
    pub hop: usize,
    /// FIR taps per frame; 0 uses the full `2 (bands - 1)` (DDSP's default rule).
    #[config(default = 0)]
    pub window_size: usize,
    /// Bias added to raw magnitudes before `exp_sigmoid` in [`FilteredNoise::controls_from_raw`].
    #[config(default = -5.0)]
    pub initial_bias: f64,
}

impl FilteredNoiseConfig {
    /// Build the synthesizer (it has no trainable parameters).
    pub fn init(&self, _device: &Device) -> FilteredNoise {
        FilteredNoise {
            hop: self.hop,
            window_size: self.window_size,
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
    window_size: usize,
    #[module(skip)]
    initial_bias: f64,
}

impl FilteredNoise {
    /// The paper's scaling: `exp_sigmoid(raw + initial_bias)` (bias -5 starts the noise quiet).
    pub fn controls_from_raw(&self, raw_magnitudes: Tensor<3>) -> Tensor<3> {
        dsp::exp_sigmoid(raw_magnitudes.add_scalar(self.initial_bias))
    }

    /// Render `[B, F * hop]` filtered noise from magnitudes `[B, F, M]`.
    pub fn forward(&self, magnitudes: Tensor<3>, seed: u64) -> Tensor<2> {
        let [b, f, m] = magnitudes.dims();
        let noise = dsp::uniform_noise(b, f * self.hop, seed, &magnitudes.device());
        self.filter(noise, magnitudes, m)
    }

    /// Filter given audio `[B, F * hop]` with the per-frame magnitude responses.
    pub fn filter(&self, audio: Tensor<2>, magnitudes: Tensor<3>, n_bands: usize) -> Tensor<2> {
        let taps = dsp::fir_window_size(n_bands, self.window_size);
        let irs = dsp::frequency_impulse_response(magnitudes, self.window_size);
        dsp::frame_convolve(audio, irs, taps / 2)
    }
}
