//! Scoring renders with magenta's resynthesis metrics ([`crate::metrics`]): a checkpoint on a
//! cache's chunks, a checkpoint resynthesising whole files, or any target/render pair.

use burn::tensor::Device;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

use super::Model;
use crate::data::{Batch, Dataset, Split};
use crate::error::Result;
use crate::features::audio::{read_audio, resample};
use crate::features::{FeatureConfig, FrameFeatures};
use crate::metrics::{F0Score, Scorer, Scores, Summary};
use crate::train::forward_batch;

/// The scores of one render.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// What was rendered: a chunk (`source@seconds`) or a file.
    pub name: String,
    /// Its scores.
    pub scores: Scores,
}

/// Per-render scores and their summary.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// What was evaluated, in words.
    pub what: String,
    /// One row per render.
    pub rows: Vec<Row>,
    /// Means over the rows, as magenta reports them.
    pub summary: Summary,
}

fn f0_cell(s: &Scores) -> String {
    match s.f0 {
        F0Score::Cents(c) => format!("{c:.1}"),
        F0Score::Outlier => "outlier".into(),
        F0Score::Unscored => "-".into(),
    }
}

fn optional(x: Option<f64>) -> Value {
    x.map(Value::from).unwrap_or(Value::Null)
}

impl Report {
    fn new(what: String, rows: Vec<Row>) -> Self {
        let scores: Vec<Scores> = rows.iter().map(|r| r.scores).collect();
        Self {
            what,
            summary: Summary::of(&scores),
            rows,
        }
    }

    /// A plain-text table: a row per render, then the overall line.
    pub fn table(&self) -> String {
        let width = self
            .rows
            .iter()
            .map(|r| r.name.len())
            .max()
            .unwrap_or(4)
            .max(7);
        let mut out = format!("{}\n", self.what);
        out.push_str(&format!(
            "{:width$}  {:>9}  {:>8}  {:>8}  {:>8}  {:>10}\n",
            "render", "spectral", "mag", "logmag", "loud dB", "f0 cents"
        ));
        for r in &self.rows {
            let s = &r.scores;
            out.push_str(&format!(
                "{:width$}  {:>9.4}  {:>8.4}  {:>8.4}  {:>8.3}  {:>10}\n",
                r.name,
                s.spectral,
                s.spectral_mag,
                s.spectral_logmag,
                s.loudness_l1_db,
                f0_cell(s)
            ));
        }
        let m = &self.summary;
        out.push_str(&format!(
            "{:width$}  {:>9.4}  {:>8.4}  {:>8.4}  {:>8.3}  {:>10}\n",
            format!("overall ({})", m.count),
            m.spectral,
            m.spectral_mag,
            m.spectral_logmag,
            m.loudness_l1_db,
            m.f0_l1_cents
                .map(|c| format!("{c:.1}"))
                .unwrap_or_else(|| "-".into())
        ));
        if let Some(r) = m.outlier_ratio {
            out.push_str(&format!("f0 outlier ratio: {r:.3}\n"));
        }
        out
    }

    /// The report as JSON: `what`, `summary` and `rows`.
    pub fn to_json(&self) -> Value {
        let m = &self.summary;
        json!({
            "what": self.what,
            "summary": {
                "count": m.count,
                "spectralLoss": m.spectral,
                "spectralMag": m.spectral_mag,
                "spectralLogmag": m.spectral_logmag,
                "loudnessL1Db": m.loudness_l1_db,
                "f0L1Cents": optional(m.f0_l1_cents),
                "outlierRatio": optional(m.outlier_ratio),
                "f0MedianCents": if m.f0_median_cents.is_finite() { json!(m.f0_median_cents) } else { Value::Null },
            },
            "rows": self.rows.iter().map(|r| {
                let s = &r.scores;
                json!({
                    "name": r.name,
                    "spectralLoss": s.spectral,
                    "spectralMag": s.spectral_mag,
                    "spectralLogmag": s.spectral_logmag,
                    "loudnessL1Db": s.loudness_l1_db,
                    "f0L1Cents": match s.f0 { F0Score::Cents(c) => json!(c), _ => Value::Null },
                    "f0Outlier": s.f0 == F0Score::Outlier,
                    "f0Scored": s.f0 != F0Score::Unscored,
                })
            }).collect::<Vec<_>>(),
        })
    }

    /// The report as CSV: a row per render and a last `overall` row.
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "name,spectral_loss,spectral_mag,spectral_logmag,loudness_l1_db,f0_l1_cents,f0_outlier\n",
        );
        let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        for r in &self.rows {
            let s = &r.scores;
            let cents = match s.f0 {
                F0Score::Cents(c) => format!("{c:.4}"),
                _ => String::new(),
            };
            out.push_str(&format!(
                "{},{:.6},{:.6},{:.6},{:.6},{cents},{}\n",
                quote(&r.name),
                s.spectral,
                s.spectral_mag,
                s.spectral_logmag,
                s.loudness_l1_db,
                s.f0 == F0Score::Outlier
            ));
        }
        let m = &self.summary;
        out.push_str(&format!(
            "overall,{:.6},{:.6},{:.6},{:.6},{},{}\n",
            m.spectral,
            m.spectral_mag,
            m.spectral_logmag,
            m.loudness_l1_db,
            m.f0_l1_cents.map(|c| format!("{c:.4}")).unwrap_or_default(),
            m.outlier_ratio
                .map(|r| format!("{r:.4}"))
                .unwrap_or_default()
        ));
        out
    }

    /// Write `metrics.json` and `metrics.csv` into `dir` (atomically).
    pub fn write(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(&self.to_json()).expect("report serialises");
        crate::io::write_atomic(&dir.join("metrics.json"), json.as_bytes())?;
        crate::io::write_atomic(&dir.join("metrics.csv"), self.to_csv().as_bytes())
    }
}

