//! Live (causal) features against the offline ones on real recordings: how far the streaming
//! engine's f0, voicing and loudness are from what `preprocess` and `render` compute, raw
//! (frame `i` against frame `i`) and with the live frames shifted by the frames their causal
//! windows trail by. The README's "Realtime" section quotes these numbers.

use ddsp::Config;
use ddsp::features::live::{FrameIn, LiveFeatures};
use ddsp::features::{FrameFeatures, audio, extract};
use std::path::{Path, PathBuf};

/// The dev recordings: the demo violin always, the others from `../shared` when present.
fn recordings() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = vec![root.join("data/demo/violin_fluidr3.wav")];
    for name in ["flute", "trumpet", "cello"] {
        let p = root.join(format!("../shared/audio/dev/{name}_fluidr3.wav"));
        if p.is_file() {
            found.push(p);
        }
    }
    found
}

struct Difference {
    /// Frames voiced in both with |f0 difference| < 50 cents, of those voiced in both.
    pitch_within_50c: f64,
    median_cents: f64,
    /// Frames whose voicing decision agrees.
    voicing_agreement: f64,
    mean_abs_db: f64,
}

fn compare(offline: &FrameFeatures, live: &[FrameIn], shift: usize, threshold: f32) -> Difference {
    let n = offline.len().min(live.len().saturating_sub(shift));
    let (mut cents, mut agree, mut db) = (Vec::new(), 0usize, 0.0f64);
    for i in 0..n {
        let l = &live[i + shift];
        let voiced_off = offline.voiced_prob[i] >= threshold;
        let voiced_live = l.voicing >= threshold;
        agree += usize::from(voiced_off == voiced_live);
        if voiced_off && voiced_live {
            cents.push((1200.0 * (l.f0_hz as f64 / offline.f0_hz[i] as f64).log2()).abs());
        }
        db += (l.loudness_db - offline.loudness_db[i]).abs() as f64;
    }
    cents.sort_by(f64::total_cmp);
    let within = cents.iter().filter(|c| **c < 50.0).count();
    Difference {
        pitch_within_50c: within as f64 / cents.len().max(1) as f64,
        median_cents: cents.get(cents.len() / 2).copied().unwrap_or(f64::NAN),
        voicing_agreement: agree as f64 / n.max(1) as f64,
        mean_abs_db: db / n.max(1) as f64,
    }
}

#[test]
fn live_features_track_the_offline_ones() {
    let config = Config::from_sources(Some(Path::new("configs/tiny.json")), &[] as &[(&str, &str)])
        .expect("tiny preset");
    let fc = config.feature_config();
    let threshold = fc.voiced_threshold as f32;
    // The live windows end at the frame's sample; the offline ones are centred (the pitch
    // frame's sum starts a quarter frame before it, the loudness window half a window): the
    // live frame that sees the same samples comes this many frames later.
    let pitch_len = LiveFeatures::new(&fc).pitch_frame_length();
    let pitch_shift = (pitch_len - pitch_len / 4).div_ceil(fc.frame_hop);
    let loud_shift = (fc.frame_size / 2).div_ceil(fc.frame_hop);
    println!(
        "| recording | frames | f0 within 50 c (raw / aligned) | median cents (aligned) | voicing agreement (raw / aligned) | loudness mean abs dB (raw / aligned) |"
    );
    println!("|---|---|---|---|---|---|");
    for path in recordings() {
        let x = audio::load_audio(&path, fc.sample_rate, config.normalize_to).expect("readable");
        let offline = extract(&x, &fc);
        let mut tracker = LiveFeatures::new(&fc);
        let mut live = Vec::new();
        // Blocks of an odd size: the tracker does not care how the audio arrives.
        for block in x.chunks(333) {
            tracker.push(block, |f| live.push(f));
        }
        assert_eq!(live.len(), x.len().div_ceil(fc.frame_hop));
        let raw = compare(&offline, &live, 0, threshold);
        let pitch = compare(&offline, &live, pitch_shift, threshold);
        let loud = compare(&offline, &live, loud_shift, threshold);
        let name = path.file_name().unwrap().to_string_lossy();
        println!(
            "| {name} | {} | {:.1}% / {:.1}% | {:.1} | {:.1}% / {:.1}% | {:.2} / {:.2} |",
            offline.len(),
            100.0 * raw.pitch_within_50c,
            100.0 * pitch.pitch_within_50c,
            pitch.median_cents,
            100.0 * raw.voicing_agreement,
            100.0 * pitch.voicing_agreement,
            raw.mean_abs_db,
            loud.mean_abs_db,
        );
        // Aligned, the live tracker agrees with pYIN on the pitch of nearly every frame both
        // call voiced and on most voicing decisions; loudness uses the same windows then.
        assert!(pitch.pitch_within_50c > 0.95, "{name}: f0");
        assert!(pitch.median_cents < 10.0, "{name}: f0 cents");
        assert!(pitch.voicing_agreement > 0.85, "{name}: voicing");
        assert!(loud.mean_abs_db < 0.5, "{name}: loudness");
    }
}
