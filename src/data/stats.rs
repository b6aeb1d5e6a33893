//! Statistics of a training set that inference maps new inputs onto (magenta's
//! `compute_dataset_statistics`): the mean pitch and the loudness distribution of its notes.

use serde::{Deserialize, Serialize};

use super::{Dataset, Split};
use crate::dsp::hz_to_midi_f64;
use crate::features::notes::detect_notes;

/// Landmarks of a [`QuantileMap`] (magenta's `n_quantiles`).
const N_QUANTILES: usize = 1000;
/// Values a quantile map is fitted on at most (magenta's `subsample`); larger sets are thinned
/// evenly.
const MAX_FIT_VALUES: usize = 100_000;
/// Seconds trimmed from the end of every chunk before the statistics (magenta's 20 frames
/// at 250 Hz: the end of a chunk has truncated analysis windows).
const TRIM_SECONDS: f64 = 0.08;

/// The empirical distribution of a set of values as `n` quantiles at evenly spaced
/// probabilities (magenta's stripped-down `QuantileTransformer`, uniform output).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct QuantileMap {
    /// The values at probabilities `0, 1/(n-1), ..., 1`, non-decreasing.
    pub quantiles: Vec<f32>,
}

impl QuantileMap {
    /// Fit to `values` (at least one): linear-interpolation percentiles, as `np.percentile`.
    pub fn fit(values: &[f32]) -> Self {
        let step = values.len().div_ceil(MAX_FIT_VALUES).max(1);
        let mut v: Vec<f64> = values.iter().step_by(step).map(|&x| x as f64).collect();
        v.sort_by(f64::total_cmp);
        let n = N_QUANTILES.min(v.len()).max(1);
        let quantiles = (0..n)
            .map(|i| {
                let p = if n == 1 {
                    0.0
                } else {
                    i as f64 / (n - 1) as f64
                };
                let pos = p * (v.len() - 1) as f64;
                let (lo, frac) = (pos.floor() as usize, pos - pos.floor());
                let hi = (lo + 1).min(v.len() - 1);
                (v[lo] + (v[hi] - v[lo]) * frac) as f32
            })
            .collect();
        Self { quantiles }
    }

    fn probabilities(&self) -> Vec<f64> {
        let n = self.quantiles.len();
        (0..n)
            .map(|i| {
                if n == 1 {
                    0.0
                } else {
                    i as f64 / (n - 1) as f64
                }
            })
            .collect()
    }

    /// The probability of `x` under the distribution, in `[0, 1]`: interpolated up and down
    /// the quantiles and averaged, so runs of equal quantiles map to their middle (as
    /// scikit-learn's transform).
    pub fn forward(&self, x: f32) -> f64 {
        let q: Vec<f64> = self.quantiles.iter().map(|&v| v as f64).collect();
        let p = self.probabilities();
        let up = interp(x as f64, &q, &p);
        let neg_q: Vec<f64> = q.iter().rev().map(|v| -v).collect();
        let neg_p: Vec<f64> = p.iter().rev().map(|v| -v).collect();
        let down = -interp(-(x as f64), &neg_q, &neg_p);
        0.5 * (up + down)
    }

    /// The value at probability `u` (clamped to `[0, 1]`).
    pub fn inverse(&self, u: f64) -> f32 {
        let q: Vec<f64> = self.quantiles.iter().map(|&v| v as f64).collect();
        interp(u.clamp(0.0, 1.0), &self.probabilities(), &q) as f32
    }
}

/// `np.interp`: piecewise-linear through `(xs, ys)` (`xs` non-decreasing), clamped at the ends.
fn interp(x: f64, xs: &[f64], ys: &[f64]) -> f64 {
    if x <= xs[0] {
        return ys[0];
    }
    let last = xs.len() - 1;
    if x >= xs[last] {
        return ys[last];
    }
    let i = xs.partition_point(|&v| v <= x).clamp(1, last);
    let (x0, x1) = (xs[i - 1], xs[i]);
    if x1 == x0 {
        return ys[i];
    }
    ys[i - 1] + (ys[i] - ys[i - 1]) * (x - x0) / (x1 - x0)
}

/// What inference needs to know about the data a model was trained on.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DataStats {
    /// Mean pitch (MIDI) over all frames.
    pub mean_pitch: f64,
    /// Mean pitch (MIDI) over note frames.
    pub mean_pitch_note: f64,
    /// Mean loudness (dB) over all frames.
    pub mean_loudness: f64,
    /// Mean loudness (dB) over note frames.
    pub mean_loudness_note: f64,
    /// The loudness distribution of note frames.
    pub loudness_note: QuantileMap,
    /// Frames the statistics were computed from.
    pub frames: usize,
}

