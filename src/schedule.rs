//! Step-dependent values (loss weights, the softmax temperature): hold, then a linear ramp.

/// A value that stays at `start` for `warmup` steps, then moves linearly to `end` over `ramp`
/// steps and stays there. The original tool's `*Weight`, `*WeightEnd`, `*WarmupSteps`,
/// `*RampSteps` option groups are each one `Schedule`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    /// Value during warmup.
    pub start: f64,
    /// Value after the ramp.
    pub end: f64,
    /// Steps held at `start`.
    pub warmup: usize,
    /// Steps of the linear ramp.
    pub ramp: usize,
}

impl Schedule {
    /// A constant value.
    pub fn constant(value: f64) -> Self {
        Self {
            start: value,
            end: value,
            warmup: 0,
            ramp: 0,
        }
    }

    /// `start` held for `warmup` steps, then a ramp of `ramp` steps to `end` (`start` when
    /// `end` is unset).
    pub fn new(start: f64, end: Option<f64>, warmup: usize, ramp: usize) -> Self {
        Self {
            start,
            end: end.unwrap_or(start),
            warmup,
            ramp,
        }
    }

    /// Whether the value is non-zero at some step.
    pub fn ever_nonzero(&self) -> bool {
        self.start != 0.0 || self.end != 0.0
    }

    /// The steps where the value can change slope: 0, the end of the warmup and the end of the
    /// ramp. Between them it is linear, so extremes over all steps lie on these.
    pub fn breakpoints(&self) -> [usize; 3] {
        [0, self.warmup, self.warmup + self.ramp]
    }

    /// The value at `step` (0-based).
    pub fn at(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.start;
        }
        if self.ramp == 0 {
            return self.end;
        }
        let t = ((step - self.warmup) as f64 / self.ramp as f64).min(1.0);
        self.start + (self.end - self.start) * t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_then_ramps_linearly() {
        let s = Schedule {
            start: 0.0,
            end: 2.0,
            warmup: 100,
            ramp: 200,
        };
        assert_eq!(s.at(0), 0.0);
        assert_eq!(s.at(99), 0.0);
        assert_eq!(s.at(100), 0.0);
        assert!((s.at(200) - 1.0).abs() < 1e-12);
        assert_eq!(s.at(300), 2.0);
        assert_eq!(s.at(10_000), 2.0);
        let jump = Schedule { ramp: 0, ..s };
        assert_eq!(jump.at(99), 0.0);
        assert_eq!(jump.at(100), 2.0);
        assert_eq!(Schedule::constant(0.5).at(7), 0.5);
    }
}
