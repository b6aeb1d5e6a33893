//! [`Config::validate`]: every rule, reported with the option's name.

use super::{Config, ControlSmoothing};
use crate::error::{Error, Result};
use crate::features::audio::SAMPLE_RATE_RANGE;

impl Config {
    /// Check every rule; the first broken one is reported with the option's name.
    // `!(a < b)` is deliberate: it also rejects NaN.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    pub fn validate(&self) -> Result<()> {
        let mut v = Validator::default();
        v.finite_positive("sampleRate", self.sample_rate);
        // Bounds on sizes that allocate: values beyond them are mistakes, and would exhaust
        // memory before anything else went wrong.
        v.in_closed(
            "sampleRate",
            self.sample_rate,
            *SAMPLE_RATE_RANGE.start() as f64,
            MAX_SAMPLE_RATE,
        );
        v.at_most("chunkSize", self.chunk_size, MAX_CHUNK_SAMPLES);
        v.at_most("frameSize", self.frame_size, MAX_FRAME_SIZE);
        v.at_most("batchSize", self.batch_size, MAX_BATCH);
        v.at_least("chunkSize", self.chunk_size, 1);
        v.at_least("chunkHop", self.chunk_hop, 1);
        v.at_least("frameHop", self.frame_hop, 1);
        v.at_least("frameSize", self.frame_size, 2);
        if self.frame_hop > 0 && !self.chunk_size.is_multiple_of(self.frame_hop) {
            v.fail(
                "frameHop",
                format!(
                    "must divide chunkSize ({}) exactly, got {}",
                    self.chunk_size, self.frame_hop
                ),
            );
        }
        if self.frame_hop > 0 && !self.chunk_hop.is_multiple_of(self.frame_hop) {
            v.fail(
                "chunkHop",
                format!(
                    "must be a multiple of frameHop ({}) so chunks start on a frame, got {}",
                    self.frame_hop, self.chunk_hop
                ),
            );
        }
        if self.frame_size < self.frame_hop {
            v.fail(
                "frameSize",
                format!(
                    "must be >= frameHop ({}), got {}",
                    self.frame_hop, self.frame_size
                ),
            );
        }
        v.finite_positive("minF0", self.min_f0);
        if self.min_f0 < MIN_F0_HZ {
            v.fail(
                "minF0",
                format!(
                    "must be >= {MIN_F0_HZ} Hz (the pitch tracker's window spans two periods of \
                     minF0), got {}",
                    self.min_f0
                ),
            );
        }
        if !(self.min_f0 < self.max_f0) {
            v.fail(
                "maxF0",
                format!("must be > minF0 ({}), got {}", self.min_f0, self.max_f0),
            );
        }
        if !(self.max_f0 < self.sample_rate / 2.0) {
            v.fail(
                "maxF0",
                format!(
                    "must be < sampleRate/2 ({}), got {}",
                    self.sample_rate / 2.0,
                    self.max_f0
                ),
            );
        }
        v.finite_non_negative("silenceRms", self.silence_rms);
        v.in_closed("voicedThreshold", self.voiced_threshold, 0.0, 1.0);
        if !(self.normalize_to > 0.0 && self.normalize_to <= 1.0) {
            v.fail(
                "normalizeTo",
                format!("must be in (0, 1], got {}", self.normalize_to),
            );
        }
        if !(self.train_split > 0.0 && self.train_split <= 1.0) {
            v.fail(
                "trainSplit",
                format!("must be in (0, 1], got {}", self.train_split),
            );
        }
        if self.max_files == Some(0) {
            v.fail("maxFiles", "must be >= 1 when set".into());
        }
        if self.max_chunks_per_file == Some(0) {
            v.fail("maxChunksPerFile", "must be >= 1 when set".into());
        }

