//! The feature cache: chunks of audio with their f0, voicing and loudness tracks.
//!
//! On disk (readable from Python with `json` and `safetensors`):
//! - `manifest.json`: format version, the resolved config, the source files (path, size,
//!   SHA-256, shard and the shard's SHA-256, checked on loading), the skipped files with
//!   reasons, and one row per chunk (id, source, offset, split, RMS, voiced fraction). Shard
//!   names are plain file names inside the cache.
//! - `chunks-<sha>-<features>.safetensors`, one per source file: `audio [n, chunkSize]`,
//!   `f0_hz`, `loudness_db`, `voiced_prob [n, chunkSize / frameHop]` (f32), with the chunk rows
//!   in the file's metadata. Its name holds the source's hash and the feature settings' hash,
//!   so a re-run reuses it when neither changed.
//!
//! Every file is written to a temporary name and renamed; the manifest is written last, so an
//! interrupted run never leaves a cache that opens half-built.

mod batch;
mod inspect;
mod preprocess;
mod split;
mod stats;

pub use batch::{Batch, BatchSampler};
pub use inspect::{InspectReport, SplitTotals, inspect};
pub use preprocess::{PreprocessEvent, PreprocessReport, preprocess, scan_audio_files};
pub use split::plan_chunks;
pub use stats::{DataStats, QuantileMap};

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::error::{Error, Result};

/// Version of the on-disk layout; bumped on incompatible changes.
pub const FORMAT_VERSION: u32 = 1;
/// The manifest's file name inside a cache directory.
pub const MANIFEST: &str = "manifest.json";

/// Train or validation split.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Training chunks.
    Train,
    /// Validation chunks.
    Val,
}

impl std::str::FromStr for Split {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "train" => Ok(Split::Train),
            "val" => Ok(Split::Val),
            other => Err(Error::Config(format!(
                "unknown split `{other}` (expected train or val)"
            ))),
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Split::Train => "train",
            Split::Val => "val",
        })
    }
}

/// One source recording in the manifest.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SourceEntry {
    /// Path relative to the input folder.
    pub path: String,
    /// File size, bytes.
    pub size: u64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// Samples after resampling.
    pub samples: usize,
    /// The shard holding its chunks.
    pub shard: String,
    /// SHA-256 of the shard, checked when it is loaded (absent in caches written before it
    /// was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_sha256: Option<String>,
}

/// A file that was not used, and why.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SkippedEntry {
    /// Path relative to the input folder.
    pub path: String,
    /// The reason.
    pub reason: String,
}

/// One chunk in the manifest.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ChunkEntry {
    /// `"<source index>:<offset>"`.
    pub id: String,
    /// Index into [`Manifest::sources`].
    pub source: usize,
    /// First sample of the chunk in the resampled source.
    pub offset: usize,
    /// Its split.
    pub split: Split,
    /// RMS of the chunk's audio.
    pub rms: f32,
    /// Fraction of frames with voicing probability >= `voicedThreshold`.
    pub voiced_fraction: f32,
    /// Row in the source's shard.
    pub row: usize,
}

/// The cache's table of contents.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// [`FORMAT_VERSION`] at writing.
    pub format_version: u32,
    /// `ddsp` version that wrote it.
    pub crate_version: String,
    /// The resolved config used.
    pub config: Config,
    /// Sources used, in sorted order.
    pub sources: Vec<SourceEntry>,
    /// Sources skipped.
    pub skipped: Vec<SkippedEntry>,
    /// Every chunk.
    pub chunks: Vec<ChunkEntry>,
}

impl Manifest {
    /// Read `DIR/manifest.json`; a missing or unreadable manifest is an error naming the
    /// directory.
    pub fn read(cache: &Path) -> Result<Self> {
        let path = cache.join(MANIFEST);
        if cache.is_file() {
            return Err(Error::Cache {
                path: cache.to_path_buf(),
                reason: format!("{} is a file, not a directory", cache.display()),
            });
        }
        let bytes = crate::io::read_regular(&path).map_err(|e| Error::Cache {
            path: cache.to_path_buf(),
            reason: format!(
                "no readable {MANIFEST} ({e}); run `ddspe2e preprocess --cache {}` first",
                cache.display()
            ),
        })?;
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| Error::Cache {
            path: path.clone(),
            reason: format!("corrupt manifest: {e}"),
        })?;
        if manifest.format_version != FORMAT_VERSION {
            return Err(Error::Cache {
                path,
                reason: format!(
                    "format version {} is not the supported {FORMAT_VERSION}; preprocess again",
                    manifest.format_version
                ),
            });
        }
        manifest.check(&path)?;
        Ok(manifest)
    }

    /// What the rest of the crate relies on: a valid config (its sizes bounded), shard names
    /// that stay inside the cache, chunks that refer to a source.
    fn check(&self, path: &Path) -> Result<()> {
        let bad = |reason: String| Error::Cache {
            path: path.to_path_buf(),
            reason,
        };
        self.config
            .validate()
            .map_err(|e| bad(format!("invalid config in the manifest: {e}")))?;
        for source in &self.sources {
            let name = source.shard.as_str();
            if !crate::io::is_plain_name(name) {
                return Err(bad(format!(
                    "shard {name:?} of {} is not a plain file name inside the cache (no \
                     folders, '..' or absolute paths)",
                    source.path
                )));
            }
        }
        if let Some(c) = self.chunks.iter().find(|c| c.source >= self.sources.len()) {
            return Err(bad(format!(
                "chunk {} refers to source {}, but there are {}",
                c.id,
                c.source,
                self.sources.len()
            )));
        }
        Ok(())
    }

    /// The feature options where `config` differs from the cache's, as
    /// `name: cache value -> requested value`.
    pub fn feature_differences(&self, config: &Config) -> Vec<String> {
        // By name: an option only one side has (the MFCCs) differs too.
        let (cache, asked) = (
            self.config.feature_fingerprint(),
            config.feature_fingerprint(),
        );
        let value = |list: &[(&'static str, String)], name: &str| {
            list.iter()
                .find(|(n, _)| *n == name)
                .map_or_else(|| "none".to_string(), |(_, v)| v.clone())
        };
        let mut names: Vec<&'static str> = cache.iter().map(|(n, _)| *n).collect();
        for (n, _) in &asked {
            if !names.contains(n) {
                names.push(n);
            }
        }
        names
            .into_iter()
            .filter_map(|name| {
                let (a, b) = (value(&cache, name), value(&asked, name));
                (a != b).then(|| format!("{name}: cache {a}, requested {b}"))
            })
            .collect()
    }
}

