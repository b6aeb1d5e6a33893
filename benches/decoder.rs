//! Forward + backward of the paper's GRU decoder trunk (`RnnFc`: FC stacks, GRU, FC stack).

mod common;

use burn::tensor::{Device, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};
use ddsp::decoder::RnnFcConfig;
use ddsp::dsp::{from_vec, to_vec};

struct Shape {
    name: &'static str,
    batch: usize,
    frames: usize,
    channels: usize,
}

const SMALL: Shape = Shape {
    name: "small",
    batch: 4,
    frames: 256,
    channels: 64,
};
const PAPER: Shape = Shape {
    name: "paper",
    batch: 16,
    frames: 1000,
    channels: 512,
};

fn step(device: &Device, s: &Shape) -> f32 {
    let (b, f) = (s.batch, s.frames);
    let trunk = RnnFcConfig::new(2, s.channels, s.channels, 3).init(device);
    let x = from_vec(common::values(b * f * 2, 1, -1.0, 1.0), [b, f, 2], device).require_grad();
    let out = trunk.forward(x.clone());
    let loss: Tensor<1> = out.powf_scalar(2.0).mean().reshape([1]);
    let grads = loss.backward();
    to_vec(x.grad(&grads).expect("grad").sum())[0]
}

fn bench(c: &mut Criterion) {
    let shapes = [(SMALL.name, SMALL), (PAPER.name, PAPER)];
    common::bench_small_and_paper(c, "gru_decoder_fwd_bwd", shapes, step);
}

criterion_group!(benches, bench);
criterion_main!(benches);
