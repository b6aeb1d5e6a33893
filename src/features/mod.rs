//! Feature extraction in plain Rust (no tensors): WAV input, resampling, f0 tracking and
//! loudness, all on the same centred frame grid.
//!
//! Alignment: frame `i` is centred on sample `i * frameHop` (the signal is zero-padded by half
//! an analysis window at both ends), so a file of `n` samples has `1 + n / frameHop` frames,
//! and a chunk starting at sample `o` (a multiple of `frameHop`) owns frames
//! `o / frameHop .. o / frameHop + chunkSize / frameHop`: exactly `chunkSize / frameHop`
//! frames, frame `j` of the chunk sitting at its sample `j * frameHop`, which is where the
//! synthesizers place control frame `j`.

pub mod audio;
pub mod loudness;
pub mod pitch;

use crate::config::Config;

/// Frame-rate features of one signal.
#[derive(Clone, Debug, PartialEq)]
pub struct FrameFeatures {
    /// f0, Hz; finite and positive on every frame.
    pub f0_hz: Vec<f32>,
    /// Voicing probability in `[0, 1]`.
    pub voiced_prob: Vec<f32>,
    /// A-weighted loudness, dB (floor -80).
    pub loudness_db: Vec<f32>,
}

impl FrameFeatures {
    /// Number of frames.
    pub fn len(&self) -> usize {
        self.f0_hz.len()
    }

    /// Whether there are no frames.
    pub fn is_empty(&self) -> bool {
        self.f0_hz.is_empty()
    }

    /// Frames `start..start + len`.
    pub fn slice(&self, start: usize, len: usize) -> FrameFeatures {
        FrameFeatures {
            f0_hz: self.f0_hz[start..start + len].to_vec(),
            voiced_prob: self.voiced_prob[start..start + len].to_vec(),
            loudness_db: self.loudness_db[start..start + len].to_vec(),
        }
    }
}

/// The pitch tracker settings a config implies.
pub fn pitch_config(config: &Config) -> pitch::PitchConfig {
    let mut p = pitch::PitchConfig::new(
        config.sample_rate,
        config.frame_hop,
        config.min_f0,
        config.max_f0,
    );
    p.frame_length = config.frame_size;
    p.voiced_threshold = config.voiced_threshold;
    p
}

/// f0, voicing and loudness of mono audio at `config.sampleRate` (`1 + n / frameHop` frames).
/// Loudness uses `frameSize`-sample FFTs.
pub fn extract(audio: &[f32], config: &Config) -> FrameFeatures {
    let (track, loudness_db) = rayon::join(
        || pitch::track_pitch(audio, &pitch_config(config)),
        || {
            loudness::compute_loudness(
                audio,
                config.sample_rate,
                config.frame_size,
                config.frame_hop,
            )
        },
    );
    FrameFeatures {
        f0_hz: track.f0_hz,
        voiced_prob: track.voiced_prob,
        loudness_db,
    }
}
