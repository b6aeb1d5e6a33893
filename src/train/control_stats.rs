//! Control statistics of a training run (the alignment plan's stage 0): how the decoder
//! spreads energy over the harmonics, how loud and how noisy its controls are, logged every
//! `logEvery` steps to `logs/controls.csv` and drawn in `logs/control_stats.png`, with a
//! warning when the harmonic distribution collapses onto one harmonic.

use crate::dsp::to_vec;
use crate::synth::SynthControls;

/// A frame's harmonic distribution, normalised: `(entropy in nats, largest share,
/// centroid in harmonics)` (all 0 for a silent frame).
pub fn distribution_summary(row: &[f32]) -> (f32, f32, f32) {
    let total: f32 = row.iter().sum::<f32>();
    if total.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        return (0.0, 0.0, 0.0);
    }
    let (mut entropy, mut top, mut centroid) = (0.0f32, 0.0f32, 0.0f32);
    for (i, v) in row.iter().enumerate() {
        let p = v / total;
        if p > 0.0 {
            entropy -= p * p.ln();
        }
        top = top.max(p);
        centroid += (i + 1) as f32 * p;
    }
    (entropy, top, centroid)
}

/// Share of the largest harmonic above which the distribution counts as collapsed.
pub const COLLAPSE_SHARE: f64 = 0.9;
/// Logged rows in a row above [`COLLAPSE_SHARE`] before the run warns.
pub const COLLAPSE_ROWS: usize = 5;

/// Loudest noise-to-harmonic ratio reported (a silent harmonic branch), dB; also the floor.
const RATIO_LIMIT_DB: f64 = 120.0;

/// Statistics of one batch's controls, averaged over its items and frames.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ControlStats {
    /// Mean entropy of the harmonic distribution, nats (`ln K` when flat, 0 on one harmonic).
    pub entropy: f64,
    /// Mean share of the largest harmonic (`1/K` when flat, 1 on one harmonic).
    pub top_share: f64,
    /// Mean sum of the harmonic amplitudes (gain times the distribution's sum).
    pub amplitude_sum: f64,
    /// Smallest harmonic gain over the frames.
    pub gain_min: f64,
    /// Largest harmonic gain over the frames.
    pub gain_max: f64,
    /// Mean noise band magnitude over the mean harmonic amplitude sum, dB (-120 without a
    /// noise branch).
    pub noise_to_harmonic_db: f64,
}

impl ControlStats {
    /// The columns of `logs/controls.csv` after `step`.
    pub const COLUMNS: [&'static str; 6] = [
        "harmonic_entropy",
        "top_harmonic_share",
        "amplitude_sum",
        "gain_min",
        "gain_max",
        "noise_to_harmonic_db",
    ];

    /// The statistics of `controls` (read back from the device).
    pub fn of(controls: &SynthControls) -> Self {
        let [_, _, k] = controls.distribution.dims();
        let dist = to_vec(controls.distribution.clone());
        let amp = to_vec(controls.amplitude.clone());
        let frames = amp.len().max(1);
        let (mut entropy, mut top, mut sum) = (0.0f64, 0.0f64, 0.0f64);
        for (row, a) in dist.chunks(k.max(1)).zip(&amp) {
            let (e, t, _) = distribution_summary(row);
            entropy += e as f64;
            top += t as f64;
            sum += (a * row.iter().sum::<f32>()) as f64;
        }
        let (gain_min, gain_max) = amp
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &a| {
                (lo.min(a as f64), hi.max(a as f64))
            });
        let amplitude_sum = sum / frames as f64;
        let noise_to_harmonic_db = match &controls.noise_magnitudes {
            Some(n) => {
                let n = to_vec(n.clone());
                let mean = n.iter().map(|v| *v as f64).sum::<f64>() / n.len().max(1) as f64;
                (20.0 * (mean / amplitude_sum).log10()).clamp(-RATIO_LIMIT_DB, RATIO_LIMIT_DB)
            }
            None => -RATIO_LIMIT_DB,
        };
        Self {
            entropy: entropy / frames as f64,
            top_share: top / frames as f64,
            amplitude_sum,
            gain_min,
            gain_max,
            noise_to_harmonic_db: if noise_to_harmonic_db.is_nan() {
                -RATIO_LIMIT_DB
            } else {
                noise_to_harmonic_db
            },
        }
    }

    /// The values in [`Self::COLUMNS`] order.
    pub fn values(&self) -> [f64; 6] {
        [
            self.entropy,
            self.top_share,
            self.amplitude_sum,
            self.gain_min,
            self.gain_max,
            self.noise_to_harmonic_db,
        ]
    }
}

