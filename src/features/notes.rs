//! Which frames hold a note: magenta's `detect_notes`, from loudness and smoothed voicing
//! confidence.

/// Frames per second at which magenta's note detection was tuned (its 40-frame smoothing is
/// 0.16 s there); other frame rates scale the smoothing to the same duration.
const MAGENTA_FRAME_RATE: f64 = 250.0;

/// magenta's `detect_notes` for one track at `frame_rate`: with `c` the voicing confidence
/// squared and box-smoothed over 0.16 s, a frame's note-on ratio is
/// `c * (loudness - min_db) / ((mean_db - min_db) * 0.7^2)`, and it is on when the ratio is at
/// least `threshold` (magenta's `note_threshold`, 1 by default). `mean_db` is the mean
/// loudness the ratio is relative to (the track's own, or a whole dataset's). Returns the
/// note-on flags and the ratios.
pub fn detect_notes(
    loudness_db: &[f32],
    confidence: &[f32],
    mean_db: f64,
    frame_rate: f64,
    threshold: f64,
) -> (Vec<bool>, Vec<f32>) {
    const EXPONENT: i32 = 2;
    const CONFIDENCE_THRESHOLD: f64 = 0.7;
    const MIN_DB: f64 = -80.0;
    let width = ((40.0 * frame_rate / MAGENTA_FRAME_RATE).round() as usize).max(1);
    let powered: Vec<f64> = confidence
        .iter()
        .map(|&c| (c as f64).powi(EXPONENT))
        .collect();
    let smooth = box_smooth(&powered, width);
    let db_threshold = (mean_db - MIN_DB) * CONFIDENCE_THRESHOLD.powi(EXPONENT);
    let ratio: Vec<f32> = smooth
        .iter()
        .zip(loudness_db)
        .map(|(c, &l)| (c * (l as f64 - MIN_DB) / db_threshold) as f32)
        .collect();
    let on = ratio.iter().map(|&r| r as f64 >= threshold).collect();
    (on, ratio)
}

/// Mean of a box of `width` values around each point, zero outside the signal (TensorFlow's
/// `conv1d` with `padding='SAME'`: `(width - 1) / 2` before, the rest after).
fn box_smooth(x: &[f64], width: usize) -> Vec<f64> {
    let before = (width - 1) / 2;
    let mut prefix = vec![0.0; x.len() + 1];
    for (i, v) in x.iter().enumerate() {
        prefix[i + 1] = prefix[i] + v;
    }
    (0..x.len())
        .map(|i| {
            let lo = i.saturating_sub(before);
            let hi = (i + width - before).min(x.len());
            (prefix[hi] - prefix[lo]) / width as f64
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_is_a_centred_box_with_zero_padding() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        // Width 4: one value before, two after, divided by 4 even at the edges.
        assert_eq!(
            box_smooth(&x, 4),
            [
                (1.0 + 2.0 + 3.0) / 4.0,
                (1.0 + 2.0 + 3.0 + 4.0) / 4.0,
                (2.0 + 3.0 + 4.0 + 5.0) / 4.0,
                (3.0 + 4.0 + 5.0) / 4.0,
                (4.0 + 5.0) / 4.0
            ]
        );
    }

    #[test]
    fn loud_confident_frames_are_notes_and_quiet_or_unvoiced_ones_are_not() {
        // 250 Hz frames: 1 s of silence, 1 s of a confident note at -20 dB, 1 s of loud
        // unvoiced noise.
        let mut loudness = vec![-80.0f32; 250];
        loudness.extend(vec![-20.0f32; 250]);
        loudness.extend(vec![-20.0f32; 250]);
        let mut confidence = vec![0.0f32; 250];
        confidence.extend(vec![0.95f32; 250]);
        confidence.extend(vec![0.1f32; 250]);
        let mean = loudness.iter().map(|&v| v as f64).sum::<f64>() / loudness.len() as f64;
        let (on, ratio) = detect_notes(&loudness, &confidence, mean, 250.0, 1.0);
        assert!(on[300..450].iter().all(|&v| v), "the note");
        assert!(on[..200].iter().all(|&v| !v), "silence");
        assert!(on[550..].iter().all(|&v| !v), "unvoiced noise");
        // The ratio's formula in the middle of the note.
        let expected = 0.95f64.powi(2) * 60.0 / ((mean + 80.0) * 0.49);
        assert!((ratio[375] as f64 - expected).abs() < 1e-5);
        // At 125 Hz frames the smoothing spans the same 0.16 s (20 frames).
        let half: Vec<f32> = loudness.iter().step_by(2).copied().collect();
        let conf: Vec<f32> = confidence.iter().step_by(2).copied().collect();
        let (on_half, _) = detect_notes(&half, &conf, mean, 125.0, 1.0);
        let (full, half) = (
            on.iter().filter(|&&v| v).count() as i64,
            on_half.iter().filter(|&&v| v).count() as i64,
        );
        assert!(
            (2 * half - full).abs() <= 4,
            "{half} of 375 frames vs {full} of 750"
        );
    }
}
