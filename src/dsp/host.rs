//! Host kernels behind custom operations on the CPU backend (flex): reading a flex tensor's
//! values, and matrix products with the `gemm` crate that flex's own matmul uses. The fused
//! operations ([`super::oscillator`], the decoder's GRU recurrence) and the streaming engine
//! run their loops over these.

use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, Device};
use std::borrow::Cow;

/// Whether every `(dtype, device)` is f32 on flex: where the fused host operations apply.
pub(crate) fn all_f32_on_flex(tensors: &[(DType, Device)]) -> bool {
    tensors
        .iter()
        .all(|(dtype, device)| *dtype == DType::F32 && device.clone().inner() == Device::flex())
}

/// The values of a flex f32 tensor in row-major order (borrowed when contiguous).
pub(crate) fn values(t: &FlexTensor) -> Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(
            t.to_contiguous()
                .as_slice::<f32>()
                .expect("a contiguous f32 tensor")
                .to_vec(),
        ),
    }
}

/// A matrix in a slice: element `(i, j)` at `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a> {
    pub(crate) data: &'a [f32],
    pub(crate) rs: usize,
    pub(crate) cs: usize,
}

impl<'a> Mat<'a> {
    /// Row-major rows of `width` values.
    pub(crate) fn rows(data: &'a [f32], width: usize) -> Self {
        Self {
            data,
            rs: width,
            cs: 1,
        }
    }

    /// Whether an `rows x cols` matrix lies inside the slice.
    fn fits(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.rs + (cols - 1) * self.cs < self.data.len()
    }
}

/// `dst[m, n] = lhs[m, k] rhs[k, n]`, or `+=` with `accumulate`; `dst` is row-major with row
/// stride `dst_rs`. Large products are split over rayon's threads.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    dst: &mut [f32],
    dst_rs: usize,
    m: usize,
    n: usize,
    k: usize,
    lhs: Mat,
    rhs: Mat,
    accumulate: bool,
) {
    let parallel = m * n * k >= 1 << 18;
    let dst_fits = Mat {
        data: dst,
        rs: dst_rs,
        cs: 1,
    }
    .fits(m, n);
    assert!(
        dst_fits && lhs.fits(m, k) && rhs.fits(k, n),
        "matmul bounds"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for row in dst.chunks_mut(dst_rs).take(m) {
                row[..n].fill(0.0);
            }
        }
        return;
    }
    let parallelism = if parallel {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the three matrices were checked to lie inside their slices, `dst` is borrowed
    // mutably and so overlaps neither operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Whether the CPU has AVX2 and FMA, the host kernels' fast path (detected at run time, as
/// `gemm` does; the answer is cached).
#[cfg(target_arch = "x86_64")]
pub(crate) fn avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// `sum_i a[i] b[i]` over the shorter length, in eight partial sums (vectorisable; the
/// order of the sum differs from a sequential one within rounding).
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (ca, ra) = a[..n].as_chunks::<8>();
    let (cb, rb) = b[..n].as_chunks::<8>();
    let mut acc = [0.0f32; 8];
    for (x, y) in ca.iter().zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    (acc[0] + acc[4]) + (acc[1] + acc[5]) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// [`dot`] with AVX2 and FMA: four vectors of partial sums in flight.
///
/// # Safety
/// The CPU has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(crate) unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let (ca, ra) = a[..n].as_chunks::<32>();
    let (cb, rb) = b[..n].as_chunks::<32>();
    let mut acc = [_mm256_setzero_ps(); 4];
    for (x, y) in ca.iter().zip(cb) {
        for (v, acc) in acc.iter_mut().enumerate() {
            // SAFETY: lanes `8 v..8 v + 8` of 32-value chunks, unaligned loads.
            unsafe {
                let xv = _mm256_loadu_ps(x.as_ptr().add(8 * v));
                let yv = _mm256_loadu_ps(y.as_ptr().add(8 * v));
                *acc = _mm256_fmadd_ps(xv, yv, *acc);
            }
        }
    }
    let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let mut lanes = [0.0f32; 8];
    // SAFETY: eight values into an array of eight.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), s) };
    let tail = dot(ra, rb);
    (lanes[0] + lanes[4])
        + (lanes[1] + lanes[5])
        + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]))
        + tail
}

