//! A [`Decoder`] frame by frame on the host, allocation-free: the streaming engine's decoder.
//!
//! [`FrameDecoder`] copies a decoder's weights into host memory once and then decodes any
//! number of frames up to a bound fixed at construction, carrying the recurrent (GRU or micro-RNN) state and the delta
//! features' previous frame from call to call. Every buffer is allocated up front and the
//! products run on the calling thread. The row kernels are the ones the CPU backend's fused
//! operations run (LayerNorm + leaky ReLU, the GRU step), so offline and streamed decoding
//! share them.

use super::fused_gru::gru_row;
use super::fused_norm::norm_leaky_relu_row;
use super::gru::{FcStack, LAYER_NORM_EPSILON, LEAKY_SLOPE, RnnFc};
use super::{Backbone, Decoder, MicroRnn, Mlp, input_features};
use crate::dsp::host::{Mat, Packed, matmul_packed};
use crate::dsp::scalar::sigmoid;
use crate::dsp::{DB_RANGE, F0_RANGE, hz_to_midi_f64, to_vec};
use crate::synth::RawFrames;
use burn::nn::Linear;

/// A linear layer's weights on the host: `y = x W + b`, `W: [d_in, d_out]`, packed for
/// [`matmul_packed`] once here.
#[derive(Clone, Debug)]
struct HostLinear {
    weight: Packed,
    bias: Vec<f32>,
}

impl HostLinear {
    fn new(layer: &Linear) -> Self {
        let [d_in, d_out] = layer.weight.dims();
        Self {
            weight: Packed::new(&to_vec(layer.weight.val()), d_in, d_out),
            bias: layer
                .bias
                .as_ref()
                .map_or_else(|| vec![0.0; d_out], |b| to_vec(b.val())),
        }
    }

    fn d_in(&self) -> usize {
        self.weight.k()
    }

    fn d_out(&self) -> usize {
        self.weight.n()
    }

    /// Store the weights in half precision (kept in f32 if one is beyond f16's range).
    fn half_weights(&mut self) {
        if let Some(w) = self.weight.to_f16() {
            self.weight = w;
        }
    }

    /// `y[n, d_out] = x[n, d_in] W + b` (`y` contiguous rows; `x` rows contiguous in their
    /// columns, strided by `x.rs`).
    fn forward(&self, x: Mat, n: usize, y: &mut [f32]) {
        debug_assert_eq!(x.cs, 1);
        for row in y.chunks_mut(self.d_out()).take(n) {
            row.copy_from_slice(&self.bias);
        }
        matmul_packed(y, x.data, x.rs, &self.weight, n);
    }
}

/// An FC stack (Dense -> LayerNorm -> leaky ReLU per layer) on the host.
#[derive(Clone, Debug)]
struct HostStack {
    /// Each layer's dense weights, LayerNorm gamma and beta.
    layers: Vec<(HostLinear, Vec<f32>, Vec<f32>)>,
    d_input: usize,
}

impl HostStack {
    fn new(stack: &FcStack) -> Self {
        let layers = stack
            .dense
            .iter()
            .zip(&stack.norms)
            .map(|(d, n)| {
                let gamma = to_vec(n.gamma.val());
                let beta = n
                    .beta
                    .as_ref()
                    .map_or_else(|| vec![0.0; gamma.len()], |b| to_vec(b.val()));
                (HostLinear::new(d), gamma, beta)
            })
            .collect();
        Self {
            layers,
            d_input: stack.d_input(),
        }
    }

    fn d_output(&self) -> usize {
        self.layers.last().map_or(self.d_input, |l| l.0.d_out())
    }

    fn half_weights(&mut self) {
        self.layers.iter_mut().for_each(|l| l.0.half_weights());
    }

