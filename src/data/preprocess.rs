//! Building a cache from a folder of recordings.

use rayon::prelude::*;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use sha2::{Digest, Sha256};

use crate::io::{hex, sha256_hex};
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use super::{
    ChunkEntry, FORMAT_VERSION, MANIFEST, Manifest, SkippedEntry, SourceEntry, Split, plan_chunks,
};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::features::{self, audio};

/// Progress of [`preprocess`], for a progress bar or a log.
#[derive(Clone, Debug)]
pub enum PreprocessEvent {
    /// The scan found this many WAV files to process.
    Started {
        /// Files to process.
        files: usize,
    },
    /// A file was done (or reused from an earlier run).
    FileDone {
        /// Path relative to the input folder.
        path: String,
        /// Chunks it contributed.
        chunks: usize,
        /// Whether its shard was reused.
        reused: bool,
    },
    /// A file was skipped.
    FileSkipped {
        /// Path relative to the input folder.
        path: String,
        /// Why.
        reason: String,
    },
}

/// What a preprocessing run did.
#[derive(Clone, Debug)]
pub struct PreprocessReport {
    /// The manifest written.
    pub manifest: Manifest,
    /// Files whose shards were reused from an earlier run.
    pub reused: usize,
    /// Seconds of audio analysed in this run (reused files excluded).
    pub seconds_processed: f64,
}

/// Every audio file ([`audio::AUDIO_EXTENSIONS`], any letter case) under `dir`, recursively,
/// in sorted order.
/// A folder reached twice (a symbolic link to a folder already scanned, or to one of its own
/// ancestors) is not scanned again, so links neither loop nor list a file twice.
pub fn scan_audio_files(dir: &Path) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, seen: &mut HashSet<PathBuf>, out: &mut Vec<PathBuf>) -> Result<()> {
        let real = std::fs::canonicalize(dir).map_err(|e| Error::io(dir, e))?;
        if !seen.insert(real) {
            return Ok(());
        }
        let mut entries = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|e| Error::io(dir, e))?;
        // Sorted, so which of two paths to one folder is scanned does not depend on the OS.
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let kind = entry.file_type().map_err(|e| Error::io(&path, e))?;
            if kind.is_dir() || (kind.is_symlink() && path.is_dir()) {
                walk(&path, seen, out)?;
            } else if audio::is_audio_file(&path) {
                out.push(path);
            }
        }
        Ok(())
    }
    if !dir.is_dir() {
        return Err(Error::Input {
            path: dir.to_path_buf(),
            reason: "does not exist or is not a folder".into(),
        });
    }
    let mut files = Vec::new();
    walk(dir, &mut HashSet::new(), &mut files)?;
    files.sort();
    Ok(files)
}

/// Hash of the feature-affecting options: part of every shard's name.
fn features_key(config: &Config) -> String {
    let mut h = Sha256::new();
    for (k, v) in config.feature_fingerprint() {
        h.update(k.as_bytes());
        h.update(b"=");
        h.update(v.as_bytes());
        h.update(b";");
    }
    h.update(format!("format{FORMAT_VERSION}").as_bytes());
    hex(&h.finalize())[..12].to_string()
}