/// Columns in one panel of [`Packed`] weights: two AVX vectors of eight.
const PANEL: usize = 16;

/// One row of a panel: a cache line, aligned, so a panel streams whole lines.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct PanelRow([f32; PANEL]);

/// One row of a panel in half precision (IEEE binary16 bits): half a cache line.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(32))]
struct HalfRow([u16; PANEL]);

/// The panels of a [`Packed`] matrix, in single or half precision.
#[derive(Clone, Debug)]
enum Panels {
    F32(Vec<PanelRow>),
    F16(Vec<HalfRow>),
}

impl Panels {
    fn len(&self) -> usize {
        match self {
            Self::F32(r) => r.len(),
            Self::F16(r) => r.len(),
        }
    }
}

/// A weight matrix `w[k, n]` (row-major) packed once for [`matmul_packed`]: column panels
/// of [`PANEL`] columns, panel after panel, each `k` rows of [`PANEL`] values (k-major; the
/// last panel padded with zeros). A panel's product is one linear read of memory, with the
/// outputs of a few rows in registers throughout. The values are stored as f32, or as f16
/// ([`Packed::to_f16`]: half the bytes to read, each weight rounded to 11 significant bits)
/// and widened to f32 as they are read; the products are summed in f32 either way.
#[derive(Clone, Debug)]
pub(crate) struct Packed {
    panels: Panels,
    k: usize,
    n: usize,
}

impl Packed {
    /// `w[k, n]`, row-major, packed.
    pub(crate) fn new(w: &[f32], k: usize, n: usize) -> Self {
        assert!(
            w.len() >= k * n,
            "Packed::new: {} values for {k} x {n}",
            w.len()
        );
        let panels = n.div_ceil(PANEL);
        let mut rows = vec![PanelRow([0.0; PANEL]); panels * k];
        for p in 0..panels {
            let c0 = p * PANEL;
            let cols = (n - c0).min(PANEL);
            for (j, row) in rows[p * k..][..k].iter_mut().enumerate() {
                row.0[..cols].copy_from_slice(&w[j * n + c0..][..cols]);
            }
        }
        Self {
            panels: Panels::F32(rows),
            k,
            n,
        }
    }

    /// The same matrix stored in half precision (each weight rounded to the nearest f16), or
    /// `None` when a weight is not finite or beyond f16's range (65504 in magnitude).
    pub(crate) fn to_f16(&self) -> Option<Self> {
        let rows = match &self.panels {
            Panels::F16(_) => return Some(self.clone()),
            Panels::F32(rows) => rows,
        };
        let mut half = Vec::with_capacity(rows.len());
        for row in rows {
            let mut h = HalfRow([0; PANEL]);
            for (b, &v) in h.0.iter_mut().zip(&row.0) {
                let x = half::f16::from_f32(v);
                if !x.is_finite() {
                    return None;
                }
                *b = x.to_bits();
            }
            half.push(h);
        }
        Some(Self {
            panels: Panels::F16(half),
            k: self.k,
            n: self.n,
        })
    }

    /// Whether the weights are stored in half precision.
    #[cfg(test)]
    pub(crate) fn is_f16(&self) -> bool {
        matches!(self.panels, Panels::F16(_))
    }

    /// Rows (inputs).
    pub(crate) fn k(&self) -> usize {
        self.k
    }

    /// Columns (outputs).
    pub(crate) fn n(&self) -> usize {
        self.n
    }

    /// Row `j` of panel `p` widened to f32.
    fn row(&self, p: usize, j: usize) -> [f32; PANEL] {
        let i = p * self.k + j;
        match &self.panels {
            Panels::F32(rows) => rows[i].0,
            Panels::F16(rows) => rows[i].0.map(|b| half::f16::from_bits(b).to_f32()),
        }
    }
}

