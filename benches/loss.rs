//! Forward + backward of the 6-scale spectral loss (magnitude + log-magnitude).

mod common;

use burn::tensor::Device;
use criterion::{Criterion, criterion_group, criterion_main};
use ddsp::config::SpectralLossMode;
use ddsp::dsp::{from_vec, to_vec};
use ddsp::loss::SpectralLossConfig;

fn step(device: &Device, &(batch, samples): &(usize, usize)) -> f32 {
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
    let shapes = [("4x16000", (4, 16000)), ("16x64000", (16, 64000))];
    common::bench_small_and_paper(c, "spectral_loss_fwd_bwd", shapes, step);
}

criterion_group!(benches, bench);
criterion_main!(benches);
