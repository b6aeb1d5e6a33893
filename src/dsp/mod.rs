//! Pure, differentiable tensor functions: the DSP core that synthesizers, effects, losses and
//! decoders are built from (the counterpart of magenta `ddsp/core.py`).
//!
//! Conventions: frame-rate controls are `[batch, frames, channels]`, audio is
//! `[batch, samples]`, and frame `i` sits at sample `i * hop` (frames are centred on their
//! sample, as the feature extractor produces them). Every function works on any device and
//! under autodiff; none loops over frames or harmonics on the host.

use burn::tensor::activation::log_sigmoid;
use burn::tensor::module::conv1d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::ops::PadMode;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// How frame-rate amplitudes are upsampled to the audio rate (`ampResample` in the config).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum AmpResample {
    /// Linear interpolation between frame centres.
    Linear,
    /// Overlapping Hann windows of `2*hop` (DDSP's "window" method).
    Window,
}

/// MIDI note range used to scale f0: `f0_scaled = hz_to_midi(f0) / F0_RANGE`.
pub const F0_RANGE: f64 = 127.0;
/// Loudness range in dB: `ld_scaled = ld_db / DB_RANGE + 1`.
pub const DB_RANGE: f64 = 80.0;

/// Copy a tensor to the host as `f32` (forces a device sync; use for logs, tests and I/O).
pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.try_into_vec_as::<f32>()
        .expect("tensor readback to f32 failed")
}

/// A float tensor from host values with the given shape.
pub fn from_vec<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// The scaled sigmoid of DDSP: `max_value * sigmoid(x)^ln(exponent) + threshold`.
///
/// Computed as `max_value * exp(ln(exponent) * log_sigmoid(x)) + threshold`, which is exact and
/// keeps gradients finite for large negative `x`.
pub fn exp_sigmoid_with<const D: usize>(
    x: Tensor<D>,
    exponent: f64,
    max_value: f64,
    threshold: f64,
) -> Tensor<D> {
    log_sigmoid(x)
        .mul_scalar(exponent.ln())
        .exp()
        .mul_scalar(max_value)
        .add_scalar(threshold)
}

/// [`exp_sigmoid_with`] with DDSP's defaults: exponent 10, max value 2, threshold 1e-7.
pub fn exp_sigmoid<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    exp_sigmoid_with(x, 10.0, 2.0, 1e-7)
}

/// `12 * log2(f / 440) + 69`; 0 where `f <= 0`.
pub fn hz_to_midi_f64(hz: f64) -> f64 {
    if hz <= 0.0 {
        0.0
    } else {
        12.0 * (hz / 440.0).log2() + 69.0
    }
}

/// `440 * 2^((m - 69) / 12)`.
pub fn midi_to_hz_f64(midi: f64) -> f64 {
    440.0 * 2f64.powf((midi - 69.0) / 12.0)
}

/// Tensor form of [`hz_to_midi_f64`]: `12 * log2(f / 440) + 69`, 0 where `f <= 0`.
pub fn hz_to_midi<const D: usize>(hz: Tensor<D>) -> Tensor<D> {
    let nonpositive = hz.clone().lower_equal_elem(0.0);
    let midi = hz
        .clamp_min(1e-10)
        .div_scalar(440.0)
        .log()
        .mul_scalar(12.0 / std::f64::consts::LN_2)
        .add_scalar(69.0);
    midi.mask_fill(nonpositive, 0.0)
}

/// Tensor form of [`midi_to_hz_f64`].
pub fn midi_to_hz<const D: usize>(midi: Tensor<D>) -> Tensor<D> {
    midi.sub_scalar(69.0)
        .mul_scalar(std::f64::consts::LN_2 / 12.0)
        .exp()
        .mul_scalar(440.0)
}

/// Decoder f0 input: `f0_scaled = hz_to_midi(f0) / 127`.
pub fn scale_f0<const D: usize>(f0_hz: Tensor<D>) -> Tensor<D> {
    hz_to_midi(f0_hz).div_scalar(F0_RANGE)
}

