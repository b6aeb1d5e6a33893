//! The stream against the offline model.

use super::*;
use crate::Config;
use crate::dsp::{from_vec, to_vec};
use crate::testing::rand_vec;
use burn::tensor::Device;

fn model() -> (DdspModel, Config) {
    let config = Config::from_sources(
        Some(std::path::Path::new("configs/tiny.json")),
        &[("reverb-length", "300"), ("control-smoothing", "onepole")],
    )
    .expect("tiny preset");
    (DdspModel::new(&config, &Device::flex()), config)
}

fn frames(f: usize) -> Vec<FrameIn> {
    let f0 = rand_vec(f, 151, 90.0, 900.0);
    let ld = rand_vec(f, 152, -70.0, -10.0);
    let uv = rand_vec(f, 153, 0.0, 1.0);
    (0..f)
        .map(|i| FrameIn {
            f0_hz: if i == 7 { 0.0 } else { f0[i] },
            loudness_db: ld[i],
            voicing: uv[i],
        })
        .collect()
}

/// Fed the same frames, the stream's blocks of 64, 256, 1024 and 4096 samples, concatenated,
/// equal the offline forward pass on all the frames (the bar: 1e-3 max abs error;
/// asserted much tighter).
#[test]
fn streamed_blocks_equal_the_offline_render() {
    let (model, config) = model();
    let device = Device::flex();
    let input = frames(45);
    let f = input.len();
    let (temperature, seed) = (config.temperature().at(0), 3);
    let t = |get: fn(&FrameIn) -> f32| from_vec(input.iter().map(get).collect(), [1, f], &device);
    let offline = to_vec(
        model
            .forward(
                t(|x| x.f0_hz),
                t(|x| x.loudness_db),
                t(|x| x.voicing),
                temperature,
                seed,
            )
            .audio
            .audio,
    );
    let peak = offline.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(peak > 1e-3, "the offline render is silent ({peak})");
    for block in [64, 256, 1024, 4096] {
        let mut stream = FrameStream::new(&model, temperature, seed, block).unwrap();
        for round in 0..2 {
            let mut source = input.clone().into_iter();
            let mut out = vec![0.0f32; block];
            let mut got = Vec::new();
            loop {
                let n = stream.process(&mut source, &mut out);
                got.extend_from_slice(&out[..n]);
                if n < block {
                    break;
                }
            }
            assert_eq!(got.len(), offline.len(), "block {block}");
            let worst = got
                .iter()
                .zip(&offline)
                .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                worst < 1e-5 * peak.max(1.0),
                "block {block} round {round}: max abs error {worst}"
            );
            stream.reset();
        }
    }
}

/// Non-finite frames play as silence and the stream carries on: every block stays finite,
/// and clean frames afterwards sound again.
#[test]
fn non_finite_frames_do_not_poison_the_stream() {
    let (model, config) = model();
    let mut stream = FrameStream::new(&model, config.temperature().at(0), 0, 256).unwrap();
    let mut input = frames(40);
    for (i, v) in [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        1e30,
        -1e30,
        f32::MIN_POSITIVE / 4.0,
    ]
    .into_iter()
    .enumerate()
    {
        input[5 + i].f0_hz = v;
        input[12 + i].loudness_db = v;
        input[20 + i].voicing = v;
    }
    let mut source = input.into_iter();
    let mut out = vec![0.0f32; 256];
    let mut last_peak = 0.0f32;
    loop {
        let n = stream.process(&mut source, &mut out);
        assert!(out.iter().all(|v| v.is_finite()));
        if n > 0 {
            last_peak = out[..n].iter().fold(0.0, |m, v| m.max(v.abs()));
        }
        if n < 256 {
            break;
        }
    }
    assert!(last_peak > 0.0, "silent after the bad frames");
}