        v.at_least("modelHidden", self.model_hidden, 1);
        v.at_least("modelLayers", self.model_layers, 1);
        v.at_least("microRnnUnits", self.micro_rnn_units, 1);
        // The encoder normalises each frame's coefficients: one coefficient would normalise to
        // a constant.
        if !(2..=crate::features::mfcc::MEL_BINS).contains(&self.mfcc_bins) {
            v.fail(
                "mfccBins",
                format!(
                    "must be in 2..={} (the mel bands), got {}",
                    crate::features::mfcc::MEL_BINS,
                    self.mfcc_bins
                ),
            );
        }
        v.at_least("zDims", self.z_dims, 1);
        v.at_least("encoderUnits", self.encoder_units, 1);
        v.at_least("rnnChannels", self.rnn_channels, 1);
        v.at_least("transformerDModel", self.transformer_d_model, 1);
        v.at_least("transformerLayers", self.transformer_layers, 1);
        v.at_least("transformerHeads", self.transformer_heads, 1);
        v.at_least("transformerFfMultiplier", self.transformer_ff_multiplier, 1);
        if self.transformer_heads > 0
            && !self
                .transformer_d_model
                .is_multiple_of(self.transformer_heads)
        {
            v.fail(
                "transformerHeads",
                format!(
                    "must divide transformerDModel ({}), got {}",
                    self.transformer_d_model, self.transformer_heads
                ),
            );
        }
        if self.transformer_positional_encoding && self.transformer_d_model % 2 == 1 {
            v.fail(
                "transformerDModel",
                format!(
                    "must be even with transformerPositionalEncoding, got {}",
                    self.transformer_d_model
                ),
            );
        }
        v.at_least("harmonics", self.harmonics, 1);
        v.finite_positive("softmaxTemp", self.softmax_temp);
        if let Some(t) = self.softmax_temp_end {
            v.finite_positive("softmaxTempEnd", t);
        }
        v.in_closed("softmaxAmpFloor", self.softmax_amp_floor, 0.0, 1.0);
        v.finite("softmaxGainMinDb", self.softmax_gain_min_db);
        v.finite("softmaxGainMaxDb", self.softmax_gain_max_db);
        if !(self.softmax_gain_min_db < self.softmax_gain_max_db) {
            v.fail(
                "softmaxGainMaxDb",
                format!(
                    "must be > softmaxGainMinDb ({}), got {}",
                    self.softmax_gain_min_db, self.softmax_gain_max_db
                ),
            );
        }
        v.at_least("noiseFilterSize", self.noise_filter_size, 1);
        v.at_least("noiseBands", self.noise_bands, 1);
        v.at_least("reverbLength", self.reverb_length, 2);
        if !(self.reverb_lr_scale > 0.0 && self.reverb_lr_scale <= 10.0) {
            v.fail(
                "reverbLrScale",
                format!("must be in (0, 10], got {}", self.reverb_lr_scale),
            );
        }
        if !(self.control_smoothing_alpha >= 0.0 && self.control_smoothing_alpha < 1.0) {
            v.fail(
                "controlSmoothingAlpha",
                format!("must be in [0, 1), got {}", self.control_smoothing_alpha),
            );
        }
        v.at_least(
            "controlSmoothingFirSize",
            self.control_smoothing_fir_size,
            1,
        );
        let frame_rate = self.sample_rate / self.frame_hop.max(1) as f64;
        let cutoff = self.control_smoothing_cutoff_hz;
        let biquad = self.control_smoothing == ControlSmoothing::Biquad;
        if biquad && !(cutoff > 0.0 && cutoff < frame_rate / 2.0) {
            v.fail(
                "controlSmoothingCutoffHz",
                format!(
                    "must be above 0 and below half the frame rate ({} Hz at sampleRate {} \
                     and frameHop {}), got {cutoff}",
                    frame_rate / 2.0,
                    self.sample_rate,
                    self.frame_hop
                ),
            );
        }
        let q = self.control_smoothing_q;
        if !(0.1..=10.0).contains(&q) {
            v.fail(
                "controlSmoothingQ",
                format!("must be in [0.1, 10], got {q}"),
            );
        } else if biquad && cutoff > 0.0 && cutoff < frame_rate / 2.0 {
            let truncation = crate::dsp::biquad_lowpass_truncation(cutoff / frame_rate, q);
            if truncation > 1e-2 {
                v.fail(
                    "controlSmoothingCutoffHz",
                    format!(
                        "{cutoff} Hz with controlSmoothingQ {q} rings longer than {} frames \
                         (its response misses {:.0}% of its gain there): raise the cutoff or \
                         lower the Q",
                        crate::dsp::BIQUAD_MAX_TAPS,
                        truncation * 100.0
                    ),
                );
            }
        }
        if !(self.control_residual_alpha >= 0.0 && self.control_residual_alpha < 1.0) {
            v.fail(
                "controlResidualAlpha",
                format!("must be in [0, 1), got {}", self.control_residual_alpha),
            );
        }

        v.finite_positive("lr", self.lr);
        v.finite_non_negative("lrMin", self.lr_min);
        if self.lr_min > self.lr {
            v.fail(
                "lrMin",
                format!("must be <= lr ({}), got {}", self.lr, self.lr_min),
            );
        }
        v.at_least("lrDecaySteps", self.lr_decay_steps, 1);
        if !(self.lr_decay_rate > 0.0 && self.lr_decay_rate <= 1.0) {
            v.fail(
                "lrDecayRate",
                format!("must be in (0, 1], got {}", self.lr_decay_rate),
            );
        }
        v.at_least("batchSize", self.batch_size, 1);
        v.at_least("gradAccumSteps", self.grad_accum_steps, 1);
        v.finite_non_negative("gradClip", self.grad_clip);
        v.finite_non_negative("earlyStopMinDelta", self.early_stop_min_delta);