/// Decoder loudness input: `ld_scaled = ld_db / 80 + 1`.
pub fn scale_loudness<const D: usize>(loudness_db: Tensor<D>) -> Tensor<D> {
    loudness_db.div_scalar(DB_RANGE).add_scalar(1.0)
}

/// `[1, 1, K]` tensor of harmonic numbers `1..=K`.
fn harmonic_numbers(k: usize, device: &Device) -> Tensor<3> {
    Tensor::<1, Int>::arange(1..k as i64 + 1, device)
        .float()
        .reshape([1, 1, k])
}

/// Harmonic frequencies `f0 * k` for `k = 1..=K`: `[B, F]` -> `[B, F, K]`.
pub fn harmonic_frequencies(f0_hz: Tensor<2>, n_harmonics: usize) -> Tensor<3> {
    let device = f0_hz.device();
    f0_hz.unsqueeze_dim::<3>(2) * harmonic_numbers(n_harmonics, &device)
}

/// Zero the amplitudes of components whose frequency is at or above Nyquist (`sr / 2`).
pub fn remove_above_nyquist(
    amplitudes: Tensor<3>,
    frequencies: Tensor<3>,
    sample_rate: f64,
) -> Tensor<3> {
    let keep = frequencies.lower_elem(sample_rate / 2.0).float();
    amplitudes * keep
}

/// DDSP's `normalize_harmonics`: remove harmonics at or above Nyquist, then divide by the sum
/// over harmonics (the sum is floored at `1e-7`, so silent frames stay 0).
/// `distribution: [B, F, K]`, `f0_hz: [B, F]`.
pub fn normalize_harmonics(
    distribution: Tensor<3>,
    f0_hz: Tensor<2>,
    sample_rate: f64,
) -> Tensor<3> {
    let k = distribution.dims()[2];
    let d = remove_above_nyquist(distribution, harmonic_frequencies(f0_hz, k), sample_rate);
    let total = d.clone().sum_dim(2).clamp_min(1e-7);
    d / total
}

/// Interpolation weights `w[r]` of the next frame at offset `r` in `0..hop` after a frame:
/// linear `r / hop`, or for the DDSP "window" method (Hann windows of `2*hop`, overlap-added)
/// `sin^2(pi r / (2 hop))`, the raised-cosine crossfade the overlapping windows sum to.
pub fn upsample_weights(hop: usize, method: AmpResample) -> Vec<f32> {
    (0..hop)
        .map(|r| {
            let t = r as f64 / hop as f64;
            match method {
                AmpResample::Linear => t as f32,
                AmpResample::Window => (PI * t / 2.0).sin().powi(2) as f32,
            }
        })
        .collect()
}

/// The frame after each frame, the last frame held: `[B, F, C]` -> `[B, F, C]`.
fn next_frames(x: Tensor<3>) -> Tensor<3> {
    let [b, f, c] = x.dims();
    if f == 1 {
        return x;
    }
    let last = x.clone().slice([0..b, f - 1..f, 0..c]);
    Tensor::cat(vec![x.slice([0..b, 1..f, 0..c]), last], 1)
}

/// Frame-rate controls to audio rate: `[B, F, C]` -> `[B, F * hop, C]`.
///
/// Sample `i*hop + r` is `x[i] * (1 - w[r]) + x[i+1] * w[r]` with the weights of
/// [`upsample_weights`]; the last frame is held for its final hop (DDSP's `add_endpoint`).
pub fn upsample(x: Tensor<3>, hop: usize, method: AmpResample) -> Tensor<3> {
    let [b, f, c] = x.dims();
    let device = x.device();
    let w = from_vec(upsample_weights(hop, method), [1, 1, hop, 1], &device);
    let one_minus = w.clone().neg().add_scalar(1.0);
    let next = next_frames(x.clone()).unsqueeze_dim::<4>(2);
    let out = x.unsqueeze_dim::<4>(2) * one_minus + next * w;
    out.reshape([b, f * hop, c])
}

/// `x - floor(x)`: the fractional part, with gradient 1.
pub fn frac<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.clone() - x.floor()
}

