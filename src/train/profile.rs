//! `--kernel-dump`: per-phase step timings.

use burn::tensor::Device;

/// Per-phase step timings for `--kernel-dump`.
///
/// Burn 0.22 exposes neither the compiled kernels' sources nor a per-op profiler, only
/// device-timed windows; this profiler synchronises the device at each phase boundary and
/// records wall-clock milliseconds of `data` (batch upload), `forward` (decoder, synth, loss
/// and its read-back), `backward` (gradients and accumulation) and `optimizer` (gradient norm,
/// clipping, Adam), one CSV row per step.
pub struct PhaseProfiler {
    device: Device,
    last: std::time::Instant,
    /// Milliseconds per phase of the current step.
    pub phases: [f64; 4],
}

impl PhaseProfiler {
    /// Column names of the phases.
    pub const NAMES: [&'static str; 4] = ["data", "forward", "backward", "optimizer"];

    /// A profiler that synchronises `device`.
    pub fn new(device: Device) -> Self {
        Self {
            device,
            last: std::time::Instant::now(),
            phases: [0.0; 4],
        }
    }

    /// Close the current phase `i` (after a device sync) and start the next.
    pub fn mark(&mut self, i: usize) {
        let _ = self.device.sync();
        let now = std::time::Instant::now();
        self.phases[i] += (now - self.last).as_secs_f64() * 1e3;
        self.last = now;
    }

    /// Start a step: synchronise and zero the phases.
    pub fn start(&mut self) {
        let _ = self.device.sync();
        self.last = std::time::Instant::now();
        self.phases = [0.0; 4];
    }
}
