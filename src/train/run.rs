//! The run directory: config, metadata, CSV logs, checkpoints and renders.

use burn::optim::ModuleOptimizer;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use super::Mode;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::model::DdspModel;

/// `step_00001200`: how every run file and folder names a step (checkpoints, renders, control
/// dumps and their plots).
pub fn step_label(step: usize) -> String {
    format!("step_{step:08}")
}

/// How a run stands (`status` in `run_meta.json`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(into = "String", try_from = "String")]
pub enum RunStatus {
    /// Training (or killed while training).
    Running,
    /// All requested steps done.
    Finished,
    /// Early stopping ended it.
    EarlyStopped,
    /// It stopped with an error.
    Failed(String),
}

impl From<RunStatus> for String {
    fn from(s: RunStatus) -> String {
        match s {
            RunStatus::Running => "running".into(),
            RunStatus::Finished => "finished".into(),
            RunStatus::EarlyStopped => "early-stopped".into(),
            RunStatus::Failed(why) => format!("failed: {why}"),
        }
    }
}

impl TryFrom<String> for RunStatus {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        match s.as_str() {
            "running" => Ok(RunStatus::Running),
            "finished" => Ok(RunStatus::Finished),
            "early-stopped" => Ok(RunStatus::EarlyStopped),
            other => other
                .strip_prefix("failed: ")
                .map(|why| RunStatus::Failed(why.to_string()))
                .ok_or_else(|| format!("unknown run status `{other}`")),
        }
    }
}

/// What a checkpoint records besides the weights.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointState {
    /// Steps completed.
    pub step: usize,
    /// Best validation loss so far.
    pub best_val: Option<f64>,
    /// Step of the best validation loss.
    pub best_step: Option<usize>,
    /// Evaluations since the last improvement (early stopping).
    pub evals_without_improvement: usize,
    /// Steps skipped for non-finite values so far.
    pub skipped_steps: usize,
    /// The config of the run.
    pub config: Config,
    /// Statistics of the training data, for inference's `--auto-adjust` (absent in
    /// checkpoints written before they were recorded).
    #[serde(default)]
    pub data_stats: Option<crate::data::DataStats>,
    /// SHA-256 of the files saved with it (`model.bpk`, `model.safetensors`,
    /// `optimizer.bpk`), checked when they are loaded ([`verify_checksum`]); empty in
    /// checkpoints written before they were recorded, and until saved.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub sha256: std::collections::BTreeMap<String, String>,
}

/// Metadata of a run (`run_meta.json`).
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct RunMeta {
    /// `ddsp` version.
    pub crate_version: String,
    /// Training mode.
    pub mode: Mode,
    /// Device description.
    pub device: String,
    /// Cache directory.
    pub cache: String,
    /// SHA-256 of the cache's manifest.
    pub cache_manifest_sha256: String,
    /// Start time (seconds since the Unix epoch).
    pub started_unix: u64,
    /// End time, when finished.
    pub ended_unix: Option<u64>,
    /// Steps completed.
    pub steps: usize,
    /// Steps requested.
    pub steps_requested: usize,
    /// Best validation loss (paper spectral loss on the val split).
    pub best_val_loss: Option<f64>,
    /// Its step.
    pub best_step: Option<usize>,
    /// Steps skipped for non-finite loss or gradients.
    pub skipped_steps: usize,
    /// How the run ended.
    pub status: RunStatus,
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `run-YYYYMMDD-HHMMSS` in UTC.
pub fn default_run_name() -> String {
    let [y, m, d, h, min, sec] = utc_fields(unix_now());
    format!("run-{y:04}{m:02}{d:02}-{h:02}{min:02}{sec:02}")
}

/// Year, month, day, hour, minute and second (UTC) of `secs` seconds since the Unix epoch.
pub fn utc_fields(secs: u64) -> [i64; 6] {
    let days = (secs / 86_400) as i64;
    let rem = (secs % 86_400) as i64;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    [y, m, d, rem / 3600, (rem / 60) % 60, rem % 60]
}

/// A run name must be a plain folder name inside the runs directory: not empty, not `.` or
/// `..`, no path separator or NUL, at most 255 bytes.
pub fn check_run_name(name: &str) -> Result<()> {
    if crate::io::is_plain_name(name) {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "--run-name {name:?}: a run name is a plain folder name inside --runs-dir (no '/', \
             '\\', '.' or '..', not empty)"
        )))
    }
}

