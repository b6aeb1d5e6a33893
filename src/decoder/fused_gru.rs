//! The GRU recurrence of a whole sequence as one operation on the CPU backend (flex).
//!
//! Composed from tensor ops, each frame of a GRU is a dozen autodiff nodes and as many small
//! tensors, forward and backward; at the paper's 1000 frames that per-op overhead, not the
//! arithmetic, dominates a CPU step. Here the forward pass and its hand-written backward pass
//! run over host memory: one matrix product per frame each way (with the `gemm` crate that
//! flex's own matmul uses), the gate arithmetic in one loop, and autodiff records one node.
//!
//! [`recurrence`] runs on flex, with or without autodiff; elsewhere it answers `None` and the
//! caller composes tensor ops, which Burn's fusion compiles into GPU kernels.

use crate::dsp::host::{Mat, all_f32_on_flex, matmul, values};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

/// `h_t` for every frame, `[B, F, H]`, from the input projections `projected: [B, F, 3H]`
/// (update | reset | new, input bias included), the hidden projection `weight: [H, 3H]` and
/// `bias: [3H]`, and the state before the first frame `h0: [B, H]`, with the maths of
/// [`super::gru::FastGru`]. `None` off flex or for other float types than f32.
pub fn recurrence(
    projected: Tensor<3>,
    weight: Tensor<2>,
    bias: Tensor<1>,
    h0: Tensor<2>,
) -> Option<Tensor<3>> {
    if !all_f32_on_flex(&[
        (projected.dtype(), projected.device()),
        (weight.dtype(), weight.device()),
        (bias.dtype(), bias.device()),
        (h0.dtype(), h0.device()),
    ]) {
        return None;
    }
    Some(Tensor::from_dispatch(
        <Dispatch as GruRecurrence>::gru_recurrence(
            projected.into_dispatch(),
            weight.into_dispatch(),
            bias.into_dispatch(),
            h0.into_dispatch(),
        ),
    ))
}

/// The recurrence as a backend operation: implemented for flex and autodiff over flex.
#[backend_extension(Flex, Autodiff)]
pub trait GruRecurrence: Backend {
    /// See [`recurrence`].
    fn gru_recurrence(
        projected: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        h0: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

impl GruRecurrence for Flex {
    fn gru_recurrence(
        projected: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        h0: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let inputs = Inputs::new(projected, weight, bias, h0);
        let (out, _) = inputs.forward();
        inputs.dims.tensor(out, inputs.dims.hidden)
    }
}

impl<C: CheckpointStrategy> GruRecurrence for Autodiff<Flex, C> {
    fn gru_recurrence(
        projected: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        h0: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let nodes = [projected.node(), weight.node(), bias.node(), h0.node()];
        let inputs = Inputs::new(
            projected.into_primitive(),
            weight.into_primitive(),
            bias.into_primitive(),
            h0.into_primitive(),
        );
        match RecurrenceBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (out, gates) = inputs.forward();
                let output = inputs.dims.tensor(out.clone(), inputs.dims.hidden);
                prep.finish(Saved { inputs, out, gates }, output)
            }
            OpsKind::UnTracked(prep) => {
                let (out, _) = inputs.forward();
                prep.finish(inputs.dims.tensor(out, inputs.dims.hidden))
            }
        }
    }
}

/// Batch, frames and hidden units.
#[derive(Clone, Copy, Debug)]
struct Dims {
    batch: usize,
    frames: usize,
    hidden: usize,
}

impl Dims {
    /// A `[B, F, width]` flex tensor of host values.
    fn tensor(&self, values: Vec<f32>, width: usize) -> FlexTensor {
        FlexTensor::from_data(TensorData::new(values, [self.batch, self.frames, width]))
    }
}

/// The operation's inputs (flex tensors share their buffers: keeping them copies nothing).
#[derive(Clone, Debug)]
struct Inputs {
    projected: FlexTensor,
    weight: FlexTensor,
    bias: FlexTensor,
    h0: FlexTensor,
    dims: Dims,
}

/// What the backward pass keeps from the forward pass.
#[derive(Clone, Debug)]
struct Saved {
    inputs: Inputs,
    /// `h_t`, `[B, F, H]`.
    out: Vec<f32>,
    /// `z, r, n, Un h + cn` of every frame, `[B, F, 4H]`.
    gates: Vec<f32>,
}

