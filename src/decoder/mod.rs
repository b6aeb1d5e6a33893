//! Decoders: per-frame conditioning (f0, loudness, voicing, and with a [`ZEncoder`] a latent
//! learned from MFCCs) to the synthesizer's raw controls.
//!
//! A [`Decoder`] is a backbone ([`Mlp`], the [`MicroRnn`] cell on an MLP, the paper's
//! [`RnnFc`] GRU decoder, or a [`Transformer`]) followed by [`ControlHeads`], linear
//! projections to [`RawControls`]; the synthesizer owns their scaling.

mod encoder;
mod frame;
mod fused_gru;
mod fused_norm;
mod gru;
mod heads;
mod inputs;
mod micro;
mod mlp;
mod transformer;

pub use encoder::{EncoderKind, ZEncoder, ZEncoderConfig};
pub use frame::FrameDecoder;
pub use gru::{FastGru, FastGruConfig, FcStack, FcStackConfig, RnnFc, RnnFcConfig};
pub use heads::{ControlHeads, HeadsConfig};
pub use inputs::{decoder_inputs, decoder_inputs_from, input_features};
pub use micro::{MicroRnn, MicroRnnConfig};
pub use mlp::{Mlp, MlpConfig};
pub use transformer::{Transformer, TransformerConfig};

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::synth::RawControls;

/// Decoder backbone (`decoderBackbone`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DecoderBackbone {
    /// Frame-wise MLP of the original tool.
    Mlp,
    /// The MLP followed by a small gated memory cell (the alignment plan's micro-RNN).
    MicroRnn,
    /// The paper's RnnFcDecoder (input stacks, GRU, output stack).
    Gru,
    /// Pre-norm transformer blocks over frames.
    Transformer,
}

/// The configuration of one backbone.
#[derive(Config, Debug)]
pub enum BackboneConfig {
    /// Frame-wise MLP.
    Mlp(MlpConfig),
    /// MLP + micro-RNN cell.
    MicroRnn(MicroRnnConfig),
    /// The paper's RnnFcDecoder trunk.
    Gru(RnnFcConfig),
    /// Transformer.
    Transformer(TransformerConfig),
}

impl BackboneConfig {
    /// Which backbone this is.
    pub fn kind(&self) -> DecoderBackbone {
        match self {
            BackboneConfig::Mlp(_) => DecoderBackbone::Mlp,
            BackboneConfig::MicroRnn(_) => DecoderBackbone::MicroRnn,
            BackboneConfig::Gru(_) => DecoderBackbone::Gru,
            BackboneConfig::Transformer(_) => DecoderBackbone::Transformer,
        }
    }

    /// Input features it takes.
    pub fn d_input(&self) -> usize {
        match self {
            BackboneConfig::Mlp(c) => c.d_input,
            BackboneConfig::MicroRnn(c) => c.mlp.d_input,
            BackboneConfig::Gru(c) => c.d_input + c.z_dims,
            BackboneConfig::Transformer(c) => c.d_input,
        }
    }

    /// Width of its output.
    pub fn d_output(&self) -> usize {
        match self {
            BackboneConfig::Mlp(c) => c.hidden,
            BackboneConfig::MicroRnn(c) => c.d_output(),
            BackboneConfig::Gru(c) => c.d_output(),
            BackboneConfig::Transformer(c) => c.d_model,
        }
    }

    /// Build the backbone.
    pub fn init(&self, device: &Device) -> Backbone {
        match self {
            BackboneConfig::Mlp(c) => Backbone::Mlp(c.init(device)),
            BackboneConfig::MicroRnn(c) => Backbone::MicroRnn(c.init(device)),
            BackboneConfig::Gru(c) => Backbone::Gru(c.init(device)),
            BackboneConfig::Transformer(c) => Backbone::Transformer(c.init(device)),
        }
    }
}

/// The trunk of a decoder.
#[derive(Module, Debug)]
pub enum Backbone {
    /// Frame-wise MLP.
    Mlp(Mlp),
    /// MLP + micro-RNN cell.
    MicroRnn(MicroRnn),
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
            Backbone::MicroRnn(m) => m.forward(x),
            Backbone::Gru(g) => g.forward(x),
            Backbone::Transformer(t) => t.forward(x),
        }
    }

    /// [`Self::forward`] for the next piece of a longer signal, continuing `state`.
    pub fn forward_continued(&self, x: Tensor<3>, state: &mut BackboneState) -> Tensor<3> {
        match (self, state) {
            (Backbone::Mlp(m), _) => m.forward(x),
            (Backbone::Gru(g), BackboneState::Recurrent(h)) => {
                let (y, last) = g.forward_from(x, h.take());
                *h = Some(last);
                y
            }
            (Backbone::MicroRnn(m), BackboneState::Recurrent(h)) => {
                let (y, last) = m.forward_from(x, h.take());
                *h = Some(last);
                y
            }
            (Backbone::Transformer(t), BackboneState::Window(w)) => t.forward_continued(x, w),
            (_, state) => {
                *state = BackboneState::for_backbone(self);
                self.forward_continued(x, state)
            }
        }
    }
}

/// What a backbone carries from one piece of frames to the next.
#[derive(Clone, Debug, Default)]
pub enum BackboneState {
    /// Nothing yet (or a frame-wise backbone).
    #[default]
    Empty,
    /// The recurrent cell's (GRU or micro-RNN) state `[B, units]` after the last frame.
    Recurrent(Option<Tensor<2>>),
    /// The transformer's current attention window of input frames `[B, n, d_input]`.
    Window(Option<Tensor<3>>),
}

