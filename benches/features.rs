//! Feature extraction throughput (f0 + voicing + loudness) on one core and on all cores.

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ddsp::Config;

fn bench(c: &mut Criterion) {
    let seconds = 10usize;
    let sr = 16000usize;
    // A harmonic tone with vibrato plus a little noise: 10 s of audio.
    let noise = common::values(seconds * sr, 7, -0.01, 0.01);
    let audio: Vec<f32> = (0..seconds * sr)
        .map(|i| {
            let t = i as f64 / sr as f64;
            let f0 = 330.0 * (1.0 + 0.01 * (2.0 * std::f64::consts::PI * 5.0 * t).sin());
            let phase = 2.0 * std::f64::consts::PI * f0 * t;
            (0.4 * phase.sin() + 0.2 * (2.0 * phase).sin()) as f32 + noise[i]
        })
        .collect();
    let config = Config {
        max_f0: 2000.0,
        ..Config::default()
    };
    let mut group = c.benchmark_group("features");
    group.sample_size(10);
    group.throughput(Throughput::Elements(seconds as u64)); // "elements" = seconds of audio
    let features = config.feature_config();
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    group.bench_function("extract_10s/1-thread", |b| {
        b.iter(|| one.install(|| ddsp::features::extract(&audio, &features)))
    });
    group.bench_function("extract_10s/all-threads", |b| {
        b.iter(|| ddsp::features::extract(&audio, &features))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
