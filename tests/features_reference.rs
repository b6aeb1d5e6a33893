//! Feature quality against independent references (`../shared/reference/`): f0 from CREPE
//! "full" with Viterbi, loudness from magenta ddsp's `compute_loudness`.

use ddsp::features::{audio, loudness, pitch};
use std::path::{Path, PathBuf};

const INSTRUMENTS: [&str; 4] = ["violin", "flute", "trumpet", "cello"];

/// `../shared`, or `None` (test skipped) when absent outside CI.
fn shared() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared");
    if p.join("reference").is_dir() {
        return Some(p);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("../shared/reference is missing in CI");
    }
    eprintln!("skipped: ../shared/reference not found");
    None
}

fn read_csv(path: &Path) -> Vec<Vec<f64>> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|v| v.trim().parse().unwrap()).collect())
        .collect()
}

/// Sounding MIDI note frequency (Hz) at each time, from the MIDI file; 0 where silent.
fn midi_notes(path: &Path, times: &[f64]) -> Vec<f64> {
    let notes = ddsp::features::midi::read_midi(path).unwrap();
    times
        .iter()
        .map(|&t| {
            notes
                .iter()
                .find(|n| t >= n.start && t < n.end)
                .map(|n| 440.0 * 2f64.powf((n.key as f64 - 69.0) / 12.0))
                .unwrap_or(0.0)
        })
        .collect()
}

struct PitchScores {
    median_cents: f64,
    gross: f64,
    agreement: f64,
    compared: usize,
}

/// Reference frames count as voiced at CREPE confidence >= 0.5, CREPE's own decision
/// midpoint. (The DDSP paper's 0.85 selects *confidently* voiced training frames; on the cello
/// CREPE stays below it on many frames where the MIDI note sounds, see
/// `voicing_and_f0_match_the_midi_ground_truth`, so it is no voicing decision.)
const REF_VOICED: f64 = 0.5;

fn pitch_scores(shared: &Path, name: &str, min_f0: f64, max_f0: f64) -> PitchScores {
    let wav = shared.join(format!("audio/dev/{name}_fluidr3.wav"));
    let decoded = audio::read_audio(&wav).unwrap();
    assert_eq!(decoded.sample_rate, 16000);
    let reference = read_csv(&shared.join(format!("reference/{name}_fluidr3.f0.csv")));
    let config = pitch::PitchConfig::new(16000.0, 256, min_f0, max_f0);
    let track = ddsp::features::track_pitch(&decoded.samples, &config);
    assert_eq!(track.f0_hz.len(), reference.len(), "frame count");
    let times: Vec<f64> = reference.iter().map(|r| r[0]).collect();
    let notes = midi_notes(&shared.join(format!("reference/midi/{name}.mid")), &times);
    let mut errors = Vec::new();
    let (mut agree, mut total) = (0usize, 0usize);
    for (i, r) in reference.iter().enumerate() {
        if notes[i] > 1950.0 {
            continue; // outside CREPE's range
        }
        let ours = track.voiced_prob[i] as f64 >= config.voiced_threshold;
        let theirs = r[2] >= REF_VOICED;
        total += 1;
        agree += (ours == theirs) as usize;
        if ours && theirs {
            let e = (1200.0 * (track.f0_hz[i] as f64 / r[1]).log2()).abs();
            if e > 50.0 && std::env::var("DDSP_DBG").is_ok() {
                eprintln!(
                    "  {name} t={:.3} ours {:.1} (p {:.2}) ref {:.1} (c {:.2}) midi {:.1}",
                    r[0], track.f0_hz[i], track.voiced_prob[i], r[1], r[2], notes[i]
                );
            }
            errors.push(e);
        }
    }
    errors.sort_by(f64::total_cmp);
    PitchScores {
        median_cents: errors[errors.len() / 2],
        gross: errors.iter().filter(|e| **e > 50.0).count() as f64 / errors.len() as f64,
        agreement: agree as f64 / total as f64,
        compared: errors.len(),
    }
}