/// What a run writes into its directory (and `--overwrite` removes).
const RUN_OUTPUTS: [&str; 6] = [
    "logs",
    "checkpoints",
    "renders",
    "eval",
    "resolved_config.json",
    "run_meta.json",
];

/// Whether `dir` holds a run (its config, status or checkpoints).
pub fn holds_a_run(dir: &Path) -> bool {
    ["resolved_config.json", "run_meta.json", "checkpoints"]
        .iter()
        .any(|f| dir.join(f).exists())
}

/// Remove a run's outputs from `dir` (`--overwrite`); other files stay.
pub fn remove_run(dir: &Path) -> Result<()> {
    for name in RUN_OUTPUTS {
        let p = dir.join(name);
        let removed = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else if p.exists() {
            std::fs::remove_file(&p)
        } else {
            Ok(())
        };
        removed.map_err(|e| Error::write(&p, e))?;
    }
    Ok(())
}

/// Read a run's `run_meta.json`.
pub fn read_meta(run_dir: &Path) -> Result<RunMeta> {
    let path = run_dir.join("run_meta.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Input {
        path,
        reason: format!("corrupt run metadata: {e}"),
    })
}

/// Paths inside a run directory.
#[derive(Clone, Debug)]
pub struct RunDir {
    /// The run directory.
    pub root: PathBuf,
}

impl RunDir {
    /// Create (or reopen) a run directory with its sub-folders, removing temporary files a
    /// killed run left beside its metadata, logs and renders.
    pub fn create(root: &Path) -> Result<Self> {
        for sub in ["logs", "checkpoints", "renders"] {
            let p = root.join(sub);
            crate::io::create_dir_all(&p)?;
        }
        crate::io::remove_temp_files(root);
        crate::io::remove_temp_files(&root.join("logs"));
        if let Ok(renders) = std::fs::read_dir(root.join("renders")) {
            for step in renders.flatten() {
                crate::io::remove_temp_files(&step.path());
            }
        }
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    /// `checkpoints/<name>`.
    pub fn checkpoint(&self, name: &str) -> PathBuf {
        self.root.join("checkpoints").join(name)
    }

    /// Put checkpoint `name` back in place after a save interrupted between its two renames
    /// (see [`find_checkpoint`]): the copy found is renamed to `checkpoints/<name>`, and the
    /// leftovers of an interrupted save (`.<name>.tmp`, `.<name>.old`) are removed.
    pub(crate) fn restore_checkpoint(&self, name: &str) -> Result<()> {
        let dir = self.checkpoint(name);
        let Some(found) = find_checkpoint(&self.root.join("checkpoints"), name) else {
            return Ok(());
        };
        if found != dir {
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|e| Error::write(&dir, e))?;
            }
            std::fs::rename(&found, &dir).map_err(|e| Error::write(&dir, e))?;
        }
        for leftover in [format!(".{name}.tmp"), format!(".{name}.old")] {
            let _ = std::fs::remove_dir_all(self.checkpoint(&leftover));
        }
        Ok(())
    }

    /// `renders/step_XXXXXXXX`.
    pub fn renders(&self, step: usize) -> PathBuf {
        self.root.join("renders").join(step_label(step))
    }

    /// Write `run_meta.json`.
    pub fn write_meta(&self, meta: &RunMeta) -> Result<()> {
        let text = serde_json::to_string_pretty(meta).expect("meta serialises");
        write_atomic(&self.root.join("run_meta.json"), text.as_bytes())
    }

    /// Append a row to `logs/NAME.csv`, writing the header first when the file is new.
    pub fn append_csv(&self, name: &str, header: &[&str], row: &[String]) -> Result<()> {
        let path = self.root.join("logs").join(format!("{name}.csv"));
        crate::io::append_csv_row(&path, header, row)
    }

    /// Drop CSV rows whose first column (the step) is `from` or later, for a resumed run.
    pub fn truncate_csv(&self, name: &str, from: usize) -> Result<()> {
        let path = self.root.join("logs").join(format!("{name}.csv"));
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(());
        };
        let kept: Vec<&str> = text
            .lines()
            .enumerate()
            .filter(|(i, l)| {
                *i == 0
                    || l.split(',')
                        .next()
                        .and_then(|s| s.parse::<usize>().ok())
                        .is_some_and(|s| s < from)
            })
            .map(|(_, l)| l)
            .collect();
        write_atomic(&path, (kept.join("\n") + "\n").as_bytes())
    }

    /// Save a complete checkpoint as `checkpoints/<name>/`: `model.safetensors` (Python),
    /// `model.bpk` and `optimizer.bpk` (exact resume), `state.json`. Written into a temporary
    /// folder that replaces the old one by renames, so a crash leaves the previous checkpoint.
    pub fn save_checkpoint(
        &self,
        name: &str,
        model: &DdspModel,
        optimizer: Option<&ModuleOptimizer>,
        state: &CheckpointState,
    ) -> Result<PathBuf> {
        self.restore_checkpoint(name)?;
        let dir = self.checkpoint(name);
        let tmp = self.checkpoint(&format!(".{name}.tmp"));
        crate::io::kill_point("checkpoint-begin", Some(&dir));
        let _ = std::fs::remove_dir_all(&tmp);
        if let Err(e) = write_checkpoint_files(&tmp, model, optimizer, state) {
            // Nothing half-written stays behind (a full disk, a read-only folder).
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        crate::io::kill_point("checkpoint-written", Some(&dir));
        let old = self.checkpoint(&format!(".{name}.old"));
        let _ = std::fs::remove_dir_all(&old);
        if dir.exists() {
            std::fs::rename(&dir, &old).map_err(|e| Error::write(&dir, e))?;
        }
        crate::io::kill_point("checkpoint-swapping", Some(&dir));
        std::fs::rename(&tmp, &dir).map_err(|e| Error::write(&dir, e))?;
        crate::io::kill_point("checkpoint-swapped", Some(&dir));
        let _ = std::fs::remove_dir_all(&old);
        Ok(dir)
    }
}