/// A shard that is a symbolic link must lead to a file inside the cache directory.
fn stays_inside(dir: &Path, path: &Path) -> Result<()> {
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if !is_link {
        return Ok(());
    }
    let target = std::fs::canonicalize(path);
    let inside = match (&target, std::fs::canonicalize(dir)) {
        (Ok(t), Ok(d)) => t.starts_with(d),
        _ => false,
    };
    if inside {
        return Ok(());
    }
    Err(Error::Cache {
        path: path.to_path_buf(),
        reason: match target {
            Ok(t) => format!(
                "a symbolic link leading out of the cache (to {}); shards must be files inside it",
                t.display()
            ),
            Err(e) => format!("a symbolic link that cannot be followed ({e})"),
        },
    })
}

/// One chunk with its arrays.
#[derive(Clone, Debug)]
pub struct Chunk {
    /// The manifest row.
    pub entry: ChunkEntry,
    /// `chunkSize` samples.
    pub audio: Vec<f32>,
    /// f0 per frame, Hz.
    pub f0_hz: Vec<f32>,
    /// Loudness per frame, dB.
    pub loudness_db: Vec<f32>,
    /// Voicing probability per frame.
    pub voiced_prob: Vec<f32>,
    /// MFCCs per frame, frame after frame (empty unless the cache has them).
    pub mfcc: Vec<f32>,
}

impl Chunk {
    /// Its frame features (a copy).
    pub fn features(&self) -> crate::features::FrameFeatures {
        crate::features::FrameFeatures {
            f0_hz: self.f0_hz.clone(),
            voiced_prob: self.voiced_prob.clone(),
            loudness_db: self.loudness_db.clone(),
            mfcc: self.mfcc.clone(),
        }
    }
}

/// A cache loaded into memory.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// The cache directory.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// Every chunk, in manifest order.
    pub chunks: Vec<Chunk>,
}

impl Dataset {
    /// Open a cache for training with `config`. A cache made with other feature options is
    /// refused with a message listing each option that differs.
    pub fn open(dir: &Path, config: &Config) -> Result<Self> {
        let manifest = Manifest::read(dir)?;
        let diffs = manifest.feature_differences(config);
        if !diffs.is_empty() {
            return Err(Error::Cache {
                path: dir.to_path_buf(),
                reason: format!(
                    "made with other feature options ({}); preprocess again or use the cache's \
                     config (its manifest.json)",
                    diffs.join("; ")
                ),
            });
        }
        Self::load(dir, manifest)
    }

    /// Open a cache with the options it was made with.
    pub fn open_any(dir: &Path) -> Result<Self> {
        let manifest = Manifest::read(dir)?;
        Self::load(dir, manifest)
    }

    fn load(dir: &Path, manifest: Manifest) -> Result<Self> {
        let mut chunks = Vec::with_capacity(manifest.chunks.len());
        let frames = manifest.config.frames_per_chunk();
        let size = manifest.config.chunk_size;
        let mfcc_bins = manifest.config.feature_config().mfcc_bins;
        for (si, source) in manifest.sources.iter().enumerate() {
            let path = dir.join(&source.shard);
            stays_inside(dir, &path)?;
            let expected = source.shard_sha256.as_deref();
            let shard = preprocess::read_shard(&path, size, frames, mfcc_bins, expected)?;
            for entry in manifest.chunks.iter().filter(|c| c.source == si) {
                let row = entry.row;
                if row >= shard.rows {
                    return Err(Error::Cache {
                        path: dir.join(&source.shard),
                        reason: format!("chunk {} refers to missing row {row}", entry.id),
                    });
                }
                chunks.push(Chunk {
                    entry: entry.clone(),
                    audio: shard.audio[row * size..(row + 1) * size].to_vec(),
                    f0_hz: shard.f0_hz[row * frames..(row + 1) * frames].to_vec(),
                    loudness_db: shard.loudness_db[row * frames..(row + 1) * frames].to_vec(),
                    voiced_prob: shard.voiced_prob[row * frames..(row + 1) * frames].to_vec(),
                    mfcc: shard.mfcc[row * frames * mfcc_bins..(row + 1) * frames * mfcc_bins]
                        .to_vec(),
                });
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
            chunks,
        })
    }

    /// A line to show when the cache's shards carry no checksums (written by an older
    /// version), so loading could not verify them.
    pub fn unverified_note(&self) -> Option<String> {
        let missing = self
            .manifest
            .sources
            .iter()
            .filter(|s| s.shard_sha256.is_none())
            .count();
        (missing > 0).then(|| {
            format!(
                "cache {}: {missing} shard(s) have no checksum (written by an older version) and \
                 were not verified; preprocess again to add them",
                self.dir.display()
            )
        })
    }

    /// Indices of the chunks in a split.
    pub fn indices(&self, split: Split) -> Vec<usize> {
        (0..self.chunks.len())
            .filter(|&i| self.chunks[i].entry.split == split)
            .collect()
    }
}