/// Arrays of one shard.
pub(super) struct Shard {
    pub rows: usize,
    pub audio: Vec<f32>,
    pub f0_hz: Vec<f32>,
    pub loudness_db: Vec<f32>,
    pub voiced_prob: Vec<f32>,
    /// MFCCs, `frames * mfcc_bins` per row (empty when the config computes none).
    pub mfcc: Vec<f32>,
    pub chunks: Vec<ChunkEntry>,
    /// Length of the resampled source, samples.
    pub samples: usize,
    /// SHA-256 of the shard file (empty until written or read).
    pub sha256: String,
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Write a shard (with its MFCCs when `mfcc_bins > 0`); returns the SHA-256 of the file.
fn write_shard(
    path: &Path,
    shard: &Shard,
    chunk_size: usize,
    frames: usize,
    mfcc_bins: usize,
) -> Result<String> {
    let mut bufs = vec![
        ("audio", f32_bytes(&shard.audio), chunk_size),
        ("f0_hz", f32_bytes(&shard.f0_hz), frames),
        ("loudness_db", f32_bytes(&shard.loudness_db), frames),
        ("voiced_prob", f32_bytes(&shard.voiced_prob), frames),
    ];
    if mfcc_bins > 0 {
        bufs.push(("mfcc", f32_bytes(&shard.mfcc), frames * mfcc_bins));
    }
    let views: Vec<(&str, TensorView)> = bufs
        .iter()
        .map(|(name, bytes, width)| {
            TensorView::new(Dtype::F32, vec![shard.rows, *width], bytes)
                .map(|v| (*name, v))
                .map_err(|e| Error::Cache {
                    path: path.to_path_buf(),
                    reason: format!("cannot encode {name}: {e}"),
                })
        })
        .collect::<Result<_>>()?;
    let mut meta = HashMap::new();
    meta.insert(
        "chunks".to_string(),
        serde_json::to_string(&shard.chunks).expect("chunk rows serialise"),
    );
    meta.insert("samples".to_string(), shard.samples.to_string());
    let bytes = safetensors::serialize(views, Some(meta)).map_err(|e| Error::Cache {
        path: path.to_path_buf(),
        reason: format!("cannot encode shard: {e}"),
    })?;
    crate::io::write_atomic(path, &bytes)?;
    Ok(sha256_hex(&bytes))
}

/// Read and check a shard: its SHA-256 against `expected` (when the manifest records one), its
/// arrays' shapes (MFCCs too when `mfcc_bins > 0`), and that every value is finite. Any
/// problem is an error naming the file.
pub(super) fn read_shard(
    path: &Path,
    chunk_size: usize,
    frames: usize,
    mfcc_bins: usize,
    expected: Option<&str>,
) -> Result<Shard> {
    let bad = |reason: String| Error::Cache {
        path: path.to_path_buf(),
        reason,
    };
    let (mut file, len) =
        crate::io::open_regular(path).map_err(|e| bad(format!("cannot read shard: {e}")))?;
    // The header's length is checked against the file's before anything is allocated.
    let mut head = [0u8; 8];
    file.read_exact(&mut head).map_err(|_| {
        bad(format!(
            "corrupt shard: {len} bytes, too short for a header"
        ))
    })?;
    let header = u64::from_le_bytes(head);
    if header > len - 8 {
        return Err(bad(format!(
            "corrupt shard: its header claims {header} bytes, but the file holds {len}"
        )));
    }
    let mut bytes = head.to_vec();
    bytes.reserve_exact((len - 8) as usize);
    (&mut file)
        .take(len - 8)
        .read_to_end(&mut bytes)
        .map_err(|e| bad(format!("cannot read shard: {e}")))?;
    let sha256 = sha256_hex(&bytes);
    if let Some(expected) = expected
        && expected != sha256
    {
        return Err(bad(format!(
            "checksum mismatch: {} was modified or is damaged (SHA-256 {sha256}, the manifest \
             records {expected}); preprocess again",
            path.display()
        )));
    }
    let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(format!("corrupt shard: {e}")))?;
    let (_, meta) =
        SafeTensors::read_metadata(&bytes).map_err(|e| bad(format!("corrupt shard: {e}")))?;
    let chunks: Vec<ChunkEntry> = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get("chunks"))
        .ok_or_else(|| bad("shard has no chunk metadata".into()))
        .and_then(|s| {
            serde_json::from_str(s).map_err(|e| bad(format!("bad chunk metadata: {e}")))
        })?;
    let samples = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get("samples"))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("shard has no source length".into()))?;
    let rows = chunks.len();
    let get = |name: &str, width: usize| -> Result<Vec<f32>> {
        let t = st
            .tensor(name)
            .map_err(|e| bad(format!("missing {name}: {e}")))?;
        if t.dtype() != Dtype::F32 || t.shape() != [rows, width] {
            return Err(bad(format!(
                "{name} has shape {:?} {:?}, expected [{rows}, {width}] F32",
                t.shape(),
                t.dtype()
            )));
        }
        let values: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(bad(format!(
                "{name} holds a non-finite value ({}) in row {}; preprocess again",
                values[i],
                i / width
            )));
        }
        Ok(values)
    };
    Ok(Shard {
        rows,
        audio: get("audio", chunk_size)?,
        f0_hz: get("f0_hz", frames)?,
        loudness_db: get("loudness_db", frames)?,
        voiced_prob: get("voiced_prob", frames)?,
        mfcc: if mfcc_bins > 0 {
            get("mfcc", frames * mfcc_bins)?
        } else {
            Vec::new()
        },
        chunks,
        samples,
        sha256,
    })
}

