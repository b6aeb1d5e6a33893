//! Control heads: linear projections of a backbone's features to the synthesizer's raw
//! controls. The synthesizer scales them ([`crate::synth::Synth::get_controls`]).

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use crate::synth::RawControls;

/// Configuration of [`ControlHeads`].
#[derive(Config, Debug)]
pub struct HeadsConfig {
    /// Width of the backbone's output.
    pub d_input: usize,
    /// Harmonics `K`.
    pub harmonics: usize,
    /// Raw noise values per frame ([`crate::synth::FilteredNoiseConfig::raw_channels`]).
    pub noise_outputs: usize,
}

impl HeadsConfig {
    /// Build the heads.
    pub fn init(&self, device: &Device) -> ControlHeads {
        ControlHeads {
            amplitude: LinearConfig::new(self.d_input, 1).init(device),
            distribution: LinearConfig::new(self.d_input, self.harmonics).init(device),
            noise: LinearConfig::new(self.d_input, self.noise_outputs).init(device),
        }
    }
}

/// Three linear projections: harmonic amplitude (1), distribution (`K`) and noise.
#[derive(Module, Debug)]
pub struct ControlHeads {
    pub(super) amplitude: Linear,
    pub(super) distribution: Linear,
    pub(super) noise: Linear,
}

impl ControlHeads {
    /// Raw controls from backbone features `[B, F, d]`.
    pub fn forward(&self, features: Tensor<3>) -> RawControls {
        RawControls {
            amplitude: self.amplitude.forward(features.clone()),
            distribution: self.distribution.forward(features.clone()),
            noise: self.noise.forward(features),
        }
    }
}
