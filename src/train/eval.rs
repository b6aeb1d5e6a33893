//! Validation: magenta's resynthesis metrics ([`crate::metrics`]) on fixed validation chunks,
//! and the WAV renders of them.

use burn::tensor::Device;
use std::path::Path;

use crate::config::Config;
use crate::data::{Batch, Dataset};
use crate::dsp::to_vec;
use crate::error::Result;
use crate::features::FrameFeatures;
use crate::features::audio::write_wav;
use crate::loss::Spectrograms;
use crate::metrics::{Scorer, Summary};
use crate::synth::SynthOutput;

/// Validation chunks evaluated (and the first two rendered).
pub const VAL_CHUNKS: usize = 16;

/// One validation batch: the chunks, their target spectrograms and their f0/voicing tracks.
pub(crate) struct Target {
    pub(crate) batch: Batch,
    spectrograms: Spectrograms,
    features: Vec<FrameFeatures>,
}

/// The validation chunks and the scorer.
pub(crate) struct Evaluator {
    scorer: Scorer,
    pub(crate) targets: Vec<Target>,
}

impl Evaluator {
    pub(crate) fn new(data: &Dataset, pool: Vec<usize>, config: &Config, device: &Device) -> Self {
        let scorer = Scorer::new(&config.feature_config(), device);
        let chunks: Vec<usize> = pool.into_iter().take(VAL_CHUNKS).collect();
        let targets = chunks
            .chunks(config.batch_size.max(1))
            .map(|ids| {
                let refs: Vec<_> = ids.iter().map(|&i| &data.chunks[i]).collect();
                let batch = Batch::from_chunks(&refs, device);
                let spectrograms = scorer.target_spectrograms(batch.audio.clone());
                let features = refs.iter().map(|c| c.features()).collect();
                Target {
                    batch,
                    spectrograms,
                    features,
                }
            })
            .collect();
        Self { scorer, targets }
    }

    /// The metrics of `render` over the evaluation chunks.
    pub(crate) fn evaluate(&self, render: &dyn Fn(&Batch) -> SynthOutput) -> Summary {
        let scores: Vec<_> = self
            .targets
            .iter()
            .flat_map(|t| {
                let out = render(&t.batch);
                self.scorer
                    .score_batch(&t.batch.audio, &t.spectrograms, &t.features, out.audio)
            })
            .collect();
        Summary::of(&scores)
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
    crate::io::create_dir_all(dir)?;
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
