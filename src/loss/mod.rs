//! Losses: multi-scale spectral (magnitude + log-magnitude), waveform MSE, loudness, and the
//! harmonic-distribution regularisers, combined with their step schedules into a
//! [`LossReport`] that keeps every term for logging.

mod loudness;
mod regularizers;
mod schedule;
mod spectral;

pub use loudness::{frame_rms, loudness_db};
pub use regularizers::{concentration_penalty, entropy_penalty};
pub use schedule::Schedule;
pub use spectral::{
    SpectralLoss, SpectralLossConfig, SpectralTerms, Spectrograms, magnitude_spectrogram,
};

use burn::tensor::{Device, Tensor};

use crate::config::{Config, LoudnessLossMode};

/// Every loss term of one evaluation, unweighted, plus the weighted total.
#[derive(Clone, Debug)]
pub struct LossReport {
    /// The weighted sum that is optimised: `[1]`.
    pub total: Tensor<1>,
    /// `(name, unweighted value [1])` for each term that was computed.
    pub terms: Vec<(&'static str, Tensor<1>)>,
    /// `(name, weight)` applied to each term at this step.
    pub weights: Vec<(&'static str, f64)>,
}

impl LossReport {
    /// Read the total and every term back to the host (one sync): `("total", v)` first.
    pub fn values(&self) -> Vec<(&'static str, f32)> {
        let all: Vec<Tensor<1>> = std::iter::once(self.total.clone())
            .chain(self.terms.iter().map(|(_, t)| t.clone()))
            .collect();
        let host = crate::dsp::to_vec(Tensor::cat(all, 0));
        std::iter::once("total")
            .chain(self.terms.iter().map(|(n, _)| *n))
            .zip(host)
            .collect()
    }

    /// The unweighted value of a term, if present.
    pub fn term(&self, name: &str) -> Option<Tensor<1>> {
        self.terms
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| t.clone())
    }
}

/// Loss weights at one step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossWeights {
    /// Spectral magnitude term.
    pub spectral: f64,
    /// Spectral log-magnitude term.
    pub logmag: f64,
    /// Waveform MSE.
    pub mse: f64,
    /// Loudness loss.
    pub loudness: f64,
    /// Harmonic entropy regulariser.
    pub entropy: f64,
    /// Harmonic concentration regulariser.
    pub concentration: f64,
}

/// The training objective configured by a [`Config`]: term definitions and schedules.
#[derive(Clone, Debug)]
pub struct Objective {
    /// The multi-scale spectral loss.
    pub spectral: SpectralLoss,
    spectral_ramp: Schedule,
    spectral_weight: f64,
    logmag_weight: f64,
    mse_weight: f64,
    loudness: Schedule,
    loudness_mode: LoudnessLossMode,
    entropy: Schedule,
    concentration: Schedule,
    sample_rate: f64,
    frame_size: usize,
    frame_hop: usize,
}

fn schedule(start: f64, end: Option<f64>, warmup: usize, ramp: usize) -> Schedule {
    Schedule {
        start,
        end: end.unwrap_or(start),
        warmup,
        ramp,
    }
}

impl Objective {
    /// Build from the config's loss options.
    pub fn new(config: &Config, device: &Device) -> Self {
        let spectral = SpectralLossConfig::new(config.spectral_windows.clone())
            .with_hop_divisor(config.spectral_hop_divisor)
            .with_mode(config.spectral_loss_mode)
            .with_log_epsilon(config.spectral_log_epsilon)
            .init(device);
        Self {
            spectral,
            spectral_ramp: Schedule {
                start: 0.0,
                end: 1.0,
                warmup: config.spectral_warmup_steps,
                ramp: config.spectral_ramp_steps,
            },
            spectral_weight: config.spectral_weight,
            logmag_weight: config.spectral_logmag_weight,
            mse_weight: config.mse_weight,
            loudness: schedule(
                config.loudness_loss_weight,
                config.loudness_loss_weight_end,
                config.loudness_loss_warmup_steps,
                config.loudness_loss_ramp_steps,
            ),
            loudness_mode: config.loudness_loss_mode,
            entropy: schedule(
                config.harmonic_entropy_weight,
                config.harmonic_entropy_weight_end,
                config.harmonic_entropy_warmup_steps,
                config.harmonic_entropy_ramp_steps,
            ),
            concentration: schedule(
                config.harmonic_concentration_weight,
                config.harmonic_concentration_weight_end,
                config.harmonic_concentration_warmup_steps,
                config.harmonic_concentration_ramp_steps,
            ),
            sample_rate: config.sample_rate,
            frame_size: config.frame_size,
            frame_hop: config.frame_hop,
        }
    }

