use super::*;
use crate::data::Split;
use crate::train::{Mode, TrainOptions, train};
use std::sync::OnceLock;

/// A short run on synthetic tones, trained once per test binary: (cache, run directory).
fn run() -> &'static (PathBuf, PathBuf) {
    static RUN: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ddsp-infer-{}", std::process::id()));
        let input = dir.join("in");
        std::fs::create_dir_all(&input).unwrap();
        for (i, f0) in [196.0f64, 294.0].iter().enumerate() {
            let samples: Vec<f32> = (0..16000 * 3)
                .map(|j| {
                    let t = j as f64 / 16000.0;
                    let env = 0.2 + 0.3 * (t * 2.0).sin().abs();
                    (env * (1..=6)
                        .map(|k| (2.0 * std::f64::consts::PI * f0 * k as f64 * t).sin() / k as f64)
                        .sum::<f64>()
                        * 0.3) as f32
                })
                .collect();
            audio::write_wav(&input.join(format!("tone{i}.wav")), &samples, 16000).unwrap();
        }
        let config = config();
        let cache = dir.join("cache");
        crate::data::preprocess(&input, &cache, &config, &|_| {}).unwrap();
        let options = TrainOptions {
            mode: Mode::M2,
            steps: 4,
            runs_dir: dir.join("runs"),
            run_name: Some("r".into()),
            overwrite: false,
            resume: None,
            init_checkpoint: None,
            split: Split::Train,
            profile: None,
        };
        let device = crate::device::select(crate::DeviceChoice::Flex).unwrap();
        train(&config, &cache, &device, &options, &mut |_| {}).unwrap();
        (cache, dir.join("runs/r"))
    })
}

fn config() -> Config {
    Config::from_sources(
        None,
        &[
            ("chunk-size", "4096"),
            ("chunk-hop", "2048"),
            ("frame-hop", "64"),
            ("frame-size", "512"),
            ("decoder-backbone", "gru"),
            ("rnn-channels", "16"),
            ("layers-per-stack", "1"),
            ("harmonics", "16"),
            ("harmonic-head-mode", "exp-sigmoid"),
            ("noise-bands", "33"),
            ("reverb", "fir"),
            ("reverb-length", "2000"),
            ("batch-size", "2"),
            ("spectral-windows", "512,128,32"),
            ("spectral-weight", "1"),
            ("spectral-logmag-weight", "1"),
            ("spectral-loss-mode", "l1"),
            ("spectral-warmup-steps", "0"),
            ("spectral-ramp-steps", "0"),
            ("mse-weight", "0"),
            ("checkpoint-every", "2"),
            ("eval-every", "2"),
            ("train-split", "0.7"),
        ],
    )
    .unwrap()
}

#[test]
fn loads_from_a_run_or_a_checkpoint_folder_with_its_config_and_statistics() {
    let (cache, run) = run();
    let device = Device::flex();
    let best = Model::load(run, Checkpoint::Best, &device).unwrap();
    let latest = Model::load(run, Checkpoint::Latest, &device).unwrap();
    assert_eq!(latest.step(), 4);
    assert_eq!(best.config(), &config());
    let step2 = Model::load(run, "step_2".parse().unwrap(), &device).unwrap();
    assert_eq!(step2.step(), 2);
    let direct = Model::load(&run.join("checkpoints/latest"), Checkpoint::Best, &device).unwrap();
    assert_eq!(direct.step(), 4, "a checkpoint folder is used as it is");
    // The data statistics round-trip through the checkpoint.
    let data = crate::data::Dataset::open_any(cache).unwrap();
    let stats = crate::data::DataStats::of(&data, Split::Train).unwrap();
    assert_eq!(latest.stats(), Some(&stats));
    assert!(
        (stats.mean_pitch_note - 59.0).abs() < 8.0,
        "{}",
        stats.mean_pitch_note
    );
    for bad in [run.join("nope"), cache.clone()] {
        let err = Model::load(&bad, Checkpoint::Best, &device)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains(&bad.display().to_string()), "{err}");
    }
    let err = Model::load(run, Checkpoint::Step(99), &device)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("step_00000099") && err.contains("no such checkpoint"),
        "{err}"
    );
    assert!("step_x".parse::<Checkpoint>().is_err());
}

