//! Timbre-transfer adjustments of an input's features before rendering, as magenta's timbre
//! transfer notebook makes them: shift the input's register by octaves toward the training
//! data's mean pitch and map its note loudness onto the data's distribution (`auto`), turn
//! down frames without a note (breaths, consonants, silences), then manual shifts.

use super::Frames;
use crate::data::{DataStats, QuantileMap};
use crate::dsp::{hz_to_midi_f64, midi_to_hz_f64};
use crate::error::{Error, Result};
use crate::features::notes::detect_notes;

/// What to change in an input's features.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adjustments {
    /// Transpose by this many semitones.
    pub pitch_shift: f64,
    /// Add this many dB to the loudness.
    pub loudness_shift: f64,
    /// Octave-shift toward the training data's mean note pitch and map the loudness of notes
    /// onto the training data's note loudness distribution (needs the checkpoint's data
    /// statistics).
    pub auto: bool,
    /// Frames without a note are turned down by up to this many dB (0 keeps them as they are).
    pub quiet_db: f64,
    /// Note-on ratio at or above which a frame holds a note (magenta's `threshold`).
    pub note_threshold: f64,
}

impl Default for Adjustments {
    /// No shifts, no auto-adjust, frames without notes turned down by up to 20 dB (the
    /// notebook's `quiet`).
    fn default() -> Self {
        Self {
            pitch_shift: 0.0,
            loudness_shift: 0.0,
            auto: false,
            quiet_db: 20.0,
            note_threshold: 1.0,
        }
    }
}

/// The adjusted features and what was done.
#[derive(Clone, Debug, PartialEq)]
pub struct Adjusted {
    /// The features to render.
    pub frames: Frames,
    /// Share of frames detected as notes.
    pub note_share: f64,
    /// Octaves the auto-adjust moved the input by (0 without it).
    pub octave_shift: f64,
    /// Whether the auto-adjust ran (it needs notes in the input).
    pub auto_applied: bool,
}

