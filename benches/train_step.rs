//! One full training step (decoder, synth, 6-scale spectral loss, backward, global-norm clip,
//! Adam) at the two shapes of the PyTorch side-by-side (`benches/peer/`): GRU decoder with
//! 3-layer stacks, 60 harmonics, 65 noise bands, no reverb, linear amplitude upsampling.
//!
//! Ids `train_step/{tiny,paper}/{device}`; `benches/peer/compare.py` reads the median from
//! Criterion's `estimates.json`.

mod common;

use burn::tensor::Device;
use criterion::{Criterion, criterion_group, criterion_main};
use ddsp::Config;
use ddsp::data::Batch;
use ddsp::train::StepRunner;

/// The side-by-side shape: GRU width, batch size and seconds of 16 kHz audio per example.
struct Shape {
    rnn: usize,
    batch: usize,
    seconds: usize,
}

const TINY: Shape = Shape {
    rnn: 64,
    batch: 4,
    seconds: 1,
};
const PAPER: Shape = Shape {
    rnn: 512,
    batch: 16,
    seconds: 4,
};

/// The config both implementations train with at a shape.
fn config(s: &Shape) -> Config {
    let rnn = s.rnn.to_string();
    let batch = s.batch.to_string();
    let samples = (16000 * s.seconds).to_string();
    Config::from_sources(
        Some(std::path::Path::new("benches/peer/step_config.json")),
        &[
            ("rnn-channels", rnn.as_str()),
            ("batch-size", batch.as_str()),
            ("chunk-size", samples.as_str()),
            ("chunk-hop", samples.as_str()),
        ],
    )
    .expect("benches/peer/step_config.json is a valid config")
}

/// A batch of random but plausible features and target audio.
fn batch(config: &Config, device: &Device) -> Batch {
    let (b, n, f) = (
        config.batch_size,
        config.chunk_size,
        config.frames_per_chunk(),
    );
    Batch::from_host(
        common::values(b * n, 1, -0.5, 0.5),
        common::values(b * f, 2, 100.0, 1000.0),
        common::values(b * f, 3, -60.0, 0.0),
        common::values(b * f, 4, 0.0, 1.0),
        b,
        device,
    )
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("train_step");
    group.sample_size(10);
    for (name, device, gpu) in common::devices() {
        for (i, (shape_name, shape)) in [("tiny", TINY), ("paper", PAPER)].iter().enumerate() {
            if i == 1 && !common::run_paper_shape(name, gpu) {
                continue;
            }
            let config = config(shape);
            let ad = device.clone().autodiff();
            let data = batch(&config, &ad);
            let mut runner = StepRunner::new(&config, &ad);
            let mut step = 0;
            group.bench_function(format!("{shape_name}/{name}"), |bench| {
                bench.iter(|| {
                    step += 1;
                    runner.step([data.clone()], step, config.lr)
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
