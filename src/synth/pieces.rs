//! Rendering a long signal in pieces: [`SynthState`] carries everything one call hands to the
//! next, so that consecutive [`Synth::render`] calls on consecutive pieces of frames, then
//! [`Synth::finish`], give the audio of one [`Synth::forward`] on all the frames.

use burn::tensor::{Device, Int, Tensor};

use super::{SmoothingTarget, Synth, SynthControls, SynthOutput};

/// What a [`Synth`] carries from one piece of frames to the next.
///
/// Output lags input: the last hop of a frame interpolates towards the next frame, so a frame
/// is rendered once its successor arrives (or at [`Synth::finish`]); the filtered noise is
/// centred on its frame, so its last `taps / 2` samples wait for the next piece too. A piece
/// therefore returns up to `frames * hop` samples, the rest following later; the total equals
/// the one-pass render sample for sample.
#[derive(Clone, Debug)]
pub struct SynthState {
    seed: u64,
    /// Frames taken in so far (the noise stream's position is `frames * hop`).
    frames: usize,
    /// The last frame taken in, not rendered yet: `[B, 1]`-framed controls.
    pending: Option<SynthControls>,
    /// Oscillator phase (fixed point) at the pending frame.
    phase: Option<Tensor<2, Int>>,
    /// Filtered noise beyond the frames taken in: `[B, taps - 1]`.
    noise_tail: Option<Tensor<2>>,
    /// Samples at the start of the noise still to drop (the filter delay).
    noise_skip: usize,
    /// Rendered, not yet returned (the branches finish at different points).
    harmonic_queue: Option<Tensor<2>>,
    noise_queue: Option<Tensor<2>>,
    /// Reverb output beyond the samples returned: `[B, length - 1]`.
    reverb_tail: Option<Tensor<2>>,
    /// Per smoothing target, the last `kernel - 1` control frames before the next piece.
    history: [Option<Tensor<3>>; 3],
    /// The AR residual states after the last frame (amplitude, distribution, noise).
    pub(super) residual: [Option<Tensor<3>>; 3],
    /// Samples returned so far.
    emitted: usize,
    /// Batch size and device, known from the first piece.
    shape: Option<(usize, Device)>,
}

impl SynthState {
    /// A fresh state; `seed` picks the noise (the same seed as [`Synth::forward`] renders the
    /// same noise).
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            frames: 0,
            pending: None,
            phase: None,
            noise_tail: None,
            noise_skip: usize::MAX,
            harmonic_queue: None,
            noise_queue: None,
            reverb_tail: None,
            history: [None, None, None],
            residual: [None, None, None],
            emitted: 0,
            shape: None,
        }
    }

    /// Frames taken in so far.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Samples returned so far.
    pub fn samples_out(&self) -> usize {
        self.emitted
    }

    /// The control history of a smoothing target, to continue smoothing across pieces.
    pub(super) fn history(&mut self, target: SmoothingTarget) -> &mut Option<Tensor<3>> {
        &mut self.history[target as usize]
    }
}

/// `[a, b]` along samples, either possibly absent.
fn append(queue: Option<Tensor<2>>, more: Tensor<2>) -> Tensor<2> {
    match queue {
        Some(q) if q.dims()[1] > 0 => Tensor::cat(vec![q, more], 1),
        _ => more,
    }
}

fn len(t: &Option<Tensor<2>>) -> usize {
    t.as_ref().map(|t| t.dims()[1]).unwrap_or(0)
}

/// Split `[B, N]` at sample `n`.
fn split(t: Tensor<2>, n: usize) -> (Tensor<2>, Tensor<2>) {
    let [b, total] = t.dims();
    (t.clone().slice([0..b, 0..n]), t.slice([0..b, n..total]))
}

/// One frame of controls, `[B, 1, ...]`.
fn frame(c: &SynthControls, i: usize) -> SynthControls {
    let [b, _, k] = c.distribution.dims();
    SynthControls {
        f0_hz: c.f0_hz.clone().slice([0..b, i..i + 1]),
        amplitude: c.amplitude.clone().slice([0..b, i..i + 1]),
        distribution: c.distribution.clone().slice([0..b, i..i + 1, 0..k]),
        noise_magnitudes: c.noise_magnitudes.as_ref().map(|n| {
            let m = n.dims()[2];
            n.clone().slice([0..b, i..i + 1, 0..m])
        }),
    }
}

/// `a` then `b` along frames.
fn concat(a: SynthControls, b: SynthControls) -> SynthControls {
    SynthControls {
        f0_hz: Tensor::cat(vec![a.f0_hz, b.f0_hz], 1),
        amplitude: Tensor::cat(vec![a.amplitude, b.amplitude], 1),
        distribution: Tensor::cat(vec![a.distribution, b.distribution], 1),
        noise_magnitudes: match (a.noise_magnitudes, b.noise_magnitudes) {
            (Some(x), Some(y)) => Some(Tensor::cat(vec![x, y], 1)),
            _ => None,
        },
    }
}

