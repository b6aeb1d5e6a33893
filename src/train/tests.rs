use super::*;
use crate::device::{DeviceChoice, select};
use crate::features::audio::write_wav;
use burn::tensor::Device;
use std::sync::OnceLock;

/// A small cache of synthetic harmonic tones, made once per test binary.
fn cache() -> &'static PathBuf {
    static CACHE: OnceLock<PathBuf> = OnceLock::new();
    CACHE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ddsp-train-cache-{}", std::process::id()));
        let input = dir.join("in");
        std::fs::create_dir_all(&input).unwrap();
        for (i, f0) in [220.0f64, 330.0].iter().enumerate() {
            let n = 16000 * 3;
            let samples: Vec<f32> = (0..n)
                .map(|j| {
                    let t = j as f64 / 16000.0;
                    let env = (t * 3.0).sin().abs() * 0.5 + 0.1;
                    (env * (1..=5)
                        .map(|k| (2.0 * std::f64::consts::PI * f0 * k as f64 * t).sin() / k as f64)
                        .sum::<f64>()
                        * 0.3) as f32
                })
                .collect();
            write_wav(&input.join(format!("tone{i}.wav")), &samples, 16000).unwrap();
        }
        crate::data::preprocess(&input, &dir.join("cache"), &config(), &|_| {}).unwrap();
        dir.join("cache")
    })
}

fn config() -> Config {
    Config::from_sources(
        None,
        &[
            ("chunk-size", "4096"),
            ("chunk-hop", "2048"),
            ("frame-hop", "128"),
            ("frame-size", "512"),
            ("max-f0", "1000"),
            ("decoder-backbone", "gru"),
            ("rnn-channels", "16"),
            ("layers-per-stack", "1"),
            ("harmonics", "12"),
            ("harmonic-head-mode", "exp-sigmoid"),
            ("noise-bands", "9"),
            ("batch-size", "2"),
            ("spectral-windows", "512,128,32"),
            ("spectral-weight", "1"),
            ("spectral-logmag-weight", "1"),
            ("spectral-loss-mode", "l1"),
            ("spectral-warmup-steps", "0"),
            ("spectral-ramp-steps", "0"),
            ("mse-weight", "0"),
            ("checkpoint-every", "3"),
            ("eval-every", "3"),
            ("train-split", "0.7"),
        ],
    )
    .unwrap()
}

fn options(runs: &Path, name: &str, steps: usize) -> TrainOptions {
    TrainOptions {
        mode: Mode::M2,
        steps,
        runs_dir: runs.to_path_buf(),
        run_name: Some(name.into()),
        overwrite: false,
        resume: None,
        init_checkpoint: None,
        split: Split::Train,
        profile: None,
    }
}

fn flex() -> SelectedDevice {
    select(DeviceChoice::Flex).unwrap()
}

fn runs_dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ddsp-runs-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn rows(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect()
}

