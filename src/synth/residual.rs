//! The AR residual control path (the alignment plan's stages 2 and 4): the decoder's raw
//! controls (harmonic gain, distribution logits, noise gains) are the increments of a
//! first-order autoregressive state per channel, `s[t] = a s[t-1] + delta[t]` from `s[-1] = 0`,
//! and the synth scales the state instead of the raw value. The decoder then predicts how a
//! control changes rather than its value; `a` sets how long a change persists (the state's
//! DC gain is `1 / (1 - a)`).

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::dsp::{self, from_vec};

/// The raw-control path (`controlResidual`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ControlResidual {
    /// The raw controls are the controls' logits.
    Off,
    /// The raw controls are increments of an AR(1) state (`controlResidualAlpha`).
    Ar,
}

/// `s[t] = a s[t-1] + x[t]` along frames of `x: [B, F, C]`, continuing from `last: [B, 1, C]`
/// (the previous piece's final state; zero without it): the state's impulse response `a^k`
/// applied by FFT convolution, plus `a^(t+1) last`. Returns the states and the final one.
pub fn ar_states(x: Tensor<3>, a: f64, last: Option<Tensor<3>>) -> (Tensor<3>, Tensor<3>) {
    let [b, f, c] = x.dims();
    let device = x.device();
    if f == 0 {
        let last = last.unwrap_or_else(|| Tensor::zeros([b, 1, c], &device));
        return (x, last);
    }
    let response: Vec<f32> = (0..f).map(|k| a.powi(k as i32) as f32).collect();
    let rows = x.swap_dims(1, 2).reshape([b * c, f]);
    let mut states = dsp::fft_convolve(rows, from_vec(response, [1, f], &device), 0)
        .reshape([b, c, f])
        .swap_dims(1, 2);
    if let Some(last) = last {
        let decay: Vec<f32> = (1..=f).map(|k| a.powi(k as i32) as f32).collect();
        states = states + last * from_vec(decay, [1, f, 1], &device);
    }
    let final_state = states.clone().slice([0..b, f - 1..f, 0..c]);
    (states, final_state)
}

/// The recursion on the host, in place over `values: [n, C]` row-major, `state: [C]` carried
/// from call to call (the streaming form of [`ar_states`]).
pub fn ar_step(a: f32, state: &mut [f32], values: &mut [f32]) {
    for row in values.chunks_mut(state.len().max(1)) {
        for (s, v) in state.iter_mut().zip(row.iter_mut()) {
            *s = a * *s + *v;
            *v = *s;
        }
    }
}
