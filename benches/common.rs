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
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

/// Whether to run the paper-size shapes on this device: always on flex and real GPUs; on a
/// CPU-emulated wgpu adapter (llvmpipe) only with `DDSP_BENCH_EMULATED_PAPER=1` (about 20 s
/// per iteration there).
#[allow(dead_code)]
pub fn run_paper_shape(name: &str, gpu: bool) -> bool {
    name != "wgpu" || gpu || std::env::var("DDSP_BENCH_EMULATED_PAPER").is_ok_and(|v| v == "1")
}

/// Bench `step` with gradients on every device: ids `{shape name}/{device}`, 10 samples. The
/// first shape is small; the second is paper-sized and skipped where [`run_paper_shape`] says.
#[allow(dead_code)]
pub fn bench_small_and_paper<S>(
    c: &mut criterion::Criterion,
    group: &str,
    shapes: [(&str, S); 2],
    step: impl Fn(&Device, &S) -> f32,
) {
    let mut group = c.benchmark_group(group);
    group.sample_size(10);
    for (name, device, gpu) in devices() {
        let ad = device.autodiff();
        for (i, (shape_name, shape)) in shapes.iter().enumerate() {
            if i == 1 && !run_paper_shape(name, gpu) {
                continue;
            }
            group.bench_function(format!("{shape_name}/{name}"), |bench| {
                bench.iter(|| step(&ad, shape))
            });
        }
    }
    group.finish();
}
