//! The harmonic oscillator bank of one frame as a host kernel, and the bank over whole signals
//! as one operation on the CPU backend (flex).
//!
//! Composed from tensor ops, the bank materialises `[B, N, K]` phases, sines and masks forward
//! and as many gradients backward. Here each sample's harmonics come from one complex
//! rotation per harmonic (`z_k = z_{k-1} z_1`, with `z_1 = exp(2 pi i phase)` from the phase in
//! `f64`), eight samples side by side, and nothing of size `N * K` is stored: the backward pass
//! recomputes the rotations. [`Oscillator::render`] is also the streaming engine's oscillator,
//! so offline and live rendering share one formula.
//!
//! [`bank`] runs on flex, with or without autodiff; elsewhere it answers `None` and
//! [`super::harmonic_synthesis_from`] composes tensor ops.

use super::host::{all_f32_on_flex, values};
use super::{AmpResample, upsample_weights};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;
use std::f64::consts::TAU;
use std::ops::Range;

/// Samples rendered side by side (one AVX register of `f32`).
const LANES: usize = 8;

/// One frame of the bank: the phase at its first sample, its f0 and the f0 change to the next
/// frame, and the harmonic amplitudes of this frame and the next, which the frame crossfades.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// Phase of the fundamental before the frame's first sample, cycles.
    pub start: f64,
    /// f0 at the frame, Hz.
    pub f0: f32,
    /// Next frame's f0 minus this one's, Hz (f0 moves linearly within the frame).
    pub slope: f32,
    /// Amplitude of each harmonic at this frame, `[K]`.
    pub amplitudes: &'a [f32],
    /// Amplitude of each harmonic at the next frame, `[K]`.
    pub next: &'a [f32],
}

/// The bank's per-frame constants: hop, sample rate and the crossfade weights.
///
/// Sample `r` of a frame (`0 <= r < hop`) has phase
/// `start + ((r + 1) f0 + r (r + 1) / (2 hop) slope) / sr` (the running sum of the linearly
/// moving frequency), frequency `f0 + slope r / hop`, and output
/// `sum_k [k f < sr / 2] sin(2 pi k phase) (a_k (1 - w_r) + a'_k w_r)` with the weights of
/// [`upsample_weights`]: the maths of [`super::harmonic_synthesis_from`].
#[derive(Clone, Debug)]
pub struct Oscillator {
    hop: usize,
    sample_rate: f64,
    /// Amplitude crossfade weight of the next frame per sample, `[hop]`.
    weights: Vec<f32>,
    /// `r / hop`, the frequency ramp, `[hop]`.
    ramp: Vec<f32>,
}

/// `sin` and `cos` of `2 pi x` for turns `x` in `[-0.5, 0.5]`, lane by lane with selects
/// rather than branches and no libm call (where `sin_cos` is one per value): the nearest quarter turn
/// `q` is taken out, and the rest, within `pi / 4`, goes through the Taylor polynomials of
/// degree 9 (sine) and 10 (cosine), whose truncation error there is below 2e-9, far below
/// the f32 the phasors are kept in.
#[inline(always)]
fn sin_cos_turns(x: &[f64; LANES]) -> ([f64; LANES], [f64; LANES]) {
    let (mut sin, mut cos) = ([0.0f64; LANES], [0.0f64; LANES]);
    for j in 0..LANES {
        let q = (4.0 * x[j]).round();
        let t = TAU * (x[j] - 0.25 * q);
        let t2 = t * t;
        let s = t * (1.0 - t2 / 6.0 * (1.0 - t2 / 20.0 * (1.0 - t2 / 42.0 * (1.0 - t2 / 72.0))));
        let c = 1.0
            - t2 / 2.0
                * (1.0 - t2 / 12.0 * (1.0 - t2 / 30.0 * (1.0 - t2 / 56.0 * (1.0 - t2 / 90.0))));
        // Rotate by q quarter turns (q in -2..=2; -2 and 2 are the same half turn).
        let odd = q.abs() == 1.0;
        let (s, c) = if odd { (c, s) } else { (s, c) };
        let s_sign = if q == 2.0 || q == -2.0 || q == -1.0 {
            -1.0
        } else {
            1.0
        };
        let c_sign = if q == 2.0 || q == -2.0 || q == 1.0 {
            -1.0
        } else {
            1.0
        };
        sin[j] = s_sign * s;
        cos[j] = c_sign * c;
    }
    (sin, cos)
}

