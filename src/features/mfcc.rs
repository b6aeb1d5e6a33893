//! MFCCs as magenta's `ddsp.spectral_ops.compute_mfcc` computes them (the z-encoder's input),
//! on the feature frame grid.
//!
//! Per frame: the magnitude spectrum of the Hann-windowed `n_fft`-sample frame (the loudness
//! frames' FFT, centred on the frame's sample), a mel filterbank (TensorFlow's
//! `linear_to_mel_weight_matrix`: HTK mel scale, triangles between `lo_hz` and `hi_hz`, not
//! area-normalised), magenta's `safe_log` (`log(max(x, 1e-5))`), and TensorFlow's
//! `mfccs_from_log_mel_spectrograms` (a DCT-II scaled by `1 / sqrt(2 * mel_bins)`), of which
//! the first `mfcc_bins` coefficients are kept. Magenta frames the audio with its own hop and
//! resamples the result to the decoder's frames; here every decoder frame gets its own MFCCs.
//!
//! No crate computes TensorFlow's filterbank (the Rust mel crates follow librosa's Slaney
//! scale and area normalisation), so the two matrices are built here from their formulas.

use realfft::num_complex::Complex;
use std::f64::consts::PI;

use super::SampleView;
use super::loudness::{centred_frame_count, frame_spectra};

/// Floor of magenta's `safe_log`.
pub const LOG_FLOOR: f64 = 1e-5;

/// Mel bands (magenta's `mel_bins`): the most MFCCs a frame has.
pub const MEL_BINS: usize = 128;

/// Settings of [`Mfcc`] (magenta's defaults except the FFT size, which is the feature frame's).
#[derive(Clone, Debug, PartialEq)]
pub struct MfccConfig {
    /// Sample rate, Hz.
    pub sample_rate: f64,
    /// FFT size (the analysis frame), samples.
    pub n_fft: usize,
    /// Mel bands (128).
    pub mel_bins: usize,
    /// Coefficients kept (30).
    pub mfcc_bins: usize,
    /// Lower edge of the lowest band, Hz (20).
    pub lo_hz: f64,
    /// Upper edge of the highest band, Hz (8000, at most Nyquist).
    pub hi_hz: f64,
}

impl MfccConfig {
    /// Magenta's settings at `sample_rate` with `n_fft`-sample frames.
    pub fn new(sample_rate: f64, n_fft: usize, mfcc_bins: usize) -> Self {
        Self {
            sample_rate,
            n_fft,
            mel_bins: MEL_BINS,
            mfcc_bins,
            lo_hz: 20.0,
            hi_hz: 8000.0f64.min(sample_rate / 2.0),
        }
    }
}

/// HTK's mel scale, as TensorFlow's: `1127 ln(1 + f / 700)`.
pub fn hz_to_mel(hz: f64) -> f64 {
    1127.0 * (1.0 + hz / 700.0).ln()
}

/// TensorFlow's `linear_to_mel_weight_matrix`: `[spectrogram_bins, mel_bins]`, row-major.
/// Bin `k` sits at `k * nyquist / (spectrogram_bins - 1)` Hz; the DC bin gets no weight. Band
/// `m` is a triangle in mel from edge `m` to edge `m + 2` of `mel_bins + 2` edges spaced evenly
/// in mel from `lo_hz` to `hi_hz`, 1 at edge `m + 1`.
pub fn mel_weight_matrix(
    mel_bins: usize,
    spectrogram_bins: usize,
    sample_rate: f64,
    lo_hz: f64,
    hi_hz: f64,
) -> Vec<f64> {
    let nyquist = sample_rate / 2.0;
    let (lo, hi) = (hz_to_mel(lo_hz), hz_to_mel(hi_hz));
    let edge = |i: usize| lo + (hi - lo) * i as f64 / (mel_bins + 1) as f64;
    let mut w = vec![0.0; spectrogram_bins * mel_bins];
    for k in 1..spectrogram_bins {
        let mel = hz_to_mel(k as f64 * nyquist / (spectrogram_bins - 1) as f64);
        for m in 0..mel_bins {
            let (lower, centre, upper) = (edge(m), edge(m + 1), edge(m + 2));
            let rising = (mel - lower) / (centre - lower);
            let falling = (upper - mel) / (upper - centre);
            w[k * mel_bins + m] = rising.min(falling).max(0.0);
        }
    }
    w
}

/// Frame-by-frame MFCCs (see the module documentation).
pub struct Mfcc {
    config: MfccConfig,
    /// `[n_fft / 2 + 1, mel_bins]`.
    mel: Vec<f64>,
    /// `[mfcc_bins, mel_bins]`: TensorFlow's scaled DCT-II rows.
    dct: Vec<f64>,
    log_mel: Vec<f64>,
}