/// Score `model`'s renders of a cache's chunks in `split` (at most `limit`), chunk by chunk
/// against the chunk audio and features. The cache must hold the model's feature settings.
pub fn eval_cache(
    model: &Model,
    cache: &Path,
    split: Split,
    limit: Option<usize>,
    on_progress: &mut dyn FnMut(usize, usize),
) -> Result<Report> {
    let data = Dataset::open(cache, model.config())?;
    let mut ids = data.indices(split);
    if let Some(n) = limit {
        ids.truncate(n);
    }
    let (inner, device) = model.inner();
    let config = model.config();
    let scorer = Scorer::new(&config.feature_config(), device);
    let mut rows = Vec::with_capacity(ids.len());
    let batch_size = config.batch_size.max(1);
    for group in ids.chunks(batch_size) {
        let chunks: Vec<_> = group.iter().map(|&i| &data.chunks[i]).collect();
        let batch = Batch::from_chunks(&chunks, device);
        let out = forward_batch(inner, &batch, model.temperature, config.seed);
        let spec = scorer.target_spectrograms(batch.audio.clone());
        let features: Vec<FrameFeatures> = chunks.iter().map(|c| c.features()).collect();
        let scores = scorer.score_batch(&batch.audio, &spec, &features, out.audio.audio);
        for (c, s) in chunks.iter().zip(scores) {
            let source = &data.manifest.sources[c.entry.source].path;
            let seconds = c.entry.offset as f64 / config.sample_rate;
            rows.push(Row {
                name: format!("{source}@{seconds:.2}s"),
                scores: s,
            });
        }
        on_progress(rows.len(), ids.len());
    }
    Ok(Report::new(
        format!(
            "{} chunks of the {split} split of {} rendered by {} (step {})",
            rows.len(),
            cache.display(),
            model.dir().display(),
            model.step()
        ),
        rows,
    ))
}

/// Score `model`'s resynthesis of whole files: each file's own features rendered and
/// compared with the file (at the model's rate and input level, see [`Model::prepare_audio`]).
pub fn eval_files(
    model: &Model,
    files: &[PathBuf],
    on_progress: &mut dyn FnMut(usize, usize),
) -> Result<Report> {
    let (_, device) = model.inner();
    let scorer = Scorer::new(&model.config().feature_config(), device);
    let mut rows = Vec::with_capacity(files.len());
    for (i, path) in files.iter().enumerate() {
        let decoded = read_audio(path)?;
        let target = model.prepare_audio(&decoded.samples, decoded.sample_rate)?;
        let frames = super::Frames::from(crate::features::extract(
            &target,
            &model.config().feature_config(),
        ));
        let rendered = model.render_all(&frames, &mut |_, _| {});
        rows.push(Row {
            name: path.display().to_string(),
            scores: scorer.score(&target, &rendered.audio),
        });
        on_progress(i + 1, files.len());
    }
    Ok(Report::new(
        format!(
            "{} file(s) resynthesised by {} (step {})",
            rows.len(),
            model.dir().display(),
            model.step()
        ),
        rows,
    ))
}

/// The feature grid for scoring audio at `sample_rate` without a model: 250 frames per second,
/// a 64 ms analysis window, f0 from 50 Hz up to 2 kHz (or below Nyquist).
pub fn pair_features(sample_rate: f64) -> FeatureConfig {
    let hop = (sample_rate / 250.0).round().max(1.0) as usize;
    FeatureConfig {
        sample_rate,
        frame_size: ((0.064 * sample_rate) as usize)
            .next_power_of_two()
            .max(2 * hop),
        frame_hop: hop,
        min_f0: 50.0,
        max_f0: 2000f64.min(0.45 * sample_rate),
        voiced_threshold: 0.5,
        mfcc_bins: 0,
    }
}

/// Score any render against its target: two audio files, the render resampled to the
/// target's rate when they differ, compared over the shorter length.
pub fn eval_pair(target: &Path, render: &Path, device: &Device) -> Result<Report> {
    let t = read_audio(target)?;
    let r = read_audio(render)?;
    let rendered = resample(&r.samples, r.sample_rate, t.sample_rate)?;
    let scorer = Scorer::new(&pair_features(t.sample_rate as f64), device);
    let row = Row {
        name: render.display().to_string(),
        scores: scorer.score(&t.samples, &rendered),
    };
    Ok(Report::new(
        format!("{} scored against {}", render.display(), target.display()),
        vec![row],
    ))
}