/// Analyse one file into a shard (source index filled in later).
fn analyse(path: &Path, config: &Config, key: u64) -> Result<Shard> {
    // At least one analysis frame: a shorter file is not a chunk of zero padding.
    let samples = audio::load_audio_at_least(
        path,
        config.sample_rate,
        config.normalize_to,
        config.frame_size,
    )?;
    let n = samples.len();
    let size = config.chunk_size;
    let frames = config.frames_per_chunk();
    let padded: Vec<f32> = if n < size {
        let mut p = samples.clone();
        p.resize(size, 0.0);
        p
    } else {
        samples
    };
    let feats = features::extract(&padded, &config.feature_config());
    let mut plan: Vec<(usize, Split, f32)> = plan_chunks(padded.len(), config, key)
        .into_iter()
        .map(|(o, s)| {
            let c = &padded[o..o + size];
            let rms = (c.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / size as f64).sqrt();
            (o, s, rms as f32)
        })
        .filter(|(_, _, rms)| *rms as f64 >= config.silence_rms)
        .collect();
    if let Some(max) = config.max_chunks_per_file
        && plan.len() > max
    {
        let keep: Vec<usize> = (0..max).map(|i| i * plan.len() / max).collect();
        plan = keep.into_iter().map(|i| plan[i]).collect();
    }
    let mut shard = Shard {
        rows: plan.len(),
        audio: Vec::with_capacity(plan.len() * size),
        f0_hz: Vec::new(),
        loudness_db: Vec::new(),
        voiced_prob: Vec::new(),
        mfcc: Vec::new(),
        chunks: Vec::new(),
        samples: n,
        sha256: String::new(),
    };
    for (row, (o, split, rms)) in plan.into_iter().enumerate() {
        let f = feats.slice(o / config.frame_hop, frames);
        let voiced = f
            .voiced_prob
            .iter()
            .filter(|p| **p as f64 >= config.voiced_threshold)
            .count() as f32
            / frames as f32;
        shard.audio.extend_from_slice(&padded[o..o + size]);
        shard.f0_hz.extend_from_slice(&f.f0_hz);
        shard.loudness_db.extend_from_slice(&f.loudness_db);
        shard.voiced_prob.extend_from_slice(&f.voiced_prob);
        shard.mfcc.extend_from_slice(&f.mfcc);
        shard.chunks.push(ChunkEntry {
            id: String::new(),
            source: 0,
            offset: o,
            split,
            rms,
            voiced_fraction: voiced,
            row,
        });
    }
    Ok(shard)
}

enum Outcome {
    Done {
        entry: SourceEntry,
        chunks: Vec<ChunkEntry>,
        reused: bool,
    },
    Skipped(SkippedEntry),
    /// Its output could not be written: fatal.
    Failed(Error),
}

