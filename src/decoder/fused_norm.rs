//! LayerNorm followed by a leaky ReLU, the tail of every fully connected layer, as one
//! operation on the CPU backend (flex).
//!
//! Under autodiff Burn composes LayerNorm and leaky ReLU from about ten element-wise tensor
//! ops, each a pass over `[B, F, width]` memory forward and again backward; at the paper
//! shape that costs as much as a layer's matrix product. Here each row is normalised, scaled,
//! shifted and rectified in one pass, and the backward pass is the closed-form LayerNorm
//! gradient, one pass too. Off flex, [`norm_leaky_relu`] answers `None` and the caller
//! composes Burn's modules.

use crate::dsp::host::{all_f32_on_flex, values};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

/// `leaky_relu(layer_norm(x) * gamma + beta, slope)` over the last axis of `x: [B, F, D]`
/// (`gamma`, `beta`: `[D]`; variance without Bessel's correction, as Burn's LayerNorm).
/// `None` off flex or for other float types than f32.
pub fn norm_leaky_relu(
    x: Tensor<3>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
    slope: f64,
) -> Option<Tensor<3>> {
    if !all_f32_on_flex(&[
        (x.dtype(), x.device()),
        (gamma.dtype(), gamma.device()),
        (beta.dtype(), beta.device()),
    ]) {
        return None;
    }
    Some(Tensor::from_dispatch(
        <Dispatch as NormLeakyRelu>::norm_leaky_relu(
            x.into_dispatch(),
            gamma.into_dispatch(),
            beta.into_dispatch(),
            epsilon,
            slope,
        ),
    ))
}

/// The operation as a backend extension: implemented for flex and autodiff over flex.
#[backend_extension(Flex, Autodiff)]
pub trait NormLeakyRelu: Backend {
    /// See [`norm_leaky_relu`].
    fn norm_leaky_relu(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        slope: f64,
    ) -> FloatTensor<Self>;
}

impl NormLeakyRelu for Flex {
    fn norm_leaky_relu(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        slope: f64,
    ) -> FloatTensor<Self> {
        Inputs::new(x, gamma, beta, epsilon, slope).forward().0
    }
}

impl<C: CheckpointStrategy> NormLeakyRelu for Autodiff<Flex, C> {
    fn norm_leaky_relu(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        slope: f64,
    ) -> FloatTensor<Self> {
        let nodes = [x.node(), gamma.node(), beta.node()];
        let inputs = Inputs::new(
            x.into_primitive(),
            gamma.into_primitive(),
            beta.into_primitive(),
            epsilon,
            slope,
        );
        match NormBackward.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (out, stats) = inputs.forward();
                prep.finish((inputs, stats), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(inputs.forward().0),
        }
    }
}

/// The operation's inputs (flex tensors share their buffers: keeping them copies nothing).
#[derive(Clone, Debug)]
struct Inputs {
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    epsilon: f32,
    slope: f32,
    width: usize,
}

/// Rows per parallel task.
const ROWS_PER_TASK: usize = 64;

impl Inputs {
    fn new(x: FlexTensor, gamma: FlexTensor, beta: FlexTensor, epsilon: f64, slope: f64) -> Self {
        let shape = x.shape();
        let width = shape[shape.len() - 1];
        assert!(
            gamma.shape().as_slice() == [width] && beta.shape().as_slice() == [width],
            "norm shapes: x {shape:?}, gamma {:?}, beta {:?}",
            gamma.shape(),
            beta.shape()
        );
        Self {
            x,
            gamma,
            beta,
            epsilon: epsilon as f32,
            slope: slope as f32,
            width,
        }
    }

    /// The output, and each row's `(mean, 1 / sqrt(variance + epsilon))`.
    fn forward(&self) -> (FlexTensor, Vec<[f32; 2]>) {
        let d = self.width;
        let (x, gamma, beta) = (values(&self.x), values(&self.gamma), values(&self.beta));
        let mut out = vec![0.0f32; x.len()];
        let mut stats = vec![[0.0f32; 2]; x.len() / d.max(1)];
        out.par_chunks_mut(d * ROWS_PER_TASK)
            .zip(stats.par_chunks_mut(ROWS_PER_TASK))
            .zip(x.par_chunks(d * ROWS_PER_TASK))
            .for_each(|((out, stats), x)| {
                for ((y, s), x) in out.chunks_mut(d).zip(stats).zip(x.chunks(d)) {
                    *s = norm_leaky_relu_row(x, &gamma, &beta, [self.epsilon, self.slope], y);
                }
            });
        let shape = self.x.shape();
        (FlexTensor::from_data(TensorData::new(out, shape)), stats)
    }
}

