//! Validation: the paper's spectral loss and re-tracked f0 on fixed validation chunks, and the
//! WAV renders of them.

use burn::tensor::Device;
use std::path::Path;

use crate::config::{Config, SpectralLossMode};
use crate::data::{Batch, Dataset};
use crate::dsp::to_vec;
use crate::error::{Error, Result};
use crate::features::audio::write_wav;
use crate::loss::{SpectralLoss, SpectralLossConfig, Spectrograms};
use crate::synth::SynthOutput;

/// Validation chunks evaluated (and the first two rendered).
pub const VAL_CHUNKS: usize = 16;

/// The paper's spectral loss (L1, 2048..64, 75% overlap, mag + logmag, eps 1e-5): the
/// validation metric, whatever the training objective.
pub fn paper_spectral_loss(device: &Device) -> SpectralLoss {
    SpectralLossConfig::new(vec![2048, 1024, 512, 256, 128, 64])
        .with_hop_divisor(4)
        .with_mode(SpectralLossMode::L1)
        .with_log_epsilon(1e-5)
        .init(device)
}

/// The validation chunks (batched, with their target spectrograms) and the metric.
pub(crate) struct Evaluator {
    metric: SpectralLoss,
    pub(crate) targets: Vec<(Batch, Spectrograms)>,
}

impl Evaluator {
    pub(crate) fn new(
        data: &Dataset,
        pool: Vec<usize>,
        batch_size: usize,
        device: &Device,
    ) -> Self {
        let metric = paper_spectral_loss(device);
        let chunks: Vec<usize> = pool.into_iter().take(VAL_CHUNKS).collect();
        let targets = chunks
            .chunks(batch_size.max(1))
            .map(|ids| {
                let refs: Vec<_> = ids.iter().map(|&i| &data.chunks[i]).collect();
                let batch = Batch::from_chunks(&refs, device);
                let spec = metric.target_spectrograms(batch.audio.clone());
                (batch, spec)
            })
            .collect();
        Self { metric, targets }
    }

    /// Mean paper spectral loss (mag + logmag) over the evaluation chunks, and the median
    /// distance in cents between the f0 re-tracked on the renders and the input f0, over
    /// frames both call voiced (NaN when there are none).
    pub(crate) fn evaluate(
        &self,
        render: &dyn Fn(&Batch) -> SynthOutput,
        config: &Config,
    ) -> (f64, f64) {
        let mut total = 0.0;
        let mut count = 0usize;
        let mut cents = Vec::new();
        let pitch = config.feature_config().pitch();
        for (batch, spec) in &self.targets {
            let out = render(batch);
            let audio = to_vec(out.audio.clone());
            let t = self.metric.forward_with_target(out.audio, spec);
            let v = to_vec(t.magnitude + t.log_magnitude)[0] as f64;
            let n = batch.ids.len();
            total += v * n as f64;
            count += n;
            let f0 = to_vec(batch.f0_hz.clone());
            let uv = to_vec(batch.voiced_prob.clone());
            let [_, frames] = batch.f0_hz.dims();
            let len = audio.len() / n;
            for i in 0..n {
                let track =
                    crate::features::pitch::track_pitch(&audio[i * len..(i + 1) * len], &pitch);
                for j in 0..frames.min(track.f0_hz.len()) {
                    let voiced_in = uv[i * frames + j] as f64 >= config.voiced_threshold;
                    let voiced_out = track.voiced_prob[j] as f64 >= config.voiced_threshold;
                    if voiced_in && voiced_out {
                        cents.push(
                            (1200.0 * (track.f0_hz[j] as f64 / f0[i * frames + j] as f64).log2())
                                .abs(),
                        );
                    }
                }
            }
        }
        cents.sort_by(f64::total_cmp);
        let median = cents.get(cents.len() / 2).copied().unwrap_or(f64::NAN);
        (total / count.max(1) as f64, median)
    }
}

/// Write target / prediction / harmonic / noise WAVs of the first `limit` items of a batch.
pub(crate) fn write_renders(
    dir: &Path,
    batch: &Batch,
    out: &SynthOutput,
    sample_rate: u32,
    limit: usize,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let [b, n] = batch.audio.dims();
    let parts = [
        ("target", to_vec(batch.audio.clone())),
        ("prediction", to_vec(out.audio.clone())),
        ("harmonic", to_vec(out.harmonic.clone())),
        ("noise", to_vec(out.noise.clone())),
    ];
    for i in 0..b.min(limit) {
        let id = batch.ids[i].replace(':', "_");
        for (name, data) in &parts {
            write_wav(
                &dir.join(format!("{id}_{name}.wav")),
                &data[i * n..(i + 1) * n],
                sample_rate,
            )?;
        }
    }
    Ok(())
}
