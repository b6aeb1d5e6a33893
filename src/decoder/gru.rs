//! A GRU layer built for long sequences, and the paper's RnnFcDecoder trunk.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::{leaky_relu, sigmoid};
use burn::tensor::{Device, Tensor};

/// Configuration of [`FastGru`].
#[derive(Config, Debug)]
pub struct FastGruConfig {
    /// Input features.
    pub d_input: usize,
    /// Hidden units.
    pub d_hidden: usize,
}

impl FastGruConfig {
    /// Build the layer (`Linear`'s default initialisation: uniform in `±1/sqrt(fan_in)`).
    pub fn init(&self, device: &Device) -> FastGru {
        FastGru {
            input: LinearConfig::new(self.d_input, 3 * self.d_hidden).init(device),
            hidden: LinearConfig::new(self.d_hidden, 3 * self.d_hidden).init(device),
            d_hidden: self.d_hidden,
        }
    }
}

/// GRU with `burn::nn::gru::Gru`'s maths (`reset_after`, gates ordered update, reset, new):
///
/// `z = s(Wz x + bz + Uz h + cz)`, `r = s(Wr x + br + Ur h + cr)`,
/// `n = tanh(Wn x + bn + r * (Un h + cn))`, `h' = (1 - z) n + z h`,
///
/// computed fast: the input projections of all frames in one matmul, then on the CPU backend
/// the whole recurrence as one operation with a hand-written backward pass
/// (the `fused_gru` operation); elsewhere the three hidden products fused into one
/// `[hidden, 3 hidden]` matmul per step and the states stacked once at the end.
#[derive(Module, Debug)]
pub struct FastGru {
    /// Input projection `[d_input, 3 d_hidden]` (update | reset | new).
    pub input: Linear,
    /// Hidden projection `[d_hidden, 3 d_hidden]` (update | reset | new).
    pub hidden: Linear,
    #[module(skip)]
    d_hidden: usize,
}

impl FastGru {
    /// `[B, F, d_input]` -> `[B, F, d_hidden]`, from a zero state.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.forward_from(x, None).0
    }

    /// [`Self::forward`] from hidden state `h0: [B, d_hidden]` (zeros when `None`); also
    /// returns the state after the last frame, to continue with the next piece.
    pub fn forward_from(&self, x: Tensor<3>, h0: Option<Tensor<2>>) -> (Tensor<3>, Tensor<2>) {
        let [b, f, _] = x.dims();
        let h_dim = self.d_hidden;
        let projected = self.input.forward(x); // [B, F, 3H]
        let device = projected.device();
        let h = h0.unwrap_or_else(|| Tensor::<2>::zeros([b, h_dim], &device));
        let bias = match &self.hidden.bias {
            Some(bias) => bias.val(),
            None => Tensor::zeros([3 * h_dim], &device),
        };
        let fused = super::fused_gru::recurrence(
            projected.clone(),
            self.hidden.weight.val(),
            bias,
            h.clone(),
        );
        match fused {
            Some(states) if f > 0 => {
                let last = states.clone().slice([0..b, f - 1..f, 0..h_dim]);
                (states, last.reshape([b, h_dim]))
            }
            Some(states) => (states, h),
            None => self.composed_recurrence(projected, h),
        }
    }

    /// The recurrence from tensor ops, frame by frame (autodiff derives the backward pass):
    /// `projected: [B, F, 3H]`, `h: [B, H]` -> (states `[B, F, H]`, last state).
    pub(super) fn composed_recurrence(
        &self,
        projected: Tensor<3>,
        mut h: Tensor<2>,
    ) -> (Tensor<3>, Tensor<2>) {
        let [b, f, _] = projected.dims();
        let h_dim = self.d_hidden;
        let mut states = Vec::with_capacity(f);
        for xt in unbind_frames(projected) {
            let ht = self.hidden.forward(h.clone()); // [B, 3H]
            let gates = sigmoid(
                xt.clone().slice([0..b, 0..2 * h_dim]) + ht.clone().slice([0..b, 0..2 * h_dim]),
            );
            let z = gates.clone().slice([0..b, 0..h_dim]);
            let r = gates.slice([0..b, h_dim..2 * h_dim]);
            let n = (xt.slice([0..b, 2 * h_dim..3 * h_dim])
                + r * ht.slice([0..b, 2 * h_dim..3 * h_dim]))
            .tanh();
            h = n.clone() + z * (h - n);
            states.push(h.clone());
        }
        (Tensor::stack(states, 1), h)
    }
}