impl Inputs {
    fn new(projected: FlexTensor, weight: FlexTensor, bias: FlexTensor, h0: FlexTensor) -> Self {
        let p = projected.shape();
        let dims = Dims {
            batch: p[0],
            frames: p[1],
            hidden: p[2] / 3,
        };
        let h = dims.hidden;
        assert!(
            p[2] == 3 * h
                && weight.shape().as_slice() == [h, 3 * h]
                && bias.shape().as_slice() == [3 * h]
                && h0.shape().as_slice() == [dims.batch, h],
            "GRU recurrence shapes: projected {p:?}, weight {:?}, bias {:?}, h0 {:?}",
            weight.shape(),
            bias.shape(),
            h0.shape()
        );
        Self {
            projected,
            weight,
            bias,
            h0,
            dims,
        }
    }

    /// `(h_t [B, F, H], gates [B, F, 4H])`.
    fn forward(&self) -> (Vec<f32>, Vec<f32>) {
        let Dims {
            batch: b,
            frames: f,
            hidden: h,
        } = self.dims;
        let g = 3 * h;
        let (xp, u, c) = (
            values(&self.projected),
            values(&self.weight),
            values(&self.bias),
        );
        let mut state = values(&self.h0).into_owned(); // [B, H]
        let mut out = vec![0.0f32; b * f * h];
        let mut gates = vec![0.0f32; b * f * 4 * h];
        let mut hp = vec![0.0f32; b * g]; // U h + c of the frame
        for t in 0..f {
            for row in hp.chunks_mut(g) {
                row.copy_from_slice(&c);
            }
            matmul(
                &mut hp,
                g,
                b,
                g,
                h,
                Mat::rows(&state, h),
                Mat::rows(&u, g),
                true,
            );
            let item = |i: usize, out_i: &mut [f32], gates_i: &mut [f32], state_i: &mut [f32]| {
                let x = &xp[(i * f + t) * g..][..g];
                let p = &hp[i * g..][..g];
                gru_row(x, p, state_i, &mut gates_i[t * 4 * h..][..4 * h]);
                out_i[t * h..][..h].copy_from_slice(state_i);
            };
            let widths = [f * h, f * 4 * h, h];
            per_item(
                parallel_rows(b, h),
                [&mut out, &mut gates, &mut state],
                widths,
                item,
            );
        }
        (out, gates)
    }
}

/// Gradients of the four inputs from the gradient of the output.
#[derive(Debug)]
struct RecurrenceBackward;

