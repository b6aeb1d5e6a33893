//! Batches of chunks as tensors, and the order they are drawn in.

use burn::tensor::{Device, Tensor};
use rand::SeedableRng;
use rand::seq::SliceRandom;

use super::Chunk;
use crate::dsp::from_vec;

/// A batch on a device.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Target audio `[B, chunkSize]`.
    pub audio: Tensor<2>,
    /// f0 `[B, F]`, Hz.
    pub f0_hz: Tensor<2>,
    /// Loudness `[B, F]`, dB.
    pub loudness_db: Tensor<2>,
    /// Voicing probability `[B, F]`.
    pub voiced_prob: Tensor<2>,
    /// MFCCs `[B, F, mfcc_bins]`, when the cache has them (the z-encoder's input).
    pub mfcc: Option<Tensor<3>>,
    /// The chunk ids, in batch order.
    pub ids: Vec<String>,
    /// A fingerprint of each item's audio, in batch order: items with equal keys have equal
    /// audio (and so equal target spectrograms).
    pub keys: Vec<u64>,
}

/// A 64-bit fingerprint of each `n`-sample item of `audio`.
fn audio_keys(audio: &[f32], n: usize) -> Vec<u64> {
    use std::hash::{Hash, Hasher};
    audio
        .chunks(n.max(1))
        .map(|item| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            item.len().hash(&mut h);
            for x in item {
                x.to_bits().hash(&mut h);
            }
            h.finish()
        })
        .collect()
}

impl Batch {
    /// A batch of `batch` items from host arrays, each item's values contiguous: `audio` of
    /// `batch * samples`, `f0_hz`, `loudness_db` and `voiced_prob` of `batch * frames` values.
    /// Items get the ids `"0"`, `"1"`, ...
    pub fn from_host(
        audio: Vec<f32>,
        f0_hz: Vec<f32>,
        loudness_db: Vec<f32>,
        voiced_prob: Vec<f32>,
        batch: usize,
        device: &Device,
    ) -> Self {
        let b = batch.max(1);
        let (n, f) = (audio.len() / b, f0_hz.len() / b);
        Self {
            keys: audio_keys(&audio, n),
            audio: from_vec(audio, [b, n], device),
            f0_hz: from_vec(f0_hz, [b, f], device),
            loudness_db: from_vec(loudness_db, [b, f], device),
            voiced_prob: from_vec(voiced_prob, [b, f], device),
            mfcc: None,
            ids: (0..b).map(|i| i.to_string()).collect(),
        }
    }

    /// Stack chunks into tensors on `device`.
    pub fn from_chunks(chunks: &[&Chunk], device: &Device) -> Self {
        let b = chunks.len();
        let n = chunks[0].audio.len();
        let f = chunks[0].f0_hz.len();
        let cat = |get: fn(&Chunk) -> &Vec<f32>| -> Vec<f32> {
            chunks.iter().flat_map(|c| get(c).iter().copied()).collect()
        };
        let audio = cat(|c| &c.audio);
        Self {
            keys: audio_keys(&audio, n),
            audio: from_vec(audio, [b, n], device),
            f0_hz: from_vec(cat(|c| &c.f0_hz), [b, f], device),
            loudness_db: from_vec(cat(|c| &c.loudness_db), [b, f], device),
            voiced_prob: from_vec(cat(|c| &c.voiced_prob), [b, f], device),
            mfcc: (!chunks[0].mfcc.is_empty()).then(|| {
                let m = chunks[0].mfcc.len() / f.max(1);
                from_vec(cat(|c| &c.mfcc), [b, f, m], device)
            }),
            ids: chunks.iter().map(|c| c.entry.id.clone()).collect(),
        }
    }
}

/// Draws batches of chunk indices: epochs of a (seeded) shuffle, or the same batch every time.
#[derive(Clone, Debug)]
pub struct BatchSampler {
    pool: Vec<usize>,
    order: Vec<usize>,
    cursor: usize,
    batch_size: usize,
    shuffle: bool,
    fixed: bool,
    rng: rand::rngs::StdRng,
    epoch: usize,
}

impl BatchSampler {
    /// A sampler over `pool` (chunk indices). `fixed` repeats the first batch forever.
    pub fn new(pool: Vec<usize>, batch_size: usize, shuffle: bool, fixed: bool, seed: u64) -> Self {
        let mut s = Self {
            order: pool.clone(),
            pool,
            cursor: 0,
            batch_size: batch_size.max(1),
            shuffle,
            fixed,
            rng: rand::rngs::StdRng::seed_from_u64(seed),
            epoch: 0,
        };
        s.reshuffle();
        s
    }

    fn reshuffle(&mut self) {
        self.order = self.pool.clone();
        if self.shuffle {
            self.order.shuffle(&mut self.rng);
        }
        self.cursor = 0;
    }

    /// Completed passes over the pool.
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// The next batch; wraps around the pool (a pool smaller than a batch repeats chunks).
    pub fn next_batch(&mut self) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.batch_size);
        if self.fixed {
            for i in 0..self.batch_size {
                out.push(self.order[i % self.order.len()]);
            }
            return out;
        }
        while out.len() < self.batch_size {
            if self.cursor == self.order.len() {
                self.epoch += 1;
                self.reshuffle();
            }
            out.push(self.order[self.cursor]);
            self.cursor += 1;
        }
        out
    }

    /// Advance as if `n` batches had been drawn (to resume a run where it stopped).
    pub fn skip(&mut self, n: usize) {
        for _ in 0..n {
            self.next_batch();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_cover_the_pool_and_fixed_repeats() {
        let mut s = BatchSampler::new((0..10).collect(), 5, true, false, 1);
        let mut seen: Vec<usize> = s.next_batch();
        seen.extend(s.next_batch());
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        let mut f = BatchSampler::new((0..10).collect(), 3, true, true, 1);
        let first = f.next_batch();
        assert_eq!(first, f.next_batch());
        let mut a = BatchSampler::new((0..10).collect(), 3, true, false, 9);
        let mut b = BatchSampler::new((0..10).collect(), 3, true, false, 9);
        a.skip(4);
        for _ in 0..4 {
            b.next_batch();
        }
        assert_eq!(a.next_batch(), b.next_batch());
    }
}