impl DataStats {
    /// The statistics of a split (every frame of its chunks but the last 0.08 s of each); `None`
    /// when it has no frame.
    pub fn of(data: &Dataset, split: Split) -> Option<Self> {
        let config = &data.manifest.config;
        let frame_rate = config.sample_rate / config.frame_hop as f64;
        let trim = (TRIM_SECONDS * frame_rate).round() as usize;
        let chunks: Vec<_> = data
            .chunks
            .iter()
            .filter(|c| c.entry.split == split && c.f0_hz.len() > trim)
            .collect();
        let keep = |v: &Vec<f32>| v[..v.len() - trim].to_vec();
        let loudness: Vec<Vec<f32>> = chunks.iter().map(|c| keep(&c.loudness_db)).collect();
        let all: Vec<f32> = loudness.concat();
        if all.is_empty() {
            return None;
        }
        let mean = |v: &[f32]| v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        let mean_db = mean(&all);
        let (mut pitch, mut pitch_note, mut loud_note) = (Vec::new(), Vec::new(), Vec::new());
        for (c, ld) in chunks.iter().zip(&loudness) {
            let (on, _) = detect_notes(ld, &keep(&c.voiced_prob), mean_db, frame_rate, 1.0);
            // A chunk without a detected note counts whole (magenta's fallback).
            let any = on.iter().any(|&v| v);
            for (i, &f0) in keep(&c.f0_hz).iter().enumerate() {
                let p = hz_to_midi_f64(f0 as f64) as f32;
                pitch.push(p);
                if on[i] || !any {
                    pitch_note.push(p);
                    loud_note.push(ld[i]);
                }
            }
        }
        Some(Self {
            mean_pitch: mean(&pitch),
            mean_pitch_note: mean(&pitch_note),
            mean_loudness: mean_db,
            mean_loudness_note: mean(&loud_note),
            loudness_note: QuantileMap::fit(&loud_note),
            frames: all.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_match_numpy_percentiles_and_invert() {
        // np.percentile([1, 2, 3, 4, 10], [0, 25, 50, 75, 100]) = [1, 2, 3, 4, 10].
        let m = QuantileMap::fit(&[4.0, 1.0, 10.0, 3.0, 2.0]);
        assert_eq!(m.quantiles, [1.0, 2.0, 3.0, 4.0, 10.0]);
        assert_eq!(m.forward(3.0), 0.5);
        assert_eq!(
            m.forward(7.0),
            0.875,
            "halfway between 4 (0.75) and 10 (1.0)"
        );
        assert_eq!((m.forward(-5.0), m.forward(50.0)), (0.0, 1.0));
        for u in [0.0, 0.1, 0.5, 0.875, 1.0] {
            assert!((m.forward(m.inverse(u)) - u).abs() < 1e-6);
        }
        // Repeated values map to the middle of their run.
        let flat = QuantileMap::fit(&[0.0, 1.0, 1.0, 1.0, 2.0]);
        assert_eq!(flat.forward(1.0), 0.5);
        // 1000 quantiles of 0..=99999: every 100.1th value.
        let many: Vec<f32> = (0..100_000).map(|i| i as f32).collect();
        let m = QuantileMap::fit(&many);
        assert_eq!(m.quantiles.len(), 1000);
        assert!((m.quantiles[500] as f64 - 500.0 * 99_999.0 / 999.0).abs() < 0.01);
    }

    #[test]
    fn mapping_one_distribution_onto_another_matches_their_quantiles() {
        // Input loudness uniform on [-60, -40] dB, the data's on [-30, -10]: the mapping of the
        // input's own quantiles through the data's inverse is a shift by 30 dB.
        let input: Vec<f32> = (0..2001).map(|i| -60.0 + i as f32 / 100.0).collect();
        let data: Vec<f32> = (0..2001).map(|i| -30.0 + i as f32 / 100.0).collect();
        let (own, target) = (QuantileMap::fit(&input), QuantileMap::fit(&data));
        for x in [-60.0f32, -55.5, -50.0, -41.0] {
            let y = target.inverse(own.forward(x));
            assert!((y - (x + 30.0)).abs() < 0.02, "{x} -> {y}");
        }
    }
}
