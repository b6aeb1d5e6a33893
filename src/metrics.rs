//! Resynthesis metrics as magenta's `ddsp` defines them, for validation during training and
//! for `eval`:
//!
//! - the multi-scale spectral loss (`SpectralLoss(fft_sizes=(2048, ..., 64), loss_type='L1',
//!   mag_weight=1, logmag_weight=1)`: exact `|X|` and its `safe_log`, see
//!   [`paper_spectral_loss`]);
//! - the loudness distance (`LoudnessMetrics`): mean `|L_target - L_render|` in dB over frames
//!   of `compute_loudness` (A-weighted, 512-point FFT, 250 frames per second);
//! - the f0 distance and outlier ratio (`F0CrepeMetrics`, with this crate's pitch tracker in
//!   place of CREPE): mean `|midi_target - midi_render|` over frames where the target is voiced
//!   with confidence >= [`MIN_F0_CONFIDENCE`], reported in cents; a render more than
//!   [`OUTLIER_SEMITONES`] off on average, or untrackable there, is an outlier.

use burn::tensor::{Device, Tensor};

use crate::dsp::{from_vec, hz_to_midi_f64, to_vec};
use crate::features::loudness::compute_loudness;
use crate::features::pitch::PitchConfig;
use crate::features::track_pitch;
use crate::features::{FeatureConfig, FrameFeatures};
use crate::loss::{
    SpectralLogForm, SpectralLoss, SpectralLossConfig, SpectralLossMode, Spectrograms,
};

/// Target frames count for the f0 distance when their voicing confidence is at least this
/// (magenta's `MIN_F0_CONFIDENCE`).
pub const MIN_F0_CONFIDENCE: f64 = 0.85;
/// A render whose mean f0 distance exceeds this many semitones is an outlier (magenta's
/// `OUTLIER_MIDI_THRESH`).
pub const OUTLIER_SEMITONES: f64 = 12.0;
/// Frame rate of the loudness metric, Hz (magenta's 250).
pub const LOUDNESS_FRAME_RATE: f64 = 250.0;
/// FFT size of the loudness metric (magenta's `compute_loudness` default).
pub const LOUDNESS_N_FFT: usize = 512;

/// The paper's spectral loss exactly as magenta computes it: FFT sizes 2048 to 64, hop a
/// quarter of the size, L1, magnitude + log-magnitude with the loss's `safe_log`
/// ([`SpectralLogForm::SafeLog`], eps 1e-5) on exact magnitudes. The validation and `eval`
/// metric, whatever the training objective. Not for training: exact magnitudes have no finite
/// gradient where a spectrum is 0 (train with [`SpectralLossConfig`]'s default floor).
pub fn paper_spectral_loss(device: &Device) -> SpectralLoss {
    SpectralLossConfig::new(vec![2048, 1024, 512, 256, 128, 64])
        .with_hop_divisor(4)
        .with_mode(SpectralLossMode::L1)
        .with_log_epsilon(1e-5)
        .with_log_form(SpectralLogForm::SafeLog)
        .with_power_floor(0.0)
        .init(device)
}

/// Mean absolute loudness difference in dB between two signals (magenta's
/// `LoudnessMetrics`): `compute_loudness` with a 512-point FFT every `sr / 250` samples,
/// over the frames of the shorter signal.
pub fn loudness_l1_db(target: &[f32], render: &[f32], sample_rate: f64) -> f64 {
    let hop = ((sample_rate / LOUDNESS_FRAME_RATE).floor() as usize).max(1);
    let t = compute_loudness(target, sample_rate, LOUDNESS_N_FFT, hop);
    let r = compute_loudness(render, sample_rate, LOUDNESS_N_FFT, hop);
    let n = t.len().min(r.len()).max(1);
    t.iter()
        .zip(&r)
        .map(|(a, b)| (*a as f64 - *b as f64).abs())
        .sum::<f64>()
        / n as f64
}

/// How well a render's f0 follows its target's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum F0Score {
    /// The target has no frame voiced with confidence >= [`MIN_F0_CONFIDENCE`]: not scored
    /// (magenta discards such examples).
    Unscored,
    /// The render is untrackable where the target is voiced, or off by more than
    /// [`OUTLIER_SEMITONES`] on average.
    Outlier,
    /// Mean `|cents|` between target and render f0 over the target's confident frames.
    Cents(f64),
}