    /// `n` rows of `x` through the stack into `out` (`[n, d_output]`); `tmp` holds at least
    /// `n * d_output` values.
    fn forward(&self, x: Mat, n: usize, out: &mut [f32], tmp: &mut [f32]) {
        if self.layers.is_empty() {
            for r in 0..n {
                for c in 0..self.d_input {
                    out[r * self.d_input + c] = x.data[r * x.rs + c * x.cs];
                }
            }
            return;
        }
        let params = [LAYER_NORM_EPSILON as f32, LEAKY_SLOPE as f32];
        for (i, (dense, gamma, beta)) in self.layers.iter().enumerate() {
            let input = if i == 0 {
                x
            } else {
                Mat::rows(out, dense.d_in())
            };
            dense.forward(input, n, tmp);
            let width = dense.d_out();
            for (y, z) in out.chunks_mut(width).zip(tmp.chunks(width)).take(n) {
                norm_leaky_relu_row(z, gamma, beta, params, y);
            }
        }
    }
}

/// The paper's GRU trunk on the host, with its state and buffers.
#[derive(Clone, Debug)]
struct HostRnnFc {
    stacks: Vec<HostStack>,
    input: HostLinear,
    /// Hidden projection `[H, 3H]` and bias `[3H]`.
    hidden: HostLinear,
    out: HostStack,
    /// The GRU state `[H]`.
    state: Vec<f32>,
    /// Per frame: the stacks' outputs side by side, `[max, S]`.
    stacked: Vec<f32>,
    /// `S`.
    stacked_width: usize,
    /// The input projections, `[max, 3H]`.
    projected: Vec<f32>,
    /// GRU outputs then the stacks' outputs, the output stack's input: `[max, H + S]`.
    joined: Vec<f32>,
    /// One stack's output and the layers' scratch, `[max, widest]` each.
    part: Vec<f32>,
    tmp: Vec<f32>,
    /// `U h + c` and the gates of one step.
    hp: Vec<f32>,
    gates: Vec<f32>,
}

impl HostRnnFc {
    fn new(trunk: &RnnFc, max_frames: usize) -> Self {
        let stacks: Vec<HostStack> = trunk.stacks.iter().map(HostStack::new).collect();
        let s: usize = stacks.iter().map(HostStack::d_output).sum();
        let input = HostLinear::new(&trunk.gru.input);
        let hidden = HostLinear::new(&trunk.gru.hidden);
        let h = hidden.d_in();
        let out = HostStack::new(&trunk.out);
        let widest = stacks
            .iter()
            .chain([&out])
            .flat_map(|st| st.layers.iter().map(|l| l.0.d_out()))
            .chain([h + s])
            .max()
            .unwrap_or(1);
        Self {
            stacks,
            input,
            hidden,
            out,
            state: vec![0.0; h],
            stacked: vec![0.0; max_frames * s],
            stacked_width: s,
            projected: vec![0.0; max_frames * 3 * h],
            joined: vec![0.0; max_frames * (h + s)],
            part: vec![0.0; max_frames * widest],
            tmp: vec![0.0; max_frames * widest],
            hp: vec![0.0; 3 * h],
            gates: vec![0.0; 4 * h],
        }
    }

    fn d_output(&self) -> usize {
        self.out.d_output()
    }

    fn half_weights(&mut self) {
        self.stacks.iter_mut().for_each(HostStack::half_weights);
        self.input.half_weights();
        self.hidden.half_weights();
        self.out.half_weights();
    }

    /// `x: [n, d_in]` -> `y: [n, d_output]`, continuing the GRU state.
    fn forward(&mut self, x: &[f32], d_in: usize, n: usize, y: &mut [f32]) {
        let h = self.state.len();
        let s = self.stacked_width;
        // Each stack reads its own columns of the input (one per feature, more for a latent).
        let (mut col, mut at) = (0, 0);
        for stack in &self.stacks {
            let columns = Mat {
                data: &x[at..],
                rs: d_in,
                cs: 1,
            };
            at += stack.d_input;
            let w = stack.d_output();
            stack.forward(columns, n, &mut self.part, &mut self.tmp);
            for r in 0..n {
                self.stacked[r * s + col..][..w].copy_from_slice(&self.part[r * w..][..w]);
            }
            col += w;
        }
        self.input
            .forward(Mat::rows(&self.stacked, s), n, &mut self.projected);
        for r in 0..n {
            self.hidden
                .forward(Mat::rows(&self.state, h), 1, &mut self.hp);
            let x_r = &self.projected[r * 3 * h..][..3 * h];
            gru_row(x_r, &self.hp, &mut self.state, &mut self.gates);
            let joined = &mut self.joined[r * (h + s)..][..h + s];
            joined[..h].copy_from_slice(&self.state);
            joined[h..].copy_from_slice(&self.stacked[r * s..][..s]);
        }
        let joined = Mat::rows(&self.joined, h + s);
        self.out.forward(joined, n, y, &mut self.tmp);
    }
}