/// Eight samples' phasor, frequency, crossfade weight and output gradient.
struct Lanes {
    cos: [f32; LANES],
    sin: [f32; LANES],
    freq: [f32; LANES],
    w: [f32; LANES],
    /// Harmonics worth visiting: above this every lane is at or above Nyquist.
    harmonics: usize,
}

impl Lanes {
    /// The next harmonic's phasors: `z_(k+1) = z_k z_1`, lane by lane.
    #[inline(always)]
    fn rotate(&self, zr: &mut [f32; LANES], zi: &mut [f32; LANES]) {
        for j in 0..LANES {
            let re = zr[j] * self.cos[j] - zi[j] * self.sin[j];
            zi[j] = zr[j] * self.sin[j] + zi[j] * self.cos[j];
            zr[j] = re;
        }
    }
}

impl Oscillator {
    /// The bank for frames of `hop` samples at `sample_rate` with amplitude crossfade `method`.
    pub fn new(hop: usize, sample_rate: f64, method: AmpResample) -> Self {
        Self {
            hop,
            sample_rate,
            weights: upsample_weights(hop, method),
            ramp: upsample_weights(hop, AmpResample::Linear),
        }
    }

    /// Samples per frame.
    pub fn hop(&self) -> usize {
        self.hop
    }

    /// Sample rate, Hz.
    pub fn sample_rate(&self) -> f64 {
        self.sample_rate
    }

    /// Phase of sample `r` after the frame's start, cycles.
    fn offset(&self, r: usize, f0: f32, slope: f32) -> f64 {
        let (r, hop) = (r as f64, self.hop as f64);
        ((r + 1.0) * f0 as f64 + r * (r + 1.0) / (2.0 * hop) * slope as f64) / self.sample_rate
    }

    /// The lanes of samples `r0..r0 + n` (`n <= LANES`); idle lanes are silent at phase 0.
    #[inline(always)]
    fn lanes(&self, frame: &Frame, r0: usize, n: usize, k: usize) -> Lanes {
        let nyquist = (self.sample_rate / 2.0) as f32;
        let mut lanes = Lanes {
            cos: [1.0; LANES],
            sin: [0.0; LANES],
            freq: [0.0; LANES],
            w: [0.0; LANES],
            harmonics: 0,
        };
        // Each lane's phase in turns, reduced to [-0.5, 0.5]; idle lanes stay at 0.
        let mut turns = [0.0f64; LANES];
        for (j, t) in turns.iter_mut().enumerate().take(n) {
            let phase = frame.start + self.offset(r0 + j, frame.f0, frame.slope);
            *t = phase - phase.round();
        }
        let (sin, cos) = sin_cos_turns(&turns);
        for j in 0..n {
            lanes.cos[j] = cos[j] as f32;
            lanes.sin[j] = sin[j] as f32;
        }
        for j in 0..n {
            let r = r0 + j;
            let f = frame.f0 + frame.slope * self.ramp[r];
            lanes.freq[j] = f;
            lanes.w[j] = self.weights[r];
            // Harmonic k (from 1) is audible while k f < Nyquist, checked as the tensor path does.
            let audible = if f > 0.0 {
                let mut top = ((nyquist / f) as usize).min(k);
                while top < k && (top + 1) as f32 * f < nyquist {
                    top += 1;
                }
                while top > 0 && top as f32 * f >= nyquist {
                    top -= 1;
                }
                top
            } else {
                k
            };
            lanes.harmonics = lanes.harmonics.max(audible);
        }
        lanes
    }

