//! Issue 15: `preprocess` and `train` killed with SIGKILL at named points (the test-only
//! crash points of `ddsp::io::kill_point`, set through `DDSP_KILL_AT`: half a file written,
//! before and after a rename, between the two renames of a checkpoint swap, after a log row)
//! and after fixed delays. Every time, the cache and the run directory stay loadable, a re-run
//! or `train --resume` finishes, a re-run's cache equals an uninterrupted one's, a continued
//! run's losses equal an uninterrupted run's, and no temporary file is left where a loader
//! reads. (Runs the `ddspe2e` example: `cargo build --example ddspe2e` first.)

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    ok(&train_args(&cache, &runs, "reference", STEPS));
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
        let args = train_args(&cache, &runs, &name, STEPS);
        let run = runs.join(&name);
        killed_at(&args, at);
        continue_run(&args, &run, at);
        check(&run, at);
    }

    // Killed, then killed again while resuming, then resumed.
    let args = train_args(&cache, &runs, "twice", STEPS);
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
        let args = train_args(&cache, &runs, &name, STEPS);
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
