//! Issue 15: `preprocess` and `train` killed with SIGKILL at named points (the test-only
//! crash points of `ddsp::io::kill_point`, set through `DDSP_KILL_AT`: half a file written,
//! before and after a rename, between the two renames of a checkpoint swap, after a log row)
//! and after fixed delays. Every time, the cache and the run directory stay loadable, a re-run
//! or `train --resume` finishes, a re-run's cache equals an uninterrupted one's, a continued
//! run's losses equal an uninterrupted run's, and no temporary file is left where a loader
//! reads. (Runs the `ddspe2e` example: `cargo build --example ddspe2e` first.)

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

fn binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let bin = dir
        .join("examples")
        .join(format!("ddspe2e{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.exists(), "{} not built", bin.display());
    bin
}

fn command(args: &[&str], kill_at: Option<&str>) -> Command {
    let mut c = Command::new(binary());
    c.args(args).env_remove(ddsp::io::KILL_AT_VAR);
    if let Some(at) = kill_at {
        c.env(ddsp::io::KILL_AT_VAR, at);
    }
    c
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Run to completion; it must succeed.
fn ok(args: &[&str]) -> Output {
    let o = command(args, None).output().unwrap();
    assert!(o.status.success(), "{args:?}: {}", text(&o));
    o
}

/// Whether the process was killed by SIGKILL (on other systems: ended unsuccessfully).
fn was_killed(o: &Output) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        o.status.signal() == Some(9)
    }
    #[cfg(not(unix))]
    {
        !o.status.success()
    }
}

/// Run with `DDSP_KILL_AT=at`: it must die there.
fn killed_at(args: &[&str], at: &str) {
    let o = command(args, Some(at)).output().unwrap();
    assert!(was_killed(&o), "{at} was never reached: {}", text(&o));
}

/// Run and SIGKILL it after `delay` (it may have finished by then).
fn killed_after(args: &[&str], delay: Duration) {
    let mut child = command(args, None)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    let _ = child.kill();
    child.wait().unwrap();
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ddsp-kill-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn tones(dir: &Path, freqs: &[f32]) {
    std::fs::create_dir_all(dir).unwrap();
    for f in freqs {
        let samples: Vec<f32> = (0..16000 * 2)
            .map(|i| 0.3 * (2.0 * std::f32::consts::PI * f * i as f32 / 16000.0).sin())
            .collect();
        let path = dir.join(format!("tone{f}.wav"));
        ddsp::features::audio::write_wav(&path, &samples, 16000).unwrap();
    }
}

const SMALL: &[&str] = &[
    "--chunk-size",
    "4096",
    "--chunk-hop",
    "2048",
    "--frame-hop",
    "128",
    "--frame-size",
    "512",
    "--harmonics",
    "8",
    "--rnn-channels",
    "8",
    "--decoder-backbone",
    "gru",
    "--layers-per-stack",
    "1",
    "--eval-every",
    "2",
    "--checkpoint-every",
    "2",
];

/// Every file and folder under `dir` whose name marks it temporary or a swap leftover.
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.contains(".tmp") || name.ends_with(".old") {
            found.push(e.path());
        }
        if e.path().is_dir() {
            found.extend(leftovers(&e.path()));
        }
    }
    found
}

/// A cache's manifest without the shards' SHA-256: a shard's bytes differ from run to run (the
/// safetensors writer orders its metadata map at random) while its contents are the same, and
/// loading it (`inspect-cache`) checks it against the checksum recorded.
fn manifest(cache: &Path) -> serde_json::Value {
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cache.join("manifest.json")).unwrap()).unwrap();
    for s in m["sources"].as_array_mut().unwrap() {
        s.as_object_mut().unwrap().remove("shardSha256");
    }
    m
}

fn preprocess_args<'a>(input: &'a Path, cache: &'a Path) -> Vec<&'a str> {
    let mut args = vec!["preprocess", "--input", p(input), "--cache", p(cache)];
    args.extend_from_slice(SMALL);
    args
}

