//! The z-encoder of the paper's autoencoder (magenta's `MfccTimeDistributedRnnEncoder`):
//! per-frame MFCCs -> normalisation -> GRU -> dense to `z_dims` latent values per frame.
//!
//! Magenta normalises the MFCCs per example over time ("instance" normalisation), which needs
//! the whole example before the first frame; here each frame is normalised across its own
//! coefficients (LayerNorm with a learned scale and shift), so the encoder stays causal and
//! streams frame by frame like the decoder's GRU.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use serde::{Deserialize, Serialize};

use super::gru::{FastGru, FastGruConfig};

/// Whether a decoder has a z-encoder (`encoder`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum EncoderKind {
    /// f0, loudness and voicing only (the paper's "no z" models).
    None,
    /// The MFCC z-encoder.
    Mfcc,
}

/// Configuration of a [`ZEncoder`].
#[derive(Config, Debug)]
pub struct ZEncoderConfig {
    /// MFCCs per frame (30).
    pub mfcc_bins: usize,
    /// GRU units (magenta: 512).
    pub units: usize,
    /// Latent values per frame (16).
    pub z_dims: usize,
}

impl ZEncoderConfig {
    /// Build the encoder.
    pub fn init(&self, device: &Device) -> ZEncoder {
        ZEncoder {
            norm: LayerNormConfig::new(self.mfcc_bins).init(device),
            gru: FastGruConfig::new(self.mfcc_bins, self.units).init(device),
            out: LinearConfig::new(self.units, self.z_dims).init(device),
            mfcc_bins: self.mfcc_bins,
        }
    }
}

/// MFCCs `[B, F, mfcc_bins]` to latents `[B, F, z_dims]`, causally.
#[derive(Module, Debug)]
pub struct ZEncoder {
    /// Per-frame normalisation of the coefficients.
    pub norm: LayerNorm,
    /// The recurrence over frames.
    pub gru: FastGru,
    /// The projection to the latent.
    pub out: Linear,
    #[module(skip)]
    mfcc_bins: usize,
}

impl ZEncoder {
    /// MFCCs per frame it takes.
    pub fn mfcc_bins(&self) -> usize {
        self.mfcc_bins
    }

    /// The MFCCs of `f` silent frames for `b` items (what the encoder hears where no audio
    /// exists, as in synth mode): `[B, F, mfcc_bins]`.
    pub fn silence(&self, b: usize, f: usize, device: &Device) -> Tensor<3> {
        let frame = crate::features::mfcc::silence(self.mfcc_bins);
        crate::dsp::from_vec(frame, [1, 1, self.mfcc_bins], device).repeat(&[b, f, 1])
    }

    /// `[B, F, mfcc_bins]` -> `[B, F, z_dims]` from a zero state.
    pub fn forward(&self, mfcc: Tensor<3>) -> Tensor<3> {
        self.forward_from(mfcc, None).0
    }

    /// [`Self::forward`] continuing from the GRU state `h0` (zeros when `None`); also returns
    /// the state after the last frame, for the next piece.
    pub fn forward_from(&self, mfcc: Tensor<3>, h0: Option<Tensor<2>>) -> (Tensor<3>, Tensor<2>) {
        let (h, last) = self.gru.forward_from(self.norm.forward(mfcc), h0);
        (self.out.forward(h), last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::{from_vec, to_vec};
    use crate::testing::{check_gradient, flex_ad, rand_vec};

    fn encoder(device: &Device) -> ZEncoder {
        device.seed(3);
        ZEncoderConfig::new(6, 5, 4).init(device)
    }

    /// The formula by hand on one frame from a zero state: LayerNorm (eps 1e-5, gamma 1,
    /// beta 0 at init), the GRU step (h = (1 - z) n with h0 = 0), the dense layer.
    #[test]
    fn one_frame_is_the_formula_by_hand() {
        let device = Device::flex();
        let e = encoder(&device);
        let x = rand_vec(6, 1, -3.0, 3.0);
        let got = to_vec(e.forward(from_vec(x.clone(), [1, 1, 6], &device)));
        let mean = x.iter().sum::<f32>() / 6.0;
        let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 6.0;
        let normed: Vec<f32> = x.iter().map(|v| (v - mean) / (var + 1e-5).sqrt()).collect();
        let w = |l: &Linear| {
            (
                to_vec(l.weight.val()),
                l.bias.as_ref().map(|b| to_vec(b.val())).unwrap(),
            )
        };
        let (wi, bi) = w(&e.gru.input);
        let (_, bh) = w(&e.gru.hidden);
        let project =
            |j: usize| -> f32 { (0..6).map(|i| normed[i] * wi[i * 15 + j]).sum::<f32>() + bi[j] };
        let sig = |v: f32| 1.0 / (1.0 + (-v).exp());
        let h: Vec<f32> = (0..5)
            .map(|u| {
                let z = sig(project(u) + bh[u]);
                let r = sig(project(5 + u) + bh[5 + u]);
                let n = (project(10 + u) + r * bh[10 + u]).tanh();
                (1.0 - z) * n
            })
            .collect();
        let (wo, bo) = w(&e.out);
        for (k, g) in got.iter().enumerate() {
            let expected: f32 = (0..5).map(|u| h[u] * wo[u * 4 + k]).sum::<f32>() + bo[k];
            assert!((g - expected).abs() < 1e-5, "{k}: {g} vs {expected}");
        }
    }

    #[test]
    fn pieces_continue_the_state_and_the_future_never_leaks_back() {
        let device = Device::flex();
        let e = encoder(&device);
        let x = rand_vec(2 * 9 * 6, 2, -2.0, 2.0);
        let whole = to_vec(e.forward(from_vec(x.clone(), [2, 9, 6], &device)));
        let t = from_vec(x.clone(), [2, 9, 6], &device);
        let (a, h) = e.forward_from(t.clone().slice([0..2, 0..4, 0..6]), None);
        let (b, _) = e.forward_from(t.slice([0..2, 4..9, 0..6]), Some(h));
        let pieces = to_vec(Tensor::cat(vec![a, b], 1));
        for (i, (p, w)) in pieces.iter().zip(&whole).enumerate() {
            assert!((p - w).abs() < 1e-5, "{i}: {p} vs {w}");
        }
        // Changing frame 6 changes nothing before it (one coefficient: the normalisation
        // would undo a shift of all of them).
        let mut later = x;
        later[6 * 6 + 2] += 1.0;
        let changed = to_vec(e.forward(from_vec(later, [2, 9, 6], &device)));
        assert_eq!(changed[..6 * 4], whole[..6 * 4]);
        assert_ne!(changed[6 * 4..7 * 4], whole[6 * 4..7 * 4]);
    }

    #[test]
    fn input_gradients_match_finite_differences() {
        let x = rand_vec(7 * 6, 4, -2.0, 2.0);
        let e = encoder(&flex_ad());
        check_gradient(
            |t| e.forward(t).powf_scalar(2.0).sum().reshape([1]),
            &x,
            [1, 7, 6],
            &[0, 5, 13, 30, 41],
            1e-2,
            2e-2,
        );
    }
}
