//! The flat [`Config`] translated into the module configs, side by side: features, synth,
//! decoder, objective and the softmax temperature. Nothing else reads the flat config's model
//! options.

use super::{Config, ControlResidual, DecoderBackbone, EncoderKind, HarmonicHeadMode, ReverbMode};
use crate::decoder::{
    BackboneConfig, DecoderConfig, MicroRnnConfig, MlpConfig, RnnFcConfig, TransformerConfig,
    ZEncoderConfig, input_features,
};
use crate::features::FeatureConfig;
use crate::loss::{ObjectiveConfig, SpectralLossConfig};
use crate::schedule::Schedule;
use crate::synth::{
    FilteredNoiseConfig, HarmonicConfig, NoiseScaling, ReverbConfig, SmoothingConfig, SynthConfig,
};

impl Config {
    /// The feature extractor's settings (also what validation re-tracks renders with).
    pub fn feature_config(&self) -> FeatureConfig {
        FeatureConfig {
            sample_rate: self.sample_rate,
            frame_size: self.frame_size,
            frame_hop: self.frame_hop,
            min_f0: self.min_f0,
            max_f0: self.max_f0,
            voiced_threshold: self.voiced_threshold,
            mfcc_bins: if self.encoder == EncoderKind::Mfcc {
                self.mfcc_bins
            } else {
                0
            },
        }
    }

    /// The synthesizer: harmonic scaling per `harmonicHeadMode`; the paper's `noiseBands`
    /// exp-sigmoid noise with the `exp-sigmoid` mode, else the original tool's sigmoid gain,
    /// filtered by `noiseFilterSize` bands when `noiseFilter` is on; the reverb; smoothing.
    pub fn synth_config(&self) -> SynthConfig {
        let harmonic = HarmonicConfig::new(self.sample_rate, self.frame_hop)
            .with_amp_resample(self.amp_resample)
            .with_scaling(self.harmonic_head_mode)
            .with_softmax_amp_floor(self.softmax_amp_floor)
            .with_softmax_gain_min_db(self.softmax_gain_min_db)
            .with_softmax_gain_max_db(self.softmax_gain_max_db);
        let noise = match self.harmonic_head_mode {
            HarmonicHeadMode::ExpSigmoid => FilteredNoiseConfig::new(self.frame_hop)
                .with_bands(self.noise_bands)
                .with_scaling(NoiseScaling::ExpSigmoid),
            _ => FilteredNoiseConfig::new(self.frame_hop)
                .with_bands(if self.noise_filter {
                    self.noise_filter_size
                } else {
                    0
                })
                .with_scaling(NoiseScaling::SigmoidGain),
        };
        let reverb = (self.reverb != ReverbMode::Off).then(|| {
            ReverbConfig::new(self.reverb_length)
                .with_mode(self.reverb)
                .with_seed(self.seed)
        });
        let smoothing = SmoothingConfig::new()
            .with_mode(self.control_smoothing)
            .with_alpha(self.control_smoothing_alpha)
            .with_fir_size(self.control_smoothing_fir_size)
            .with_cutoff(
                self.control_smoothing_cutoff_hz * self.frame_hop as f64 / self.sample_rate,
            )
            .with_q(self.control_smoothing_q)
            .with_targets(self.control_smoothing_targets.clone());
        SynthConfig::new(harmonic)
            .with_noise(Some(noise))
            .with_reverb(reverb)
            .with_smoothing(smoothing)
            .with_residual(
                (self.control_residual == ControlResidual::Ar)
                    .then_some(self.control_residual_alpha),
            )
    }