/// After a kill: either no manifest yet, or one that loads (`inspect-cache` reads and
/// verifies every shard) and names no temporary file; returns the manifest if there is one.
fn cache_loads(cache: &Path, what: &str) -> Option<serde_json::Value> {
    if !cache.join("manifest.json").exists() {
        return None;
    }
    ok(&["inspect-cache", "--cache", p(cache)]);
    let m = manifest(cache);
    for s in m["sources"].as_array().unwrap() {
        let shard = s["shard"].as_str().unwrap();
        assert!(!shard.contains(".tmp"), "{what}: manifest names {shard}");
    }
    Some(m)
}

#[test]
fn preprocess_killed_anywhere_leaves_a_loadable_cache_and_a_rerun_completes_it() {
    let dir = temp("preprocess");
    let input = dir.join("in");
    tones(&input, &[262.0, 330.0, 392.0]);
    let reference = dir.join("reference");
    ok(&preprocess_args(&input, &reference));
    let expected = manifest(&reference);
    assert_eq!(expected["sources"].as_array().unwrap().len(), 3);

    // A fresh cache killed at each point (a shard is `chunks-…`), then run again.
    let points = [
        "write-partial/chunks-:1",
        "write-synced/chunks-:1",
        "write-renamed/chunks-:1",
        "write-partial/chunks-:2",
        "write-partial/chunks-:3",
        "write-renamed/chunks-:3",
        "write-partial/manifest.json:1",
        "write-synced/manifest.json:1",
        "write-renamed/manifest.json:1",
    ];
    for (i, at) in points.iter().enumerate() {
        let cache = dir.join(format!("cache{i}"));
        killed_at(&preprocess_args(&input, &cache), at);
        // Before the manifest's rename there is no manifest; after it, a complete one.
        let found = cache_loads(&cache, at);
        assert_eq!(
            found.is_some(),
            at.starts_with("write-renamed/manifest"),
            "{at}"
        );
        ok(&preprocess_args(&input, &cache));
        assert_eq!(manifest(&cache), expected, "{at}");
        assert_eq!(leftovers(&cache), Vec::<PathBuf>::new(), "{at}");
        ok(&["inspect-cache", "--cache", p(&cache)]);
    }

    // Killed twice in a row (a shard, then the re-run's manifest), then run again.
    let cache = dir.join("twice");
    killed_at(&preprocess_args(&input, &cache), "write-partial/chunks-:2");
    killed_at(
        &preprocess_args(&input, &cache),
        "write-partial/manifest.json:1",
    );
    assert!(cache_loads(&cache, "twice").is_none());
    ok(&preprocess_args(&input, &cache));
    assert_eq!(manifest(&cache), expected);
    assert!(leftovers(&cache).is_empty(), "{:?}", leftovers(&cache));

    // A complete cache brought up to date with a new recording, killed while writing the new
    // shard and while replacing the manifest: the old manifest stays, and loads.
    let more = dir.join("more");
    tones(&more, &[262.0, 330.0, 392.0, 440.0]);
    let reference4 = dir.join("reference4");
    ok(&preprocess_args(&more, &reference4));
    let expected4 = manifest(&reference4);
    for (i, at) in ["write-partial/chunks-:1", "write-synced/manifest.json:1"]
        .iter()
        .enumerate()
    {
        let cache = dir.join(format!("update{i}"));
        ok(&preprocess_args(&input, &cache));
        let before = manifest(&cache);
        killed_at(&preprocess_args(&more, &cache), at);
        assert_eq!(cache_loads(&cache, at), Some(before), "{at}");
        ok(&preprocess_args(&more, &cache));
        assert_eq!(manifest(&cache), expected4, "update, {at}");
        assert!(leftovers(&cache).is_empty(), "{:?}", leftovers(&cache));
    }

    // Killed from outside after fixed delays (wherever it happens to be).
    for ms in [30, 90, 180] {
        let cache = dir.join(format!("after{ms}"));
        killed_after(&preprocess_args(&input, &cache), Duration::from_millis(ms));
        cache_loads(&cache, "external kill");
        ok(&preprocess_args(&input, &cache));
        assert_eq!(manifest(&cache), expected, "after {ms} ms");
        assert!(leftovers(&cache).is_empty(), "{:?}", leftovers(&cache));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

const STEPS: &str = "6";

fn train_args<'a>(cache: &'a Path, runs: &'a Path, name: &'a str) -> Vec<&'a str> {
    let mut args = vec![
        "train",
        "--cache",
        p(cache),
        "--steps",
        STEPS,
        "--runs-dir",
        p(runs),
        "--run-name",
        name,
        "--device",
        "flex",
        "--log-every",
        "1",
    ];
    args.extend_from_slice(SMALL);
    args
}

