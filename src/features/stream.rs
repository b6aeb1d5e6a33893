//! Feature extraction as a stream: audio in blocks of any size, frames out window by window,
//! with memory bounded by the pitch decoder's window (about 40 s of audio) however long the
//! signal. [`super::extract`] is this stream fed one buffer.

use std::path::Path;

use super::audio::{AudioStream, SILENCE_PEAK, StreamResampler};
use super::loudness::{a_weighting_power, frame_spectra, weighted_db};
use super::mfcc::{Mfcc, MfccConfig};
use super::pitch::{PitchConfig, PitchTrack, PitchTracker};
use super::{FeatureConfig, FrameFeatures, SampleView};
use crate::error::{Error, Result};

/// Frame features of a signal pushed in blocks: pitch (and loudness) of frame `i` centred on
/// sample `i * hop`, exactly as if the whole signal were analysed at once. Frames are computed
/// as the pitch decoder's windows fill up; the samples no window needs any more are dropped.
pub struct FeatureStream {
    pitch: PitchTracker,
    /// Loudness FFT size and sample rate; none for pitch only.
    loudness: Option<(usize, f64)>,
    /// MFCC settings, when computed.
    mfcc_config: Option<MfccConfig>,
    /// Samples `start..start + buffer.len()` of the signal.
    buffer: Vec<f32>,
    start: usize,
    /// Frames decoded so far.
    done: usize,
    /// Whether the whole signal is one decoder window (decided once it is known).
    single_window: Option<bool>,
    f0: Vec<f64>,
    prob: Vec<f64>,
    loudness_db: Vec<f32>,
    mfcc: Vec<f32>,
}

impl FeatureStream {
    /// A stream for `config`'s features: f0, voicing and loudness.
    pub fn new(config: &FeatureConfig) -> Self {
        let mut s = Self::pitch_only(&config.pitch());
        s.loudness = Some((config.frame_size, config.sample_rate));
        s.mfcc_config = config.mfcc();
        s
    }

    /// A stream for f0 and voicing alone ([`track_pitch`]).
    pub fn pitch_only(config: &PitchConfig) -> Self {
        Self {
            pitch: PitchTracker::new(config),
            loudness: None,
            mfcc_config: None,
            buffer: Vec::new(),
            start: 0,
            done: 0,
            single_window: None,
            f0: Vec::new(),
            prob: Vec::new(),
            loudness_db: Vec::new(),
            mfcc: Vec::new(),
        }
    }

    /// Decode in windows of this many seconds (tests compare small windows with one pass).
    #[cfg(test)]
    pub(crate) fn set_window_seconds(&mut self, seconds: f64) {
        self.pitch.window_seconds = seconds;
    }

    /// Take in the next block of samples.
    pub fn push(&mut self, samples: &[f32]) {
        self.buffer.extend_from_slice(samples);
        self.process(false);
    }

    /// The features of the whole signal.
    pub fn finish(mut self) -> FrameFeatures {
        self.process(true);
        let PitchTrack { f0_hz, voiced_prob } = self.pitch.finish(self.f0, self.prob);
        FrameFeatures {
            f0_hz,
            voiced_prob,
            loudness_db: self.loudness_db,
            mfcc: self.mfcc,
        }
    }

    /// Samples a frame reads before and after its centre (pitch and loudness analyses).
    fn reach(&self) -> (usize, usize) {
        let (before, after) = self.pitch.reach();
        let half = self.loudness.map_or(0, |(n, _)| n / 2);
        (before.max(half), after.max(half))
    }

    /// Decode every window whose frames (with their context) are complete.
    fn process(&mut self, ended: bool) {
        let hop = self.pitch.config().hop;
        let (before, after) = self.reach();
        let (window, overlap) = self.pitch.window_frames();
        loop {
            let received = self.start + self.buffer.len();
            let total = ended.then_some(received);
            let frames = total.map(|t| 1 + t / hop);
            // Frames whose analysis windows are complete so far.
            let complete = match frames {
                Some(n) => n,
                None => received.checked_sub(after).map_or(0, |x| x / hop + 1),
            };
            let single = match (self.single_window, frames) {
                (Some(single), _) => single,
                (None, Some(n)) => n <= window.saturating_add(2 * overlap),
                (None, None) if complete > window.saturating_add(2 * overlap) => false,
                (None, None) => return,
            };
            self.single_window = Some(single);
            if single {
                if let Some(n) = frames.filter(|&n| self.done < n) {
                    self.decode(0..n, 0..n, total);
                    self.done = n;
                }
                return;
            }
            let s = self.done;
            if frames.is_some_and(|n| s >= n) {
                return;
            }
            let e = frames.map_or(s + window, |n| (s + window).min(n));
            let hi = frames.map_or(e + overlap, |n| (e + overlap).min(n));
            if complete < hi {
                return;
            }
            self.decode(s.saturating_sub(overlap)..hi, s..e, total);
            self.done = e;
            // The next window starts `overlap` frames before `e`.
            let needed = (e.saturating_sub(overlap) * hop).saturating_sub(before);
            if needed > self.start {
                self.buffer.drain(..needed - self.start);
                self.start = needed;
            }
        }
    }

