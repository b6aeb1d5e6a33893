//! Where chunks start, and which split each goes to, without leakage.

use rand::{Rng, SeedableRng};

use super::Split;
use crate::config::Config;

/// Chunk start offsets and splits for a source of `n` samples.
///
/// Chunks start every `chunkHop` samples and lie wholly inside the source (a source shorter
/// than one chunk gives one zero-padded chunk). A source of at least two chunks is split in
/// time: one contiguous validation region of `max(round((1 - trainSplit) n), chunkSize)`
/// samples, starting at a chunk boundary drawn from `splitSeed` and the source's key; chunks wholly
/// inside it are `val`, chunks wholly outside are `train`, and chunks that straddle its edges
/// are dropped, so no sample is in both splits. A shorter source goes wholly to one split,
/// `val` with probability `1 - trainSplit`. With `trainSplit = 1` everything is `train`.
pub fn plan_chunks(n: usize, config: &Config, source_key: u64) -> Vec<(usize, Split)> {
    let size = config.chunk_size;
    let hop = config.chunk_hop;
    let mut rng = rand::rngs::StdRng::seed_from_u64(config.split_seed ^ source_key);
    let offsets: Vec<usize> = if n <= size {
        vec![0]
    } else {
        (0..=(n - size) / hop).map(|i| i * hop).collect()
    };
    let val_fraction = 1.0 - config.train_split;
    if val_fraction <= 0.0 {
        return offsets.into_iter().map(|o| (o, Split::Train)).collect();
    }
    if n < 2 * size {
        let split = if rng.random::<f64>() < val_fraction {
            Split::Val
        } else {
            Split::Train
        };
        return offsets.into_iter().map(|o| (o, split)).collect();
    }
    let val_len = ((val_fraction * n as f64).round() as usize).clamp(size, n);
    let slots = (n - val_len) / hop;
    let start = rng.random_range(0..=slots) * hop;
    let end = start + val_len;
    offsets
        .into_iter()
        .filter_map(|o| {
            if o >= start && o + size <= end {
                Some((o, Split::Val))
            } else if o + size <= start || o >= end {
                Some((o, Split::Train))
            } else {
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_sample_is_in_both_splits() {
        let mut config = Config::default();
        for (split, seed) in [(0.9, 1u64), (0.7, 2), (0.5, 3), (0.95, 4)] {
            config.train_split = split;
            config.split_seed = seed;
            for key in 0..20u64 {
                let n = 200_000 + key as usize * 7919;
                let plan = plan_chunks(n, &config, key);
                let mut owner = vec![None; n];
                for (o, s) in &plan {
                    assert!(o + config.chunk_size <= n);
                    for slot in &mut owner[*o..o + config.chunk_size] {
                        assert!(slot.is_none() || *slot == Some(*s), "sample in both splits");
                        *slot = Some(*s);
                    }
                }
                assert!(plan.iter().any(|(_, s)| *s == Split::Val), "val present");
                assert!(
                    plan.iter().any(|(_, s)| *s == Split::Train),
                    "train present"
                );
            }
        }
    }

    #[test]
    fn deterministic_and_seed_dependent() {
        let config = Config::default();
        let a = plan_chunks(300_000, &config, 7);
        assert_eq!(a, plan_chunks(300_000, &config, 7));
        let mut other = config.clone();
        other.split_seed = 99;
        let differs =
            (0..10).any(|k| plan_chunks(300_000, &config, k) != plan_chunks(300_000, &other, k));
        assert!(differs);
    }

    #[test]
    fn short_sources_and_full_train_split() {
        let mut config = Config::default();
        assert_eq!(plan_chunks(1000, &config, 0).len(), 1);
        config.train_split = 1.0;
        assert!(
            plan_chunks(500_000, &config, 0)
                .iter()
                .all(|(_, s)| *s == Split::Train)
        );
    }
}