/// `y[m, n] += x[m, k] w[k, n]` for a few rows on the calling thread, allocating nothing
/// (the realtime path; `gemm` packs its operands into fresh buffers on every call). `x` rows
/// have stride `x_rs`, `y` is row-major. Up to four rows at a time share each read of a
/// panel; every output is summed in the order of `k`, starting from its value in `y`. With
/// AVX2 and FMA (detected at run time, as `gemm` does) an explicit SIMD kernel keeps the
/// outputs of a tile in registers; elsewhere a scalar kernel does the same sums.
pub(crate) fn matmul_packed(y: &mut [f32], x: &[f32], x_rs: usize, w: &Packed, m: usize) {
    check_packed(y, x, x_rs, w, m);
    #[cfg(target_arch = "x86_64")]
    match &w.panels {
        Panels::F32(rows) if avx2_fma() => {
            // SAFETY: the CPU has AVX2 and FMA (checked above), the panels are f32, and the
            // operands were checked to hold `m` rows.
            unsafe { avx2::matmul_f32(y, x, x_rs, w, m, rows.as_ptr() as *const u8) };
            return;
        }
        Panels::F16(rows) if avx2_fma() && std::arch::is_x86_feature_detected!("f16c") => {
            // SAFETY: as above, with F16C and f16 panels.
            unsafe { avx2::matmul_f16(y, x, x_rs, w, m, rows.as_ptr() as *const u8) };
            return;
        }
        _ => {}
    }
    scalar_matmul(y, x, x_rs, w, m);
}

/// [`matmul_packed`] on the scalar kernel whatever the CPU (for tests of that path).
#[cfg(test)]
pub(crate) fn matmul_packed_scalar(y: &mut [f32], x: &[f32], x_rs: usize, w: &Packed, m: usize) {
    check_packed(y, x, x_rs, w, m);
    scalar_matmul(y, x, x_rs, w, m);
}

/// The operands of [`matmul_packed`] hold `m` rows.
fn check_packed(y: &[f32], x: &[f32], x_rs: usize, w: &Packed, m: usize) {
    let (k, n) = (w.k, w.n);
    assert!(
        w.panels.len() == n.div_ceil(PANEL) * k
            && y.len() >= m * n
            && (m == 0 || k == 0 || x.len() >= (m - 1) * x_rs + k),
        "matmul_packed bounds: y {}, x {} (stride {x_rs}), {m} x {k} x {n}",
        y.len(),
        x.len()
    );
}

/// Rows at a time: the scalar kernel's tiles are one panel of up to four rows.
fn scalar_matmul(y: &mut [f32], x: &[f32], x_rs: usize, w: &Packed, m: usize) {
    let n = w.n;
    for r in (0..m).step_by(4) {
        let (y, x) = (&mut y[r * n..], &x[r * x_rs..]);
        for p in 0..n.div_ceil(PANEL) {
            match m - r {
                1 => scalar_tile::<1>(y, x, x_rs, w, p),
                2 => scalar_tile::<2>(y, x, x_rs, w, p),
                3 => scalar_tile::<3>(y, x, x_rs, w, p),
                _ => scalar_tile::<4>(y, x, x_rs, w, p),
            }
        }
    }
}

/// Panel `p` for `R` rows: `y[i, panel] += x[i, :] w[:, panel]`, in the order of `k`.
fn scalar_tile<const R: usize>(y: &mut [f32], x: &[f32], x_rs: usize, w: &Packed, p: usize) {
    let (k, n) = (w.k, w.n);
    let c0 = p * PANEL;
    let cols = (n - c0).min(PANEL);
    let mut acc = [[0.0f32; PANEL]; R];
    for (i, a) in acc.iter_mut().enumerate() {
        a[..cols].copy_from_slice(&y[i * n + c0..][..cols]);
    }
    for j in 0..k {
        let row = w.row(p, j);
        for (i, a) in acc.iter_mut().enumerate() {
            let xi = x[i * x_rs + j];
            for (s, wv) in a.iter_mut().zip(&row) {
                *s += xi * wv;
            }
        }
    }
    for (i, a) in acc.iter().enumerate() {
        y[i * n + c0..][..cols].copy_from_slice(&a[..cols]);
    }
}

