//! Realtime rendering, block by block, allocation-free: the engine a plugin host or a live
//! audio callback drives.
//!
//! [`LiveStream`] is the plugin: host-rate blocks in (audio, or nothing in synth mode),
//! host-rate blocks out, with a fixed, reported latency. It resamples to the model's rate
//! (`rate`: `rubato` in fixed chunks behind FIFOs), tracks f0, voicing and loudness live
//! ([`crate::features::live`]) or plays notes ([`NotePlayer`]), and renders the frames with a
//! [`FrameStream`].
//!
//! [`FrameStream`] is a model on the host ([`FrameDecoder`], [`FrameControls`],
//! [`FrameSynth`]: the same maths as [`DdspModel::forward`], sharing its kernels) fed one
//! frame of features at a time. [`FrameStream::process`] fills an output block of any size,
//! drawing frames from a [`FrameSource`] as it needs them; nothing inside allocates, locks or
//! does I/O once the stream is built. Fed the frames of an offline render, the concatenated
//! blocks equal [`DdspModel::forward`] on all the frames (tested for blocks of 64 to 4096
//! samples).
//!
//! [`NotePlayer`] is a [`FrameSource`] of notes (ddsp-vst's synth mode): a MIDI file's, or
//! played live.

mod live;
mod notes;
mod rate;

pub use live::{Conditioning, LiveStream, MAX_BLOCK};
pub use notes::{NotePlayer, NoteShape};

use crate::decoder::FrameDecoder;
use crate::error::{Error, Result};
pub use crate::features::live::FrameIn;
use crate::model::DdspModel;
use crate::synth::{ControlFrames, FrameControls, FrameSynth, RawFrames};

/// Loudness standing in for a non-finite input, dB (below any audible frame).
pub const SILENT_DB: f32 = -120.0;

/// Where [`FrameStream::process`] gets its frames: the next frame, or `None` at the end of
/// the signal (the stream then renders its tails and falls silent).
pub trait FrameSource {
    /// The next frame.
    fn next_frame(&mut self) -> Option<FrameIn>;
}

impl<I: Iterator<Item = FrameIn>> FrameSource for I {
    fn next_frame(&mut self) -> Option<FrameIn> {
        self.next()
    }
}

/// A model rendering frame by frame: see the module doc.
#[derive(Clone, Debug)]
pub struct FrameStream {
    /// Frames taken from the source for the next decode (at most `max_batch`), and their
    /// cleaned values, `[max_batch]` each.
    batch: Vec<FrameIn>,
    max_batch: usize,
    f0: Vec<f32>,
    loudness: Vec<f32>,
    voicing: Vec<f32>,
    decoder: FrameDecoder,
    controls: FrameControls,
    synth: FrameSynth,
    raw: RawFrames,
    scaled: ControlFrames,
    temperature: f64,
    hop: usize,
    ended: bool,
}

impl FrameStream {
    /// A stream of `model` (weights copied to the host), with softmax temperature
    /// `temperature` and the noise of `seed` (as [`DdspModel::forward`] with those), for
    /// output blocks of at most `max_block` samples. Fails for the transformer decoder, which
    /// has no frame-by-frame form.
    pub fn new(model: &DdspModel, temperature: f64, seed: u64, max_block: usize) -> Result<Self> {
        let hop = model.synth.harmonic.hop();
        let max_block = max_block.max(1);
        // A block needs at most this many new frames: decoded together, the per-frame layers
        // become matrix products that reuse each weight across the frames.
        let max_batch = max_block.div_ceil(hop) + 1;
        let decoder = FrameDecoder::new(&model.decoder, max_batch).ok_or_else(|| {
            Error::Config(if model.decoder.has_encoder() {
                "streaming does not run the z-encoder yet (encoder mfcc): stream a model \
                 trained with encoder none, or render it offline"
                    .into()
            } else {
                "streaming needs a frame-by-frame decoder (decoderBackbone gru, micro-rnn or \
                 mlp); the transformer attends over windows of frames"
                    .into()
            })
        })?;
        let raw = decoder.output();
        let harmonics = raw.distribution.len() / max_batch;
        let raw_noise = raw.noise.len() / max_batch;
        let controls = FrameControls::new(&model.synth, harmonics, raw_noise, max_batch);
        let scaled = controls.output();
        let bands = scaled.noise.len() / max_batch;
        let synth = FrameSynth::new(&model.synth, harmonics, bands, seed, max_block);
        Ok(Self {
            batch: Vec::with_capacity(max_batch),
            max_batch,
            f0: vec![0.0; max_batch],
            loudness: vec![0.0; max_batch],
            voicing: vec![0.0; max_batch],
            decoder,
            controls,
            synth,
            raw,
            scaled,
            temperature,
            hop,
            ended: false,
        })
    }