    /// Render samples `range` (within `0..hop`) of `frame` into `out` (`range.len()` values).
    pub fn render(&self, frame: &Frame, range: Range<usize>, out: &mut [f32]) {
        let k = frame.amplitudes.len();
        assert!(
            range.end <= self.hop && out.len() == range.len() && frame.next.len() == k,
            "oscillator frame: range {range:?} of {}, {} outputs, {k} and {} amplitudes",
            self.hop,
            out.len(),
            frame.next.len()
        );
        #[cfg(target_arch = "x86_64")]
        if super::host::avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA (checked above).
            unsafe { self.render_avx2(frame, range, out) };
            return;
        }
        self.render_body(frame, range, out);
    }

    /// [`Self::render`] compiled for AVX2 and FMA: the eight lanes in one register, `floor`
    /// inline. The same operations in the same order (Rust fuses no multiply-add by itself),
    /// so the same values.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn render_avx2(&self, frame: &Frame, range: Range<usize>, out: &mut [f32]) {
        self.render_body(frame, range, out);
    }

    /// The body of [`Self::render`], inlined into each instruction-set variant.
    #[inline(always)]
    fn render_body(&self, frame: &Frame, range: Range<usize>, out: &mut [f32]) {
        let k = frame.amplitudes.len();
        let nyquist = (self.sample_rate / 2.0) as f32;
        for (chunk, out) in range.clone().step_by(LANES).zip(out.chunks_mut(LANES)) {
            let n = out.len();
            let l = self.lanes(frame, chunk, n, k);
            let (mut zr, mut zi) = (l.cos, l.sin);
            let (mut y0, mut y1) = ([0.0f32; LANES], [0.0f32; LANES]);
            for h in 0..l.harmonics {
                if h > 0 {
                    l.rotate(&mut zr, &mut zi);
                }
                let kf = (h + 1) as f32;
                let (a, b) = (frame.amplitudes[h], frame.next[h]);
                for j in 0..LANES {
                    let s = if l.freq[j] * kf < nyquist { zi[j] } else { 0.0 };
                    y0[j] += a * s;
                    y1[j] += b * s;
                }
            }
            for (j, o) in out.iter_mut().enumerate() {
                *o = y0[j] + (y1[j] - y0[j]) * l.w[j];
            }
        }
    }

    /// The gradient of a whole frame's inputs from `grad`, the gradient of its `hop` outputs:
    /// adds into `d_amplitudes` and `d_next` (`[K]` each) and returns the gradients of
    /// `(start, f0, slope)`. `scratch` holds `2 K LANES` values (any contents).
    fn backward(
        &self,
        frame: &Frame,
        grad: &[f32],
        d_amplitudes: &mut [f32],
        d_next: &mut [f32],
        scratch: &mut [f32],
    ) -> [f32; 3] {
        let k = frame.amplitudes.len();
        let nyquist = (self.sample_rate / 2.0) as f32;
        let (acc0, acc1) = scratch.split_at_mut(k * LANES);
        acc0.fill(0.0);
        acc1.fill(0.0);
        let mut d = [0.0f64; 3];
        for (r0, g) in (0..self.hop).step_by(LANES).zip(grad.chunks(LANES)) {
            let l = self.lanes(frame, r0, g.len(), k);
            let mut g0 = [0.0f32; LANES];
            let mut g1 = [0.0f32; LANES];
            for (j, g) in g.iter().enumerate() {
                g1[j] = g * l.w[j];
                g0[j] = g - g1[j];
            }
            let (mut zr, mut zi) = (l.cos, l.sin);
            let mut d_phase = [0.0f32; LANES];
            for h in 0..l.harmonics {
                if h > 0 {
                    l.rotate(&mut zr, &mut zi);
                }
                let kf = (h + 1) as f32;
                let (a, b) = (frame.amplitudes[h], frame.next[h]);
                let (a0, a1) = (
                    &mut acc0[h * LANES..][..LANES],
                    &mut acc1[h * LANES..][..LANES],
                );
                for j in 0..LANES {
                    let on = if l.freq[j] * kf < nyquist { 1.0 } else { 0.0 };
                    let (s, c) = (zi[j] * on, zr[j] * on);
                    a0[j] += g0[j] * s;
                    a1[j] += g1[j] * s;
                    d_phase[j] += kf * c * (a + (b - a) * l.w[j]);
                }
            }
            for (j, g) in g.iter().enumerate() {
                let dp = (TAU as f32 * g * d_phase[j]) as f64;
                let r = (r0 + j) as f64;
                d[0] += dp;
                d[1] += dp * (r + 1.0) / self.sample_rate;
                d[2] += dp * r * (r + 1.0) / (2.0 * self.hop as f64) / self.sample_rate;
            }
        }
        for h in 0..k {
            d_amplitudes[h] += acc0[h * LANES..][..LANES].iter().sum::<f32>();
            d_next[h] += acc1[h * LANES..][..LANES].iter().sum::<f32>();
        }
        d.map(|v| v as f32)
    }
}