impl Mfcc {
    /// The filterbank and DCT for `config`.
    pub fn new(config: &MfccConfig) -> Self {
        let (bins, m) = (config.n_fft / 2 + 1, config.mel_bins);
        let scale = (2.0 / m as f64).sqrt();
        let dct = (0..config.mfcc_bins)
            .flat_map(|k| {
                (0..m).map(move |n| {
                    scale * (PI * k as f64 * (2 * n + 1) as f64 / (2 * m) as f64).cos()
                })
            })
            .collect();
        Self {
            mel: mel_weight_matrix(m, bins, config.sample_rate, config.lo_hz, config.hi_hz),
            dct,
            log_mel: vec![0.0; m],
            config: config.clone(),
        }
    }

    /// Coefficients per frame.
    pub fn bins(&self) -> usize {
        self.config.mfcc_bins
    }

    /// The MFCCs of one frame from its `n_fft / 2 + 1`-bin spectrum, into `out`
    /// (`mfcc_bins` long).
    pub fn of_spectrum(&mut self, spectrum: &[Complex<f64>], out: &mut [f32]) {
        let m = self.config.mel_bins;
        self.log_mel.fill(0.0);
        for (c, row) in spectrum.iter().zip(self.mel.chunks_exact(m)) {
            let magnitude = c.norm();
            for (acc, w) in self.log_mel.iter_mut().zip(row) {
                *acc += magnitude * w;
            }
        }
        for v in &mut self.log_mel {
            *v = v.max(LOG_FLOOR).ln();
        }
        for (o, row) in out.iter_mut().zip(self.dct.chunks_exact(m)) {
            *o = row
                .iter()
                .zip(&self.log_mel)
                .map(|(a, b)| a * b)
                .sum::<f64>() as f32;
        }
    }
}

/// The MFCCs of a silent frame: every mel band at the log floor, so only the 0th coefficient,
/// `sqrt(2 * MEL_BINS) * ln(LOG_FLOOR)`, is not 0.
pub fn silence(mfcc_bins: usize) -> Vec<f32> {
    let mut v = vec![0f32; mfcc_bins];
    if let Some(c0) = v.first_mut() {
        *c0 = ((2.0 * MEL_BINS as f64).sqrt() * LOG_FLOOR.ln()) as f32;
    }
    v
}

