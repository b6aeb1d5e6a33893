//! The multi-scale spectral loss against fixed target magnitudes as one operation on the CPU
//! backend (flex).
//!
//! Composed from tensor ops, every scale frames the signal, transforms it, and builds a
//! dozen `[B, frames, bins]` tensors (power, magnitude, log, differences, their gradients)
//! forward and backward. Here each frame is windowed and transformed with `realfft`, both
//! differences are summed on the spot, and the backward pass recomputes the frame's spectrum
//! and takes the adjoint transform (an inverse real FFT) straight into the signal's gradient.
//! The maths is [`SpectralLoss::forward_with_target`]'s; only the rounding differs.

use super::{SpectralLogForm, SpectralLoss, SpectralTerms, Spectrograms};
use crate::dsp::host::{all_f32_on_flex, values};
use crate::loss::SpectralLossMode;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;
use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use std::f64::consts::PI;
use std::sync::Arc;

/// Both terms of `loss` for `prediction: [B, N]` against `target`, as one operation; `None`
/// off flex, for other float types than f32, or when the target's shapes do not fit.
pub(crate) fn terms(
    loss: &SpectralLoss,
    prediction: Tensor<2>,
    target: &Spectrograms,
) -> Option<SpectralTerms> {
    let [b, n] = prediction.dims();
    let mut tensors = vec![(prediction.dtype(), prediction.device())];
    tensors.extend(target.magnitudes.iter().map(|t| (t.dtype(), t.device())));
    if !all_f32_on_flex(&tensors) || target.magnitudes.len() != loss.fft_sizes.len() {
        return None;
    }
    let mut scales = Vec::with_capacity(loss.fft_sizes.len());
    for (&n_fft, t) in loss.fft_sizes.iter().zip(&target.magnitudes) {
        let scale = Scale::new(n_fft, loss.hop(n_fft), n);
        if t.dims() != [b, scale.frames, scale.bins] {
            return None;
        }
        scales.push((scale, values_of(t)));
    }
    let settings = Settings {
        scales: Arc::new(scales),
        mode: loss.mode,
        log_epsilon: loss.log_epsilon as f32,
        log_form: loss.log_form,
        power_floor: loss.power_floor as f32,
    };
    let out: Tensor<1> = Tensor::from_dispatch(<Dispatch as SpectralTermsOp>::spectral_terms(
        prediction.into_dispatch(),
        settings,
    ));
    Some(SpectralTerms {
        magnitude: out.clone().narrow(0, 0, 1),
        log_magnitude: out.narrow(0, 1, 1),
    })
}

/// A tensor's values on the host.
fn values_of(t: &Tensor<3>) -> Vec<f32> {
    t.to_data()
        .try_into_vec::<f32>()
        .expect("f32 spectrogram (checked)")
}

/// The loss as a backend operation: implemented for flex and autodiff over flex.
#[backend_extension(Flex, Autodiff)]
pub trait SpectralTermsOp: Backend {
    /// `[magnitude term, log-magnitude term]` of `prediction: [B, N]`; see [`terms`].
    fn spectral_terms(prediction: FloatTensor<Self>, settings: Settings) -> FloatTensor<Self>;
}

impl SpectralTermsOp for Flex {
    fn spectral_terms(prediction: FloatTensor<Self>, settings: Settings) -> FloatTensor<Self> {
        let values = settings.forward(&prediction);
        FlexTensor::from_data(TensorData::new(values.to_vec(), [2]))
    }
}

