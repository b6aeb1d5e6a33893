//! The fuzz targets' bodies (`fuzz/fuzz_targets/*.rs`, run with `cargo fuzz`; see
//! RELIABILITY.md), here so that `tests/fuzz_regressions.rs` replays every input kept under
//! `fuzz/` through exactly the same code on every `cargo test`. Each takes arbitrary bytes and
//! must return (an error is fine) without panicking, hanging or exhausting memory; each
//! returns whether the input was accepted (decoded, valid, loaded).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A scratch folder for one target in this process (inputs are files: the loaders read paths).
fn scratch(target: &str) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    thread_local! {
        static ID: u64 = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let dir = std::env::temp_dir().join(format!(
        "ddsp-fuzz-{target}-{}-{}",
        std::process::id(),
        ID.with(|id| *id)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

/// `data` split at the first `marker`: before it and after it (everything and nothing without
/// one).
fn split<'a>(data: &'a [u8], marker: &[u8]) -> (&'a [u8], &'a [u8]) {
    match data.windows(marker.len()).position(|w| w == marker) {
        Some(i) => (&data[..i], &data[i + marker.len()..]),
        None => (data, &[]),
    }
}

/// The extensions the first byte of an [`audio`] input picks from.
pub const AUDIO_EXTENSIONS: [&str; 7] = ["wav", "flac", "mp3", "ogg", "aiff", "wave", "bin"];

/// Audio decoding: the first byte picks the file's extension ([`AUDIO_EXTENSIONS`]; WAV goes
/// through hound, the rest through symphonia), the other bytes are the file. Decoded with
/// `read_audio`, then as training reads a recording (resampled to 16 kHz, length checked).
pub fn audio(data: &[u8]) -> bool {
    let Some((&pick, bytes)) = data.split_first() else {
        return false;
    };
    let dir = scratch("audio");
    let ext = AUDIO_EXTENSIONS[pick as usize % AUDIO_EXTENSIONS.len()];
    let path = dir.join(format!("in.{ext}"));
    std::fs::write(&path, bytes).expect("write input");
    let decoded = crate::features::audio::read_audio(&path);
    if let Ok(decoded) = &decoded {
        assert!(
            decoded.samples.iter().all(|s| s.is_finite()),
            "non-finite sample"
        );
        assert!(decoded.sample_rate > 0 && decoded.channels > 0);
    }
    let _ = crate::features::audio::load_audio_at_least(&path, 16000.0, 0.99, 1024);
    let _ = std::fs::remove_dir_all(&dir);
    decoded.is_ok()
}

/// Config parsing: the bytes as a JSON config; one that parses is validated, and one that
/// validates must survive a round trip through its JSON unchanged.
pub fn config(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let Ok(config) = crate::Config::from_json_str(text) else {
        return false;
    };
    let valid = config.validate().is_ok();
    if valid {
        let json = config.to_json_string();
        let again = crate::Config::from_json_str(&json).expect("a valid config re-parses");
        assert_eq!(
            again.to_json_string(),
            json,
            "round trip changed the config"
        );
        let _ = config.frames_per_chunk();
        let _ = config.feature_fingerprint();
    }
    valid
}

/// Cache loading: the bytes up to the first NUL are `manifest.json`; the bytes after it (if
/// any) are the shard the manifest's first `"shard"` names (when that is a plain name). The
/// cache is opened as `inspect-cache` and training open it.
pub fn manifest(data: &[u8]) -> bool {
    let dir = scratch("manifest");
    let (manifest, shard) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    std::fs::write(dir.join("manifest.json"), manifest).expect("write manifest");
    if let Some(shard) = shard {
        let name = first_shard_name(manifest).unwrap_or_else(|| "chunks-0.safetensors".into());
        if crate::io::is_plain_name(&name) && name != "manifest.json" {
            std::fs::write(dir.join(name), shard).expect("write shard");
        }
    }
    let opened = crate::data::Dataset::open_any(&dir);
    if let Ok(data) = &opened {
        let _ = data.unverified_note();
        let _ = data.indices(crate::data::Split::Train);
        let _ = data.indices(crate::data::Split::Val);
        let _ = crate::data::DataStats::of(data, crate::data::Split::Train);
    }
    let _ = std::fs::remove_dir_all(&dir);
    opened.is_ok()
}

/// The value of the first `"shard": "…"` in a manifest, read leniently.
fn first_shard_name(manifest: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(manifest).ok()?;
    let key = "\"shard\"";
    let rest = text[text.find(key)? + key.len()..].trim_start();
    let rest = rest.strip_prefix(':')?.trim_start().strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_string())
}

/// Checkpoint loading: a checkpoint folder packed as one byte, `state.json`, NUL, the
/// weights, `\0OPT\0`, the optimizer state. Bit 0 of the first byte picks `model.bpk` (0) or
/// `model.safetensors` (1); the folder is loaded as `render` loads it (`infer::Model::load`),
/// and with bit 1 set its optimizer state as `train --resume` loads it.
pub fn checkpoint(data: &[u8]) -> bool {
    static DEVICE: OnceLock<burn::tensor::Device> = OnceLock::new();
    let device = DEVICE.get_or_init(burn::tensor::Device::flex);
    let Some((&pick, rest)) = data.split_first() else {
        return false;
    };
    let (state, rest) = split(rest, b"\0");
    let (weights, optimizer) = split(rest, b"\0OPT\0");
    let dir = scratch("checkpoint");
    let weights_name = if pick & 1 == 0 {
        "model.bpk"
    } else {
        "model.safetensors"
    };
    for (name, bytes) in [
        ("state.json", state),
        (weights_name, weights),
        ("optimizer.bpk", optimizer),
    ] {
        std::fs::write(dir.join(name), bytes).expect("write checkpoint file");
    }
    let mut loaded =
        crate::infer::Model::load(&dir, crate::infer::Checkpoint::Latest, device).is_ok();
    if pick & 2 != 0 {
        loaded &= crate::train::load_optimizer(&dir, crate::train::adam()).is_ok();
    }
    let _ = std::fs::remove_dir_all(&dir);
    loaded
}

/// Replay every file in `dir` (but hidden ones, `.gitkeep`) through `target`; returns how
/// many there were and how many were accepted.
pub fn replay(dir: &Path, target: fn(&[u8]) -> bool) -> (usize, usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (0, 0);
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    paths.sort();
    let mut accepted = 0;
    for path in paths.iter().filter(|p| p.is_file()) {
        let bytes = std::fs::read(path).expect("read fuzz input");
        eprintln!("replaying {}", path.display());
        accepted += target(&bytes) as usize;
    }
    (paths.len(), accepted)
}
