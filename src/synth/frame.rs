//! The synth's control scaling frame by frame on the host, allocation-free: the streaming
//! engine's `get_controls`.
//!
//! [`FrameControls`] applies a [`Synth`]'s scaling ([`Harmonic::get_controls`],
//! [`FilteredNoise::get_controls`]) and its causal smoothing to [`RawFrames`], carrying the
//! smoothing history from call to call as [`Synth::get_controls_continued`] does; every
//! buffer is allocated up front. The element-wise formulas are [`dsp::scalar`]'s.
//!
//! [`Harmonic::get_controls`]: super::Harmonic::get_controls
//! [`FilteredNoise::get_controls`]: super::FilteredNoise::get_controls

use super::{HarmonicScaling, NoiseScaling, SmoothingTarget, Synth, ar_step};
use crate::dsp::scalar::{exp_sigmoid, sigmoid, softplus};

/// Raw controls of up to a fixed number of frames, row-major (the host form of
/// [`super::RawControls`]); the first `frames` rows are valid.
#[derive(Clone, Debug)]
pub struct RawFrames {
    /// Valid frames.
    pub frames: usize,
    /// Overall harmonic amplitude, `[max_frames]`.
    pub amplitude: Vec<f32>,
    /// Harmonic distribution, `[max_frames, K]`.
    pub distribution: Vec<f32>,
    /// Raw noise controls, `[max_frames, R]`.
    pub noise: Vec<f32>,
}

impl RawFrames {
    /// Room for `max_frames` frames of `harmonics` and `noise` raw values.
    pub fn new(max_frames: usize, harmonics: usize, noise: usize) -> Self {
        Self {
            frames: 0,
            amplitude: vec![0.0; max_frames],
            distribution: vec![0.0; max_frames * harmonics],
            noise: vec![0.0; max_frames * noise],
        }
    }
}

/// Scaled controls of up to a fixed number of frames (the host form of
/// [`super::SynthControls`], f0 aside); the first `frames` rows are valid.
#[derive(Clone, Debug)]
pub struct ControlFrames {
    /// Valid frames.
    pub frames: usize,
    /// Overall harmonic amplitude, `[max_frames]`.
    pub amplitude: Vec<f32>,
    /// Harmonic distribution, `[max_frames, K]`.
    pub distribution: Vec<f32>,
    /// Noise band magnitudes, `[max_frames, M]` (none without a noise branch).
    pub noise: Vec<f32>,
}

/// One smoothed stream: the last `kernel - 1` input frames.
#[derive(Clone, Debug)]
struct Smoothing {
    /// `[l - 1, C]`, oldest first; meaningful once `started` (before, the first frame is held).
    history: Vec<f32>,
    started: bool,
    /// The history followed by this call's inputs, `[l - 1 + max, C]`.
    window: Vec<f32>,
}

/// A [`Synth`]'s control scaling and smoothing on the host: see the module doc.
#[derive(Clone, Debug)]
pub struct FrameControls {
    harmonic: HarmonicScaling,
    sample_rate: f32,
    softmax_amp_floor: f32,
    gain_db: (f32, f32),
    noise: Option<(NoiseScaling, f32)>,
    harmonics: usize,
    raw_noise: usize,
    bands: usize,
    max_frames: usize,
    kernel: Vec<f32>,
    /// Smoothing of the amplitude, distribution and noise streams, where selected.
    smoothing: [Option<Smoothing>; 3],
    /// The AR residual path, when on.
    residual: Option<Residual>,
}

/// The AR residual path's coefficient, its states `[1]`, `[K]`, `[R]`, and the states of a
/// call's frames (what is scaled).
#[derive(Clone, Debug)]
struct Residual {
    a: f32,
    state: [Vec<f32>; 3],
    raw: RawFrames,
}

