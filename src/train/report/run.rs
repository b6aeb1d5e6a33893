//! What a report reads from a run directory. Every part may be missing (a run stopped early,
//! an older run, one never evaluated) or unreadable; neither stops the report.

use std::path::{Path, PathBuf};

use super::super::plots::{LossLogs, Series, read_csv_series};
use super::super::run::{RunMeta, holds_a_run, read_meta};
use crate::error::{Error, Result};

/// A part of a run directory, as found.
pub enum Part<T> {
    /// Its file is absent.
    Missing,
    /// Its file is there but cannot be used: why (naming the file).
    Unreadable(String),
    /// Read.
    Found(T),
}

impl<T> Part<T> {
    /// `Missing` when `path` does not exist, else what `read` makes of it.
    fn read(path: &Path, read: impl FnOnce(&Path) -> std::result::Result<T, String>) -> Self {
        if !path.exists() {
            return Part::Missing;
        }
        match read(path) {
            Ok(v) => Part::Found(v),
            Err(why) => Part::Unreadable(format!("{}: {why}", path.display())),
        }
    }
}

/// One `renders/step_N/` folder.
pub struct RenderStep {
    /// The step.
    pub step: usize,
    /// The folder.
    pub dir: PathBuf,
    /// Names of the clips with both `NAME_target.wav` and `NAME_prediction.wav`, sorted.
    pub clips: Vec<String>,
}

impl RenderStep {
    /// The target or prediction WAV of clip `name`.
    pub fn wav(&self, name: &str, which: &str) -> PathBuf {
        self.dir.join(format!("{name}_{which}.wav"))
    }
}

/// One `eval/NAME/metrics.json`: its `what` line and its `summary` as `(key, value)`.
pub struct EvalSummary {
    /// The evaluation's folder name.
    pub name: String,
    /// What was scored, by which checkpoint.
    pub what: String,
    /// Summary metrics in file order (numbers, or text for other values).
    pub summary: Vec<(String, String)>,
}

/// Everything the report shows of one run.
pub struct RunData {
    /// The run directory as given.
    pub dir: PathBuf,
    /// `run_meta.json`.
    pub meta: Part<RunMeta>,
    /// `resolved_config.json`, top-level keys with their values as compact JSON.
    pub config: Part<Vec<(String, String)>>,
    /// `logs/train.csv` and `logs/val.csv`.
    pub losses: LossLogs,
    /// All columns of `logs/val.csv` (validation metrics besides the loss).
    pub val: Option<Vec<Series>>,
    /// All columns of `logs/controls.csv`.
    pub controls: Option<Vec<Series>>,
    /// `renders/step_*/` in step order (a missing `renders/` is an empty list).
    pub renders: Part<Vec<RenderStep>>,
    /// `eval/*/metrics.json`, by folder name.
    pub evals: Vec<Part<EvalSummary>>,
}

impl RunData {
    /// Read run directory `dir`: an error naming it when it is no run directory (none of
    /// `resolved_config.json`, `run_meta.json`, `checkpoints/` in it).
    pub fn read(dir: &Path) -> Result<RunData> {
        let not_a_run = |reason: &str| Error::Input {
            path: dir.to_path_buf(),
            reason: reason.to_string(),
        };
        if !dir.exists() {
            return Err(not_a_run("no such run directory"));
        }
        if !dir.is_dir() {
            return Err(not_a_run("not a run directory (a file)"));
        }
        if !holds_a_run(dir) {
            return Err(not_a_run(
                "not a run directory (no resolved_config.json, run_meta.json or checkpoints/ in it)",
            ));
        }
        let logs = dir.join("logs");
        Ok(RunData {
            dir: dir.to_path_buf(),
            meta: Part::read(&dir.join("run_meta.json"), |_| {
                read_meta(dir).map_err(|e| e.to_string())
            }),
            config: Part::read(&dir.join("resolved_config.json"), read_config),
            losses: LossLogs::read(&logs),
            val: read_csv_series(&logs.join("val.csv"), &[]),
            controls: read_csv_series(&logs.join("controls.csv"), &[]),
            renders: match Part::read(&dir.join("renders"), find_renders) {
                Part::Missing => Part::Found(Vec::new()),
                found => found,
            },
            evals: find_evals(&dir.join("eval")),
        })
    }
}

fn read_json(path: &Path) -> std::result::Result<serde_json::Value, String> {
    let bytes = crate::io::read_regular(path).map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| format!("not valid JSON: {e}"))
}

fn read_config(path: &Path) -> std::result::Result<Vec<(String, String)>, String> {
    match read_json(path)? {
        serde_json::Value::Object(map) => {
            Ok(map.into_iter().map(|(k, v)| (k, json_text(&v))).collect())
        }
        _ => Err("not a JSON object".into()),
    }
}

/// A JSON value as a person reads it: strings unquoted, lists separated by ", ".
fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) => {
            let items: Vec<String> = items.iter().map(json_text).collect();
            format!("[{}]", items.join(", "))
        }
        other => other.to_string(),
    }
}

fn find_renders(dir: &Path) -> std::result::Result<Vec<RenderStep>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| e.to_string())?;
    let mut steps: Vec<RenderStep> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let step = name.strip_prefix("step_")?.parse().ok()?;
            let dir = e.path();
            let files = std::fs::read_dir(&dir).ok()?;
            let mut clips: Vec<String> = files
                .flatten()
                .filter_map(|f| {
                    let file = f.file_name().to_string_lossy().into_owned();
                    let clip = file.strip_suffix("_target.wav")?.to_string();
                    dir.join(format!("{clip}_prediction.wav"))
                        .is_file()
                        .then_some(clip)
                })
                .collect();
            clips.sort();
            Some(RenderStep { step, dir, clips })
        })
        .collect();
    steps.sort_by_key(|s| s.step);
    Ok(steps)
}

fn find_evals(dir: &Path) -> Vec<Part<EvalSummary>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.path().join("metrics.json").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            Part::read(&dir.join(&name).join("metrics.json"), |path| {
                let json = read_json(path)?;
                let summary = json
                    .get("summary")
                    .and_then(|s| s.as_object())
                    .ok_or("no \"summary\" object")?
                    .iter()
                    .map(|(k, v)| {
                        let text = match v.as_f64() {
                            Some(x) => super::html::number(x),
                            None => v.to_string(),
                        };
                        (k.clone(), text)
                    })
                    .collect();
                let what = json.get("what").and_then(|w| w.as_str()).unwrap_or("");
                Ok(EvalSummary {
                    name: name.clone(),
                    what: what.to_string(),
                    summary,
                })
            })
        })
        .collect()
}
