//! Summaries of a cache for `inspect-cache`.

use serde::Serialize;
use std::fmt::Write;
use std::path::Path;

use super::{Dataset, Split};
use crate::error::Result;

/// Summary statistics of one feature over a set of frames.
#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Smallest value.
    pub min: f64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub median: f64,
    /// Largest value.
    pub max: f64,
}

impl Stats {
    fn of(mut v: Vec<f64>) -> Self {
        if v.is_empty() {
            return Self::default();
        }
        v.sort_by(f64::total_cmp);
        Self {
            min: v[0],
            mean: v.iter().sum::<f64>() / v.len() as f64,
            median: v[v.len() / 2],
            max: v[v.len() - 1],
        }
    }
}

/// Totals and feature statistics of one split.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SplitTotals {
    /// `train` or `val`.
    pub split: Split,
    /// Chunks.
    pub chunks: usize,
    /// Seconds of audio (chunks counted whole, overlaps included).
    pub seconds: f64,
    /// Source files contributing.
    pub files: usize,
    /// f0 over voiced frames, Hz.
    pub f0_voiced_hz: Stats,
    /// Loudness over all frames, dB.
    pub loudness_db: Stats,
    /// Fraction of voiced frames.
    pub voiced_fraction: f64,
}

/// One chunk's row.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ChunkRow {
    /// Chunk id.
    pub id: String,
    /// Source path.
    pub source: String,
    /// Start, seconds.
    pub start_s: f64,
    /// Split.
    pub split: Split,
    /// RMS.
    pub rms: f32,
    /// Voiced fraction.
    pub voiced_fraction: f32,
    /// Median f0 over voiced frames (0 if none), Hz.
    pub f0_median_hz: f32,
    /// Mean loudness, dB.
    pub loudness_mean_db: f32,
}

/// What `inspect-cache` prints.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InspectReport {
    /// Cache directory.
    pub cache: String,
    /// Sources used.
    pub sources: usize,
    /// Sources skipped at preprocessing, with reasons.
    pub skipped: Vec<super::SkippedEntry>,
    /// Per-split totals (only the requested split when one is given).
    pub splits: Vec<SplitTotals>,
    /// Chunk rows (up to the limit).
    pub chunks: Vec<ChunkRow>,
}

/// Summarise a cache; `split` restricts to one split, `limit` caps the chunk rows.
pub fn inspect(dir: &Path, split: Option<Split>, limit: Option<usize>) -> Result<InspectReport> {
    let data = Dataset::open_any(dir)?;
    let cfg = &data.manifest.config;
    let threshold = cfg.voiced_threshold as f32;
    let splits: Vec<Split> = match split {
        Some(s) => vec![s],
        None => vec![Split::Train, Split::Val],
    };
    let totals = splits
        .iter()
        .map(|&s| {
            let chunks: Vec<_> = data.chunks.iter().filter(|c| c.entry.split == s).collect();
            let mut files: Vec<usize> = chunks.iter().map(|c| c.entry.source).collect();
            files.sort();
            files.dedup();
            let mut f0 = Vec::new();
            let mut ld = Vec::new();
            let mut voiced = 0usize;
            let mut frames = 0usize;
            for c in &chunks {
                for i in 0..c.f0_hz.len() {
                    frames += 1;
                    ld.push(c.loudness_db[i] as f64);
                    if c.voiced_prob[i] >= threshold {
                        voiced += 1;
                        f0.push(c.f0_hz[i] as f64);
                    }
                }
            }
            SplitTotals {
                split: s,
                chunks: chunks.len(),
                seconds: chunks.len() as f64 * cfg.chunk_size as f64 / cfg.sample_rate,
                files: files.len(),
                f0_voiced_hz: Stats::of(f0),
                loudness_db: Stats::of(ld),
                voiced_fraction: if frames > 0 {
                    voiced as f64 / frames as f64
                } else {
                    0.0
                },
            }
        })
        .collect();
    let rows = data
        .chunks
        .iter()
        .filter(|c| split.is_none_or(|s| c.entry.split == s))
        .take(limit.unwrap_or(usize::MAX))
        .map(|c| {
            let mut voiced: Vec<f32> = c
                .f0_hz
                .iter()
                .zip(&c.voiced_prob)
                .filter(|(_, p)| **p >= threshold)
                .map(|(f, _)| *f)
                .collect();
            voiced.sort_by(f32::total_cmp);
            ChunkRow {
                id: c.entry.id.clone(),
                source: data.manifest.sources[c.entry.source].path.clone(),
                start_s: c.entry.offset as f64 / cfg.sample_rate,
                split: c.entry.split,
                rms: c.entry.rms,
                voiced_fraction: c.entry.voiced_fraction,
                f0_median_hz: voiced.get(voiced.len() / 2).copied().unwrap_or(0.0),
                loudness_mean_db: c.loudness_db.iter().sum::<f32>() / c.loudness_db.len() as f32,
            }
        })
        .collect();
    Ok(InspectReport {
        cache: dir.display().to_string(),
        sources: data.manifest.sources.len(),
        skipped: data.manifest.skipped.clone(),
        splits: totals,
        chunks: rows,
    })
}

impl std::fmt::Display for InspectReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = String::new();
        let _ = writeln!(s, "cache {}: {} source file(s)", self.cache, self.sources);
        for sk in &self.skipped {
            let _ = writeln!(s, "  skipped {}: {}", sk.path, sk.reason);
        }
        for t in &self.splits {
            let _ = writeln!(
                s,
                "{:5}  {:5} chunks  {:8.1} s  {:3} files  voiced {:5.1}%  f0 median {:7.1} Hz [{:.1}, {:.1}]  loudness mean {:6.1} dB [{:.1}, {:.1}]",
                t.split.to_string(),
                t.chunks,
                t.seconds,
                t.files,
                100.0 * t.voiced_fraction,
                t.f0_voiced_hz.median,
                t.f0_voiced_hz.min,
                t.f0_voiced_hz.max,
                t.loudness_db.mean,
                t.loudness_db.min,
                t.loudness_db.max
            );
        }
        if !self.chunks.is_empty() {
            let _ = writeln!(
                s,
                "{:>10}  {:>5}  {:>8}  {:>7}  {:>6}  {:>9}  {:>8}  source",
                "id", "split", "start s", "rms", "voiced", "f0 Hz", "loud dB"
            );
            for r in &self.chunks {
                let _ = writeln!(
                    s,
                    "{:>10}  {:>5}  {:8.2}  {:7.4}  {:5.1}%  {:9.1}  {:8.1}  {}",
                    r.id,
                    r.split.to_string(),
                    r.start_s,
                    r.rms,
                    100.0 * r.voiced_fraction,
                    r.f0_median_hz,
                    r.loudness_mean_db,
                    r.source
                );
            }
        }
        f.write_str(&s)
    }
}
