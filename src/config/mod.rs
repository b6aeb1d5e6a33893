//! One serde configuration for every layer of `ddsp`: features, cache, model, losses and
//! training.
//!
//! The JSON form uses camelCase keys (`sampleRate`, `spectralWindows`, ...) and rejects unknown
//! keys, so a typo is an error that names the key. Values are resolved with the precedence
//! *built-in defaults < JSON file < overrides* ([`Config::from_sources`]); every key can be
//! overridden as a kebab-case command-line flag (`--sample-rate 16000`,
//! `--spectral-windows 64,128,256`, `--shuffle false`). [`Config::validate`] rejects impossible
//! combinations with a message naming the option and the rule.
//!
//! The flat config is translated into the small module configs (`FeatureConfig`,
//! `SynthConfig`, `DecoderConfig`, `ObjectiveConfig`) in one place (`translate.rs`); the
//! modules below know only their own configs and own the enums they need, which are
//! re-exported here under the config's names.
//!
//! Defaults reproduce the original DDSPE2E tool; `configs/paper.json` holds the DDSP paper's
//! solo-instrument setup.

mod flags;
mod translate;
mod validate;

pub use crate::decoder::{DecoderBackbone, EncoderKind};
pub use crate::dsp::AmpResample;
pub use crate::loss::{LoudnessLossMode, SpectralLogForm, SpectralLossMode};
pub use crate::synth::{
    ControlResidual, ControlSmoothing, HarmonicScaling as HarmonicHeadMode, ReverbMode,
    SmoothingTarget,
};
pub use flags::{OptionSpec, camel_to_kebab, kebab_to_camel};

use serde::{Deserialize, Serialize};
use std::path::Path;

use crate::error::{Error, Result};

/// Learning-rate schedule (`lrSchedule`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum LrSchedule {
    /// Constant `lr` (after warmup).
    None,
    /// `lr * lrDecayRate^(step / lrDecaySteps)`, floored at `lrMin`.
    Exp,
    /// Cosine from `lr` to `lrMin` over the run.
    Cosine,
}

/// Gradient clipping (`gradClipMode`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum GradClipMode {
    /// Clip by the norm of all gradients together (the paper).
    Global,
    /// Clamp every gradient element to `[-gradClip, gradClip]` (the original tool).
    Element,
}