/// The frames of `[B, F, D]` as `F` tensors `[B, D]`.
///
/// Autodiff's slice backward materialises a zero tensor of the *sliced* tensor's full shape,
/// so taking `F` single-frame slices of `[B, F, D]` costs `O(F^2 B D)` in the backward pass
/// (about 100 GB of memory traffic at the paper's 1000 frames x 16 x 1536). Slicing as a tree,
/// each level cutting its pieces into at most [`FRAME_FANOUT`] parts, costs
/// `FRAME_FANOUT x B F D` per level and `O(B F D log F)` in all.
fn unbind_frames(x: Tensor<3>) -> Vec<Tensor<2>> {
    let [b, f, d] = x.dims();
    let mut frames = Vec::with_capacity(f);
    split_frames(x, &mut frames);
    frames.into_iter().map(|t| t.reshape([b, d])).collect()
}

/// Pieces per level in [`unbind_frames`].
const FRAME_FANOUT: usize = 4;

fn split_frames(x: Tensor<3>, out: &mut Vec<Tensor<3>>) {
    let [b, f, d] = x.dims();
    if f == 1 {
        out.push(x);
        return;
    }
    let piece = f.div_ceil(FRAME_FANOUT);
    for start in (0..f).step_by(piece) {
        let end = (start + piece).min(f);
        split_frames(x.clone().slice([0..b, start..end, 0..d]), out);
    }
}

/// Configuration of a Dense -> LayerNorm -> leaky ReLU stack.
#[derive(Config, Debug)]
pub struct FcStackConfig {
    /// Input width.
    pub d_input: usize,
    /// Width of every layer.
    pub channels: usize,
    /// Layers (0 = identity).
    pub layers: usize,
}

impl FcStackConfig {
    /// Build the stack.
    pub fn init(&self, device: &Device) -> FcStack {
        let dense = (0..self.layers)
            .map(|i| {
                let d_in = if i == 0 { self.d_input } else { self.channels };
                LinearConfig::new(d_in, self.channels).init(device)
            })
            .collect();
        let norms = (0..self.layers)
            .map(|_| {
                LayerNormConfig::new(self.channels)
                    .with_epsilon(LAYER_NORM_EPSILON)
                    .init(device)
            })
            .collect();
        FcStack {
            dense,
            norms,
            d_input: self.d_input,
            d_output: if self.layers == 0 {
                self.d_input
            } else {
                self.channels
            },
        }
    }
}

/// `epsilon` of the stacks' LayerNorms (Burn's default).
pub(super) const LAYER_NORM_EPSILON: f64 = 1e-5;
/// Slope of the stacks' leaky ReLU below 0 (magenta's `fc_stack`).
pub(super) const LEAKY_SLOPE: f64 = 0.2;

/// DDSP's `fc_stack`: (Dense -> LayerNorm -> leaky ReLU(0.2)) repeated. On the CPU backend
/// LayerNorm and leaky ReLU run as one operation (the `fused_norm` operation).
#[derive(Module, Debug)]
pub struct FcStack {
    pub(super) dense: Vec<Linear>,
    pub(super) norms: Vec<LayerNorm>,
    #[module(skip)]
    d_input: usize,
    #[module(skip)]
    d_output: usize,
}