#[test]
fn run_directory_holds_everything() {
    let runs = runs_dir("layout");
    let mut events = Vec::new();
    let summary = train(
        &config(),
        cache(),
        &flex(),
        &options(&runs, "r", 6),
        &mut |e| events.push(e),
    )
    .unwrap();
    let run = runs.join("r");
    assert_eq!(summary.steps, 6);
    for f in [
        "resolved_config.json",
        "run_meta.json",
        "logs/train.csv",
        "logs/val.csv",
        "checkpoints/step_00000003/model.safetensors",
        "checkpoints/step_00000006/model.bpk",
        "checkpoints/latest/optimizer.bpk",
        "checkpoints/latest/state.json",
        "checkpoints/best/model.safetensors",
    ] {
        assert!(run.join(f).exists(), "missing {f}");
    }
    let header = std::fs::read_to_string(run.join("logs/train.csv")).unwrap();
    assert!(
        header.starts_with("step,lr,total,spectral,logmag,grad_norm\n"),
        "{header}"
    );
    assert_eq!(rows(&run.join("logs/train.csv")).len(), 6);
    assert_eq!(
        rows(&run.join("logs/val.csv")).len(),
        3,
        "evals at 0, 3 and the end"
    );
    let renders: Vec<_> = std::fs::read_dir(run.join("renders/step_00000006"))
        .unwrap()
        .collect();
    assert_eq!(
        renders.len(),
        9,
        "2 chunks x target/prediction/harmonic/noise, and spectrogram.png"
    );
    assert!(run.join("logs/loss_curves.png").exists());
    // Control statistics on the first step and every logEvery-th (10: the first only here).
    let controls = std::fs::read_to_string(run.join("logs/controls.csv")).unwrap();
    assert!(
        controls.starts_with(
            "step,harmonic_entropy,top_harmonic_share,amplitude_sum,gain_min,gain_max,noise_to_harmonic_db\n"
        ),
        "{controls}"
    );
    let stats: Vec<Vec<f64>> = rows(&run.join("logs/controls.csv"))
        .iter()
        .map(|r| r.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    assert_eq!(stats.len(), 1);
    let (entropy, top, gain_min, gain_max) = (stats[0][1], stats[0][2], stats[0][4], stats[0][5]);
    assert_eq!(stats[0][0], 1.0);
    assert!(
        (0.0..=12f64.ln() + 1e-6).contains(&entropy),
        "entropy {entropy}"
    );
    assert!((1.0 / 12.0 - 1e-6..=1.0).contains(&top), "top share {top}");
    assert!(0.0 <= gain_min && gain_min <= gain_max);
    assert!(run.join("logs/control_stats.png").exists());
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run_meta.json")).unwrap()).unwrap();
    assert_eq!(meta["status"], "finished");
    assert_eq!(meta["steps"], 6);
    assert!(meta["bestValLoss"].as_f64().unwrap() > 0.0);
    assert!(events.iter().any(|e| matches!(e, TrainEvent::Eval { .. })));
    let resolved = Config::from_json_file(&run.join("resolved_config.json")).unwrap();
    assert_eq!(resolved, config());
    std::fs::remove_dir_all(&runs).unwrap();
}

#[test]
fn resume_continues_with_the_same_losses() {
    let runs = runs_dir("resume");
    // Concurrently running tests build models too: `DdspModel::new` keeps the seed exact.
    let fresh = |name: &str, steps: usize| {
        train(
            &config(),
            cache(),
            &flex(),
            &options(&runs, name, steps),
            &mut |_| {},
        )
        .unwrap()
    };
    fresh("straight", 6);
    fresh("split", 3);
    let mut resumed = options(&runs, "ignored", 6);
    resumed.resume = Some(runs.join("split"));
    let s = train(&config(), cache(), &flex(), &resumed, &mut |_| {}).unwrap();
    assert_eq!(s.steps, 6);
    let a = rows(&runs.join("straight/logs/train.csv"));
    let b = rows(&runs.join("split/logs/train.csv"));
    assert_eq!(a, b, "a resumed run repeats the uninterrupted one exactly");
    let val = |run: &str| rows(&runs.join(run).join("logs/val.csv"));
    assert_eq!(val("straight").len(), 3, "steps 0, 3 and 6");
    assert_eq!(val("split"), val("straight"), "validation rows, each once");
    // Same seed, same device: the same losses from a fresh start.
    fresh("again", 6);
    let again = rows(&runs.join("again/logs/train.csv"));
    assert_eq!(again, a, "same seed, same losses");
    std::fs::remove_dir_all(&runs).unwrap();
}

#[test]
fn init_checkpoint_loads_weights_only() {
    let runs = runs_dir("init");
    train(
        &config(),
        cache(),
        &flex(),
        &options(&runs, "a", 3),
        &mut |_| {},
    )
    .unwrap();
    let mut opts = options(&runs, "b", 1);
    opts.init_checkpoint = Some(runs.join("a/checkpoints/latest"));
    let s = train(&config(), cache(), &flex(), &opts, &mut |_| {}).unwrap();
    let first_a = rows(&runs.join("a/logs/val.csv"));
    let first_b = rows(&runs.join("b/logs/val.csv"));
    // b starts from a's final weights: its step-0 validation equals a's last one.
    let last_a = first_a
        .last()
        .unwrap()
        .split(',')
        .nth(1)
        .unwrap()
        .to_string();
    let start_b = first_b[0].split(',').nth(1).unwrap().to_string();
    assert_eq!(last_a, start_b);
    assert_eq!(s.steps, 1);
    std::fs::remove_dir_all(&runs).unwrap();
}

#[test]
fn dry_mode_runs_the_pipeline_without_a_model() {
    let runs = runs_dir("dry");
    let mut opts = options(&runs, "dry", 4);
    opts.mode = Mode::Dry;
    let s = train(&config(), cache(), &flex(), &opts, &mut |_| {}).unwrap();
    assert_eq!(s.steps, 4);
    assert!(s.last_losses.iter().all(|(_, v)| v.is_finite() && *v > 0.0));
    assert!(!runs.join("dry/checkpoints/latest").exists());
    assert!(runs.join("dry/renders/step_00000004").exists());
    std::fs::remove_dir_all(&runs).unwrap();
}

#[test]
fn non_finite_steps_are_skipped_and_repeated_failures_stop_the_run() {
    let runs = runs_dir("nan");
    let mut c = config();
    c.lr = 1e38; // Adam moves weights by ~lr: they overflow after the first step.
    c.grad_clip = 0.0;
    c.eval_every = 0;
    c.checkpoint_every = 1; // the good first step leaves a checkpoint
    let mut skipped = 0;
    let err = train(
        &c,
        cache(),
        &flex(),
        &options(&runs, "nan", 200),
        &mut |e| {
            if matches!(e, TrainEvent::Skipped { .. }) {
                skipped += 1;
            }
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("non-finite") && err.contains("latest"),
        "{err}"
    );
    assert_eq!(skipped, MAX_CONSECUTIVE_SKIPS);
    let meta = std::fs::read_to_string(runs.join("nan/run_meta.json")).unwrap();
    assert!(meta.contains("failed"), "{meta}");
    // The last good checkpoint survives and loads.
    let latest = runs.join("nan/checkpoints/latest");
    assert_eq!(
        read_state(&latest).unwrap().step,
        1,
        "step 1 was the last good one"
    );
    DdspModel::new(&c, &Device::flex())
        .load_weights(&latest.join("model.bpk"))
        .unwrap();
    std::fs::remove_dir_all(&runs).unwrap();
}

#[test]
fn stale_cache_and_missing_cache_are_clear_errors() {
    let runs = runs_dir("stale");
    let mut c = config();
    c.frame_hop = 256;
    let err = train(&c, cache(), &flex(), &options(&runs, "x", 1), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("frameHop"), "{err}");
    let err = train(
        &config(),
        &runs.join("nope"),
        &flex(),
        &options(&runs, "x", 1),
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("manifest.json") && err.contains("preprocess"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&runs);
}

#[test]
fn early_stopping_ends_a_run_that_stopped_improving() {
    let runs = runs_dir("early");
    let mut c = config();
    c.eval_every = 1;
    c.early_stop_patience = 2;
    c.early_stop_min_delta = 1e9; // nothing counts as an improvement after the first eval
    let mut stopped = None;
    let s = train(&c, cache(), &flex(), &options(&runs, "e", 50), &mut |e| {
        if let TrainEvent::EarlyStopped { step } = e {
            stopped = Some(step);
        }
    })
    .unwrap();
    assert_eq!(
        stopped,
        Some(2),
        "evals at 0 (best), 1 and 2 without improvement"
    );
    assert_eq!(s.steps, 2);
    let meta = std::fs::read_to_string(runs.join("e/run_meta.json")).unwrap();
    assert!(meta.contains("early-stopped"), "{meta}");
    std::fs::remove_dir_all(&runs).unwrap();
}

#[test]
fn control_dumps_write_the_original_tools_files() {
    let runs = runs_dir("dump");
    let mut c = config();
    c.dump_controls_every = 2;
    train(&c, cache(), &flex(), &options(&runs, "d", 2), &mut |_| {}).unwrap();
    let dir = runs.join("d/logs/controls");
    assert!(dir.join("plots/step_00000002_controls.png").exists());
    assert!(dir.join("plots/steps_compare.png").exists());
    let frames = c.frames_per_chunk();
    let summary = std::fs::read_to_string(dir.join("step_00000002_control_summary.csv")).unwrap();
    assert!(summary.starts_with("frame,f0_hz,harmonic_gain,noise_gain"));
    assert_eq!(summary.lines().count(), frames + 1);
    for f in dump::dump_frames(frames) {
        for kind in ["harmonics", "wavetable", "noise_filter"] {
            let p = dir.join(format!("step_00000002_b0_f{f}_{kind}.csv"));
            assert!(p.exists(), "missing {}", p.display());
        }
        let h = std::fs::read_to_string(dir.join(format!("step_00000002_b0_f{f}_harmonics.csv")))
            .unwrap();
        assert_eq!(h.lines().count(), c.harmonics + 1);
        // The wavetable is the additive sum of the dumped harmonic amplitudes.
        let amps: Vec<f64> = h
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(2).unwrap().parse().unwrap())
            .collect();
        let w = std::fs::read_to_string(dir.join(format!("step_00000002_b0_f{f}_wavetable.csv")))
            .unwrap();
        let row: Vec<f64> = w
            .lines()
            .nth(33)
            .unwrap()
            .split(',')
            .map(|v| v.parse().unwrap())
            .collect();
        let expected: f64 = amps
            .iter()
            .enumerate()
            .map(|(i, a)| a * (2.0 * std::f64::consts::PI * (i + 1) as f64 * row[0]).sin())
            .sum();
        assert!((row[1] - expected).abs() < 1e-5 * expected.abs().max(1.0));
    }
    std::fs::remove_dir_all(&runs).unwrap();
}

#[test]
fn phase_profile_has_a_row_per_step() {
    let runs = runs_dir("profile");
    let mut opts = options(&runs, "p", 3);
    opts.profile = Some(PathBuf::new()); // the run directory's profile.csv
    train(&config(), cache(), &flex(), &opts, &mut |_| {}).unwrap();
    let text = std::fs::read_to_string(runs.join("p/profile.csv")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "step,data,forward,backward,optimizer");
    assert_eq!(lines.len(), 4);
    for l in &lines[1..] {
        let ms: Vec<f64> = l.split(',').skip(1).map(|v| v.parse().unwrap()).collect();
        assert!(ms.iter().all(|v| *v >= 0.0) && ms[1] > 0.0, "{l}");
    }
    std::fs::remove_dir_all(&runs).unwrap();
}

#[test]
fn loss_columns_stay_put_when_a_weight_ramps_to_zero() {
    let runs = runs_dir("columns");
    let mut c = config();
    c.loudness_loss_weight = 0.5;
    c.loudness_loss_weight_end = Some(0.0);
    c.loudness_loss_ramp_steps = 2;
    c.eval_every = 0;
    train(&c, cache(), &flex(), &options(&runs, "c", 5), &mut |_| {}).unwrap();
    let text = std::fs::read_to_string(runs.join("c/logs/train.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(
        header,
        [
            "step",
            "lr",
            "total",
            "spectral",
            "logmag",
            "loudness",
            "grad_norm"
        ]
    );
    let loudness = header.iter().position(|h| *h == "loudness").unwrap();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 5);
    for row in &rows {
        assert_eq!(row.len(), header.len(), "{row:?}");
        let v: f64 = row[loudness].parse().unwrap();
        assert!(
            v > 0.0,
            "the loudness term is still logged after its weight reached 0"
        );
    }
    // Once the loudness weight is 0 the total is the spectral terms alone.
    let last = rows.last().unwrap();
    let total: f64 = last[2].parse().unwrap();
    let spectral: f64 = last[3].parse::<f64>().unwrap() + last[4].parse::<f64>().unwrap();
    assert!((total - spectral).abs() < 1e-4 * total, "{last:?}");
    std::fs::remove_dir_all(&runs).unwrap();
}

#[test]
fn the_training_seed_is_free_on_any_cache_but_the_split_seed_is_not() {
    let runs = runs_dir("seed");
    let mut c = config();
    c.seed = 2;
    c.eval_every = 0;
    train(&c, cache(), &flex(), &options(&runs, "s2", 1), &mut |_| {}).unwrap();
    let mut other_split = config();
    other_split.split_seed = 99;
    let err = train(
        &other_split,
        cache(),
        &flex(),
        &options(&runs, "x", 1),
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("splitSeed: cache 1337, requested 99"), "{err}");
    std::fs::remove_dir_all(&runs).unwrap();
}

#[test]
fn a_config_without_any_loss_weight_at_some_step_is_refused_not_a_panic() {
    let runs = runs_dir("noweight");
    let mut c = config();
    c.spectral_warmup_steps = 2; // spectral terms ramp in from step 2, nothing else weighs
    let err = train(&c, cache(), &flex(), &options(&runs, "z", 3), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("every loss weight is 0 at step 0"), "{err}");
    let _ = std::fs::remove_dir_all(&runs);
}

#[test]
fn cached_target_spectrograms_give_the_same_steps_as_computed_ones() {
    let device = Device::flex().autodiff();
    let (b, n, f) = (2, 4096, 32);
    let batch = |seed: u32| {
        let wave = |i: usize| (i as f32 * 0.013 * (seed + 1) as f32).sin() * 0.4;
        Batch::from_host(
            (0..b * n).map(wave).collect(),
            vec![200.0 + 50.0 * seed as f32; b * f],
            vec![-20.0; b * f],
            vec![1.0; b * f],
            b,
            &device,
        )
    };
    // Two batches with the same ids ("0", "1") but different audio: the cache must tell them
    // apart by content.
    let (one, two) = (batch(0), batch(1));
    assert_eq!(one.ids, two.ids);
    assert_ne!(one.keys, two.keys);
    let run = |cache_mb: &str| {
        let mut c = config();
        c.target_cache_mb = cache_mb.parse().unwrap();
        let mut runner = StepRunner::new(&c, &device);
        [&one, &two, &one, &two]
            .iter()
            .enumerate()
            .map(|(step, batch)| runner.step([(*batch).clone()], step, 1e-3))
            .collect::<Vec<_>>()
    };
    let (cached, computed) = (run("64"), run("0"));
    for (a, b) in cached.iter().zip(&computed) {
        let (StepOutcome::Applied { losses: la, .. }, StepOutcome::Applied { losses: lb, .. }) =
            (a, b)
        else {
            panic!("a step was skipped: {a:?} {b:?}");
        };
        for ((name, x), (_, y)) in la.iter().zip(lb) {
            assert!(
                (x - y).abs() <= 1e-6 * y.abs().max(1.0),
                "{name}: {x} vs {y}"
            );
        }
    }
}

/// Issue 15, defect 1: training under the name of an earlier run is refused (naming
/// `--resume` and `--overwrite`) and leaves that run as it was; `--overwrite` replaces it.
/// Defect 4: run names that are not plain folder names are refused before anything is
/// written.
#[test]
fn reusing_a_run_name_is_refused_unless_overwriting_and_names_stay_inside_the_runs_dir() {
    let runs = runs_dir("reuse");
    let first = options(&runs, "a", 3);
    train(&config(), cache(), &flex(), &first, &mut |_| {}).unwrap();
    let state = runs.join("a/checkpoints/latest/state.json");
    let before = std::fs::read(&state).unwrap();
    let log = runs.join("a/logs/train.csv");
    let log_before = std::fs::read(&log).unwrap();
    let again = options(&runs, "a", 2);
    let err = train(&config(), cache(), &flex(), &again, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("already exists") && err.contains("--resume") && err.contains("--overwrite"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&state).unwrap(),
        before,
        "the earlier run was touched"
    );
    assert_eq!(std::fs::read(&log).unwrap(), log_before);
    let mut overwrite = options(&runs, "a", 2);
    overwrite.overwrite = true;
    let s = train(&config(), cache(), &flex(), &overwrite, &mut |_| {}).unwrap();
    assert_eq!(s.steps, 2);
    assert_eq!(rows(&log).len(), 2, "the replaced run's log starts afresh");
    for name in ["", ".", "..", "../x", "a/b", "x\\y", "nul\0"] {
        let opts = options(&runs, name, 1);
        let err = train(&config(), cache(), &flex(), &opts, &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(err.contains("--run-name"), "{name:?}: {err}");
    }
    assert!(!runs.join("x").exists() && !runs.parent().unwrap().join("x").exists());
    std::fs::remove_dir_all(&runs).unwrap();
}

/// Issue 15, defect 3 (its NaN part): a NaN or infinite validation loss is never the best, and
/// a NaN best from an older state file does not freeze the best checkpoint for ever.
#[test]
fn non_finite_validation_is_never_better() {
    use super::trainer::improves;
    assert!(improves(None, 5.0, 0.0));
    assert!(!improves(None, f64::NAN, 0.0));
    assert!(!improves(Some(5.0), f64::NAN, 0.0));
    assert!(!improves(Some(5.0), f64::NEG_INFINITY, 0.0));
    assert!(improves(Some(f64::NAN), 7.0, 0.0));
    assert!(improves(Some(5.0), 4.0, 0.5) && !improves(Some(5.0), 4.8, 0.5));
}

/// Issue 15, defect 7: resuming a folder that is no run, or a run stopped before its first
/// checkpoint, says so (not "cannot read state.json").
#[test]
fn resuming_without_a_checkpoint_says_why() {
    let runs = runs_dir("nockpt");
    let mut opts = options(&runs, "r", 1);
    opts.resume = Some(runs.join("nothing-here"));
    let err = train(&config(), cache(), &flex(), &opts, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nothing-here") && err.contains("not a run directory"),
        "{err}"
    );
    // A run with its config but no checkpoint (killed during its first steps).
    std::fs::create_dir_all(runs.join("r/checkpoints")).unwrap();
    config()
        .write_json(&runs.join("r/resolved_config.json"))
        .unwrap();
    opts.resume = Some(runs.join("r"));
    let err = train(&config(), cache(), &flex(), &opts, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no checkpoint yet") && err.contains("latest"),
        "{err}"
    );
    std::fs::remove_dir_all(&runs).unwrap();
}

/// Issue 15, defect 7: a run that stops with an error says so in `run_meta.json` (it was left
/// "running"). The error here: its renders folder turns into a file once the run has started.
#[test]
fn a_failed_run_is_marked_failed() {
    let runs = runs_dir("failed");
    let opts = options(&runs, "f", 6);
    let renders = runs.join("f/renders");
    let err = train(&config(), cache(), &flex(), &opts, &mut |event| {
        if let TrainEvent::Started { .. } = event {
            std::fs::remove_dir_all(&renders).unwrap();
            std::fs::write(&renders, b"in the way").unwrap();
        }
    })
    .unwrap_err();
    let meta = std::fs::read_to_string(runs.join("f/run_meta.json")).unwrap();
    assert!(meta.contains("failed"), "{err}: {meta}");
    std::fs::remove_dir_all(&runs).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Issue 15, defect 6: a save of `latest` interrupted between its two renames leaves no
/// `latest`, only `.latest.old` (the previous one) and `.latest.tmp` (the new one, complete or
/// not). Loading and resuming fall back to the complete new copy, else the old one, and the
/// next save puts `latest` back and removes the leftovers.
#[test]
fn an_interrupted_latest_swap_is_recovered() {
    use crate::infer::{Checkpoint, Model};
    let runs = runs_dir("swap");
    train(
        &config(),
        cache(),
        &flex(),
        &options(&runs, "s", 6),
        &mut |_| {},
    )
    .unwrap();
    let ckpts = runs.join("s/checkpoints");
    let run = runs.join("s");
    let device = Device::flex();
    // Killed after `latest` -> `.latest.old`, before `.latest.tmp` -> `latest`.
    std::fs::rename(ckpts.join("latest"), ckpts.join(".latest.tmp")).unwrap();
    copy_dir(&ckpts.join("step_00000003"), &ckpts.join(".latest.old"));
    let model = Model::load(&run, Checkpoint::Latest, &device).unwrap();
    assert_eq!(model.step(), 6, "the complete new copy wins");
    assert!(
        model.notes()[0].contains("interrupted"),
        "{:?}",
        model.notes()
    );
    // Killed while `.latest.tmp` was being written: it has no state.json.
    std::fs::remove_file(ckpts.join(".latest.tmp/state.json")).unwrap();
    let model = Model::load(&run, Checkpoint::Latest, &device).unwrap();
    assert_eq!(model.step(), 3, "the previous copy");
    // Resume falls back the same way and says so; its first save cleans up.
    let mut opts = options(&runs, "s", 9);
    opts.resume = Some(run.clone());
    let mut notes = Vec::new();
    let mut start = None;
    train(&config(), cache(), &flex(), &opts, &mut |e| match e {
        TrainEvent::Note { message } => notes.push(message),
        TrainEvent::Started { start_step, .. } => start = Some(start_step),
        _ => {}
    })
    .unwrap();
    assert_eq!(start, Some(3));
    assert!(notes.iter().any(|n| n.contains(".latest.old")), "{notes:?}");
    assert_eq!(read_state(&ckpts.join("latest")).unwrap().step, 9);
    assert!(!ckpts.join(".latest.old").exists() && !ckpts.join(".latest.tmp").exists());
    // Nothing complete anywhere: "no checkpoint yet", not a read error.
    std::fs::remove_dir_all(ckpts.join("latest")).unwrap();
    std::fs::create_dir_all(ckpts.join(".latest.tmp")).unwrap();
    let err = train(&config(), cache(), &flex(), &opts, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("no checkpoint yet"), "{err}");
    std::fs::remove_dir_all(&runs).unwrap();
}

/// Issue 15, defect 3 (checksums): a checkpoint's state.json records the SHA-256 of its
/// weights and optimizer state; a file changed afterwards is refused naming it, on resume and
/// on load; a checkpoint from before checksums still loads, with a note saying so.
#[test]
fn checkpoint_files_are_checked_against_their_checksums() {
    use crate::infer::{Checkpoint, Model};
    let runs = runs_dir("sums");
    train(
        &config(),
        cache(),
        &flex(),
        &options(&runs, "c", 3),
        &mut |_| {},
    )
    .unwrap();
    let run = runs.join("c");
    let latest = run.join("checkpoints/latest");
    let state = read_state(&latest).unwrap();
    let files: Vec<&str> = state.sha256.keys().map(String::as_str).collect();
    assert_eq!(files, ["model.bpk", "model.safetensors", "optimizer.bpk"]);
    let device = Device::flex();
    let loaded = Model::load(&run, Checkpoint::Latest, &device).unwrap();
    assert!(loaded.notes().is_empty(), "{:?}", loaded.notes());

    // A checkpoint written before checksums: loads, and says it was not verified.
    let old = runs.join("old");
    copy_dir(&latest, &old);
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(old.join("state.json")).unwrap()).unwrap();
    json.as_object_mut().unwrap().remove("sha256").unwrap();
    std::fs::write(old.join("state.json"), json.to_string()).unwrap();
    let loaded = Model::load(&old, Checkpoint::Latest, &device).unwrap();
    assert!(
        loaded.notes()[0].contains("no checksums"),
        "{:?}",
        loaded.notes()
    );

    let flip = |path: &Path| {
        let mut bytes = std::fs::read(path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(path, bytes).unwrap();
    };
    let mut resume = options(&runs, "c", 6);
    resume.resume = Some(run.clone());
    flip(&latest.join("optimizer.bpk"));
    let err = train(&config(), cache(), &flex(), &resume, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("checksum mismatch")
            && err.contains("optimizer.bpk was modified or is damaged"),
        "{err}"
    );
    flip(&latest.join("model.bpk"));
    let err = Model::load(&run, Checkpoint::Latest, &device)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("checksum mismatch") && err.contains("model.bpk was modified"),
        "{err}"
    );
    std::fs::remove_dir_all(&runs).unwrap();
}

/// Issue 15, defect 7: a run stopped by non-finite steps before its first checkpoint does not
/// point at a `latest` that is not there; `--init-checkpoint` with `--resume` is refused (it
/// was silently ignored).
#[test]
fn messages_name_only_what_exists_and_resume_refuses_init_weights() {
    let runs = runs_dir("msgs");
    let mut c = config();
    c.lr = 1e38;
    c.grad_clip = 0.0;
    c.eval_every = 0;
    c.checkpoint_every = 1000;
    let err = train(&c, cache(), &flex(), &options(&runs, "n", 200), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("No checkpoint was written") && !err.contains("latest"),
        "{err}"
    );
    let mut opts = options(&runs, "n", 2);
    opts.resume = Some(runs.join("n"));
    opts.init_checkpoint = Some(runs.join("elsewhere"));
    let err = train(&config(), cache(), &flex(), &opts, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--init-checkpoint") && err.contains("--resume"),
        "{err}"
    );
    std::fs::remove_dir_all(&runs).unwrap();
}

/// `reverbLrScale`: one Adam step moves the reverb's taps by the scale times what they move
/// at scale 1 (Adam's update is linear in the learning rate and the moments are the same),
/// and every decoder weight exactly as at scale 1.
#[test]
fn the_reverb_learns_at_its_own_rate() {
    use burn::module::{Module, ModuleVisitor, Param};
    struct Flat(Vec<f32>);
    impl ModuleVisitor for Flat {
        fn visit_float<const D: usize>(&mut self, param: &Param<burn::tensor::Tensor<D>>) {
            self.0.extend(crate::dsp::to_vec(param.val().reshape([-1])));
        }
    }
    let device = Device::flex().autodiff();
    let (b, n, f) = (2, 4096, 32);
    let batch = Batch::from_host(
        (0..b * n).map(|i| (i as f32 * 0.05).sin() * 0.4).collect(),
        vec![220.0; b * f],
        vec![-20.0; b * f],
        vec![1.0; b * f],
        b,
        &device,
    );
    let step = |scale: f64| {
        let mut c = config();
        c.reverb = crate::synth::ReverbMode::Fir;
        c.reverb_length = 512;
        c.reverb_lr_scale = scale;
        let mut runner = StepRunner::new(&c, &device);
        let taps = |m: &crate::model::DdspModel| {
            crate::dsp::to_vec(m.synth.reverb.as_ref().unwrap().impulse_response())
        };
        let decoder = |m: &crate::model::DdspModel| {
            let mut v = Flat(Vec::new());
            m.decoder.visit(&mut v);
            v.0
        };
        let (taps0, dec0) = (taps(runner.model()), decoder(runner.model()));
        let outcome = runner.step([batch.clone()], 0, 1e-3);
        assert!(
            matches!(outcome, StepOutcome::Applied { .. }),
            "{outcome:?}"
        );
        let moved = |a: Vec<f32>, b: Vec<f32>| -> Vec<f32> {
            a.iter().zip(&b).map(|(x, y)| y - x).collect()
        };
        (
            moved(taps0, taps(runner.model())),
            moved(dec0, decoder(runner.model())),
        )
    };
    let (full, slow) = (step(1.0), step(0.25));
    let largest = full.0.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(largest > 1e-4, "the taps moved: {largest}");
    for (i, (a, b)) in full.0.iter().zip(&slow.0).enumerate() {
        assert!(
            (b - 0.25 * a).abs() <= 1e-3 * a.abs() + 1e-9,
            "tap {i}: {a} vs {b}"
        );
    }
    assert_eq!(full.1, slow.1, "the decoder steps as before");
}

/// The z-encoder end to end: preprocessing caches MFCCs (and they load into batches), a run
/// trains and resumes with them, the checkpoint renders a recording through the encoder, and
/// the streaming engine refuses the model with a message naming the encoder.
#[test]
fn a_run_with_the_z_encoder_caches_mfccs_trains_resumes_and_renders() {
    let runs = runs_dir("zenc");
    let mut c = config();
    c.encoder = crate::config::EncoderKind::Mfcc;
    c.mfcc_bins = 13;
    c.z_dims = 4;
    c.encoder_units = 8;
    let input = cache().parent().unwrap().join("in");
    let zcache = runs.join("cache");
    crate::data::preprocess(&input, &zcache, &c, &|_| {}).unwrap();
    let data = crate::data::Dataset::open(&zcache, &c).unwrap();
    let frames = c.frames_per_chunk();
    assert!(data.chunks.iter().all(|ch| ch.mfcc.len() == frames * 13));
    let batch = Batch::from_chunks(&[&data.chunks[0], &data.chunks[1]], &Device::flex());
    assert_eq!(batch.mfcc.as_ref().unwrap().dims(), [2, frames, 13]);
    // The cache without MFCCs is stale for this config, and this one for the plain config.
    assert!(crate::data::Dataset::open(cache(), &c).is_err());
    assert!(crate::data::Dataset::open(&zcache, &config()).is_err());

    train(&c, &zcache, &flex(), &options(&runs, "z", 3), &mut |_| {}).unwrap();
    let mut resumed = options(&runs, "ignored", 5);
    resumed.resume = Some(runs.join("z"));
    let s = train(&c, &zcache, &flex(), &resumed, &mut |_| {}).unwrap();
    assert_eq!(s.steps, 5);

    let model = crate::infer::Model::load(
        &runs.join("z"),
        crate::infer::Checkpoint::Latest,
        &Device::flex(),
    )
    .unwrap();
    assert!(model.inner().0.decoder.has_encoder());
    let tone: Vec<f32> = (0..8000)
        .map(|i| 0.3 * (i as f32 * 2.0 * std::f32::consts::PI * 330.0 / 16000.0).sin())
        .collect();
    let features = model.features(&tone, 16000).unwrap();
    assert_eq!(features.mfcc.len(), features.len() * 13);
    let rendered = model.render_all(&features, &mut |_, _| {});
    assert!(!rendered.audio.is_empty());
    assert!(rendered.audio.iter().all(|v| v.is_finite()));
    // Without the MFCCs (synth mode) the encoder hears silence: another render, still finite.
    let silent = crate::infer::Frames {
        mfcc: Vec::new(),
        ..features
    };
    let without = model.render_all(&silent, &mut |_, _| {});
    assert!(without.audio.iter().all(|v| v.is_finite()));
    assert_ne!(without.audio, rendered.audio);
    let err = crate::stream::FrameStream::for_model(&model, 256)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("z-encoder"), "{err}");
    let _ = std::fs::remove_dir_all(&runs);
}
