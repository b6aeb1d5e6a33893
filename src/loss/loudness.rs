//! Differentiable frame loudness, for the loudness loss.

use burn::signal::hann_window;
use burn::tensor::Tensor;
use burn::tensor::ops::PadMode;

use super::spectral::power_spectrogram;
use crate::dsp::from_vec;
use crate::features::loudness::{LOUDNESS_FLOOR_DB, a_weighting_power};

/// Zero-pad by `n_fft / 2` in front and enough behind for `1 + N / hop` frames centred every
/// `hop` samples: the framing of [`crate::features::loudness::compute_loudness`].
fn centre_pad(audio: Tensor<2>, n_fft: usize, hop: usize) -> Tensor<2> {
    let half = n_fft / 2;
    let [_, n] = audio.dims();
    let needed = (n / hop) * hop + n_fft;
    audio.pad([(0, 0), (half, needed - n - half)], PadMode::Constant(0.0))
}

/// A-weighted loudness in dB, `[B, N]` -> `[B, 1 + N / hop]`; the tensor form of
/// [`crate::features::loudness::compute_loudness`] (same framing, weights, floor).
pub fn loudness_db(audio: Tensor<2>, sample_rate: f64, n_fft: usize, hop: usize) -> Tensor<2> {
    let device = audio.device();
    let power = power_spectrogram(centre_pad(audio, n_fft, hop), n_fft, hop);
    let bins = n_fft / 2 + 1;
    let weights: Vec<f32> = a_weighting_power(n_fft, sample_rate)
        .into_iter()
        .map(|w| w as f32)
        .collect();
    let weighted = power * from_vec(weights, [1, 1, bins], &device);
    let [b, f, _] = weighted.dims();
    weighted
        .mean_dim(2)
        .reshape([b, f])
        .clamp_min(1e-10)
        .log()
        .mul_scalar(10.0 / std::f64::consts::LN_10)
        .clamp_min(LOUDNESS_FLOOR_DB)
}

/// Window-weighted RMS amplitude of the same centred frames, `sqrt(sum (x w)^2 / sum w^2)`:
/// `[B, N]` -> `[B, 1 + N / hop]`.
pub fn frame_rms(audio: Tensor<2>, n_fft: usize, hop: usize) -> Tensor<2> {
    let padded = centre_pad(audio, n_fft, hop);
    let window = hann_window(n_fft, true, &padded.device());
    // Frame by unfolding: [B, frames, n_fft].
    let framed: Tensor<3> = padded.unfold(1, n_fft, hop);
    let [b, f, _] = framed.dims();
    let w = window.reshape([1, 1, n_fft]);
    let energy = (framed * w.clone())
        .powf_scalar(2.0)
        .sum_dim(2)
        .reshape([b, f]);
    let norm = w.powf_scalar(2.0).sum().reshape([1, 1]);
    (energy / norm).add_scalar(1e-12).sqrt()
}