/// Write a checkpoint's files into folder `tmp`: the weights, the optimizer state, and last
/// `state.json` with their checksums (a folder with `state.json` is complete).
fn write_checkpoint_files(
    tmp: &Path,
    model: &DdspModel,
    optimizer: Option<&ModuleOptimizer>,
    state: &CheckpointState,
) -> Result<()> {
    crate::io::create_dir_all(tmp)?;
    model.save_safetensors(&tmp.join("model.safetensors"), &state.config)?;
    model.save_burnpack(&tmp.join("model.bpk"))?;
    if let Some(optim) = optimizer {
        let bytes = optim
            .to_record()
            .into_bytes()
            .map_err(|e| Error::Checkpoint {
                path: tmp.join("optimizer.bpk"),
                reason: format!("cannot encode optimizer state: {e:?}"),
            })?;
        write_atomic(&tmp.join("optimizer.bpk"), &bytes)?;
    }
    let mut state = state.clone();
    state.sha256 = CHECKSUMMED
        .iter()
        .filter(|f| tmp.join(f).exists())
        .map(|f| {
            let path = tmp.join(f);
            let bytes = crate::io::read_regular(&path).map_err(|e| Error::io(&path, e))?;
            Ok((f.to_string(), crate::io::sha256_hex(&bytes)))
        })
        .collect::<Result<_>>()?;
    let text = serde_json::to_string_pretty(&state).expect("state serialises");
    write_atomic(&tmp.join("state.json"), text.as_bytes())?;
    Ok(())
}

/// The files of a checkpoint whose SHA-256 its `state.json` records.
const CHECKSUMMED: [&str; 3] = ["model.bpk", "model.safetensors", "optimizer.bpk"];

/// Check `dir/file` against the SHA-256 recorded in the checkpoint's `state`: a mismatch is an
/// error naming the file. `Ok(false)` when `state` records none (a checkpoint written before
/// checksums were), so the caller can say the file was not verified.
pub fn verify_checksum(dir: &Path, state: &CheckpointState, file: &str) -> Result<bool> {
    let Some(expected) = state.sha256.get(file) else {
        return Ok(false);
    };
    let path = dir.join(file);
    let bytes = crate::io::read_regular(&path).map_err(|e| Error::Checkpoint {
        path: path.clone(),
        reason: format!("cannot read: {e}"),
    })?;
    let actual = crate::io::sha256_hex(&bytes);
    if actual != *expected {
        return Err(Error::Checkpoint {
            reason: format!(
                "checksum mismatch: {} was modified or is damaged (SHA-256 {actual}, state.json \
                 records {expected})",
                path.display()
            ),
            path,
        });
    }
    Ok(true)
}

/// The line to show when a checkpoint's files could not be verified.
pub fn unverified_note(dir: &Path) -> String {
    format!(
        "checkpoint {} has no checksums (written by an older version); its files were not \
         verified",
        dir.display()
    )
}

/// Whether `dir` holds a complete checkpoint: its `state.json`, written last, is there.
fn is_complete(dir: &Path) -> bool {
    dir.join("state.json").is_file()
}