const CUMSUM_BLOCK: usize = 64;

/// Inclusive cumulative sum along the last axis, wrapped to `[0, 1)`: `frac(cumsum(x))`.
///
/// Phases are accumulated in cycles. A plain `f32` cumsum loses precision as the total grows
/// (minutes of audio reach ~10^5 cycles); here the sum is taken in blocks of 64 samples, block
/// totals are wrapped and accumulated the same way recursively, so every partial sum stays
/// small and the result keeps full `f32` precision at any length. `[R, N]` -> `[R, N]`.
pub fn wrapped_cumsum(x: Tensor<2>) -> Tensor<2> {
    let [r, n] = x.dims();
    if n <= CUMSUM_BLOCK {
        return frac(x.cumsum(1));
    }
    let nb = n.div_ceil(CUMSUM_BLOCK);
    let x = x.pad([(0, 0), (0, nb * CUMSUM_BLOCK - n)], PadMode::Constant(0.0));
    let local = x.reshape([r, nb, CUMSUM_BLOCK]).cumsum(2);
    let totals = frac(
        local
            .clone()
            .slice([0..r, 0..nb, CUMSUM_BLOCK - 1..CUMSUM_BLOCK])
            .reshape([r, nb]),
    );
    let inclusive = wrapped_cumsum(totals);
    let exclusive = inclusive
        .slice([0..r, 0..nb - 1])
        .pad([(0, 0), (1, 0)], PadMode::Constant(0.0));
    let out = frac(local + exclusive.unsqueeze_dim::<3>(2));
    out.reshape([r, nb * CUMSUM_BLOCK]).slice([0..r, 0..n])
}

/// General additive oscillator bank (DDSP `oscillator_bank`).
///
/// `frequencies`, `amplitudes`: `[B, N, K]` at audio rate. Components at or above Nyquist are
/// silenced, phase is `2*pi * cumsum(f / sr)` (wrapped, see [`wrapped_cumsum`]) and the output
/// is `sum_k a_k * sin(phase_k)`: `[B, N]`.
pub fn oscillator_bank(
    frequencies: Tensor<3>,
    amplitudes: Tensor<3>,
    sample_rate: f64,
) -> Tensor<2> {
    let [b, n, k] = frequencies.dims();
    let amplitudes = remove_above_nyquist(amplitudes, frequencies.clone(), sample_rate);
    let cycles = frequencies
        .div_scalar(sample_rate)
        .swap_dims(1, 2)
        .reshape([b * k, n]);
    let phase = wrapped_cumsum(cycles).reshape([b, k, n]).swap_dims(1, 2);
    (phase.mul_scalar(2.0 * PI).sin() * amplitudes)
        .sum_dim(2)
        .reshape([b, n])
}

/// Harmonic additive synthesis from frame-rate controls (DDSP `harmonic_synthesis`).
///
/// `f0_hz: [B, F]`, `harmonic_amplitudes: [B, F, K]` (amplitude of harmonic `k` is already
/// `amplitude * distribution_k`) -> `[B, F * hop]`.
///
/// f0 is upsampled linearly, amplitudes with `method`. Because harmonic `k` has frequency
/// `k * f0`, its phase is `k` times the fundamental's, so one wrapped cumulative sum serves all
/// harmonics: `phase_k = 2*pi * frac(k * frac(cumsum(f0 / sr)))`. Harmonics at or above Nyquist
/// are silenced sample by sample, so nothing aliases for any f0 or harmonic count. The
/// amplitude crossfade between frames is done as one batched matmul per frame pair rather than
/// materialising `[B, N, K]` amplitudes, and long or wide inputs are rendered in blocks of
/// frames so that no intermediate exceeds [`MAX_BLOCK_BYTES`] (wgpu limits buffer sizes).
/// Equal to [`oscillator_bank`] on the upsampled envelopes, within `f32` rounding.
pub fn harmonic_synthesis(
    f0_hz: Tensor<2>,
    harmonic_amplitudes: Tensor<3>,
    hop: usize,
    sample_rate: f64,
    method: AmpResample,
) -> Tensor<2> {
    harmonic_synthesis_blocked(
        f0_hz,
        harmonic_amplitudes,
        hop,
        sample_rate,
        method,
        MAX_BLOCK_BYTES,
    )
}