/// The f0 score of a render from frame tracks on one grid: the target's f0 and voicing
/// confidence, the render's re-tracked f0 and voicing (`voiced_threshold` decides which of
/// its frames are voiced).
pub fn f0_score(target: &FrameFeatures, render: &FrameFeatures, voiced_threshold: f64) -> F0Score {
    let n = target.len().min(render.len());
    let kept: Vec<usize> = (0..n)
        .filter(|&i| target.voiced_prob[i] as f64 >= MIN_F0_CONFIDENCE)
        .collect();
    if kept.is_empty() {
        return F0Score::Unscored;
    }
    if !kept
        .iter()
        .any(|&i| render.voiced_prob[i] as f64 >= voiced_threshold)
    {
        return F0Score::Outlier;
    }
    let semitones = kept
        .iter()
        .map(|&i| {
            (hz_to_midi_f64(target.f0_hz[i] as f64) - hz_to_midi_f64(render.f0_hz[i] as f64)).abs()
        })
        .sum::<f64>()
        / kept.len() as f64;
    if semitones > OUTLIER_SEMITONES {
        F0Score::Outlier
    } else {
        F0Score::Cents(100.0 * semitones)
    }
}

/// Median `|cents|` between two f0 tracks over frames both call voiced (NaN when none): the
/// validation log's quick check that renders keep their pitch.
pub fn median_cents(target: &FrameFeatures, render: &FrameFeatures, voiced_threshold: f64) -> f64 {
    let mut cents: Vec<f64> = (0..target.len().min(render.len()))
        .filter(|&i| {
            target.voiced_prob[i] as f64 >= voiced_threshold
                && render.voiced_prob[i] as f64 >= voiced_threshold
        })
        .map(|i| (1200.0 * (render.f0_hz[i] as f64 / target.f0_hz[i] as f64).log2()).abs())
        .collect();
    cents.sort_by(f64::total_cmp);
    cents.get(cents.len() / 2).copied().unwrap_or(f64::NAN)
}

/// All metrics of one render (a chunk or a whole file).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scores {
    /// Multi-scale spectral loss, magnitude + log-magnitude.
    pub spectral: f64,
    /// Its magnitude half.
    pub spectral_mag: f64,
    /// Its log-magnitude half.
    pub spectral_logmag: f64,
    /// Loudness L1, dB.
    pub loudness_l1_db: f64,
    /// The f0 score.
    pub f0: F0Score,
    /// Median cents over frames voiced in both (NaN when none).
    pub f0_median_cents: f64,
}

/// Scores averaged over renders, as magenta reports them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// Renders scored.
    pub count: usize,
    /// Mean spectral loss.
    pub spectral: f64,
    /// Mean magnitude half.
    pub spectral_mag: f64,
    /// Mean log-magnitude half.
    pub spectral_logmag: f64,
    /// Mean loudness L1, dB.
    pub loudness_l1_db: f64,
    /// Mean f0 distance in cents over the renders that are neither unscored nor outliers.
    pub f0_l1_cents: Option<f64>,
    /// Outliers among the renders whose target could be scored.
    pub outlier_ratio: Option<f64>,
    /// Median of the renders' median cents.
    pub f0_median_cents: f64,
}

impl Summary {
    /// The means of `scores`.
    pub fn of(scores: &[Scores]) -> Self {
        let n = scores.len().max(1) as f64;
        let mean = |f: fn(&Scores) -> f64| scores.iter().map(f).sum::<f64>() / n;
        let cents: Vec<f64> = scores
            .iter()
            .filter_map(|s| match s.f0 {
                F0Score::Cents(c) => Some(c),
                _ => None,
            })
            .collect();
        let scored = scores.iter().filter(|s| s.f0 != F0Score::Unscored).count();
        let outliers = scores.iter().filter(|s| s.f0 == F0Score::Outlier).count();
        let mut medians: Vec<f64> = scores
            .iter()
            .map(|s| s.f0_median_cents)
            .filter(|c| c.is_finite())
            .collect();
        medians.sort_by(f64::total_cmp);
        Self {
            count: scores.len(),
            spectral: mean(|s| s.spectral),
            spectral_mag: mean(|s| s.spectral_mag),
            spectral_logmag: mean(|s| s.spectral_logmag),
            loudness_l1_db: mean(|s| s.loudness_l1_db),
            f0_l1_cents: (!cents.is_empty())
                .then(|| cents.iter().sum::<f64>() / cents.len() as f64),
            outlier_ratio: (scored > 0).then(|| outliers as f64 / scored as f64),
            f0_median_cents: medians.get(medians.len() / 2).copied().unwrap_or(f64::NAN),
        }
    }
}