impl FcStack {
    /// Input width.
    pub fn d_input(&self) -> usize {
        self.d_input
    }

    /// Output width.
    pub fn d_output(&self) -> usize {
        self.d_output
    }

    /// Apply the stack.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.dense.iter().zip(&self.norms).fold(x, |h, (d, n)| {
            let h = d.forward(h);
            let fused = n.beta.as_ref().and_then(|beta| {
                super::fused_norm::norm_leaky_relu(
                    h.clone(),
                    n.gamma.val(),
                    beta.val(),
                    LAYER_NORM_EPSILON,
                    LEAKY_SLOPE,
                )
            });
            fused.unwrap_or_else(|| leaky_relu(n.forward(h), LEAKY_SLOPE))
        })
    }
}

/// Configuration of [`RnnFc`].
#[derive(Config, Debug)]
pub struct RnnFcConfig {
    /// Input features (one stack each).
    pub d_input: usize,
    /// Width of the stacks.
    pub channels: usize,
    /// GRU units.
    pub rnn_channels: usize,
    /// Layers per stack (0: inputs go straight to the GRU, the "tiny" model).
    pub layers_per_stack: usize,
    /// Width of a latent input after the `d_input` features (the z-encoder's `zDims`), which
    /// gets one stack of its own; 0 for none.
    #[config(default = 0)]
    pub z_dims: usize,
}

impl RnnFcConfig {
    /// Output width: the output stack's width, or with no stack layers the GRU output plus
    /// the raw inputs.
    pub fn d_output(&self) -> usize {
        if self.layers_per_stack == 0 {
            self.rnn_channels + self.d_input + self.z_dims
        } else {
            self.channels
        }
    }

    /// Build the trunk.
    pub fn init(&self, device: &Device) -> RnnFc {
        let widths =
            std::iter::repeat_n(1, self.d_input).chain((self.z_dims > 0).then_some(self.z_dims));
        let stacks: Vec<FcStack> = widths
            .map(|w| FcStackConfig::new(w, self.channels, self.layers_per_stack).init(device))
            .collect();
        let stacked: usize = stacks.iter().map(FcStack::d_output).sum();
        let gru = FastGruConfig::new(stacked, self.rnn_channels).init(device);
        let out = FcStackConfig::new(
            self.rnn_channels + stacked,
            self.channels,
            self.layers_per_stack,
        )
        .init(device);
        RnnFc { stacks, gru, out }
    }
}

/// The paper's `RnnFcDecoder` trunk: one FC stack per input feature (and one for the latent
/// `z` when there is one), concatenated, a GRU, the GRU output concatenated with the stacks,
/// and an output FC stack.
#[derive(Module, Debug)]
pub struct RnnFc {
    pub(super) stacks: Vec<FcStack>,
    pub(super) gru: FastGru,
    pub(super) out: FcStack,
}

impl RnnFc {
    /// Output width.
    pub fn d_output(&self) -> usize {
        self.out.d_output()
    }

    /// `[B, F, d_input]` -> `[B, F, d_output]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.forward_from(x, None).0
    }

    /// [`Self::forward`] continuing from the GRU state `h0` (zeros when `None`); returns the
    /// state after the last frame too.
    pub fn forward_from(&self, x: Tensor<3>, h0: Option<Tensor<2>>) -> (Tensor<3>, Tensor<2>) {
        let [b, f, d] = x.dims();
        let mut at = 0;
        let parts: Vec<Tensor<3>> = self
            .stacks
            .iter()
            .map(|s| {
                let w = s.d_input();
                at += w;
                s.forward(x.clone().slice([0..b, 0..f, at - w..at]))
            })
            .collect();
        debug_assert_eq!(at, d);
        let stacked = Tensor::cat(parts, 2);
        let (rnn, h) = self.gru.forward_from(stacked.clone(), h0);
        (self.out.forward(Tensor::cat(vec![rnn, stacked], 2)), h)
    }
}
