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
//! Defaults reproduce the original DDSPE2E tool; `configs/paper.json` holds the DDSP paper's
//! solo-instrument setup.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::Path;

use crate::error::{Error, Result};

/// Harmonic control head parameterisation (`harmonicHeadMode`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum HarmonicHeadMode {
    /// Sigmoid amplitudes and gain, with `1/K` harmonic scaling (the original tool's default).
    Legacy,
    /// Softplus amplitudes normalised per frame, softplus gain, no `1/K` scaling.
    Normalized,
    /// Softmax distribution with temperature and floor, gain bounded in dB.
    SoftmaxDb,
    /// The DDSP paper: `exp_sigmoid` amplitude and distribution, Nyquist-masked and normalised.
    ExpSigmoid,
}

/// Decoder backbone (`decoderBackbone`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DecoderBackbone {
    /// Frame-wise MLP of the original tool.
    Mlp,
    /// The paper's RnnFcDecoder (input stacks, GRU, output stack).
    Gru,
    /// Pre-norm transformer blocks over frames.
    Transformer,
}

/// Causal smoothing of control streams (`controlSmoothing`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ControlSmoothing {
    /// No smoothing.
    Off,
    /// `y[t] = a*y[t-1] + (1-a)*x[t]`.
    Onepole,
    /// Causal moving-average FIR of `controlSmoothingFirSize` frames.
    Fir,
}

/// Which control streams are smoothed (`controlSmoothingTargets`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum SmoothingTarget {
    /// Overall harmonic amplitude.
    HarmonicGain,
    /// Noise magnitudes / gain.
    NoiseGain,
    /// Harmonic distribution.
    HarmonicDistribution,
}

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

/// Norm of the spectral magnitude term (`spectralLossMode`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum SpectralLossMode {
    /// Mean absolute difference (the paper).
    L1,
    /// Mean squared difference (the original tool).
    L2,
}

/// Loudness loss form (`loudnessLossMode`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum LoudnessLossMode {
    /// Squared difference of frame RMS amplitudes.
    LinearL2,
    /// Absolute difference of A-weighted loudness in dB.
    DbL1,
}

/// Reverb effect (`reverb`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ReverbMode {
    /// No reverb.
    Off,
    /// Trainable FIR impulse response of `reverbLength` taps.
    Fir,
    /// Exponentially decaying noise with trainable gain and decay.
    ExpDecay,
}

/// Frame-to-sample upsampling of amplitudes (`ampResample`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum AmpResample {
    /// Linear interpolation between frame centres.
    Linear,
    /// Overlapping Hann windows of `2*hop` (DDSP's "window" method).
    Window,
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
    /// Seed for splits, shuffling, initialisation and noise.
    pub seed: u64,
    /// Use at most this many files (sorted order).
    pub max_files: Option<usize>,
    /// Keep at most this many chunks per file.
    pub max_chunks_per_file: Option<usize>,
    /// Shuffle chunks between batches.
    pub shuffle: bool,
    /// Reuse the same batch every step.
    pub fixed_batch: bool,
    /// Add per-frame deltas of f0 and loudness to the decoder input.
    pub delta_features: bool,

    // ----- decoder -----
    /// Decoder backbone.
    pub decoder_backbone: DecoderBackbone,
    /// MLP width.
    pub model_hidden: usize,
    /// MLP trunk depth.
    pub model_layers: usize,
    /// GRU decoder: Dense/LayerNorm/leaky-ReLU layers per input and output stack.
    pub layers_per_stack: usize,
    /// GRU decoder: recurrent units (also the stacks' width).
    pub rnn_channels: usize,
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
    /// Frame-to-sample upsampling of amplitudes.
    pub amp_resample: AmpResample,
    /// Causal smoothing of control streams.
    pub control_smoothing: ControlSmoothing,
    /// One-pole coefficient `a` in `y[t] = a*y[t-1] + (1-a)*x[t]`.
    pub control_smoothing_alpha: f64,
    /// FIR smoothing length, frames.
    pub control_smoothing_fir_size: usize,
    /// Control streams to smooth.
    pub control_smoothing_targets: Vec<SmoothingTarget>,

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
    /// Epsilon in `log(|X| + eps)`.
    pub spectral_log_epsilon: f64,
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
            max_files: None,
            max_chunks_per_file: None,
            shuffle: true,
            fixed_batch: false,
            delta_features: false,
            decoder_backbone: DecoderBackbone::Mlp,
            model_hidden: 32,
            model_layers: 1,
            layers_per_stack: 3,
            rnn_channels: 512,
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
            amp_resample: AmpResample::Linear,
            control_smoothing: ControlSmoothing::Off,
            control_smoothing_alpha: 0.8,
            control_smoothing_fir_size: 5,
            control_smoothing_targets: vec![
                SmoothingTarget::HarmonicGain,
                SmoothingTarget::NoiseGain,
            ],
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

