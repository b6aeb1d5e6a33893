//! Devices to benchmark on: flex always, wgpu when an adapter exists.

use burn::tensor::Device;

/// `(name, device, is_real_gpu)` for every available backend.
#[allow(dead_code)] // not every bench uses it
pub fn devices() -> Vec<(&'static str, Device, bool)> {
    let mut v = vec![("flex", Device::flex(), false)];
    if ddsp::device::wgpu_available()
        && let Ok(d) = ddsp::device::select(ddsp::DeviceChoice::Wgpu)
    {
        v.push(("wgpu", d.device, ddsp::device::wgpu_gpu_available()));
    }
    #[cfg(feature = "cuda")]
    if let Ok(d) = ddsp::device::select(ddsp::DeviceChoice::Cuda) {
        v.push(("cuda", d.device, true));
    }
    v
}

/// Deterministic values in `[lo, hi)`.
#[allow(dead_code)]
pub fn values(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
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
