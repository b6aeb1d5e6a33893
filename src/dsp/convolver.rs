//! Long convolution sample by sample on the host, with no added latency and no allocation:
//! the streaming engine's reverb.
//!
//! The first `P` taps are applied directly (a dot product per sample), so every output sample
//! needs only inputs up to itself. The rest of the impulse response goes to stages of
//! uniformly partitioned overlap-save, partitions growing [`GROWTH`]-fold from stage to stage
//! (non-uniform partitioning): the stage of partition `N` takes the taps from `N` to `GROWTH
//! N` (the last stage, to the end). When a block of `N` inputs is complete, its `2N`-point
//! spectrum (with the block before) joins the stage's delay line, and the contribution of
//! the stage's partitions to the next `N` outputs is one sum of spectrum products and one
//! inverse FFT. A partition of `N` taps starting at tap `N` or later needs only inputs that
//! are complete, so no stage adds latency. Long partitions for the far taps cut both the
//! arithmetic and the spectra read per sample (the whole delay line is read once per block
//! of a stage: with one partition size, a 3 s reverb's 770 KB every 128 samples).

use super::host;
use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use std::sync::Arc;

/// Partition growth from one stage to the next.
pub const GROWTH: usize = 8;

/// A zero-latency partitioned convolver: see the module doc.
#[derive(Clone, Debug)]
pub struct Convolver {
    /// The first `P` taps, reversed.
    head: Vec<f32>,
    /// The previous `P` inputs then the current block's, `[2P]`.
    line: Vec<f32>,
    /// Position in the current block of `P`.
    pos: usize,
    stages: Vec<Stage>,
}

/// One uniformly partitioned stage: partitions `1..=K` of `N` taps of its part of the impulse
/// response (taps `N..(K + 1) N`), its partition 0 being earlier taps that other parts apply.
#[derive(Clone)]
struct Stage {
    n: usize,
    /// Partitions.
    k: usize,
    /// Spectra of partitions `1..=K` (taps zero-padded to `2N`), split: each partition's
    /// `N + 1` real parts then its `N + 1` imaginary parts.
    parts: Vec<f32>,
    /// Spectra of the last `K` input block pairs, split likewise; slot `newest` is the
    /// latest.
    fdl: Vec<f32>,
    newest: usize,
    /// The sum of spectrum products for the next block, split likewise.
    sum: Vec<f32>,
    /// The previous input block then the current one, `[2N]`.
    line: Vec<f32>,
    /// The stage's output for the current block, `[N]`.
    late: Vec<f32>,
    /// Position in the current block.
    pos: usize,
    forward: Arc<dyn RealToComplex<f32>>,
    inverse: Arc<dyn ComplexToReal<f32>>,
    frame: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
}

impl std::fmt::Debug for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stage")
            .field("partition", &self.n)
            .field("partitions", &self.k)
            .finish()
    }
}

/// `spectrum` into `split` (`N + 1` real parts, then the imaginary parts).
fn split_into(spectrum: &[Complex<f32>], split: &mut [f32]) {
    let (re, im) = split.split_at_mut(spectrum.len());
    for ((r, i), c) in re.iter_mut().zip(im).zip(spectrum) {
        *r = c.re;
        *i = c.im;
    }
}

impl Convolver {
    /// A convolver for `ir` with a direct head of `partition` taps (at least 1) and stages of
    /// partitions `partition`, `GROWTH partition`, ... as the length needs.
    pub fn new(ir: &[f32], partition: usize) -> Self {
        let p = partition.max(1);
        let mut head: Vec<f32> = ir.iter().take(p).copied().collect();
        head.resize(p, 0.0);
        head.reverse();
        let mut planner = RealFftPlanner::<f32>::new();
        let mut stages = Vec::new();
        let mut n = p;
        while ir.len() > n {
            let end = if ir.len() > GROWTH * n {
                GROWTH * n
            } else {
                ir.len()
            };
            stages.push(Stage::new(&ir[..end], n, &mut planner));
            n *= GROWTH;
        }
        Self {
            head,
            line: vec![0.0; 2 * p],
            pos: 0,
            stages,
        }
    }

