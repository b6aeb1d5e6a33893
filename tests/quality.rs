//! Training quality bars: single-chunk overfit on a real violin chunk, and recovery of known
//! controls from audio rendered by our own synthesizer.

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor};
use ddsp::data::{self, Split};
use ddsp::dsp::{from_vec, to_vec};
use ddsp::features::{audio, loudness};
use ddsp::loss::{SpectralLogForm, SpectralLossConfig, SpectralLossMode};
use ddsp::model::DdspModel;
use ddsp::synth::{HarmonicConfig, SynthConfig, SynthControls};
use ddsp::train::{Mode, TrainOptions};
use ddsp::{Config, DeviceChoice};
use std::path::{Path, PathBuf};

/// The two tests run one at a time: each trains for about a minute on every core, and together
/// they would only compete for them.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn shared() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/audio/dev");
    if p.is_dir() {
        return Some(p);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("../shared/audio/dev is missing in CI");
    }
    eprintln!("skipped: ../shared/audio/dev not found");
    None
}

fn tiny() -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/tiny.json");
    Config::from_sources::<&str, &str>(Some(&path), &[]).unwrap()
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ddsp-quality-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn single_violin_chunk_overfits_without_collapse() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(dev) = shared() else { return };
    let dir = temp("overfit");
    let mut config = tiny();
    // The bar is the trainer's: how far the tiny shapes fit one chunk with the most capacity
    // they have, a free 0.5 s FIR reverb (which also learns the chunk's colour). The preset's
    // exp-decay reverb gives up that in-sample fit for held-out audio (EXPERIMENTS.md, "The
    // reverb"): on this chunk it falls by 73%, short of this bar.
    config.reverb = ddsp::synth::ReverbMode::Fir;
    // Find the most voiced chunk of the violin recording.
    let all = dir.join("all");
    std::fs::create_dir_all(&all).unwrap();
    std::fs::copy(dev.join("violin_fluidr3.wav"), all.join("violin.wav")).unwrap();
    let report = data::preprocess(&all, &dir.join("cache_all"), &config, &|_| {}).unwrap();
    let best = report
        .manifest
        .chunks
        .iter()
        .max_by(|a, b| a.voiced_fraction.total_cmp(&b.voiced_fraction))
        .unwrap();
    assert!(best.voiced_fraction > 0.9);
    let samples = audio::load_audio(&all.join("violin.wav"), 16000.0, 0.99).unwrap();
    let chunk = &samples[best.offset..best.offset + config.chunk_size];
    let one = dir.join("one");
    std::fs::create_dir_all(&one).unwrap();
    audio::write_wav(&one.join("chunk.wav"), chunk, 16000).unwrap();
    config.train_split = 1.0;
    config.batch_size = 1;
    config.fixed_batch = true;
    config.eval_every = 100;
    config.checkpoint_every = 1000;
    config.render_every = Some(0);
    let cache = dir.join("cache_one");
    let made = data::preprocess(&one, &cache, &config, &|_| {}).unwrap();
    assert_eq!(made.manifest.chunks.len(), 1);

    let device = ddsp::device::select(DeviceChoice::Flex).unwrap();
    let options = TrainOptions {
        mode: Mode::M2,
        steps: 1000,
        runs_dir: dir.join("runs"),
        run_name: Some("overfit".into()),
        overwrite: false,
        resume: None,
        init_checkpoint: None,
        split: Split::Train,
        profile: None,
    };
    let summary = ddsp::train::train(&config, &cache, &device, &options, &mut |_| {}).unwrap();
    let first = summary.first_val.unwrap();
    let best_val = summary.best_val.unwrap();
    eprintln!(
        "single-chunk overfit: paper spectral loss {first:.3} -> {best_val:.3} ({:.1}% lower)",
        100.0 * (1.0 - best_val / first)
    );
    assert!(
        best_val <= 0.25 * first,
        "fell only from {first} to {best_val}"
    );

    // No collapse onto one harmonic: the distribution keeps several harmonics.
    let model = DdspModel::new(&config, &Device::flex())
        .load_weights(&summary.run_dir.join("checkpoints/best/model.safetensors"))
        .unwrap();
    let data = data::Dataset::open(&cache, &config).unwrap();
    let batch = data::Batch::from_chunks(&[&data.chunks[0]], &Device::flex());
    let out = ddsp::train::forward_batch(&model, &batch, 1.0, 0);
    let dist = to_vec(out.controls.distribution);
    let k = config.harmonics;
    let voiced: Vec<usize> = (0..data.chunks[0].voiced_prob.len())
        .filter(|&t| data.chunks[0].voiced_prob[t] >= 0.3)
        .collect();
    let top_share: f32 = voiced
        .iter()
        .map(|&t| {
            let row = &dist[t * k..(t + 1) * k];
            row.iter().fold(0f32, |m, v| m.max(*v)) / row.iter().sum::<f32>().max(1e-9)
        })
        .sum::<f32>()
        / voiced.len() as f32;
    eprintln!("mean top-harmonic share on voiced frames: {top_share:.3}");
    assert!(
        top_share < 0.8,
        "distribution collapsed: top harmonic holds {top_share}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Known controls: an f0 glide, a swelling amplitude, and a distribution whose roll-off
/// changes over time.
fn truth(frames: usize, k: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut f0 = Vec::new();
    let mut amp = Vec::new();
    let mut dist = Vec::new();
    for b in 0..2 {
        for t in 0..frames {
            let x = t as f32 / frames as f32;
            f0.push(if b == 0 {
                220.0 + 110.0 * x
            } else {
                392.0 - 60.0 * x
            });
            amp.push(0.15 + 0.25 * (std::f32::consts::PI * x).sin());
            let slope = 1.0 + 1.5 * x + b as f32 * 0.5;
            let row: Vec<f32> = (1..=k).map(|h| (h as f32).powf(-slope)).collect();
            let s: f32 = row.iter().sum();
            dist.extend(row.iter().map(|v| v / s));
        }
    }
    (f0, amp, dist)
}

#[test]
fn synthetic_controls_are_recovered() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let device = Device::flex().autodiff();
    let mut config = tiny();
    config.harmonics = 20;
    config.reverb = ddsp::config::ReverbMode::Off;
    let (frames, hop, k) = (128usize, config.frame_hop, config.harmonics);
    let n = frames * hop;
    let (f0, amp, dist) = truth(frames, k);
    // Render the target with our synth (harmonic only).
    let harmonic = HarmonicConfig::new(16000.0, hop).with_amp_resample(config.amp_resample);
    let synth = SynthConfig::new(harmonic).init(&Device::flex());
    let target = synth
        .forward(
            SynthControls {
                f0_hz: from_vec(f0.clone(), [2, frames], &Device::flex()),
                amplitude: from_vec(amp.clone(), [2, frames], &Device::flex()),
                distribution: from_vec(dist.clone(), [2, frames, k], &Device::flex()),
                noise_magnitudes: None,
            },
            0,
        )
        .audio;
    let target_host = to_vec(target.clone());
    let loudness: Vec<f32> = (0..2)
        .flat_map(|b| {
            let l =
                loudness::compute_loudness(&target_host[b * n..(b + 1) * n], 16000.0, 1024, hop);
            l[..frames].to_vec()
        })
        .collect();
    let f0_t = from_vec(f0.clone(), [2, frames], &device);
    let ld_t = from_vec(loudness, [2, frames], &device);
    let uv_t = Tensor::<2>::ones([2, frames], &device);
    let target = from_vec(target_host, [2, n], &device);

    let mut model = DdspModel::new(&config, &device);
    // The paper's loss in its trainable form (magnitudes floored so gradients stay finite).
    let metric = SpectralLossConfig::new(vec![2048, 1024, 512, 256, 128, 64])
        .with_mode(SpectralLossMode::L1)
        .with_log_form(SpectralLogForm::SafeLog)
        .init(&device);
    let target_spec = metric.target_spectrograms(target);
    let mut optim = AdamConfig::new().init();
    let mut first = None;
    let mut last = f32::MAX;
    for step in 0..600 {
        let out = model.forward(
            f0_t.clone(),
            ld_t.clone(),
            uv_t.clone(),
            None,
            1.0,
            step as u64,
        );
        let terms = metric.forward_with_target(out.audio.audio, &target_spec);
        let loss = terms.magnitude + terms.log_magnitude;
        last = to_vec(loss.clone())[0];
        first.get_or_insert(last);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(2e-3, model, grads);
    }
    let first = first.unwrap();
    let recovered = to_vec(
        model
            .valid()
            .forward(f0_t.inner(), ld_t.inner(), uv_t.inner(), None, 1.0, 0)
            .controls
            .distribution,
    );
    let mut cos_sum = 0.0;
    for t in 0..2 * frames {
        let a = &dist[t * k..(t + 1) * k];
        let b = &recovered[t * k..(t + 1) * k];
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
        cos_sum += dot / (na * nb).max(1e-12);
    }
    let cos = cos_sum / (2 * frames) as f32;
    eprintln!("synthetic recovery: loss {first:.3} -> {last:.3}, cosine similarity {cos:.3}");
    assert!(last < 0.1 * first, "loss fell only from {first} to {last}");
    assert!(cos >= 0.9, "recovered distribution cosine similarity {cos}");
}
