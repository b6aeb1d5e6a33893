//! Regularisers on the harmonic distribution.

use burn::tensor::Tensor;

/// Harmonic entropy penalty `ln K - H(p)`, `H(p) = -sum_k p_k ln p_k` averaged over batch and
/// frames: 0 for a uniform distribution, `ln K` when one harmonic holds everything.
/// `distribution: [B, F, K]` (rows summing to 1) -> `[1]`.
pub fn entropy_penalty(distribution: Tensor<3>) -> Tensor<1> {
    let k = distribution.dims()[2];
    let p = distribution.clamp_min(1e-12);
    let entropy = (p.clone() * p.log()).sum_dim(2).neg().mean();
    entropy.neg().add_scalar((k as f64).ln()).reshape([1])
}

/// Harmonic concentration penalty `max(mean(sum_k p_k^2) - 1/K, 0)`: 0 for a uniform
/// distribution, `1 - 1/K` for a one-hot one. `[B, F, K]` -> `[1]`.
pub fn concentration_penalty(distribution: Tensor<3>) -> Tensor<1> {
    let k = distribution.dims()[2];
    distribution
        .powf_scalar(2.0)
        .sum_dim(2)
        .mean()
        .sub_scalar(1.0 / k as f64)
        .clamp_min(0.0)
        .reshape([1])
}
