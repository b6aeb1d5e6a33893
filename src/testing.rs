//! Test support shared by the unit tests: devices, finite-difference gradient checks and
//! naive reference implementations written straight from the formulas.

use burn::tensor::{Device, Tensor};

use crate::dsp::{from_vec, to_vec};

/// The pure-Rust CPU device with autodiff.
pub fn flex_ad() -> Device {
    Device::flex().autodiff()
}

/// A wgpu device when an adapter exists (GPU or a CPU driver), else `None` with a message.
///
/// The guard serialises the tests that use the device: the test harness runs tests on
/// parallel threads, and CubeCL gives every thread its own stream on the one shared device;
/// the comparisons should measure the kernels, not cross-stream scheduling.
pub fn wgpu_or_skip(test: &str) -> Option<(Device, std::sync::MutexGuard<'static, ()>)> {
    #[cfg(feature = "wgpu")]
    {
        // The lock comes first: looking for an adapter already sets up the drivers (EGL).
        static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let guard = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if crate::device::wgpu_available() {
            return crate::device::select(crate::DeviceChoice::Wgpu)
                .ok()
                .map(|d| (d.device, guard));
        }
    }
    eprintln!("{test}: skipped, no wgpu adapter on this machine");
    None
}

/// Deterministic pseudo-random values in `[lo, hi)` (xorshift; no dependency on test order).
pub fn rand_vec(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            lo + (hi - lo) * ((s >> 40) as f32 / (1u64 << 24) as f32)
        })
        .collect()
}

/// Compare autodiff gradients of a scalar function with central finite differences at the
/// listed flat indices. The function is evaluated on flex (with autodiff, so `f` may use
/// modules built on [`flex_ad`]) in `f32`, so `eps` should suit the function's scale; `tol` bounds `|analytic - numeric|` relative to the largest gradient
/// magnitude checked.
pub fn check_gradient<const D: usize>(
    f: impl Fn(Tensor<D>) -> Tensor<1>,
    x0: &[f32],
    shape: [usize; D],
    indices: &[usize],
    eps: f32,
    tol: f32,
) {
    let device = flex_ad();
    let x = from_vec(x0.to_vec(), shape, &device).require_grad();
    let y = f(x.clone());
    let grads = y.backward();
    let analytic = to_vec(x.grad(&grads).expect("input has a gradient"));
    let eval = |v: Vec<f32>| -> f64 {
        let t = from_vec(v, shape, &device);
        to_vec(f(t))[0] as f64
    };
    let mut scale = 1e-6f64;
    let mut pairs = Vec::new();
    for &i in indices {
        let mut plus = x0.to_vec();
        plus[i] += eps;
        let mut minus = x0.to_vec();
        minus[i] -= eps;
        let numeric = (eval(plus) - eval(minus)) / (2.0 * eps as f64);
        scale = scale.max(numeric.abs()).max(analytic[i].abs() as f64);
        pairs.push((i, analytic[i] as f64, numeric));
    }
    for (i, a, n) in pairs {
        assert!(
            (a - n).abs() <= tol as f64 * scale,
            "gradient at {i}: analytic {a} vs finite difference {n} (scale {scale})"
        );
    }
}

/// Assert two slices agree within `tol` relative to the larger magnitude (floored at 1).
pub fn assert_close(a: &[f32], b: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    let scale = b.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (*x as f64 - y).abs() <= tol * scale,
            "{what}: index {i}: {x} vs reference {y}"
        );
    }
}

/// Naive linear convolution in `f64`: `y[n] = sum_m x[m] h[n - m]`, full length.
pub fn convolve_naive(x: &[f64], h: &[f64]) -> Vec<f64> {
    let mut y = vec![0.0; x.len() + h.len() - 1];
    for (i, xi) in x.iter().enumerate() {
        for (j, hj) in h.iter().enumerate() {
            y[i + j] += xi * hj;
        }
    }
    y
}

/// Assert that folder `dir` holds no temporary file ([`crate::io::is_temp_name`]): what an
/// atomic write leaves behind only when it is interrupted.
pub fn assert_no_temp_files(dir: &std::path::Path) {
    let names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| crate::io::is_temp_name(n)),
        "temporary files in {}: {names:?}",
        dir.display()
    );
}
