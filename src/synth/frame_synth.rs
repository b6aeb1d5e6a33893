//! A [`Synth`] rendering frame by frame on the host, allocation-free: the streaming engine's
//! synthesizer.
//!
//! [`FrameSynth`] takes scaled controls one frame at a time ([`FrameSynth::push`]) and queues
//! the audio that is complete ([`FrameSynth::pull`]): the harmonic branch renders a frame once
//! its successor arrives (the last hop interpolates towards it), with the oscillator of
//! [`dsp::oscillator`] and the fixed-point phase of [`dsp::frame_phases`]; the noise branch
//! filters the seeded noise stream frame by frame with the FIR design of
//! [`dsp::fir_design_matrix`] and overlap-adds; the reverb convolves the dry sum with the
//! impulse response by [`dsp::convolver`] (partitioned, no added latency). The total equals [`Synth::forward`] on all the frames
//! (tested); only rounding differs. Buffers are allocated up front.

use super::{ControlFrames, Synth};
use crate::dsp::convolver::Convolver;
use crate::dsp::oscillator::{Frame, Oscillator};
use crate::dsp::scalar::frame_advance;
use crate::dsp::{NoiseStream, PHASE_ONE, fir_design_matrix, fir_window_size, to_vec};
use std::collections::VecDeque;

/// The noise branch's filter design and overlap-add state.
#[derive(Clone, Debug)]
struct NoiseBranch {
    stream: NoiseStream,
    /// `[M, W]` magnitudes to taps.
    design: Vec<f32>,
    bands: usize,
    taps: usize,
    /// The filter's centring delay, and the samples of it still to drop at the start.
    delay: usize,
    skip: usize,
    /// This frame's taps, noise, and the overlap-add accumulator `[hop + W - 1]`.
    ir: Vec<f32>,
    noise: Vec<f32>,
    acc: Vec<f32>,
    queue: VecDeque<f32>,
}

/// The reverb: its convolver and whether the dry signal is added.
#[derive(Clone, Debug)]
struct ReverbBranch {
    convolver: Convolver,
    add_dry: bool,
}

/// Taps per partition of the reverb's convolver.
const REVERB_PARTITION: usize = 128;

/// A [`Synth`] on the host, frame by frame: see the module doc.
#[derive(Clone, Debug)]
pub struct FrameSynth {
    oscillator: Oscillator,
    harmonics: usize,
    /// The last frame pushed, not rendered yet: f0 and harmonic amplitudes.
    pending: Option<f32>,
    pending_amplitudes: Vec<f32>,
    next_amplitudes: Vec<f32>,
    /// Fixed-point phase at the pending frame.
    phase: i64,
    frame: Vec<f32>,
    harmonic_queue: VecDeque<f32>,
    noise: Option<NoiseBranch>,
    reverb: Option<ReverbBranch>,
    /// Most samples one [`Self::pull`] returns.
    max_pull: usize,
    dry: Vec<f32>,
    frames: usize,
    finished: bool,
}

impl FrameSynth {
    /// The synth of `synth` for controls of `harmonics` harmonics and `bands` noise
    /// magnitudes (the widths of [`ControlFrames`]), with the noise stream of `seed` (as
    /// [`Synth::forward`] with that seed), returning at most `max_pull` samples per
    /// [`Self::pull`]. Pull after at most `max_pull / hop + 1` pushes: the queues hold that
    /// much beyond `max_pull`.
    pub fn new(synth: &Synth, harmonics: usize, bands: usize, seed: u64, max_pull: usize) -> Self {
        let h = &synth.harmonic;
        let hop = h.hop();
        let noise = synth.noise.as_ref().map(|n| {
            let taps = fir_window_size(bands, n.window_size);
            NoiseBranch {
                stream: NoiseStream::new(seed, 0),
                design: fir_design_matrix(bands, n.window_size),
                bands,
                taps,
                delay: n.delay(bands),
                skip: n.delay(bands),
                ir: vec![0.0; taps],
                noise: vec![0.0; hop],
                acc: vec![0.0; hop + taps - 1],
                queue: VecDeque::with_capacity(2 * (hop + taps + max_pull)),
            }
        });
        let reverb = synth.reverb.as_ref().map(|r| ReverbBranch {
            convolver: Convolver::new(&to_vec(r.impulse_response()), REVERB_PARTITION),
            add_dry: r.add_dry,
        });
        // The harmonic queue also keeps what waits for the noise branch's longer delay.
        let delay = noise.as_ref().map_or(0, |n| n.delay);
        let capacity = 2 * (hop + max_pull + delay);
        Self {
            oscillator: Oscillator::new(hop, h.sample_rate(), h.amp_resample),
            harmonics,
            pending: None,
            pending_amplitudes: vec![0.0; harmonics],
            next_amplitudes: vec![0.0; harmonics],
            phase: 0,
            frame: vec![0.0; hop],
            harmonic_queue: VecDeque::with_capacity(capacity),
            noise,
            reverb,
            max_pull,
            dry: vec![0.0; max_pull],
            frames: 0,
            finished: false,
        }
    }

    /// Start over: no frames, the noise stream from its start, silence in every tail.
    pub fn reset(&mut self) {
        self.pending = None;
        self.phase = 0;
        self.harmonic_queue.clear();
        self.frames = 0;
        self.finished = false;
        if let Some(n) = &mut self.noise {
            n.acc.fill(0.0);
            n.queue.clear();
            n.skip = n.delay;
        }
        if let Some(r) = &mut self.reverb {
            r.convolver.reset();
        }
    }

