//! Forward + backward of the 6-scale spectral loss (magnitude + log-magnitude).

mod common;

use burn::tensor::Device;
use criterion::{Criterion, criterion_group, criterion_main};
use ddsp::config::SpectralLossMode;
use ddsp::dsp::{from_vec, to_vec};
use ddsp::loss::SpectralLossConfig;

fn step(device: &Device, batch: usize, samples: usize) -> f32 {
    let loss = SpectralLossConfig::new(vec![2048, 1024, 512, 256, 128, 64])
        .with_mode(SpectralLossMode::L1)
        .init(device);
    let pred = from_vec(
        common::values(batch * samples, 1, -1.0, 1.0),
        [batch, samples],
        device,
    )
    .require_grad();
    let target = from_vec(
        common::values(batch * samples, 2, -1.0, 1.0),
        [batch, samples],
        device,
    );
    let terms = loss.forward(pred.clone(), target);
    let grads = (terms.magnitude + terms.log_magnitude).backward();
    to_vec(pred.grad(&grads).expect("grad").abs().sum())[0]
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("spectral_loss_fwd_bwd");
    group.sample_size(10);
    for (name, device, gpu) in common::devices() {
        let ad = device.autodiff();
        group.bench_function(format!("4x16000/{name}"), |b| {
            b.iter(|| step(&ad, 4, 16000))
        });
        if common::run_paper_shape(name, gpu) {
            group.bench_function(format!("16x64000/{name}"), |b| {
                b.iter(|| step(&ad, 16, 64000))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