impl<C: CheckpointStrategy> SpectralTermsOp for Autodiff<Flex, C> {
    fn spectral_terms(prediction: FloatTensor<Self>, settings: Settings) -> FloatTensor<Self> {
        let node = prediction.node();
        let prediction = prediction.into_primitive();
        let values = settings.forward(&prediction);
        let out = FlexTensor::from_data(TensorData::new(values.to_vec(), [2]));
        match TermsBackward
            .prepare::<C>([node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((settings, prediction), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }
}

/// One STFT scale: FFT size, hop, frame count and bins for signals of `N` samples (frames
/// every `hop` from sample 0, the end zero-padded: `frames = max(1, ceil(N / hop))`), with
/// its FFT plans (planned once, shared by every item's task forward and backward).
#[derive(Clone)]
struct Scale {
    n_fft: usize,
    hop: usize,
    frames: usize,
    bins: usize,
    /// Periodic Hann window, `[n_fft]`.
    window: Vec<f32>,
    forward: Arc<dyn RealToComplex<f32>>,
    inverse: Arc<dyn ComplexToReal<f32>>,
}

impl std::fmt::Debug for Scale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scale")
            .field("n_fft", &self.n_fft)
            .field("hop", &self.hop)
            .field("frames", &self.frames)
            .finish()
    }
}

impl Scale {
    fn new(n_fft: usize, hop: usize, n: usize) -> Self {
        let mut planner = RealFftPlanner::<f32>::new();
        Self {
            forward: planner.plan_fft_forward(n_fft),
            inverse: planner.plan_fft_inverse(n_fft),
            n_fft,
            hop,
            frames: n.div_ceil(hop).max(1),
            bins: n_fft / 2 + 1,
            window: (0..n_fft)
                .map(|i| (0.5 - 0.5 * (2.0 * PI * i as f64 / n_fft as f64).cos()) as f32)
                .collect(),
        }
    }
}

/// What the operation computes with: the scales and their target magnitudes, and the loss's
/// settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Each scale with its target magnitudes `[B, frames, bins]`.
    scales: Arc<Vec<(Scale, Vec<f32>)>>,
    mode: SpectralLossMode,
    log_epsilon: f32,
    log_form: SpectralLogForm,
    power_floor: f32,
}

/// Per-thread FFT plans and buffers of one scale.
struct Work {
    forward: Arc<dyn RealToComplex<f32>>,
    inverse: Arc<dyn ComplexToReal<f32>>,
    frame: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
}

impl Work {
    fn new(scale: &Scale) -> Self {
        let (forward, inverse) = (scale.forward.clone(), scale.inverse.clone());
        let scratch_len = forward
            .get_scratch_len()
            .max(inverse.get_scratch_len())
            .max(1);
        Self {
            frame: forward.make_input_vec(),
            spectrum: forward.make_output_vec(),
            scratch: vec![Complex::default(); scratch_len],
            forward,
            inverse,
        }
    }

    /// The windowed spectrum of frame `i` of `audio` (one item), into `self.spectrum`.
    fn transform(&mut self, scale: &Scale, audio: &[f32], i: usize) {
        let start = i * scale.hop;
        for (t, slot) in self.frame.iter_mut().enumerate() {
            *slot = audio.get(start + t).map_or(0.0, |x| x * scale.window[t]);
        }
        self.forward
            .process_with_scratch(&mut self.frame, &mut self.spectrum, &mut self.scratch)
            .expect("buffers made by the plan");
    }
}

impl Settings {
    /// `sqrt(|X|^2 + floor)` of one bin.
    fn magnitude(&self, x: Complex<f32>) -> f32 {
        (x.norm_sqr() + self.power_floor).sqrt()
    }

    /// The logarithm of a magnitude, and its derivative.
    fn log(&self, m: f32) -> (f32, f32) {
        let eps = self.log_epsilon;
        match self.log_form {
            SpectralLogForm::PlusEps => ((m + eps).ln(), 1.0 / (m + eps)),
            SpectralLogForm::SafeLog if m <= 0.0 => (eps.ln(), 0.0),
            SpectralLogForm::MaxEps if m < eps => (eps.ln(), 0.0),
            _ => (m.ln(), 1.0 / m),
        }
    }

    /// The loss of a difference, and its derivative.
    fn norm(&self, d: f32) -> (f32, f32) {
        match self.mode {
            SpectralLossMode::L1 => (d.abs(), if d == 0.0 { 0.0 } else { d.signum() }),
            SpectralLossMode::L2 => (d * d, 2.0 * d),
        }
    }

    /// Calls `op(scale index, item, work, audio row)` for every scale and item, over threads,
    /// and collects the results.
    fn each<T: Send>(
        &self,
        audio: &FlexTensor,
        op: impl Fn(usize, usize, &mut Work, &[f32]) -> T + Sync,
    ) -> Vec<T> {
        let shape = audio.shape();
        let (b, n) = (shape[0], shape[1]);
        let audio = values(audio);
        (0..self.scales.len() * b)
            .into_par_iter()
            .map(|task| {
                let (s, item) = (task / b, task % b);
                let mut work = Work::new(&self.scales[s].0);
                op(s, item, &mut work, &audio[item * n..][..n])
            })
            .collect()
    }

