//! The original tool's frame-wise MLP trunk.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

/// Configuration of [`Mlp`].
#[derive(Config, Debug)]
pub struct MlpConfig {
    /// Input features.
    pub d_input: usize,
    /// Width.
    pub hidden: usize,
    /// Depth (tanh layers).
    #[config(default = 1)]
    pub layers: usize,
}

impl MlpConfig {
    /// Build the trunk.
    pub fn init(&self, device: &Device) -> Mlp {
        let layers = (0..self.layers.max(1))
            .map(|i| {
                let d_in = if i == 0 { self.d_input } else { self.hidden };
                LinearConfig::new(d_in, self.hidden).init(device)
            })
            .collect();
        Mlp { layers }
    }
}

/// `x -> tanh(W x + b)` repeated: `[B, F, d_input]` -> `[B, F, hidden]`, frame by frame.
#[derive(Module, Debug)]
pub struct Mlp {
    pub(super) layers: Vec<Linear>,
}

impl Mlp {
    /// Output width.
    pub fn d_output(&self) -> usize {
        self.layers.last().map(|l| l.weight.dims()[1]).unwrap_or(0)
    }

    /// Apply the trunk.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.layers
            .iter()
            .fold(x, |h, layer| layer.forward(h).tanh())
    }
}
