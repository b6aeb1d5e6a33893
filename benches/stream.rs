//! Realtime rendering: one second of 16 kHz audio through `ddsp::stream::FrameStream` in
//! blocks of 256 samples on the calling thread, for the tiny and paper presets (randomly
//! initialised weights: the cost does not depend on their values). The real-time factor is
//! one second over the time per iteration.
//!
//! Ids `stream/{tiny,paper}/block256`.

use burn::tensor::Device;
use criterion::{Criterion, criterion_group, criterion_main};
use ddsp::Config;
use ddsp::model::DdspModel;
use ddsp::stream::{FrameIn, FrameStream};

const BLOCK: usize = 256;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("stream");
    group.sample_size(10);
    for preset in ["tiny", "paper"] {
        let path = format!("configs/{preset}.json");
        let no_overrides: &[(&str, &str)] = &[];
        let config = Config::from_sources(Some(std::path::Path::new(&path)), no_overrides)
            .expect("a bundled preset");
        let model = DdspModel::new(&config, &Device::flex());
        let mut stream = FrameStream::new(&model, 1.0, 0, BLOCK).expect("a GRU preset");
        let second = config.sample_rate as usize;
        let mut frames = (0..).map(|i| FrameIn {
            f0_hz: 110.0 * (1.0 + (i % 40) as f32 / 20.0),
            loudness_db: -25.0 - (i % 9) as f32,
            voicing: 1.0,
        });
        let mut out = vec![0.0f32; BLOCK];
        group.bench_function(format!("{preset}/block{BLOCK}"), |b| {
            b.iter(|| {
                for _ in 0..second / BLOCK {
                    stream.process(&mut frames, &mut out);
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
