//! [`LiveStream`]: a model as an audio plugin — host-rate blocks in, host-rate blocks out.

use super::rate::{Plan, RateBridge};
use super::{FrameIn, FrameSource, FrameStream, NotePlayer, SILENT_DB};
use crate::error::{Error, Result};
use crate::features::FeatureConfig;
use crate::features::live::LiveFeatures;
use crate::model::DdspModel;

/// Largest host block [`LiveStream::process`] takes (and the smallest bound it accepts).
pub const MAX_BLOCK: usize = 4096;

/// What drives a [`LiveStream`].
// Built once per stream: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Conditioning {
    /// Audio in (timbre transfer): f0, voicing and loudness tracked live from the input,
    /// scaled by `input_gain` first (the offline features analyse peak-normalised audio; a
    /// live input cannot be normalised, so set the gain that brings its peaks to the
    /// model's `normalizeTo`).
    Audio {
        /// Linear gain applied to the input before analysis.
        input_gain: f32,
    },
    /// Notes in (synth mode): the input audio is ignored.
    Notes(NotePlayer),
}

/// The frame source of a [`LiveStream`].
// One per stream, read on the audio thread: no box, no indirection.
#[allow(clippy::large_enum_variant)]
enum Source {
    Audio {
        features: LiveFeatures,
        gain: f32,
    },
    Notes {
        player: NotePlayer,
        until_frame: usize,
    },
}

/// A model streaming at the host's rate: see [`Self::process`].
///
/// Each call resamples the host block to the model's rate (in fixed chunks: `rubato`'s FFT
/// resampler), tracks its frames (audio in: [`LiveFeatures`]; notes in: a [`NotePlayer`])
/// or counts them off (notes), renders them with a [`FrameStream`], and resamples the result
/// back. The output trails the input by exactly [`Self::latency_samples`], whatever the block
/// sizes; nothing allocates, locks or does I/O inside [`Self::process`].
pub struct LiveStream {
    bridge: RateBridge,
    source: Source,
    stream: FrameStream,
    frames: Vec<FrameIn>,
    rendered: Vec<f32>,
    hop: usize,
    host_rate: u32,
    max_block: usize,
}

impl LiveStream {
    /// A stream of `model` (analysing with `features`, rendering with softmax `temperature`
    /// and the noise of `seed`) at `host_rate` Hz, for blocks of at most `max_block` samples
    /// (32 to [`MAX_BLOCK`]).
    pub fn new(
        model: &DdspModel,
        features: &FeatureConfig,
        temperature: f64,
        seed: u64,
        host_rate: u32,
        max_block: usize,
        conditioning: Conditioning,
    ) -> Result<Self> {
        if !(32..=MAX_BLOCK).contains(&max_block) {
            return Err(Error::Config(format!(
                "the largest block must be 32 to {MAX_BLOCK} samples, not {max_block}"
            )));
        }
        let hop = model.synth.harmonic.hop();
        let model_rate = model.synth.harmonic.sample_rate().round() as u32;
        if features.frame_hop != hop || features.sample_rate.round() as u32 != model_rate {
            return Err(Error::Config(format!(
                "the feature settings (hop {}, {} Hz) do not match the model's (hop {hop}, \
                 {model_rate} Hz)",
                features.frame_hop, features.sample_rate
            )));
        }
        // The renderer's lag, from a stream built only to ask (its blocks are the bridge's).
        let rates = (host_rate, model_rate);
        let per_call = RateBridge::max_model_per_call(rates, hop, max_block)?;
        let stream = FrameStream::new(model, temperature, seed, per_call)?;
        let bridge = RateBridge::new(&Plan {
            rates,
            max_block,
            hop,
            lag: stream.lag(),
        })?;
        let source = match conditioning {
            Conditioning::Audio { input_gain } => Source::Audio {
                features: LiveFeatures::new(features),
                gain: input_gain,
            },
            Conditioning::Notes(player) => Source::Notes {
                player,
                until_frame: 0,
            },
        };
        Ok(Self {
            bridge,
            source,
            frames: Vec::with_capacity(per_call / hop + 2),
            rendered: vec![0.0; per_call + stream.lag() + 2 * hop],
            stream,
            hop,
            host_rate,
            max_block,
        })
    }