/// The bank over whole signals: `start`, `f0` and `slope` `[B, F]` per frame (see [`Frame`]),
/// `amplitudes: [B, F + 1, K]` (frame `i` crossfades rows `i` and `i + 1`) -> `[B, F * hop]`,
/// differentiable in all four. `None` off flex or for other float types than f32.
pub fn bank(
    start: Tensor<2>,
    f0: Tensor<2>,
    slope: Tensor<2>,
    amplitudes: Tensor<3>,
    hop: usize,
    sample_rate: f64,
    method: AmpResample,
) -> Option<Tensor<2>> {
    let inputs = [&start, &f0, &slope];
    let on_flex = all_f32_on_flex(
        &inputs
            .iter()
            .map(|t| (t.dtype(), t.device()))
            .chain([(amplitudes.dtype(), amplitudes.device())])
            .collect::<Vec<_>>(),
    );
    if !on_flex {
        return None;
    }
    Some(Tensor::from_dispatch(
        <Dispatch as OscillatorBank>::oscillator_bank(
            start.into_dispatch(),
            f0.into_dispatch(),
            slope.into_dispatch(),
            amplitudes.into_dispatch(),
            hop,
            sample_rate,
            method,
        ),
    ))
}

/// The bank as a backend operation: implemented for flex and autodiff over flex.
#[backend_extension(Flex, Autodiff)]
pub trait OscillatorBank: Backend {
    /// See [`bank`].
    fn oscillator_bank(
        start: FloatTensor<Self>,
        f0: FloatTensor<Self>,
        slope: FloatTensor<Self>,
        amplitudes: FloatTensor<Self>,
        hop: usize,
        sample_rate: f64,
        method: AmpResample,
    ) -> FloatTensor<Self>;
}

impl OscillatorBank for Flex {
    fn oscillator_bank(
        start: FloatTensor<Self>,
        f0: FloatTensor<Self>,
        slope: FloatTensor<Self>,
        amplitudes: FloatTensor<Self>,
        hop: usize,
        sample_rate: f64,
        method: AmpResample,
    ) -> FloatTensor<Self> {
        let inputs = Inputs::new([start, f0, slope, amplitudes], hop, sample_rate, method);
        inputs.forward()
    }
}

impl<C: CheckpointStrategy> OscillatorBank for Autodiff<Flex, C> {
    fn oscillator_bank(
        start: FloatTensor<Self>,
        f0: FloatTensor<Self>,
        slope: FloatTensor<Self>,
        amplitudes: FloatTensor<Self>,
        hop: usize,
        sample_rate: f64,
        method: AmpResample,
    ) -> FloatTensor<Self> {
        let nodes = [start.node(), f0.node(), slope.node(), amplitudes.node()];
        let inputs = Inputs::new(
            [
                start.into_primitive(),
                f0.into_primitive(),
                slope.into_primitive(),
                amplitudes.into_primitive(),
            ],
            hop,
            sample_rate,
            method,
        );
        match BankBackward.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let out = inputs.forward();
                prep.finish(inputs, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(inputs.forward()),
        }
    }
}

/// The operation's inputs (flex tensors share their buffers: keeping them copies nothing).
#[derive(Clone, Debug)]
struct Inputs {
    /// start, f0, slope `[B, F]` and amplitudes `[B, F + 1, K]`.
    tensors: [FlexTensor; 4],
    oscillator: Oscillator,
    batch: usize,
    frames: usize,
    harmonics: usize,
}

/// Frames per parallel task (a frame is `hop * K` rotations: too little work alone).
const FRAMES_PER_TASK: usize = 16;

impl Inputs {
    fn new(tensors: [FlexTensor; 4], hop: usize, sample_rate: f64, method: AmpResample) -> Self {
        let s = tensors[0].shape();
        let a = tensors[3].shape();
        let (batch, frames) = (s[0], s[1]);
        assert!(
            tensors[1].shape() == s
                && tensors[2].shape() == s
                && a.len() == 3
                && a[0] == batch
                && a[1] == frames + 1,
            "oscillator bank shapes: start {s:?}, f0 {:?}, slope {:?}, amplitudes {a:?}",
            tensors[1].shape(),
            tensors[2].shape()
        );
        Self {
            harmonics: a[2],
            tensors,
            oscillator: Oscillator::new(hop, sample_rate, method),
            batch,
            frames,
        }
    }

