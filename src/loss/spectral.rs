//! Multi-scale spectral loss (DDSP `SpectralLoss`).

use burn::config::Config;
use burn::module::Module;
use burn::signal::{StftOptions, hann_window, stft};
use burn::tensor::ops::PadMode;
use burn::tensor::{Device, Tensor};

use super::SpectralLossMode;

/// Configuration of [`SpectralLoss`].
#[derive(Config, Debug)]
pub struct SpectralLossConfig {
    /// FFT sizes, powers of two (paper: 2048, 1024, 512, 256, 128, 64).
    pub fft_sizes: Vec<usize>,
    /// Hop = `max(1, n_fft / hop_divisor)` (4 = 75% overlap, the paper).
    #[config(default = 4)]
    pub hop_divisor: usize,
    /// L1 (the paper) or L2 differences.
    #[config(default = "SpectralLossMode::L1")]
    pub mode: SpectralLossMode,
    /// `eps` in `log(|X| + eps)`.
    #[config(default = 1e-5)]
    pub log_epsilon: f64,
}

impl SpectralLossConfig {
    /// Build the loss.
    pub fn init(&self, _device: &Device) -> SpectralLoss {
        SpectralLoss {
            fft_sizes: self.fft_sizes.clone(),
            hop_divisor: self.hop_divisor.max(1),
            mode: self.mode,
            log_epsilon: self.log_epsilon,
        }
    }
}

/// Magnitude spectrograms of a signal at every scale, with their logs. Computed once for a
/// target (no gradient) and reusable across steps when the data is fixed.
#[derive(Clone, Debug)]
pub struct Spectrograms {
    /// `|X|` per scale: `[B, frames, n_fft/2 + 1]`.
    pub magnitudes: Vec<Tensor<3>>,
    /// `log(|X| + eps)` per scale.
    pub log_magnitudes: Vec<Tensor<3>>,
}

/// The two unweighted terms, each summed over scales: `[1]` tensors.
#[derive(Clone, Debug)]
pub struct SpectralTerms {
    /// `sum_scales mean |X - Y|` (or squared, L2).
    pub magnitude: Tensor<1>,
    /// `sum_scales mean |log(X + eps) - log(Y + eps)|` (or squared, L2).
    pub log_magnitude: Tensor<1>,
}

/// Multi-scale spectral loss: for each FFT size, periodic-Hann STFT with frames starting at
/// 0 and the end zero-padded (TensorFlow's `pad_end=True`, as magenta), a magnitude term and a
/// log-magnitude term, means over batch, frames and bins, summed over scales. With L1 and both
/// weights 1 its value is comparable with magenta's `SpectralLoss`.
#[derive(Module, Debug)]
pub struct SpectralLoss {
    #[module(skip)]
    fft_sizes: Vec<usize>,
    #[module(skip)]
    hop_divisor: usize,
    #[module(skip)]
    mode: SpectralLossMode,
    #[module(skip)]
    log_epsilon: f64,
}

/// Power spectra `|X|^2` `[B, frames, n_fft/2 + 1]` of frames starting every `hop` samples at
/// sample 0 (no padding: the caller pads), periodic Hann window.
pub(crate) fn power_spectrogram(audio: Tensor<2>, n_fft: usize, hop: usize) -> Tensor<3> {
    let window = hann_window(n_fft, true, &audio.device());
    let options = StftOptions {
        n_fft,
        hop_length: hop,
        win_length: None,
        center: false,
        onesided: true,
    };
    let s = stft(audio, Some(window), options); // [B, frames, bins, 2]
    let [b, f, bins, _] = s.dims();
    s.powf_scalar(2.0).sum_dim(3).reshape([b, f, bins])
}

/// Magnitude STFT `[B, frames, n_fft/2 + 1]` with `frames = ceil(N / hop)`: frame `i` starts
/// at sample `i * hop`, the end is zero-padded, periodic Hann window.
pub fn magnitude_spectrogram(audio: Tensor<2>, n_fft: usize, hop: usize) -> Tensor<3> {
    let [_, n] = audio.dims();
    let frames = n.div_ceil(hop).max(1);
    let padded_len = (frames - 1) * hop + n_fft;
    let audio = if padded_len > n {
        audio.pad([(0, 0), (0, padded_len - n)], PadMode::Constant(0.0))
    } else {
        audio
    };
    power_spectrogram(audio, n_fft, hop)
        .add_scalar(1e-12)
        .sqrt()
}

impl SpectralLoss {
    /// The FFT sizes.
    pub fn fft_sizes(&self) -> &[usize] {
        &self.fft_sizes
    }

    /// Hop for an FFT size.
    pub fn hop(&self, n_fft: usize) -> usize {
        (n_fft / self.hop_divisor).max(1)
    }

    /// Spectrograms of `audio` at every scale (keeps the autodiff graph).
    pub fn spectrograms(&self, audio: Tensor<2>) -> Spectrograms {
        let magnitudes: Vec<Tensor<3>> = self
            .fft_sizes
            .iter()
            .map(|&n| magnitude_spectrogram(audio.clone(), n, self.hop(n)))
            .collect();
        let log_magnitudes = magnitudes
            .iter()
            .map(|m| m.clone().add_scalar(self.log_epsilon).log())
            .collect();
        Spectrograms {
            magnitudes,
            log_magnitudes,
        }
    }

    /// Target spectrograms, detached from any graph: compute once per batch (or once for
    /// fixed data) and pass to [`SpectralLoss::forward_with_target`].
    pub fn target_spectrograms(&self, target: Tensor<2>) -> Spectrograms {
        let s = self.spectrograms(target.detach());
        Spectrograms {
            magnitudes: s.magnitudes.into_iter().map(|t| t.detach()).collect(),
            log_magnitudes: s.log_magnitudes.into_iter().map(|t| t.detach()).collect(),
        }
    }

    fn difference(&self, a: Tensor<3>, b: Tensor<3>) -> Tensor<1> {
        let d = a - b;
        let d = match self.mode {
            SpectralLossMode::L1 => d.abs(),
            SpectralLossMode::L2 => d.powf_scalar(2.0),
        };
        d.mean().reshape([1])
    }

    /// Both terms for a prediction against precomputed target spectrograms.
    pub fn forward_with_target(
        &self,
        prediction: Tensor<2>,
        target: &Spectrograms,
    ) -> SpectralTerms {
        let device = prediction.device();
        let pred = self.spectrograms(prediction);
        let mut magnitude = Tensor::<1>::zeros([1], &device);
        let mut log_magnitude = Tensor::<1>::zeros([1], &device);
        for i in 0..self.fft_sizes.len() {
            magnitude = magnitude
                + self.difference(pred.magnitudes[i].clone(), target.magnitudes[i].clone());
            log_magnitude = log_magnitude
                + self.difference(
                    pred.log_magnitudes[i].clone(),
                    target.log_magnitudes[i].clone(),
                );
        }
        SpectralTerms {
            magnitude,
            log_magnitude,
        }
    }

    /// Both terms for a prediction against a target signal.
    pub fn forward(&self, prediction: Tensor<2>, target: Tensor<2>) -> SpectralTerms {
        let target = self.target_spectrograms(target);
        self.forward_with_target(prediction, &target)
    }
}