impl Synth {
    /// Take in the next piece of frames (`[B, F]`-framed controls) and return the audio that is
    /// complete so far (see [`SynthState`] for the lag).
    pub fn render(&self, controls: SynthControls, state: &mut SynthState) -> SynthOutput {
        let [b, f] = controls.f0_hz.dims();
        state
            .shape
            .get_or_insert_with(|| (b, controls.f0_hz.device()));
        if f == 0 {
            return self.emit(state, false);
        }
        // Harmonic: the pending frame and all new frames but the last, each towards its
        // successor; the last new frame waits for its own.
        let all = match state.pending.take() {
            Some(p) => concat(p, controls.clone()),
            None => controls.clone(),
        };
        let total = all.f0_hz.dims()[1];
        state.pending = Some(frame(&all, total - 1));
        if total >= 2 {
            let (audio, phase) = self.harmonic.forward_from(
                all.f0_hz,
                all.amplitude,
                all.distribution,
                state.phase.take(),
            );
            state.phase = Some(phase);
            state.harmonic_queue = Some(append(state.harmonic_queue.take(), audio));
        }
        // Noise: this piece's frames, plus the tail of the earlier ones.
        if let (Some(noise), Some(mags)) = (&self.noise, controls.noise_magnitudes) {
            let m = mags.dims()[2];
            if state.noise_skip == usize::MAX {
                state.noise_skip = noise.delay(m);
            }
            let hop = self.harmonic.hop();
            let offset = (state.frames * hop) as u64;
            let mut raw = noise.forward_full(mags, state.seed, offset);
            if let Some(tail) = state.noise_tail.take() {
                let [b, t] = tail.dims();
                let head = raw.clone().slice([0..b, 0..t]) + tail;
                raw = raw.slice_assign([0..b, 0..t], head);
            }
            let (done, tail) = split(raw, f * hop);
            state.noise_tail = Some(tail);
            let skip = state.noise_skip.min(f * hop);
            state.noise_skip -= skip;
            let (_, kept) = split(done, skip);
            state.noise_queue = Some(append(state.noise_queue.take(), kept));
        }
        state.frames += f;
        self.emit(state, false)
    }

    /// Render what is left: the last frame (held for its final hop, as [`Synth::forward`]
    /// does) and the rest of the noise. The state is spent.
    pub fn finish(&self, state: &mut SynthState) -> SynthOutput {
        if let Some(last) = state.pending.take() {
            let held = concat(last.clone(), last);
            let (audio, _) = self.harmonic.forward_from(
                held.f0_hz,
                held.amplitude,
                held.distribution,
                state.phase.take(),
            );
            state.harmonic_queue = Some(append(state.harmonic_queue.take(), audio));
        }
        if let Some(tail) = state.noise_tail.take() {
            // Shorter than the filter delay so far: the delay reaches into the tail.
            let (_, tail) = split(tail, state.noise_skip);
            let produced = state.emitted + len(&state.noise_queue);
            let (rest, _) = split(tail, state.frames * self.harmonic.hop() - produced);
            state.noise_queue = Some(append(state.noise_queue.take(), rest));
        }
        self.emit(state, true)
    }

    /// Return the samples every branch has rendered (all of them at the end), through the
    /// reverb.
    fn emit(&self, state: &mut SynthState, end: bool) -> SynthOutput {
        let with_noise = state.noise_queue.is_some();
        let n = if with_noise && !end {
            len(&state.harmonic_queue).min(len(&state.noise_queue))
        } else {
            len(&state.harmonic_queue)
        };
        let harmonic = match state.harmonic_queue.take() {
            Some(q) => {
                let (out, rest) = split(q, n);
                state.harmonic_queue = Some(rest);
                out
            }
            None => {
                let (b, device) = state.shape.clone().unwrap_or((1, Device::flex()));
                Tensor::zeros([b, 0], &device)
            }
        };
        let noise = match state.noise_queue.take() {
            Some(q) => {
                let (out, rest) = split(q, n);
                state.noise_queue = Some(rest);
                out
            }
            None => harmonic.zeros_like(),
        };
        state.emitted += n;
        let dry = harmonic.clone() + noise.clone();
        let audio = match &self.reverb {
            Some(reverb) if n > 0 => {
                let mut wet = reverb.wet_full(dry.clone());
                if let Some(tail) = state.reverb_tail.take() {
                    wet = add_overlapping(wet, tail);
                }
                let (now, later) = split(wet, n);
                state.reverb_tail = Some(later);
                reverb.mix(dry, now)
            }
            _ => dry,
        };
        SynthOutput {
            audio,
            harmonic,
            noise,
        }
    }
}

/// `x + tail` with `tail` aligned to the start of `x`; the longer of the two sets the length.
fn add_overlapping(x: Tensor<2>, tail: Tensor<2>) -> Tensor<2> {
    let [b, n] = x.dims();
    let t = tail.dims()[1];
    if t <= n {
        let head = x.clone().slice([0..b, 0..t]) + tail;
        x.slice_assign([0..b, 0..t], head)
    } else {
        let head = tail.clone().slice([0..b, 0..n]) + x;
        tail.slice_assign([0..b, 0..n], head)
    }
}