impl Residual {
    /// `raw`'s frames through the recursion into `self.raw`, the states moving on.
    fn apply(&mut self, raw: &RawFrames) {
        let n = raw.frames;
        self.raw.frames = n;
        let streams = [
            (&raw.amplitude, &mut self.raw.amplitude),
            (&raw.distribution, &mut self.raw.distribution),
            (&raw.noise, &mut self.raw.noise),
        ];
        for ((from, to), state) in streams.into_iter().zip(&mut self.state) {
            let len = n * state.len();
            to[..len].copy_from_slice(&from[..len]);
            ar_step(self.a, state, &mut to[..len]);
        }
    }
}

impl FrameControls {
    /// The scaling of `synth` for `harmonics` distribution values and `raw_noise` raw noise
    /// values per frame, up to `max_frames` frames per call.
    pub fn new(synth: &Synth, harmonics: usize, raw_noise: usize, max_frames: usize) -> Self {
        let h = &synth.harmonic;
        let noise = synth
            .noise
            .as_ref()
            .map(|n| (n.scaling, n.initial_bias as f32));
        let bands = match noise {
            Some((NoiseScaling::SigmoidGain, _)) => raw_noise.saturating_sub(1).max(1),
            Some((NoiseScaling::ExpSigmoid, _)) => raw_noise,
            None => 0,
        };
        let kernel = synth.smoother().kernel().to_vec();
        let l = kernel.len();
        let targets = &synth.smoother().targets;
        let stream = |target: SmoothingTarget, channels: usize| {
            (l > 1 && targets.contains(&target)).then(|| Smoothing {
                history: vec![0.0; (l - 1) * channels],
                started: false,
                window: vec![0.0; (l - 1 + max_frames) * channels],
            })
        };
        Self {
            harmonic: h.scaling,
            sample_rate: h.sample_rate() as f32,
            softmax_amp_floor: h.softmax_amp_floor as f32,
            gain_db: (h.gain_db.0 as f32, h.gain_db.1 as f32),
            noise,
            harmonics,
            raw_noise,
            bands,
            max_frames,
            smoothing: [
                stream(SmoothingTarget::HarmonicGain, 1),
                stream(SmoothingTarget::HarmonicDistribution, harmonics),
                stream(SmoothingTarget::NoiseGain, bands),
            ],
            kernel,
            residual: synth.residual().map(|a| Residual {
                a: a as f32,
                state: [vec![0.0; 1], vec![0.0; harmonics], vec![0.0; raw_noise]],
                raw: RawFrames::new(max_frames, harmonics, raw_noise),
            }),
        }
    }

    /// An output buffer for [`Self::scale`] (allocates; make it once).
    pub fn output(&self) -> ControlFrames {
        let m = self.max_frames;
        ControlFrames {
            frames: 0,
            amplitude: vec![0.0; m],
            distribution: vec![0.0; m * self.harmonics],
            noise: vec![0.0; m * self.bands],
        }
    }

    /// Forget the smoothing history and the residual states.
    pub fn reset(&mut self) {
        for s in self.smoothing.iter_mut().flatten() {
            s.started = false;
        }
        if let Some(r) = &mut self.residual {
            r.state.iter_mut().for_each(|s| s.fill(0.0));
        }
    }