    /// One Viterbi pass over frames `frames`, keeping `keep`.
    fn decode(
        &mut self,
        frames: std::ops::Range<usize>,
        keep: std::ops::Range<usize>,
        total: Option<usize>,
    ) {
        let view = SampleView {
            samples: &self.buffer,
            start: self.start,
            total,
        };
        let analysed = self.pitch.analyse(&view, frames.clone());
        let decoded = self.pitch.decode(
            &analysed,
            keep.start - frames.start..keep.end - frames.start,
        );
        self.f0.extend(decoded.f0);
        self.prob.extend(decoded.prob);
        if let Some((n_fft, rate)) = self.loudness {
            // One FFT per frame for both: the MFCCs are taken on the loudness frames (the same
            // size, window and grid, `FeatureConfig::mfcc`).
            let hop = self.pitch.config().hop;
            let weights = a_weighting_power(n_fft, rate);
            let mut mfcc = self.mfcc_config.as_ref().map(|c| {
                debug_assert_eq!(c.n_fft, n_fft);
                (Mfcc::new(c), c.mfcc_bins)
            });
            let (loudness_db, mfccs) = (&mut self.loudness_db, &mut self.mfcc);
            frame_spectra(&view, n_fft, hop, n_fft / 2, keep, |spectrum| {
                loudness_db.push(weighted_db(spectrum, &weights));
                if let Some((m, bins)) = &mut mfcc {
                    let at = mfccs.len();
                    mfccs.resize(at + *bins, 0.0);
                    m.of_spectrum(spectrum, &mut mfccs[at..]);
                }
            });
        }
    }
}

/// Track f0 and voicing of mono audio: `1 + audio.len() / hop` frames (pYIN, see
/// [`super::pitch`]).
pub fn track_pitch(audio: &[f32], config: &PitchConfig) -> PitchTrack {
    let mut stream = FeatureStream::pitch_only(config);
    stream.push(audio);
    let f = stream.finish();
    PitchTrack {
        f0_hz: f.f0_hz,
        voiced_prob: f.voiced_prob,
    }
}

/// The features of an audio file as the training cache computes them (resampled to
/// `config.sample_rate`, peak-normalised to `normalize_to`, or at the file's own level with
/// `None`), streaming: one pass finds the peak, a second computes the features, and memory
/// stays bounded however long the file. Returns the features and the file's length in
/// seconds. A silent file is an error.
pub fn features_of_file(
    path: &Path,
    config: &FeatureConfig,
    normalize_to: Option<f64>,
) -> Result<(FrameFeatures, f64)> {
    let rate = config.sample_rate.round() as u32;
    // Pass 1: the peak of the resampled signal.
    let mut peak = 0f32;
    let mut samples = 0u64;
    let mut file_rate = 0;
    each_resampled(path, rate, &mut |block, input_rate, frames| {
        peak = block.iter().fold(peak, |m, v| m.max(v.abs()));
        (samples, file_rate) = (frames, input_rate);
    })?;
    if peak < SILENCE_PEAK {
        return Err(Error::Audio {
            path: path.to_path_buf(),
            reason: format!("all silence (peak {peak:.2e})"),
        });
    }
    // Pass 2: features of the normalised signal.
    let gain = normalize_to.map_or(1.0, |to| (to / peak as f64) as f32);
    let mut stream = FeatureStream::new(config);
    let mut scaled = Vec::new();
    each_resampled(path, rate, &mut |block, _, _| {
        scaled.clear();
        scaled.extend(block.iter().map(|v| v * gain));
        stream.push(&scaled);
    })?;
    Ok((stream.finish(), samples as f64 / file_rate.max(1) as f64))
}

/// Decode `path` and resample it to `rate` block by block: `each(block, file rate, file
/// samples so far)`.
fn each_resampled(path: &Path, rate: u32, each: &mut dyn FnMut(&[f32], u32, u64)) -> Result<()> {
    let mut audio = AudioStream::open(path)?;
    let input_rate = audio.sample_rate();
    let mut resampler = StreamResampler::new(input_rate, rate).map_err(|e| Error::Audio {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut frames = 0u64;
    while let Some(block) = audio.next_block()? {
        frames += block.len() as u64;
        each(&resampler.push(&block)?, input_rate, frames);
    }
    each(&resampler.finish()?, input_rate, frames);
    Ok(())
}