/// The frame-wise MLP trunk on the host: tanh layers, with a buffer to alternate with the
/// output.
#[derive(Clone, Debug)]
struct HostMlp {
    layers: Vec<HostLinear>,
    buffer: Vec<f32>,
}

impl HostMlp {
    fn new(mlp: &Mlp, max_frames: usize) -> Self {
        let layers: Vec<HostLinear> = mlp.layers.iter().map(HostLinear::new).collect();
        let widest = layers.iter().map(|l| l.d_out()).max().unwrap_or(1);
        Self {
            layers,
            buffer: vec![0.0; max_frames * widest],
        }
    }

    fn d_output(&self) -> usize {
        self.layers.last().map_or(0, |l| l.d_out())
    }

    fn half_weights(&mut self) {
        self.layers.iter_mut().for_each(HostLinear::half_weights);
    }

    /// `x: [n, d_in]` -> `y: [n, d_output]`.
    fn forward(&mut self, x: &[f32], d_in: usize, n: usize, y: &mut [f32]) {
        let mut width = d_in;
        for (i, layer) in self.layers.iter().enumerate() {
            let src: &[f32] = if i == 0 {
                x
            } else {
                self.buffer[..n * width].copy_from_slice(&y[..n * width]);
                &self.buffer
            };
            layer.forward(Mat::rows(src, width), n, y);
            width = layer.d_out();
            for v in &mut y[..n * width] {
                *v = v.tanh();
            }
        }
    }
}

/// The micro-RNN trunk on the host ([`super::MicroRnn`]), with its state and buffers.
#[derive(Clone, Debug)]
struct HostMicroRnn {
    mlp: HostMlp,
    /// `[Wz | Wc]`, `[bz | bc]` and `[Uz | Uc]` (no bias).
    input: HostLinear,
    hidden: HostLinear,
    /// The cell's state `[U]`.
    state: Vec<f32>,
    /// The MLP's outputs `[max, hidden]`, their projections `[max, 2U]`, and `U h` `[2U]`.
    trunk: Vec<f32>,
    projected: Vec<f32>,
    recurrent: Vec<f32>,
}

impl HostMicroRnn {
    fn new(micro: &MicroRnn, max_frames: usize) -> Self {
        let mlp = HostMlp::new(&micro.mlp, max_frames);
        let input = HostLinear::new(&micro.input);
        let hidden = HostLinear::new(&micro.hidden);
        let u = hidden.d_in();
        Self {
            trunk: vec![0.0; max_frames * mlp.d_output()],
            projected: vec![0.0; max_frames * 2 * u],
            recurrent: vec![0.0; 2 * u],
            state: vec![0.0; u],
            mlp,
            input,
            hidden,
        }
    }

    fn d_output(&self) -> usize {
        self.mlp.d_output() + self.state.len()
    }

    fn half_weights(&mut self) {
        self.mlp.half_weights();
        self.input.half_weights();
        self.hidden.half_weights();
    }