    /// Scale `raw` for `f0_hz` (one value per frame) into `out`, continuing the smoothing of
    /// earlier calls; `temperature` is the softmax temperature (softmax-db). Allocates nothing.
    pub fn scale(
        &mut self,
        raw: &RawFrames,
        f0_hz: &[f32],
        temperature: f64,
        out: &mut ControlFrames,
    ) {
        let (n, k) = (raw.frames, self.harmonics);
        assert!(
            n <= self.max_frames && f0_hz.len() >= n,
            "scale: {n} frames (at most {}), {} f0 values",
            self.max_frames,
            f0_hz.len()
        );
        let raw = match &mut self.residual {
            Some(r) => {
                r.apply(raw);
                &r.raw
            }
            None => raw,
        };
        for (t, &f0) in f0_hz[..n].iter().enumerate() {
            let a = raw.amplitude[t];
            let d = &raw.distribution[t * k..][..k];
            let dist = &mut out.distribution[t * k..][..k];
            out.amplitude[t] = match self.harmonic {
                HarmonicScaling::ExpSigmoid => {
                    let nyquist = self.sample_rate / 2.0;
                    for (h, (y, x)) in dist.iter_mut().zip(d).enumerate() {
                        let audible = f0 * ((h + 1) as f32) < nyquist;
                        *y = if audible { exp_sigmoid(*x) } else { 0.0 };
                    }
                    normalise(dist);
                    exp_sigmoid(a)
                }
                HarmonicScaling::Legacy => {
                    for (y, x) in dist.iter_mut().zip(d) {
                        *y = sigmoid(*x) / k as f32;
                    }
                    sigmoid(a)
                }
                HarmonicScaling::Normalized => {
                    for (y, x) in dist.iter_mut().zip(d) {
                        *y = softplus(*x);
                    }
                    normalise(dist);
                    softplus(a)
                }
                HarmonicScaling::SoftmaxDb => {
                    let floor = self.softmax_amp_floor;
                    let top = d.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v));
                    let temperature = temperature as f32;
                    let mut total = 0.0;
                    for (y, x) in dist.iter_mut().zip(d) {
                        *y = ((x - top) / temperature).exp();
                        total += *y;
                    }
                    for y in dist.iter_mut() {
                        *y = *y / total * (1.0 - floor) + floor / k as f32;
                    }
                    let (lo, hi) = self.gain_db;
                    let db = lo + (hi - lo) * sigmoid(a);
                    (db * std::f32::consts::LN_10 / 20.0).exp()
                }
            };
            if let Some((scaling, bias)) = self.noise {
                let r = self.raw_noise;
                let x = &raw.noise[t * r..][..r];
                let y = &mut out.noise[t * self.bands..][..self.bands];
                match scaling {
                    NoiseScaling::ExpSigmoid => {
                        for (y, x) in y.iter_mut().zip(x) {
                            *y = exp_sigmoid(x + bias);
                        }
                    }
                    NoiseScaling::SigmoidGain => {
                        let gain = sigmoid(x[0]);
                        if r > 1 {
                            for (y, x) in y.iter_mut().zip(&x[1..]) {
                                *y = gain * sigmoid(*x);
                            }
                        } else {
                            y[0] = gain;
                        }
                    }
                }
            }
        }
        let [amplitude, distribution, noise] = &mut self.smoothing;
        let streams = [
            (amplitude, &mut out.amplitude, 1),
            (distribution, &mut out.distribution, k),
            (noise, &mut out.noise, self.bands),
        ];
        for (smoothing, values, channels) in streams {
            if let Some(s) = smoothing {
                smooth(s, &self.kernel, &mut values[..n * channels], channels);
            }
        }
        out.frames = n;
    }
}

/// Divide by the sum, floored at `1e-7` ([`crate::dsp::normalize_harmonics`]).
fn normalise(values: &mut [f32]) {
    let total = values.iter().sum::<f32>().max(1e-7);
    for v in values {
        *v /= total;
    }
}

/// Causal FIR smoothing of `values` (`[n, C]`) in place: `y[t] = sum_j w[j] x[t - j]` over the
/// stream's history (the first frame held before the first call); the history moves on.
fn smooth(s: &mut Smoothing, kernel: &[f32], values: &mut [f32], c: usize) {
    let l = kernel.len();
    let n = values.len() / c.max(1);
    if n == 0 || c == 0 {
        return;
    }
    let past = (l - 1) * c;
    if s.started {
        s.window[..past].copy_from_slice(&s.history);
    } else {
        for f in 0..l - 1 {
            s.window[f * c..][..c].copy_from_slice(&values[..c]);
        }
    }
    s.window[past..past + n * c].copy_from_slice(values);
    for t in 0..n {
        for ch in 0..c {
            let mut acc = 0.0f32;
            for (j, w) in kernel.iter().enumerate() {
                acc += w * s.window[(l - 1 + t - j) * c + ch];
            }
            values[t * c + ch] = acc;
        }
    }
    s.history.copy_from_slice(&s.window[n * c..n * c + past]);
    s.started = true;
}