/// Computes [`Scores`] for renders of targets at one sample rate and frame grid.
pub struct Scorer {
    spectral: SpectralLoss,
    pitch: PitchConfig,
    sample_rate: f64,
    voiced_threshold: f64,
    device: Device,
}

impl Scorer {
    /// A scorer for audio and features on `features`' grid; spectra are computed on `device`.
    pub fn new(features: &FeatureConfig, device: &Device) -> Self {
        Self {
            spectral: paper_spectral_loss(device),
            pitch: features.pitch(),
            sample_rate: features.sample_rate,
            voiced_threshold: features.voiced_threshold,
            device: device.clone(),
        }
    }

    /// The target spectrograms of a batch `[B, N]` (compute once for fixed targets).
    pub fn target_spectrograms(&self, target: Tensor<2>) -> Spectrograms {
        self.spectral.target_spectrograms(target)
    }

    /// Scores per item of a batch: `target: [B, N]` with its spectrograms and frame features
    /// (f0 and voicing, `B` tracks), `render: [B, N]`, re-tracked here.
    pub fn score_batch(
        &self,
        target: &Tensor<2>,
        target_spectrograms: &Spectrograms,
        target_features: &[FrameFeatures],
        render: Tensor<2>,
    ) -> Vec<Scores> {
        let [b, n] = render.dims();
        let (mag, logmag) = self.spectral.per_item(render.clone(), target_spectrograms);
        let (mag, logmag) = (to_vec(mag), to_vec(logmag));
        let render = to_vec(render);
        let target = to_vec(target.clone());
        (0..b)
            .map(|i| {
                let r = &render[i * n..(i + 1) * n];
                let t = &target[i * n..(i + 1) * n];
                self.scores_of(t, r, &target_features[i], mag[i] as f64, logmag[i] as f64)
            })
            .collect()
    }

    /// Scores of one render against its target (any lengths; the shorter sets the span),
    /// tracking the target's features here.
    pub fn score(&self, target: &[f32], render: &[f32]) -> Scores {
        let n = target.len().min(render.len());
        let (t, r) = (&target[..n], &render[..n]);
        let as_tensor = |x: &[f32]| from_vec(x.to_vec(), [1, n], &self.device);
        let spec = self.spectral.target_spectrograms(as_tensor(t));
        let (mag, logmag) = self.spectral.per_item(as_tensor(r), &spec);
        let track = track_pitch(t, &self.pitch);
        let features = FrameFeatures {
            f0_hz: track.f0_hz,
            voiced_prob: track.voiced_prob,
            loudness_db: Vec::new(),
            mfcc: Vec::new(),
        };
        self.scores_of(
            t,
            r,
            &features,
            to_vec(mag)[0] as f64,
            to_vec(logmag)[0] as f64,
        )
    }

    fn scores_of(
        &self,
        target: &[f32],
        render: &[f32],
        target_features: &FrameFeatures,
        mag: f64,
        logmag: f64,
    ) -> Scores {
        let track = track_pitch(render, &self.pitch);
        let rendered = FrameFeatures {
            f0_hz: track.f0_hz,
            voiced_prob: track.voiced_prob,
            loudness_db: Vec::new(),
            mfcc: Vec::new(),
        };
        Scores {
            spectral: mag + logmag,
            spectral_mag: mag,
            spectral_logmag: logmag,
            loudness_l1_db: loudness_l1_db(target, render, self.sample_rate),
            f0: f0_score(target_features, &rendered, self.voiced_threshold),
            f0_median_cents: median_cents(target_features, &rendered, self.voiced_threshold),
        }
    }
}