/// The complete, flat configuration. Field docs give the meaning; defaults are the original
/// DDSPE2E tool's.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Config {
    // ----- audio, framing and features -----
    /// Sample rate audio is resampled to, Hz.
    pub sample_rate: f64,
    /// Samples per training chunk.
    pub chunk_size: usize,
    /// Samples between chunk starts.
    pub chunk_hop: usize,
    /// Analysis window for features, samples.
    pub frame_size: usize,
    /// Samples between feature frames (must divide `chunkSize`).
    pub frame_hop: usize,
    /// Lowest f0 the tracker considers, Hz.
    pub min_f0: f64,
    /// Highest f0 the tracker considers, Hz.
    pub max_f0: f64,
    /// Chunks whose RMS is below this are dropped.
    pub silence_rms: f64,
    /// Voicing probability at or above which a frame is voiced.
    pub voiced_threshold: f64,
    /// Peak level audio is normalised to.
    pub normalize_to: f64,
    /// Fraction of each file's audio that goes to the train split.
    pub train_split: f64,
    /// Seed for initialisation, batch order and noise: training only, free on any cache.
    pub seed: u64,
    /// Seed of the train/validation split, a property of the cache (recorded in its
    /// manifest).
    pub split_seed: u64,
    /// Use at most this many files (sorted order).
    pub max_files: Option<usize>,
    /// Keep at most this many chunks per file.
    pub max_chunks_per_file: Option<usize>,
    /// Shuffle chunks between batches.
    pub shuffle: bool,
    /// Reuse the same batch every step.
    pub fixed_batch: bool,
    /// Memory for the target spectrograms of chunks kept across steps, MB (0: computed every
    /// step). Targets never change, so each chunk's are computed once while they fit.
    pub target_cache_mb: usize,
    /// Add per-frame deltas of f0 and loudness to the decoder input.
    pub delta_features: bool,

    // ----- decoder -----
    /// Decoder backbone.
    pub decoder_backbone: DecoderBackbone,
    /// MLP width.
    pub model_hidden: usize,
    /// MLP trunk depth.
    pub model_layers: usize,
    /// Micro-RNN decoder: units of the gated cell after the MLP trunk (16-64 in the plan).
    pub micro_rnn_units: usize,
    /// GRU decoder: Dense/LayerNorm/leaky-ReLU layers per input and output stack.
    pub layers_per_stack: usize,
    /// GRU decoder: recurrent units (also the stacks' width).
    pub rnn_channels: usize,
    /// The paper's z-encoder: `none`, or `mfcc` (MFCCs -> normalisation -> GRU -> `zDims`
    /// latent values per frame, an extra decoder input).
    pub encoder: EncoderKind,
    /// z-encoder: MFCCs per frame (magenta: 30), computed by the feature pipeline and cached.
    pub mfcc_bins: usize,
    /// z-encoder: latent values per frame (magenta: 16).
    pub z_dims: usize,
    /// z-encoder: GRU units (magenta: 512).
    pub encoder_units: usize,
    /// Transformer width.
    pub transformer_d_model: usize,
    /// Transformer blocks.
    pub transformer_layers: usize,
    /// Transformer attention heads (must divide `transformerDModel`).
    pub transformer_heads: usize,
    /// Feed-forward width as a multiple of `transformerDModel`.
    pub transformer_ff_multiplier: usize,
    /// Mask attention to past and present frames.
    pub transformer_causal: bool,
    /// Add sinusoidal positional encoding.
    pub transformer_positional_encoding: bool,

    // ----- heads and synthesis -----
    /// Number of harmonics.
    pub harmonics: usize,
    /// Harmonic head parameterisation.
    pub harmonic_head_mode: HarmonicHeadMode,
    /// Legacy alias: `true` selects `normalized`, `false` keeps `harmonicHeadMode`.
    pub normalized_harmonic_head: bool,
    /// Softmax temperature (softmax-db head).
    pub softmax_temp: f64,
    /// Final softmax temperature (unset: `softmaxTemp`).
    pub softmax_temp_end: Option<f64>,
    /// Steps at `softmaxTemp` before the ramp.
    pub softmax_temp_warmup_steps: usize,
    /// Steps of the linear ramp to `softmaxTempEnd`.
    pub softmax_temp_ramp_steps: usize,
    /// Uniform floor mixed into the softmax distribution: `(1-a)*softmax + a/K`.
    pub softmax_amp_floor: f64,
    /// Lower bound of the softmax-db harmonic gain, dB.
    pub softmax_gain_min_db: f64,
    /// Upper bound of the softmax-db harmonic gain, dB.
    pub softmax_gain_max_db: f64,
    /// Filter the noise branch with learned band magnitudes (original tool's model).
    pub noise_filter: bool,
    /// Noise filter bands when `noiseFilter` is on (original tool's model).
    pub noise_filter_size: usize,
    /// Noise bands of the paper's filtered-noise synth (exp-sigmoid head).
    pub noise_bands: usize,
    /// Reverb effect.
    pub reverb: ReverbMode,
    /// Reverb impulse response length, samples.
    pub reverb_length: usize,
    /// Learning-rate multiplier of the reverb's parameters (FIR taps, or the exp-decay gain
    /// and decay). Adam moves every parameter by about the learning rate per step whatever its
    /// gradient's size, so each of thousands of FIR taps grows as fast as a decoder weight
    /// unless this slows them.
    pub reverb_lr_scale: f64,
    /// Frame-to-sample upsampling of amplitudes.
    pub amp_resample: AmpResample,
    /// Causal smoothing of control streams.
    pub control_smoothing: ControlSmoothing,
    /// One-pole coefficient `a` in `y[t] = a*y[t-1] + (1-a)*x[t]`.
    pub control_smoothing_alpha: f64,
    /// FIR smoothing length, frames.
    pub control_smoothing_fir_size: usize,
    /// Biquad smoothing cutoff, Hz (below half the frame rate).
    pub control_smoothing_cutoff_hz: f64,
    /// Biquad smoothing quality factor (0.7071: Butterworth).
    pub control_smoothing_q: f64,
    /// Control streams to smooth.
    pub control_smoothing_targets: Vec<SmoothingTarget>,
    /// The raw-control path: `off` (the decoder outputs the controls' logits) or `ar` (it
    /// outputs increments of an AR(1) state per control, `s[t] = a s[t-1] + delta[t]`).
    pub control_residual: ControlResidual,
    /// The AR residual path's coefficient `a`, in [0, 1).
    pub control_residual_alpha: f64,

    // ----- optimisation -----
    /// Adam learning rate.
    pub lr: f64,
    /// Learning-rate schedule.
    pub lr_schedule: LrSchedule,
    /// Learning-rate floor.
    pub lr_min: f64,
    /// Linear warmup steps from 0 to `lr`.
    pub lr_warmup_steps: usize,
    /// Steps per decay period (exp schedule).
    pub lr_decay_steps: usize,
    /// Decay factor per period (exp schedule).
    pub lr_decay_rate: f64,
    /// Chunks per batch.
    pub batch_size: usize,
    /// Batches whose gradients are summed before a step.
    pub grad_accum_steps: usize,
    /// Gradient clip threshold (0 disables).
    pub grad_clip: f64,
    /// Clip by global norm or per element.
    pub grad_clip_mode: GradClipMode,
    /// Stop after this many evaluations without improvement (0 disables).
    pub early_stop_patience: usize,
    /// Improvement smaller than this does not count.
    pub early_stop_min_delta: f64,

    // ----- losses -----
    /// FFT sizes of the multi-scale spectral loss.
    pub spectral_windows: Vec<usize>,
    /// Weight of the spectral magnitude term.
    pub spectral_weight: f64,
    /// Weight of the spectral log-magnitude term.
    pub spectral_logmag_weight: f64,
    /// Spectral hop = `max(1, window / spectralHopDivisor)`.
    pub spectral_hop_divisor: usize,
    /// Steps with spectral weight 0 before its ramp.
    pub spectral_warmup_steps: usize,
    /// Steps of the linear ramp of the spectral weights.
    pub spectral_ramp_steps: usize,
    /// L1 or L2 magnitude term.
    pub spectral_loss_mode: SpectralLossMode,
    /// Epsilon of the log-magnitude term.
    pub spectral_log_epsilon: f64,
    /// `plus-eps`: `log(|X| + eps)` (the original tool); `safe-log`: magenta's
    /// `log(max(|X|, eps))`. Validation and `eval` always use magenta's.
    pub spectral_log_form: SpectralLogForm,
    /// Weight of the waveform MSE term.
    pub mse_weight: f64,
    /// Weight of the loudness loss.
    pub loudness_loss_weight: f64,
    /// Final loudness weight (unset: `loudnessLossWeight`).
    pub loudness_loss_weight_end: Option<f64>,
    /// Steps at the start weight before the ramp.
    pub loudness_loss_warmup_steps: usize,
    /// Steps of the linear ramp to the end weight.
    pub loudness_loss_ramp_steps: usize,
    /// Loudness loss form.
    pub loudness_loss_mode: LoudnessLossMode,
    /// Harmonic entropy regulariser weight: `w * (ln K - H(p))`.
    pub harmonic_entropy_weight: f64,
    /// Final entropy weight (unset: start weight).
    pub harmonic_entropy_weight_end: Option<f64>,
    /// Steps at the start weight before the ramp.
    pub harmonic_entropy_warmup_steps: usize,
    /// Steps of the linear ramp.
    pub harmonic_entropy_ramp_steps: usize,
    /// Harmonic concentration regulariser weight: `w * max(mean(sum p^2) - 1/K, 0)`.
    pub harmonic_concentration_weight: f64,
    /// Final concentration weight (unset: start weight).
    pub harmonic_concentration_weight_end: Option<f64>,
    /// Steps at the start weight before the ramp.
    pub harmonic_concentration_warmup_steps: usize,
    /// Steps of the linear ramp.
    pub harmonic_concentration_ramp_steps: usize,

    // ----- logging and outputs -----
    /// Steps between log lines.
    pub log_every: usize,
    /// Steps between checkpoints.
    pub checkpoint_every: usize,
    /// Steps between validation losses (0 disables).
    pub eval_every: usize,
    /// Steps between renders (unset: `checkpointEvery`; 0 disables).
    pub render_every: Option<usize>,
    /// Steps between control dumps (0 disables).
    pub dump_controls_every: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            sample_rate: 16000.0,
            chunk_size: 16384,
            chunk_hop: 8192,
            frame_size: 1024,
            frame_hop: 256,
            min_f0: 50.0,
            max_f0: 1000.0,
            silence_rms: 0.0005,
            voiced_threshold: 0.3,
            normalize_to: 0.99,
            train_split: 0.9,
            seed: 1337,
            split_seed: 1337,
            max_files: None,
            max_chunks_per_file: None,
            shuffle: true,
            fixed_batch: false,
            target_cache_mb: 1024,
            delta_features: false,
            decoder_backbone: DecoderBackbone::Mlp,
            model_hidden: 32,
            model_layers: 1,
            micro_rnn_units: 32,
            layers_per_stack: 3,
            rnn_channels: 512,
            encoder: EncoderKind::None,
            mfcc_bins: 30,
            z_dims: 16,
            encoder_units: 512,
            transformer_d_model: 64,
            transformer_layers: 2,
            transformer_heads: 4,
            transformer_ff_multiplier: 2,
            transformer_causal: true,
            transformer_positional_encoding: true,
            harmonics: 16,
            harmonic_head_mode: HarmonicHeadMode::Legacy,
            normalized_harmonic_head: false,
            softmax_temp: 1.0,
            softmax_temp_end: None,
            softmax_temp_warmup_steps: 0,
            softmax_temp_ramp_steps: 0,
            softmax_amp_floor: 0.0,
            softmax_gain_min_db: -50.0,
            softmax_gain_max_db: 6.0,
            noise_filter: false,
            noise_filter_size: 15,
            noise_bands: 65,
            reverb: ReverbMode::Off,
            reverb_length: 48000,
            reverb_lr_scale: 1.0,
            amp_resample: AmpResample::Linear,
            control_smoothing: ControlSmoothing::Off,
            control_smoothing_alpha: 0.8,
            control_smoothing_fir_size: 5,
            control_smoothing_cutoff_hz: 10.0,
            control_smoothing_q: std::f64::consts::FRAC_1_SQRT_2,
            control_smoothing_targets: vec![
                SmoothingTarget::HarmonicGain,
                SmoothingTarget::NoiseGain,
            ],
            control_residual: ControlResidual::Off,
            control_residual_alpha: 0.8,
            lr: 0.001,
            lr_schedule: LrSchedule::None,
            lr_min: 1e-5,
            lr_warmup_steps: 0,
            lr_decay_steps: 10000,
            lr_decay_rate: 0.98,
            batch_size: 1,
            grad_accum_steps: 1,
            grad_clip: 1.0,
            grad_clip_mode: GradClipMode::Element,
            early_stop_patience: 0,
            early_stop_min_delta: 0.0,
            spectral_windows: Vec::new(),
            spectral_weight: 0.0,
            spectral_logmag_weight: 0.0,
            spectral_hop_divisor: 4,
            spectral_warmup_steps: 100,
            spectral_ramp_steps: 200,
            spectral_loss_mode: SpectralLossMode::L2,
            spectral_log_epsilon: 1e-5,
            spectral_log_form: SpectralLogForm::PlusEps,
            mse_weight: 1.0,
            loudness_loss_weight: 0.0,
            loudness_loss_weight_end: None,
            loudness_loss_warmup_steps: 0,
            loudness_loss_ramp_steps: 0,
            loudness_loss_mode: LoudnessLossMode::LinearL2,
            harmonic_entropy_weight: 0.0,
            harmonic_entropy_weight_end: None,
            harmonic_entropy_warmup_steps: 0,
            harmonic_entropy_ramp_steps: 0,
            harmonic_concentration_weight: 0.0,
            harmonic_concentration_weight_end: None,
            harmonic_concentration_warmup_steps: 0,
            harmonic_concentration_ramp_steps: 0,
            log_every: 10,
            checkpoint_every: 100,
            eval_every: 100,
            render_every: None,
            dump_controls_every: 0,
        }
    }
}

