//! Issue 15: `preprocess` and `train` whose outputs cannot be written — a file-size limit
//! (RLIMIT_FSIZE: "File too large", everywhere), a full disk (a small tmpfs: "No space left on
//! device") and a read-only folder (a tmpfs remounted read-only, or `chmod` when not root)
//! — exit non-zero with "cannot write PATH: …", and the cache's or run's earlier files stay
//! as they were and load; once there is room again, a re-run or `--resume` finishes with an
//! uninterrupted run's losses. The tmpfs variants need `mount` (root on Linux); where mounting
//! is impossible they print why and skip, and the file-size variants still run. (Runs the
//! `ddspe2e` example: `cargo build --example ddspe2e` first.)
#![cfg(unix)]

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Output;

/// A failed write: non-zero exit, "cannot write" naming a file under `dir`, the OS's reason.
fn cannot_write(o: &Output, dir: &Path, reason: &str, what: &str) {
    let out = text(o);
    assert!(!o.status.success(), "{what}: {out}");
    assert!(
        out.contains(&format!("cannot write {}", dir.display())) && out.contains(reason),
        "{what}: {out}"
    );
    assert!(!out.contains("panicked"), "{what}: {out}");
}

/// A cache with two recordings, then a third to add: the input folder and the cache.
fn two_then_three(dir: &Path, cache: &Path) -> PathBuf {
    let input = dir.join("in");
    tones(&input, &[262.0, 330.0]);
    ok(&preprocess_args(&input, cache));
    tones(&input, &[392.0]);
    input
}

#[test]
fn preprocess_past_a_file_size_limit_names_the_shard_and_keeps_the_cache() {
    let dir = temp("fsize-preprocess");
    let cache = dir.join("cache");
    let input = two_then_three(&dir, &cache);
    let before = snapshot(&cache);
    // A shard is ~200 KB, the manifest ~10 KB.
    let o = limited(&preprocess_args(&input, &cache), 100_000)
        .output()
        .unwrap();
    cannot_write(&o, &cache, "File too large", "preprocess");
    assert!(text(&o).contains("chunks-"), "{}", text(&o));
    assert_eq!(snapshot(&cache), before, "the cache changed");
    assert!(leftovers(&cache).is_empty(), "{:?}", leftovers(&cache));
    ok(&["inspect-cache", "--cache", p(&cache)]);
    ok(&preprocess_args(&input, &cache));
    assert_eq!(manifest(&cache)["sources"].as_array().unwrap().len(), 3);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A run of 2 steps, then `--resume --steps 4` through `fail`, which must fail to write a
/// file under the run naming `reason`; then the run (its checkpoint at step 2 untouched)
/// resumes to 4 steps with the losses of an uninterrupted 4-step run.
fn train_fails_then_resumes(
    dir: &Path,
    runs: &Path,
    fail: impl Fn(&[&str]) -> Output,
    reason: &str,
) {
    let input = dir.join("in");
    tones(&input, &[262.0, 330.0]);
    let cache = dir.join("cache");
    ok(&preprocess_args(&input, &cache));
    let reference = dir.join("reference");
    ok(&train_args(&cache, &reference, "r", "4"));
    ok(&train_args(&cache, runs, "run", "2"));
    let run = runs.join("run");
    let latest = run.join("checkpoints/latest");
    let before = snapshot(&latest);
    let o = fail(&[
        "train",
        "--resume",
        p(&run),
        "--steps",
        "4",
        "--device",
        "flex",
    ]);
    cannot_write(&o, &run, reason, "train");
    assert_eq!(snapshot(&latest), before, "the last checkpoint changed");
    let checkpoints = run.join("checkpoints");
    assert!(
        leftovers(&checkpoints).is_empty(),
        "{:?}",
        leftovers(&checkpoints)
    );
    ok(&[
        "train",
        "--resume",
        p(&run),
        "--steps",
        "4",
        "--device",
        "flex",
    ]);
    let uninterrupted = reference.join("r");
    assert_eq!(log(&run, "train"), log(&uninterrupted, "train"));
    assert_eq!(log(&run, "val"), log(&uninterrupted, "val"));
}

#[test]
fn train_past_a_file_size_limit_names_the_checkpoint_and_keeps_the_last_one() {
    let dir = temp("fsize-train");
    let runs = dir.join("runs");
    // Weights are ~10 KB, the optimizer state ~28 KB; logs and run_meta.json under 1 KB.
    train_fails_then_resumes(
        &dir,
        &runs,
        |args| limited(args, 8000).output().unwrap(),
        "File too large",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A tmpfs of `size` mounted at `dir`, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Result<Self, String> {
        std::fs::create_dir_all(dir).unwrap();
        let o = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                p(dir),
            ])
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !o.status.success() {
            return Err(format!("mount -t tmpfs failed: {}", text(&o).trim()));
        }
        Ok(Self(dir.to_path_buf()))
    }

    fn remount(&self, options: &str) {
        let o = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{options}"), p(&self.0)])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
    }

    /// Fill it, leaving about `free` bytes.
    fn fill(&self, free: u64) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.0.join("filler")).unwrap();
        let block = vec![1u8; 4096];
        while f.write_all(&block).is_ok() {}
        let len = f.metadata().unwrap().len();
        f.set_len(len.saturating_sub(free)).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