/// MFCCs of frames centred on samples `0, hop, 2*hop, ...` (`1 + n / hop` frames, the grid of
/// [`super::loudness::compute_loudness`]), `mfcc_bins` per frame, frame after frame.
pub fn compute_mfcc(audio: &[f32], config: &MfccConfig, hop: usize) -> Vec<f32> {
    let frames = centred_frame_count(audio.len(), hop);
    let mut mfcc = Mfcc::new(config);
    let mut out = vec![0f32; config.mfcc_bins];
    let view = SampleView::whole(audio);
    frame_spectra(
        &view,
        config.n_fft,
        hop,
        config.n_fft / 2,
        0..frames,
        |spectrum| {
            mfcc.of_spectrum(spectrum, &mut out);
            out.clone()
        },
    )
    .concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filterbank_follows_tensorflows_formula() {
        assert!((hz_to_mel(700.0) - 1127.0 * 2f64.ln()).abs() < 1e-9);
        let (m, bins, sr) = (40, 513, 16000.0);
        let w = mel_weight_matrix(m, bins, sr, 20.0, 8000.0);
        assert!(w[..m].iter().all(|&v| v == 0.0), "no weight on DC");
        assert!(w.iter().all(|&v| (0.0..=1.0).contains(&v)));
        // One entry by hand: bin 100 (1562.5 Hz) in the band whose centre is nearest it.
        let (lo, hi) = (hz_to_mel(20.0), hz_to_mel(8000.0));
        let edges: Vec<f64> = (0..m + 2)
            .map(|i| lo + (hi - lo) * i as f64 / (m + 1) as f64)
            .collect();
        let mel = hz_to_mel(1562.5);
        let band = (0..m)
            .min_by(|&a, &b| {
                (edges[a + 1] - mel)
                    .abs()
                    .total_cmp(&(edges[b + 1] - mel).abs())
            })
            .unwrap();
        let expected = if mel < edges[band + 1] {
            (mel - edges[band]) / (edges[band + 1] - edges[band])
        } else {
            (edges[band + 2] - mel) / (edges[band + 2] - edges[band + 1])
        };
        assert!((w[100 * m + band] - expected).abs() < 1e-12);
        // Every band has weight somewhere, peaking near 1 where bins are dense (high bands).
        for b in 0..m {
            let peak = (0..bins).map(|k| w[k * m + b]).fold(0.0, f64::max);
            assert!(peak > 0.0, "band {b}");
        }
        let top = (0..bins).map(|k| w[k * m + m - 1]).fold(0.0, f64::max);
        assert!(top > 0.9, "{top}");
    }

    #[test]
    fn coefficients_are_tensorflows_scaled_dct_of_the_log_mel() {
        let config = MfccConfig::new(16000.0, 512, 13);
        let mut mfcc = Mfcc::new(&config);
        // A spectrum of random magnitudes: the log-mel by hand, then the DCT-II sum by hand.
        let spectrum: Vec<Complex<f64>> = crate::testing::rand_vec(257, 3, 0.0, 2.0)
            .iter()
            .map(|&v| Complex::new(v as f64, -0.5 * v as f64))
            .collect();
        let mut got = vec![0f32; 13];
        mfcc.of_spectrum(&spectrum, &mut got);
        let w = mel_weight_matrix(128, 257, 16000.0, 20.0, 8000.0);
        let log_mel: Vec<f64> = (0..128)
            .map(|b| {
                let e: f64 = (0..257).map(|k| spectrum[k].norm() * w[k * 128 + b]).sum();
                e.max(1e-5).ln()
            })
            .collect();
        for (k, g) in got.iter().enumerate() {
            let dct2: f64 = (0..128)
                .map(|n| 2.0 * log_mel[n] * (PI * k as f64 * (2 * n + 1) as f64 / 256.0).cos())
                .sum();
            let expected = dct2 / (2.0 * 128.0f64).sqrt();
            assert!(
                (*g as f64 - expected).abs() < 1e-4 * expected.abs().max(1.0),
                "{k}: {g} vs {expected}"
            );
        }
    }

    #[test]
    fn silence_has_only_the_zeroth_coefficient_and_a_tone_shows_in_its_band() {
        let config = MfccConfig::new(16000.0, 1024, 30);
        let silent = compute_mfcc(&vec![0.0; 4096], &config, 256);
        assert_eq!(silent.len(), 30 * (1 + 4096 / 256));
        // A constant log-mel (the floor) projects onto c0 alone: sqrt(2 * 128) * ln(1e-5).
        let c0 = (2.0 * 128.0f64).sqrt() * 1e-5f64.ln();
        for frame in silent.chunks(30) {
            assert!((frame[0] as f64 - c0).abs() < 1e-3, "{}", frame[0]);
            assert!(frame[1..].iter().all(|v| v.abs() < 1e-3));
            for (a, b) in frame.iter().zip(silence(30)) {
                assert!((a - b).abs() < 1e-3);
            }
        }
        // Louder input raises c0 by sqrt(2 * 128) * ln(gain) where every band is above the
        // floor: a broadband chirp-free noise at two levels.
        let noise = crate::testing::rand_vec(8192, 9, -0.5, 0.5);
        let quiet: Vec<f32> = noise.iter().map(|v| v * 0.5).collect();
        let (a, b) = (
            compute_mfcc(&noise, &config, 256),
            compute_mfcc(&quiet, &config, 256),
        );
        let mid = 30 * 16;
        let shift = (2.0 * 128.0f64).sqrt() * 2f64.ln();
        assert!(((a[mid] - b[mid]) as f64 - shift).abs() < 1e-3, "c0 shift");
        for k in 1..30 {
            assert!((a[mid + k] - b[mid + k]).abs() < 1e-3, "c{k} is level-free");
        }
    }
}

#[cfg(test)]
mod stream_tests {
    use super::*;
    use crate::features::{FeatureConfig, FeatureStream};

    /// The feature stream's MFCCs, audio pushed in blocks and decoded in short windows, are
    /// [`compute_mfcc`] of the whole signal, on the loudness frames' grid.
    #[test]
    fn streamed_mfccs_are_the_whole_signals() {
        let audio = crate::testing::rand_vec(16000 * 3, 5, -0.5, 0.5);
        let config = FeatureConfig {
            sample_rate: 16000.0,
            frame_size: 512,
            frame_hop: 128,
            min_f0: 60.0,
            max_f0: 1000.0,
            voiced_threshold: 0.5,
            mfcc_bins: 20,
        };
        let mut stream = FeatureStream::new(&config);
        stream.set_window_seconds(0.5);
        for block in audio.chunks(777) {
            stream.push(block);
        }
        let streamed = stream.finish();
        let whole = compute_mfcc(&audio, &config.mfcc().unwrap(), 128);
        assert_eq!(streamed.mfcc_bins(), 20);
        assert_eq!(streamed.mfcc.len(), 20 * streamed.len());
        assert_eq!(streamed.mfcc, whole);
        // Without MFCCs in the config, none are computed.
        let plain = crate::features::extract(
            &audio,
            &FeatureConfig {
                mfcc_bins: 0,
                ..config
            },
        );
        assert!(plain.mfcc.is_empty() && plain.mfcc_bins() == 0);
    }
}
