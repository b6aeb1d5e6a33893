//! `preprocess` on odd and broken inputs, cache reuse, interruption and staleness.

use ddsp::Config;
use ddsp::data::{self, Dataset, PreprocessEvent, Split};
use ddsp::features::{audio, pitch};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ddsp-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn tone(freq: f64, seconds: f64, rate: u32, amp: f64) -> Vec<f64> {
    let n = (seconds * rate as f64) as usize;
    (0..n)
        .map(|i| {
            let t = i as f64 / rate as f64;
            amp * ((2.0 * std::f64::consts::PI * freq * t).sin()
                + 0.3 * (4.0 * std::f64::consts::PI * freq * t).sin())
                / 1.3
        })
        .collect()
}

fn write_int(path: &Path, samples: &[f64], rate: u32, bits: u16, channels: u16) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let max = ((1i64 << (bits - 1)) - 1) as f64;
    for s in samples {
        for c in 0..channels {
            // Channel 1 carries the signal at half level, so the mix is 0.75x.
            let v = if c == 0 { *s } else { s * 0.5 };
            let q = (v * max).round() as i32;
            match bits {
                8 => w.write_sample(q as i8).unwrap(),
                16 => w.write_sample(q as i16).unwrap(),
                _ => w.write_sample(q).unwrap(),
            }
        }
    }
    w.finalize().unwrap();
}

fn write_f32(path: &Path, samples: &[f32], rate: u32) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for s in samples {
        w.write_sample(*s).unwrap();
    }
    w.finalize().unwrap();
}

/// A 64-bit float WAV written by hand (hound cannot).
fn write_f64(path: &Path, samples: &[f64], rate: u32) {
    let data: Vec<u8> = samples.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&3u16.to_le_bytes()); // IEEE float
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * 8).to_le_bytes());
    b.extend_from_slice(&8u16.to_le_bytes());
    b.extend_from_slice(&64u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
    b.extend_from_slice(&data);
    std::fs::write(path, b).unwrap();
}

fn peak(x: &[f32]) -> f32 {
    x.iter().fold(0.0, |m, v| m.max(v.abs()))
}

fn median_f0(samples: &[f32]) -> f64 {
    let t = ddsp::features::track_pitch(
        samples,
        &pitch::PitchConfig::new(16000.0, 256, 50.0, 1000.0),
    );
    let mut v: Vec<f32> = t.f0_hz[5..t.f0_hz.len() - 5].to_vec();
    v.sort_by(f32::total_cmp);
    v[v.len() / 2] as f64
}

