//! A-weighted loudness in dB, as magenta `ddsp.spectral_ops.compute_loudness`.

use realfft::RealFftPlanner;
use realfft::num_complex::Complex;
use std::f64::consts::PI;

use super::SampleView;

/// Floor of the loudness scale, dB (DDSP's `range_db` with reference 0 dB).
pub const LOUDNESS_FLOOR_DB: f64 = -80.0;

/// A-weighting in dB at `freq` Hz (IEC 61672, librosa's constants), floored at -80 dB.
pub fn a_weighting_db(freq: f64) -> f64 {
    let f2 = freq * freq;
    let c = [
        12194.217f64.powi(2),
        20.598997f64.powi(2),
        107.65265f64.powi(2),
        737.86223f64.powi(2),
    ];
    if f2 <= 0.0 {
        return LOUDNESS_FLOOR_DB;
    }
    let w = 2.0
        + 20.0
            * (c[0].log10() + 2.0 * f2.log10()
                - (f2 + c[0]).log10()
                - (f2 + c[1]).log10()
                - 0.5 * (f2 + c[2]).log10()
                - 0.5 * (f2 + c[3]).log10());
    w.max(LOUDNESS_FLOOR_DB)
}

/// Linear power weights `10^(A(f)/10)` for the `n_fft/2 + 1` bins of an FFT.
pub fn a_weighting_power(n_fft: usize, sample_rate: f64) -> Vec<f64> {
    (0..=n_fft / 2)
        .map(|k| 10f64.powf(a_weighting_db(k as f64 * sample_rate / n_fft as f64) / 10.0))
        .collect()
}

/// Number of frames centred every `hop` samples over `n` samples: `1 + n / hop`.
pub fn centred_frame_count(n: usize, hop: usize) -> usize {
    1 + n / hop
}

/// Loudness in dB of frames centred on samples `0, hop, 2*hop, ...` (`1 + n / hop` frames).
///
/// Each frame is `n_fft` samples of the signal zero-padded by `n_fft / 2` on both sides, times a
/// periodic Hann window; its power spectrum is A-weighted, averaged over bins, converted with
/// `10 * log10(max(p, 1e-10))` (reference 0 dB) and floored at -80 dB.
pub fn compute_loudness(audio: &[f32], sample_rate: f64, n_fft: usize, hop: usize) -> Vec<f32> {
    let frames = centred_frame_count(audio.len(), hop);
    let weights = a_weighting_power(n_fft, sample_rate);
    let view = SampleView::whole(audio);
    frame_spectra(&view, n_fft, hop, n_fft / 2, 0..frames, |spectrum| {
        weighted_db(spectrum, &weights)
    })
}

/// A frame's loudness from its spectrum: the A-weighted power averaged over bins, in dB
/// (reference 0 dB), floored at [`LOUDNESS_FLOOR_DB`].
pub(crate) fn weighted_db(spectrum: &[Complex<f64>], weights: &[f64]) -> f32 {
    let power: f64 = spectrum
        .iter()
        .zip(weights)
        .map(|(c, w)| c.norm_sqr() * w)
        .sum::<f64>()
        / spectrum.len() as f64;
    (10.0 * power.max(1e-10).log10()).max(LOUDNESS_FLOOR_DB) as f32
}

/// Periodic Hann window of `n` samples.
fn hann(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| 0.5 - 0.5 * (2.0 * PI * i as f64 / n as f64).cos())
        .collect()
}

/// Loudness of live input, frame by frame and allocation-free: [`compute_loudness`]'s
/// formula on the `n_fft` samples that END at the frame's sample (a causal window; the
/// offline frames are centred, so live loudness trails them by half a window).
pub struct LoudnessMeter {
    weights: Vec<f64>,
    window: Vec<f64>,
    fft: std::sync::Arc<dyn realfft::RealToComplex<f64>>,
    input: Vec<f64>,
    spectrum: Vec<Complex<f64>>,
    scratch: Vec<Complex<f64>>,
}

impl LoudnessMeter {
    /// A meter with `n_fft`-sample frames at `sample_rate` Hz.
    pub fn new(n_fft: usize, sample_rate: f64) -> Self {
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(n_fft);
        Self {
            weights: a_weighting_power(n_fft, sample_rate),
            window: hann(n_fft),
            input: fft.make_input_vec(),
            spectrum: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            fft,
        }
    }

    /// Samples one frame reads.
    pub fn frame_length(&self) -> usize {
        self.window.len()
    }

    /// Loudness (dB) of the frame whose last `n_fft` samples are `history` (oldest first;
    /// shorter histories are zero-padded at the front).
    pub fn frame(&mut self, history: &[f32]) -> f32 {
        let n = self.input.len();
        let have = history.len().min(n);
        self.input[..n - have].fill(0.0);
        let recent = &history[history.len() - have..];
        for ((slot, &v), w) in self.input[n - have..]
            .iter_mut()
            .zip(recent)
            .zip(&self.window[n - have..])
        {
            *slot = v as f64 * w;
        }
        self.fft
            .process_with_scratch(&mut self.input, &mut self.spectrum, &mut self.scratch)
            .expect("fft sizes match");
        weighted_db(&self.spectrum, &self.weights)
    }
}

/// Spectra of frames `frames` of `n_fft` samples times a periodic Hann window, frame `i`
/// starting at sample `i * hop - offset` (samples outside the signal count as zero): `each`
/// maps a frame's `n_fft / 2 + 1` bins to one value.
pub(crate) fn frame_spectra<T>(
    view: &SampleView,
    n_fft: usize,
    hop: usize,
    offset: usize,
    frames: std::ops::Range<usize>,
    mut each: impl FnMut(&[Complex<f64>]) -> T,
) -> Vec<T> {
    let window = hann(n_fft);
    let fft = RealFftPlanner::<f64>::new().plan_fft_forward(n_fft);
    let mut input = fft.make_input_vec();
    let mut spectrum = fft.make_output_vec();
    let mut scratch = fft.make_scratch_vec();
    frames
        .map(|i| {
            view.frame(i, hop, offset, &mut input);
            for (slot, w) in input.iter_mut().zip(&window) {
                *slot *= w;
            }
            fft.process_with_scratch(&mut input, &mut spectrum, &mut scratch)
                .expect("fft sizes match");
            each(&spectrum)
        })
        .collect()
}