/// Apply `options` to `frames` (at `frame_rate` frames per second). `stats` are the training
/// data's statistics, needed by `auto`.
pub fn adjust(
    frames: &Frames,
    frame_rate: f64,
    stats: Option<&DataStats>,
    options: &Adjustments,
) -> Result<Adjusted> {
    let n = frames.len();
    let mut f0: Vec<f64> = frames.f0_hz.iter().map(|&v| v as f64).collect();
    let mut loudness = frames.loudness_db.clone();
    let mean_db = loudness.iter().map(|&v| v as f64).sum::<f64>() / n.max(1) as f64;
    let (on, ratio) = detect_notes(
        &loudness,
        &frames.voicing,
        mean_db,
        frame_rate,
        options.note_threshold,
    );
    let notes: Vec<usize> = (0..n).filter(|&i| on[i]).collect();
    let mut octave_shift = 0.0;
    let auto_applied = options.auto && !notes.is_empty();
    if options.auto {
        let stats = stats.ok_or_else(|| {
            Error::Config(
                "--auto-adjust needs the training data's statistics, which this checkpoint \
                 lacks (trained by an older version); adjust by hand with --pitch-shift and \
                 --loudness-shift"
                    .into(),
            )
        })?;
        if auto_applied {
            let mean_pitch =
                notes.iter().map(|&i| hz_to_midi_f64(f0[i])).sum::<f64>() / notes.len() as f64;
            let octaves = (stats.mean_pitch_note - mean_pitch) / 12.0;
            // The notebook's rounding: down beyond 1.5 octaves up, else up.
            octave_shift = if octaves > 1.5 {
                octaves.floor()
            } else {
                octaves.ceil()
            };
            f0.iter_mut().for_each(|v| *v *= 2f64.powf(octave_shift));
            let note_loudness: Vec<f32> = notes.iter().map(|&i| loudness[i]).collect();
            let own = QuantileMap::fit(&note_loudness);
            for &i in &notes {
                loudness[i] = stats.loudness_note.inverse(own.forward(loudness[i]));
            }
        }
    }
    for i in 0..n {
        if !on[i] {
            loudness[i] -= (options.quiet_db * (1.0 - ratio[i] as f64).max(0.0)) as f32;
        }
    }
    let top = midi_to_hz_f64(110.0); // the notebook's f0 ceiling
    let transpose = 2f64.powf(options.pitch_shift / 12.0);
    Ok(Adjusted {
        frames: Frames {
            f0_hz: f0
                .iter()
                .map(|v| (v * transpose).clamp(0.0, top) as f32)
                .collect(),
            loudness_db: loudness
                .iter()
                .map(|v| v + options.loudness_shift as f32)
                .collect(),
            voicing: frames.voicing.clone(),
            // The timbre of the input as it is: magenta's timbre transfer keeps z too.
            mfcc: frames.mfcc.clone(),
        },
        note_share: notes.len() as f64 / n.max(1) as f64,
        octave_shift,
        auto_applied,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 250 Hz frames: 1 s of silence, then 2 s of a note at `f0` and -30 dB rising to -10 dB.
    fn input(f0: f32) -> Frames {
        let mut frames = Frames::default();
        for i in 0..750 {
            let note = i >= 250;
            frames.f0_hz.push(f0);
            frames.loudness_db.push(if note {
                -30.0 + 20.0 * (i - 250) as f32 / 500.0
            } else {
                -80.0
            });
            frames.voicing.push(if note { 0.95 } else { 0.05 });
        }
        frames
    }

    fn stats(mean_pitch_note: f64, note_loudness: &[f32]) -> DataStats {
        DataStats {
            mean_pitch: mean_pitch_note,
            mean_pitch_note,
            mean_loudness: -40.0,
            mean_loudness_note: -20.0,
            loudness_note: QuantileMap::fit(note_loudness),
            frames: note_loudness.len(),
        }
    }

    #[test]
    fn manual_shifts_and_quieting() {
        let x = input(220.0);
        let a = adjust(
            &x,
            250.0,
            None,
            &Adjustments {
                pitch_shift: 12.0,
                loudness_shift: -6.0,
                ..Adjustments::default()
            },
        )
        .unwrap();
        assert!((a.frames.f0_hz[400] - 440.0).abs() < 1e-3);
        assert!((a.frames.loudness_db[500] - (x.loudness_db[500] - 6.0)).abs() < 1e-5);
        // Silence: not a note, turned down by (up to) 20 dB more.
        assert!(a.frames.loudness_db[100] <= -80.0 - 6.0 - 19.0);
        assert!((a.note_share - 2.0 / 3.0).abs() < 0.05, "{}", a.note_share);
        // Without quieting, silence keeps its loudness.
        let b = adjust(
            &x,
            250.0,
            None,
            &Adjustments {
                quiet_db: 0.0,
                ..Adjustments::default()
            },
        )
        .unwrap();
        assert_eq!(b.frames.loudness_db[100], -80.0);
        // Auto-adjust without statistics is a clear error.
        let err = adjust(
            &x,
            250.0,
            None,
            &Adjustments {
                auto: true,
                ..Adjustments::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("statistics"), "{err}");
    }

    #[test]
    fn auto_adjust_moves_octaves_and_maps_note_loudness() {
        // The data: notes around MIDI 81 (A5, 880 Hz), loudness uniform on [-20, -5] dB.
        let data: Vec<f32> = (0..1501).map(|i| -20.0 + i as f32 / 100.0).collect();
        let stats = stats(81.0, &data);
        // An input at A3 (220 Hz, MIDI 57): 2 octaves below; 2.0 > 1.5 rounds down to 2.
        let a = adjust(
            &input(220.0),
            250.0,
            Some(&stats),
            &Adjustments {
                auto: true,
                ..Adjustments::default()
            },
        )
        .unwrap();
        assert!(a.auto_applied);
        assert_eq!(a.octave_shift, 2.0);
        assert!((a.frames.f0_hz[400] - 880.0).abs() < 1e-2);
        // Note loudness: the input's -30..-10 dB ramp becomes the data's -20..-5 dB range,
        // quantile for quantile (the middle of the ramp to the data's median).
        let notes: Vec<f32> = (260..740).map(|i| a.frames.loudness_db[i]).collect();
        assert!(
            notes
                .iter()
                .all(|v| (-20.0 - 1e-3..=-5.0 + 1e-3).contains(v)),
            "{notes:?}"
        );
        assert!(
            (a.frames.loudness_db[500] - -12.5).abs() < 0.5,
            "{}",
            a.frames.loudness_db[500]
        );
        // An input 0.3 octaves below the data goes up a whole octave (the notebook's
        // rounding), one 0.3 octaves above stays.
        let below = midi_to_hz_f64(81.0 - 3.6) as f32;
        let up = adjust(
            &input(below),
            250.0,
            Some(&stats),
            &Adjustments {
                auto: true,
                ..Adjustments::default()
            },
        )
        .unwrap();
        assert_eq!(up.octave_shift, 1.0);
        let above = midi_to_hz_f64(81.0 + 3.6) as f32;
        let stay = adjust(
            &input(above),
            250.0,
            Some(&stats),
            &Adjustments {
                auto: true,
                ..Adjustments::default()
            },
        )
        .unwrap();
        assert_eq!(stay.octave_shift, 0.0);
    }
}
