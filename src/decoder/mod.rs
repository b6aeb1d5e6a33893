//! Decoders: per-frame conditioning (f0, loudness, voicing) to synthesizer controls.
//!
//! A [`Decoder`] is a backbone ([`Mlp`], the paper's [`RnnFc`] GRU decoder, or a
//! [`Transformer`]) followed by [`ControlHeads`] that output raw values and scale them per
//! `harmonicHeadMode`. Build one from the global config with [`DecoderConfig::from_config`].

mod gru;
mod heads;
mod inputs;
mod mlp;
mod transformer;

pub use gru::{FastGru, FastGruConfig, FcStack, FcStackConfig, RnnFc, RnnFcConfig};
pub use heads::{ControlHeads, HeadsConfig, NOISE_BIAS, causal_smooth};
pub use inputs::{decoder_inputs, input_features};
pub use mlp::{Mlp, MlpConfig};
pub use transformer::{Transformer, TransformerConfig};

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::config::DecoderBackbone;
use crate::synth::SynthControls;

/// The trunk of a decoder.
#[derive(Module, Debug)]
pub enum Backbone {
    /// Frame-wise MLP.
    Mlp(Mlp),
    /// RnnFcDecoder (GRU).
    Gru(RnnFc),
    /// Transformer.
    Transformer(Transformer),
}

impl Backbone {
    /// `[B, F, inputs]` -> `[B, F, d_output]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        match self {
            Backbone::Mlp(m) => m.forward(x),
            Backbone::Gru(g) => g.forward(x),
            Backbone::Transformer(t) => t.forward(x),
        }
    }
}

/// Everything needed to build a [`Decoder`].
#[derive(Config, Debug)]
pub struct DecoderConfig {
    /// Which backbone.
    pub backbone: DecoderBackbone,
    /// Add f0/loudness deltas to the inputs.
    #[config(default = false)]
    pub delta_features: bool,
    /// MLP width.
    #[config(default = 32)]
    pub mlp_hidden: usize,
    /// MLP depth.
    #[config(default = 1)]
    pub mlp_layers: usize,
    /// GRU decoder: layers per FC stack.
    #[config(default = 3)]
    pub layers_per_stack: usize,
    /// GRU decoder: FC stack width.
    #[config(default = 512)]
    pub stack_channels: usize,
    /// GRU decoder: GRU units.
    #[config(default = 512)]
    pub rnn_channels: usize,
    /// Transformer width.
    #[config(default = 64)]
    pub d_model: usize,
    /// Transformer blocks.
    #[config(default = 2)]
    pub transformer_layers: usize,
    /// Attention heads.
    #[config(default = 4)]
    pub heads: usize,
    /// Feed-forward multiplier.
    #[config(default = 2)]
    pub ff_multiplier: usize,
    /// Causal attention.
    #[config(default = true)]
    pub causal: bool,
    /// Positional encoding.
    #[config(default = true)]
    pub positional_encoding: bool,
    /// The control heads.
    pub heads_config: HeadsConfig,
}

impl DecoderConfig {
    /// The decoder the global config describes. The GRU decoder's stacks use `rnnChannels`
    /// as their width (the paper's `ch = rnn_channels = 512`).
    pub fn from_config(c: &crate::Config) -> Self {
        let d_placeholder = 0;
        let heads = HeadsConfig::new(d_placeholder, c.harmonics, c.harmonic_head_mode)
            .with_noise_bands(c.noise_bands)
            .with_noise_filter(c.noise_filter)
            .with_noise_filter_size(c.noise_filter_size)
            .with_sample_rate(c.sample_rate)
            .with_softmax_amp_floor(c.softmax_amp_floor)
            .with_softmax_gain_min_db(c.softmax_gain_min_db)
            .with_softmax_gain_max_db(c.softmax_gain_max_db)
            .with_smoothing(c.control_smoothing)
            .with_smoothing_alpha(c.control_smoothing_alpha)
            .with_smoothing_fir_size(c.control_smoothing_fir_size)
            .with_smoothing_targets(c.control_smoothing_targets.clone());
        DecoderConfig::new(c.decoder_backbone, heads)
            .with_delta_features(c.delta_features)
            .with_mlp_hidden(c.model_hidden)
            .with_mlp_layers(c.model_layers)
            .with_layers_per_stack(c.layers_per_stack)
            .with_stack_channels(c.rnn_channels)
            .with_rnn_channels(c.rnn_channels)
            .with_d_model(c.transformer_d_model)
            .with_transformer_layers(c.transformer_layers)
            .with_heads(c.transformer_heads)
            .with_ff_multiplier(c.transformer_ff_multiplier)
            .with_causal(c.transformer_causal)
            .with_positional_encoding(c.transformer_positional_encoding)
    }

    /// Build the decoder.
    pub fn init(&self, device: &Device) -> Decoder {
        let d_in = input_features(self.delta_features);
        let (backbone, d_out) = match self.backbone {
            DecoderBackbone::Mlp => {
                let m = MlpConfig::new(d_in, self.mlp_hidden)
                    .with_layers(self.mlp_layers)
                    .init(device);
                let d = m.d_output();
                (Backbone::Mlp(m), d)
            }
            DecoderBackbone::Gru => {
                let g = RnnFcConfig::new(
                    d_in,
                    self.stack_channels,
                    self.rnn_channels,
                    self.layers_per_stack,
                )
                .init(device);
                let d = g.d_output();
                (Backbone::Gru(g), d)
            }
            DecoderBackbone::Transformer => {
                let t = TransformerConfig::new(
                    d_in,
                    self.d_model,
                    self.transformer_layers,
                    self.heads,
                    self.ff_multiplier,
                    self.causal,
                    self.positional_encoding,
                )
                .init(device);
                let d = t.d_output();
                (Backbone::Transformer(t), d)
            }
        };
        let mut heads = self.heads_config.clone();
        heads.d_input = d_out;
        Decoder {
            backbone,
            heads: heads.init(device),
            delta_features: self.delta_features,
            kind: self.backbone,
        }
    }
}

/// Backbone + control heads.
#[derive(Module, Debug)]
pub struct Decoder {
    /// The trunk.
    pub backbone: Backbone,
    /// The heads.
    pub heads: ControlHeads,
    #[module(skip)]
    delta_features: bool,
    #[module(skip)]
    kind: DecoderBackbone,
}

impl Decoder {
    /// Which backbone this decoder has.
    pub fn kind(&self) -> DecoderBackbone {
        self.kind
    }

    /// Controls from features: `f0_hz`, `loudness_db`, `voicing` are `[B, F]`.
    pub fn forward(
        &self,
        f0_hz: Tensor<2>,
        loudness_db: Tensor<2>,
        voicing: Tensor<2>,
        temperature: f64,
    ) -> SynthControls {
        let x = decoder_inputs(f0_hz.clone(), loudness_db, voicing, self.delta_features);
        let h = self.backbone.forward(x);
        self.heads.controls(h, f0_hz, temperature)
    }
}

#[cfg(test)]
mod tests;