/// Command-line spellings of the original tool that are not the kebab form of a key.
const FLAG_ALIASES: &[(&str, &str)] = &[
    ("clip-mode", "gradClipMode"),
    ("loudness-weight", "loudnessLossWeight"),
    ("loudness-weight-end", "loudnessLossWeightEnd"),
    ("loudness-warmup-steps", "loudnessLossWarmupSteps"),
    ("loudness-ramp-steps", "loudnessLossRampSteps"),
];

/// `sampleRate` -> `sample-rate`.
pub fn camel_to_kebab(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('-');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `sample-rate` -> `sampleRate`.
pub fn kebab_to_camel(flag: &str) -> String {
    let mut out = String::with_capacity(flag.len());
    let mut upper = false;
    for c in flag.chars() {
        if c == '-' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// One overridable option, as the command line sees it.
#[derive(Clone, Debug)]
pub struct OptionSpec {
    /// JSON key (camelCase).
    pub key: String,
    /// Command-line flags without the leading `--` (kebab form first, then aliases).
    pub flags: Vec<String>,
    /// The built-in default as a command-line value (`null` when unset).
    pub default: String,
}

impl Config {
    /// Every option with its flags and default, in declaration order.
    pub fn option_specs() -> Vec<OptionSpec> {
        let defaults = Self::default().to_map();
        defaults
            .into_iter()
            .map(|(key, value)| {
                let mut flags = vec![camel_to_kebab(&key)];
                flags.extend(
                    FLAG_ALIASES
                        .iter()
                        .filter(|(_, k)| *k == key)
                        .map(|(f, _)| f.to_string()),
                );
                let default = match &value {
                    Value::String(s) => s.clone(),
                    Value::Array(items) => items
                        .iter()
                        .map(|v| {
                            v.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| v.to_string())
                        })
                        .collect::<Vec<_>>()
                        .join(","),
                    other => other.to_string(),
                };
                OptionSpec {
                    key,
                    flags,
                    default,
                }
            })
            .collect()
    }

    /// The JSON key a command-line flag (without `--`) sets, if any.
    pub fn key_for_flag(flag: &str) -> Option<String> {
        if let Some((_, key)) = FLAG_ALIASES.iter().find(|(f, _)| *f == flag) {
            return Some(key.to_string());
        }
        let key = kebab_to_camel(flag);
        Self::default().to_map().contains_key(&key).then_some(key)
    }

    fn to_map(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => unreachable!("Config always serialises to a JSON object"),
        }
    }

    /// Parse a JSON document (unknown keys are an error naming the key).
    pub fn from_json_str(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| Error::Config(format!("invalid config JSON: {e}")))
    }

    /// Read a JSON config file; errors name the file.
    pub fn from_json_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::Config(format!("{}: invalid config: {e}", path.display())))
    }

    /// Pretty JSON with every key, unset options as `null`.
    pub fn to_json_string(&self) -> String {
        serde_json::to_string_pretty(self).expect("Config serialises") + "\n"
    }

    /// Write the config as JSON through a temporary file and a rename.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        crate::io::write_atomic(path, self.to_json_string().as_bytes())
    }

    /// Apply command-line overrides given as `(flag or key, value text)` pairs, in order.
    ///
    /// Values are read by the type of the option: numbers, `true|false`, enum names
    /// (`softmax-db`), comma-separated lists (`64,128,256`, empty for none), and `none`/`null`
    /// to unset an optional value.
    pub fn apply_overrides<S: AsRef<str>, V: AsRef<str>>(
        &mut self,
        overrides: &[(S, V)],
    ) -> Result<()> {
        let defaults = Self::default().to_map();
        let mut map = self.to_map();
        for (name, text) in overrides {
            let name = name.as_ref().trim_start_matches("--");
            let text = text.as_ref().trim();
            let key = if defaults.contains_key(name) {
                name.to_string()
            } else {
                Self::key_for_flag(name)
                    .ok_or_else(|| Error::Config(format!("unknown option `--{name}`")))?
            };
            let value = parse_override_value(&defaults[&key], text);
            let mut trial = map.clone();
            trial.insert(key.clone(), value);
            serde_json::from_value::<Config>(Value::Object(trial.clone())).map_err(|e| {
                Error::Config(format!(
                    "option `{key}` (--{}): cannot use `{text}`: {e}",
                    camel_to_kebab(&key)
                ))
            })?;
            map = trial;
        }
        *self = serde_json::from_value(Value::Object(map))
            .map_err(|e| Error::Config(format!("invalid overrides: {e}")))?;
        Ok(())
    }

    /// Resolve a config: defaults, then the JSON file if given, then overrides; validated.
    pub fn from_sources<S: AsRef<str>, V: AsRef<str>>(
        file: Option<&Path>,
        overrides: &[(S, V)],
    ) -> Result<Self> {
        let mut config = match file {
            Some(path) => Self::from_json_file(path)?,
            None => Self::default(),
        };
        config.apply_overrides(overrides)?;
        if config.normalized_harmonic_head {
            config.harmonic_head_mode = HarmonicHeadMode::Normalized;
        }
        config.validate()?;
        Ok(config)
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

    /// The feature-affecting subset of the config: a cache made with other values is stale.
    pub fn feature_fingerprint(&self) -> Vec<(&'static str, String)> {
        vec![
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
            ("seed", self.seed.to_string()),
            ("maxFiles", format!("{:?}", self.max_files)),
            (
                "maxChunksPerFile",
                format!("{:?}", self.max_chunks_per_file),
            ),
        ]
    }

    /// Check every rule; the first broken one is reported with the option's name.
    // `!(a < b)` is deliberate: it also rejects NaN.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    pub fn validate(&self) -> Result<()> {
        let mut v = Validator::default();
        v.finite_positive("sampleRate", self.sample_rate);
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
        v.into_result()
    }
}

fn parse_override_value(default: &Value, text: &str) -> Value {
    if matches!(text, "none" | "null") {
        return Value::Null;
    }
    match default {
        Value::Bool(_) => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            other => Value::String(other.to_string()),
        },
        Value::Array(_) => Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(parse_scalar)
                .collect(),
        ),
        Value::String(_) => Value::String(text.to_string()),
        _ => parse_scalar(text),
    }
}

fn parse_scalar(text: &str) -> Value {
    serde_json::from_str::<Value>(text)
        .ok()
        .filter(|v| v.is_number() || v.is_boolean())
        .unwrap_or_else(|| Value::String(text.to_string()))
}

#[derive(Default)]
struct Validator {
    first: Option<String>,
}

impl Validator {
    fn fail(&mut self, option: &str, rule: String) {
        if self.first.is_none() {
            self.first = Some(format!("invalid `{option}`: {rule}"));
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

#[cfg(test)]
mod tests;