    /// Take in frame `t` of `controls` (scaled, with its f0): renders the previous frame's
    /// harmonics and this frame's noise.
    pub fn push(&mut self, controls: &ControlFrames, f0_hz: f32, t: usize) {
        let k = self.harmonics;
        let amplitude = controls.amplitude[t];
        for (a, d) in self
            .next_amplitudes
            .iter_mut()
            .zip(&controls.distribution[t * k..][..k])
        {
            *a = d * amplitude;
        }
        self.render_pending(f0_hz);
        std::mem::swap(&mut self.pending_amplitudes, &mut self.next_amplitudes);
        self.pending = Some(f0_hz);
        if let Some(n) = &mut self.noise {
            let bands = &controls.noise[t * n.bands..][..n.bands];
            n.push(bands, self.oscillator.hop(), self.frames);
        }
        self.frames += 1;
    }

    /// Render the pending frame towards a successor at `next_f0` with `next_amplitudes`.
    fn render_pending(&mut self, next_f0: f32) {
        let Some(f0) = self.pending else { return };
        let frame = Frame {
            start: (self.phase as f32 / PHASE_ONE as f32) as f64,
            f0,
            slope: next_f0 - f0,
            amplitudes: &self.pending_amplitudes,
            next: &self.next_amplitudes,
        };
        let hop = self.oscillator.hop();
        self.oscillator.render(&frame, 0..hop, &mut self.frame);
        self.harmonic_queue.extend(self.frame.iter().copied());
        let advance = frame_advance(f0, next_f0, hop, self.oscillator.sample_rate());
        self.phase = (self.phase + advance) % PHASE_ONE;
    }

    /// The end of the signal: the last frame held for its hop and the noise filter's tail.
    pub fn finish(&mut self) {
        if self.finished {
            return;
        }
        if let Some(f0) = self.pending {
            self.next_amplitudes
                .copy_from_slice(&self.pending_amplitudes);
            self.render_pending(f0);
            self.pending = None;
        }
        if let Some(n) = &mut self.noise {
            // The pushes queued the filtered noise up to the last frame's end less the delay
            // (or nothing, for a signal shorter than it); the centred output needs the delay's
            // worth more, from the accumulator's tail.
            let need = (self.frames * self.oscillator.hop()).min(n.delay);
            n.queue.extend(n.acc[n.skip..n.skip + need].iter().copied());
            n.skip = 0;
        }
        self.finished = true;
    }

    /// How far the audio trails the frames: once `k` frames are pushed (and `k * hop` is at
    /// least this), `k * hop - lag()` samples have been made ready in all. The harmonic
    /// branch waits one hop for each frame's successor; the noise filter's centring delay may
    /// be longer.
    pub fn lag(&self) -> usize {
        let hop = self.oscillator.hop();
        self.noise.as_ref().map_or(hop, |n| n.delay.max(hop))
    }

    /// Samples ready to [`Self::pull`].
    pub fn ready(&self) -> usize {
        let h = self.harmonic_queue.len();
        let n = self.noise.as_ref().map_or(h, |n| n.queue.len());
        h.min(n).min(self.max_pull)
    }

    /// Move up to `out.len()` ready samples (at most `max_pull`) into `out`; returns how
    /// many.
    pub fn pull(&mut self, out: &mut [f32]) -> usize {
        let n = self.ready().min(out.len());
        for (i, d) in self.dry[..n].iter_mut().enumerate() {
            let h = self.harmonic_queue[i];
            *d = match &self.noise {
                Some(b) => h + b.queue[i],
                None => h,
            };
        }
        self.harmonic_queue.drain(..n);
        if let Some(b) = &mut self.noise {
            b.queue.drain(..n);
        }
        match &mut self.reverb {
            Some(r) => r.process(&self.dry[..n], &mut out[..n]),
            None => out[..n].copy_from_slice(&self.dry[..n]),
        }
        n
    }
}

impl NoiseBranch {
    /// Filter frame `index`'s noise with the response `bands` and overlap-add it; the
    /// complete samples (after the start's delay) join the queue.
    fn push(&mut self, bands: &[f32], hop: usize, index: usize) {
        let w = self.taps;
        self.ir.fill(0.0);
        for (m, row) in bands.iter().zip(self.design.chunks(w)) {
            for (t, d) in self.ir.iter_mut().zip(row) {
                *t += m * d;
            }
        }
        self.stream.fill((index * hop) as u64, &mut self.noise);
        for (i, x) in self.noise.iter().enumerate() {
            for (a, h) in self.acc[i..i + w].iter_mut().zip(&self.ir) {
                *a += x * h;
            }
        }
        let skip = self.skip.min(hop);
        self.queue.extend(self.acc[skip..hop].iter().copied());
        self.skip -= skip;
        self.acc.copy_within(hop.., 0);
        let len = self.acc.len();
        self.acc[len - hop..].fill(0.0);
    }
}

impl ReverbBranch {
    /// Convolve `dry` (continuing the earlier calls) into `out`: wet, plus dry when
    /// configured.
    fn process(&mut self, dry: &[f32], out: &mut [f32]) {
        self.convolver.process(dry, out);
        if self.add_dry {
            for (o, d) in out.iter_mut().zip(dry) {
                *o += d;
            }
        }
    }
}