/// [`harmonic_synthesis`] with a given bound on the per-block sine buffer, bytes.
fn harmonic_synthesis_blocked(
    f0_hz: Tensor<2>,
    harmonic_amplitudes: Tensor<3>,
    hop: usize,
    sample_rate: f64,
    method: AmpResample,
    max_block_bytes: usize,
) -> Tensor<2> {
    let [b, f, k] = harmonic_amplitudes.dims();
    let device = f0_hz.device();
    let n = f * hop;
    let f0_up = upsample(f0_hz.unsqueeze_dim::<3>(2), hop, AmpResample::Linear).reshape([b, n]);
    let phase = wrapped_cumsum(f0_up.clone().div_scalar(sample_rate));
    let ks = harmonic_numbers(k, &device);
    // [B, F, K, 2]: this frame's and the next frame's amplitudes.
    let pair = Tensor::stack::<4>(
        vec![
            harmonic_amplitudes.clone(),
            next_frames(harmonic_amplitudes),
        ],
        3,
    );
    let w = from_vec(upsample_weights(hop, method), [1, hop, 1], &device);
    let weights = Tensor::cat(vec![w.clone().neg().add_scalar(1.0), w], 2); // [1, hop, 2]
    // The per-sample sines are [B, N, K]; render them in blocks of frames so no buffer exceeds
    // MAX_BLOCK_BYTES (wgpu caps storage buffers, often at 128-256 MiB).
    let per_frame = (b * hop * k * 4).max(1);
    let block = (max_block_bytes / per_frame).clamp(1, f);
    let mut parts = Vec::with_capacity(f.div_ceil(block));
    for start in (0..f).step_by(block) {
        let len = block.min(f - start);
        let samples = start * hop..(start + len) * hop;
        let harmonic_phase = frac(
            phase
                .clone()
                .slice([0..b, samples.clone()])
                .unsqueeze_dim::<3>(2)
                * ks.clone(),
        );
        let audible = (f0_up.clone().slice([0..b, samples]).unsqueeze_dim::<3>(2) * ks.clone())
            .lower_elem(sample_rate / 2.0)
            .float();
        let sines =
            (harmonic_phase.mul_scalar(2.0 * PI).sin() * audible).reshape([b * len, hop, k]);
        let amps = pair
            .clone()
            .slice([0..b, start..start + len, 0..k, 0..2])
            .reshape([b * len, k, 2]);
        let y = sines.matmul(amps); // [B*len, hop, 2]
        parts.push((y * weights.clone()).sum_dim(2).reshape([b, len * hop]));
    }
    if parts.len() == 1 {
        parts.pop().expect("one part")
    } else {
        Tensor::cat(parts, 1)
    }
}

/// Largest intermediate buffer [`harmonic_synthesis`] creates, bytes (64 MiB).
pub const MAX_BLOCK_BYTES: usize = 64 << 20;

/// Next power of two at or above `n` (at least 1).
pub fn next_pow2(n: usize) -> usize {
    n.max(1).next_power_of_two()
}

/// Host matrix `[M, W]` that maps `M` band magnitudes to a windowed, causal, linear-phase
/// impulse response of `W` taps (see [`frequency_impulse_response`]).
///
/// `T[k, j] = hann_W[j] * c_k / P * cos(2*pi*k*(j - W/2) / P)` with `P = 2 (M - 1)`,
/// `c_0 = c_{M-1} = 1`, other `c_k = 2`, and `hann_W` the periodic Hann window of `W`.
pub fn fir_design_matrix(n_bands: usize, window_size: usize) -> Vec<f32> {
    let p = fir_period(n_bands);
    let w = fir_window_size(n_bands, window_size);
    let centre = (w / 2) as f64;
    let mut t = vec![0f32; n_bands * w];
    for k in 0..n_bands {
        let ck = if k == 0 || k == n_bands - 1 { 1.0 } else { 2.0 };
        for j in 0..w {
            let hann = if w > 1 {
                0.5 - 0.5 * (2.0 * PI * j as f64 / w as f64).cos()
            } else {
                1.0
            };
            let phase = 2.0 * PI * k as f64 * (j as f64 - centre) / p as f64;
            t[k * w + j] = (hann * ck / p as f64 * phase.cos()) as f32;
        }
    }
    t
}

