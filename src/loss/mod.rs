//! Losses: multi-scale spectral (magnitude + log-magnitude), waveform MSE, loudness, and the
//! harmonic-distribution regularisers, combined with their step schedules into an
//! [`Objective`] whose [`LossReport`] keeps every term, by name, for logging.

mod loudness;
mod regularizers;
mod spectral;

pub use crate::schedule::Schedule;
pub use loudness::{frame_rms, loudness_db};
pub use regularizers::{concentration_penalty, entropy_penalty};
pub use spectral::{
    SpectralLogForm, SpectralLoss, SpectralLossConfig, SpectralTerms, Spectrograms,
    magnitude_spectrogram, magnitude_spectrogram_floored,
};

use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// Norm of the spectral differences (`spectralLossMode`).
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

/// Every loss term of one evaluation, unweighted, plus the weighted total.
#[derive(Clone, Debug)]
pub struct LossReport {
    /// The weighted sum that is optimised: `[1]`.
    pub total: Tensor<1>,
    /// `(name, unweighted value [1])` for each term of the objective, in
    /// [`Objective::term_names`] order.
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

/// Configuration of an [`Objective`]: each term's definition and weight schedule. A term
/// whose schedule is zero at every step is not part of the objective.
#[derive(Clone, Debug)]
pub struct ObjectiveConfig {
    /// The multi-scale spectral loss (no FFT sizes: no spectral terms).
    pub spectral: SpectralLossConfig,
    /// Weight of the spectral magnitude term.
    pub spectral_weight: Schedule,
    /// Weight of the spectral log-magnitude term.
    pub logmag_weight: Schedule,
    /// Weight of the waveform MSE.
    pub mse_weight: Schedule,
    /// Weight of the loudness loss.
    pub loudness_weight: Schedule,
    /// Loudness loss form.
    pub loudness_mode: LoudnessLossMode,
    /// Weight of the harmonic entropy regulariser.
    pub entropy_weight: Schedule,
    /// Weight of the harmonic concentration regulariser.
    pub concentration_weight: Schedule,
    /// Audio sample rate, Hz (loudness term).
    pub sample_rate: f64,
    /// Loudness analysis window, samples.
    pub frame_size: usize,
    /// Loudness frame hop, samples.
    pub frame_hop: usize,
}

impl ObjectiveConfig {
    /// `(name, weight schedule)` of every possible term, in report order.
    fn schedules(&self) -> [(&'static str, Schedule); 6] {
        let spectral = |s: Schedule| {
            if self.spectral.fft_sizes.is_empty() {
                Schedule::constant(0.0)
            } else {
                s
            }
        };
        [
            ("spectral", spectral(self.spectral_weight)),
            ("logmag", spectral(self.logmag_weight)),
            ("mse", self.mse_weight),
            ("loudness", self.loudness_weight),
            ("entropy", self.entropy_weight),
            ("concentration", self.concentration_weight),
        ]
    }

    /// The first step at which every term's weight is 0, if there is one (such a step has no
    /// gradient). The weights are piecewise linear in the step, so it suffices to look at
    /// their breakpoints.
    pub fn first_step_without_weight(&self) -> Option<usize> {
        let schedules = self.schedules();
        let mut steps: Vec<usize> = schedules
            .iter()
            .flat_map(|(_, s)| s.breakpoints())
            .collect();
        steps.sort_unstable();
        steps
            .into_iter()
            .find(|&step| schedules.iter().all(|(_, s)| s.at(step) == 0.0))
    }

    /// Build the objective. The spectral magnitude and log-magnitude terms come as a pair
    /// (one STFT gives both): both are reported when either has a weight.
    pub fn init(&self, device: &Device) -> Objective {
        let schedules = self.schedules();
        let spectral_pair = schedules[..2].iter().any(|(_, s)| s.ever_nonzero());
        let terms = schedules
            .into_iter()
            .enumerate()
            .filter(|(i, (_, s))| {
                if *i < 2 {
                    spectral_pair
                } else {
                    s.ever_nonzero()
                }
            })
            .map(|(_, term)| term)
            .collect();
        Objective {
            spectral: self.spectral.init(device),
            terms,
            loudness_mode: self.loudness_mode,
            sample_rate: self.sample_rate,
            frame_size: self.frame_size,
            frame_hop: self.frame_hop,
        }
    }
}

/// The training objective: the terms of an [`ObjectiveConfig`] with their schedules. The
/// objective alone decides which terms exist ([`Objective::term_names`]); every evaluation
/// reports all of them, in that order, whatever their weight at the step.
#[derive(Clone, Debug)]
pub struct Objective {
    /// The multi-scale spectral loss.
    pub spectral: SpectralLoss,
    terms: Vec<(&'static str, Schedule)>,
    loudness_mode: LoudnessLossMode,
    sample_rate: f64,
    frame_size: usize,
    frame_hop: usize,
}

impl Objective {
    /// The names of the terms every [`Objective::evaluate`] reports, in order.
    pub fn term_names(&self) -> Vec<&'static str> {
        self.terms.iter().map(|(n, _)| *n).collect()
    }

    /// `(name, weight)` of every term at `step`.
    pub fn weights(&self, step: usize) -> Vec<(&'static str, f64)> {
        self.terms.iter().map(|(n, s)| (*n, s.at(step))).collect()
    }

    /// Whether the spectral loss is computed.
    pub fn uses_spectral(&self) -> bool {
        self.has("spectral") || self.has("logmag")
    }

    fn has(&self, name: &str) -> bool {
        self.terms.iter().any(|(n, _)| *n == name)
    }

    /// Evaluate every term at `step`.
    ///
    /// `target_spectrograms` may be precomputed with [`SpectralLoss::target_spectrograms`];
    /// `distribution` (`[B, F, K]`) feeds the regularisers (they count as 0 without it).
    pub fn evaluate(
        &self,
        prediction: Tensor<2>,
        target: Tensor<2>,
        target_spectrograms: Option<&Spectrograms>,
        distribution: Option<Tensor<3>>,
        step: usize,
    ) -> LossReport {
        let device = prediction.device();
        let spectral = self.uses_spectral().then(|| {
            let owned;
            let spec = match target_spectrograms {
                Some(s) => s,
                None => {
                    owned = self.spectral.target_spectrograms(target.clone());
                    &owned
                }
            };
            self.spectral.forward_with_target(prediction.clone(), spec)
        });
        let mut total = Tensor::<1>::zeros([1], &device);
        let mut terms = Vec::with_capacity(self.terms.len());
        let weights = self.weights(step);
        for &(name, weight) in &weights {
            let value = match name {
                "spectral" => spectral.as_ref().expect("computed").magnitude.clone(),
                "logmag" => spectral.as_ref().expect("computed").log_magnitude.clone(),
                "mse" => (prediction.clone() - target.clone())
                    .powf_scalar(2.0)
                    .mean()
                    .reshape([1]),
                "loudness" => self.loudness_term(prediction.clone(), target.clone()),
                "entropy" => match &distribution {
                    Some(d) => entropy_penalty(d.clone()),
                    None => Tensor::zeros([1], &device),
                },
                "concentration" => match &distribution {
                    Some(d) => concentration_penalty(d.clone()),
                    None => Tensor::zeros([1], &device),
                },
                other => unreachable!("unknown loss term {other}"),
            };
            if weight != 0.0 {
                total = total + value.clone().mul_scalar(weight);
            }
            terms.push((name, value));
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