    /// `[magnitude term, log term]`: per scale, the means of the differences' norms over
    /// items, frames and bins; summed over scales.
    fn forward(&self, audio: &FlexTensor) -> [f32; 2] {
        let b = audio.shape()[0];
        let sums = self.each(audio, |s, item, work, row| {
            let (scale, target) = &self.scales[s];
            let mut sums = [0.0f64; 2];
            for i in 0..scale.frames {
                work.transform(scale, row, i);
                let t = &target[(item * scale.frames + i) * scale.bins..][..scale.bins];
                for (x, &m_t) in work.spectrum.iter().zip(t) {
                    let m = self.magnitude(*x);
                    sums[0] += self.norm(m - m_t).0 as f64;
                    sums[1] += self.norm(self.log(m).0 - self.log(m_t).0).0 as f64;
                }
            }
            let count = (b * scale.frames * scale.bins) as f64;
            sums.map(|v| v / count)
        });
        let mut total = [0.0f64; 2];
        for s in sums {
            total[0] += s[0];
            total[1] += s[1];
        }
        total.map(|v| v as f32)
    }

    /// The gradient of `g[0] * magnitude term + g[1] * log term` with respect to the audio.
    fn backward(&self, audio: &FlexTensor, g: [f32; 2]) -> Vec<f32> {
        let shape = audio.shape();
        let (b, n) = (shape[0], shape[1]);
        let rows = self.each(audio, |s, item, work, row| {
            let (scale, target) = &self.scales[s];
            let count = (b * scale.frames * scale.bins) as f32;
            let (g_mag, g_log) = (g[0] / count, g[1] / count);
            let mut d_row = vec![0.0f32; n];
            let last = scale.bins - 1;
            for i in 0..scale.frames {
                work.transform(scale, row, i);
                let t = &target[(item * scale.frames + i) * scale.bins..][..scale.bins];
                for (k, (x, &m_t)) in work.spectrum.iter_mut().zip(t).enumerate() {
                    let m = self.magnitude(*x);
                    let (log_m, d_log) = self.log(m);
                    let d_m = g_mag * self.norm(m - m_t).1
                        + g_log * self.norm(log_m - self.log(m_t).0).1 * d_log;
                    // d|X| / dX = X / |X| (0 where |X| is 0); the adjoint of the one-sided
                    // transform counts the inner bins twice, the inverse FFT's Hermitian
                    // extension does so too: halve them.
                    let scale_k = if m > 0.0 { d_m / m } else { 0.0 };
                    let edge = k == 0 || (k == last && scale.n_fft % 2 == 0);
                    *x *= scale_k * if edge { 1.0 } else { 0.5 };
                    if edge {
                        x.im = 0.0;
                    }
                }
                work.inverse
                    .process_with_scratch(&mut work.spectrum, &mut work.frame, &mut work.scratch)
                    .expect("buffers made by the plan");
                let start = i * scale.hop;
                let end = (start + scale.n_fft).min(n);
                for (t, d) in d_row[start.min(end)..end].iter_mut().enumerate() {
                    *d += work.frame[t] * scale.window[t];
                }
            }
            d_row
        });
        let mut d = vec![0.0f32; b * n];
        for (task, row) in rows.iter().enumerate() {
            let item = task % b;
            for (dst, v) in d[item * n..][..n].iter_mut().zip(row) {
                *dst += v;
            }
        }
        d
    }
}

/// The gradient of the audio from the gradients of the two terms.
#[derive(Debug)]
struct TermsBackward;

impl Backward<Flex, 1> for TermsBackward {
    type State = (Settings, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let g = values(&grad);
        let (settings, audio) = ops.state;
        let d = settings.backward(&audio, [g[0], g[1]]);
        if let [Some(node)] = ops.parents {
            let shape = [audio.shape()[0], audio.shape()[1]];
            grads.register::<Flex>(node.id, FlexTensor::from_data(TensorData::new(d, shape)));
        }
    }
}