#[test]
fn decodes_every_supported_encoding() {
    let dir = temp_dir("formats");
    let sig = tone(440.0, 0.5, 16000, 0.5);
    for bits in [8u16, 16, 24, 32] {
        let p = dir.join(format!("int{bits}.wav"));
        write_int(&p, &sig, 16000, bits, 1);
        let d = audio::read_audio(&p).unwrap();
        assert_eq!(d.samples.len(), sig.len(), "{bits}-bit length");
        let tol = 2.0 / (1u64 << (bits - 1)) as f32 + 1e-6;
        for (a, b) in d.samples.iter().zip(&sig) {
            assert!((a - *b as f32).abs() <= tol, "{bits}-bit sample {a} vs {b}");
        }
    }
    let p = dir.join("f32.wav");
    write_f32(
        &p,
        &sig.iter().map(|v| *v as f32).collect::<Vec<_>>(),
        16000,
    );
    assert_eq!(audio::read_audio(&p).unwrap().samples[100], sig[100] as f32);
    let p = dir.join("f64.wav");
    write_f64(&p, &sig, 16000);
    let d = audio::read_audio(&p).unwrap();
    assert_eq!(d.samples.len(), sig.len());
    assert_eq!(d.samples[100], sig[100] as f32);
    // Stereo is averaged: channel 1 is half of channel 0.
    let p = dir.join("stereo.wav");
    write_int(&p, &sig, 16000, 16, 2);
    let d = audio::read_audio(&p).unwrap();
    assert_eq!(d.channels, 2);
    let mono_peak = 0.75 * sig.iter().fold(0.0f64, |m, v| m.max(v.abs())) as f32;
    assert!(
        (peak(&d.samples) - mono_peak).abs() < 1e-3,
        "{}",
        peak(&d.samples)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn resamples_any_rate_keeping_pitch_and_length() {
    let dir = temp_dir("rates");
    for rate in [8000u32, 22050, 44100, 48000] {
        let p = dir.join(format!("r{rate}.wav"));
        write_int(&p, &tone(330.0, 1.0, rate, 0.5), rate, 16, 1);
        let x = audio::load_audio(&p, 16000.0, 0.99).unwrap();
        assert_eq!(x.len(), 16000, "{rate} Hz -> 16 kHz length");
        assert!((peak(&x) - 0.99).abs() < 1e-4, "peak-normalised");
        let f = median_f0(&x);
        assert!(
            (1200.0 * (f / 330.0).log2()).abs() < 5.0,
            "{rate} Hz: f0 {f}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

fn reason_for(report: &[data::SkippedEntry], name: &str) -> String {
    report
        .iter()
        .find(|s| s.path == name)
        .unwrap_or_else(|| panic!("{name} not reported as skipped: {report:?}"))
        .reason
        .clone()
}

fn config() -> Config {
    Config::from_sources(None, &[("chunk-size", "8192"), ("chunk-hop", "4096")]).unwrap()
}

#[test]
fn bad_files_are_skipped_with_reasons_and_good_ones_kept() {
    let dir = temp_dir("bad");
    let input = dir.join("in");
    std::fs::create_dir_all(input.join("nested")).unwrap();
    write_int(
        &input.join("nested/good.WAV"),
        &tone(220.0, 2.0, 16000, 0.5),
        16000,
        16,
        1,
    );
    std::fs::write(
        input.join("corrupt.wav"),
        b"RIFF\x10\x00\x00\x00garbage garbage",
    )
    .unwrap();
    std::fs::write(input.join("text.wav"), "this is not audio").unwrap();
    std::fs::write(input.join("ignored.txt"), "not a wav, not scanned").unwrap();
    write_int(&input.join("empty.wav"), &[], 16000, 16, 1);
    write_int(&input.join("silent.wav"), &vec![0.0; 16000], 16000, 16, 1);
    let mut nan: Vec<f32> = tone(220.0, 1.0, 16000, 0.5)
        .iter()
        .map(|v| *v as f32)
        .collect();
    nan[500] = f32::NAN;
    write_f32(&input.join("nan.wav"), &nan, 16000);
    let mut inf = nan.clone();
    inf[500] = f32::INFINITY;
    write_f32(&input.join("inf.wav"), &inf, 16000);
    // Truncated: a valid file cut in the middle of its data.
    write_int(
        &dir.join("full.wav"),
        &tone(220.0, 1.0, 16000, 0.5),
        16000,
        16,
        1,
    );
    let bytes = std::fs::read(dir.join("full.wav")).unwrap();
    std::fs::write(input.join("truncated.wav"), &bytes[..bytes.len() / 2 + 1]).unwrap();

    let cache = dir.join("cache");
    let events = Mutex::new(Vec::new());
    let report = data::preprocess(&input, &cache, &config(), &|e| {
        events.lock().unwrap().push(e)
    })
    .unwrap();
    let m = &report.manifest;
    assert_eq!(m.sources.len(), 1);
    assert_eq!(m.sources[0].path, "nested/good.WAV");
    assert!(!m.chunks.is_empty());
    let skipped = &m.skipped;
    assert_eq!(skipped.len(), 7, "{skipped:?}");
    assert!(reason_for(skipped, "corrupt.wav").contains("WAV"));
    assert!(reason_for(skipped, "text.wav").contains("WAV"));
    assert!(reason_for(skipped, "empty.wav").contains("zero length"));
    assert!(reason_for(skipped, "silent.wav").contains("silence"));
    assert!(reason_for(skipped, "nan.wav").contains("non-finite"));
    assert!(reason_for(skipped, "inf.wav").contains("non-finite"));
    assert!(reason_for(skipped, "truncated.wav").contains("truncated"));
    let warned = events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, PreprocessEvent::FileSkipped { .. }))
        .count();
    assert_eq!(warned, 7, "every skip is reported as it happens");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn nothing_usable_is_an_error_naming_the_problems() {
    let dir = temp_dir("nothing");
    let err = data::preprocess(&dir, &dir.join("cache"), &config(), &|_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no audio files") && err.contains(".flac"),
        "{err}"
    );
    write_int(&dir.join("silent.wav"), &vec![0.0; 16000], 16000, 16, 1);
    let err = data::preprocess(&dir, &dir.join("cache"), &config(), &|_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("silent.wav") && err.contains("silence"),
        "{err}"
    );
    assert!(
        !dir.join("cache/manifest.json").exists(),
        "no manifest for a failed run"
    );
    let err = data::preprocess(&dir.join("missing"), &dir.join("cache"), &config(), &|_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn rerun_reuses_work_and_interrupted_runs_leave_no_broken_cache() {
    let dir = temp_dir("reuse");
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    for (i, f) in [196.0, 262.0, 330.0].iter().enumerate() {
        write_int(
            &input.join(format!("t{i}.wav")),
            &tone(*f, 3.0, 16000, 0.4),
            16000,
            16,
            1,
        );
    }
    let cache = dir.join("cache");
    let first = data::preprocess(&input, &cache, &config(), &|_| {}).unwrap();
    assert_eq!(first.reused, 0);
    let second = data::preprocess(&input, &cache, &config(), &|_| {}).unwrap();
    assert_eq!(second.reused, 3);
    assert_eq!(second.seconds_processed, 0.0);
    assert_eq!(first.manifest, second.manifest);

    // An interrupted run: the manifest never written, a temporary file left behind.
    std::fs::remove_file(cache.join("manifest.json")).unwrap();
    std::fs::write(cache.join("chunks-x.safetensors.tmp123"), b"partial").unwrap();
    assert!(Dataset::open_any(&cache).is_err(), "no manifest, no cache");
    let third = data::preprocess(&input, &cache, &config(), &|_| {}).unwrap();
    assert_eq!(third.reused, 3);
    assert!(!cache.join("chunks-x.safetensors.tmp123").exists());

    // A corrupt shard is redone, not trusted.
    let shard = cache.join(&third.manifest.sources[0].shard);
    std::fs::write(&shard, b"broken").unwrap();
    let fourth = data::preprocess(&input, &cache, &config(), &|_| {}).unwrap();
    assert_eq!(fourth.reused, 2);
    // A rewritten shard may differ in the order of its header's metadata, so its checksum.
    let without_sums = |m: &data::Manifest| {
        let mut m = m.clone();
        m.sources.iter_mut().for_each(|s| s.shard_sha256 = None);
        m
    };
    assert_eq!(
        without_sums(&fourth.manifest),
        without_sums(&first.manifest)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cache_with_other_feature_options_is_refused_by_name() {
    let dir = temp_dir("stale");
    write_int(
        &dir.join("a.wav"),
        &tone(262.0, 3.0, 16000, 0.4),
        16000,
        16,
        1,
    );
    let cache = dir.join("cache");
    data::preprocess(&dir, &cache, &config(), &|_| {}).unwrap();
    let ok = Dataset::open(&cache, &config()).unwrap();
    assert!(!ok.chunks.is_empty());
    let chunk = &ok.chunks[0];
    assert_eq!(chunk.audio.len(), 8192);
    assert_eq!(chunk.f0_hz.len(), 8192 / 256);
    let mut other = config();
    other.frame_hop = 128;
    other.max_f0 = 900.0;
    let err = Dataset::open(&cache, &other).unwrap_err().to_string();
    assert!(err.contains("frameHop") && err.contains("maxF0"), "{err}");
    // Training-only options do not matter.
    let mut train_only = config();
    train_only.lr = 0.5;
    train_only.harmonics = 3;
    assert!(Dataset::open(&cache, &train_only).is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn splits_and_inspect_report() {
    let dir = temp_dir("inspect");
    write_int(
        &dir.join("a.wav"),
        &tone(262.0, 8.0, 16000, 0.4),
        16000,
        16,
        1,
    );
    let cache = dir.join("cache");
    let mut cfg = config();
    cfg.train_split = 0.7;
    data::preprocess(&dir, &cache, &cfg, &|_| {}).unwrap();
    let report = data::inspect(&cache, None, Some(3)).unwrap();
    assert_eq!(report.splits.len(), 2);
    let train = &report.splits[0];
    let val = &report.splits[1];
    assert!(train.chunks > 0 && val.chunks > 0);
    assert!(
        (train.f0_voiced_hz.median - 262.0).abs() < 2.0,
        "{:?}",
        train.f0_voiced_hz
    );
    assert!(train.voiced_fraction > 0.9);
    assert_eq!(report.chunks.len(), 3);
    let only_val = data::inspect(&cache, Some(Split::Val), None).unwrap();
    assert_eq!(only_val.splits.len(), 1);
    assert!(only_val.chunks.iter().all(|c| c.split == Split::Val));
    let json = serde_json::to_string(&report).unwrap();
    assert!(json.contains("\"f0VoicedHz\""));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Share of a signal's energy within 15 Hz of the given frequencies (a DFT over the middle).
fn energy_share(x: &[f32], rate: f64, freqs: &[f64]) -> f64 {
    let mid = &x[x.len() / 8..x.len() * 7 / 8];
    let n = mid.len();
    let (mut near, mut all) = (0.0, 0.0);
    for k in 1..n / 2 {
        let (mut re, mut im) = (0.0, 0.0);
        for (i, v) in mid.iter().enumerate() {
            let a = 2.0 * std::f64::consts::PI * (k * i) as f64 / n as f64;
            re += *v as f64 * a.cos();
            im -= *v as f64 * a.sin();
        }
        let p = re * re + im * im;
        all += p;
        if freqs
            .iter()
            .any(|c| (k as f64 * rate / n as f64 - c).abs() <= 15.0)
        {
            near += p;
        }
    }
    near / all
}

#[test]
fn decodes_flac_mp3_ogg_vorbis_and_aiff() {
    let dir = Path::new("tests/data/formats");
    // (file, rate, channels, lossless)
    for (name, rate, channels, lossless) in [
        ("tone16k.flac", 16000, 1, true),
        ("tone16k.aiff", 16000, 1, true),
        ("tone16k.ogg", 16000, 1, false),
        ("tone16k.mp3", 16000, 1, false),
        ("tone44k_stereo.flac", 44100, 2, true),
        ("tone48k_stereo.mp3", 48000, 2, false),
    ] {
        let d = audio::read_audio(&dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((d.sample_rate, d.channels), (rate, channels), "{name}");
        let expected = rate as usize / 2;
        if lossless {
            assert_eq!(d.samples.len(), expected, "{name} length");
            // The second channel is half the first: the mono mix is 0.75 of the signal.
            let gain = if channels == 2 { 0.75 } else { 1.0 };
            for (i, v) in d.samples.iter().enumerate() {
                let t = i as f64 / rate as f64;
                let s = gain
                    * (0.4 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()
                        + 0.2 * (2.0 * std::f64::consts::PI * 660.0 * t).sin());
                assert!(
                    (*v as f64 - s).abs() < 2e-4,
                    "{name} sample {i}: {v} vs {s}"
                );
            }
        } else {
            let len = d.samples.len() as f64;
            assert!(
                (len - expected as f64).abs() < 0.2 * expected as f64,
                "{name} length {len}"
            );
        }
        let share = energy_share(&d.samples, rate as f64, &[440.0, 660.0]);
        assert!(
            share > 0.95,
            "{name}: {share:.3} of the energy at 440 and 660 Hz"
        );
    }
    // Preprocessing reads them like WAV files.
    let cache = temp_dir("formats-cache");
    let report = data::preprocess(dir, &cache, &config(), &|_| {}).unwrap();
    assert_eq!(
        report.manifest.sources.len(),
        6,
        "{:?}",
        report.manifest.skipped
    );
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn streaming_features_of_a_file_equal_the_in_memory_ones() {
    let config = Config::from_sources::<&str, &str>(None, &[]).unwrap();
    let features = config.feature_config();
    for path in [
        "data/demo/violin_fluidr3.wav",
        "tests/data/formats/tone44k_stereo.flac",
        "tests/data/formats/tone16k.mp3",
    ] {
        let path = Path::new(path);
        let (streamed, seconds) =
            ddsp::features::features_of_file(path, &features, Some(0.99)).unwrap();
        let audio = audio::load_audio(path, 16000.0, 0.99).unwrap();
        let whole = ddsp::features::extract(&audio, &features);
        assert_eq!(streamed, whole, "{}", path.display());
        assert!(seconds > 0.4, "{seconds}");
    }
    let dir = temp_dir("silent-stream");
    write_int(&dir.join("silent.wav"), &vec![0.0; 16000], 16000, 16, 1);
    let err = ddsp::features::features_of_file(&dir.join("silent.wav"), &features, Some(0.99))
        .unwrap_err()
        .to_string();
    assert!(err.contains("silence"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Issue 15, defect 4 (manifest) and defect 2 (cache files): a manifest's shard paths are plain
/// names inside the cache (no absolute paths, no `..`, no symbolic link leading out), the
/// files read are regular files (a FIFO or a device would block or never end), and a shard
/// header's length is checked against the file's before anything is allocated. Each error
/// names the file and the problem.
#[test]
fn cache_files_must_be_regular_files_inside_the_cache() {
    let dir = temp_dir("escape");
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    write_int(
        &input.join("a.wav"),
        &tone(262.0, 2.0, 16000, 0.4),
        16000,
        16,
        1,
    );
    let cache = dir.join("cache");
    let report = data::preprocess(&input, &cache, &config(), &|_| {}).unwrap();
    let shard = report.manifest.sources[0].shard.clone();
    let manifest = std::fs::read_to_string(cache.join("manifest.json")).unwrap();
    let open_with = |name: &str| {
        let text = manifest.replace(&shard, name);
        std::fs::write(cache.join("manifest.json"), text).unwrap();
        Dataset::open_any(&cache)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    std::fs::copy(cache.join(&shard), dir.join("outside.safetensors")).unwrap();
    for name in [
        "../outside.safetensors",
        "/dev/zero",
        "sub/x.safetensors",
        "",
    ] {
        let err = open_with(name).unwrap_err();
        assert!(err.contains("not a plain file name"), "{name}: {err}");
    }
    let link = |name: &str, to: &Path| {
        std::os::unix::fs::symlink(to, cache.join(name)).unwrap();
        open_with(name).map_err(|e| {
            assert!(e.contains(name), "{e}");
            e
        })
    };
    let err = link("chunks-out.safetensors", &dir.join("outside.safetensors")).unwrap_err();
    assert!(err.contains("leading out of the cache"), "{err}");
    let err = link("chunks-zero.safetensors", Path::new("/dev/zero")).unwrap_err();
    assert!(err.contains("leading out of the cache"), "{err}");
    link("chunks-in.safetensors", &cache.join(&shard)).expect("a link inside the cache is fine");
    let fifo = |path: &Path| {
        let ok = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap();
        assert!(ok.success());
    };
    fifo(&cache.join("chunks-fifo.safetensors"));
    let err = open_with("chunks-fifo.safetensors").unwrap_err();
    assert!(
        err.contains("chunks-fifo.safetensors") && err.contains("not a regular file"),
        "{err}"
    );
    // A header claiming more bytes than the file has.
    let mut huge = u64::MAX.to_le_bytes().to_vec();
    huge.extend_from_slice(b"{}");
    std::fs::write(cache.join("chunks-huge.safetensors"), huge).unwrap();
    let err = open_with("chunks-huge.safetensors").unwrap_err();
    assert!(
        err.contains("chunks-huge.safetensors") && err.contains("header claims"),
        "{err}"
    );
    // The manifest itself as a FIFO.
    std::fs::remove_file(cache.join("manifest.json")).unwrap();
    fifo(&cache.join("manifest.json"));
    let err = Dataset::open_any(&cache).unwrap_err().to_string();
    assert!(err.contains("not a regular file"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A 16-bit mono WAV header claiming `data_bytes` of samples, followed by `actual` bytes.
fn wav_claiming(path: &Path, rate: u32, data_bytes: u32, actual: usize) {
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&data_bytes.saturating_add(36).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // PCM
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * 2).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_bytes.to_le_bytes());
    b.extend((0..actual).map(|i| (i * 37 % 251) as u8));
    std::fs::write(path, b).unwrap();
}

/// Issue 15, defect 2 (audio) and defect 7 (short files): a header claiming an absurd sample
/// rate or more samples than the file holds is refused naming the file, before anything the
/// claim would size is allocated; a file too short for one analysis frame (or one that
/// resamples to nothing) says so, instead of "all silence" or a chunk of zero padding; the
/// good files in the folder are still processed.
#[test]
fn absurd_headers_and_too_short_files_are_skipped_precisely() {
    let dir = temp_dir("absurd");
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    write_int(
        &input.join("good.wav"),
        &tone(220.0, 2.0, 16000, 0.5),
        16000,
        16,
        1,
    );
    wav_claiming(&input.join("rate1.wav"), 1, 2000, 2000);
    wav_claiming(&input.join("rate500k.wav"), 500_000, 64_000, 64_000);
    wav_claiming(&input.join("claims4g.wav"), 48_000, u32::MAX - 101, 65_536);
    write_int(&input.join("one.wav"), &[0.5], 16000, 16, 1);
    write_int(&input.join("one_zero.wav"), &[0.0], 16000, 16, 1);
    write_int(&input.join("one_44k.wav"), &[0.5], 44100, 16, 1);
    write_int(&input.join("short.wav"), &[0.5; 300], 16000, 16, 1);
    let report = data::preprocess(&input, &dir.join("cache"), &config(), &|_| {}).unwrap();
    let m = &report.manifest;
    assert_eq!(m.sources.len(), 1, "{:?}", m.skipped);
    assert_eq!(m.sources[0].path, "good.wav");
    let skipped = &m.skipped;
    let rate1 = reason_for(skipped, "rate1.wav");
    assert!(rate1.contains("sample rate 1 Hz"), "{rate1}");
    let rate500k = reason_for(skipped, "rate500k.wav");
    assert!(rate500k.contains("500000 Hz"), "{rate500k}");
    let claims = reason_for(skipped, "claims4g.wav");
    assert!(
        claims.contains("claims 4294967194 bytes") && claims.contains("holds only 65580 bytes"),
        "{claims}"
    );
    for name in ["one.wav", "one_zero.wav", "one_44k.wav", "short.wav"] {
        let why = reason_for(skipped, name);
        assert!(
            why.contains("too short") && why.contains("1024") && !why.contains("silence"),
            "{name}: {why}"
        );
    }
    assert!(reason_for(skipped, "one_44k.wav").contains("1 sample at 44100 Hz, 0 at 16000 Hz"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Issue 15, defect 5: a cache that cannot be written stops preprocessing with an output error
/// naming the file (it is not a bad input to skip, and no manifest claims a cache without the
/// recording).
#[test]
fn write_errors_are_fatal_output_errors() {
    let dir = temp_dir("unwritable");
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    for (i, f) in [220.0, 330.0].iter().enumerate() {
        write_int(
            &input.join(format!("t{i}.wav")),
            &tone(*f, 2.0, 16000, 0.4),
            16000,
            16,
            1,
        );
    }
    // Identical inputs written by parallel workers: each through its own temporary file.
    std::fs::copy(input.join("t0.wav"), input.join("t0-copy.wav")).unwrap();
    let names = data::preprocess(&input, &dir.join("first"), &config(), &|_| {})
        .unwrap()
        .manifest
        .sources;
    assert_eq!(names.len(), 3);
    assert_eq!(names[0].shard, names[1].shard);

    // A folder where a shard must go: the rename fails, whoever runs the test.
    let cache = dir.join("cache");
    std::fs::create_dir_all(cache.join(&names[2].shard).join("x")).unwrap();
    let err = data::preprocess(&input, &cache, &config(), &|_| {}).unwrap_err();
    assert!(matches!(err, ddsp::Error::Write { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with("cannot write") && text.contains(&names[2].shard),
        "{text}"
    );
    assert!(!cache.join("manifest.json").exists());

    // A read-only cache folder (permissions do not stop root: then only the case above runs).
    let ro = dir.join("readonly");
    std::fs::create_dir_all(&ro).unwrap();
    std::fs::set_permissions(&ro, std::os::unix::fs::PermissionsExt::from_mode(0o555)).unwrap();
    if std::fs::write(ro.join("probe"), b"").is_ok() {
        eprintln!("skipping the read-only folder case: permissions do not stop this user (root)");
    } else {
        let err = data::preprocess(&input, &ro, &config(), &|_| {})
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("cannot write") && err.contains("ermission denied"),
            "{err}"
        );
    }
    std::fs::set_permissions(&ro, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The start of tensor `name`'s data in a safetensors file.
fn tensor_start(bytes: &[u8], name: &str) -> usize {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    8 + n + header[name]["data_offsets"][0].as_u64().unwrap() as usize
}

/// Issue 15, defect 3 (checksums, NaN): the manifest records each shard's SHA-256 and loading
/// checks it, naming the shard; a cache from before checksums loads, with a note; a shard
/// holding a NaN is refused naming it.
#[test]
fn shards_are_checked_against_their_checksums_and_for_nan() {
    let dir = temp_dir("sums");
    write_int(
        &dir.join("a.wav"),
        &tone(262.0, 2.0, 16000, 0.4),
        16000,
        16,
        1,
    );
    let cache = dir.join("cache");
    let report = data::preprocess(&dir, &cache, &config(), &|_| {}).unwrap();
    let source = &report.manifest.sources[0];
    let shard = cache.join(&source.shard);
    let bytes = std::fs::read(&shard).unwrap();
    assert_eq!(
        source.shard_sha256.as_deref(),
        Some(ddsp::io::sha256_hex(&bytes).as_str())
    );
    let ok = Dataset::open_any(&cache).unwrap();
    assert_eq!(ok.unverified_note(), None);
    // One sample changed, still a valid shard.
    let at = tensor_start(&bytes, "audio") + 40;
    let mut changed = bytes.clone();
    changed[at..at + 4].copy_from_slice(&0.25f32.to_le_bytes());
    std::fs::write(&shard, &changed).unwrap();
    let err = Dataset::open_any(&cache).unwrap_err().to_string();
    assert!(
        err.contains("checksum mismatch")
            && err.contains(&format!("{} was modified or is damaged", shard.display())),
        "{err}"
    );
    // A manifest from before checksums: loads, with a note.
    let manifest = cache.join("manifest.json");
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    json["sources"][0]
        .as_object_mut()
        .unwrap()
        .remove("shardSha256")
        .unwrap();
    std::fs::write(&manifest, json.to_string()).unwrap();
    let old = Dataset::open_any(&cache).unwrap();
    assert!(old.unverified_note().unwrap().contains("no checksum"));
    // A NaN in a shard (no checksum to catch it first).
    changed[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&shard, &changed).unwrap();
    let err = Dataset::open_any(&cache).unwrap_err().to_string();
    assert!(
        err.contains(&source.shard) && err.contains("non-finite") && err.contains("audio"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Issue 15, defect 7: symbolic links that loop (to an ancestor) or lead to a folder already
/// scanned are not followed again (the scan went 40 levels deep); a cache path that is a
/// file says so (not "File exists").
#[test]
fn symlink_loops_are_not_followed_and_a_file_is_no_cache() {
    let dir = temp_dir("loops");
    let input = dir.join("in");
    std::fs::create_dir_all(input.join("a")).unwrap();
    write_int(
        &input.join("a/x.wav"),
        &tone(262.0, 2.0, 16000, 0.4),
        16000,
        16,
        1,
    );
    std::os::unix::fs::symlink(&input, input.join("a/up")).unwrap();
    std::os::unix::fs::symlink(input.join("a"), input.join("b")).unwrap();
    let files = data::scan_audio_files(&input).unwrap();
    assert_eq!(files, vec![input.join("a/x.wav")]);

    let cache = dir.join("cache-file");
    std::fs::write(&cache, b"not a folder").unwrap();
    let err = data::preprocess(&input, &cache, &config(), &|_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("{} is a file, not a directory", cache.display())),
        "{err}"
    );
    let err = data::preprocess(&input, &cache.join("sub"), &config(), &|_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("is a file, not a directory"), "{err}");
    let err = Dataset::open_any(&cache).unwrap_err().to_string();
    assert!(err.contains("is a file, not a directory"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