fn log(run: &Path, name: &str) -> String {
    std::fs::read_to_string(run.join("logs").join(format!("{name}.csv"))).unwrap()
}

/// Continue a killed run: `train --resume` when it has a checkpoint to continue from (any
/// loader finds one: `render` and `eval` use the same lookup), else the same command again
/// with `--overwrite` (the run had written no checkpoint, so there is nothing to continue).
fn continue_run(args: &[&str], run: &Path, at: &str) {
    let resumable = ddsp::train::find_checkpoint(&run.join("checkpoints"), "latest").is_some();
    if resumable {
        let o = ok(&["train", "--resume", p(run), "--device", "flex"]);
        assert!(
            text(&o).contains(&format!("..{STEPS})")),
            "{at}: {}",
            text(&o)
        );
    } else {
        let o = command(&["train", "--resume", p(run), "--device", "flex"], None)
            .output()
            .unwrap();
        assert!(!o.status.success(), "{at}: {}", text(&o));
        let mut again = args.to_vec();
        again.push("--overwrite");
        ok(&again);
    }
}

#[test]
fn train_killed_anywhere_resumes_to_the_uninterrupted_losses() {
    let dir = temp("train");
    let input = dir.join("in");
    tones(&input, &[262.0, 330.0]);
    let cache = dir.join("cache");
    ok(&preprocess_args(&input, &cache));
    let runs = dir.join("runs");
    ok(&train_args(&cache, &runs, "reference"));
    let reference = runs.join("reference");
    let (train_log, val_log) = (log(&reference, "train"), log(&reference, "val"));
    assert_eq!(train_log.lines().count(), 7, "{train_log}");

    // Checkpoints are saved as step_N, then latest, then (when validation improves) best; each
    // is model.safetensors, model.bpk, optimizer.bpk, then state.json.
    let points = [
        "csv-appended/train.csv:1",
        "checkpoint-swapping/latest:1",
        "checkpoint-swapped/latest:1",
        "csv-appended/train.csv:3",
        "checkpoint-begin/latest:2",
        "write-partial/model.safetensors:4",
        "write-partial/model.bpk:5",
        "write-partial/optimizer.bpk:6",
        "write-synced/state.json:5",
        "write-renamed/state.json:6",
        "checkpoint-written/latest:2",
        "checkpoint-swapping/latest:2",
        "checkpoint-swapped/latest:2",
        "checkpoint-swapping/best:2",
        "csv-appended/val.csv:3",
        "write-synced/run_meta.json:1",
        "write-partial/run_meta.json:2",
        "checkpoint-swapping/latest:3",
    ];
    let check = |run: &Path, at: &str| {
        assert_eq!(log(run, "train"), train_log, "{at}");
        assert_eq!(log(run, "val"), val_log, "{at}");
        assert!(leftovers(run).is_empty(), "{at}: {:?}", leftovers(run));
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(run.join("run_meta.json")).unwrap()).unwrap();
        assert_eq!(meta["steps"], 6, "{at}: {meta}");
    };
    for (i, at) in points.iter().enumerate() {
        let name = format!("run{i}");
        let args = train_args(&cache, &runs, &name);
        let run = runs.join(&name);
        killed_at(&args, at);
        continue_run(&args, &run, at);
        check(&run, at);
    }

    // Killed, then killed again while resuming, then resumed.
    let args = train_args(&cache, &runs, "twice");
    let run = runs.join("twice");
    killed_at(&args, "checkpoint-swapping/latest:2");
    let o = command(
        &["train", "--resume", p(&run), "--device", "flex"],
        Some("write-partial/optimizer.bpk:2"),
    )
    .output()
    .unwrap();
    assert!(was_killed(&o), "{}", text(&o));
    continue_run(&args, &run, "twice");
    check(&run, "twice");

    // Killed from outside after fixed delays.
    for ms in [150, 300, 450] {
        let name = format!("after{ms}");
        let args = train_args(&cache, &runs, &name);
        let run = runs.join(&name);
        killed_after(&args, Duration::from_millis(ms));
        if run.exists() {
            continue_run(&args, &run, &name);
        } else {
            ok(&args);
        }
        check(&run, &name);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