    /// Calls `op(row, frame i, frame)` for every frame of every item, with `row` the flat
    /// frame index `b * F + i`, over threads.
    fn frames<T: Send>(&self, op: impl Fn(usize, &Frame) -> T + Sync) -> Vec<T> {
        let [start, f0, slope, amps] = self.tensors.each_ref().map(values);
        let (f, k) = (self.frames, self.harmonics);
        (0..self.batch * f)
            .into_par_iter()
            .with_min_len(FRAMES_PER_TASK)
            .map(|row| {
                let (b, i) = (row / f, row % f);
                let a = &amps[(b * (f + 1) + i) * k..];
                let frame = Frame {
                    start: start[row] as f64,
                    f0: f0[row],
                    slope: slope[row],
                    amplitudes: &a[..k],
                    next: &a[k..2 * k],
                };
                op(row, &frame)
            })
            .collect()
    }

    fn forward(&self) -> FlexTensor {
        let hop = self.oscillator.hop;
        let per_frame = self.frames(|_, frame| {
            let mut out = vec![0.0f32; hop];
            self.oscillator.render(frame, 0..hop, &mut out);
            out
        });
        let audio: Vec<f32> = per_frame.concat();
        FlexTensor::from_data(TensorData::new(audio, [self.batch, self.frames * hop]))
    }
}

/// Gradients of the four inputs from the gradient of the audio.
#[derive(Debug)]
struct BankBackward;

impl Backward<Flex, 4> for BankBackward {
    type State = Inputs;

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let grad = values(&grad);
        let inputs = ops.state;
        let (b, f, k, hop) = (
            inputs.batch,
            inputs.frames,
            inputs.harmonics,
            inputs.oscillator.hop,
        );
        // Per frame: (d start, d f0, d slope) and the gradients of its two amplitude rows.
        let per_frame = inputs.frames(|row, frame| {
            let mut d_rows = vec![0.0f32; 2 * k];
            let mut scratch = vec![0.0f32; 2 * k * LANES];
            let (d_a, d_next) = d_rows.split_at_mut(k);
            let d = inputs.oscillator.backward(
                frame,
                &grad[row * hop..][..hop],
                d_a,
                d_next,
                &mut scratch,
            );
            (d, d_rows)
        });
        let [node_start, node_f0, node_slope, node_amps] = ops.parents;
        for (which, node) in [node_start, node_f0, node_slope].into_iter().enumerate() {
            if let Some(node) = node {
                let g: Vec<f32> = per_frame.iter().map(|(d, _)| d[which]).collect();
                grads.register::<Flex>(node.id, FlexTensor::from_data(TensorData::new(g, [b, f])));
            }
        }
        if let Some(node) = node_amps {
            let mut d = vec![0.0f32; b * (f + 1) * k];
            for (row, (_, rows)) in per_frame.iter().enumerate() {
                let at = (row / f * (f + 1) + row % f) * k;
                for (dst, v) in d[at..at + 2 * k].iter_mut().zip(rows) {
                    *dst += v;
                }
            }
            let t = FlexTensor::from_data(TensorData::new(d, [b, f + 1, k]));
            grads.register::<Flex>(node.id, t);
        }
    }
}

#[cfg(test)]
mod sin_cos_tests {
    use super::{LANES, sin_cos_turns};

    /// The branch-free polynomial equals libm's `sin_cos` of `2 pi x` to 2e-9 over the whole
    /// reduced range, quarter-turn boundaries and the ends included.
    #[test]
    fn sin_cos_turns_matches_libm() {
        let mut worst = 0.0f64;
        let points: Vec<f64> = (0..=80_000)
            .map(|i| -0.5 + i as f64 / 80_000.0)
            .chain([-0.375, -0.125, 0.125, 0.375, 0.125 + 1e-12, -0.375 - 1e-12])
            .collect();
        for chunk in points.chunks(LANES) {
            let mut x = [0.0f64; LANES];
            x[..chunk.len()].copy_from_slice(chunk);
            let (s, c) = sin_cos_turns(&x);
            for j in 0..chunk.len() {
                let (ws, wc) = (std::f64::consts::TAU * x[j]).sin_cos();
                worst = worst.max((s[j] - ws).abs()).max((c[j] - wc).abs());
            }
        }
        assert!(worst < 2e-9, "max error {worst}");
    }
}