/// Zero-phase impulse-response length for `n_bands` magnitudes: `2 (M - 1)` (2 for one band).
pub fn fir_period(n_bands: usize) -> usize {
    (2 * n_bands.saturating_sub(1)).max(2)
}

/// The taps of [`frequency_impulse_response`]: `window_size`, or the full period when it is 0
/// or larger than the period (DDSP's rule).
pub fn fir_window_size(n_bands: usize, window_size: usize) -> usize {
    let p = fir_period(n_bands);
    if window_size == 0 || window_size > p {
        p
    } else {
        window_size
    }
}

/// DDSP's `frequency_impulse_response`: per-frame linear-phase FIR filters from magnitudes.
///
/// `magnitudes: [B, F, M]` sample the response at `k * sr / (2 (M - 1))`, `k = 0..M`. The
/// zero-phase response is `irfft(magnitudes)` (length `P = 2 (M - 1)`), windowed by a Hann
/// window of `W` taps ([`fir_window_size`]) centred on time 0, and shifted to be causal with its
/// centre at tap `W / 2` (the filter delay, which [`frame_convolve`] compensates). Computed
/// as one matmul with [`fir_design_matrix`], so any band count works (no power-of-two FFT
/// constraint). Returns `[B, F, W]`.
pub fn frequency_impulse_response(magnitudes: Tensor<3>, window_size: usize) -> Tensor<3> {
    let [b, f, m] = magnitudes.dims();
    let w = fir_window_size(m, window_size);
    let t = from_vec(
        fir_design_matrix(m, window_size),
        [m, w],
        &magnitudes.device(),
    );
    magnitudes.reshape([b * f, m]).matmul(t).reshape([b, f, w])
}

/// Overlap-add: frames `[B, F, L]` placed every `hop` samples -> `[B, (F - 1) * hop + L]`.
pub fn overlap_add(frames: Tensor<3>, hop: usize) -> Tensor<2> {
    let [b, f, l] = frames.dims();
    let s = l.div_ceil(hop);
    let frames = frames.pad([(0, 0), (0, 0), (0, s * hop - l)], PadMode::Constant(0.0));
    let parts = frames.reshape([b, f, s, hop]);
    let mut out: Option<Tensor<3>> = None;
    for i in 0..s {
        let part = parts
            .clone()
            .slice([0..b, 0..f, i..i + 1, 0..hop])
            .reshape([b, f, hop])
            .pad([(0, 0), (i, s - 1 - i), (0, 0)], PadMode::Constant(0.0));
        out = Some(match out {
            Some(acc) => acc + part,
            None => part,
        });
    }
    let out = out
        .expect("at least one segment")
        .reshape([b, (f + s - 1) * hop]);
    out.slice([0..b, 0..(f - 1) * hop + l])
}

/// `(ar + i ai) * (br + i bi)` elementwise, as `(real, imaginary)`.
fn complex_mul<const D: usize>(
    (ar, ai): (Tensor<D>, Tensor<D>),
    (br, bi): (Tensor<D>, Tensor<D>),
) -> (Tensor<D>, Tensor<D>) {
    (
        ar.clone() * br.clone() - ai.clone() * bi.clone(),
        ar * bi + ai * br,
    )
}