/// One row of [`norm_leaky_relu`] into `y`, with `[epsilon, slope]`; returns the row's
/// `(mean, 1 / sqrt(variance + epsilon))`. Also the streaming decoder's layer tail.
pub(super) fn norm_leaky_relu_row(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    [epsilon, slope]: [f32; 2],
    y: &mut [f32],
) -> [f32; 2] {
    let [mean, rstd] = row_stats(x, epsilon);
    for j in 0..x.len() {
        let z = (x[j] - mean) * rstd * gamma[j] + beta[j];
        y[j] = if z < 0.0 { z * slope } else { z };
    }
    [mean, rstd]
}

/// `(mean, 1 / sqrt(variance + epsilon))` of a row, accumulated in `f64` in four partial
/// sums (one sequential `f64` sum per row was the streaming decoder's largest cost after its
/// matrix products: an add's latency per value).
fn row_stats(x: &[f32], epsilon: f32) -> [f32; 2] {
    let n = x.len().max(1) as f64;
    let mean = sum4(x, |v| v as f64) / n;
    let var = sum4(x, |v| (v as f64 - mean).powi(2)) / n;
    [mean as f32, (1.0 / (var + epsilon as f64).sqrt()) as f32]
}

/// `sum_i f(x[i])` in four partial sums.
#[inline(always)]
fn sum4(x: &[f32], f: impl Fn(f32) -> f64) -> f64 {
    let (chunks, tail) = x.as_chunks::<4>();
    let mut acc = [0.0f64; 4];
    for c in chunks {
        for l in 0..4 {
            acc[l] += f(c[l]);
        }
    }
    (acc[0] + acc[2]) + (acc[1] + acc[3]) + tail.iter().map(|&v| f(v)).sum::<f64>()
}

/// Gradients of x, gamma and beta from the gradient of the output.
#[derive(Debug)]
struct NormBackward;

impl Backward<Flex, 3> for NormBackward {
    type State = (Inputs, Vec<[f32; 2]>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let grad = values(&grad);
        let (inputs, stats) = ops.state;
        let d = inputs.width;
        let (x, gamma, beta) = (
            values(&inputs.x),
            values(&inputs.gamma),
            values(&inputs.beta),
        );
        let mut dx = vec![0.0f32; x.len()];
        // Per task: the task's sums of d gamma and d beta, `[2D]`.
        let partial: Vec<Vec<f32>> = dx
            .par_chunks_mut(d * ROWS_PER_TASK)
            .zip(x.par_chunks(d * ROWS_PER_TASK))
            .zip(grad.par_chunks(d * ROWS_PER_TASK))
            .zip(stats.par_chunks(ROWS_PER_TASK))
            .map(|(((dx, x), g), stats)| {
                let mut sums = vec![0.0f32; 2 * d];
                let mut dxhat = vec![0.0f32; d];
                let rows = dx.chunks_mut(d).zip(x.chunks(d)).zip(g.chunks(d));
                for (((dx, x), g), &[mean, rstd]) in rows.zip(stats) {
                    let (mut m1, mut m2) = (0.0f32, 0.0f32);
                    for j in 0..d {
                        let xhat = (x[j] - mean) * rstd;
                        let z = xhat * gamma[j] + beta[j];
                        let dz = if z < 0.0 { g[j] * inputs.slope } else { g[j] };
                        sums[j] += dz * xhat;
                        sums[d + j] += dz;
                        dxhat[j] = dz * gamma[j];
                        m1 += dxhat[j];
                        m2 += dxhat[j] * xhat;
                    }
                    let (m1, m2) = (m1 / d as f32, m2 / d as f32);
                    for j in 0..d {
                        let xhat = (x[j] - mean) * rstd;
                        dx[j] = rstd * (dxhat[j] - m1 - xhat * m2);
                    }
                }
                sums
            })
            .collect();
        let mut sums = vec![0.0f32; 2 * d];
        for p in partial {
            for (a, v) in sums.iter_mut().zip(p) {
                *a += v;
            }
        }
        let [node_x, node_gamma, node_beta] = ops.parents;
        if let Some(node) = node_x {
            let t = FlexTensor::from_data(TensorData::new(dx, inputs.x.shape()));
            grads.register::<Flex>(node.id, t);
        }
        let (d_gamma, d_beta) = sums.split_at(d);
        for (node, v) in [(node_gamma, d_gamma), (node_beta, d_beta)] {
            if let Some(node) = node {
                let t = FlexTensor::from_data(TensorData::new(v.to_vec(), [d]));
                grads.register::<Flex>(node.id, t);
            }
        }
    }
}
