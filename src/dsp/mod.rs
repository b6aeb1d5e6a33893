//! Pure, differentiable tensor functions: the DSP core that synthesizers, effects, losses and
//! decoders are built from (the counterpart of magenta `ddsp/core.py`).
//!
//! Conventions: frame-rate controls are `[batch, frames, channels]`, audio is
//! `[batch, samples]`, and frame `i` sits at sample `i * hop` (frames are centred on their
//! sample, as the feature extractor produces them). Every function works on any device and
//! under autodiff, composed of tensor ops; on the CPU backend the oscillator bank runs as one
//! host operation instead ([`oscillator`]), with the same maths.

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

/// Scalar forms of the element-wise formulas, for the host (streaming) path; each equals its
/// tensor form (tested).
pub mod scalar {
    /// `ln(sigmoid(x))`, stable for any `x`.
    pub fn log_sigmoid(x: f32) -> f32 {
        if x >= 0.0 {
            -(-x).exp().ln_1p()
        } else {
            x - x.exp().ln_1p()
        }
    }

    /// `1 / (1 + exp(-x))`.
    pub fn sigmoid(x: f32) -> f32 {
        1.0 / (1.0 + (-x).exp())
    }

    /// `ln(1 + exp(x))`, stable for any `x`.
    pub fn softplus(x: f32) -> f32 {
        x.max(0.0) + (-x.abs()).exp().ln_1p()
    }

    /// One frame's phase advance in fixed point, as [`super::frame_phases`] computes it:
    /// `round(frac((hop f + (next - f) (hop - 1) / 2) / sr) 2^PHASE_BITS)` in `f32`, ties to
    /// even; consecutive advances summed modulo `2^PHASE_BITS` are the frame phases.
    pub fn frame_advance(f0: f32, next: f32, hop: usize, sample_rate: f64) -> i64 {
        let t = (f0 * hop as f32 + (next - f0) * ((hop as f64 - 1.0) / 2.0) as f32)
            / sample_rate as f32;
        ((t - t.floor()) * super::PHASE_ONE as f32).round_ties_even() as i64
    }

