use super::*;
use crate::config::{ControlSmoothing, HarmonicHeadMode, SmoothingTarget};
use crate::dsp::{from_vec, to_vec};
use crate::testing::{flex_ad, rand_vec};
use burn::module::{ModuleVisitor, Param};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::Device;

const BACKBONES: [DecoderBackbone; 3] = [
    DecoderBackbone::Mlp,
    DecoderBackbone::Gru,
    DecoderBackbone::Transformer,
];
const MODES: [HarmonicHeadMode; 4] = [
    HarmonicHeadMode::ExpSigmoid,
    HarmonicHeadMode::Legacy,
    HarmonicHeadMode::Normalized,
    HarmonicHeadMode::SoftmaxDb,
];

fn small(backbone: DecoderBackbone, mode: HarmonicHeadMode) -> DecoderConfig {
    let heads = HeadsConfig::new(0, 7, mode)
        .with_noise_bands(9)
        .with_noise_filter(true)
        .with_noise_filter_size(5)
        .with_softmax_amp_floor(0.1);
    DecoderConfig::new(backbone, heads)
        .with_mlp_hidden(16)
        .with_mlp_layers(2)
        .with_layers_per_stack(1)
        .with_stack_channels(8)
        .with_rnn_channels(12)
        .with_d_model(8)
        .with_heads(2)
        .with_transformer_layers(2)
        .with_delta_features(true)
}

struct Inputs {
    f0: Tensor<2>,
    ld: Tensor<2>,
    uv: Tensor<2>,
}

fn inputs(b: usize, f: usize, seed: u64, device: &Device) -> Inputs {
    Inputs {
        f0: from_vec(rand_vec(b * f, seed, 100.0, 1500.0), [b, f], device),
        ld: from_vec(rand_vec(b * f, seed + 1, -70.0, -5.0), [b, f], device),
        uv: from_vec(rand_vec(b * f, seed + 2, 0.0, 1.0), [b, f], device),
    }
}

#[test]
fn shapes_for_every_backbone_and_head_mode() {
    let device = Device::flex();
    for backbone in BACKBONES {
        for mode in MODES {
            let d = small(backbone, mode).init(&device);
            let x = inputs(2, 10, 1, &device);
            let c = d.forward(x.f0, x.ld, x.uv, 1.0);
            assert_eq!(c.amplitude.dims(), [2, 10], "{backbone:?} {mode:?}");
            assert_eq!(c.distribution.dims(), [2, 10, 7]);
            let m = if mode == HarmonicHeadMode::ExpSigmoid {
                9
            } else {
                5
            };
            assert_eq!(c.noise_magnitudes.unwrap().dims(), [2, 10, m]);
        }
    }
}

#[test]
fn head_modes_follow_their_formulas() {
    let device = Device::flex();
    for mode in MODES {
        let d = small(DecoderBackbone::Mlp, mode).init(&device);
        let x = inputs(1, 30, 5, &device);
        let f0 = to_vec(x.f0.clone());
        let c = d.forward(x.f0, x.ld, x.uv, 0.7);
        let dist = to_vec(c.distribution);
        let amp = to_vec(c.amplitude);
        for (t, row) in dist.chunks(7).enumerate() {
            let sum: f32 = row.iter().sum();
            match mode {
                HarmonicHeadMode::ExpSigmoid => {
                    assert!((sum - 1.0).abs() < 1e-4);
                    for (k, v) in row.iter().enumerate() {
                        if (k + 1) as f32 * f0[t] >= 8000.0 {
                            assert_eq!(*v, 0.0);
                        }
                    }
                    assert!(amp[t] > 0.0 && amp[t] <= 2.0 + 1e-6);
                }
                HarmonicHeadMode::Legacy => {
                    assert!(row.iter().all(|v| *v > 0.0 && *v < 1.0 / 7.0));
                    assert!(amp[t] > 0.0 && amp[t] < 1.0);
                }
                HarmonicHeadMode::Normalized => assert!((sum - 1.0).abs() < 1e-4),
                HarmonicHeadMode::SoftmaxDb => {
                    assert!((sum - 1.0).abs() < 1e-4);
                    assert!(row.iter().all(|v| *v >= 0.1 / 7.0 - 1e-6), "amp floor");
                    let db = 20.0 * amp[t].log10();
                    assert!((-50.0 - 1e-3..=6.0 + 1e-3).contains(&db), "gain {db} dB");
                }
            }
        }
    }
}