    /// `x: [n, d_in]` -> `y: [n, hidden + U]`, continuing the cell's state.
    fn forward(&mut self, x: &[f32], d_in: usize, n: usize, y: &mut [f32]) {
        let (w, u) = (self.mlp.d_output(), self.state.len());
        self.mlp.forward(x, d_in, n, &mut self.trunk);
        self.input
            .forward(Mat::rows(&self.trunk, w), n, &mut self.projected);
        for t in 0..n {
            self.hidden
                .forward(Mat::rows(&self.state, u), 1, &mut self.recurrent);
            let p = &self.projected[t * 2 * u..][..2 * u];
            for (j, h) in self.state.iter_mut().enumerate() {
                let z = sigmoid(p[j] + self.recurrent[j]);
                let c = (p[u + j] + self.recurrent[u + j]).tanh();
                *h = z * *h + (1.0 - z) * c;
            }
            let row = &mut y[t * (w + u)..][..w + u];
            row[..w].copy_from_slice(&self.trunk[t * w..][..w]);
            row[w..].copy_from_slice(&self.state);
        }
    }
}

/// The backbone on the host.
#[derive(Clone, Debug)]
enum HostBackbone {
    Mlp(HostMlp),
    MicroRnn(Box<HostMicroRnn>),
    Gru(Box<HostRnnFc>),
}

/// A [`Decoder`]'s maths on the host, frame by frame: see the module doc.
#[derive(Clone, Debug)]
pub struct FrameDecoder {
    backbone: HostBackbone,
    heads: [HostLinear; 3],
    delta_features: bool,
    max_frames: usize,
    /// Scaled f0 and loudness of the last frame decoded (for the deltas).
    previous: Option<[f32; 2]>,
    /// Decoder inputs `[max, d_in]` and backbone output `[max, d_out]`.
    inputs: Vec<f32>,
    features: Vec<f32>,
}

impl FrameDecoder {
    /// A host copy of `decoder` that decodes up to `max_frames` frames per call; `None` for
    /// the transformer backbone (it attends over a window of frames, not frame by frame) and
    /// for a decoder with a z-encoder (no host form of the encoder or of live MFCCs yet).
    pub fn new(decoder: &Decoder, max_frames: usize) -> Option<Self> {
        if decoder.has_encoder() {
            return None;
        }
        let max_frames = max_frames.max(1);
        let (backbone, d_out) = match &decoder.backbone {
            Backbone::Mlp(m) => {
                let mlp = HostMlp::new(m, max_frames);
                let d_out = mlp.d_output();
                (HostBackbone::Mlp(mlp), d_out)
            }
            Backbone::MicroRnn(m) => {
                let micro = HostMicroRnn::new(m, max_frames);
                let d_out = micro.d_output();
                (HostBackbone::MicroRnn(Box::new(micro)), d_out)
            }
            Backbone::Gru(g) => {
                let trunk = HostRnnFc::new(g, max_frames);
                let d_out = trunk.d_output();
                (HostBackbone::Gru(Box::new(trunk)), d_out)
            }
            Backbone::Transformer(_) => return None,
        };
        let heads = &decoder.heads;
        let delta_features = decoder.delta_features;
        Some(Self {
            backbone,
            heads: [
                HostLinear::new(&heads.amplitude),
                HostLinear::new(&heads.distribution),
                HostLinear::new(&heads.noise),
            ],
            delta_features,
            max_frames,
            previous: None,
            inputs: vec![0.0; max_frames * input_features(delta_features)],
            features: vec![0.0; max_frames * d_out.max(1)],
        })
    }

    /// This decoder with its weights stored in half precision (IEEE f16, rounded to nearest;
    /// a layer with a weight beyond f16's range stays f32): half the bytes to read per frame,
    /// which is what bounds the wide presets' speed, at the cost of rounding every weight to
    /// 11 significant bits (products and all other maths stay f32). The output then differs
    /// from the offline render by more than rounding (the README's realtime section gives
    /// the measured difference).
    pub fn with_half_weights(mut self) -> Self {
        match &mut self.backbone {
            HostBackbone::Mlp(m) => m.half_weights(),
            HostBackbone::MicroRnn(m) => m.half_weights(),
            HostBackbone::Gru(g) => g.half_weights(),
        }
        self.heads.iter_mut().for_each(HostLinear::half_weights);
        self
    }

    /// Most frames one [`Self::decode`] call takes.
    pub fn max_frames(&self) -> usize {
        self.max_frames
    }

