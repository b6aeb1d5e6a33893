//! Features of live input: f0, voicing and loudness frame by frame from audio pushed in blocks
//! of any size, causally (a frame is ready as soon as its own sample has arrived) and without
//! allocating once built. The streaming engine's ears.
//!
//! The offline features ([`super::extract`]) centre each frame's windows on its sample and
//! decode the f0 of a whole window of frames at once (pYIN's Viterbi); live frames can only
//! look back, so their windows end at the frame's sample ([`LivePitch`], [`LoudnessMeter`])
//! and they describe the sound about half a window earlier than the offline frame of the same
//! index. How far the two differ on real recordings is measured in `tests/live_features.rs`.

use super::FeatureConfig;
use super::loudness::LoudnessMeter;
use super::pitch::LivePitch;

/// One frame of conditioning: f0 (Hz), loudness (dB), voicing probability.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FrameIn {
    /// f0, Hz (0 or less: unvoiced).
    pub f0_hz: f32,
    /// Loudness, dB.
    pub loudness_db: f32,
    /// Voicing probability, `[0, 1]`.
    pub voicing: f32,
}

/// Live f0, voicing and loudness: see the module doc.
pub struct LiveFeatures {
    pitch: LivePitch,
    loudness: LoudnessMeter,
    hop: usize,
    /// The most recent samples (at least `reach` of them; zeros before the signal's start),
    /// in a buffer of `2 * reach` that is shifted down when full.
    history: Vec<f32>,
    reach: usize,
    /// Samples until the next frame's sample arrives (0: the next sample is a frame's).
    until_frame: usize,
}

impl LiveFeatures {
    /// A tracker for `config`'s rate, hop, f0 range, voicing threshold and frame size.
    pub fn new(config: &FeatureConfig) -> Self {
        let pitch = LivePitch::new(&config.pitch());
        let loudness = LoudnessMeter::new(config.frame_size, config.sample_rate);
        let reach = pitch.frame_length().max(loudness.frame_length());
        let mut history = Vec::with_capacity(2 * reach);
        history.resize(reach, 0.0);
        Self {
            pitch,
            loudness,
            hop: config.frame_hop.max(1),
            history,
            reach,
            until_frame: 0,
        }
    }

    /// Samples the f0 analysis of one frame reads (its window ends at the frame's sample).
    pub fn pitch_frame_length(&self) -> usize {
        self.pitch.frame_length()
    }

    /// Samples between frames.
    pub fn hop(&self) -> usize {
        self.hop
    }

    /// Start over: silence before the next sample, the next sample is frame 0's.
    pub fn reset(&mut self) {
        self.history.clear();
        self.history.resize(self.reach, 0.0);
        self.until_frame = 0;
        self.pitch.reset();
    }

    /// Take in `samples` (a non-finite one counts as 0); `frame` is called with each frame
    /// whose sample arrived, in order: frame `i` once sample `i * hop` is in.
    pub fn push(&mut self, samples: &[f32], mut frame: impl FnMut(FrameIn)) {
        for &v in samples {
            if self.history.len() == 2 * self.reach {
                let len = self.history.len();
                self.history.copy_within(len - self.reach.., 0);
                self.history.truncate(self.reach);
            }
            self.history.push(if v.is_finite() { v } else { 0.0 });
            if self.until_frame == 0 {
                let (f0_hz, voicing) = self.pitch.frame(&self.history);
                let loudness_db = self.loudness.frame(&self.history);
                frame(FrameIn {
                    f0_hz,
                    loudness_db,
                    voicing,
                });
                self.until_frame = self.hop;
            }
            self.until_frame -= 1;
        }
    }
}