    /// [`Self::new`] for a loaded checkpoint, with its temperature and its config's seed (the
    /// noise [`Model::render_all`] renders).
    ///
    /// [`Model::render_all`]: crate::infer::Model::render_all
    pub fn for_model(model: &crate::infer::Model, max_block: usize) -> Result<Self> {
        let (inner, _) = model.inner();
        Self::new(inner, model.temperature(), model.config().seed, max_block)
    }

    /// This stream with the decoder's weights in half precision
    /// ([`FrameDecoder::with_half_weights`]): faster where reading the weights bounds the
    /// speed (the wide presets), no longer the offline render to rounding.
    pub fn with_half_weights(mut self) -> Self {
        self.decoder = self.decoder.with_half_weights();
        self
    }

    /// Samples per frame.
    pub fn hop(&self) -> usize {
        self.hop
    }

    /// Forget everything: decoder state, smoothing, phases, tails; the noise restarts.
    pub fn reset(&mut self) {
        self.decoder.reset();
        self.controls.reset();
        self.synth.reset();
        self.ended = false;
    }

    /// Decode, scale and hand to the synth the frames gathered in `batch`. A value that is
    /// not finite counts as silence (f0 0, loudness [`SILENT_DB`], voicing 0), so nothing
    /// non-finite reaches the decoder's state.
    fn push_batch(&mut self) {
        let n = self.batch.len();
        let clean = |v: f32, silent: f32| if v.is_finite() { v } else { silent };
        for (i, frame) in self.batch.iter().enumerate() {
            self.f0[i] = clean(frame.f0_hz, 0.0);
            self.loudness[i] = clean(frame.loudness_db, SILENT_DB);
            self.voicing[i] = clean(frame.voicing, 0.0);
        }
        let (f0, ld, uv) = (&self.f0[..n], &self.loudness[..n], &self.voicing[..n]);
        self.decoder.decode(f0, ld, uv, &mut self.raw);
        self.controls
            .scale(&self.raw, f0, self.temperature, &mut self.scaled);
        for (t, &f0) in f0.iter().enumerate() {
            self.synth.push(&self.scaled, f0, t);
        }
        self.batch.clear();
    }

    /// How far the audio trails the frames pushed with [`Self::push_frames`]: after `k`
    /// frames, `k * hop - lag()` samples have been ready to [`Self::pull`] in all.
    pub fn lag(&self) -> usize {
        self.synth.lag()
    }

    /// Frames one [`Self::push_frames`] takes at most.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// Decode and render `frames` (at most [`Self::max_batch`]) as they arrive from a live
    /// source; [`Self::pull`] the audio that is ready before the next push. The push-and-pull
    /// form of [`Self::process`], for sources that may have no frame ready.
    pub fn push_frames(&mut self, frames: &[FrameIn]) {
        assert!(
            frames.len() <= self.max_batch,
            "push_frames takes at most max_batch frames"
        );
        self.batch.clear();
        self.batch.extend_from_slice(frames);
        if !self.batch.is_empty() {
            self.push_batch();
        }
    }

    /// Move up to `out.len()` samples that are ready into `out`; returns how many.
    pub fn pull(&mut self, out: &mut [f32]) -> usize {
        let mut written = 0;
        loop {
            let n = self.synth.pull(&mut out[written..]);
            written += n;
            if n == 0 || written == out.len() {
                return written;
            }
        }
    }

    /// Fill `out` (at most `max_block` samples), drawing frames from `source` while the synth
    /// has too few samples ready; returns how many samples were written (fewer than
    /// `out.len()` only once the source has ended and the tails are out).
    pub fn process(&mut self, source: &mut dyn FrameSource, out: &mut [f32]) -> usize {
        let mut written = 0;
        while written < out.len() {
            written += self.synth.pull(&mut out[written..]);
            if written == out.len() {
                break;
            }
            if self.ended {
                if self.synth.ready() == 0 {
                    break;
                }
                continue;
            }
            // Enough frames for the rest of the block (the synth lags by about a hop).
            let wanted = (out.len() - written).div_ceil(self.hop) + 1;
            while self.batch.len() < wanted.min(self.max_batch) {
                match source.next_frame() {
                    Some(frame) => self.batch.push(frame),
                    None => {
                        self.ended = true;
                        break;
                    }
                }
            }
            if !self.batch.is_empty() {
                self.push_batch();
            }
            if self.ended {
                self.synth.finish();
            }
        }
        out[written..].fill(0.0);
        if out[..written].iter().any(|v| !v.is_finite()) {
            // A model that overflowed (extreme inputs, a damaged checkpoint): silence this
            // block and start the next one afresh.
            out.fill(0.0);
            self.reset();
        }
        written
    }
}

#[cfg(test)]
mod tests;
