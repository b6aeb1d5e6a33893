use super::*;
use crate::config::{ControlSmoothing, HarmonicHeadMode, SmoothingTarget};
use crate::dsp::{from_vec, to_vec};
use crate::synth::{
    FilteredNoiseConfig, HarmonicConfig, NoiseScaling, SmoothingConfig, SynthConfig, SynthControls,
};
use crate::testing::{flex_ad, rand_vec};
use burn::module::{ModuleVisitor, Param};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::Device;

const BACKBONES: [DecoderBackbone; 4] = [
    DecoderBackbone::Mlp,
    DecoderBackbone::MicroRnn,
    DecoderBackbone::Gru,
    DecoderBackbone::Transformer,
];
const MODES: [HarmonicHeadMode; 4] = [
    HarmonicHeadMode::ExpSigmoid,
    HarmonicHeadMode::Legacy,
    HarmonicHeadMode::Normalized,
    HarmonicHeadMode::SoftmaxDb,
];

/// The synth scaling a small decoder's raw outputs: 9-band exp-sigmoid noise in the paper's
/// mode, else a sigmoid gain times 5 filter bands (6 raw values).
fn synth(mode: HarmonicHeadMode, smoothing: SmoothingConfig) -> SynthConfig {
    let noise = match mode {
        HarmonicHeadMode::ExpSigmoid => FilteredNoiseConfig::new(64).with_bands(9),
        _ => FilteredNoiseConfig::new(64)
            .with_bands(5)
            .with_scaling(NoiseScaling::SigmoidGain),
    };
    let harmonic = HarmonicConfig::new(16000.0, 64)
        .with_scaling(mode)
        .with_softmax_amp_floor(0.1);
    SynthConfig::new(harmonic)
        .with_noise(Some(noise))
        .with_smoothing(smoothing)
}