/// The AVX2/FMA kernel of [`matmul_packed`]: tiles of `R` rows by `P` panels, their
/// `2 R P` vectors of outputs in registers for the whole `k` loop (eight of them in flight
/// hide the FMA latency: one row takes four panels, two rows two, more rows one).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{PANEL, Packed};
    use std::arch::x86_64::*;

    /// How far ahead of the kernel the weights are prefetched, in bytes per panel (32 f32
    /// panel rows, 64 f16 ones). The layers of a block's frames read about 16 MB of weights once
    /// per block (the paper preset), more than this machine's share of L3 keeps; the
    /// hardware prefetcher alone left the kernel waiting on memory (about 15% slower there,
    /// no faster on weights already in cache).
    const PREFETCH_BYTES: usize = 2048;

    /// The kernel on f32 weights at `base` (`w`'s panels).
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA, `w` stores f32 panels at `base`, and
    /// [`super::check_packed`] passed for these operands.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn matmul_f32(
        y: &mut [f32],
        x: &[f32],
        x_rs: usize,
        w: &Packed,
        m: usize,
        base: *const u8,
    ) {
        // SAFETY: as the caller vouches.
        unsafe { rows::<false>(y, x, x_rs, w, m, base) }
    }

    /// The kernel on f16 weights at `base`, widened as they are read.
    ///
    /// # Safety
    /// As [`matmul_f32`], with F16C and f16 panels.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn matmul_f16(
        y: &mut [f32],
        x: &[f32],
        x_rs: usize,
        w: &Packed,
        m: usize,
        base: *const u8,
    ) {
        // SAFETY: as the caller vouches.
        unsafe { rows::<true>(y, x, x_rs, w, m, base) }
    }

    /// Every row of `x`, four at a time.
    ///
    /// # Safety
    /// As [`matmul_f32`] (with F16C and f16 panels if `HALF`).
    #[inline(always)]
    unsafe fn rows<const HALF: bool>(
        y: &mut [f32],
        x: &[f32],
        x_rs: usize,
        w: &Packed,
        m: usize,
        base: *const u8,
    ) {
        let n = w.n;
        let full = n / PANEL;
        let panels = n.div_ceil(PANEL);
        for r in (0..m).step_by(4) {
            let rows = (m - r).min(4);
            // SAFETY (for the tiles below): rows `r..r + rows` of `y` (width `n`) and of
            // `x` (stride `x_rs`, `k` values) lie inside the slices, as checked, and every
            // panel index passed is below `panels`.
            unsafe {
                let y = y.as_mut_ptr().add(r * n);
                let x = x.as_ptr().add(r * x_rs);
                let t = (x_rs, full, panels, base);
                match rows {
                    1 => tiles::<1, 4, HALF>(y, x, w, t),
                    2 => tiles::<2, 2, HALF>(y, x, w, t),
                    3 => tiles::<3, 1, HALF>(y, x, w, t),
                    _ => tiles::<4, 1, HALF>(y, x, w, t),
                }
            }
        }
    }

    /// All panels for `R` rows: `P` full panels at a time, then one at a time.
    ///
    /// # Safety
    /// As [`tile`], for every panel below `panels`; the first `full` panels are full.
    /// `t`: `x`'s row stride, the number of full panels, of all panels, and the panels'
    /// address.
    #[inline(always)]
    unsafe fn tiles<const R: usize, const P: usize, const HALF: bool>(
        y: *mut f32,
        x: *const f32,
        w: &Packed,
        t: (usize, usize, usize, *const u8),
    ) {
        let (x_rs, full, panels, base) = t;
        let mut p = 0;
        while p + P <= full {
            // SAFETY: panels `p..p + P` exist (`p + P <= full <= panels`).
            unsafe { tile::<R, P, HALF>(y, x, x_rs, w, p, base) };
            p += P;
        }
        while p < panels {
            // SAFETY: panel `p` exists.
            unsafe { tile::<R, 1, HALF>(y, x, x_rs, w, p, base) };
            p += 1;
        }
    }

    /// Panels `p..p + P` for `R` rows: `y[i, cols] += x[i, :] w[:, cols]`, each output
    /// summed in the order of `k` with one FMA per term.
    ///
    /// # Safety
    /// AVX2 and FMA (and F16C if `HALF`); `y` points at `R` rows of `w.n` values, `x` at
    /// `R` rows of `w.k` values `x_rs` apart; `base` at `w`'s panels, stored as `HALF` says;
    /// panels `p..p + P` exist and all but possibly the last are full.
    #[inline(always)]
    unsafe fn tile<const R: usize, const P: usize, const HALF: bool>(
        y: *mut f32,
        x: *const f32,
        x_rs: usize,
        w: &Packed,
        p: usize,
        base: *const u8,
    ) {
        let (k, n) = (w.k, w.n);
        // Bytes per panel row.
        let row = if HALF { 2 * PANEL } else { 4 * PANEL };
        // SAFETY: the panel rows read are `(p + q) k + j` for `q < P`, `j < k`, inside
        // the panels (`panels k` rows); `y` and `x` are read and written inside the rows the
        // caller vouches for, a partial panel's columns through a stack copy.
        unsafe {
            let base = base.add(p * k * row);
            // `acc[q][i]`: panel `p + q`, row `i`, two vectors of eight columns.
            let mut acc = [[[_mm256_setzero_ps(); 2]; R]; P];
            for (q, acc) in acc.iter_mut().enumerate() {
                for (i, acc) in acc.iter_mut().enumerate() {
                    let c0 = (p + q) * PANEL;
                    let cols = (n - c0).min(PANEL);
                    let src = y.add(i * n + c0);
                    if cols == PANEL {
                        acc[0] = _mm256_loadu_ps(src);
                        acc[1] = _mm256_loadu_ps(src.add(8));
                    } else {
                        let mut t = [0.0f32; PANEL];
                        std::ptr::copy_nonoverlapping(src, t.as_mut_ptr(), cols);
                        acc[0] = _mm256_loadu_ps(t.as_ptr());
                        acc[1] = _mm256_loadu_ps(t.as_ptr().add(8));
                    }
                }
            }
            for j in 0..k {
                for q in 0..P {
                    // A prefetch never faults: past the end of the weights it is only wasted.
                    let ahead = base.wrapping_add((q * k + j) * row + PREFETCH_BYTES);
                    _mm_prefetch::<_MM_HINT_T0>(ahead as *const i8);
                }
                let mut a = [_mm256_setzero_ps(); R];
                for (i, a) in a.iter_mut().enumerate() {
                    *a = _mm256_broadcast_ss(&*x.add(i * x_rs + j));
                }
                for (q, acc) in acc.iter_mut().enumerate() {
                    let wp = base.add((q * k + j) * row);
                    let (w0, w1) = if HALF {
                        let h = wp as *const __m128i;
                        (
                            _mm256_cvtph_ps(_mm_load_si128(h)),
                            _mm256_cvtph_ps(_mm_load_si128(h.add(1))),
                        )
                    } else {
                        let f = wp as *const f32;
                        (_mm256_load_ps(f), _mm256_load_ps(f.add(8)))
                    };
                    for (acc, a) in acc.iter_mut().zip(a) {
                        acc[0] = _mm256_fmadd_ps(a, w0, acc[0]);
                        acc[1] = _mm256_fmadd_ps(a, w1, acc[1]);
                    }
                }
            }
            for (q, acc) in acc.iter().enumerate() {
                for (i, acc) in acc.iter().enumerate() {
                    let c0 = (p + q) * PANEL;
                    let cols = (n - c0).min(PANEL);
                    let dst = y.add(i * n + c0);
                    if cols == PANEL {
                        _mm256_storeu_ps(dst, acc[0]);
                        _mm256_storeu_ps(dst.add(8), acc[1]);
                    } else {
                        let mut t = [0.0f32; PANEL];
                        _mm256_storeu_ps(t.as_mut_ptr(), acc[0]);
                        _mm256_storeu_ps(t.as_mut_ptr().add(8), acc[1]);
                        std::ptr::copy_nonoverlapping(t.as_ptr(), dst, cols);
                    }
                }
            }
        }
    }
}