/// Outputs at frames `< t0` with inputs changed only at frames `>= t0`.
fn prefix_unchanged(backbone: DecoderBackbone, smoothing: ControlSmoothing) -> bool {
    let device = Device::flex();
    let mut cfg = small(backbone, HarmonicHeadMode::ExpSigmoid);
    cfg.heads_config = cfg
        .heads_config
        .clone()
        .with_smoothing(smoothing)
        .with_smoothing_targets(vec![
            SmoothingTarget::HarmonicGain,
            SmoothingTarget::NoiseGain,
            SmoothingTarget::HarmonicDistribution,
        ]);
    let d = cfg.init(&device);
    let (f, t0) = (16, 9);
    let a = inputs(1, f, 11, &device);
    let b = inputs(1, f, 12, &device);
    let splice = |x: &Tensor<2>, y: &Tensor<2>| {
        Tensor::cat(
            vec![
                x.clone().slice([0..1, 0..t0]),
                y.clone().slice([0..1, t0..f]),
            ],
            1,
        )
    };
    let ca = d.forward(a.f0.clone(), a.ld.clone(), a.uv.clone(), 1.0);
    let cb = d.forward(
        splice(&a.f0, &b.f0),
        splice(&a.ld, &b.ld),
        splice(&a.uv, &b.uv),
        1.0,
    );
    let pa = to_vec(ca.distribution.slice([0..1, 0..t0, 0..7]));
    let pb = to_vec(cb.distribution.slice([0..1, 0..t0, 0..7]));
    let later_a = to_vec(ca.amplitude.slice([0..1, t0..f]));
    let later_b = to_vec(cb.amplitude.slice([0..1, t0..f]));
    assert_ne!(later_a, later_b, "later frames must react to the change");
    pa.iter().zip(&pb).all(|(x, y)| (x - y).abs() < 1e-6)
}

#[test]
fn gru_transformer_and_smoothing_are_causal() {
    for backbone in BACKBONES {
        for smoothing in [
            ControlSmoothing::Off,
            ControlSmoothing::Onepole,
            ControlSmoothing::Fir,
        ] {
            assert!(
                prefix_unchanged(backbone, smoothing),
                "{backbone:?} with {smoothing:?} smoothing leaks the future"
            );
        }
    }
}

#[test]
fn non_causal_transformer_sees_the_future() {
    let device = Device::flex();
    let mut cfg = small(DecoderBackbone::Transformer, HarmonicHeadMode::ExpSigmoid);
    cfg.causal = false;
    let d = cfg.init(&device);
    let a = inputs(1, 8, 21, &device);
    let mut f0 = to_vec(a.f0.clone());
    f0[7] += 300.0;
    let c1 = to_vec(
        d.forward(a.f0.clone(), a.ld.clone(), a.uv.clone(), 1.0)
            .amplitude,
    );
    let c2 = to_vec(
        d.forward(from_vec(f0, [1, 8], &device), a.ld, a.uv, 1.0)
            .amplitude,
    );
    assert_ne!(c1[0], c2[0]);
}

#[test]
fn smoothing_kernels_match_their_recurrences() {
    let device = Device::flex();
    let x = rand_vec(40, 31, 0.0, 1.0);
    let t = from_vec(x.clone(), [1, 40, 1], &device);
    let fir = to_vec(causal_smooth(t.clone(), &[0.25; 4]));
    for i in 0..40usize {
        let expected: f32 = (0..4usize).map(|k| x[i.saturating_sub(k)]).sum::<f32>() / 4.0;
        assert!((fir[i] - expected).abs() < 1e-5);
    }
    // One-pole: y[t] = a y[t-1] + (1 - a) x[t], started from y[-1] = x[0].
    let heads = HeadsConfig::new(4, 3, HarmonicHeadMode::ExpSigmoid)
        .with_smoothing(ControlSmoothing::Onepole)
        .with_smoothing_alpha(0.5);
    let kernel = heads.init(&device).smoothing_kernel().to_vec();
    let y = to_vec(causal_smooth(t, &kernel));
    let mut state = x[0];
    for i in 0..40 {
        state = 0.5 * state + 0.5 * x[i];
        assert!(
            (y[i] - state).abs() < 2e-3,
            "frame {i}: {} vs {state}",
            y[i]
        );
    }
}

#[test]
fn fast_gru_matches_burn_gru_with_copied_weights() {
    use burn::nn::gru::GruConfig;
    let device = Device::flex();
    let (d_in, h) = (5, 6);
    let burn_gru = GruConfig::new(d_in, h, true).init(&device);
    let mut ours = FastGruConfig::new(d_in, h).init(&device);
    let gates = [
        &burn_gru.update_gate,
        &burn_gru.reset_gate,
        &burn_gru.new_gate,
    ];
    let cat_w = |f: &dyn Fn(&burn::nn::GateController) -> Tensor<2>| {
        Tensor::cat(gates.iter().map(|g| f(g)).collect(), 1)
    };
    let cat_b = |f: &dyn Fn(&burn::nn::GateController) -> Tensor<1>| {
        Tensor::cat(gates.iter().map(|g| f(g)).collect(), 0)
    };
    ours.input.weight = Param::from_tensor(cat_w(&|g| g.input_transform.weight.val()));
    ours.input.bias = Some(Param::from_tensor(cat_b(&|g| {
        g.input_transform.bias.as_ref().unwrap().val()
    })));
    ours.hidden.weight = Param::from_tensor(cat_w(&|g| g.hidden_transform.weight.val()));
    ours.hidden.bias = Some(Param::from_tensor(cat_b(&|g| {
        g.hidden_transform.bias.as_ref().unwrap().val()
    })));
    let x = from_vec(rand_vec(2 * 9 * d_in, 41, -1.0, 1.0), [2, 9, d_in], &device);
    let a = to_vec(burn_gru.forward(x.clone(), None));
    let b = to_vec(ours.forward(x));
    for (i, (p, q)) in a.iter().zip(&b).enumerate() {
        assert!((p - q).abs() < 1e-5, "element {i}: burn {p} vs ours {q}");
    }
}

