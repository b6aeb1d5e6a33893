//! Long convolution sample by sample on the host, with no added latency and no allocation:
//! the streaming engine's reverb.
//!
//! The impulse response is cut into partitions of `P` taps. The first partition is applied
//! directly (a dot product per sample), so every output sample needs only inputs up to
//! itself; the others by uniformly partitioned overlap-save: when a block of `P` inputs is
//! complete, its `2P`-point spectrum (with the block before) joins a delay line, and the
//! contribution of all later partitions to the next block is one sum of spectrum products
//! and one inverse FFT. Cost per sample: `P` multiply-adds plus `(L / P) (P + 1) / P` complex
//! ones and two FFTs of `2P` per `P` samples, against `L` multiply-adds directly.

use super::host;
use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use std::sync::Arc;

/// A zero-latency partitioned convolver: see the module doc.
#[derive(Clone)]
pub struct Convolver {
    p: usize,
    /// The first partition's taps, reversed.
    head: Vec<f32>,
    /// Partitions after the first.
    later: usize,
    /// Spectra of partitions `1..K` (taps zero-padded to `2P`), split: each partition's
    /// `P + 1` real parts then its `P + 1` imaginary parts.
    parts: Vec<f32>,
    /// Spectra of the last `K - 1` input block pairs, split likewise; slot `newest` is the
    /// latest.
    fdl: Vec<f32>,
    newest: usize,
    /// The sum of spectrum products for the next block, split likewise.
    sum: Vec<f32>,
    /// The previous input block then the current one, `[2P]`.
    line: Vec<f32>,
    /// The later partitions' output for the current block, `[P]`.
    late: Vec<f32>,
    /// Position in the current block.
    pos: usize,
    forward: Arc<dyn RealToComplex<f32>>,
    inverse: Arc<dyn ComplexToReal<f32>>,
    frame: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
}

impl std::fmt::Debug for Convolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Convolver")
            .field("partition", &self.p)
            .field("partitions", &(self.later + 1))
            .finish()
    }
}

/// `spectrum` into `split` (`P + 1` real parts, then the imaginary parts).
fn split_into(spectrum: &[Complex<f32>], split: &mut [f32]) {
    let (re, im) = split.split_at_mut(spectrum.len());
    for ((r, i), c) in re.iter_mut().zip(im).zip(spectrum) {
        *r = c.re;
        *i = c.im;
    }
}

impl Convolver {
    /// A convolver for `ir` with partitions of `partition` taps (at least 1).
    pub fn new(ir: &[f32], partition: usize) -> Self {
        let p = partition.max(1);
        let mut planner = RealFftPlanner::<f32>::new();
        let forward = planner.plan_fft_forward(2 * p);
        let inverse = planner.plan_fft_inverse(2 * p);
        let scratch_len = forward
            .get_scratch_len()
            .max(inverse.get_scratch_len())
            .max(1);
        let mut frame = forward.make_input_vec();
        let mut spectrum = forward.make_output_vec();
        let mut scratch = vec![Complex::default(); scratch_len];
        let mut head: Vec<f32> = ir.iter().take(p).copied().collect();
        head.resize(p, 0.0);
        head.reverse();
        let later = ir.len().div_ceil(p).saturating_sub(1);
        let bins = 2 * (p + 1);
        let mut parts = vec![0.0; later * bins];
        for (taps, part) in ir.chunks(p).skip(1).zip(parts.chunks_mut(bins)) {
            frame.fill(0.0);
            frame[..taps.len()].copy_from_slice(taps);
            forward
                .process_with_scratch(&mut frame, &mut spectrum, &mut scratch)
                .expect("buffers made by the plan");
            split_into(&spectrum, part);
        }
        Self {
            p,
            head,
            later,
            parts,
            fdl: vec![0.0; later * bins],
            newest: 0,
            sum: vec![0.0; bins],
            line: vec![0.0; 2 * p],
            late: vec![0.0; p],
            pos: 0,
            forward,
            inverse,
            frame,
            spectrum,
            scratch,
        }
    }

    /// Silence every past input.
    pub fn reset(&mut self) {
        self.line.fill(0.0);
        self.late.fill(0.0);
        self.fdl.fill(0.0);
        self.pos = 0;
    }

    /// Convolve the next samples: `out[i] = sum_j ir[j] x[n - j]` for each input `x[n]` of
    /// `input`, continuing the earlier calls.
    pub fn process(&mut self, input: &[f32], out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if host::avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA (checked above).
            unsafe { self.process_avx2(input, out) };
            return;
        }
        self.process_body(input, out, host::dot);
    }

    /// [`Self::process`] compiled for AVX2 and FMA (its loops vectorised eight wide).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn process_avx2(&mut self, input: &[f32], out: &mut [f32]) {
        // SAFETY: this function runs only where the CPU has AVX2 and FMA.
        self.process_body(input, out, |a, b| unsafe { host::dot_avx2(a, b) });
    }

    /// The body of [`Self::process`], inlined into each instruction-set variant with its
    /// dot product.
    #[inline(always)]
    fn process_body(
        &mut self,
        input: &[f32],
        out: &mut [f32],
        dot: impl Fn(&[f32], &[f32]) -> f32,
    ) {
        let p = self.p;
        for (x, y) in input.iter().zip(out.iter_mut()) {
            let t = self.pos;
            self.line[p + t] = *x;
            *y = dot(&self.line[t + 1..=p + t], &self.head) + self.late[t];
            self.pos += 1;
            if self.pos == p {
                self.block_done();
            }
        }
    }

    /// A block of `P` inputs is complete: its spectrum joins the delay line, the later
    /// partitions' output for the next block is computed, and the block becomes the previous.
    #[inline(always)]
    fn block_done(&mut self) {
        let p = self.p;
        self.pos = 0;
        let k = self.later;
        if k > 0 {
            let bins = 2 * (p + 1);
            self.newest = (self.newest + 1) % k;
            self.frame.copy_from_slice(&self.line);
            self.forward
                .process_with_scratch(&mut self.frame, &mut self.spectrum, &mut self.scratch)
                .expect("buffers made by the plan");
            split_into(&self.spectrum, &mut self.fdl[self.newest * bins..][..bins]);
            // Next block b: partition j (1-based) meets the block pair that ended j - 1 blocks
            // before this one.
            self.sum.fill(0.0);
            let (sum_re, sum_im) = self.sum.split_at_mut(p + 1);
            for (j, h) in self.parts.chunks_exact(bins).enumerate() {
                let x = &self.fdl[(self.newest + k - j) % k * bins..][..bins];
                let (h_re, h_im) = h.split_at(p + 1);
                let (x_re, x_im) = x.split_at(p + 1);
                for i in 0..p + 1 {
                    sum_re[i] += h_re[i] * x_re[i] - h_im[i] * x_im[i];
                    sum_im[i] += h_re[i] * x_im[i] + h_im[i] * x_re[i];
                }
            }
            for (i, c) in self.spectrum.iter_mut().enumerate() {
                *c = Complex::new(sum_re[i], sum_im[i]);
            }
            self.spectrum[0].im = 0.0;
            self.spectrum[p].im = 0.0;
            self.inverse
                .process_with_scratch(&mut self.spectrum, &mut self.frame, &mut self.scratch)
                .expect("buffers made by the plan");
            let scale = 1.0 / (2 * p) as f32;
            for (l, v) in self.late.iter_mut().zip(&self.frame[p..]) {
                *l = v * scale;
            }
        }
        self.line.copy_within(p.., 0);
    }
}
