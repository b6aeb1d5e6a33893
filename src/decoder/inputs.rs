//! Decoder conditioning: scaled f0, scaled loudness, voicing, optional deltas.

use burn::tensor::Tensor;
use burn::tensor::ops::PadMode;

use crate::dsp::{scale_f0, scale_loudness};

/// Number of input features: 3, or 5 with deltas.
pub fn input_features(delta_features: bool) -> usize {
    if delta_features { 5 } else { 3 }
}

/// Per-frame difference `x[t] - x[t-1]` (0 on the first frame): `[B, F]`.
fn delta(x: Tensor<2>) -> Tensor<2> {
    let [b, f] = x.dims();
    if f < 2 {
        return x.zeros_like();
    }
    let previous = x
        .clone()
        .slice([0..b, 0..f - 1])
        .pad([(0, 0), (1, 0)], PadMode::Edge);
    x - previous
}

/// `[B, F, 3 or 5]`: `f0_scaled = midi(f0)/127`, `ld_scaled = ld/80 + 1`, voicing, and with
/// `delta_features` their per-frame deltas `d f0_scaled`, `d ld_scaled`.
pub fn decoder_inputs(
    f0_hz: Tensor<2>,
    loudness_db: Tensor<2>,
    voicing: Tensor<2>,
    delta_features: bool,
) -> Tensor<3> {
    let f0 = scale_f0(f0_hz);
    let ld = scale_loudness(loudness_db);
    let mut parts = vec![f0.clone(), ld.clone(), voicing];
    if delta_features {
        parts.push(delta(f0));
        parts.push(delta(ld));
    }
    Tensor::stack(parts, 2)
}