#[test]
fn rendering_in_pieces_equals_one_pass_and_the_parts_add_up() {
    let (_, run) = run();
    let model = Model::load(run, Checkpoint::Latest, &Device::flex()).unwrap();
    // 3 s of a gliding tone at another sample rate.
    let audio: Vec<f32> = (0..22050 * 3)
        .map(|i| {
            let t = i as f64 / 22050.0;
            (0.4 * (2.0 * std::f64::consts::PI * (220.0 * t + 40.0 * t * t)).sin()) as f32
        })
        .collect();
    let frames = model.features(&audio, 22050).unwrap();
    assert_eq!(frames.len(), 1 + 16000 * 3 / 64);
    let one = {
        let mut state = model.start(3);
        let mut out = model.render(&frames, &mut state);
        out.extend(model.finish(&mut state));
        out
    };
    assert_eq!(one.audio.len(), (frames.len()) * 64);
    let mut pieced = Rendered::default();
    let mut state = model.start(3);
    for (a, b) in [(0, 1), (1, 300), (300, 301), (301, frames.len())] {
        pieced.extend(model.render(&frames.slice(a..b), &mut state));
    }
    pieced.extend(model.finish(&mut state));
    let worst = one
        .audio
        .iter()
        .zip(&pieced.audio)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-4, "pieces differ by {worst}");
    assert_eq!(pieced.controls.amplitude.len(), frames.len());
    assert_eq!(pieced.controls.distribution.len(), frames.len() * 16);
    for i in (0..one.audio.len()).step_by(97) {
        assert!((one.harmonic[i] + one.noise[i] - one.dry[i]).abs() < 1e-6);
        assert!((one.dry[i] + one.wet[i] - one.audio[i]).abs() < 1e-6);
    }
    // Keeping one harmonic leaves a pure tone: the harmonic part of the first 1 s has
    // nearly all its energy at the input's f0.
    let mut state = model.start(3).keep_harmonics(1);
    let first = model.render(&frames.slice(0..250), &mut state);
    let h = &first.controls.distribution;
    assert!(h.chunks(16).all(|row| row[1..].iter().all(|&v| v == 0.0)));
}

#[test]
fn a_render_scored_against_itself_is_perfect() {
    let dir = std::env::temp_dir().join(format!("ddsp-self-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let x: Vec<f32> = (0..32000)
        .map(|i| {
            let t = i as f64 / 16000.0;
            (0.3 * (2.0 * std::f64::consts::PI * 330.0 * t).sin()
                + 0.1 * (2.0 * std::f64::consts::PI * 660.0 * t).sin()) as f32
        })
        .collect();
    let path = dir.join("x.wav");
    audio::write_wav(&path, &x, 16000).unwrap();
    let report = eval::eval_pair(&path, &path, &Device::flex()).unwrap();
    let s = report.rows[0].scores;
    assert_eq!((s.spectral, s.loudness_l1_db), (0.0, 0.0));
    assert_eq!(s.f0, crate::metrics::F0Score::Cents(0.0));
    assert_eq!(report.summary.outlier_ratio, Some(0.0));
    assert!(report.table().contains("overall (1)"));
    let json = report.to_json();
    assert_eq!(json["summary"]["spectralLoss"], 0.0);
    assert_eq!(report.to_csv().lines().count(), 3);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn eval_on_a_cache_scores_every_chunk() {
    let (cache, run) = run();
    let model = Model::load(run, Checkpoint::Latest, &Device::flex()).unwrap();
    let report = eval::eval_cache(&model, cache, Split::Val, None, &mut |_, _| {}).unwrap();
    let data = crate::data::Dataset::open_any(cache).unwrap();
    assert_eq!(report.rows.len(), data.indices(Split::Val).len());
    assert!(
        report
            .rows
            .iter()
            .all(|r| r.scores.spectral > 0.0 && r.name.contains("@"))
    );
    // The overall values are the means of the rows.
    let mean =
        report.rows.iter().map(|r| r.scores.spectral).sum::<f64>() / report.rows.len() as f64;
    assert!((mean - report.summary.spectral).abs() < 1e-9);
}

/// A quiet input is raised to the training peak by default and heard at its own level with
/// `InputLevel::Keep`: the loudness features differ by the gain, in dB, where notes sound.
#[test]
fn a_kept_input_level_is_heard_as_it_is() {
    let (_, run) = run();
    let device = Device::flex();
    let quiet: Vec<f32> = (0..16000)
        .map(|j| 0.03 * (2.0 * std::f32::consts::PI * 220.0 * j as f32 / 16000.0).sin())
        .collect();
    let normalized = Model::load(run, Checkpoint::Best, &device).unwrap();
    let kept = Model::load(run, Checkpoint::Best, &device)
        .unwrap()
        .with_input_level(InputLevel::Keep);
    let audio = kept.prepare_audio(&quiet, 16000).unwrap();
    assert_eq!(audio, quiet, "kept: the samples as given (same rate)");
    let peak = normalized.prepare_audio(&quiet, 16000).unwrap();
    let top = peak.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!((top as f64 - config().normalize_to).abs() < 1e-4, "{top}");
    let gain_db = 20.0 * (config().normalize_to / 0.03).log10();
    let (loud, soft) = (
        normalized.features(&quiet, 16000).unwrap().loudness_db,
        kept.features(&quiet, 16000).unwrap().loudness_db,
    );
    // Away from the edges, every frame is louder by the gain (loudness is a log measure).
    let n = loud.len();
    for i in n / 4..3 * n / 4 {
        assert!(
            ((loud[i] - soft[i]) as f64 - gain_db).abs() < 0.05,
            "frame {i}: {} vs {} dB, gain {gain_db} dB",
            loud[i],
            soft[i]
        );
    }
}
