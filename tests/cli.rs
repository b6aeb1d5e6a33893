//! The `ddspe2e` example binary end to end (cargo builds examples before running tests).

mod common;

use common::{SMALL, p, temp, text};
use std::path::{Path, PathBuf};
use std::process::Output;

/// Run the binary (no crash point set); whatever it exits with.
fn run(args: &[&str]) -> Output {
    common::command(args, None).output().unwrap()
}

#[test]
fn dump_config_round_trips_and_validation_names_the_option() {
    let dir = temp("config");
    let c = dir.join("c.json");
    let o = run(&["dump-config", "--output", p(&c)]);
    assert!(o.status.success(), "{}", text(&o));
    let again = dir.join("again.json");
    let o = run(&["dump-config", "--config", p(&c), "--output", p(&again)]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read(&c).unwrap(), std::fs::read(&again).unwrap());
    let o = run(&["dump-config", "--config", p(&c), "--frame-hop", "100"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("frameHop"), "{}", text(&o));
    let o = run(&[
        "dump-config",
        "--spectral-windows",
        "64,128",
        "--clip-mode",
        "global",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["spectralWindows"], serde_json::json!([64, 128]));
    assert_eq!(v["gradClipMode"], "global");
    let o = run(&["dump-config", "--no-such-option", "1"]);
    assert!(!o.status.success());
    std::fs::write(dir.join("typo.json"), r#"{"sampleRte": 16000}"#).unwrap();
    let o = run(&["dump-config", "--config", p(&dir.join("typo.json"))]);
    assert!(
        !o.status.success() && text(&o).contains("sampleRte"),
        "{}",
        text(&o)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn tone_dir(dir: &Path) -> PathBuf {
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    let samples: Vec<f32> = (0..16000 * 3)
        .map(|i| {
            let t = i as f32 / 16000.0;
            0.3 * (2.0 * std::f32::consts::PI * 262.0 * t).sin()
                + 0.1 * (2.0 * std::f32::consts::PI * 524.0 * t).sin()
        })
        .collect();
    ddsp::features::audio::write_wav(&input.join("tone.wav"), &samples, 16000).unwrap();
    std::fs::write(input.join("broken.wav"), b"not audio").unwrap();
    input
}

#[test]
fn preprocess_inspect_and_train() {
    let dir = temp("pipeline");
    let input = tone_dir(&dir);
    let cache = dir.join("cache");
    let mut args = vec!["preprocess", "--input", p(&input), "--cache", p(&cache)];
    args.extend_from_slice(SMALL);
    let o = run(&args);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("broken.wav") && out.contains("skipped"),
        "{out}"
    );

    let o = run(&[
        "inspect-cache",
        "--cache",
        p(&cache),
        "--json",
        "--limit",
        "2",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["sources"], 1);
    assert_eq!(v["chunks"].as_array().unwrap().len(), 2);
    let o = run(&["inspect-cache", "--cache", p(&cache), "--split", "val"]);
    assert!(
        o.status.success() && text(&o).contains("val"),
        "{}",
        text(&o)
    );

    let runs = dir.join("runs");
    for mode in ["dry", "m2"] {
        let mut args = vec![
            "train",
            "--cache",
            p(&cache),
            "--mode",
            mode,
            "--steps",
            "3",
            "--runs-dir",
            p(&runs),
            "--run-name",
            mode,
            "--device",
            "flex",
            "--log-every",
            "1",
        ];
        args.extend_from_slice(SMALL);
        let o = run(&args);
        assert!(o.status.success(), "{mode}: {}", text(&o));
        assert!(text(&o).contains("step      3"), "{}", text(&o));
        assert!(runs.join(mode).join("logs/train.csv").exists());
    }
    assert!(
        runs.join("m2/checkpoints/latest/model.safetensors")
            .exists()
    );
    // Resuming without --cache or --steps takes the run's own (it asked for 3: done).
    let m2 = runs.join("m2");
    let o = run(&["train", "--resume", p(&m2), "--device", "flex"]);
    assert!(o.status.success(), "{}", text(&o));
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(m2.join("run_meta.json")).unwrap()).unwrap();
    assert_eq!(meta["stepsRequested"], 3, "{meta}");
    assert_eq!(meta["steps"], 3, "{meta}");
    // Resuming uses the run's own config and says which flags it ignores.
    let o = run(&[
        "train",
        "--cache",
        p(&cache),
        "--resume",
        p(&m2),
        "--steps",
        "4",
        "--device",
        "flex",
        "--lr",
        "0.5",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("ignoring lr") && text(&o).contains("(steps 3..4)"),
        "{}",
        text(&o)
    );
    let o = run(&[
        "train",
        "--cache",
        p(&dir.join("missing")),
        "--steps",
        "1",
        "--device",
        "flex",
    ]);
    assert!(
        !o.status.success() && text(&o).contains("preprocess"),
        "{}",
        text(&o)
    );
    report_on_real_runs(&runs);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `report` on the runs a real (tiny) training wrote: one run to its own folder, two side by
/// side to `--out`; a folder that is no run, and two runs without `--out`, are errors.
fn report_on_real_runs(runs: &Path) {
    let (m2, dry) = (runs.join("m2"), runs.join("dry"));
    let o = run(&["report", p(&m2)]);
    assert!(o.status.success(), "{}", text(&o));
    let page = m2.join("report.html");
    assert!(text(&o).contains(p(&page)), "{}", text(&o));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("<audio controls") && html.contains("data:image/png;base64,"));
    assert!(!html.contains("http://") && !html.contains("https://"));
    let out = runs.join("both.html");
    let o = run(&["report", p(&m2), p(&dry), "--out", p(&out)]);
    assert!(o.status.success(), "{}", text(&o));
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.contains("--columns:2"), "a column per run");
    // A dry run has no decoder: no control statistics.
    assert!(html.contains("not recorded: control statistics"));
    let o = run(&["report", p(&m2), p(&dry)]);
    assert!(
        !o.status.success() && text(&o).contains("--out"),
        "{}",
        text(&o)
    );
    let o = run(&["report", p(runs)]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("{}: not a run directory", p(runs))),
        "{}",
        text(&o)
    );
}

#[test]
fn unavailable_device_is_a_clear_error() {
    let dir = temp("device");
    let o = run(&[
        "train",
        "--cache",
        p(&dir),
        "--steps",
        "1",
        "--device",
        "cuda",
    ]);
    if cfg!(feature = "cuda") {
        return;
    }
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("cuda") && t.contains("feature"), "{t}");
    assert!(!t.contains("panicked"), "{t}");
    let o = run(&["train", "--cache", p(&dir), "--device", "tpu"]);
    assert!(!o.status.success() && text(&o).contains("tpu"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn kernel_dump_writes_kernel_sources_or_says_flex_has_none() {
    let dir = temp("kernels");
    let input = tone_dir(&dir);
    let cache = dir.join("cache");
    let mut args = vec!["preprocess", "--input", p(&input), "--cache", p(&cache)];
    args.extend_from_slice(SMALL);
    let o = run(&args);
    assert!(o.status.success(), "{}", text(&o));
    let runs = dir.join("runs");
    let train = |device: &str, name: &str, dump: Option<&str>| {
        let mut args = vec![
            "train",
            "--cache",
            p(&cache),
            "--steps",
            "2",
            "--runs-dir",
            p(&runs),
            "--run-name",
            name,
            "--device",
            device,
            "--kernel-dump",
        ];
        args.extend(dump);
        args.extend_from_slice(SMALL);
        run(&args)
    };
    let o = train("flex", "flex", None);
    assert!(o.status.success(), "{}", text(&o));
    let note = std::fs::read_to_string(runs.join("flex/kernels.log")).unwrap();
    assert!(note.contains("no kernels"), "{note}");
    let profile = std::fs::read_to_string(runs.join("flex/profile.csv")).unwrap();
    assert_eq!(profile.lines().count(), 3, "header and 2 steps: {profile}");
    if !ddsp::device::wgpu_available() {
        eprintln!("kernel dump on wgpu: skipped, no wgpu adapter");
        return;
    }
    let kernels = dir.join("wgpu-kernels.log");
    let o = train("wgpu", "wgpu", Some(p(&kernels)));
    assert!(o.status.success(), "{}", text(&o));
    let log = std::fs::read_to_string(&kernels).unwrap();
    assert!(
        log.contains("[START_KERNEL_COMPILATION]")
            && log.contains("```wgsl")
            && log.contains("fn "),
        "no WGSL sources in {}: {}",
        kernels.display(),
        &log[..log.len().min(500)]
    );
    assert!(runs.join("wgpu/profile.csv").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A WAV reader for the outputs: (samples, rate).
/// A MIDI file of two notes: A4 for 0.5 s, then C5 for 0.5 s (480 ticks per quarter at the
/// default 120 bpm: 480 ticks = 0.5 s).
fn write_two_notes(path: &Path) {
    use midly::num::{u4, u7, u15, u28};
    use midly::{
        Format, Header, MetaMessage, MidiMessage, Smf, Timing, TrackEvent, TrackEventKind,
    };
    let event = |delta: u32, key: u8, vel: u8| TrackEvent {
        delta: u28::new(delta),
        kind: TrackEventKind::Midi {
            channel: u4::new(0),
            message: MidiMessage::NoteOn {
                key: u7::new(key),
                vel: u7::new(vel),
            },
        },
    };
    let track = vec![
        event(0, 69, 100),
        event(480, 69, 0),
        event(0, 72, 100),
        event(480, 72, 0),
        TrackEvent {
            delta: u28::new(0),
            kind: TrackEventKind::Meta(MetaMessage::EndOfTrack),
        },
    ];
    let smf = Smf {
        header: Header::new(Format::SingleTrack, Timing::Metrical(u15::new(480))),
        tracks: vec![track],
    };
    smf.save(path).unwrap();
}

fn wav(path: &Path) -> (Vec<f32>, u32) {
    let d = ddsp::features::audio::read_audio(path).unwrap();
    (d.samples, d.sample_rate)
}

#[test]
fn trains_renders_and_evaluates_at_48_khz() {
    let dir = temp("48k");
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    let tone: Vec<f32> = (0..48000 * 4)
        .map(|i| {
            let t = i as f32 / 48000.0;
            let f0 = if t < 2.0 { 330.0 } else { 392.0 };
            0.3 * (2.0 * std::f32::consts::PI * f0 * t).sin()
                + 0.1 * (2.0 * std::f32::consts::PI * 2.0 * f0 * t).sin()
        })
        .collect();
    ddsp::features::audio::write_wav(&input.join("tone48k.wav"), &tone, 48000).unwrap();
    let cache = dir.join("cache");
    let runs = dir.join("runs");
    // The 48 kHz preset, with short chunks and a short reverb to keep the test quick.
    let small = [
        "--config",
        "configs/tiny48k.json",
        "--chunk-size",
        "24576",
        "--chunk-hop",
        "12288",
        "--reverb-length",
        "4800",
        "--batch-size",
        "2",
        "--eval-every",
        "2",
        "--checkpoint-every",
        "2",
    ];
    let mut args = vec![
        "train",
        "--input",
        p(&input),
        "--cache",
        p(&cache),
        "--steps",
        "2",
        "--runs-dir",
        p(&runs),
        "--run-name",
        "r",
        "--device",
        "flex",
    ];
    args.extend(small);
    let o = run(&args);
    assert!(o.status.success(), "{}", text(&o));
    let model = runs.join("r");
    // Timbre transfer of a 22.05 kHz stereo FLAC, with stems and the auto-adjust.
    let out = dir.join("out.wav");
    let o = run(&[
        "render",
        "--checkpoint",
        p(&model),
        "--which",
        "latest",
        "--input",
        "tests/data/formats/tone44k_stereo.flac",
        "--output",
        p(&out),
        "--stems",
        "--auto-adjust",
        "--device",
        "flex",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let (audio, rate) = wav(&out);
    assert_eq!(rate, 48000);
    // 0.5 s in: 1 + 24000 / 384 frames of 384 samples.
    assert_eq!(audio.len(), (1 + 24000 / 384) * 384);
    assert!(audio.iter().all(|v| v.is_finite()));
    for stem in ["harmonic", "noise", "dry", "wet"] {
        let (s, r) = wav(&dir.join(format!("out.{stem}.wav")));
        assert_eq!((s.len(), r), (audio.len(), 48000), "{stem}");
    }
    assert!(
        !std::fs::read_dir(&dir).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains(".tmp"))
    );
    // The timbre grower: 3 stages of 0.25 s with 0.1 s between.
    let grown = dir.join("grown.wav");
    let o = run(&[
        "render",
        "--checkpoint",
        p(&model),
        "--which",
        "latest",
        "--input",
        "tests/data/formats/tone16k.flac",
        "--output",
        p(&grown),
        "--grow-stages",
        "3",
        "--stage-seconds",
        "0.25",
        "--gap-seconds",
        "0.1",
        "--device",
        "flex",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let stage = ((0.25f64 * 125.0).round() as usize) * 384;
    assert_eq!(wav(&grown).0.len(), 3 * stage + 2 * 4800);
    // eval on the run's own cache (its default) and on a file; and a pair.
    let o = run(&[
        "eval",
        "--run",
        p(&model),
        "--checkpoint",
        "latest",
        "--split",
        "train",
        "--device",
        "flex",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("overall"), "{}", text(&o));
    let metrics = model.join("eval/latest-train/metrics.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&metrics).unwrap()).unwrap();
    assert!(v["summary"]["spectralLoss"].as_f64().unwrap() > 0.0);
    let o = run(&[
        "eval",
        "--run",
        p(&model),
        "--checkpoint",
        "latest",
        "--input",
        p(&input.join("tone48k.wav")),
        "--json",
        "--device",
        "flex",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["rows"].as_array().unwrap().len(), 1);
    let o = run(&[
        "eval",
        "--target",
        p(&out),
        "--render",
        p(&out),
        "--json",
        "--device",
        "flex",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["summary"]["spectralLoss"], 0.0);
    // Synth mode: a two-note MIDI file played through the model; its length is the notes'
    // plus the release (0.15 s), in frames of 384 samples at 125 frames per second.
    let song = dir.join("song.mid");
    write_two_notes(&song);
    let played = dir.join("played.wav");
    let o = run(&[
        "render",
        "--checkpoint",
        p(&model),
        "--which",
        "latest",
        "--midi",
        p(&song),
        "--output",
        p(&played),
        "--vibrato-cents",
        "20",
        "--device",
        "flex",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let (samples, rate) = wav(&played);
    assert_eq!(rate, 48000);
    assert_eq!(samples.len(), ((1.15f64 * 125.0).ceil() as usize + 1) * 384);
    assert!(samples.iter().any(|v| v.abs() > 1e-4) && samples.iter().all(|v| v.is_finite()));
    let o = run(&[
        "render",
        "--checkpoint",
        p(&model),
        "--midi",
        p(&dir.join("x.wav.mid")),
        "--output",
        p(&dir.join("z.wav")),
        "--device",
        "flex",
    ]);
    assert!(
        !o.status.success() && text(&o).contains("x.wav.mid"),
        "{}",
        text(&o)
    );
    // Bad input: a render of a file that is not audio names the file.
    std::fs::write(dir.join("x.mp3"), b"not audio at all").unwrap();
    let o = run(&[
        "render",
        "--checkpoint",
        p(&model),
        "--input",
        p(&dir.join("x.mp3")),
        "--output",
        p(&dir.join("y.wav")),
        "--device",
        "flex",
    ]);
    assert!(
        !o.status.success() && text(&o).contains("x.mp3"),
        "{}",
        text(&o)
    );
    assert!(!dir.join("y.wav").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Issue 15, defect 7: an OS error is printed once (the library's errors print it and also
/// return it as their source), and a cache path that is a file says so.
#[test]
fn os_errors_are_printed_once() {
    let dir = temp("oserr");
    let o = run(&["dump-config", "--config", p(&dir.join("missing.json"))]);
    let out = text(&o);
    assert!(!o.status.success());
    assert_eq!(out.matches("os error").count(), 1, "{out}");
    let file = dir.join("file");
    std::fs::write(&file, b"x").unwrap();
    let o = run(&["dump-config", "--output", p(&file.join("c.json"))]);
    let out = text(&o);
    assert!(
        !o.status.success() && out.contains("is a file, not a directory"),
        "{out}"
    );
    assert!(out.matches("not a directory").count() == 1, "{out}");
    let o = run(&["inspect-cache", "--cache", p(&file)]);
    let out = text(&o);
    assert!(out.contains("is a file, not a directory"), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Issue 15, defect 5: `preprocess` that cannot write its cache exits with an error naming the
/// file it could not write (it exited 0 with the recording "skipped").
#[test]
fn preprocess_that_cannot_write_its_cache_fails() {
    let dir = temp("unwritable");
    let input = tone_dir(&dir);
    let first = dir.join("first");
    let mut args = vec!["preprocess", "--input", p(&input), "--cache", p(&first)];
    args.extend_from_slice(SMALL);
    assert!(run(&args).status.success());
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(first.join("manifest.json")).unwrap()).unwrap();
    let shard = manifest["sources"][0]["shard"].as_str().unwrap();
    // A folder where the shard must go (permissions would not stop root).
    let cache = dir.join("cache");
    std::fs::create_dir_all(cache.join(shard).join("x")).unwrap();
    let mut args = vec!["preprocess", "--input", p(&input), "--cache", p(&cache)];
    args.extend_from_slice(SMALL);
    let o = run(&args);
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(
        out.contains(&format!(
            "error: cannot write {}",
            cache.join(shard).display()
        )),
        "{out}"
    );
    assert!(!out.contains("skipped tone.wav"), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}