    /// An output buffer for [`Self::decode`] (allocates; make it once).
    pub fn output(&self) -> RawFrames {
        RawFrames::new(
            self.max_frames,
            self.heads[1].d_out(),
            self.heads[2].d_out(),
        )
    }

    /// Forget the past: the recurrent state and the deltas' previous frame, as a fresh decoder.
    pub fn reset(&mut self) {
        self.previous = None;
        match &mut self.backbone {
            HostBackbone::Gru(g) => g.state.fill(0.0),
            HostBackbone::MicroRnn(m) => m.state.fill(0.0),
            HostBackbone::Mlp(_) => {}
        }
    }

    /// Decode the next frames (`f0_hz`, `loudness_db`, `voicing` of equal length, at most
    /// [`Self::max_frames`]) into `out`, continuing from the previous call exactly as
    /// [`Decoder::forward_continued`] does. Allocates nothing.
    pub fn decode(
        &mut self,
        f0_hz: &[f32],
        loudness_db: &[f32],
        voicing: &[f32],
        out: &mut RawFrames,
    ) {
        let n = f0_hz.len();
        assert!(
            n <= self.max_frames && loudness_db.len() == n && voicing.len() == n,
            "decode: {n} f0, {} loudness, {} voicing frames (at most {})",
            loudness_db.len(),
            voicing.len(),
            self.max_frames
        );
        let d_in = input_features(self.delta_features);
        for r in 0..n {
            let f0 = (hz_to_midi_f64(f0_hz[r] as f64) / F0_RANGE) as f32;
            let ld = (loudness_db[r] as f64 / DB_RANGE + 1.0) as f32;
            let row = &mut self.inputs[r * d_in..][..d_in];
            row[..3].copy_from_slice(&[f0, ld, voicing[r]]);
            if self.delta_features {
                let [f0_before, ld_before] = self.previous.unwrap_or([f0, ld]);
                row[3] = f0 - f0_before;
                row[4] = ld - ld_before;
            }
            self.previous = Some([f0, ld]);
        }
        let d_out = self.heads[0].d_in();
        match &mut self.backbone {
            HostBackbone::Mlp(m) => m.forward(&self.inputs, d_in, n, &mut self.features),
            HostBackbone::MicroRnn(m) => m.forward(&self.inputs, d_in, n, &mut self.features),
            HostBackbone::Gru(g) => g.forward(&self.inputs, d_in, n, &mut self.features),
        }
        let features = Mat::rows(&self.features, d_out);
        let [amplitude, distribution, noise] = &self.heads;
        amplitude.forward(features, n, &mut out.amplitude);
        distribution.forward(features, n, &mut out.distribution);
        noise.forward(features, n, &mut out.noise);
        out.frames = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decoder::RnnFcConfig;
    use crate::dsp::from_vec;
    use crate::testing::rand_vec;
    use burn::tensor::Device;

    /// A GRU trunk whose last stack reads several columns (the z-encoder's latent) gives on
    /// the host what it gives as tensors, each stack reading its own columns.
    #[test]
    fn host_gru_trunk_reads_each_stack_its_own_columns() {
        let device = Device::flex();
        let (f, features, z) = (6, 3, 4);
        for layers in [0, 1] {
            let trunk = RnnFcConfig::new(features, 8, 5, layers)
                .with_z_dims(z)
                .init(&device);
            let x = rand_vec(f * (features + z), 21, -2.0, 2.0);
            let expected =
                to_vec(trunk.forward(from_vec(x.clone(), [1, f, features + z], &device)));
            let mut host = HostRnnFc::new(&trunk, f);
            let mut y = vec![0.0; f * host.d_output()];
            host.forward(&x, features + z, f, &mut y);
            assert_eq!(y.len(), expected.len());
            for (i, (a, b)) in y.iter().zip(&expected).enumerate() {
                assert!(
                    (a - b).abs() < 1e-4,
                    "layers {layers}, value {i}: {a} vs {b}"
                );
            }
        }
    }
}