        for &w in &self.spectral_windows {
            if !w.is_power_of_two() || w < 2 || w > self.chunk_size {
                v.fail(
                    "spectralWindows",
                    format!(
                        "every window must be a power of two in [2, chunkSize ({})], got {w}",
                        self.chunk_size
                    ),
                );
            }
        }
        v.at_least("spectralHopDivisor", self.spectral_hop_divisor, 1);
        v.finite_positive("spectralLogEpsilon", self.spectral_log_epsilon);
        let weights = [
            ("spectralWeight", Some(self.spectral_weight)),
            ("spectralLogmagWeight", Some(self.spectral_logmag_weight)),
            ("mseWeight", Some(self.mse_weight)),
            ("loudnessLossWeight", Some(self.loudness_loss_weight)),
            ("loudnessLossWeightEnd", self.loudness_loss_weight_end),
            ("harmonicEntropyWeight", Some(self.harmonic_entropy_weight)),
            ("harmonicEntropyWeightEnd", self.harmonic_entropy_weight_end),
            (
                "harmonicConcentrationWeight",
                Some(self.harmonic_concentration_weight),
            ),
            (
                "harmonicConcentrationWeightEnd",
                self.harmonic_concentration_weight_end,
            ),
        ];
        for (name, w) in weights {
            if let Some(w) = w {
                v.finite_non_negative(name, w);
            }
        }
        if (self.spectral_weight > 0.0 || self.spectral_logmag_weight > 0.0)
            && self.spectral_windows.is_empty()
        {
            v.fail(
                "spectralWindows",
                "must list at least one FFT size when spectralWeight or spectralLogmagWeight > 0"
                    .into(),
            );
        }
        v.at_least("logEvery", self.log_every, 1);
        v.at_least("checkpointEvery", self.checkpoint_every, 1);
        if v.first.is_none()
            && let Some(step) = self.objective_config().first_step_without_weight()
        {
            v.fail_message(format!(
                    "invalid loss weights: every loss weight is 0 at step {step}, so that step \
                     has nothing to learn from (spectralWeight {} and spectralLogmagWeight {} ramp in after \
                     spectralWarmupSteps {} over spectralRampSteps {}; mseWeight {}, \
                     loudnessLossWeight {} -> {:?}, harmonicEntropyWeight {} -> {:?}, \
                     harmonicConcentrationWeight {} -> {:?}); give some term a weight at every \
                     step, e.g. --mse-weight 1, or --spectral-warmup-steps 0 \
                     --spectral-ramp-steps 0",
                    self.spectral_weight,
                    self.spectral_logmag_weight,
                    self.spectral_warmup_steps,
                    self.spectral_ramp_steps,
                    self.mse_weight,
                    self.loudness_loss_weight,
                    self.loudness_loss_weight_end,
                    self.harmonic_entropy_weight,
                    self.harmonic_entropy_weight_end,
                    self.harmonic_concentration_weight,
                    self.harmonic_concentration_weight_end,
                ));
        }
        v.into_result()
    }
}

/// Lowest `minF0`, Hz (below the lowest notes of any instrument; a lower one makes the pitch
/// tracker's window millions of samples long).
pub const MIN_F0_HZ: f64 = 20.0;
/// Highest `sampleRate`, Hz: the highest rate an audio file may have.
pub const MAX_SAMPLE_RATE: f64 = *SAMPLE_RATE_RANGE.end() as f64;
/// Longest `chunkSize`, samples (about 17 minutes at 16 kHz).
pub const MAX_CHUNK_SAMPLES: usize = 1 << 24;
/// Longest `frameSize`, samples.
pub const MAX_FRAME_SIZE: usize = 1 << 16;
/// Largest `batchSize`.
pub const MAX_BATCH: usize = 4096;

#[derive(Default)]
struct Validator {
    first: Option<String>,
}

impl Validator {
    fn fail(&mut self, option: &str, rule: String) {
        self.fail_message(format!("invalid `{option}`: {rule}"));
    }
    fn fail_message(&mut self, message: String) {
        if self.first.is_none() {
            self.first = Some(message);
        }
    }
    fn finite(&mut self, option: &str, x: f64) {
        if !x.is_finite() {
            self.fail(option, format!("must be finite, got {x}"));
        }
    }
    fn finite_positive(&mut self, option: &str, x: f64) {
        if !(x.is_finite() && x > 0.0) {
            self.fail(option, format!("must be finite and > 0, got {x}"));
        }
    }
    fn finite_non_negative(&mut self, option: &str, x: f64) {
        if !(x.is_finite() && x >= 0.0) {
            self.fail(option, format!("must be finite and >= 0, got {x}"));
        }
    }
    fn in_closed(&mut self, option: &str, x: f64, lo: f64, hi: f64) {
        if !(x >= lo && x <= hi) {
            self.fail(option, format!("must be in [{lo}, {hi}], got {x}"));
        }
    }
    fn at_most(&mut self, option: &str, x: usize, max: usize) {
        if x > max {
            self.fail(option, format!("must be <= {max}, got {x}"));
        }
    }
    fn at_least(&mut self, option: &str, x: usize, min: usize) {
        if x < min {
            self.fail(option, format!("must be >= {min}, got {x}"));
        }
    }
    fn into_result(self) -> Result<()> {
        match self.first {
            Some(msg) => Err(Error::Config(msg)),
            None => Ok(()),
        }
    }
}
