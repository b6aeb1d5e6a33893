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

/// `y[m, n] += x[m, k] w[k, n]` for a few rows on the calling thread, allocating nothing
/// (the realtime path; `gemm` packs its operands into fresh buffers on every call). `x` rows
/// have stride `x_rs`, `w` and `y` are row-major. Rows go four at a time, so each row of `w`
/// is read once per four outputs; the inner loop is an AXPY the compiler vectorises, with
/// AVX2 and FMA where the CPU has them (detected at run time, as `gemm` does).
pub(crate) fn matmul_rows(y: &mut [f32], x: &[f32], x_rs: usize, w: &[f32], dims: [usize; 3]) {
    let [m, n, k] = dims;
    assert!(
        y.len() >= m * n && w.len() >= k * n && (m == 0 || x.len() >= (m - 1) * x_rs + k),
        "matmul_rows bounds"
    );
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features the function is compiled for (checked above).
        unsafe { matmul_rows_avx2(y, x, x_rs, w, dims) };
        return;
    }
    rows_kernel::<false>(y, x, x_rs, w, dims);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn matmul_rows_avx2(y: &mut [f32], x: &[f32], x_rs: usize, w: &[f32], dims: [usize; 3]) {
    rows_kernel::<true>(y, x, x_rs, w, dims);
}

/// `a * w + y`, fused where `FMA` (only inside a function compiled with FMA: elsewhere
/// `mul_add` is a slow library call).
#[inline(always)]
fn madd<const FMA: bool>(a: f32, w: f32, y: f32) -> f32 {
    if FMA { a.mul_add(w, y) } else { a * w + y }
}

/// The body of [`matmul_rows`], inlined into each instruction-set variant.
#[inline(always)]
fn rows_kernel<const FMA: bool>(
    y: &mut [f32],
    x: &[f32],
    x_rs: usize,
    w: &[f32],
    [m, n, k]: [usize; 3],
) {
    for r in (0..m).step_by(4) {
        let rows = (m - r).min(4);
        let (y0, rest) = y[r * n..].split_at_mut(n);
        let (y1, rest) = rest.split_at_mut(if rows > 1 { n } else { 0 });
        let (y2, rest) = rest.split_at_mut(if rows > 2 { n } else { 0 });
        let y3 = &mut rest[..if rows > 3 { n } else { 0 }];
        let xr = |i: usize, j: usize| if i < rows { x[(r + i) * x_rs + j] } else { 0.0 };
        for j in 0..k {
            let wj = &w[j * n..][..n];
            let (a0, a1, a2, a3) = (xr(0, j), xr(1, j), xr(2, j), xr(3, j));
            match rows {
                1 => {
                    for (p, w) in y0.iter_mut().zip(wj) {
                        *p = madd::<FMA>(a0, *w, *p);
                    }
                }
                2 => {
                    for ((p, q), w) in y0.iter_mut().zip(y1.iter_mut()).zip(wj) {
                        *p = madd::<FMA>(a0, *w, *p);
                        *q = madd::<FMA>(a1, *w, *q);
                    }
                }
                3 => {
                    let rows3 = y0.iter_mut().zip(y1.iter_mut()).zip(y2.iter_mut());
                    for (((p, q), s), w) in rows3.zip(wj) {
                        *p = madd::<FMA>(a0, *w, *p);
                        *q = madd::<FMA>(a1, *w, *q);
                        *s = madd::<FMA>(a2, *w, *s);
                    }
                }
                _ => {
                    let rows4 = y0
                        .iter_mut()
                        .zip(y1.iter_mut())
                        .zip(y2.iter_mut())
                        .zip(y3.iter_mut());
                    for ((((p, q), s), t), w) in rows4.zip(wj) {
                        *p = madd::<FMA>(a0, *w, *p);
                        *q = madd::<FMA>(a1, *w, *q);
                        *s = madd::<FMA>(a2, *w, *s);
                        *t = madd::<FMA>(a3, *w, *t);
                    }
                }
            }
        }
    }
}