impl BackboneState {
    fn for_backbone(backbone: &Backbone) -> Self {
        match backbone {
            Backbone::Mlp(_) => BackboneState::Empty,
            Backbone::Gru(_) | Backbone::MicroRnn(_) => BackboneState::Recurrent(None),
            Backbone::Transformer(_) => BackboneState::Window(None),
        }
    }
}

/// What a [`Decoder`] carries from one piece of frames to the next: the backbone's state, the
/// z-encoder's state and the previous frame of the delta features. [`Decoder::forward_continued`] on consecutive
/// pieces gives what [`Decoder::forward`] gives on all the frames (the transformer attending
/// within windows of its training length, see [`Transformer::forward_continued`]).
#[derive(Clone, Debug, Default)]
pub struct DecoderState {
    previous: Option<(Tensor<2>, Tensor<2>)>,
    backbone: BackboneState,
    encoder: Option<Tensor<2>>,
}

/// Configuration of a [`Decoder`]: its inputs, backbone and heads.
#[derive(Config, Debug)]
pub struct DecoderConfig {
    /// Add f0/loudness deltas to the inputs ([`input_features`] wide: the backbone's
    /// `d_input`).
    pub delta_features: bool,
    /// The backbone.
    pub backbone: BackboneConfig,
    /// The heads (their `d_input` is the backbone's output width).
    pub heads: HeadsConfig,
    /// The z-encoder, whose `z_dims` latent values per frame follow the features in the
    /// backbone's input; none for f0/loudness/voicing alone.
    #[config(default = "None")]
    pub encoder: Option<ZEncoderConfig>,
}

impl DecoderConfig {
    /// A decoder whose heads sit on `backbone`'s output: `harmonics` distribution values and
    /// `noise_outputs` raw noise values per frame. `backbone` must take
    /// [`input_features`]`(delta_features)` inputs, plus the encoder's `z_dims` with one.
    pub fn with_heads(
        backbone: BackboneConfig,
        delta_features: bool,
        harmonics: usize,
        noise_outputs: usize,
    ) -> Self {
        let heads = HeadsConfig::new(backbone.d_output(), harmonics, noise_outputs);
        Self::new(delta_features, backbone, heads)
    }

    /// Build the decoder.
    ///
    /// # Panics
    ///
    /// When the backbone does not take [`input_features`]`(delta_features)` inputs plus the
    /// encoder's `z_dims` (`Config::decoder_config` always builds them to match).
    pub fn init(&self, device: &Device) -> Decoder {
        let z = self.encoder.as_ref().map_or(0, |e| e.z_dims);
        assert_eq!(
            self.backbone.d_input(),
            input_features(self.delta_features) + z,
            "the backbone's inputs must be the features plus the encoder's latent"
        );
        Decoder {
            backbone: self.backbone.init(device),
            heads: self.heads.init(device),
            encoder: self.encoder.as_ref().map(|e| e.init(device)),
            delta_features: self.delta_features,
            kind: self.backbone.kind(),
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
    /// The z-encoder, if any.
    pub encoder: Option<ZEncoder>,
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

    /// Whether it has a z-encoder (and so needs MFCCs with its features).
    pub fn has_encoder(&self) -> bool {
        self.encoder.is_some()
    }

    /// Raw controls from features: `f0_hz`, `loudness_db`, `voicing` are `[B, F]`; `mfcc`
    /// `[B, F, mfcc_bins]` feeds the z-encoder (which hears silence without them, as in synth
    /// mode) and is ignored without one.
    pub fn forward(
        &self,
        f0_hz: Tensor<2>,
        loudness_db: Tensor<2>,
        voicing: Tensor<2>,
        mfcc: Option<Tensor<3>>,
    ) -> RawControls {
        let x = decoder_inputs(f0_hz, loudness_db, voicing, self.delta_features);
        let x = self.with_latent(x, mfcc, &mut None);
        self.heads.forward(self.backbone.forward(x))
    }

    /// [`Self::forward`] for the next piece of a longer signal, continuing `state`.
    pub fn forward_continued(
        &self,
        f0_hz: Tensor<2>,
        loudness_db: Tensor<2>,
        voicing: Tensor<2>,
        mfcc: Option<Tensor<3>>,
        state: &mut DecoderState,
    ) -> RawControls {
        let x = decoder_inputs_from(
            f0_hz,
            loudness_db,
            voicing,
            self.delta_features,
            &mut state.previous,
        );
        let x = self.with_latent(x, mfcc, &mut state.encoder);
        let h = self.backbone.forward_continued(x, &mut state.backbone);
        self.heads.forward(h)
    }

    /// The features `x` followed by the z-encoder's latent of `mfcc` (continuing the
    /// encoder's `state`), or `x` alone without an encoder.
    fn with_latent(
        &self,
        x: Tensor<3>,
        mfcc: Option<Tensor<3>>,
        state: &mut Option<Tensor<2>>,
    ) -> Tensor<3> {
        let Some(encoder) = &self.encoder else {
            return x;
        };
        let [b, f, _] = x.dims();
        let mfcc = mfcc.unwrap_or_else(|| encoder.silence(b, f, &x.device()));
        let (z, last) = encoder.forward_from(mfcc, state.take());
        *state = Some(last);
        Tensor::cat(vec![x, z], 2)
    }
}

#[cfg(test)]
mod tests;
