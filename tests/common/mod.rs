//! Helpers shared by the tests that run the `ddspe2e` example binary: end to end (`cli`) and
//! under faults (kills, a full disk, read-only folders).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let bin = dir
        .join("examples")
        .join(format!("ddspe2e{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.exists(), "{} not built", bin.display());
    bin
}

pub fn command(args: &[&str], kill_at: Option<&str>) -> Command {
    let mut c = Command::new(binary());
    c.args(args).env_remove(ddsp::io::KILL_AT_VAR);
    if let Some(at) = kill_at {
        c.env(ddsp::io::KILL_AT_VAR, at);
    }
    c
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Run to completion; it must succeed.
pub fn ok(args: &[&str]) -> Output {
    let o = command(args, None).output().unwrap();
    assert!(o.status.success(), "{args:?}: {}", text(&o));
    o
}

/// Whether the process was killed by SIGKILL (on other systems: ended unsuccessfully).
pub fn was_killed(o: &Output) -> bool {
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
pub fn killed_at(args: &[&str], at: &str) {
    let o = command(args, Some(at)).output().unwrap();
    assert!(was_killed(&o), "{at} was never reached: {}", text(&o));
}

/// Run and SIGKILL it after `delay` (it may have finished by then).
pub fn killed_after(args: &[&str], delay: Duration) {
    let mut child = command(args, None)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    let _ = child.kill();
    child.wait().unwrap();
}

pub fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ddsp-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

pub fn tones(dir: &Path, freqs: &[f32]) {
    std::fs::create_dir_all(dir).unwrap();
    for f in freqs {
        let samples: Vec<f32> = (0..16000 * 2)
            .map(|i| 0.3 * (2.0 * std::f32::consts::PI * f * i as f32 / 16000.0).sin())
            .collect();
        let path = dir.join(format!("tone{f}.wav"));
        ddsp::features::audio::write_wav(&path, &samples, 16000).unwrap();
    }
}

pub const SMALL: &[&str] = &[
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
pub fn leftovers(dir: &Path) -> Vec<PathBuf> {
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
pub fn manifest(cache: &Path) -> serde_json::Value {
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cache.join("manifest.json")).unwrap()).unwrap();
    for s in m["sources"].as_array_mut().unwrap() {
        s.as_object_mut().unwrap().remove("shardSha256");
    }
    m
}

pub fn preprocess_args<'a>(input: &'a Path, cache: &'a Path) -> Vec<&'a str> {
    let mut args = vec!["preprocess", "--input", p(input), "--cache", p(cache)];
    args.extend_from_slice(SMALL);
    args
}

/// After a kill: either no manifest yet, or one that loads (`inspect-cache` reads and
/// verifies every shard) and names no temporary file; returns the manifest if there is one.
pub fn cache_loads(cache: &Path, what: &str) -> Option<serde_json::Value> {
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

/// `train` on `cache` into `runs/name` for `steps` steps on the CPU, logging every step.
pub fn train_args<'a>(
    cache: &'a Path,
    runs: &'a Path,
    name: &'a str,
    steps: &'a str,
) -> Vec<&'a str> {
    let mut args = vec![
        "train",
        "--cache",
        p(cache),
        "--steps",
        steps,
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

/// A run's `logs/NAME.csv`.
pub fn log(run: &Path, name: &str) -> String {
    std::fs::read_to_string(run.join("logs").join(format!("{name}.csv"))).unwrap()
}

/// `command` whose files may grow to at most `bytes` (RLIMIT_FSIZE, with SIGXFSZ ignored so a
/// write past it fails with EFBIG, "File too large", as on a full disk).
#[cfg(unix)]
pub fn limited(args: &[&str], bytes: u64) -> Command {
    use std::os::unix::process::CommandExt;
    let mut c = command(args, None);
    // SAFETY: only async-signal-safe calls (signal, setrlimit) between fork and exec.
    unsafe {
        c.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit {
                rlim_cur: bytes as libc::rlim_t,
                rlim_max: bytes as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    c
}

/// Every regular file under `dir` with its bytes.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        if path.is_dir() {
            files.extend(snapshot(&path));
        } else {
            files.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    files
}