#[test]
fn f0_and_voicing_match_crepe() {
    let Some(shared) = shared() else { return };
    for name in INSTRUMENTS {
        // One general range for every instrument: no per-file tuning.
        let s = pitch_scores(&shared, name, 50.0, 2400.0);
        eprintln!(
            "{name}: median {:.2} cents, gross {:.2}%, voicing agreement {:.1}% ({} frames compared)",
            s.median_cents,
            100.0 * s.gross,
            100.0 * s.agreement,
            s.compared
        );
        assert!(s.compared > 500, "{name}: too few voiced frames compared");
        assert!(
            s.median_cents <= 15.0,
            "{name}: median error {:.2} cents",
            s.median_cents
        );
        assert!(
            s.gross <= 0.03,
            "{name}: {:.2}% gross errors",
            100.0 * s.gross
        );
        assert!(
            s.agreement >= 0.90,
            "{name}: voicing agreement {:.1}%",
            100.0 * s.agreement
        );
    }
}

#[test]
fn loudness_matches_ddsp() {
    let Some(shared) = shared() else { return };
    for name in INSTRUMENTS {
        let wav = shared.join(format!("audio/dev/{name}_fluidr3.wav"));
        let samples = audio::read_audio(&wav).unwrap().samples;
        for (n_fft, hop) in [(1024usize, 256usize), (512, 64)] {
            let reference = read_csv(&shared.join(format!(
                "reference/{name}_fluidr3.loudness_{n_fft}_{hop}.csv"
            )));
            let ours = loudness::compute_loudness(&samples, 16000.0, n_fft, hop);
            assert_eq!(ours.len(), reference.len(), "{name} {n_fft}: frame count");
            let mut worst = 0.0f64;
            let mut n = 0;
            for (o, r) in ours.iter().zip(&reference) {
                if r[1] > -60.0 {
                    worst = worst.max((*o as f64 - r[1]).abs());
                    n += 1;
                }
            }
            eprintln!("{name} {n_fft}/{hop}: max |error| {worst:.4} dB over {n} frames");
            assert!(n > 100);
            assert!(
                worst <= 0.5,
                "{name} {n_fft}/{hop}: loudness off by {worst:.3} dB"
            );
        }
    }
}

/// Sustained frames (note-on + 60 ms to note-off - 30 ms) from the MIDI files: `(time, Hz)`.
fn sustained_frames(shared: &Path, name: &str, times: &[f64]) -> Vec<(usize, f64)> {
    let on = midi_notes(&shared.join(format!("reference/midi/{name}.mid")), times);
    let early: Vec<f64> = times.iter().map(|t| t - 0.06).collect();
    let late: Vec<f64> = times.iter().map(|t| t + 0.03).collect();
    let before = midi_notes(&shared.join(format!("reference/midi/{name}.mid")), &early);
    let after = midi_notes(&shared.join(format!("reference/midi/{name}.mid")), &late);
    (0..times.len())
        .filter(|&i| on[i] > 0.0 && before[i] == on[i] && after[i] == on[i])
        .map(|i| (i, on[i]))
        .collect()
}

#[test]
fn voicing_and_f0_match_the_midi_ground_truth() {
    let Some(shared) = shared() else { return };
    for name in INSTRUMENTS {
        let wav = shared.join(format!("audio/dev/{name}_fluidr3.wav"));
        let samples = audio::read_audio(&wav).unwrap().samples;
        let config = pitch::PitchConfig::new(16000.0, 256, 50.0, 2400.0);
        let track = ddsp::features::track_pitch(&samples, &config);
        let times: Vec<f64> = (0..track.f0_hz.len())
            .map(|i| i as f64 * 256.0 / 16000.0)
            .collect();
        let frames = sustained_frames(&shared, name, &times);
        let voiced = frames
            .iter()
            .filter(|(i, _)| track.voiced_prob[*i] as f64 >= config.voiced_threshold)
            .count() as f64
            / frames.len() as f64;
        // Pitch bends reach +-35 cents, so 50 cents is the MIDI tolerance.
        let within = frames
            .iter()
            .filter(|(i, hz)| (1200.0 * (track.f0_hz[*i] as f64 / hz).log2()).abs() <= 50.0)
            .count() as f64
            / frames.len() as f64;
        eprintln!(
            "{name}: {:.1}% of {} sustained frames voiced, {:.1}% within 50 cents of the note",
            100.0 * voiced,
            frames.len(),
            100.0 * within
        );
        assert!(frames.len() > 1000);
        assert!(voiced >= 0.97, "{name}: only {:.1}% voiced", 100.0 * voiced);
        assert!(
            within >= 0.97,
            "{name}: only {:.1}% within 50 cents",
            100.0 * within
        );
    }
}
