//! Multi-scale spectral loss (DDSP `SpectralLoss`).

use burn::config::Config;
use burn::module::Module;
use burn::signal::{StftOptions, hann_window, stft};
use burn::tensor::ops::PadMode;
use burn::tensor::{Device, Tensor};

use super::SpectralLossMode;
use serde::{Deserialize, Serialize};

mod fused;
#[cfg(test)]
pub(crate) use fused::terms as fused_terms;

/// How the log-magnitude term takes logarithms (`spectralLogForm`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum SpectralLogForm {
    /// `log(|X| + eps)` (the original tool).
    PlusEps,
    /// The `safe_log` of magenta's `SpectralLoss`: `log(|X|)`, with `|X| <= 0` replaced by
    /// `eps`. (This differs from `log(max(|X|, eps))`: bins quieter than `eps` count with
    /// their own log; magenta's reference values follow this form.)
    SafeLog,
    /// `log(max(|X|, eps))`: every bin quieter than `eps` counts as `eps`.
    MaxEps,
}

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
    /// `eps` of the logarithm.
    #[config(default = 1e-5)]
    pub log_epsilon: f64,
    /// `log(|X| + eps)` or magenta's `log(max(|X|, eps))`.
    #[config(default = "SpectralLogForm::PlusEps")]
    pub log_form: SpectralLogForm,
    /// Added to `|X|^2` before the square root so gradients stay finite where a spectrum is
    /// 0; 0 computes `|X|` exactly (metrics, which need no gradient).
    #[config(default = 1e-12)]
    pub power_floor: f64,
}

impl SpectralLossConfig {
    /// Build the loss.
    pub fn init(&self, _device: &Device) -> SpectralLoss {
        SpectralLoss {
            fft_sizes: self.fft_sizes.clone(),
            hop_divisor: self.hop_divisor.max(1),
            mode: self.mode,
            log_epsilon: self.log_epsilon,
            log_form: self.log_form,
            power_floor: self.power_floor,
        }
    }
}

/// Magnitude spectrograms of a signal at every scale, with their logs. Computed once for a
/// target (no gradient) and reusable across steps when the data is fixed.
#[derive(Clone, Debug)]
pub struct Spectrograms {
    /// `|X|` per scale: `[B, frames, n_fft/2 + 1]`.
    pub magnitudes: Vec<Tensor<3>>,
    /// The logarithm of `|X|` per scale (see [`SpectralLogForm`]).
    pub log_magnitudes: Vec<Tensor<3>>,
}

impl Spectrograms {
    /// Bytes these spectrograms hold (f32).
    pub fn bytes(&self) -> usize {
        self.magnitudes
            .iter()
            .chain(&self.log_magnitudes)
            .map(|t| t.dims().iter().product::<usize>() * 4)
            .sum()
    }

    /// The spectrograms of several signals, stacked along the batch axis in order.
    pub fn cat(items: Vec<Spectrograms>) -> Spectrograms {
        let scales = items.first().map_or(0, |s| s.magnitudes.len());
        let stack = |get: fn(&Spectrograms) -> &Vec<Tensor<3>>| {
            (0..scales)
                .map(|i| Tensor::cat(items.iter().map(|s| get(s)[i].clone()).collect(), 0))
                .collect()
        };
        Spectrograms {
            magnitudes: stack(|s| &s.magnitudes),
            log_magnitudes: stack(|s| &s.log_magnitudes),
        }
    }

    /// The spectrograms of batch item `i`.
    pub fn item(&self, i: usize) -> Spectrograms {
        let pick = |v: &Vec<Tensor<3>>| {
            v.iter()
                .map(|t| {
                    let [_, f, b] = t.dims();
                    t.clone().slice([i..i + 1, 0..f, 0..b])
                })
                .collect()
        };
        Spectrograms {
            magnitudes: pick(&self.magnitudes),
            log_magnitudes: pick(&self.log_magnitudes),
        }
    }
}