impl Backward<Flex, 4> for RecurrenceBackward {
    type State = Saved;

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w, node_b, node_h0] = ops.parents;
        let grad_out = grads.consume::<Flex>(&ops.node);
        let saved = ops.state;
        let Dims {
            batch: b,
            frames: f,
            hidden: h,
        } = saved.inputs.dims;
        let g = 3 * h;
        let grad_out = values(&grad_out);
        let (u, h0) = (values(&saved.inputs.weight), values(&saved.inputs.h0));
        let (out, gates) = (&saved.out, &saved.gates);
        // Per frame, from the last: d h_t (from the output and from frame t + 1) -> the
        // gradients of the gate pre-activations, d projected and d(U h + c), and d h_{t-1}.
        let mut d_projected = vec![0.0f32; b * f * g];
        let mut d_hp = vec![0.0f32; b * f * g];
        let mut carry = vec![0.0f32; b * h]; // d h_t from frame t + 1
        for t in (0..f).rev() {
            let item = |i: usize, dx_i: &mut [f32], dhp_i: &mut [f32], carry_i: &mut [f32]| {
                let s = &gates[(i * f + t) * 4 * h..][..4 * h];
                let gout = &grad_out[(i * f + t) * h..][..h];
                let prev = if t > 0 {
                    &out[(i * f + t - 1) * h..][..h]
                } else {
                    &h0[i * h..][..h]
                };
                let dx = &mut dx_i[t * g..][..g];
                let dhp = &mut dhp_i[t * g..][..g];
                for j in 0..h {
                    let (z, r, n, hn) = (s[j], s[h + j], s[2 * h + j], s[3 * h + j]);
                    let dh = gout[j] + carry_i[j];
                    let dz = dh * (prev[j] - n) * z * (1.0 - z);
                    let dn = dh * (1.0 - z) * (1.0 - n * n);
                    let dr = dn * hn * r * (1.0 - r);
                    dx[j] = dz;
                    dx[h + j] = dr;
                    dx[2 * h + j] = dn;
                    dhp[j] = dz;
                    dhp[h + j] = dr;
                    dhp[2 * h + j] = dn * r;
                    carry_i[j] = dh * z;
                }
            };
            let buffers = [&mut d_projected, &mut d_hp, &mut carry];
            per_item(parallel_rows(b, h), buffers, [f * g, f * g, h], item);
            // carry += d(U h + c)_t U^T
            let dhp_t = Mat {
                data: &d_hp[t * g..],
                rs: f * g,
                cs: 1,
            };
            let u_t = Mat {
                data: &u,
                rs: 1,
                cs: g,
            };
            matmul(&mut carry, h, b, h, g, dhp_t, u_t, true);
        }
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, saved.inputs.dims.tensor(d_projected, g));
        }
        if let Some(node) = node_w {
            // dU = sum over items and frames of h_{t-1}^T d(U h + c)_t: one product.
            let mut prev = vec![0.0f32; b * f * h];
            for i in 0..b * (f > 0) as usize {
                let p = &mut prev[i * f * h..][..f * h];
                p[..h].copy_from_slice(&h0[i * h..][..h]);
                p[h..].copy_from_slice(&out[i * f * h..][..(f - 1) * h]);
            }
            let mut du = vec![0.0f32; h * g];
            let prev_t = Mat {
                data: &prev,
                rs: 1,
                cs: h,
            };
            matmul(&mut du, g, h, g, b * f, prev_t, Mat::rows(&d_hp, g), false);
            grads.register::<Flex>(node.id, FlexTensor::from_data(TensorData::new(du, [h, g])));
        }
        if let Some(node) = node_b {
            let mut dc = vec![0.0f32; g];
            for row in d_hp.chunks(g) {
                for (a, v) in dc.iter_mut().zip(row) {
                    *a += v;
                }
            }
            grads.register::<Flex>(node.id, FlexTensor::from_data(TensorData::new(dc, [g])));
        }
        if let Some(node) = node_h0 {
            grads.register::<Flex>(
                node.id,
                FlexTensor::from_data(TensorData::new(carry, [b, h])),
            );
        }
    }
}

/// One GRU step of one row: `x` the input projection (`[3H]`, update | reset | new, input
/// bias included), `p = U h + c` (`[3H]`); updates `state` (`[H]`) to the new `h` and writes
/// `z, r, n, Un h + cn` to `gates` (`[4H]`). Also the streaming decoder's step.
pub(super) fn gru_row(x: &[f32], p: &[f32], state: &mut [f32], gates: &mut [f32]) {
    let h = state.len();
    for j in 0..h {
        let z = sigmoid(x[j] + p[j]);
        let r = sigmoid(x[h + j] + p[h + j]);
        let hn = p[2 * h + j];
        let n = (x[2 * h + j] + r * hn).tanh();
        state[j] = n + z * (state[j] - n);
        gates[j] = z;
        gates[h + j] = r;
        gates[2 * h + j] = n;
        gates[3 * h + j] = hn;
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// `op(i, a_i, b_i, c_i)` for every batch item `i`, with item `i`'s part of each buffer (the
/// buffers hold items of the given widths one after the other), over threads when `parallel`.
fn per_item<F>(parallel: bool, buffers: [&mut Vec<f32>; 3], widths: [usize; 3], op: F)
where
    F: Fn(usize, &mut [f32], &mut [f32], &mut [f32]) + Sync,
{
    let [a, b, c] = buffers;
    let [wa, wb, wc] = widths;
    if parallel {
        a.par_chunks_mut(wa)
            .zip(b.par_chunks_mut(wb))
            .zip(c.par_chunks_mut(wc))
            .enumerate()
            .for_each(|(i, ((a, b), c))| op(i, a, b, c));
    } else {
        a.chunks_mut(wa)
            .zip(b.chunks_mut(wb))
            .zip(c.chunks_mut(wc))
            .enumerate()
            .for_each(|(i, ((a, b), c))| op(i, a, b, c));
    }
}

/// Whether a frame's gate arithmetic is worth splitting over threads.
fn parallel_rows(batch: usize, hidden: usize) -> bool {
    batch > 1 && batch * hidden >= 4096
}