/// Watches the logged statistics for a collapse onto one harmonic.
#[derive(Debug, Default)]
pub struct CollapseWatch {
    rows_above: usize,
}

impl CollapseWatch {
    /// Take a logged row; returns the warning, once, when the top harmonic's share has stayed
    /// above [`COLLAPSE_SHARE`] for [`COLLAPSE_ROWS`] rows in a row.
    pub fn observe(&mut self, stats: &ControlStats, step: usize) -> Option<String> {
        if stats.top_share > COLLAPSE_SHARE {
            self.rows_above += 1;
        } else {
            self.rows_above = 0;
        }
        (self.rows_above == COLLAPSE_ROWS).then(|| {
            format!(
                "the harmonic distribution is collapsing: one harmonic has held {:.0}% of it \
                 for {COLLAPSE_ROWS} logged steps (step {step}; entropy {:.2} nats). See \
                 logs/controls.csv; a higher softmax temperature, control smoothing or a lower \
                 learning rate may help",
                100.0 * stats.top_share,
                stats.entropy
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::from_vec;
    use burn::tensor::Device;

    #[test]
    fn summaries_of_flat_and_single_harmonic_distributions() {
        let (e, t, c) = distribution_summary(&[1.0, 1.0, 1.0, 1.0]);
        assert!((e - 4f32.ln()).abs() < 1e-6 && (t - 0.25).abs() < 1e-6 && (c - 2.5).abs() < 1e-6);
        let (e, t, c) = distribution_summary(&[0.0, 3.0, 0.0]);
        assert!(e.abs() < 1e-7 && (t - 1.0).abs() < 1e-7 && (c - 2.0).abs() < 1e-7);
        assert_eq!(distribution_summary(&[0.0, 0.0]), (0.0, 0.0, 0.0));
    }

    /// Two frames, values worked out by hand: flat over 2 harmonics at gain 0.5 and one
    /// harmonic at gain 0.1; noise bands of 0.03 mean.
    #[test]
    fn stats_of_known_controls() {
        let device = Device::flex();
        let controls = SynthControls {
            f0_hz: from_vec(vec![220.0, 220.0], [1, 2], &device),
            amplitude: from_vec(vec![0.5, 0.1], [1, 2], &device),
            distribution: from_vec(vec![0.5, 0.5, 1.0, 0.0], [1, 2, 2], &device),
            noise_magnitudes: Some(from_vec(vec![0.02, 0.04, 0.03, 0.03], [1, 2, 2], &device)),
        };
        let s = ControlStats::of(&controls);
        assert!((s.entropy - 2f64.ln() / 2.0).abs() < 1e-6);
        assert!((s.top_share - 0.75).abs() < 1e-6);
        assert!((s.amplitude_sum - 0.3).abs() < 1e-6);
        assert!((s.gain_min - 0.1).abs() < 1e-7 && (s.gain_max - 0.5).abs() < 1e-7);
        assert!((s.noise_to_harmonic_db - 20.0 * (0.03f64 / 0.3).log10()).abs() < 1e-4);
        let mut watch = CollapseWatch::default();
        let collapsed = ControlStats {
            top_share: 0.95,
            ..s
        };
        let warnings: Vec<_> = (0..12)
            .filter_map(|i| watch.observe(&collapsed, i))
            .collect();
        assert_eq!(warnings.len(), 1, "one warning per collapse");
        assert!(watch.observe(&s, 13).is_none());
    }
}
