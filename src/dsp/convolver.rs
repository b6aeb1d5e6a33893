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

use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use std::sync::Arc;

/// `sum_i a[i] b[i]` over eight partial sums (a single running sum is one long dependency
/// chain the compiler may not reorder; eight vectorise).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 8;
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// A spectrum with its real and imaginary parts in separate arrays.
#[derive(Clone, Default)]
struct Split {
    re: Vec<f32>,
    im: Vec<f32>,
}

impl Split {
    fn zeros(n: usize) -> Self {
        Self {
            re: vec![0.0; n],
            im: vec![0.0; n],
        }
    }

    fn from_complex(c: &[Complex<f32>]) -> Self {
        Self {
            re: c.iter().map(|v| v.re).collect(),
            im: c.iter().map(|v| v.im).collect(),
        }
    }

    fn set(&mut self, c: &[Complex<f32>]) {
        for ((re, im), v) in self.re.iter_mut().zip(self.im.iter_mut()).zip(c) {
            *re = v.re;
            *im = v.im;
        }
    }

    fn fill_zero(&mut self) {
        self.re.fill(0.0);
        self.im.fill(0.0);
    }
}

/// `acc += a * b` elementwise over split complex spectra.
#[inline(always)]
fn complex_mac(acc: &mut Split, a: &Split, b: &Split) {
    let n = acc.re.len();
    let (ar, ai, br, bi) = (&a.re[..n], &a.im[..n], &b.re[..n], &b.im[..n]);
    for (i, (r, m)) in acc.re.iter_mut().zip(acc.im.iter_mut()).enumerate() {
        *r += ar[i] * br[i] - ai[i] * bi[i];
        *m += ar[i] * bi[i] + ai[i] * br[i];
    }
}

/// [`complex_mac`] of every partition with its block pair (see [`Convolver::block_done`]).
#[inline(always)]
fn sum_products(acc: &mut Split, parts: &[Split], fdl: &[Split], newest: usize) {
    let k = parts.len();
    acc.fill_zero();
    for (j, h) in parts.iter().enumerate() {
        complex_mac(acc, h, &fdl[(newest + k - j) % k]);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn sum_products_avx2(acc: &mut Split, parts: &[Split], fdl: &[Split], newest: usize) {
    sum_products(acc, parts, fdl, newest);
}

/// A zero-latency partitioned convolver: see the module doc.
#[derive(Clone)]
pub struct Convolver {
    p: usize,
    /// The first partition's taps, reversed.
    head: Vec<f32>,
    /// Spectra of partitions `1..K` (taps zero-padded to `2P`), real and imaginary parts
    /// apart (so the products vectorise), each `[P + 1]`.
    parts: Vec<Split>,
    /// Spectra of the last `K - 1` input block pairs; `fdl[newest]` is the latest.
    fdl: Vec<Split>,
    /// The sum of the spectrum products for the next block.
    acc: Split,
    newest: usize,
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
            .field("partitions", &(self.parts.len() + 1))
            .finish()
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
        let parts: Vec<Split> = ir
            .chunks(p)
            .skip(1)
            .map(|taps| {
                frame.fill(0.0);
                frame[..taps.len()].copy_from_slice(taps);
                forward
                    .process_with_scratch(&mut frame, &mut spectrum, &mut scratch)
                    .expect("buffers made by the plan");
                Split::from_complex(&spectrum)
            })
            .collect();
        let fdl = vec![Split::zeros(p + 1); parts.len()];
        Self {
            p,
            head,
            parts,
            fdl,
            acc: Split::zeros(p + 1),
            newest: 0,
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
        for s in &mut self.fdl {
            s.fill_zero();
        }
        self.pos = 0;
    }

    /// Convolve the next samples: `out[i] = sum_j ir[j] x[n - j]` for each input `x[n]` of
    /// `input`, continuing the earlier calls.
    pub fn process(&mut self, input: &[f32], out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has the features the function is compiled for.
            unsafe { self.process_avx2(input, out) };
            return;
        }
        self.process_samples(input, out);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn process_avx2(&mut self, input: &[f32], out: &mut [f32]) {
        self.process_samples(input, out);
    }

    /// The body of [`Self::process`], inlined into each instruction-set variant.
    #[inline(always)]
    fn process_samples(&mut self, input: &[f32], out: &mut [f32]) {
        let p = self.p;
        for (x, y) in input.iter().zip(out.iter_mut()) {
            let t = self.pos;
            self.line[p + t] = *x;
            let direct = dot(&self.line[t + 1..=p + t], &self.head);
            *y = direct + self.late[t];
            self.pos += 1;
            if self.pos == p {
                self.block_done();
            }
        }
    }

    /// A block of `P` inputs is complete: its spectrum joins the delay line, the later
    /// partitions' output for the next block is computed, and the block becomes the previous.
    fn block_done(&mut self) {
        let p = self.p;
        self.pos = 0;
        if !self.parts.is_empty() {
            let k = self.parts.len();
            self.newest = (self.newest + 1) % k;
            self.frame.copy_from_slice(&self.line);
            self.forward
                .process_with_scratch(&mut self.frame, &mut self.spectrum, &mut self.scratch)
                .expect("buffers made by the plan");
            self.fdl[self.newest].set(&self.spectrum);
            // Next block b: partition j (1-based) meets the block pair that ended j - 1 blocks
            // before this one.
            let (acc, parts, fdl) = (&mut self.acc, &self.parts, &self.fdl);
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the CPU has the features the function is compiled for.
                unsafe { sum_products_avx2(acc, parts, fdl, self.newest) };
            } else {
                sum_products(acc, parts, fdl, self.newest);
            }
            #[cfg(not(target_arch = "x86_64"))]
            sum_products(acc, parts, fdl, self.newest);
            for ((c, re), im) in self.spectrum.iter_mut().zip(&self.acc.re).zip(&self.acc.im) {
                *c = Complex::new(*re, *im);
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