/// The two unweighted terms, each summed over scales: `[1]` tensors.
#[derive(Clone, Debug)]
pub struct SpectralTerms {
    /// `sum_scales mean |X - Y|` (or squared, L2).
    pub magnitude: Tensor<1>,
    /// `sum_scales mean |log X - log Y|` (or squared, L2), logarithms per
    /// [`SpectralLogForm`].
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
    #[module(skip)]
    log_form: SpectralLogForm,
    #[module(skip)]
    power_floor: f64,
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
/// at sample `i * hop`, the end is zero-padded, periodic Hann window (TensorFlow's
/// `stft(pad_end=True)`, as magenta's `compute_mag`). `sqrt(|X|^2 + 1e-12)`, so gradients stay
/// finite; see [`magnitude_spectrogram_floored`].
pub fn magnitude_spectrogram(audio: Tensor<2>, n_fft: usize, hop: usize) -> Tensor<3> {
    magnitude_spectrogram_floored(audio, n_fft, hop, 1e-12)
}

/// [`magnitude_spectrogram`] as `sqrt(|X|^2 + floor)`; a floor of 0 gives `|X|` exactly.
pub fn magnitude_spectrogram_floored(
    audio: Tensor<2>,
    n_fft: usize,
    hop: usize,
    floor: f64,
) -> Tensor<3> {
    let [_, n] = audio.dims();
    let frames = n.div_ceil(hop).max(1);
    let padded_len = (frames - 1) * hop + n_fft;
    let audio = if padded_len > n {
        audio.pad([(0, 0), (0, padded_len - n)], PadMode::Constant(0.0))
    } else {
        audio
    };
    let power = power_spectrogram(audio, n_fft, hop);
    if floor > 0.0 {
        power.add_scalar(floor).sqrt()
    } else {
        power.sqrt()
    }
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
            .map(|&n| {
                magnitude_spectrogram_floored(audio.clone(), n, self.hop(n), self.power_floor)
            })
            .collect();
        let log_magnitudes = magnitudes
            .iter()
            .map(|m| match self.log_form {
                SpectralLogForm::PlusEps => m.clone().add_scalar(self.log_epsilon).log(),
                SpectralLogForm::SafeLog => {
                    let zero = m.clone().lower_equal_elem(0.0);
                    m.clone().mask_fill(zero, self.log_epsilon).log()
                }
                SpectralLogForm::MaxEps => m.clone().clamp_min(self.log_epsilon).log(),
            })
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
        if let Some(terms) = fused::terms(self, prediction.clone(), target) {
            return terms;
        }
        self.composed_terms(prediction, target)
    }

    /// [`Self::forward_with_target`] from tensor ops (any device).
    pub(crate) fn composed_terms(
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

    /// Both terms per batch item, `([B], [B])`: each item's mean over frames and bins, summed
    /// over scales (their mean over items is [`Self::forward_with_target`]'s value).
    pub fn per_item(&self, prediction: Tensor<2>, target: &Spectrograms) -> (Tensor<1>, Tensor<1>) {
        let [b, _] = prediction.dims();
        let pred = self.spectrograms(prediction);
        let per_item = |a: Tensor<3>, t: Tensor<3>| {
            let d = a - t;
            let d = match self.mode {
                SpectralLossMode::L1 => d.abs(),
                SpectralLossMode::L2 => d.powf_scalar(2.0),
            };
            d.reshape([b as i32, -1]).mean_dim(1).reshape([b])
        };
        let mut magnitude: Option<Tensor<1>> = None;
        let mut log_magnitude: Option<Tensor<1>> = None;
        for i in 0..self.fft_sizes.len() {
            let m = per_item(pred.magnitudes[i].clone(), target.magnitudes[i].clone());
            let l = per_item(
                pred.log_magnitudes[i].clone(),
                target.log_magnitudes[i].clone(),
            );
            magnitude = Some(magnitude.map_or(m.clone(), |acc| acc + m));
            log_magnitude = Some(log_magnitude.map_or(l.clone(), |acc| acc + l));
        }
        let zeros = || {
            Tensor::zeros(
                [b],
                &target
                    .magnitudes
                    .first()
                    .map(|m| m.device())
                    .unwrap_or_default(),
            )
        };
        (
            magnitude.unwrap_or_else(zeros),
            log_magnitude.unwrap_or_else(zeros),
        )
    }

    /// Both terms for a prediction against a target signal.
    pub fn forward(&self, prediction: Tensor<2>, target: Tensor<2>) -> SpectralTerms {
        let target = self.target_spectrograms(target);
        self.forward_with_target(prediction, &target)
    }
}