fn tmpfs_or_skip(dir: &Path, size: &str, test: &str) -> Option<Tmpfs> {
    match Tmpfs::mount(dir, size) {
        Ok(t) => Some(t),
        Err(why) => {
            println!("skipping {test}: {why} (the file-size-limit variant still runs)");
            None
        }
    }
}

#[test]
fn full_and_read_only_disks_name_the_path_and_keep_the_cache() {
    let dir = temp("tmpfs-preprocess");
    let Some(disk) = tmpfs_or_skip(&dir.join("disk"), "1m", "the tmpfs preprocess test") else {
        return;
    };
    let cache = disk.0.join("cache");
    let input_dir = dir.join("src");
    std::fs::create_dir_all(&input_dir).unwrap();
    let input = two_then_three(&input_dir, &cache);
    let before = snapshot(&cache);
    disk.fill(50_000);
    let o = command(&preprocess_args(&input, &cache), None)
        .output()
        .unwrap();
    cannot_write(&o, &cache, "No space left on device", "full");
    assert_eq!(snapshot(&cache), before, "the cache changed");
    ok(&["inspect-cache", "--cache", p(&cache)]);
    std::fs::remove_file(disk.0.join("filler")).unwrap();

    disk.remount("ro");
    let o = command(&preprocess_args(&input, &cache), None)
        .output()
        .unwrap();
    cannot_write(&o, &cache, "Read-only file system", "read-only");
    assert_eq!(snapshot(&cache), before, "the cache changed");
    ok(&["inspect-cache", "--cache", p(&cache)]);
    disk.remount("rw");
    ok(&preprocess_args(&input, &cache));
    assert_eq!(manifest(&cache)["sources"].as_array().unwrap().len(), 3);
    drop(disk);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn train_on_a_full_or_read_only_disk_names_the_path_and_keeps_the_last_checkpoint() {
    let dir = temp("tmpfs-train");
    let Some(disk) = tmpfs_or_skip(&dir.join("disk"), "4m", "the tmpfs train test") else {
        return;
    };
    let runs = disk.0.join("runs");
    train_fails_then_resumes(
        &dir,
        &runs,
        |args| {
            disk.fill(2_000);
            let o = command(args, None).output().unwrap();
            std::fs::remove_file(disk.0.join("filler")).unwrap();
            o
        },
        "No space left on device",
    );
    let run = runs.join("run");
    // Read-only: the run cannot even be marked failed, and stays as it was.
    let before = snapshot(&run);
    disk.remount("ro");
    let o = command(
        &[
            "train",
            "--resume",
            p(&run),
            "--steps",
            "6",
            "--device",
            "flex",
        ],
        None,
    )
    .output()
    .unwrap();
    cannot_write(&o, &run, "Read-only file system", "read-only");
    disk.remount("rw");
    assert_eq!(snapshot(&run), before, "the run changed");
    ok(&[
        "train",
        "--resume",
        p(&run),
        "--steps",
        "6",
        "--device",
        "flex",
    ]);
    drop(disk);
    std::fs::remove_dir_all(&dir).unwrap();
}