    /// The decoder: the chosen backbone over the (3 or 5) input features and, with the
    /// z-encoder, its `zDims` latent values, heads sized for [`Config::synth_config`]. The GRU
    /// decoder's stacks use `rnnChannels` as their width (the paper's `ch = rnn_channels =
    /// 512`); it gives the latent one stack of its own, as magenta's `RnnFcDecoder` does.
    pub fn decoder_config(&self) -> DecoderConfig {
        let encoder = (self.encoder == EncoderKind::Mfcc)
            .then(|| ZEncoderConfig::new(self.mfcc_bins, self.encoder_units, self.z_dims));
        let z = encoder.as_ref().map_or(0, |e| e.z_dims);
        let features = input_features(self.delta_features);
        let d_in = features + z;
        let backbone = match self.decoder_backbone {
            DecoderBackbone::Mlp => BackboneConfig::Mlp(
                MlpConfig::new(d_in, self.model_hidden).with_layers(self.model_layers),
            ),
            DecoderBackbone::MicroRnn => BackboneConfig::MicroRnn(
                MicroRnnConfig::new(
                    MlpConfig::new(d_in, self.model_hidden).with_layers(self.model_layers),
                )
                .with_units(self.micro_rnn_units),
            ),
            DecoderBackbone::Gru => BackboneConfig::Gru(
                RnnFcConfig::new(
                    features,
                    self.rnn_channels,
                    self.rnn_channels,
                    self.layers_per_stack,
                )
                .with_z_dims(z),
            ),
            DecoderBackbone::Transformer => BackboneConfig::Transformer(
                TransformerConfig::new(
                    d_in,
                    self.transformer_d_model,
                    self.transformer_layers,
                    self.transformer_heads,
                    self.transformer_ff_multiplier,
                    self.transformer_causal,
                    self.transformer_positional_encoding,
                )
                .with_context(self.frames_per_chunk()),
            ),
        };
        DecoderConfig::with_heads(
            backbone,
            self.delta_features,
            self.harmonics,
            self.synth_config().raw_noise_channels(),
        )
        .with_encoder(encoder)
    }

    /// The training objective: each term's definition and weight schedule. The spectral
    /// weights ramp in from 0 after `spectralWarmupSteps` over `spectralRampSteps`.
    pub fn objective_config(&self) -> ObjectiveConfig {
        let spectral_ramp = |weight: f64| Schedule {
            start: 0.0,
            end: weight,
            warmup: self.spectral_warmup_steps,
            ramp: self.spectral_ramp_steps,
        };
        ObjectiveConfig {
            spectral: SpectralLossConfig::new(self.spectral_windows.clone())
                .with_hop_divisor(self.spectral_hop_divisor)
                .with_mode(self.spectral_loss_mode)
                .with_log_epsilon(self.spectral_log_epsilon)
                .with_log_form(self.spectral_log_form),
            spectral_weight: spectral_ramp(self.spectral_weight),
            logmag_weight: spectral_ramp(self.spectral_logmag_weight),
            mse_weight: Schedule::constant(self.mse_weight),
            loudness_weight: Schedule::new(
                self.loudness_loss_weight,
                self.loudness_loss_weight_end,
                self.loudness_loss_warmup_steps,
                self.loudness_loss_ramp_steps,
            ),
            loudness_mode: self.loudness_loss_mode,
            entropy_weight: Schedule::new(
                self.harmonic_entropy_weight,
                self.harmonic_entropy_weight_end,
                self.harmonic_entropy_warmup_steps,
                self.harmonic_entropy_ramp_steps,
            ),
            concentration_weight: Schedule::new(
                self.harmonic_concentration_weight,
                self.harmonic_concentration_weight_end,
                self.harmonic_concentration_warmup_steps,
                self.harmonic_concentration_ramp_steps,
            ),
            sample_rate: self.sample_rate,
            frame_size: self.frame_size,
            frame_hop: self.frame_hop,
        }
    }

    /// The softmax temperature over the steps (softmax-db scaling).
    pub fn temperature(&self) -> Schedule {
        Schedule::new(
            self.softmax_temp,
            self.softmax_temp_end,
            self.softmax_temp_warmup_steps,
            self.softmax_temp_ramp_steps,
        )
    }
}
