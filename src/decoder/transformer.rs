//! Pre-norm transformer trunk over frames.

use burn::config::Config;
use burn::module::Module;
use burn::nn::attention::{
    MhaInput, MultiHeadAttention, MultiHeadAttentionConfig, generate_autoregressive_mask,
};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig, generate_sinusoids};
use burn::tensor::activation::gelu;
use burn::tensor::{Device, Tensor};

/// Configuration of [`Transformer`].
#[derive(Config, Debug)]
pub struct TransformerConfig {
    /// Input features.
    pub d_input: usize,
    /// Model width.
    pub d_model: usize,
    /// Blocks.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// Feed-forward width multiplier.
    pub ff_multiplier: usize,
    /// Attend to past and present frames only.
    pub causal: bool,
    /// Add sinusoidal positional encoding after the input projection.
    pub positional_encoding: bool,
    /// Frames a window of [`Transformer::forward_continued`] holds (the training chunk's
    /// frames: the positions the model has seen); 0 for no limit.
    #[config(default = 0)]
    pub context: usize,
}

impl TransformerConfig {
    /// Build the trunk.
    pub fn init(&self, device: &Device) -> Transformer {
        let blocks = (0..self.layers)
            .map(|_| Block {
                norm_attn: LayerNormConfig::new(self.d_model).init(device),
                attn: MultiHeadAttentionConfig::new(self.d_model, self.heads)
                    .with_dropout(0.0)
                    .init(device),
                norm_ff: LayerNormConfig::new(self.d_model).init(device),
                ff_in: LinearConfig::new(self.d_model, self.d_model * self.ff_multiplier)
                    .init(device),
                ff_out: LinearConfig::new(self.d_model * self.ff_multiplier, self.d_model)
                    .init(device),
            })
            .collect();
        Transformer {
            input: LinearConfig::new(self.d_input, self.d_model).init(device),
            blocks,
            norm: LayerNormConfig::new(self.d_model).init(device),
            d_model: self.d_model,
            causal: self.causal,
            positional_encoding: self.positional_encoding,
            context: self.context,
        }
    }
}

/// One pre-norm block: `x + MHA(LN(x))`, then `x + FF(LN(x))` with a GELU feed-forward.
#[derive(Module, Debug)]
pub struct Block {
    norm_attn: LayerNorm,
    attn: MultiHeadAttention,
    norm_ff: LayerNorm,
    ff_in: Linear,
    ff_out: Linear,
}

/// Input projection, optional positional encoding, pre-norm blocks, final LayerNorm.
/// Attention runs within each batch item (never across items); with `causal`, frame `t`
/// attends to frames `<= t` only.
#[derive(Module, Debug)]
pub struct Transformer {
    input: Linear,
    blocks: Vec<Block>,
    norm: LayerNorm,
    #[module(skip)]
    d_model: usize,
    #[module(skip)]
    causal: bool,
    #[module(skip)]
    positional_encoding: bool,
    #[module(skip)]
    context: usize,
}

impl Transformer {
    /// Output width.
    pub fn d_output(&self) -> usize {
        self.d_model
    }

    /// `[B, F, d_input]` -> `[B, F, d_model]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, f, _] = x.dims();
        let device = x.device();
        let mut h = self.input.forward(x);
        if self.positional_encoding {
            let pe = generate_sinusoids(f, self.d_model, f.max(10_000), &device);
            h = h + pe.unsqueeze_dim::<3>(0);
        }
        let mask = self
            .causal
            .then(|| generate_autoregressive_mask(b, f, &device));
        for block in &self.blocks {
            let mut input = MhaInput::self_attn(block.norm_attn.forward(h.clone()));
            if let Some(m) = &mask {
                input = input.mask_attn(m.clone());
            }
            h = h + block.attn.forward(input).context;
            let ff = block
                .ff_out
                .forward(gelu(block.ff_in.forward(block.norm_ff.forward(h.clone()))));
            h = h + ff;
        }
        self.norm.forward(h)
    }

    /// Frames of a signal of any length, attending within consecutive windows of `context`
    /// frames (positions restart at each window, as in training on chunks), continuing the
    /// current window's earlier frames in `window: [B, n, d_input]`, updated for the next
    /// piece. With `causal` attention a frame's output depends only on its window's frames up
    /// to it, so pieces give what one call on all the frames gives.
    pub fn forward_continued(&self, x: Tensor<3>, window: &mut Option<Tensor<3>>) -> Tensor<3> {
        let [b, f, d] = x.dims();
        let mut outputs = Vec::new();
        let mut start = 0;
        while start < f {
            let have = window.as_ref().map(|w| w.dims()[1]).unwrap_or(0);
            let room = if self.context == 0 {
                f - start
            } else {
                self.context - have
            };
            let take = room.min(f - start);
            let piece = x.clone().slice([0..b, start..start + take, 0..d]);
            let all = match window.take() {
                Some(w) => Tensor::cat(vec![w, piece], 1),
                None => piece,
            };
            let y = self.forward(all.clone());
            outputs.push(y.slice([0..b, have..have + take, 0..self.d_model]));
            if self.context == 0 || have + take < self.context {
                *window = Some(all);
            }
            start += take;
        }
        match outputs.len() {
            0 => Tensor::zeros([b, 0, self.d_model], &x.device()),
            1 => outputs.pop().expect("one"),
            _ => Tensor::cat(outputs, 1),
        }
    }
}
