//! Decoder conditioning: scaled f0, scaled loudness, voicing, optional deltas.

use burn::tensor::Tensor;

use crate::dsp::{scale_f0, scale_loudness};

/// Number of input features: 3, or 5 with deltas.
pub fn input_features(delta_features: bool) -> usize {
    if delta_features { 5 } else { 3 }
}

/// Per-frame difference `x[t] - x[t-1]`: `[B, F]`. The frame before the first is `previous`
/// (`[B, 1]`, the last frame of the previous piece) or, without it, the first frame itself
/// (a delta of 0).
fn delta(x: Tensor<2>, previous: Option<Tensor<2>>) -> Tensor<2> {
    let [b, f] = x.dims();
    let first = previous.unwrap_or_else(|| x.clone().slice([0..b, 0..1]));
    let shifted = if f > 1 {
        Tensor::cat(vec![first, x.clone().slice([0..b, 0..f - 1])], 1)
    } else {
        first
    };
    x - shifted
}

/// `[B, F, 3 or 5]`: `f0_scaled = midi(f0)/127`, `ld_scaled = ld/80 + 1`, voicing, and with
/// `delta_features` their per-frame deltas `d f0_scaled`, `d ld_scaled`.
pub fn decoder_inputs(
    f0_hz: Tensor<2>,
    loudness_db: Tensor<2>,
    voicing: Tensor<2>,
    delta_features: bool,
) -> Tensor<3> {
    decoder_inputs_from(f0_hz, loudness_db, voicing, delta_features, &mut None)
}

/// [`decoder_inputs`] for the next piece of a longer signal: `previous` holds the scaled f0
/// and loudness of the frame before it (`[B, 1]` each, from the previous piece) and is updated.
pub fn decoder_inputs_from(
    f0_hz: Tensor<2>,
    loudness_db: Tensor<2>,
    voicing: Tensor<2>,
    delta_features: bool,
    previous: &mut Option<(Tensor<2>, Tensor<2>)>,
) -> Tensor<3> {
    let [b, f] = f0_hz.dims();
    let f0 = scale_f0(f0_hz);
    let ld = scale_loudness(loudness_db);
    let mut parts = vec![f0.clone(), ld.clone(), voicing];
    if delta_features {
        let (f0_before, ld_before) = previous.take().unzip();
        parts.push(delta(f0.clone(), f0_before));
        parts.push(delta(ld.clone(), ld_before));
        *previous = Some((f0.slice([0..b, f - 1..f]), ld.slice([0..b, f - 1..f])));
    }
    Tensor::stack(parts, 2)
}
