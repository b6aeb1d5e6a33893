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
    product(dst, dst_rs, [m, n, k], lhs, rhs, accumulate, parallel);
}

/// [`matmul`] on the calling thread only (the realtime path: no thread pool, no waiting).
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_here(
    dst: &mut [f32],
    dst_rs: usize,
    m: usize,
    n: usize,
    k: usize,
    lhs: Mat,
    rhs: Mat,
    accumulate: bool,
) {
    product(dst, dst_rs, [m, n, k], lhs, rhs, accumulate, false);
}

fn product(
    dst: &mut [f32],
    dst_rs: usize,
    [m, n, k]: [usize; 3],
    lhs: Mat,
    rhs: Mat,
    accumulate: bool,
    parallel: bool,
) {
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