impl Config {
    /// Parse a JSON document: an object of options (unknown keys are an error naming the key;
    /// an array, which serde would read positionally, is refused).
    pub fn from_json_str(text: &str) -> Result<Self> {
        Self::parse(text).map_err(|e| Error::Config(format!("invalid config JSON: {e}")))
    }

    /// Read a JSON config file; errors name the file.
    pub fn from_json_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text)
            .map_err(|e| Error::Config(format!("{}: invalid config: {e}", path.display())))
    }

    fn parse(text: &str) -> std::result::Result<Self, String> {
        if !text.trim_start().starts_with('{') {
            return Err("a config is a JSON object of options, {\"key\": value, ...}".into());
        }
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    /// Pretty JSON with every key, unset options as `null`.
    pub fn to_json_string(&self) -> String {
        serde_json::to_string_pretty(self).expect("Config serialises") + "\n"
    }

    /// Write the config as JSON through a temporary file and a rename.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        crate::io::write_atomic(path, self.to_json_string().as_bytes())
    }

    /// Number of feature frames in one chunk (`chunkSize / frameHop`).
    pub fn frames_per_chunk(&self) -> usize {
        self.chunk_size / self.frame_hop
    }

    /// The spectral-loss hop for an FFT size: `max(1, window / spectralHopDivisor)`.
    pub fn spectral_hop(&self, window: usize) -> usize {
        (window / self.spectral_hop_divisor.max(1)).max(1)
    }

    /// Steps between renders (`renderEvery`, defaulting to `checkpointEvery`).
    pub fn render_every(&self) -> usize {
        self.render_every.unwrap_or(self.checkpoint_every)
    }

    /// The subset of the config a cache depends on (features, chunking, split): a cache made
    /// with other values is stale. The training `seed` is not part of it.
    pub fn feature_fingerprint(&self) -> Vec<(&'static str, String)> {
        [
            ("sampleRate", self.sample_rate.to_string()),
            ("chunkSize", self.chunk_size.to_string()),
            ("chunkHop", self.chunk_hop.to_string()),
            ("frameSize", self.frame_size.to_string()),
            ("frameHop", self.frame_hop.to_string()),
            ("minF0", self.min_f0.to_string()),
            ("maxF0", self.max_f0.to_string()),
            ("silenceRms", self.silence_rms.to_string()),
            ("voicedThreshold", self.voiced_threshold.to_string()),
            ("normalizeTo", self.normalize_to.to_string()),
            ("trainSplit", self.train_split.to_string()),
            ("splitSeed", self.split_seed.to_string()),
            ("maxFiles", format!("{:?}", self.max_files)),
            (
                "maxChunksPerFile",
                format!("{:?}", self.max_chunks_per_file),
            ),
        ]
        .into_iter()
        // Only caches with MFCCs name them, so caches made before MFCCs existed stay valid.
        .chain(
            (self.encoder == EncoderKind::Mfcc).then(|| ("mfccBins", self.mfcc_bins.to_string())),
        )
        .collect()
    }
}

#[cfg(test)]
mod tests;
