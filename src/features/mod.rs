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
pub mod live;
pub mod loudness;
pub mod mfcc;
pub mod midi;
pub mod notes;
pub mod pitch;
mod stream;

pub use stream::{FeatureStream, features_of_file, track_pitch};

/// Frame-rate features of one signal.
#[derive(Clone, Debug, PartialEq)]
pub struct FrameFeatures {
    /// f0, Hz; finite and positive on every frame.
    pub f0_hz: Vec<f32>,
    /// Voicing probability in `[0, 1]`.
    pub voiced_prob: Vec<f32>,
    /// A-weighted loudness, dB (floor -80).
    pub loudness_db: Vec<f32>,
    /// MFCCs, [`FeatureConfig::mfcc_bins`] per frame, frame after frame (empty without them).
    pub mfcc: Vec<f32>,
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

    /// MFCCs per frame (0 without them).
    pub fn mfcc_bins(&self) -> usize {
        self.mfcc.len().checked_div(self.len()).unwrap_or(0)
    }

    /// Frames `start..start + len`.
    pub fn slice(&self, start: usize, len: usize) -> FrameFeatures {
        let m = self.mfcc_bins();
        FrameFeatures {
            f0_hz: self.f0_hz[start..start + len].to_vec(),
            voiced_prob: self.voiced_prob[start..start + len].to_vec(),
            loudness_db: self.loudness_db[start..start + len].to_vec(),
            mfcc: self.mfcc[start * m..(start + len) * m].to_vec(),
        }
    }
}

/// Settings of the feature extractor.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureConfig {
    /// Sample rate of the audio, Hz.
    pub sample_rate: f64,
    /// Analysis window, samples (loudness FFT size; the pitch tracker's minimum frame).
    pub frame_size: usize,
    /// Samples between frames.
    pub frame_hop: usize,
    /// Lowest f0 the tracker considers, Hz.
    pub min_f0: f64,
    /// Highest f0 the tracker considers, Hz.
    pub max_f0: f64,
    /// Voicing probability at or above which a frame is voiced.
    pub voiced_threshold: f64,
    /// MFCCs per frame ([`mfcc`], `frame_size`-sample FFTs); 0 computes none.
    pub mfcc_bins: usize,
}

impl FeatureConfig {
    /// The pitch tracker's settings: pYIN's defaults with this rate, hop, range, frame and
    /// voicing threshold.
    pub fn pitch(&self) -> pitch::PitchConfig {
        let mut p =
            pitch::PitchConfig::new(self.sample_rate, self.frame_hop, self.min_f0, self.max_f0);
        p.frame_length = self.frame_size;
        p.voiced_threshold = self.voiced_threshold;
        p
    }

    /// The MFCC settings, when MFCCs are computed.
    pub fn mfcc(&self) -> Option<mfcc::MfccConfig> {
        (self.mfcc_bins > 0)
            .then(|| mfcc::MfccConfig::new(self.sample_rate, self.frame_size, self.mfcc_bins))
    }
}

/// A stretch of a signal held in memory: samples `start..start + samples.len()` of a signal
/// that is `total` samples long when known. Frames read zeros outside the signal.
pub(crate) struct SampleView<'a> {
    /// The samples held.
    pub samples: &'a [f32],
    /// The signal index of `samples[0]`.
    pub start: usize,
    /// The signal's length, once known.
    pub total: Option<usize>,
}

impl SampleView<'_> {
    /// The whole of a signal in memory.
    pub fn whole(samples: &[f32]) -> SampleView<'_> {
        SampleView {
            samples,
            start: 0,
            total: Some(samples.len()),
        }
    }

    /// Frame `i` of a centred frame grid: `out.len()` samples starting at `i * hop - offset`,
    /// samples outside the signal read as zero (the zero padding of a centred analysis). The
    /// caller holds every sample of the frame that is inside the signal.
    pub fn frame(&self, i: usize, hop: usize, offset: usize, out: &mut [f64]) {
        let first = (i * hop) as isize - offset as isize;
        let end = self.total.unwrap_or(usize::MAX);
        for (j, slot) in out.iter_mut().enumerate() {
            let idx = first + j as isize;
            *slot = if idx >= 0 && (idx as usize) < end {
                let k = idx as usize;
                debug_assert!(k >= self.start && k - self.start < self.samples.len());
                self.samples
                    .get(k.wrapping_sub(self.start))
                    .map_or(0.0, |&v| v as f64)
            } else {
                0.0
            };
        }
    }
}

/// f0, voicing, loudness (and MFCCs when `config.mfcc_bins > 0`) of mono audio at
/// `config.sample_rate` (`1 + n / frame_hop` frames); loudness and MFCCs use `frame_size`-sample
/// FFTs. The same as a [`FeatureStream`] fed the
/// whole signal (it is one).
pub fn extract(audio: &[f32], config: &FeatureConfig) -> FrameFeatures {
    let mut stream = FeatureStream::new(config);
    stream.push(audio);
    stream.finish()
}