fn small(backbone: DecoderBackbone, noise_outputs: usize) -> DecoderConfig {
    let d_in = input_features(true);
    let config = match backbone {
        DecoderBackbone::Mlp => BackboneConfig::Mlp(MlpConfig::new(d_in, 16).with_layers(2)),
        DecoderBackbone::MicroRnn => BackboneConfig::MicroRnn(
            MicroRnnConfig::new(MlpConfig::new(d_in, 16).with_layers(2)).with_units(6),
        ),
        DecoderBackbone::Gru => BackboneConfig::Gru(RnnFcConfig::new(d_in, 8, 12, 1)),
        DecoderBackbone::Transformer => {
            BackboneConfig::Transformer(TransformerConfig::new(d_in, 8, 2, 2, 2, true, true))
        }
    };
    DecoderConfig::with_heads(config, true, 7, noise_outputs)
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

/// A decoder and the synth that scales its outputs, as the model composes them.
struct Pair {
    decoder: Decoder,
    synth: crate::synth::Synth,
}

impl Pair {
    fn new(backbone: DecoderBackbone, mode: HarmonicHeadMode, device: &Device) -> Self {
        Self::with_smoothing(backbone, mode, SmoothingConfig::new(), device)
    }

    fn with_smoothing(
        backbone: DecoderBackbone,
        mode: HarmonicHeadMode,
        smoothing: SmoothingConfig,
        device: &Device,
    ) -> Self {
        let synth = synth(mode, smoothing);
        Self {
            decoder: small(backbone, synth.raw_noise_channels()).init(device),
            synth: synth.init(device),
        }
    }

    fn controls(&self, x: &Inputs, temperature: f64) -> SynthControls {
        let raw = self
            .decoder
            .forward(x.f0.clone(), x.ld.clone(), x.uv.clone(), None);
        self.synth.get_controls(raw, x.f0.clone(), temperature)
    }
}

#[test]
fn raw_shapes_for_every_backbone() {
    let device = Device::flex();
    for backbone in BACKBONES {
        for noise in [9, 6] {
            let d = small(backbone, noise).init(&device);
            let x = inputs(2, 10, 1, &device);
            let raw = d.forward(x.f0, x.ld, x.uv, None);
            assert_eq!(raw.amplitude.dims(), [2, 10, 1], "{backbone:?}");
            assert_eq!(raw.distribution.dims(), [2, 10, 7]);
            assert_eq!(raw.noise.dims(), [2, 10, noise]);
        }
    }
}

#[test]
fn scaled_shapes_for_every_backbone_and_head_mode() {
    let device = Device::flex();
    for backbone in BACKBONES {
        for mode in MODES {
            let c = Pair::new(backbone, mode, &device).controls(&inputs(2, 10, 1, &device), 1.0);
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

/// Outputs at frames `< t0` with inputs changed only at frames `>= t0`.
fn prefix_unchanged(backbone: DecoderBackbone, smoothing: ControlSmoothing) -> bool {
    let device = Device::flex();
    let smoothing = SmoothingConfig::new()
        .with_mode(smoothing)
        .with_targets(vec![
            SmoothingTarget::HarmonicGain,
            SmoothingTarget::NoiseGain,
            SmoothingTarget::HarmonicDistribution,
        ]);
    let pair = Pair::with_smoothing(backbone, HarmonicHeadMode::ExpSigmoid, smoothing, &device);
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
    let ca = pair.controls(&a, 1.0);
    let spliced = Inputs {
        f0: splice(&a.f0, &b.f0),
        ld: splice(&a.ld, &b.ld),
        uv: splice(&a.uv, &b.uv),
    };
    let cb = pair.controls(&spliced, 1.0);
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
    let config = DecoderConfig::with_heads(
        BackboneConfig::Transformer(TransformerConfig::new(
            input_features(true),
            8,
            2,
            2,
            2,
            false,
            true,
        )),
        true,
        7,
        9,
    );
    let d = config.init(&device);
    let a = inputs(1, 8, 21, &device);
    let mut f0 = to_vec(a.f0.clone());
    f0[7] += 300.0;
    let c1 = to_vec(
        d.forward(a.f0.clone(), a.ld.clone(), a.uv.clone(), None)
            .amplitude,
    );
    let c2 = to_vec(
        d.forward(from_vec(f0, [1, 8], &device), a.ld, a.uv, None)
            .amplitude,
    );
    assert_ne!(c1[0], c2[0]);
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

/// The micro-RNN equals its recursion computed here from its weights in f64
/// (`z = sigmoid(Wz m + bz + Uz h)`, `h = z h + (1 - z) tanh(Wc m + bc + Uc h)` on the MLP's
/// output `m`), and its input gradients match finite differences.
#[test]
fn micro_rnn_follows_its_recursion_and_gradients() {
    let device = Device::flex();
    let (b, f, d_in, w, u) = (2, 9, 3, 5, 4);
    let micro = MicroRnnConfig::new(MlpConfig::new(d_in, w))
        .with_units(u)
        .init(&device);
    let x0 = rand_vec(b * f * d_in, 81, -1.0, 1.0);
    let x = from_vec(x0.clone(), [b, f, d_in], &device);
    let got = to_vec(micro.forward(x.clone()));
    let m = to_vec(micro.mlp.forward(x));
    let wi = to_vec(micro.input.weight.val());
    let bi = to_vec(micro.input.bias.as_ref().expect("a bias").val());
    let wh = to_vec(micro.hidden.weight.val());
    let mut expected = Vec::with_capacity(b * f * (w + u));
    for bi_ in 0..b {
        let mut h = vec![0.0f64; u];
        for t in 0..f {
            let row = &m[(bi_ * f + t) * w..][..w];
            let pre = |j: usize| {
                let from_m: f64 = (0..w)
                    .map(|i| row[i] as f64 * wi[i * 2 * u + j] as f64)
                    .sum();
                let from_h: f64 = (0..u).map(|i| h[i] * wh[i * 2 * u + j] as f64).sum();
                from_m + bi[j] as f64 + from_h
            };
            let next: Vec<f64> = (0..u)
                .map(|j| {
                    let z = 1.0 / (1.0 + (-pre(j)).exp());
                    z * h[j] + (1.0 - z) * pre(u + j).tanh()
                })
                .collect();
            h = next;
            expected.extend(row.iter().map(|&v| v as f64));
            expected.extend(h.iter().copied());
        }
    }
    crate::testing::assert_close(&got, &expected, 1e-5, "micro-RNN");
    let ad = flex_ad();
    let micro = MicroRnnConfig::new(MlpConfig::new(d_in, w))
        .with_units(u)
        .init(&ad);
    let weights = from_vec(rand_vec(b * f * (w + u), 82, -1.0, 1.0), [b, f, w + u], &ad);
    let indices: Vec<usize> = (0..b * f * d_in).step_by(4).collect();
    crate::testing::check_gradient(
        |x: Tensor<3>| (micro.forward(x) * weights.clone()).sum(),
        &x0,
        [b, f, d_in],
        &indices,
        1e-2,
        2e-3,
    );
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

/// The fused recurrence (flex) against the same maths from tensor ops, at a small shape and
/// at one large enough for its threaded paths: states, last state and every gradient.
#[test]
fn fused_gru_equals_composed_ops_forward_and_gradients() {
    let device = flex_ad();
    for (b, f, d_in, h) in [(2, 11, 3, 4), (8, 5, 7, 512)] {
        let gru = FastGruConfig::new(d_in, h).init(&device);
        let x = from_vec(rand_vec(b * f * d_in, 51, -1.0, 1.0), [b, f, d_in], &device);
        let h0 = from_vec(rand_vec(b * h, 52, -0.5, 0.5), [b, h], &device);
        // The fused operation is what flex runs, with and without autodiff.
        for device in [device.clone(), Device::flex()] {
            let fused = super::fused_gru::recurrence(
                Tensor::zeros([b, f, 3 * h], &device),
                Tensor::zeros([h, 3 * h], &device),
                Tensor::zeros([3 * h], &device),
                Tensor::zeros([b, h], &device),
            );
            assert!(fused.is_some());
        }
        let w = from_vec(rand_vec(b * f * h, 53, -1.0, 1.0), [b, f, h], &device);
        let w_last = from_vec(rand_vec(b * h, 54, -1.0, 1.0), [b, h], &device);
        let run = |fused: bool| {
            let (x, h0) = (x.clone().require_grad(), h0.clone().require_grad());
            let (states, last) = if fused {
                gru.forward_from(x.clone(), Some(h0.clone()))
            } else {
                gru.composed_recurrence(gru.input.forward(x.clone()), h0.clone())
            };
            let loss = (states.clone() * w.clone()).sum() + (last.clone() * w_last.clone()).sum();
            let grads = loss.backward();
            let grad = |t: Tensor<2>| to_vec(t.grad(&grads).unwrap());
            let grad1 = |t: Tensor<1>| to_vec(t.grad(&grads).unwrap());
            vec![
                ("states", to_vec(states)),
                ("last", to_vec(last)),
                ("d x", to_vec(x.grad(&grads).unwrap())),
                ("d h0", grad(h0)),
                ("d input weight", grad(gru.input.weight.val())),
                (
                    "d input bias",
                    grad1(gru.input.bias.as_ref().unwrap().val()),
                ),
                ("d hidden weight", grad(gru.hidden.weight.val())),
                (
                    "d hidden bias",
                    grad1(gru.hidden.bias.as_ref().unwrap().val()),
                ),
            ]
        };
        for ((what, fused), (_, composed)) in run(true).into_iter().zip(run(false)) {
            let reference: Vec<f64> = composed.iter().map(|&v| v as f64).collect();
            crate::testing::assert_close(&fused, &reference, 1e-5, &format!("{what} at h {h}"));
        }
    }
}

#[test]
fn fused_gru_state_and_weight_gradients_match_finite_differences() {
    let device = flex_ad();
    let (b, f, d_in, h) = (2, 7, 3, 4);
    let gru = FastGruConfig::new(d_in, h).init(&device);
    let x = from_vec(rand_vec(b * f * d_in, 61, -1.0, 1.0), [b, f, d_in], &device);
    let w = from_vec(rand_vec(b * f * h, 62, -1.0, 1.0), [b, f, h], &device);
    let h0 = rand_vec(b * h, 63, -0.8, 0.8);
    crate::testing::check_gradient(
        |h0: Tensor<2>| (gru.forward_from(x.clone(), Some(h0)).0 * w.clone()).sum(),
        &h0,
        [b, h],
        &(0..b * h).collect::<Vec<_>>(),
        1e-2,
        2e-3,
    );
    let u0 = to_vec(gru.hidden.weight.val());
    let h0 = from_vec(h0, [b, h], &device);
    crate::testing::check_gradient(
        |u: Tensor<2>| {
            let mut g = gru.clone();
            g.hidden.weight = Param::from_tensor(u);
            (g.forward_from(x.clone(), Some(h0.clone())).0 * w.clone()).sum()
        },
        &u0,
        [h, 3 * h],
        &(0..h * 3 * h).step_by(5).collect::<Vec<_>>(),
        1e-2,
        2e-3,
    );
    let c0 = to_vec(gru.hidden.bias.as_ref().unwrap().val());
    crate::testing::check_gradient(
        |c: Tensor<1>| {
            let mut g = gru.clone();
            g.hidden.bias = Some(Param::from_tensor(c));
            (g.forward_from(x.clone(), Some(h0.clone())).0 * w.clone()).sum()
        },
        &c0,
        [3 * h],
        &(0..3 * h).collect::<Vec<_>>(),
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
            let pair = Pair::new(backbone, mode, &device);
            let c = pair.controls(&inputs(2, 12, 51, &device), 1.0);
            let w = |n: usize, s: u64| from_vec(rand_vec(n, s, -1.0, 1.0), [n], &device);
            let noise = c.noise_magnitudes.unwrap().flatten::<1>(0, 2);
            let n_noise = noise.dims()[0];
            let loss = (c.amplitude.reshape([24]) * w(24, 1)).sum()
                + (c.distribution.reshape([24 * 7]) * w(168, 2)).sum()
                + (noise * w(n_noise, 3)).sum();
            let grads = loss.backward();
            let mut check = GradCheck {
                grads: &grads,
                params: 0,
                without: Vec::new(),
            };
            pair.decoder.visit(&mut check);
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
        let mut pair = Pair::new(backbone, HarmonicHeadMode::ExpSigmoid, &device);
        let mut optim = AdamConfig::new().init();
        let x = inputs(2, 12, 61, &device);
        let target = from_vec(rand_vec(2 * 12 * 7, 62, 0.0, 0.3), [2, 12, 7], &device);
        for step in 0..200 {
            let c = pair.controls(&x, 1.0);
            let harmonic = c.distribution * c.amplitude.unsqueeze_dim::<3>(2);
            let loss = (harmonic - target.clone()).powf_scalar(2.0).mean();
            let value = to_vec(loss.clone())[0];
            assert!(
                value.is_finite(),
                "{backbone:?}: loss {value} at step {step}"
            );
            let grads = GradientsParams::from_grads(loss.backward(), &pair.decoder);
            pair.decoder = optim.step(1e-2, pair.decoder, grads);
        }
    }
}

#[test]
fn decoding_in_pieces_equals_one_pass() {
    let device = Device::flex();
    let f = 40;
    let x = inputs(2, f, 71, &device);
    let cut = |t: &Tensor<2>, a: usize, c: usize| t.clone().slice([0..2, a..c]);
    for backbone in BACKBONES {
        // The transformer attends within windows of 16 frames: pieces straddle windows.
        let mut config = small(backbone, 9);
        if let BackboneConfig::Transformer(t) = &mut config.backbone {
            t.context = 16;
        }
        let d = config.init(&device);
        let whole = d.forward_continued(
            x.f0.clone(),
            x.ld.clone(),
            x.uv.clone(),
            None,
            &mut DecoderState::default(),
        );
        if backbone != DecoderBackbone::Transformer {
            let plain = d.forward(x.f0.clone(), x.ld.clone(), x.uv.clone(), None);
            assert_eq!(
                to_vec(plain.distribution),
                to_vec(whole.distribution.clone())
            );
        }
        let mut state = DecoderState::default();
        let mut parts = Vec::new();
        for w in [0usize, 1, 15, 17, 33, f].windows(2) {
            let (a, c) = (w[0], w[1]);
            let raw = d.forward_continued(
                cut(&x.f0, a, c),
                cut(&x.ld, a, c),
                cut(&x.uv, a, c),
                None,
                &mut state,
            );
            parts.push(raw.distribution);
        }
        let pieced = to_vec(Tensor::cat(parts, 1));
        let one = to_vec(whole.distribution);
        let worst = pieced
            .iter()
            .zip(&one)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-5, "{backbone:?}: pieces differ by {worst}");
    }
}

/// The fused LayerNorm + leaky ReLU (flex) against Burn's LayerNorm and leaky ReLU: output and
/// the gradients of x, gamma and beta, with random gamma and beta so that rows cross 0, at a
/// width and row count that span several parallel tasks and a partial last task.
#[test]
fn fused_norm_leaky_relu_equals_burn_layer_norm_and_leaky_relu() {
    use burn::nn::LayerNormConfig;
    use burn::tensor::activation::leaky_relu;
    let device = flex_ad();
    let (b, f, d) = (3, 50, 40);
    for dev in [device.clone(), Device::flex()] {
        let zeros = |n| Tensor::<1>::zeros([n], &dev);
        let fused = super::fused_norm::norm_leaky_relu(
            Tensor::zeros([1, 2, 3], &dev),
            zeros(3),
            zeros(3),
            1e-5,
            0.2,
        );
        assert!(fused.is_some());
    }
    let x = from_vec(rand_vec(b * f * d, 71, -3.0, 2.0), [b, f, d], &device);
    let w = from_vec(rand_vec(b * f * d, 72, -1.0, 1.0), [b, f, d], &device);
    let mut norm = LayerNormConfig::new(d).with_epsilon(1e-3).init(&device);
    norm.gamma = Param::from_tensor(from_vec(rand_vec(d, 73, 0.5, 1.5), [d], &device));
    norm.beta = Some(Param::from_tensor(from_vec(
        rand_vec(d, 74, -0.5, 0.5),
        [d],
        &device,
    )));
    let run = |fused: bool| {
        let x = x.clone().require_grad();
        let (gamma, beta) = (
            norm.gamma.val().require_grad(),
            norm.beta.as_ref().unwrap().val().require_grad(),
        );
        let y = if fused {
            super::fused_norm::norm_leaky_relu(x.clone(), gamma.clone(), beta.clone(), 1e-3, 0.2)
                .unwrap()
        } else {
            let mut n = norm.clone();
            n.gamma = Param::from_tensor(gamma.clone());
            n.beta = Some(Param::from_tensor(beta.clone()));
            leaky_relu(n.forward(x.clone()), 0.2)
        };
        let grads = (y.clone() * w.clone()).sum().backward();
        vec![
            ("y", to_vec(y)),
            ("d x", to_vec(x.grad(&grads).unwrap())),
            ("d gamma", to_vec(gamma.grad(&grads).unwrap())),
            ("d beta", to_vec(beta.grad(&grads).unwrap())),
        ]
    };
    for ((what, fused), (_, composed)) in run(true).into_iter().zip(run(false)) {
        let reference: Vec<f64> = composed.iter().map(|&v| v as f64).collect();
        assert!(
            reference.iter().any(|v| *v < 0.0) && reference.iter().any(|v| *v > 0.0),
            "{what}: one-signed"
        );
        crate::testing::assert_close(&fused, &reference, 1e-5, what);
    }
}

/// The host decoder, fed pieces of frames of several sizes, equals the tensor decoder on all
/// frames at once: GRU trunks with and without FC stacks, the MLP, with and without delta
/// features; after `reset` it starts over. The transformer has no frame-by-frame form.
#[test]
fn frame_decoder_in_pieces_equals_the_tensor_decoder() {
    let device = Device::flex();
    let f = 23;
    let mut f0 = rand_vec(f, 121, 60.0, 900.0);
    f0[4] = 0.0;
    let ld = rand_vec(f, 122, -90.0, -5.0);
    let uv = rand_vec(f, 123, 0.0, 1.0);
    for delta in [true, false] {
        let d_in = input_features(delta);
        let backbones = [
            BackboneConfig::Gru(RnnFcConfig::new(d_in, 8, 12, 2)),
            BackboneConfig::Gru(RnnFcConfig::new(d_in, 8, 12, 0)),
            BackboneConfig::Mlp(MlpConfig::new(d_in, 16).with_layers(3)),
            BackboneConfig::MicroRnn(
                MicroRnnConfig::new(MlpConfig::new(d_in, 12).with_layers(2)).with_units(5),
            ),
        ];
        for backbone in backbones {
            let what = format!("{:?} delta {delta}", backbone.kind());
            let decoder = DecoderConfig::with_heads(backbone, delta, 7, 5).init(&device);
            let raw = decoder.forward(
                from_vec(f0.clone(), [1, f], &device),
                from_vec(ld.clone(), [1, f], &device),
                from_vec(uv.clone(), [1, f], &device),
                None,
            );
            let expected = [raw.amplitude, raw.distribution, raw.noise].map(to_vec);
            let mut host = FrameDecoder::new(&decoder, 10).expect("frame by frame");
            let mut out = host.output();
            for round in 0..2 {
                let mut got = [Vec::new(), Vec::new(), Vec::new()];
                let mut start = 0;
                for len in [5, 1, 10, 7] {
                    let r = start..start + len;
                    host.decode(&f0[r.clone()], &ld[r.clone()], &uv[r], &mut out);
                    assert_eq!(out.frames, len);
                    got[0].extend_from_slice(&out.amplitude[..len]);
                    got[1].extend_from_slice(&out.distribution[..len * 7]);
                    got[2].extend_from_slice(&out.noise[..len * 5]);
                    start += len;
                }
                for (name, (g, e)) in ["amplitude", "distribution", "noise"]
                    .iter()
                    .zip(got.iter().zip(&expected))
                {
                    let reference: Vec<f64> = e.iter().map(|&v| v as f64).collect();
                    crate::testing::assert_close(
                        g,
                        &reference,
                        1e-5,
                        &format!("{what} {name} round {round}"),
                    );
                }
                host.reset();
            }
        }
    }
    let transformer = small(DecoderBackbone::Transformer, 5).init(&device);
    assert!(FrameDecoder::new(&transformer, 4).is_none());
}

/// The decoders with a z-encoder (every frame-wise or recurrent backbone): the latent is part
/// of the backbone's input (the GRU decoder gives it a stack of its own), the encoder's state
/// carries across pieces like the backbone's, MFCCs change the controls, and no MFCCs means
/// the MFCCs of silence.
#[test]
fn a_decoder_with_a_z_encoder_continues_across_pieces_and_hears_silence_without_mfccs() {
    let device = Device::flex();
    let (b, f, m, z) = (2, 24, 6, 3);
    let d_in = input_features(false);
    for backbone in [
        BackboneConfig::Mlp(MlpConfig::new(d_in + z, 16).with_layers(2)),
        BackboneConfig::MicroRnn(
            MicroRnnConfig::new(MlpConfig::new(d_in + z, 16).with_layers(1)).with_units(5),
        ),
        BackboneConfig::Gru(RnnFcConfig::new(d_in, 8, 12, 1).with_z_dims(z)),
        BackboneConfig::Gru(RnnFcConfig::new(d_in, 8, 12, 0).with_z_dims(z)),
    ] {
        let what = format!("{:?}", backbone.kind());
        let d = DecoderConfig::with_heads(backbone, false, 7, 5)
            .with_encoder(Some(ZEncoderConfig::new(m, 4, z)))
            .init(&device);
        assert!(d.has_encoder());
        if let Backbone::Gru(g) = &d.backbone {
            assert_eq!(g.stacks.len(), d_in + 1, "one stack for z");
            assert_eq!(g.stacks[d_in].d_input(), z);
        }
        let x = inputs(b, f, 7, &device);
        let mfcc = from_vec(rand_vec(b * f * m, 8, -20.0, 5.0), [b, f, m], &device);
        let whole = d.forward(x.f0.clone(), x.ld.clone(), x.uv.clone(), Some(mfcc.clone()));
        assert_eq!(whole.distribution.dims(), [b, f, 7], "{what}");
        let mut state = DecoderState::default();
        let mut parts = Vec::new();
        for w in [0usize, 5, 6, 17, f].windows(2) {
            let (a, c) = (w[0], w[1]);
            let cut2 = |t: &Tensor<2>| t.clone().slice([0..b, a..c]);
            let raw = d.forward_continued(
                cut2(&x.f0),
                cut2(&x.ld),
                cut2(&x.uv),
                Some(mfcc.clone().slice([0..b, a..c, 0..m])),
                &mut state,
            );
            parts.push(raw.distribution);
        }
        let (one, pieces) = (
            to_vec(whole.distribution.clone()),
            to_vec(Tensor::cat(parts, 1)),
        );
        for (i, (p, q)) in one.iter().zip(&pieces).enumerate() {
            assert!((p - q).abs() < 1e-5, "{what} value {i}: {p} vs {q}");
        }
        let silent = from_vec(
            crate::features::mfcc::silence(m).repeat(b * f),
            [b, f, m],
            &device,
        );
        let (without, with_silence) = (
            d.forward(x.f0.clone(), x.ld.clone(), x.uv.clone(), None),
            d.forward(x.f0.clone(), x.ld.clone(), x.uv.clone(), Some(silent)),
        );
        assert_eq!(
            to_vec(without.distribution.clone()),
            to_vec(with_silence.distribution)
        );
        assert_ne!(
            to_vec(without.distribution),
            one,
            "{what}: the MFCCs matter"
        );
    }
}