#[test]
fn fast_gru_input_gradients_match_finite_differences() {
    // 11 frames: pieces of 3, 3, 3 and 2 frames at the first level of the slicing tree.
    let device = flex_ad();
    let (b, f, d_in, h) = (2, 11, 3, 4);
    let gru = FastGruConfig::new(d_in, h).init(&device);
    let weights = from_vec(rand_vec(b * f * h, 43, -1.0, 1.0), [b, f, h], &device);
    let x0 = rand_vec(b * f * d_in, 42, -1.0, 1.0);
    let indices: Vec<usize> = (0..b * f * d_in).step_by(5).collect();
    crate::testing::check_gradient(
        |x: Tensor<3>| (gru.forward(x) * weights.clone()).sum(),
        &x0,
        [b, f, d_in],
        &indices,
        1e-2,
        2e-3,
    );
}

struct GradCheck<'a> {
    grads: &'a burn::tensor::Gradients,
    params: usize,
    without: Vec<String>,
}

impl ModuleVisitor for GradCheck<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.params += 1;
        let nonzero = param
            .val()
            .grad(self.grads)
            .map(|g| to_vec(g.abs().sum()).first().copied().unwrap_or(0.0) > 0.0)
            .unwrap_or(false);
        if !nonzero {
            self.without
                .push(format!("{:?} {:?}", param.id, param.val().dims()));
        }
    }
}

#[test]
fn every_parameter_receives_a_gradient() {
    let device = flex_ad();
    for backbone in BACKBONES {
        for mode in MODES {
            let d = small(backbone, mode).init(&device);
            let x = inputs(2, 12, 51, &device);
            let c = d.forward(x.f0, x.ld, x.uv, 1.0);
            let w = |n: usize, s: u64| from_vec(rand_vec(n, s, -1.0, 1.0), [n], &device);
            let loss = (c.amplitude.reshape([24]) * w(24, 1)).sum()
                + (c.distribution.reshape([24 * 7]) * w(168, 2)).sum()
                + (c.noise_magnitudes.unwrap().flatten::<1>(0, 2)
                    * w(
                        24 * if mode == HarmonicHeadMode::ExpSigmoid {
                            9
                        } else {
                            5
                        },
                        3,
                    ))
                .sum();
            let grads = loss.backward();
            let mut check = GradCheck {
                grads: &grads,
                params: 0,
                without: Vec::new(),
            };
            d.visit(&mut check);
            assert!(check.params > 4);
            assert!(
                check.without.is_empty(),
                "{backbone:?}/{mode:?}: no gradient for {:?}",
                check.without
            );
        }
    }
}

#[test]
fn two_hundred_steps_stay_finite() {
    let device = flex_ad();
    for backbone in BACKBONES {
        let mut d = small(backbone, HarmonicHeadMode::ExpSigmoid).init(&device);
        let mut optim = AdamConfig::new().init();
        let x = inputs(2, 12, 61, &device);
        let target = from_vec(rand_vec(2 * 12 * 7, 62, 0.0, 0.3), [2, 12, 7], &device);
        for step in 0..200 {
            let c = d.forward(x.f0.clone(), x.ld.clone(), x.uv.clone(), 1.0);
            let harmonic = c.distribution * c.amplitude.unsqueeze_dim::<3>(2);
            let loss = (harmonic - target.clone()).powf_scalar(2.0).mean();
            let value = to_vec(loss.clone())[0];
            assert!(
                value.is_finite(),
                "{backbone:?}: loss {value} at step {step}"
            );
            let grads = GradientsParams::from_grads(loss.backward(), &d);
            d = optim.step(1e-2, d, grads);
        }
    }
}

#[test]
fn decoder_config_maps_the_global_config() {
    let c = crate::Config {
        decoder_backbone: DecoderBackbone::Gru,
        rnn_channels: 24,
        layers_per_stack: 0,
        harmonics: 5,
        ..crate::Config::default()
    };
    let d = DecoderConfig::from_config(&c).init(&Device::flex());
    assert_eq!(d.kind(), DecoderBackbone::Gru);
    match &d.backbone {
        Backbone::Gru(g) => assert_eq!(g.d_output(), 24 + 3, "tiny: GRU output + raw inputs"),
        _ => panic!("wrong backbone"),
    }
}
