//! The host's sample rate to the model's and back, block by block and allocation-free:
//! `rubato`'s FFT resampler in fixed chunks behind FIFOs, with a fixed latency.
//!
//! A host block of any size goes into a FIFO; each complete chunk of `host_chunk` samples
//! becomes `model_chunk` samples at the model's rate. Rendered model-rate audio goes the same
//! way back. The output FIFO starts with `prefill` samples of silence, the fewest that let
//! every block be served in full whatever the block sizes (computed exactly from the chunk
//! sizes, the frame hop and the renderer's lag), so the latency never changes.

use std::collections::VecDeque;

use rubato::{FftFixedInOut, Resampler};

use crate::error::{Error, Result};

/// Longest resampler chunk accepted, host samples (a pair of rates whose greatest common
/// divisor is small needs long chunks, and the chunk is latency).
const MAX_HOST_CHUNK: usize = 4096;

/// Shortest model-side chunk: the FFT resampler's filter is one host chunk long, and 64
/// model samples (192 taps at 48 kHz for a 16 kHz model) keep its transition band narrow.
const MIN_MODEL_CHUNK: usize = 64;

/// The two resamplers (none when the rates are equal) and their FIFOs.
pub(crate) struct RateBridge {
    down: Option<FftFixedInOut<f32>>,
    up: Option<FftFixedInOut<f32>>,
    host_chunk: usize,
    model_chunk: usize,
    /// Host input not yet a full chunk.
    host_in: Vec<f32>,
    /// Model-rate input made by the current call.
    model_in: Vec<f32>,
    /// Rendered model-rate audio not yet a full chunk.
    model_out: Vec<f32>,
    /// One chunk of resampled output.
    chunk: Vec<f32>,
    host_out: VecDeque<f32>,
    prefill: usize,
}

/// The counts a [`RateBridge`] needs to size its FIFOs and its prefill.
pub(crate) struct Plan {
    /// Host and model sample rates, Hz.
    pub rates: (u32, u32),
    /// Largest host block.
    pub max_block: usize,
    /// The renderer's frame hop and lag (model samples): after `n` model samples in, it has
    /// `ceil(n / hop) * hop - lag` out (at least 0).
    pub hop: usize,
    pub lag: usize,
}

impl RateBridge {
    /// A bridge for `plan`; fails for rate pairs that need chunks longer than
    /// [`MAX_HOST_CHUNK`].
    pub(crate) fn new(plan: &Plan) -> Result<Self> {
        let (host, model) = plan.rates;
        let (host_chunk, model_chunk) = chunks(host, model, plan.hop)?;
        let resampler = |from: u32, to: u32, chunk: usize| {
            FftFixedInOut::<f32>::new(from as usize, to as usize, chunk, 1)
                .map_err(|e| Error::Resample(format!("cannot resample {from} Hz -> {to} Hz: {e}")))
        };
        let (down, up) = if host == model {
            (None, None)
        } else {
            let down = resampler(host, model, host_chunk)?;
            let up = resampler(model, host, model_chunk)?;
            debug_assert_eq!(
                (down.input_frames_next(), down.output_frames_next()),
                (host_chunk, model_chunk)
            );
            (Some(down), Some(up))
        };
        let prefill = prefill(plan, host_chunk, model_chunk);
        let model_per_call = per_call(plan.max_block, host_chunk, model_chunk);
        let mut bridge = Self {
            down,
            up,
            host_chunk,
            model_chunk,
            host_in: Vec::with_capacity(host_chunk + plan.max_block),
            model_in: Vec::with_capacity(model_per_call),
            model_out: Vec::with_capacity(model_chunk + model_per_call + plan.lag + plan.hop),
            chunk: vec![0.0; host_chunk.max(model_chunk)],
            host_out: VecDeque::with_capacity(prefill + plan.max_block + host_chunk),
            prefill,
        };
        bridge.reset();
        Ok(bridge)
    }

    /// Model-rate samples one [`Self::input`] makes at most, for host blocks of at most
    /// `max_block` samples at `rates` (host, model) and a renderer's `hop`: known before the
    /// renderer (whose lag the bridge needs) is built.
    pub(crate) fn max_model_per_call(
        rates: (u32, u32),
        hop: usize,
        max_block: usize,
    ) -> Result<usize> {
        let (host_chunk, model_chunk) = chunks(rates.0, rates.1, hop)?;
        Ok(per_call(max_block, host_chunk, model_chunk))
    }

    /// Host samples from a host input sample to the output sample it shows in, when the
    /// renderer between adds nothing but its lag: the prefill plus the two resamplers' filter
    /// delays (rubato centres its filter at `floor(N / 2)` input samples): `floor(host_chunk /
    /// 2)` host samples down and `model_chunk / 2` model samples (`host_chunk / 2` host
    /// samples) up. A half sample when the host chunk is odd (44.1 kHz). Without
    /// `input_resampled` (a renderer clocked by [`Self::input_count`], whose input never goes
    /// through the down-resampler), its filter delay is left out.
    pub(crate) fn latency_exact(&self, input_resampled: bool) -> f64 {
        if self.down.is_none() {
            return self.prefill as f64;
        }
        let down = if input_resampled {
            (self.host_chunk / 2) as f64
        } else {
            0.0
        };
        self.prefill as f64 + down + self.host_chunk as f64 / 2.0
    }