/// Turn every audio file under `input` into cached chunks and features in `cache`.
///
/// Unusable files are skipped with a reason (reported through `on_event` and kept in the
/// manifest); the run fails when no file yields a chunk, and on any failure to write the cache
/// ([`Error::Write`]: a full disk, a read-only folder), which leaves the previous manifest.
/// Files whose shard from an earlier run with the same content and feature options is present
/// are not analysed again.
pub fn preprocess(
    input: &Path,
    cache: &Path,
    config: &Config,
    on_event: &(dyn Fn(PreprocessEvent) + Sync),
) -> Result<PreprocessReport> {
    config.validate()?;
    let mut files = scan_audio_files(input)?;
    if files.is_empty() {
        return Err(Error::Input {
            path: input.to_path_buf(),
            reason: format!(
                "no audio files ({}) found under it",
                audio::AUDIO_EXTENSIONS.map(|e| format!(".{e}")).join(", ")
            ),
        });
    }
    if let Some(max) = config.max_files {
        files.truncate(max);
    }
    crate::io::create_dir_all(cache)?;
    on_event(PreprocessEvent::Started { files: files.len() });
    let fkey = features_key(config);
    let size = config.chunk_size;
    let frames = config.frames_per_chunk();
    let mfcc_bins = config.feature_config().mfcc_bins;

    let outcomes: Vec<(Outcome, f64)> = files
        .par_iter()
        .map(|path| {
            let rel = path
                .strip_prefix(input)
                .unwrap_or(path)
                .to_string_lossy()
                .replace('\\', "/");
            let result = (|| -> Result<(Outcome, f64)> {
                let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
                let sha = sha256_hex(&bytes);
                let shard_name = format!("chunks-{}-{fkey}.safetensors", &sha[..16]);
                let shard_path = cache.join(&shard_name);
                let key = u64::from_str_radix(&sha[..16], 16).unwrap_or(0);
                let (shard, reused, seconds) =
                    match read_shard(&shard_path, size, frames, mfcc_bins, None) {
                        Ok(s) => (s, true, 0.0),
                        Err(_) => {
                            let mut s = analyse(path, config, key)?;
                            // A shard that cannot be written is the cache's problem, not the
                            // input's: it stops the run.
                            match write_shard(&shard_path, &s, size, frames, mfcc_bins) {
                                Ok(sha) => s.sha256 = sha,
                                Err(e) => return Ok((Outcome::Failed(e), 0.0)),
                            }
                            let secs = s.samples as f64 / config.sample_rate;
                            (s, false, secs)
                        }
                    };
                let samples = shard.samples;
                if shard.rows == 0 {
                    return Ok((
                        Outcome::Skipped(SkippedEntry {
                            path: rel.clone(),
                            reason: "no chunk above silenceRms".into(),
                        }),
                        seconds,
                    ));
                }
                Ok((
                    Outcome::Done {
                        entry: SourceEntry {
                            path: rel.clone(),
                            size: bytes.len() as u64,
                            sha256: sha,
                            samples,
                            shard: shard_name,
                            shard_sha256: Some(shard.sha256),
                        },
                        chunks: shard.chunks,
                        reused,
                    },
                    seconds,
                ))
            })();
            let outcome = result.unwrap_or_else(|e| {
                let reason = match e {
                    Error::Audio { reason, .. } => reason,
                    other => other.to_string(),
                };
                (
                    Outcome::Skipped(SkippedEntry {
                        path: rel.clone(),
                        reason,
                    }),
                    0.0,
                )
            });
            match &outcome.0 {
                Outcome::Done { chunks, reused, .. } => on_event(PreprocessEvent::FileDone {
                    path: rel,
                    chunks: chunks.len(),
                    reused: *reused,
                }),
                Outcome::Skipped(s) => on_event(PreprocessEvent::FileSkipped {
                    path: rel,
                    reason: s.reason.clone(),
                }),
                Outcome::Failed(_) => {}
            }
            outcome
        })
        .collect();

    let mut manifest = Manifest {
        format_version: FORMAT_VERSION,
        crate_version: env!("CARGO_PKG_VERSION").to_string(),
        config: config.clone(),
        sources: Vec::new(),
        skipped: Vec::new(),
        chunks: Vec::new(),
    };
    let (mut reused_count, mut seconds) = (0, 0.0);
    for (outcome, secs) in outcomes {
        seconds += secs;
        match outcome {
            Outcome::Done {
                entry,
                chunks,
                reused,
            } => {
                let si = manifest.sources.len();
                reused_count += reused as usize;
                for mut c in chunks {
                    c.source = si;
                    c.id = format!("{si}:{}", c.offset);
                    manifest.chunks.push(c);
                }
                manifest.sources.push(entry);
            }
            Outcome::Skipped(s) => manifest.skipped.push(s),
            Outcome::Failed(e) => return Err(e),
        }
    }
    if manifest.chunks.is_empty() {
        let reasons: Vec<String> = manifest
            .skipped
            .iter()
            .map(|s| format!("{}: {}", s.path, s.reason))
            .collect();
        return Err(Error::Input {
            path: input.to_path_buf(),
            reason: format!(
                "no usable audio under it ({} file(s) skipped: {})",
                manifest.skipped.len(),
                reasons.join("; ")
            ),
        });
    }
    let text = serde_json::to_string_pretty(&manifest).expect("manifest serialises");
    crate::io::write_atomic(&cache.join(MANIFEST), text.as_bytes())?;
    remove_orphans(cache, &manifest);
    Ok(PreprocessReport {
        manifest,
        reused: reused_count,
        seconds_processed: seconds,
    })
}

/// Delete shards and temporary files the new manifest does not reference.
fn remove_orphans(cache: &Path, manifest: &Manifest) {
    let Ok(entries) = std::fs::read_dir(cache) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let orphan_shard = name.starts_with("chunks-")
            && name.ends_with(".safetensors")
            && !manifest.sources.iter().any(|s| s.shard == name);
        let stale_tmp = name.contains(".tmp");
        if orphan_shard || stale_tmp {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