    /// [`Self::new`] for a loaded checkpoint: its feature settings, temperature and seed.
    pub fn for_model(
        model: &crate::infer::Model,
        host_rate: u32,
        max_block: usize,
        conditioning: Conditioning,
    ) -> Result<Self> {
        let (inner, _) = model.inner();
        let config = model.config();
        Self::new(
            inner,
            &config.feature_config(),
            model.temperature(),
            config.seed,
            host_rate,
            max_block,
            conditioning,
        )
    }

    /// This stream with the decoder's weights in half precision
    /// ([`FrameStream::with_half_weights`]).
    pub fn with_half_weights(mut self) -> Self {
        self.stream = self.stream.with_half_weights();
        self
    }

    /// Host samples between an input sample and the output it shapes, rounded up: the
    /// resamplers' chunks and filter delays plus the renderer's lag (a frame hop, or the
    /// noise filter's centring delay if longer). Block sizes add nothing. The value to report
    /// to a host for latency compensation. In synth mode the input is not resampled, so the
    /// down-resampler's filter delay is not part of it: the output is then the render of the
    /// note player's frames this many samples late.
    pub fn latency_samples(&self) -> usize {
        self.latency_exact().ceil() as usize
    }

    /// The exact latency in seconds (for host chunks of odd length, as at 44.1 kHz, half a
    /// sample less than [`Self::latency_samples`]).
    pub fn latency_seconds(&self) -> f64 {
        self.latency_exact() / self.host_rate as f64
    }

    fn latency_exact(&self) -> f64 {
        let audio_in = matches!(self.source, Source::Audio { .. });
        self.bridge.latency_exact(audio_in)
    }

    /// The host sample rate, Hz.
    pub fn host_rate(&self) -> u32 {
        self.host_rate
    }

    /// The largest block [`Self::process`] takes.
    pub fn max_block(&self) -> usize {
        self.max_block
    }

    /// The note player of synth mode, to play it live (`None` for audio in).
    pub fn notes(&mut self) -> Option<&mut NotePlayer> {
        match &mut self.source {
            Source::Notes { player, .. } => Some(player),
            Source::Audio { .. } => None,
        }
    }

    /// Silence in every state (decoder, synth tails, trackers, resamplers); the latency
    /// stays the same. A note player keeps its keys and clock.
    pub fn reset(&mut self) {
        self.bridge.reset();
        self.stream.reset();
        match &mut self.source {
            Source::Audio { features, .. } => features.reset(),
            Source::Notes { until_frame, .. } => *until_frame = 0,
        }
    }

    /// Render one host block: `output.len()` samples (at most [`Self::max_block`]; any more
    /// are set to silence) from
    /// `input` (the same length for audio in; ignored, and may be empty, for notes). A block
    /// with a non-finite sample, or whose result would have one, comes out silent and the
    /// stream starts afresh with the next block.
    pub fn process(&mut self, input: &[f32], output: &mut [f32]) {
        let n = output.len().min(self.max_block);
        // Beyond the largest block there is nothing to play (a host buffer may be in place).
        output[n..].fill(0.0);
        let output = &mut output[..n];
        let audio_in = matches!(self.source, Source::Audio { .. });
        if audio_in && (input.len() < n || input[..n].iter().any(|v| !v.is_finite())) {
            output.fill(0.0);
            self.reset();
            return;
        }
        self.frames.clear();
        let frames = &mut self.frames;
        match &mut self.source {
            Source::Audio { features, gain } => {
                let model_in = self.bridge.input(&input[..n]);
                if *gain != 1.0 {
                    for v in model_in.iter_mut() {
                        *v *= *gain;
                    }
                }
                features.push(model_in, |f| frames.push(f));
            }
            Source::Notes {
                player,
                until_frame,
            } => {
                let mut model_samples = self.bridge.input_count(n);
                while model_samples > 0 {
                    if *until_frame == 0 {
                        frames.push(player.next_frame().unwrap_or(FrameIn {
                            f0_hz: 0.0,
                            loudness_db: SILENT_DB,
                            voicing: 0.0,
                        }));
                        *until_frame = self.hop;
                    }
                    let step = model_samples.min(*until_frame);
                    *until_frame -= step;
                    model_samples -= step;
                }
            }
        }
        let batch = self.stream.max_batch();
        for chunk in self.frames.chunks(batch) {
            self.stream.push_frames(chunk);
            loop {
                let got = self.stream.pull(&mut self.rendered);
                if got == 0 {
                    break;
                }
                self.bridge.output(&self.rendered[..got]);
            }
        }
        self.bridge.take(output);
        if output.iter().any(|v| !v.is_finite()) {
            output.fill(0.0);
            self.reset();
        }
    }
}