    /// [`super::exp_sigmoid`]: `2 sigmoid(x)^ln(10) + 1e-7`.
    pub fn exp_sigmoid(x: f32) -> f32 {
        2.0 * (std::f32::consts::LN_10 * log_sigmoid(x)).exp() + 1e-7
    }
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

/// Bits of the fixed-point oscillator phase: a phase is `cycles * 2^PHASE_BITS`, wrapped to
/// `[0, 2^PHASE_BITS)` (see [`frame_phases`]).
pub const PHASE_BITS: u32 = 24;
/// `2^PHASE_BITS`: one cycle in fixed point.
pub const PHASE_ONE: i64 = 1 << PHASE_BITS;

/// `[B, F, C]` -> `[B, F + 1, C]`: the last frame once more (DDSP's held endpoint).
pub fn hold_last_frame(x: Tensor<3>) -> Tensor<3> {
    let [b, f, c] = x.dims();
    let last = x.clone().slice([0..b, f - 1..f, 0..c]);
    Tensor::cat(vec![x, last], 1)
}

/// Harmonic additive synthesis from frame-rate controls (DDSP `harmonic_synthesis`).
///
/// `f0_hz: [B, F]`, `harmonic_amplitudes: [B, F, K]` (amplitude of harmonic `k` is already
/// `amplitude * distribution_k`) -> `[B, F * hop]`; the last frame is held for its final hop.
/// See [`harmonic_synthesis_from`], which renders pieces of a longer signal.
pub fn harmonic_synthesis(
    f0_hz: Tensor<2>,
    harmonic_amplitudes: Tensor<3>,
    hop: usize,
    sample_rate: f64,
    method: AmpResample,
) -> Tensor<2> {
    let [b, f] = f0_hz.dims();
    let f0 = hold_last_frame(f0_hz.reshape([b, f, 1])).reshape([b, f + 1]);
    let amplitudes = hold_last_frame(harmonic_amplitudes);
    harmonic_synthesis_from(f0, amplitudes, hop, sample_rate, method, None).0
}

/// Fixed-point oscillator phase at the start of each of `F` frames and after the last:
/// `f0_hz: [B, F + 1]` (the frame after the last rendered one included), `phase0: [B, 1]`
/// the phase at frame 0 (0 when `None`) -> `([B, F] starts, [B, 1] end)`.
///
/// Within frame `i` the frequency moves linearly from `f_i` to `f_{i+1}`, so the frame's
/// phase advance is `T_i = (hop f_i + (f_{i+1} - f_i) (hop - 1) / 2) / sr` cycles exactly.
/// Each advance is rounded to `2^-PHASE_BITS` cycles and accumulated in integers, so phases
/// are exact and identical however the frames are split into pieces, at any length (the
/// rounding moves a phase by at most `3e-8` cycles per frame).
pub fn frame_phases(
    f0_hz: Tensor<2>,
    hop: usize,
    sample_rate: f64,
    phase0: Option<Tensor<2, Int>>,
) -> (Tensor<2, Int>, Tensor<2, Int>) {
    let [b, frames] = f0_hz.dims();
    let f = frames - 1;
    let device = f0_hz.device();
    let advance = frac(frame_advances(f0_hz, hop, sample_rate))
        .mul_scalar(PHASE_ONE as f64)
        .round()
        .int();
    let inclusive = wrapped_int_cumsum(advance);
    let phase0 = phase0.unwrap_or_else(|| Tensor::zeros([b, 1], &device));
    let end =
        (inclusive.clone().slice([0..b, f - 1..f]) + phase0.clone()).remainder_scalar(PHASE_ONE);
    let starts = if f > 1 {
        Tensor::cat(
            vec![
                Tensor::zeros([b, 1], &device),
                inclusive.slice([0..b, 0..f - 1]),
            ],
            1,
        )
    } else {
        Tensor::zeros([b, 1], &device)
    } + phase0;
    (starts.remainder_scalar(PHASE_ONE), end)
}

/// Phase advance of each frame in cycles, `f0_hz: [B, F + 1]` -> `[B, F]`:
/// `(hop f_i + (f_{i+1} - f_i) (hop - 1) / 2) / sr` (f0 moving linearly within the frame).
fn frame_advances(f0_hz: Tensor<2>, hop: usize, sample_rate: f64) -> Tensor<2> {
    let [b, frames] = f0_hz.dims();
    let f = frames - 1;
    let current = f0_hz.clone().slice([0..b, 0..f]);
    let next = f0_hz.slice([0..b, 1..f + 1]);
    (current.clone().mul_scalar(hop as f64) + (next - current).mul_scalar((hop as f64 - 1.0) / 2.0))
        .div_scalar(sample_rate)
}

/// Inclusive cumulative sum along the last axis modulo `2^PHASE_BITS`, for values in
/// `[0, 2^PHASE_BITS]`: blocks of 64 keep every partial sum below `2^31`, so any integer
/// backend computes it exactly. `[R, N]` -> `[R, N]`.
fn wrapped_int_cumsum(x: Tensor<2, Int>) -> Tensor<2, Int> {
    let [r, n] = x.dims();
    if n <= CUMSUM_BLOCK {
        return x.cumsum(1).remainder_scalar(PHASE_ONE);
    }
    let nb = n.div_ceil(CUMSUM_BLOCK);
    let device = x.device();
    let x = if nb * CUMSUM_BLOCK > n {
        Tensor::cat(
            vec![x, Tensor::zeros([r, nb * CUMSUM_BLOCK - n], &device)],
            1,
        )
    } else {
        x
    };
    let local = x.reshape([r, nb, CUMSUM_BLOCK]).cumsum(2);
    let totals = local
        .clone()
        .slice([0..r, 0..nb, CUMSUM_BLOCK - 1..CUMSUM_BLOCK])
        .reshape([r, nb])
        .remainder_scalar(PHASE_ONE);
    let inclusive = wrapped_int_cumsum(totals);
    let exclusive = Tensor::cat(
        vec![
            Tensor::zeros([r, 1], &device),
            inclusive.slice([0..r, 0..nb - 1]),
        ],
        1,
    );
    (local + exclusive.unsqueeze_dim::<3>(2))
        .remainder_scalar(PHASE_ONE)
        .reshape([r, nb * CUMSUM_BLOCK])
        .slice([0..r, 0..n])
}

/// Harmonic synthesis of `F` frames continuing a longer signal: `f0_hz: [B, F + 1]` and
/// `harmonic_amplitudes: [B, F + 1, K]` hold the frames to render and the frame after them,
/// which the last hop interpolates towards; `phase: [B, 1]` is the fixed-point phase at the
/// first frame (from the previous piece; 0 when `None`). Returns `[B, F * hop]` and the phase
/// after the last frame. Consecutive pieces render exactly what one call on all frames does.
///
/// f0 moves linearly within a frame, and the phase there is `P_i + sum_{r' <= r} f(r') / sr`
/// in closed form ([`frame_phases`] gives `P_i`); amplitudes are upsampled with `method`.
/// Because harmonic `k` has frequency `k * f0`, its phase is `k` times the fundamental's:
/// `phase_k = 2*pi * frac(k * phase)`. Harmonics at or above Nyquist are silenced sample by
/// sample, so nothing aliases for any f0 or harmonic count. The amplitude crossfade between
/// frames is one batched matmul per frame pair rather than materialising `[B, N, K]`
/// amplitudes, and long or wide inputs are rendered in blocks of frames so that no
/// intermediate exceeds [`MAX_BLOCK_BYTES`] (wgpu limits buffer sizes). Equal to
/// [`oscillator_bank`] on the upsampled envelopes, within `f32` rounding.
pub fn harmonic_synthesis_from(
    f0_hz: Tensor<2>,
    harmonic_amplitudes: Tensor<3>,
    hop: usize,
    sample_rate: f64,
    method: AmpResample,
    phase: Option<Tensor<2, Int>>,
) -> (Tensor<2>, Tensor<2, Int>) {
    harmonic_synthesis_blocked(
        f0_hz,
        harmonic_amplitudes,
        hop,
        sample_rate,
        method,
        phase,
        Bank::Fused,
    )
}

/// How [`harmonic_synthesis_blocked`] renders the bank.
#[derive(Clone, Copy, Debug)]
enum Bank {
    /// [`oscillator::bank`] where it applies (flex), else composed with [`MAX_BLOCK_BYTES`].
    Fused,
    /// Composed tensor ops, in blocks whose sine buffer stays within the given bytes (the
    /// tests' way to run the composed path on flex).
    #[cfg_attr(not(test), allow(dead_code))]
    Composed(usize),
}

/// [`harmonic_synthesis_from`], with the bank rendered as `bank` says.
fn harmonic_synthesis_blocked(
    f0_hz: Tensor<2>,
    harmonic_amplitudes: Tensor<3>,
    hop: usize,
    sample_rate: f64,
    method: AmpResample,
    phase: Option<Tensor<2, Int>>,
    bank: Bank,
) -> (Tensor<2>, Tensor<2, Int>) {
    let [b, frames, k] = harmonic_amplitudes.dims();
    let f = frames - 1;
    let device = f0_hz.device();
    let (starts, end) = frame_phases(f0_hz.clone(), hop, sample_rate, phase);
    // The integer phases carry no gradient; add one with a value of exactly 0: the float
    // running sum of the frame advances minus itself detached.
    let advances = frame_advances(f0_hz.clone(), hop, sample_rate);
    let before = if f > 1 {
        Tensor::cat(
            vec![
                Tensor::zeros([b, 1], &device),
                advances.slice([0..b, 0..f - 1]).cumsum(1),
            ],
            1,
        )
    } else {
        advances.zeros_like()
    };
    let start_cycles = starts.float().div_scalar(PHASE_ONE as f64) // exact: < 2^24
        + (before.clone() - before.detach());
    let current = f0_hz.clone().slice([0..b, 0..f]);
    let slope = f0_hz.slice([0..b, 1..f + 1]) - current.clone();
    let max_block_bytes = match bank {
        Bank::Fused => {
            let fused = oscillator::bank(
                start_cycles.clone(),
                current.clone(),
                slope.clone(),
                harmonic_amplitudes.clone(),
                hop,
                sample_rate,
                method,
            );
            if let Some(audio) = fused {
                return (audio, end);
            }
            MAX_BLOCK_BYTES
        }
        Bank::Composed(bytes) => bytes,
    };
    // Per sample r of a frame: r + 1, r (r + 1) / (2 hop) and r / hop, as [1, 1, hop].
    let row = |v: Vec<f32>| from_vec(v, [1, 1, hop], &device);
    let ramp = row(upsample_weights(hop, AmpResample::Linear));
    let count = row((1..=hop).map(|r| r as f32).collect());
    let triangle = row((0..hop)
        .map(|r| (r * (r + 1)) as f32 / (2 * hop) as f32)
        .collect());
    let ks = harmonic_numbers(k, &device).unsqueeze_dim::<4>(0); // [1, 1, 1, K]
    // [B, F, K, 2]: this frame's and the next frame's amplitudes.
    let pair = Tensor::stack::<4>(
        vec![
            harmonic_amplitudes.clone().slice([0..b, 0..f, 0..k]),
            harmonic_amplitudes.slice([0..b, 1..f + 1, 0..k]),
        ],
        3,
    );
    let w = from_vec(upsample_weights(hop, method), [1, hop, 1], &device);
    let weights = Tensor::cat(vec![w.clone().neg().add_scalar(1.0), w], 2); // [1, hop, 2]
    // The per-sample sines are [B, N, K]; render them in blocks of frames so no buffer exceeds
    // MAX_BLOCK_BYTES (wgpu caps storage buffers, often at 128-256 MiB).
    let per_frame = (b * hop * k * 4).max(1);
    let block = (max_block_bytes / per_frame).clamp(1, f.max(1));
    let mut parts = Vec::with_capacity(f.div_ceil(block));
    for s in (0..f).step_by(block) {
        let len = block.min(f - s);
        let cut = |t: &Tensor<2>| t.clone().slice([0..b, s..s + len]).unsqueeze_dim::<3>(2);
        let (f_i, d_i) = (cut(&current), cut(&slope));
        let within =
            (f_i.clone() * count.clone() + d_i.clone() * triangle.clone()).div_scalar(sample_rate);
        let phase = frac(cut(&start_cycles) + within).unsqueeze_dim::<4>(3); // [B, len, hop, 1]
        let frequency = (f_i + d_i * ramp.clone()).unsqueeze_dim::<4>(3);
        let harmonic_phase = frac(phase * ks.clone());
        let audible = (frequency * ks.clone())
            .lower_elem(sample_rate / 2.0)
            .float();
        let sines =
            (harmonic_phase.mul_scalar(2.0 * PI).sin() * audible).reshape([b * len, hop, k]);
        let amps = pair
            .clone()
            .slice([0..b, s..s + len, 0..k, 0..2])
            .reshape([b * len, k, 2]);
        let y = sines.matmul(amps); // [B*len, hop, 2]
        parts.push((y * weights.clone()).sum_dim(2).reshape([b, len * hop]));
    }
    let audio = match parts.len() {
        0 => Tensor::zeros([b, 0], &device),
        1 => parts.pop().expect("one part"),
        _ => Tensor::cat(parts, 1),
    };
    (audio, end)
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
    frame_convolve_full(audio, irs).slice([0..b, delay..delay + n])
}

/// [`frame_convolve`] without the crop: all `N + L - 1` samples of the overlap-added frames,
/// `[B, N]` -> `[B, N + L - 1]` (the last `L - 1` are the tail the next frames add to).
pub fn frame_convolve_full(audio: Tensor<2>, irs: Tensor<3>) -> Tensor<2> {
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
    overlap_add(y, hop)
}

/// Convolution with one impulse response per batch item (or one shared, `[1, L]`), by FFT.
///
/// `audio: [B, N]`, `ir: [B or 1, L]` -> `[B, N]`: the full convolution cropped to `N`
/// samples starting at `delay` (0 keeps the causal alignment, as for a reverb).
pub fn fft_convolve(audio: Tensor<2>, ir: Tensor<2>, delay: usize) -> Tensor<2> {
    let [b, n] = audio.dims();
    fft_convolve_full(audio, ir).slice([0..b, delay..delay + n])
}

/// The full convolution of [`fft_convolve`]: `[B, N]` with `[B or 1, L]` -> `[B, N + L - 1]`.
pub fn fft_convolve_full(audio: Tensor<2>, ir: Tensor<2>) -> Tensor<2> {
    let [b, n] = audio.dims();
    let l = ir.dims()[1];
    let fft = next_pow2(n + l - 1);
    let x = burn::signal::rfft(audio, 1, Some(fft));
    let h = burn::signal::rfft(ir, 1, Some(fft));
    let (yr, yi) = complex_mul(x, h);
    burn::signal::irfft(yr, yi, 1, Some(fft)).slice([0..b, 0..n + l - 1])
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

/// Longest impulse response of [`biquad_lowpass_kernel`], taps.
pub const BIQUAD_MAX_TAPS: usize = 512;

/// The first [`BIQUAD_MAX_TAPS`] taps of the impulse response of a second-order low-pass
/// (the RBJ audio-EQ cookbook's biquad, bilinear transform with the cutoff prewarped) at
/// `cutoff` cycles per frame (below 0.5) and quality `q`, by running its recursion.
fn biquad_lowpass_response(cutoff: f64, q: f64) -> Vec<f64> {
    let w0 = std::f64::consts::TAU * cutoff;
    let alpha = w0.sin() / (2.0 * q);
    let cos = w0.cos();
    let a0 = 1.0 + alpha;
    let b = [(1.0 - cos) / 2.0, 1.0 - cos, (1.0 - cos) / 2.0].map(|v| v / a0);
    let a = [-2.0 * cos / a0, (1.0 - alpha) / a0];
    let (mut x1, mut x2, mut y1, mut y2) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    (0..BIQUAD_MAX_TAPS)
        .map(|k| {
            let x = if k == 0 { 1.0 } else { 0.0 };
            let y = b[0] * x + b[1] * x1 + b[2] * x2 - a[0] * y1 - a[1] * y2;
            (x2, x1, y2, y1) = (x1, x, y1, y);
            y
        })
        .collect()
}

/// How much of the biquad low-pass's DC gain (1) its first [`BIQUAD_MAX_TAPS`] taps miss:
/// near 0 when the response has died out within them; a low cutoff with a high `q` rings
/// longer, and truncating it would make another filter (what config validation refuses).
pub fn biquad_lowpass_truncation(cutoff: f64, q: f64) -> f64 {
    (1.0 - biquad_lowpass_response(cutoff, q).iter().sum::<f64>()).abs()
}

/// Truncated, renormalised impulse response of the biquad low-pass at `cutoff` cycles per
/// frame and quality `q` (`1/sqrt(2)`: Butterworth, -3 dB at the cutoff; its step response
/// overshoots by about 4%, so a falling control dips slightly below its new value; `q <= 0.5`
/// has no negative taps): the FIR form of its recursion, up to the last tap above `1e-3` of
/// the peak, scaled to a DC gain of exactly 1. Use it where
/// [`biquad_lowpass_truncation`] is small, as validated configs are.
pub fn biquad_lowpass_kernel(cutoff: f64, q: f64) -> Vec<f32> {
    let h = biquad_lowpass_response(cutoff, q);
    let peak = h.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let len = h
        .iter()
        .rposition(|v| v.abs() >= 1e-3 * peak)
        .map_or(1, |i| i + 1);
    let sum: f64 = h[..len].iter().sum();
    h[..len].iter().map(|v| (v / sum) as f32).collect()
}

/// Causal FIR smoothing along frames: `y[t] = sum_k w[k] x[t - k]`, the first frame held
/// before the start. `[B, F, C]` -> `[B, F, C]`; a kernel of at most one tap is the identity.
pub fn causal_smooth(x: Tensor<3>, kernel: &[f32]) -> Tensor<3> {
    causal_smooth_from(x, kernel, None)
}

/// [`causal_smooth`] continuing earlier frames: `history: [B, kernel.len() - 1, C]` are the
/// input frames just before `x` (from the previous piece); without it the first frame is
/// held.
pub fn causal_smooth_from(x: Tensor<3>, kernel: &[f32], history: Option<Tensor<3>>) -> Tensor<3> {
    if kernel.len() <= 1 {
        return x;
    }
    let [b, f, c] = x.dims();
    let l = kernel.len();
    let padded = match history {
        Some(h) => Tensor::cat(vec![h, x], 1)
            .swap_dims(1, 2)
            .reshape([b * c, 1, f + l - 1]),
        None => x
            .swap_dims(1, 2)
            .reshape([b * c, 1, f])
            .pad([(0, 0), (0, 0), (l - 1, 0)], PadMode::Edge),
    };
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

/// Uniform noise in `[-1, 1)`, `[batch, samples]`, starting at sample `offset` of an endless
/// seeded stream per batch row: the value at row `r`, sample `i` depends only on `seed`, `r`
/// and `i` (a counter-based generator), so pieces drawn at consecutive offsets equal one
/// draw, on every device.
pub fn uniform_noise(
    batch: usize,
    samples: usize,
    seed: u64,
    offset: u64,
    device: &Device,
) -> Tensor<2> {
    use rayon::prelude::*;
    let mut values = vec![0f32; batch * samples];
    values
        .par_chunks_mut(samples.max(1))
        .enumerate()
        .for_each(|(row, out)| NoiseStream::new(seed, row).fill(offset, out));
    from_vec(values, [batch, samples], device)
}

/// Row `row` of [`uniform_noise`]'s endless seeded stream, on the host.
#[derive(Clone, Copy, Debug)]
pub struct NoiseStream(u64);

impl NoiseStream {
    /// The stream of batch row `row` for `seed`.
    pub fn new(seed: u64, row: usize) -> Self {
        Self(splitmix64(
            seed ^ splitmix64(row as u64 ^ 0x6a09_e667_f3bc_c908),
        ))
    }

    /// Samples `offset..offset + out.len()` of the stream, uniform in `[-1, 1)`.
    pub fn fill(&self, offset: u64, out: &mut [f32]) {
        for (i, v) in out.iter_mut().enumerate() {
            let bits = splitmix64(self.0.wrapping_add(offset + i as u64)) >> 40; // 24 bits
            *v = bits as f32 * (2.0 / (1u64 << 24) as f32) - 1.0;
        }
    }
}

/// SplitMix64's output function: a bijective mix of 64 bits.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub mod convolver;
pub(crate) mod host;
pub mod oscillator;
#[cfg(test)]
mod tests;