    /// Silence every past input.
    pub fn reset(&mut self) {
        self.line.fill(0.0);
        self.pos = 0;
        for s in &mut self.stages {
            s.reset();
        }
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
        let p = self.head.len();
        for (x, y) in input.iter().zip(out.iter_mut()) {
            let t = self.pos;
            self.line[p + t] = *x;
            let mut v = dot(&self.line[t + 1..=p + t], &self.head);
            for s in &mut self.stages {
                v += s.push(*x);
            }
            *y = v;
            self.pos += 1;
            if self.pos == p {
                self.pos = 0;
                self.line.copy_within(p.., 0);
            }
        }
    }
}

impl Stage {
    /// The stage of partition `n` for taps `n..ir.len()` of `ir`.
    fn new(ir: &[f32], n: usize, planner: &mut RealFftPlanner<f32>) -> Self {
        let forward = planner.plan_fft_forward(2 * n);
        let inverse = planner.plan_fft_inverse(2 * n);
        let scratch_len = forward
            .get_scratch_len()
            .max(inverse.get_scratch_len())
            .max(1);
        let mut frame = forward.make_input_vec();
        let mut spectrum = forward.make_output_vec();
        let mut scratch = vec![Complex::default(); scratch_len];
        let k = ir.len().div_ceil(n).saturating_sub(1);
        let bins = 2 * (n + 1);
        let mut parts = vec![0.0; k * bins];
        for (taps, part) in ir.chunks(n).skip(1).zip(parts.chunks_mut(bins)) {
            frame.fill(0.0);
            frame[..taps.len()].copy_from_slice(taps);
            forward
                .process_with_scratch(&mut frame, &mut spectrum, &mut scratch)
                .expect("buffers made by the plan");
            split_into(&spectrum, part);
        }
        Self {
            n,
            k,
            parts,
            fdl: vec![0.0; k * bins],
            newest: 0,
            sum: vec![0.0; bins],
            line: vec![0.0; 2 * n],
            late: vec![0.0; n],
            pos: 0,
            forward,
            inverse,
            frame,
            spectrum,
            scratch,
        }
    }

    fn reset(&mut self) {
        self.line.fill(0.0);
        self.late.fill(0.0);
        self.fdl.fill(0.0);
        self.pos = 0;
    }

    /// Take the next input; returns the stage's output for this sample.
    #[inline(always)]
    fn push(&mut self, x: f32) -> f32 {
        let t = self.pos;
        self.line[self.n + t] = x;
        let y = self.late[t];
        self.pos += 1;
        if self.pos == self.n {
            self.block_done();
        }
        y
    }

    /// A block of `N` inputs is complete: its spectrum joins the delay line, the stage's
    /// output for the next block is computed, and the block becomes the previous.
    #[inline(always)]
    fn block_done(&mut self) {
        let (n, k) = (self.n, self.k);
        let bins = 2 * (n + 1);
        self.pos = 0;
        self.newest = (self.newest + 1) % k;
        self.frame.copy_from_slice(&self.line);
        self.forward
            .process_with_scratch(&mut self.frame, &mut self.spectrum, &mut self.scratch)
            .expect("buffers made by the plan");
        split_into(&self.spectrum, &mut self.fdl[self.newest * bins..][..bins]);
        // Next block b: partition j (1-based) meets the block pair that ended j - 1 blocks
        // before this one.
        self.sum.fill(0.0);
        let (sum_re, sum_im) = self.sum.split_at_mut(n + 1);
        for (j, h) in self.parts.chunks_exact(bins).enumerate() {
            let x = &self.fdl[(self.newest + k - j) % k * bins..][..bins];
            let (h_re, h_im) = h.split_at(n + 1);
            let (x_re, x_im) = x.split_at(n + 1);
            for i in 0..n + 1 {
                sum_re[i] += h_re[i] * x_re[i] - h_im[i] * x_im[i];
                sum_im[i] += h_re[i] * x_im[i] + h_im[i] * x_re[i];
            }
        }
        for (i, c) in self.spectrum.iter_mut().enumerate() {
            *c = Complex::new(sum_re[i], sum_im[i]);
        }
        self.spectrum[0].im = 0.0;
        self.spectrum[n].im = 0.0;
        self.inverse
            .process_with_scratch(&mut self.spectrum, &mut self.frame, &mut self.scratch)
            .expect("buffers made by the plan");
        let scale = 1.0 / (2 * n) as f32;
        for (l, v) in self.late.iter_mut().zip(&self.frame[n..]) {
            *l = v * scale;
        }
        self.line.copy_within(n.., 0);
    }
}
