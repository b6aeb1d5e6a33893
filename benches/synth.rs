//! Forward + backward of the full synth (harmonic + filtered noise + FIR reverb).

mod common;

use burn::tensor::{Device, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};
use ddsp::config::{AmpResample, ReverbMode};
use ddsp::dsp::{from_vec, to_vec};
use ddsp::synth::{FilteredNoiseConfig, HarmonicConfig, ReverbConfig, SynthConfig, SynthControls};

struct Shape {
    name: &'static str,
    batch: usize,
    frames: usize,
    hop: usize,
    harmonics: usize,
    bands: usize,
    reverb: usize,
}

const SMALL: Shape = Shape {
    name: "small",
    batch: 2,
    frames: 250,
    hop: 64,
    harmonics: 60,
    bands: 65,
    reverb: 4000,
};
const PAPER: Shape = Shape {
    name: "paper",
    batch: 16,
    frames: 1000,
    hop: 64,
    harmonics: 60,
    bands: 65,
    reverb: 48000,
};

fn step(device: &Device, s: &Shape) -> f32 {
    let (b, f, k, m) = (s.batch, s.frames, s.harmonics, s.bands);
    let harmonic = HarmonicConfig::new(16000.0, s.hop).with_amp_resample(AmpResample::Window);
    let synth = SynthConfig::new(harmonic)
        .with_noise(Some(FilteredNoiseConfig::new(s.hop).with_bands(m)))
        .with_reverb(Some(ReverbConfig::new(s.reverb).with_mode(ReverbMode::Fir)))
        .init(device);
    let leaf = |v: Vec<f32>, shape: [usize; 3]| from_vec(v, shape, device).require_grad();
    let amp = leaf(common::values(b * f, 1, 0.0, 0.5), [b, f, 1]);
    let dist = leaf(common::values(b * f * k, 2, 0.0, 1.0), [b, f, k]);
    let noise = leaf(common::values(b * f * m, 3, 0.0, 0.01), [b, f, m]);
    let controls = SynthControls {
        f0_hz: from_vec(common::values(b * f, 4, 100.0, 800.0), [b, f], device),
        amplitude: amp.clone().reshape([b, f]),
        distribution: dist.clone(),
        noise_magnitudes: Some(noise),
    };
    let out = synth.forward(controls, 0).audio;
    let loss: Tensor<1> = out.powf_scalar(2.0).mean().reshape([1]);
    let grads = loss.backward();
    to_vec(dist.grad(&grads).expect("grad").sum())[0]
}

fn bench(c: &mut Criterion) {
    let shapes = [(SMALL.name, SMALL), (PAPER.name, PAPER)];
    common::bench_small_and_paper(c, "synth_fwd_bwd", shapes, step);
}

criterion_group!(benches, bench);
criterion_main!(benches);
