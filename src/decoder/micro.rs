//! The alignment plan's stage-4 micro-RNN: the frame-wise MLP trunk followed by a small gated
//! memory cell, lighter than the paper's GRU (one gate, no reset gate, 16-64 units).
//!
//! Per frame, from the MLP's output `m_t`:
//! `z_t = sigmoid(Wz m_t + bz + Uz h_{t-1})`,
//! `h_t = z_t h_{t-1} + (1 - z_t) tanh(Wc m_t + bc + Uc h_{t-1})`, from `h_{-1} = 0`;
//! the trunk's output is `[m_t, h_t]`.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor};

use super::mlp::{Mlp, MlpConfig};

/// Configuration of [`MicroRnn`].
#[derive(Config, Debug)]
pub struct MicroRnnConfig {
    /// The MLP trunk before the cell.
    pub mlp: MlpConfig,
    /// Units of the gated cell.
    #[config(default = 32)]
    pub units: usize,
}

impl MicroRnnConfig {
    /// Width of the output: the MLP's plus the cell's.
    pub fn d_output(&self) -> usize {
        self.mlp.hidden + self.units.max(1)
    }

    /// Build the trunk.
    pub fn init(&self, device: &Device) -> MicroRnn {
        let u = self.units.max(1);
        MicroRnn {
            mlp: self.mlp.init(device),
            input: LinearConfig::new(self.mlp.hidden, 2 * u).init(device),
            hidden: LinearConfig::new(u, 2 * u).with_bias(false).init(device),
        }
    }
}

/// The MLP trunk and the gated cell: `[B, F, d_input]` -> `[B, F, hidden + units]`.
#[derive(Module, Debug)]
pub struct MicroRnn {
    /// The frame-wise trunk.
    pub mlp: Mlp,
    /// `[Wz | Wc]` and `[bz | bc]`: the MLP output to the gate's and candidate's inputs.
    pub input: Linear,
    /// `[Uz | Uc]`: the state to the gate's and candidate's inputs.
    pub hidden: Linear,
}

impl MicroRnn {
    /// Units of the cell.
    pub fn units(&self) -> usize {
        self.hidden.weight.dims()[0]
    }

    /// Apply the trunk from a zero state.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.forward_from(x, None).0
    }

    /// Apply the trunk from `state: [B, units]` (zero without it); returns the output and the
    /// state after the last frame.
    pub fn forward_from(&self, x: Tensor<3>, state: Option<Tensor<2>>) -> (Tensor<3>, Tensor<2>) {
        let [b, f, _] = x.dims();
        let u = self.units();
        let m = self.mlp.forward(x);
        let projected = self.input.forward(m.clone());
        let mut h = state.unwrap_or_else(|| Tensor::zeros([b, u], &m.device()));
        let mut states = Vec::with_capacity(f);
        for t in 0..f {
            let p = projected
                .clone()
                .slice([0..b, t..t + 1, 0..2 * u])
                .reshape([b, 2 * u]);
            let r = self.hidden.forward(h.clone());
            let z = sigmoid(p.clone().slice([0..b, 0..u]) + r.clone().slice([0..b, 0..u]));
            let c = (p.slice([0..b, u..2 * u]) + r.slice([0..b, u..2 * u])).tanh();
            h = z.clone() * h + (z.ones_like() - z) * c;
            states.push(h.clone().reshape([b, 1, u]));
        }
        let cell = if states.is_empty() {
            Tensor::zeros([b, 0, u], &m.device())
        } else {
            Tensor::cat(states, 1)
        };
        (Tensor::cat(vec![m, cell], 2), h)
    }
}