    /// Silence in every FIFO and resampler, the output FIFO primed with the prefill.
    pub(crate) fn reset(&mut self) {
        self.host_in.clear();
        self.model_in.clear();
        self.model_out.clear();
        self.host_out.clear();
        self.host_out.extend(std::iter::repeat_n(0.0, self.prefill));
        for r in [&mut self.down, &mut self.up].into_iter().flatten() {
            r.reset();
        }
    }

    /// Take in a host block; returns the model-rate samples it completes (possibly none).
    pub(crate) fn input(&mut self, host: &[f32]) -> &mut [f32] {
        self.model_in.clear();
        let Some(down) = &mut self.down else {
            self.model_in.extend_from_slice(host);
            return &mut self.model_in;
        };
        let model_in = &mut self.model_in;
        let out = &mut self.chunk[..self.model_chunk];
        push_chunks(down, &mut self.host_in, self.host_chunk, out, host, |c| {
            model_in.extend_from_slice(c)
        });
        &mut self.model_in
    }

    /// Model-rate samples a host block of `n` completes, without resampling anything (the
    /// clock of a renderer that needs no input audio).
    pub(crate) fn input_count(&mut self, n: usize) -> usize {
        if self.down.is_none() {
            return n;
        }
        let pending = self.host_in.len() + n;
        let chunks = pending / self.host_chunk;
        self.host_in.resize(pending % self.host_chunk, 0.0);
        chunks * self.model_chunk
    }

    /// Take in rendered model-rate audio.
    pub(crate) fn output(&mut self, model: &[f32]) {
        let Some(up) = &mut self.up else {
            self.host_out.extend(model.iter().copied());
            return;
        };
        let host_out = &mut self.host_out;
        let out = &mut self.chunk[..self.host_chunk];
        push_chunks(up, &mut self.model_out, self.model_chunk, out, model, |c| {
            host_out.extend(c.iter().copied())
        });
    }

    /// Fill a host output block from the output FIFO (the prefill guarantees the samples;
    /// were one missing, it would read as silence).
    pub(crate) fn take(&mut self, out: &mut [f32]) {
        let n = out.len().min(self.host_out.len());
        debug_assert_eq!(n, out.len(), "the prefill covers every block");
        for (o, v) in out.iter_mut().zip(self.host_out.drain(..n)) {
            *o = v;
        }
        out[n..].fill(0.0);
    }
}

/// Feed `samples` to `resampler` in chunks of `chunk` samples, `pending` holding what does not
/// fill one yet (across calls); `emit` gets each resampled chunk (written in `out`, its size).
fn push_chunks(
    resampler: &mut FftFixedInOut<f32>,
    pending: &mut Vec<f32>,
    chunk: usize,
    out: &mut [f32],
    samples: &[f32],
    mut emit: impl FnMut(&[f32]),
) {
    let mut rest = samples;
    while !rest.is_empty() {
        let take = (chunk - pending.len()).min(rest.len());
        pending.extend_from_slice(&rest[..take]);
        rest = &rest[take..];
        if pending.len() == chunk {
            resampler
                .process_into_buffer(&[&*pending], &mut [&mut *out], None)
                .expect("chunk sizes fixed at construction");
            emit(out);
            pending.clear();
        }
    }
}

/// Resampler chunk sizes `(host, model)`: the smallest pair with the rates' ratio whose model
/// side is at least a hop and [`MIN_MODEL_CHUNK`] (shorter chunks filter worse, and below a
/// hop save no latency), and even (so the down-resampler's delay is a whole model sample);
/// shorter than a hop where a hop's chunk would exceed [`MAX_HOST_CHUNK`].
fn chunks(host: u32, model: u32, hop: usize) -> Result<(usize, usize)> {
    if host == 0 || model == 0 {
        return Err(Error::Config("sample rates must be positive".into()));
    }
    if host == model {
        return Ok((1, 1));
    }
    let g = gcd(host as usize, model as usize);
    let (h, m) = (host as usize / g, model as usize / g);
    let want = hop.max(MIN_MODEL_CHUNK).div_ceil(m);
    let least = MIN_MODEL_CHUNK.div_ceil(m);
    let fits = |k: usize| (m * k).is_multiple_of(2) && h * k <= MAX_HOST_CHUNK;
    let k = (want..=want + 1)
        .find(|&k| fits(k))
        .or_else(|| (least..want).rev().find(|&k| fits(k)))
        .ok_or_else(|| {
            Error::Config(format!(
                "a host rate of {host} Hz with a model rate of {model} Hz needs resampling \
                 chunks of at least {} samples (their ratio reduces only to {h}:{m}); use a \
                 standard rate such as 44100 or 48000 Hz",
                h * least
            ))
        })?;
    Ok((h * k, m * k))
}