    /// The weights in force at `step`.
    pub fn weights(&self, step: usize) -> LossWeights {
        let ramp = self.spectral_ramp.at(step);
        LossWeights {
            spectral: self.spectral_weight * ramp,
            logmag: self.logmag_weight * ramp,
            mse: self.mse_weight,
            loudness: self.loudness.at(step),
            entropy: self.entropy.at(step),
            concentration: self.concentration.at(step),
        }
    }

    /// Whether the spectral loss is used at all (its terms are skipped when both weights are 0).
    pub fn uses_spectral(&self) -> bool {
        !self.spectral.fft_sizes().is_empty()
            && (self.spectral_weight > 0.0 || self.logmag_weight > 0.0)
    }

    /// Evaluate every configured term at `step`.
    ///
    /// `target_spectrograms` may be precomputed with [`SpectralLoss::target_spectrograms`];
    /// `distribution` (`[B, F, K]`) feeds the regularisers when given.
    pub fn evaluate(
        &self,
        prediction: Tensor<2>,
        target: Tensor<2>,
        target_spectrograms: Option<&Spectrograms>,
        distribution: Option<Tensor<3>>,
        step: usize,
    ) -> LossReport {
        let device = prediction.device();
        let w = self.weights(step);
        let mut terms = Vec::new();
        let mut weights = Vec::new();
        let mut total = Tensor::<1>::zeros([1], &device);
        let mut add = |name: &'static str, value: Tensor<1>, weight: f64, total: &mut Tensor<1>| {
            if weight != 0.0 {
                *total = total.clone() + value.clone().mul_scalar(weight);
            }
            terms.push((name, value));
            weights.push((name, weight));
        };
        if self.uses_spectral() {
            let owned;
            let spec = match target_spectrograms {
                Some(s) => s,
                None => {
                    owned = self.spectral.target_spectrograms(target.clone());
                    &owned
                }
            };
            let t = self.spectral.forward_with_target(prediction.clone(), spec);
            add("spectral", t.magnitude, w.spectral, &mut total);
            add("logmag", t.log_magnitude, w.logmag, &mut total);
        }
        if self.mse_weight > 0.0 {
            let mse = (prediction.clone() - target.clone())
                .powf_scalar(2.0)
                .mean()
                .reshape([1]);
            add("mse", mse, w.mse, &mut total);
        }
        if w.loudness > 0.0 || self.loudness.end > 0.0 {
            let value = self.loudness_term(prediction, target);
            add("loudness", value, w.loudness, &mut total);
        }
        if let Some(d) = distribution {
            if self.entropy.start > 0.0 || self.entropy.end > 0.0 {
                add("entropy", entropy_penalty(d.clone()), w.entropy, &mut total);
            }
            if self.concentration.start > 0.0 || self.concentration.end > 0.0 {
                add(
                    "concentration",
                    concentration_penalty(d),
                    w.concentration,
                    &mut total,
                );
            }
        }
        LossReport {
            total,
            terms,
            weights,
        }
    }

    /// The loudness loss: mean squared difference of frame RMS (`linear-l2`) or mean absolute
    /// difference of A-weighted loudness in dB (`db-l1`).
    pub fn loudness_term(&self, prediction: Tensor<2>, target: Tensor<2>) -> Tensor<1> {
        match self.loudness_mode {
            LoudnessLossMode::LinearL2 => {
                let p = frame_rms(prediction, self.frame_size, self.frame_hop);
                let t = frame_rms(target.detach(), self.frame_size, self.frame_hop);
                (p - t).powf_scalar(2.0).mean().reshape([1])
            }
            LoudnessLossMode::DbL1 => {
                let p = loudness_db(
                    prediction,
                    self.sample_rate,
                    self.frame_size,
                    self.frame_hop,
                );
                let t = loudness_db(
                    target.detach(),
                    self.sample_rate,
                    self.frame_size,
                    self.frame_hop,
                );
                (p - t).abs().mean().reshape([1])
            }
        }
    }
}

#[cfg(test)]
mod tests;
