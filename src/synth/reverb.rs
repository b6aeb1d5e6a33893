//! Reverb: a trainable FIR impulse response, or a parametric exponential decay.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::{Device, Distribution, Tensor};

use super::ReverbMode;
use crate::dsp;

/// Configuration of [`Reverb`].
#[derive(Config, Debug)]
pub struct ReverbConfig {
    /// Impulse response length, samples (48000 = 3 s at 16 kHz in the paper).
    pub length: usize,
    /// `fir` (every tap trainable) or `exp-decay` (trainable gain and decay).
    #[config(default = "ReverbMode::Fir")]
    pub mode: ReverbMode,
    /// Add the dry signal to the reverberated one.
    #[config(default = true)]
    pub add_dry: bool,
    /// Seed of the exp-decay noise and of the FIR initialisation.
    #[config(default = 0)]
    pub seed: u64,
}

impl ReverbConfig {
    /// Build the effect. FIR taps start as `N(0, 1e-6)` (DDSP's initialiser); the exp-decay
    /// variant starts at gain `exp_sigmoid(-4)` and decay exponent `2 + e^4`.
    pub fn init(&self, device: &Device) -> Reverb {
        let (ir, gain, decay) = match self.mode {
            ReverbMode::ExpDecay => (
                None,
                Some(Param::from_tensor(Tensor::from_floats([-4.0f32], device))),
                Some(Param::from_tensor(Tensor::from_floats([4.0f32], device))),
            ),
            _ => {
                device.seed(self.seed);
                let ir =
                    Tensor::<1>::random([self.length], Distribution::Normal(0.0, 1e-6), device);
                (Some(Param::from_tensor(ir)), None, None)
            }
        };
        let noise = dsp::uniform_noise(1, self.length, self.seed ^ 0x5eed, 0, device)
            .reshape([self.length]);
        Reverb {
            ir,
            gain,
            decay,
            noise,
            length: self.length,
            add_dry: self.add_dry,
        }
    }
}

/// Convolution reverb applied by FFT, with the first tap masked so the dry path stays the
/// only direct sound (DDSP `Reverb`). `forward: [B, N] -> [B, N]`.
#[derive(Module, Debug)]
pub struct Reverb {
    ir: Option<Param<Tensor<1>>>,
    gain: Option<Param<Tensor<1>>>,
    decay: Option<Param<Tensor<1>>>,
    #[module(skip)]
    noise: Tensor<1>,
    #[module(skip)]
    length: usize,
    #[module(skip)]
    pub(super) add_dry: bool,
}

impl Reverb {
    /// This reverb with the FIR taps `ir` (tests).
    #[cfg(test)]
    pub(crate) fn with_taps(mut self, ir: Tensor<1>) -> Self {
        self.ir = Some(Param::from_tensor(ir));
        self
    }

    /// The current impulse response, first tap zeroed: `[length]`.
    ///
    /// Exp-decay: `exp_sigmoid(gain) * exp(-(2 + exp(decay)) * t) * noise`, `t` from 0 to 1
    /// over the response.
    pub fn impulse_response(&self) -> Tensor<1> {
        let device = self.noise.device();
        let ir = match (&self.ir, &self.gain, &self.decay) {
            (Some(ir), _, _) => ir.val(),
            (None, Some(gain), Some(decay)) => {
                let t = Tensor::<1, burn::tensor::Int>::arange(0..self.length as i64, &device)
                    .float()
                    .div_scalar((self.length - 1).max(1) as f64);
                let rate = decay.val().exp().add_scalar(2.0);
                let envelope = (t * rate).neg().exp();
                envelope * self.noise.clone() * dsp::exp_sigmoid(gain.val())
            }
            _ => unreachable!("a reverb has either taps or gain and decay"),
        };
        let mask = Tensor::<1>::ones([self.length], &device).slice_fill(0..1, 0.0);
        ir * mask
    }

    /// Reverberate `audio: [B, N]`.
    pub fn forward(&self, audio: Tensor<2>) -> Tensor<2> {
        let ir = self.impulse_response().unsqueeze_dim::<2>(0);
        let wet = dsp::fft_convolve(audio.clone(), ir, 0);
        self.mix(audio, wet)
    }

    /// The reverberated part alone, in full: `[B, N]` -> `[B, N + length - 1]`.
    pub fn wet_full(&self, audio: Tensor<2>) -> Tensor<2> {
        dsp::fft_convolve_full(audio, self.impulse_response().unsqueeze_dim::<2>(0))
    }

    /// The output for dry and wet signals of the same length: their sum, or the wet signal
    /// alone when the dry one is not added.
    pub fn mix(&self, dry: Tensor<2>, wet: Tensor<2>) -> Tensor<2> {
        if self.add_dry { dry + wet } else { wet }
    }
}
