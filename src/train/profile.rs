//! `--kernel-dump`'s per-phase step timings.

use burn::tensor::Device;

/// The phases of an optimisation step, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Drawing the batch and uploading it.
    Data,
    /// Decoder, synth, loss and its read-back.
    Forward,
    /// Gradients and their accumulation.
    Backward,
    /// Gradient norm, clipping, Adam.
    Optimizer,
}

/// Per-phase step timings: the device is synchronised at each phase boundary and the
/// wall-clock milliseconds of each [`Phase`] are summed over the step's micro-batches, one CSV
/// row per step. Synchronising costs a little on GPU backends, where work is otherwise
/// queued; the per-kernel picture is CubeCL's (see [`crate::device::log_kernels`]).
pub struct PhaseProfiler {
    device: Device,
    last: std::time::Instant,
    /// Milliseconds per phase of the current step, in [`Phase`] order.
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

    /// Close the current phase (after a device sync) and start the next.
    pub fn mark(&mut self, phase: Phase) {
        let _ = self.device.sync();
        let now = std::time::Instant::now();
        self.phases[phase as usize] += (now - self.last).as_secs_f64() * 1e3;
        self.last = now;
    }

    /// Start a step: synchronise and zero the phases.
    pub fn start(&mut self) {
        let _ = self.device.sync();
        self.last = std::time::Instant::now();
        self.phases = [0.0; 4];
    }
}