/// Where checkpoint `name` of a run can be read (`checkpoints` is the run's `checkpoints/`
/// folder): `<name>` itself, or, when a save was interrupted between its two renames and left
/// no complete `<name>`, the new copy `.<name>.tmp` if it is complete, else the previous one,
/// `.<name>.old`. `None` when there is no complete copy. The next save of `name` puts the copy
/// back in place and removes the others.
pub fn find_checkpoint(checkpoints: &Path, name: &str) -> Option<PathBuf> {
    [
        name.to_string(),
        format!(".{name}.tmp"),
        format!(".{name}.old"),
    ]
    .into_iter()
    .map(|n| checkpoints.join(n))
    .find(|dir| is_complete(dir))
}

/// Read a checkpoint's `state.json`.
pub fn read_state(dir: &Path) -> Result<CheckpointState> {
    let path = dir.join("state.json");
    let text = crate::io::read_regular(&path).map_err(|e| Error::Checkpoint {
        path: path.clone(),
        reason: format!("cannot read: {e}"),
    })?;
    serde_json::from_slice(&text).map_err(|e| Error::Checkpoint {
        path,
        reason: format!("corrupt state: {e}"),
    })
}

/// The highest tensor rank Burn's optimizer can restore state for.
const MAX_OPTIMIZER_RANK: usize = 8;

/// Check an optimizer state (burnpack) for what Burn's `ModuleOptimizer::load_record` assumes
/// and would panic on (each found by fuzzing): every tensor carries its parameter id, is named
/// `ID.…` after it and is a float; a parameter's tensors share its rank (its `ID.__rank` scalar
/// when there is one), at most [`MAX_OPTIMIZER_RANK`]. A file this crate wrote always passes.
fn check_optimizer_pack(bytes: &[u8]) -> std::result::Result<(), String> {
    use burn::store::burn_pack::Reader;
    let reader = Reader::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes.to_vec()))
        .map_err(|e| format!("{e:?}"))?;
    let mut ranks = std::collections::BTreeMap::new();
    for (name, value) in reader.scalars() {
        if let Some(id) = name.strip_suffix(".__rank")
            && let (Ok(id), Ok(rank)) = (id.parse::<u64>(), usize::try_from(*value))
        {
            if rank > MAX_OPTIMIZER_RANK {
                return Err(format!("`{name}` is {rank} (at most {MAX_OPTIMIZER_RANK})"));
            }
            ranks.insert(id, rank);
        }
    }
    for tensor in reader.into_tensors().map_err(|e| format!("{e:?}"))? {
        let name = &tensor.name;
        let Some(id) = tensor.param_id else {
            return Err(format!("tensor `{name}` carries no parameter id"));
        };
        if name.split('.').next() != Some(id.to_string().as_str()) {
            return Err(format!(
                "tensor `{name}` is not named after its parameter {id}"
            ));
        }
        if !tensor.dtype.is_float() {
            return Err(format!("tensor `{name}` is not floating point"));
        }
        let rank = tensor.shape.num_dims();
        let expected = *ranks.entry(id).or_insert(rank);
        if rank != expected || rank > MAX_OPTIMIZER_RANK {
            return Err(format!(
                "tensor `{name}` has rank {rank}, its parameter's state rank {expected}"
            ));
        }
    }
    Ok(())
}

/// Load the optimizer state saved next to a checkpoint's weights.
///
/// Burn creates the loaded state on its default device (`BURN_DEVICE`, else the first compiled
/// GPU backend) and moves it to each parameter's device at the next step. Set
/// `BURN_DEVICE=flex` to keep that on the CPU, as `ddspe2e` and this crate's tests and
/// `cargo run` do; otherwise resuming on the CPU sets up the GPU backend, and fails where it
/// has no adapter.
pub fn load_optimizer(dir: &Path, optimizer: ModuleOptimizer) -> Result<ModuleOptimizer> {
    crate::device::check_burn_device()?;
    let path = dir.join("optimizer.bpk");
    let bytes = crate::io::read_regular(&path).map_err(|e| Error::io(&path, e))?;
    let corrupt = |reason: String| Error::Checkpoint {
        path: path.clone(),
        reason: format!("corrupt optimizer state: {reason}"),
    };
    check_optimizer_pack(&bytes).map_err(corrupt)?;
    let record =
        burn::optim::OptimizerRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
            .map_err(|e| Error::Checkpoint {
                path: path.clone(),
                reason: format!("corrupt optimizer state: {e:?}"),
            })?;
    Ok(optimizer.load_record(record))
}