/// Model-rate samples the chunks completed by one host block of at most `max_block` make.
fn per_call(max_block: usize, host_chunk: usize, model_chunk: usize) -> usize {
    (max_block / host_chunk + 1) * model_chunk
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The fewest samples of silence the output FIFO must start with so that after any number of
/// host samples `t` in, at least `t` are out: the largest shortfall of the chain's count over
/// one period of its chunk, hop and lag pattern (after the start-up transient).
fn prefill(plan: &Plan, host_chunk: usize, model_chunk: usize) -> usize {
    let hop = plan.hop.max(1);
    let model_in = |t: usize| t / host_chunk * model_chunk;
    let rendered = |n: usize| (n.div_ceil(hop) * hop).saturating_sub(plan.lag);
    let host_out = |r: usize| r / model_chunk * host_chunk;
    // The pattern repeats every lcm(model_chunk, hop) model samples; the start-up transient
    // lasts until the lag is covered.
    let period_model = model_chunk / gcd(model_chunk, hop) * hop;
    let period_host = period_model / model_chunk * host_chunk;
    let transient = (plan.lag + 2 * model_chunk + hop) * host_chunk / model_chunk + host_chunk;
    (0..=transient + 2 * period_host)
        .map(|t| t.saturating_sub(host_out(rendered(model_in(t)))))
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bridge(host: u32, model: u32, max_block: usize, hop: usize, lag: usize) -> RateBridge {
        let plan = Plan {
            rates: (host, model),
            max_block,
            hop,
            lag,
        };
        RateBridge::new(&plan).expect("standard rates")
    }

    /// A sine through the bridge with a renderer that passes the model-rate samples straight
    /// on (hop 1, no lag) comes out delayed by exactly `latency()` samples, for odd block
    /// sizes and standard rates: the latency the bridge reports is the one it has.
    #[test]
    fn passes_a_tone_through_with_the_latency_it_reports() {
        for (host, model) in [
            (48_000, 16_000),
            (44_100, 16_000),
            (16_000, 16_000),
            (22_050, 16_000),
        ] {
            let mut b = bridge(host, model, 517, 1, 0);
            let latency = b.latency_exact(true);
            let freq = 1000.0f64;
            let total = host as usize;
            let tone =
                |t: f64| (0.5 * (2.0 * std::f64::consts::PI * freq * t / host as f64).sin()) as f32;
            let input: Vec<f32> = (0..total).map(|i| tone(i as f64)).collect();
            let mut output = vec![0.0f32; total];
            let sizes = [517usize, 32, 100, 256, 1, 411];
            let (mut at, mut k) = (0, 0);
            let mut staged = Vec::new();
            while at < total {
                let n = sizes[k % sizes.len()].min(total - at);
                staged.clear();
                staged.extend_from_slice(b.input(&input[at..at + n]));
                b.output(&staged);
                b.take(&mut output[at..at + n]);
                at += n;
                k += 1;
            }
            // Past the resamplers' warm-up, the output is the input `latency` samples late;
            // half a sample off would show (a 1 kHz tone moves up to 0.033 per half sample at
            // 48 kHz).
            let from = latency as usize + 2 * b.host_chunk;
            let error_at = |delay: f64| {
                (from..total)
                    .map(|i| (output[i] - tone(i as f64 - delay)).abs())
                    .fold(0.0f32, f32::max)
            };
            let err = error_at(latency);
            assert!(err < 1e-3, "{host} Hz: latency {latency}, max error {err}");
            if host != model {
                assert!(error_at(latency + 0.5) > 0.02 && error_at(latency - 0.5) > 0.02);
            }
        }
    }

    /// The prefill is the worst shortfall: one sample less and some block sequence runs dry.
    #[test]
    fn prefill_is_the_least_that_never_runs_dry() {
        for (host, hop, lag) in [
            (48_000u32, 64usize, 64usize),
            (44_100, 64, 96),
            (16_000, 64, 64),
        ] {
            let plan = Plan {
                rates: (host, 16_000),
                max_block: 4096,
                hop,
                lag,
            };
            let (hc, mc) = chunks(host, 16_000, hop).expect("standard rate");
            let p = prefill(&plan, hc, mc);
            // Feed one sample at a time and track the count: never short with p, short with p - 1.
            let (mut model_in, mut out, mut worst) = (0usize, 0usize, 0isize);
            let mut pending = 0;
            for t in 1..200_000usize {
                pending += 1;
                if pending == hc {
                    pending = 0;
                    model_in += mc;
                }
                let rendered = (model_in.div_ceil(hop) * hop).saturating_sub(lag);
                out = out.max(rendered / mc * hc);
                worst = worst.max(t as isize - out as isize);
            }
            assert_eq!(worst as usize, p, "{host} Hz");
        }
    }

    #[test]
    fn refuses_rates_that_need_huge_chunks() {
        let plan = Plan {
            rates: (44_099, 16_000),
            max_block: 256,
            hop: 64,
            lag: 64,
        };
        let err = RateBridge::new(&plan).err().expect("refused").to_string();
        assert!(
            err.contains("44099 Hz") && err.contains("standard rate"),
            "{err}"
        );
    }
}