/// Time-varying FIR filtering (DDSP `fft_convolve` with per-frame responses).
///
/// `audio: [B, N]` is cut into `F` non-overlapping frames of `hop = N / F` samples; frame `i`
/// is convolved with `irs[:, i]` (`[B, F, L]`) by zero-padded FFT, and the results are
/// overlap-added. The output is cropped to `N` samples starting at `delay` (pass the filter's
/// delay, `L / 2` for [`frequency_impulse_response`], to compensate it). `N` must be a
/// multiple of `F`.
pub fn frame_convolve(audio: Tensor<2>, irs: Tensor<3>, delay: usize) -> Tensor<2> {
    let [b, n] = audio.dims();
    let [_, f, l] = irs.dims();
    assert!(
        f > 0 && n % f == 0,
        "frame_convolve: {n} samples do not split into {f} frames"
    );
    let hop = n / f;
    let fft = next_pow2(hop + l - 1);
    let frames = audio.reshape([b, f, hop]);
    let x = burn::signal::rfft(frames, 2, Some(fft));
    let h = burn::signal::rfft(irs, 2, Some(fft));
    let (yr, yi) = complex_mul(x, h);
    let y = burn::signal::irfft(yr, yi, 2, Some(fft)).slice([0..b, 0..f, 0..hop + l - 1]);
    let out = overlap_add(y, hop);
    out.slice([0..b, delay..delay + n])
}

/// Convolution with one impulse response per batch item (or one shared, `[1, L]`), by FFT.
///
/// `audio: [B, N]`, `ir: [B or 1, L]` -> `[B, N]`: the full convolution cropped to `N`
/// samples starting at `delay` (0 keeps the causal alignment, as for a reverb).
pub fn fft_convolve(audio: Tensor<2>, ir: Tensor<2>, delay: usize) -> Tensor<2> {
    let [b, n] = audio.dims();
    let l = ir.dims()[1];
    let fft = next_pow2(n + l - 1);
    let x = burn::signal::rfft(audio, 1, Some(fft));
    let h = burn::signal::rfft(ir, 1, Some(fft));
    let (yr, yi) = complex_mul(x, h);
    burn::signal::irfft(yr, yi, 1, Some(fft)).slice([0..b, delay..delay + n])
}

/// Truncated, renormalised one-pole impulse response `(1 - a) a^k`, `k = 0, 1, ...` until
/// `a^k < 1e-3` (at most 512 taps): the FIR form of `y[t] = a y[t-1] + (1 - a) x[t]`.
pub fn onepole_kernel(a: f64) -> Vec<f32> {
    let len = if a <= 0.0 {
        1
    } else {
        ((1e-3f64.ln() / a.ln()).ceil() as usize).clamp(1, 512)
    };
    let w: Vec<f64> = (0..len).map(|k| (1.0 - a) * a.powi(k as i32)).collect();
    let sum: f64 = w.iter().sum();
    w.into_iter().map(|v| (v / sum) as f32).collect()
}

/// Causal FIR smoothing along frames: `y[t] = sum_k w[k] x[t - k]`, the first frame held
/// before the start. `[B, F, C]` -> `[B, F, C]`; a kernel of at most one tap is the identity.
pub fn causal_smooth(x: Tensor<3>, kernel: &[f32]) -> Tensor<3> {
    if kernel.len() <= 1 {
        return x;
    }
    let [b, f, c] = x.dims();
    let l = kernel.len();
    let flat = x.swap_dims(1, 2).reshape([b * c, 1, f]);
    let padded = flat.pad([(0, 0), (0, 0), (l - 1, 0)], PadMode::Edge);
    // conv1d correlates, so the kernel is reversed.
    let reversed: Vec<f32> = kernel.iter().rev().copied().collect();
    let weight = from_vec(reversed, [1, 1, l], &padded.device());
    let options = ConvOptions {
        stride: [1],
        padding: [(0, 0)],
        dilation: [1],
        groups: 1,
    };
    conv1d(padded, weight, None, options)
        .reshape([b, c, f])
        .swap_dims(1, 2)
}

/// Uniform noise in `[-1, 1)` of shape `[batch, samples]` from a seeded generator on the host,
/// so the same seed gives the same noise on every device.
pub fn uniform_noise(batch: usize, samples: usize, seed: u64, device: &Device) -> Tensor<2> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let values: Vec<f32> = (0..batch * samples)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    from_vec(values, [batch, samples], device)
}

#[cfg(test)]
mod tests;
