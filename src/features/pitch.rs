//! Probabilistic YIN (pYIN, Mauch & Dixon 2014) f0 tracking with Viterbi smoothing.
//!
//! Per frame: the YIN cumulative-mean-normalised difference function (computed with FFTs),
//! its troughs scored against 100 thresholds drawn from a Beta(2, 8) prior with a Boltzmann
//! preference for shorter periods; the candidates (parabolically refined periods) become the
//! observation probabilities of an HMM over 10-cent pitch bins times {voiced, unvoiced},
//! decoded with Viterbi under a triangular pitch-transition band (at most 35.92 octaves/s) and
//! a 1% voicing switch probability. The decoded pitch is then refined to the exact candidate
//! frequency in its bin, and unvoiced frames get an f0 interpolated (in MIDI) between the
//! neighbouring voiced frames, so f0 is finite and positive everywhere.
//!
//! Frames are centred: frame `i` is centred on sample `i * hop` (zero padding at both ends),
//! the same alignment as [`super::loudness::compute_loudness`].

use realfft::RealFftPlanner;
use realfft::num_complex::Complex;

/// Tracker parameters.
#[derive(Clone, Debug)]
pub struct PitchConfig {
    /// Sample rate, Hz.
    pub sample_rate: f64,
    /// Samples between frames.
    pub hop: usize,
    /// Lowest f0, Hz.
    pub min_f0: f64,
    /// Highest f0, Hz.
    pub max_f0: f64,
    /// Minimum analysis frame length, samples (raised when `min_f0` needs more).
    pub frame_length: usize,
    /// Pitch-bin resolution in semitones (0.1 = 10-cent bins).
    pub resolution: f64,
    /// Largest pitch change the HMM allows, octaves per second.
    pub max_transition_rate: f64,
    /// Probability of switching between voiced and unvoiced per frame.
    pub switch_prob: f64,
    /// Probability mass given to the global minimum when no trough is below a threshold.
    pub no_trough_prob: f64,
    /// Frames quieter than this RMS are unvoiced whatever the YIN analysis says.
    pub silence_rms: f64,
    /// Voicing probability at or above which a frame counts as voiced.
    pub voiced_threshold: f64,
}

impl PitchConfig {
    /// pYIN's published defaults for the given rate, hop and range.
    pub fn new(sample_rate: f64, hop: usize, min_f0: f64, max_f0: f64) -> Self {
        Self {
            sample_rate,
            hop,
            min_f0,
            max_f0,
            frame_length: 1024,
            resolution: 0.1,
            max_transition_rate: 35.92,
            switch_prob: 0.01,
            no_trough_prob: 0.01,
            silence_rms: 1e-4,
            voiced_threshold: 0.3,
        }
    }
}

/// The tracker's output, one value per frame.
#[derive(Clone, Debug, PartialEq)]
pub struct PitchTrack {
    /// f0 in Hz, finite and positive on every frame (interpolated through unvoiced frames).
    pub f0_hz: Vec<f32>,
    /// Probability that the frame is voiced, in `[0, 1]`: pYIN's observation probability,
    /// capped just below `voiced_threshold` where the Viterbi path is unvoiced.
    pub voiced_prob: Vec<f32>,
}

const N_THRESHOLDS: usize = 100;
/// Threshold prior Beta(2, 8): mean 0.2, the most lenient of the pYIN paper's three priors
/// (means 0.10, 0.15, 0.20); it keeps decaying and breathy notes voiced.
const BETA_A: u32 = 2;
const BETA_B: u32 = 8;
const BOLTZMANN: f64 = 2.0;

/// Regularised incomplete beta `I_x(a, b)` for integer `a, b` (binomial-sum form).
fn beta_cdf(x: f64, a: u32, b: u32) -> f64 {
    let n = a + b - 1;
    let mut sum = 0.0;
    let mut binom = 1.0f64; // C(n, 0)
    for j in 0..=n {
        if j >= a {
            sum += binom * x.powi(j as i32) * (1.0 - x).powi((n - j) as i32);
        }
        binom = binom * (n - j) as f64 / (j + 1) as f64;
    }
    sum
}

/// Probability of each threshold interval `[k/100, (k+1)/100)` under Beta(2, 18).
fn threshold_probs() -> Vec<f64> {
    (0..N_THRESHOLDS)
        .map(|k| {
            beta_cdf((k + 1) as f64 / N_THRESHOLDS as f64, BETA_A, BETA_B)
                - beta_cdf(k as f64 / N_THRESHOLDS as f64, BETA_A, BETA_B)
        })
        .collect()
}

/// Boltzmann pmf `(1 - e^-l) e^(-l k) / (1 - e^(-l n))`, `k` in `0..n`.
fn boltzmann_pmf(k: usize, n: usize) -> f64 {
    let l = BOLTZMANN;
    (1.0 - (-l).exp()) * (-l * k as f64).exp() / (1.0 - (-l * n as f64).exp())
}

pub(super) struct Yin {
    frame_length: usize,
    win: usize,
    min_period: usize,
    max_period: usize,
    fft_len: usize,
    fft: std::sync::Arc<dyn realfft::RealToComplex<f64>>,
    ifft: std::sync::Arc<dyn realfft::ComplexToReal<f64>>,
}

impl Yin {
    pub(super) fn new(config: &PitchConfig) -> Self {
        let sr = config.sample_rate;
        let need = 2 * ((sr / config.min_f0).ceil() as usize + 2);
        let frame_length = config.frame_length.max(need).next_multiple_of(2);
        let win = frame_length / 2;
        let min_period = ((sr / config.max_f0).floor() as usize).max(2);
        let max_period = ((sr / config.min_f0).ceil() as usize).min(frame_length - win - 2);
        // Long enough that the circular correlation never wraps; even, so its last bin is
        // Nyquist's; 5-smooth, where rustfft is fastest (1536 = 3 * 2^9 for the default).
        let fft_len = even_smooth_len(frame_length + win);
        let mut planner = RealFftPlanner::<f64>::new();
        Self {
            frame_length,
            win,
            min_period,
            max_period,
            fft_len,
            fft: planner.plan_fft_forward(fft_len),
            ifft: planner.plan_fft_inverse(fft_len),
        }
    }

    /// Buffers for [`Self::cmndf`], allocated once.
    pub(super) fn scratch(&self) -> YinScratch {
        YinScratch {
            a: vec![0.0; self.fft_len],
            b: vec![0.0; self.fft_len],
            fa: self.fft.make_output_vec(),
            fb: self.fft.make_output_vec(),
            r: vec![0.0; self.fft_len],
            sq: vec![0.0; self.frame_length + 1],
            d: vec![0.0; self.max_period + 2],
            out: vec![0.0; self.max_period + 2],
            fft_scratch: self.fft.make_scratch_vec(),
            ifft_scratch: self.ifft.make_scratch_vec(),
        }
    }

    /// CMNDF `d'(tau)` for `tau` in `0..=max_period + 1` of a frame of `frame_length`
    /// samples, computed in `s` (nothing allocated).
    pub(super) fn cmndf<'s>(&self, x: &[f64], s: &'s mut YinScratch) -> &'s [f64] {
        let n = self.fft_len;
        s.a.fill(0.0);
        s.a[..x.len()].copy_from_slice(x);
        s.b.fill(0.0);
        s.b[..self.win].copy_from_slice(&x[..self.win]);
        self.fft
            .process_with_scratch(&mut s.a, &mut s.fa, &mut s.fft_scratch)
            .expect("fft length");
        self.fft
            .process_with_scratch(&mut s.b, &mut s.fb, &mut s.fft_scratch)
            .expect("fft length");
        for (p, q) in s.fa.iter_mut().zip(&s.fb) {
            *p *= q.conj();
        }
        s.fa[0].im = 0.0;
        if let Some(last) = s.fa.last_mut() {
            last.im = 0.0;
        }
        self.ifft
            .process_with_scratch(&mut s.fa, &mut s.r, &mut s.ifft_scratch)
            .expect("ifft length");
        s.sq[0] = 0.0;
        for (i, v) in x.iter().enumerate() {
            s.sq[i + 1] = s.sq[i] + v * v;
        }
        let e0 = s.sq[self.win];
        let top = self.max_period + 1;
        s.d[0] = 0.0;
        for tau in 1..=top {
            let e_tau = s.sq[tau + self.win] - s.sq[tau];
            s.d[tau] = (e0 + e_tau - 2.0 * s.r[tau] / n as f64).max(0.0);
        }
        s.out[0] = 1.0;
        let mut running = 0.0;
        for tau in 1..=top {
            running += s.d[tau];
            s.out[tau] = if running > 0.0 {
                s.d[tau] * tau as f64 / running
            } else {
                1.0
            };
        }
        &s.out[..=top]
    }
}

/// [`Yin::cmndf`]'s buffers.
pub(super) struct YinScratch {
    a: Vec<f64>,
    b: Vec<f64>,
    fa: Vec<Complex<f64>>,
    fb: Vec<Complex<f64>>,
    r: Vec<f64>,
    sq: Vec<f64>,
    d: Vec<f64>,
    out: Vec<f64>,
    fft_scratch: Vec<Complex<f64>>,
    ifft_scratch: Vec<Complex<f64>>,
}

/// The smallest even length `>= n` with no prime factor above 5.
fn even_smooth_len(n: usize) -> usize {
    let smooth = |mut m: usize| {
        for p in [2, 3, 5] {
            while m.is_multiple_of(p) {
                m /= p;
            }
        }
        m == 1
    };
    (n.max(2).next_multiple_of(2)..)
        .step_by(2)
        .find(|&m| smooth(m))
        .expect("5-smooth numbers are unbounded")
}

/// A pitch candidate of one frame.
#[derive(Clone, Copy, Debug)]
pub(super) struct Candidate {
    f0: f64,
    prob: f64,
}

/// The first threshold index `k` (threshold `(k + 1) / 100`) that `value` is below, or
/// [`N_THRESHOLDS`] if none: the same comparisons as scoring threshold by threshold.
fn first_threshold_below(value: f64) -> usize {
    let below = |k: usize| value < (k + 1) as f64 / N_THRESHOLDS as f64;
    if !below(N_THRESHOLDS - 1) {
        return N_THRESHOLDS;
    }
    let mut k = ((value * N_THRESHOLDS as f64).floor().max(0.0) as usize).min(N_THRESHOLDS - 1);
    while k > 0 && below(k - 1) {
        k -= 1;
    }
    while !below(k) {
        k += 1;
    }
    k
}

/// Candidate buffers of [`frame_candidates`], reused from frame to frame.
#[derive(Default)]
pub(super) struct CandidateScratch {
    troughs: Vec<usize>,
    probs: Vec<f64>,
    /// Per trough, the first threshold index it is below.
    first: Vec<usize>,
}

impl CandidateScratch {
    /// Buffers that never grow for periods up to `max_period`.
    pub(super) fn with_capacity(max_period: usize) -> Self {
        Self {
            troughs: Vec::with_capacity(max_period + 1),
            probs: Vec::with_capacity(max_period + 1),
            first: Vec::with_capacity(max_period + 1),
        }
    }
}

/// The pitch candidates of a frame's CMNDF into `out` (cleared first): troughs in
/// `[min_period, max_period]`, scored against the thresholds `beta`, parabolically refined.
/// Allocates nothing once `scratch` and `out` have room for `max_period + 1` entries.
#[allow(clippy::too_many_arguments)]
fn frame_candidates(
    cmndf: &[f64],
    min_period: usize,
    max_period: usize,
    beta: &[f64],
    no_trough_prob: f64,
    sample_rate: f64,
    scratch: &mut CandidateScratch,
    out: &mut Vec<Candidate>,
) {
    out.clear();
    let CandidateScratch {
        troughs,
        probs,
        first,
    } = scratch;
    // Troughs in [min_period, max_period].
    troughs.clear();
    for tau in min_period..=max_period {
        let left = if tau == min_period {
            f64::INFINITY
        } else {
            cmndf[tau - 1]
        };
        if cmndf[tau] < left && cmndf[tau] <= cmndf[tau + 1] {
            troughs.push(tau);
        }
    }
    if troughs.is_empty() {
        return;
    }
    probs.clear();
    probs.resize(troughs.len(), 0.0);
    // Trough `i` is below threshold `k` (`(k + 1) / 100`) for every `k >= first[i]`, so the
    // set of troughs below, and with it each one's Boltzmann weight, changes only at those
    // indices: score each run of thresholds with one set once, with the run's prior mass.
    first.clear();
    first.extend(troughs.iter().map(|&t| first_threshold_below(cmndf[t])));
    let mut starts = [false; N_THRESHOLDS];
    starts[0] = true;
    for &k in first.iter().filter(|&&k| k < N_THRESHOLDS) {
        starts[k] = true;
    }
    let global = (0..troughs.len())
        .min_by(|&a, &b| cmndf[troughs[a]].total_cmp(&cmndf[troughs[b]]))
        .expect("non-empty");
    let mut k = 0;
    while k < N_THRESHOLDS {
        let end = (k + 1..N_THRESHOLDS)
            .find(|&e| starts[e])
            .unwrap_or(N_THRESHOLDS);
        let mass: f64 = beta[k..end].iter().sum();
        let below = first.iter().filter(|&&f| f <= k).count();
        if below == 0 {
            probs[global] += no_trough_prob * mass;
        } else {
            let below_set = probs.iter_mut().zip(first.iter()).filter(|(_, f)| **f <= k);
            for (pos, (p, _)) in below_set.enumerate() {
                *p += boltzmann_pmf(pos, below) * mass;
            }
        }
        k = end;
    }
    for (&tau, &prob) in troughs.iter().zip(probs.iter()) {
        if prob <= 0.0 {
            continue;
        }
        let (a, b, c) = (cmndf[tau - 1], cmndf[tau], cmndf[tau + 1]);
        let denom = a - 2.0 * b + c;
        let shift = if denom.abs() > 1e-12 {
            0.5 * (a - c) / denom
        } else {
            0.0
        };
        let shift = if shift.abs() <= 1.0 { shift } else { 0.0 };
        out.push(Candidate {
            f0: sample_rate / (tau as f64 + shift),
            prob,
        });
    }
}

/// A frame's pitch candidates and whether it is loud enough to have any.
pub(super) type Analysed = (Vec<Candidate>, bool);

/// Frames decoded by one Viterbi pass ([`PitchTracker::decode`]), before the unvoiced runs
/// are filled in.
pub(super) struct DecodedFrames {
    /// The exact candidate in the decoded bin (or a neighbour), else the bin centre, Hz.
    pub f0: Vec<f64>,
    /// Voicing probability, capped just under the threshold where decoded unvoiced.
    pub prob: Vec<f64>,
}

/// The tracker for one configuration: the per-frame YIN analysis and the HMM its Viterbi
/// passes decode. [`super::FeatureStream`] drives it window by window.
pub(super) struct PitchTracker {
    config: PitchConfig,
    yin: Yin,
    beta: Vec<f64>,
    bins: PitchBins,
    transitions: Transitions,
    /// Seconds of frames one Viterbi window keeps ([`WINDOW_SECONDS`]).
    pub(super) window_seconds: f64,
}

impl PitchTracker {
    pub(super) fn new(config: &PitchConfig) -> Self {
        let bins = PitchBins::new(config);
        Self {
            yin: Yin::new(config),
            beta: threshold_probs(),
            transitions: Transitions::new(config, &bins),
            bins,
            config: config.clone(),
            window_seconds: WINDOW_SECONDS,
        }
    }

    pub(super) fn config(&self) -> &PitchConfig {
        &self.config
    }

    /// Samples a frame's analysis reads before and after its centre sample.
    ///
    /// The YIN sum runs over `win` samples from the buffer start (compared with the same span
    /// `tau` later), so centring that span on the frame puts the buffer start `win / 2` before
    /// the frame's sample.
    pub(super) fn reach(&self) -> (usize, usize) {
        let half = self.yin.win / 2;
        (half, self.yin.frame_length - half)
    }

    /// Frames one Viterbi window keeps, and the frames of context it decodes on each side.
    pub(super) fn window_frames(&self) -> (usize, usize) {
        let fps = self.config.sample_rate / self.config.hop as f64;
        let window = (self.window_seconds * fps).min(usize::MAX as f64 / 4.0) as usize;
        (window.max(1), (OVERLAP_SECONDS * fps) as usize)
    }

    /// The candidates of one analysis frame (`frame_length` samples) into `out`.
    fn candidates(
        &self,
        frame: &[f64],
        scratch: &mut YinScratch,
        cands: &mut CandidateScratch,
        out: &mut Vec<Candidate>,
    ) {
        let d = self.yin.cmndf(frame, scratch);
        frame_candidates(
            d,
            self.yin.min_period,
            self.yin.max_period,
            &self.beta,
            self.config.no_trough_prob,
            self.config.sample_rate,
            cands,
            out,
        );
    }

    /// Each frame's candidates in `frames` (independent frames, in parallel).
    pub(super) fn analyse(
        &self,
        view: &super::SampleView,
        frames: std::ops::Range<usize>,
    ) -> Vec<Analysed> {
        use rayon::prelude::*;
        let (half, _) = self.reach();
        let (config, yin) = (&self.config, &self.yin);
        frames
            .into_par_iter()
            .map_init(
                || {
                    let buf = vec![0.0f64; yin.frame_length];
                    (buf, yin.scratch(), CandidateScratch::default())
                },
                |(buf, scratch, cands), i| {
                    view.frame(i, config.hop, half, buf);
                    if rms(buf) < config.silence_rms {
                        return (Vec::new(), false);
                    }
                    let mut c = Vec::new();
                    self.candidates(buf, scratch, cands, &mut c);
                    (c, true)
                },
            )
            .collect()
    }

    /// One Viterbi pass over `analysed` (consecutive frames), returning the frames `keep`
    /// (indices into `analysed`).
    pub(super) fn decode(
        &self,
        analysed: &[Analysed],
        keep: std::ops::Range<usize>,
    ) -> DecodedFrames {
        let bins = &self.bins;
        let (voiced_prob, obs_voiced) = observations(analysed, bins);
        let states = viterbi(
            &voiced_prob,
            &obs_voiced,
            bins,
            &self.transitions,
            &self.config,
        );
        let cap = (self.config.voiced_threshold - 1e-3).max(0.0);
        let (f0, prob) = keep
            .map(|t| {
                let s = states[t];
                let b = s % bins.n;
                let exact = analysed[t]
                    .0
                    .iter()
                    .filter(|c| bins.of(c.f0).is_some_and(|cb| cb.abs_diff(b) <= 1))
                    .max_by(|x, y| x.prob.total_cmp(&y.prob));
                let f0 = exact.map(|c| c.f0).unwrap_or_else(|| bins.hz(b));
                // Frames decoded unvoiced keep their probability capped just under the
                // threshold, so `uv = prob >= voicedThreshold` agrees with the decision.
                let p = if s < bins.n {
                    voiced_prob[t]
                } else {
                    voiced_prob[t].min(cap)
                };
                (f0, p)
            })
            .unzip();
        DecodedFrames { f0, prob }
    }

    /// The track from every frame's decoded f0 and probability: unvoiced runs filled in.
    pub(super) fn finish(&self, f0: Vec<f64>, prob: Vec<f64>) -> PitchTrack {
        let flags: Vec<bool> = prob
            .iter()
            .map(|p| *p >= self.config.voiced_threshold)
            .collect();
        let f0 = fill_unvoiced(&f0, &flags, &self.config);
        PitchTrack {
            f0_hz: f0.into_iter().map(|v| v as f32).collect(),
            voiced_prob: prob.into_iter().map(|v| v as f32).collect(),
        }
    }
}

/// Root mean square of a frame.
fn rms(frame: &[f64]) -> f64 {
    (frame.iter().map(|v| v * v).sum::<f64>() / frame.len().max(1) as f64).sqrt()
}

/// Causal pYIN without the HMM, for live input: each frame is analysed from the
/// `frame_length` samples that END at its sample (nothing after it is needed), its voicing
/// probability is the sum of its candidates' observation probabilities (as the offline
/// tracker's), and its f0 the most probable candidate's, smoothed by a median over the last
/// three voiced frames (octave and subharmonic slips of one frame vanish; no frame of delay).
/// Unvoiced frames hold the last voiced f0, as the offline tracker's interpolation does
/// between notes. Allocates nothing per frame.
pub struct LivePitch {
    tracker: PitchTracker,
    scratch: YinScratch,
    cands: CandidateScratch,
    found: Vec<Candidate>,
    frame: Vec<f64>,
    /// The last three voiced f0 estimates (oldest first) and how many are set.
    recent: [f64; 3],
    recent_len: usize,
    held_f0: f64,
}

impl LivePitch {
    /// A tracker with `config`'s range, thresholds and frame length.
    pub fn new(config: &PitchConfig) -> Self {
        let tracker = PitchTracker::new(config);
        let max_period = tracker.yin.max_period;
        Self {
            scratch: tracker.yin.scratch(),
            cands: CandidateScratch::with_capacity(max_period),
            found: Vec::with_capacity(max_period + 1),
            frame: vec![0.0; tracker.yin.frame_length],
            recent: [0.0; 3],
            recent_len: 0,
            held_f0: config.min_f0.max(1.0).sqrt() * config.max_f0.max(1.0).sqrt(),
            tracker,
        }
    }

    /// Samples of history one frame reads.
    pub fn frame_length(&self) -> usize {
        self.tracker.yin.frame_length
    }

    /// Forget the history of f0 estimates.
    pub fn reset(&mut self) {
        self.recent_len = 0;
    }

    /// f0 (Hz) and voicing probability of the frame whose last `frame_length` samples are
    /// `history` (oldest first; shorter histories are zero-padded at the front).
    pub fn frame(&mut self, history: &[f32]) -> (f32, f32) {
        let n = self.frame.len();
        let have = history.len().min(n);
        self.frame[..n - have].fill(0.0);
        for (slot, &v) in self.frame[n - have..]
            .iter_mut()
            .zip(&history[history.len() - have..])
        {
            *slot = v as f64;
        }
        let config = &self.tracker.config;
        let mut voiced_prob = 0.0;
        let mut best: Option<Candidate> = None;
        if rms(&self.frame) >= config.silence_rms {
            self.tracker.candidates(
                &self.frame,
                &mut self.scratch,
                &mut self.cands,
                &mut self.found,
            );
            for c in self
                .found
                .iter()
                .filter(|c| (config.min_f0..=config.max_f0).contains(&c.f0))
            {
                voiced_prob += c.prob;
                if best.is_none_or(|b| c.prob > b.prob) {
                    best = Some(*c);
                }
            }
        }
        let voiced_prob = voiced_prob.clamp(0.0, 1.0);
        if let Some(c) = best.filter(|_| voiced_prob >= config.voiced_threshold) {
            if self.recent_len == 3 {
                self.recent.rotate_left(1);
                self.recent[2] = c.f0;
            } else {
                self.recent[self.recent_len] = c.f0;
                self.recent_len += 1;
            }
            self.held_f0 = median(&self.recent[..self.recent_len]);
        }
        (self.held_f0 as f32, voiced_prob as f32)
    }
}

/// Median of one to three values (the mean of the middle two for two).
fn median(v: &[f64]) -> f64 {
    match *v {
        [a] => a,
        [a, b] => 0.5 * (a + b),
        [a, b, c] => a.max(b).min(a.min(b).max(c)),
        _ => unreachable!("one to three values"),
    }
}

/// Bins of the pitch grid at most (see [`PitchBins::new`]).
const MAX_BINS: usize = (u16::MAX as usize) / 2;

/// The HMM's pitch grid: `n` bins of `resolution` semitones from `min_f0` up.
struct PitchBins {
    per_semitone: f64,
    n: usize,
    min_f0: f64,
}

impl PitchBins {
    fn new(config: &PitchConfig) -> Self {
        let per_semitone = (1.0 / config.resolution).ceil();
        // At most 32767 bins, so states fit the backpointers' u16 (more would reach below
        // 1e-20 Hz at the default resolution).
        let n = ((12.0 * per_semitone * (config.max_f0 / config.min_f0).log2()).floor() as usize
            + 1)
        .min(MAX_BINS);
        Self {
            per_semitone,
            n,
            min_f0: config.min_f0,
        }
    }

    /// The bin nearest `f0`, if it is on the grid.
    fn of(&self, f0: f64) -> Option<usize> {
        let b = (12.0 * self.per_semitone * (f0 / self.min_f0).log2()).round();
        (b >= 0.0 && (b as usize) < self.n).then_some(b as usize)
    }

    /// Centre frequency of bin `b`, Hz.
    fn hz(&self, b: usize) -> f64 {
        self.min_f0 * 2f64.powf(b as f64 / (12.0 * self.per_semitone))
    }
}

/// Log transition weights between pitch bins: a triangular band of half-width `half_w` bins,
/// each row normalised.
struct Transitions {
    half_w: usize,
    log_tri: Vec<f64>,
    row_log_norm: Vec<f64>,
}

impl Transitions {
    fn new(config: &PitchConfig, bins: &PitchBins) -> Self {
        let max_semitones =
            (config.max_transition_rate * 12.0 * config.hop as f64 / config.sample_rate).round();
        let width = (max_semitones * bins.per_semitone) as usize + 1;
        let half_w = width / 2;
        let tri: Vec<f64> = (0..=half_w)
            .map(|d| 1.0 - d as f64 / ((width + 1) as f64 / 2.0))
            .collect();
        let row_log_norm = (0..bins.n)
            .map(|i| {
                let (lo, hi) = (i.saturating_sub(half_w), (i + half_w).min(bins.n - 1));
                (lo..=hi).map(|j| tri[i.abs_diff(j)]).sum::<f64>().ln()
            })
            .collect();
        Self {
            half_w,
            log_tri: tri.iter().map(|t| t.ln()).collect(),
            row_log_norm,
        }
    }

    /// Log weight of moving from bin `i` to bin `j` (within the band).
    fn log(&self, i: usize, j: usize) -> f64 {
        self.log_tri[i.abs_diff(j)] - self.row_log_norm[i]
    }
}

/// Per frame: the voicing probability (sum of the candidates' probabilities on the grid, 0 for
/// inaudible frames) and the voiced observations `(bin, probability)`.
fn observations(
    analysed: &[(Vec<Candidate>, bool)],
    bins: &PitchBins,
) -> (Vec<f64>, Vec<Vec<(usize, f64)>>) {
    let mut voiced_prob = vec![0.0f64; analysed.len()];
    let mut obs_voiced = Vec::with_capacity(analysed.len());
    for (t, (cands, audible)) in analysed.iter().enumerate() {
        let mut row: Vec<(usize, f64)> = Vec::new();
        for c in cands {
            if let Some(b) = bins.of(c.f0) {
                match row.iter_mut().find(|(bb, _)| *bb == b) {
                    Some(e) => e.1 += c.prob,
                    None => row.push((b, c.prob)),
                }
            }
        }
        let total: f64 = row.iter().map(|(_, p)| p).sum();
        voiced_prob[t] = if *audible { total.clamp(0.0, 1.0) } else { 0.0 };
        if !*audible {
            row.clear();
        }
        obs_voiced.push(row);
    }
    (voiced_prob, obs_voiced)
}

/// Log-probability floor of the Viterbi pass.
const FLOOR: f64 = -1e30;

/// Viterbi over `2 * n` states (voiced bin `j` is state `j`, unvoiced bin `j` is `n + j`);
/// voiced states emit only where candidates exist. Returns the best state per frame.
fn viterbi(
    voiced_prob: &[f64],
    obs_voiced: &[Vec<(usize, f64)>],
    bins: &PitchBins,
    tr: &Transitions,
    config: &PitchConfig,
) -> Vec<usize> {
    let (n, frames) = (bins.n, voiced_prob.len());
    let (log_stay, log_switch) = ((1.0 - config.switch_prob).ln(), config.switch_prob.ln());
    let unvoiced_log = |t: usize| ((1.0 - voiced_prob[t]).max(1e-12) / n as f64).ln();
    let log_init = (0.5 / n as f64).ln();
    let mut delta_v = vec![FLOOR; n];
    let mut delta_u = vec![unvoiced_log(0) + log_init; n];
    for &(b, p) in &obs_voiced[0] {
        delta_v[b] = p.max(1e-300).ln() + log_init;
    }
    // Backpointers, 2n per frame (u16: states < 65536).
    let mut back = vec![0u16; frames * 2 * n];
    let (mut best_v, mut arg_v) = (vec![0.0; n], vec![0usize; n]);
    let (mut best_u, mut arg_u) = (vec![0.0; n], vec![0usize; n]);
    for (t, observed) in obs_voiced.iter().enumerate().skip(1) {
        // Best predecessor within the band, separately for voiced and unvoiced sources.
        for j in 0..n {
            let (lo, hi) = (j.saturating_sub(tr.half_w), (j + tr.half_w).min(n - 1));
            let (mut bv, mut av, mut bu, mut au) = (f64::NEG_INFINITY, j, f64::NEG_INFINITY, j);
            for i in lo..=hi {
                let w = tr.log(i, j);
                let v = delta_v[i] + w;
                if v > bv {
                    bv = v;
                    av = i;
                }
                let u = delta_u[i] + w;
                if u > bu {
                    bu = u;
                    au = i;
                }
            }
            best_v[j] = bv;
            arg_v[j] = av;
            best_u[j] = bu;
            arg_u[j] = au;
        }
        let ptr = &mut back[t * 2 * n..(t + 1) * 2 * n];
        let mut new_v = vec![FLOOR; n];
        let mut new_u = vec![0.0; n];
        let emit_u = unvoiced_log(t);
        let mut emit_v = vec![f64::NEG_INFINITY; n];
        for &(b, p) in observed {
            emit_v[b] = p.max(1e-300).ln();
        }
        for j in 0..n {
            // Into voiced j.
            let from_v = best_v[j] + log_stay;
            let from_u = best_u[j] + log_switch;
            let (score, src) = if from_v >= from_u {
                (from_v, arg_v[j] as u16)
            } else {
                (from_u, (n + arg_u[j]) as u16)
            };
            new_v[j] = if emit_v[j].is_finite() {
                (score + emit_v[j]).max(FLOOR)
            } else {
                FLOOR
            };
            ptr[j] = src;
            // Into unvoiced j.
            let from_v = best_v[j] + log_switch;
            let from_u = best_u[j] + log_stay;
            let (score, src) = if from_v > from_u {
                (from_v, arg_v[j] as u16)
            } else {
                (from_u, (n + arg_u[j]) as u16)
            };
            new_u[j] = score + emit_u;
            ptr[n + j] = src;
        }
        // Renormalise to keep magnitudes bounded.
        let m = new_v
            .iter()
            .chain(&new_u)
            .fold(f64::NEG_INFINITY, |a, &b| a.max(b));
        for v in new_v.iter_mut().chain(new_u.iter_mut()) {
            *v = (*v - m).max(FLOOR);
        }
        delta_v = new_v;
        delta_u = new_u;
    }
    let (mut state, mut best) = (0usize, f64::NEG_INFINITY);
    for (s, v) in delta_v.iter().chain(&delta_u).enumerate() {
        if *v > best {
            best = *v;
            state = s;
        }
    }
    let mut states = vec![0usize; frames];
    for t in (0..frames).rev() {
        states[t] = state;
        state = back[t * 2 * n + state] as usize;
    }
    states
}

/// Tracks longer than this many seconds (plus the overlaps) are decoded in windows, so the
/// Viterbi pass's memory stays bounded whatever the length.
const WINDOW_SECONDS: f64 = 30.0;
/// Seconds of context each window decodes on both sides of the frames it keeps: Viterbi paths
/// of different starts merge within a fraction of a second, so a window's kept frames are
/// those of one global pass (tested against it). Tracks of at most a window and twice this
/// are decoded in one pass.
const OVERLAP_SECONDS: f64 = 5.0;

/// Unvoiced runs take f0 interpolated in MIDI between the voiced frames around them (held at
/// the ends); with no voiced frame at all, the decoded path is kept as it is.
fn fill_unvoiced(f0: &[f64], voiced: &[bool], config: &PitchConfig) -> Vec<f64> {
    let idx: Vec<usize> = (0..f0.len()).filter(|&i| voiced[i]).collect();
    if idx.is_empty() {
        return f0
            .iter()
            .map(|v| v.clamp(config.min_f0, config.max_f0))
            .collect();
    }
    let midi = |hz: f64| 12.0 * (hz / 440.0).log2() + 69.0;
    let hz = |m: f64| 440.0 * 2f64.powf((m - 69.0) / 12.0);
    let mut out = f0.to_vec();
    for i in 0..f0.len() {
        if voiced[i] {
            continue;
        }
        let next = idx.partition_point(|&v| v < i);
        out[i] = match (next.checked_sub(1).map(|p| idx[p]), idx.get(next)) {
            (Some(a), Some(&b)) => {
                let t = (i - a) as f64 / (b - a) as f64;
                hz(midi(f0[a]) * (1.0 - t) + midi(f0[b]) * t)
            }
            (Some(a), None) => f0[a],
            (None, Some(&b)) => f0[b],
            (None, None) => unreachable!(),
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::track_pitch;

    #[test]
    fn fft_lengths_are_even_and_5_smooth() {
        assert_eq!(even_smooth_len(1536), 1536);
        assert_eq!(even_smooth_len(1537), 1600);
        assert_eq!(even_smooth_len(1), 2);
        assert_eq!(even_smooth_len(2 * 1009), 2048);
    }

    /// The run-by-run candidate scoring equals pYIN's threshold-by-threshold definition
    /// (written out here naively) on random difference functions, troughs at thresholds'
    /// edges included.
    #[test]
    fn candidate_scoring_equals_the_threshold_by_threshold_definition() {
        let beta = threshold_probs();
        let mut state = 12345u64;
        let mut rand = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        for case in 0..200 {
            let len = 60;
            let cmndf: Vec<f64> = (0..len)
                .map(|i| match case % 3 {
                    0 => 1.2 * rand(),
                    1 => (rand() * 100.0).floor() / 100.0, // exactly on thresholds
                    _ => 0.05 + 0.3 * ((i as f64) * 0.7).sin().abs() + 0.02 * rand(),
                })
                .collect();
            let (min_p, max_p) = (2, len - 2);
            let mut got = Vec::new();
            frame_candidates(
                &cmndf,
                min_p,
                max_p,
                &beta,
                0.01,
                16000.0,
                &mut CandidateScratch::default(),
                &mut got,
            );
            // The definition: per threshold, the troughs below share a Boltzmann pmf in
            // period order; with none below, the global minimum takes no_trough_prob.
            let troughs: Vec<usize> = (min_p..=max_p)
                .filter(|&t| {
                    let left = if t == min_p {
                        f64::INFINITY
                    } else {
                        cmndf[t - 1]
                    };
                    cmndf[t] < left && cmndf[t] <= cmndf[t + 1]
                })
                .collect();
            let mut probs = vec![0.0; troughs.len()];
            for (k, &bp) in beta.iter().enumerate() {
                let thr = (k + 1) as f64 / N_THRESHOLDS as f64;
                let below: Vec<usize> = (0..troughs.len())
                    .filter(|&i| cmndf[troughs[i]] < thr)
                    .collect();
                if below.is_empty() {
                    if let Some(g) = (0..troughs.len())
                        .min_by(|&a, &b| cmndf[troughs[a]].total_cmp(&cmndf[troughs[b]]))
                    {
                        probs[g] += 0.01 * bp;
                    }
                } else {
                    for (pos, &i) in below.iter().enumerate() {
                        probs[i] += boltzmann_pmf(pos, below.len()) * bp;
                    }
                }
            }
            let want: Vec<f64> = probs.into_iter().filter(|p| *p > 0.0).collect();
            assert_eq!(got.len(), want.len(), "case {case}");
            for (g, w) in got.iter().zip(&want) {
                assert!((g.prob - w).abs() < 1e-12, "case {case}: {} vs {w}", g.prob);
            }
        }
    }

    #[test]
    fn beta_cdf_matches_closed_form() {
        // Beta(2, b): I_x = 1 - (1-x)^(b+1) - (b+1) x (1-x)^b.
        for b in [8u32, 18] {
            for &x in &[0.0, 0.05, 0.1, 0.3, 1.0] {
                let n = (b + 1) as i32;
                let closed = 1.0 - (1.0f64 - x).powi(n) - n as f64 * x * (1.0f64 - x).powi(n - 1);
                assert!((beta_cdf(x, 2, b) - closed).abs() < 1e-12, "x = {x}");
            }
        }
        let p = threshold_probs();
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn boltzmann_pmf_sums_to_one() {
        for n in 1..6 {
            let s: f64 = (0..n).map(|k| boltzmann_pmf(k, n)).sum();
            assert!((s - 1.0).abs() < 1e-12);
        }
    }

    fn tone(f0: f64, n: usize, sr: f64) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let t = i as f64 / sr;
                (0.5 * (2.0 * std::f64::consts::PI * f0 * t).sin()
                    + 0.25 * (4.0 * std::f64::consts::PI * f0 * t).sin()
                    + 0.1 * (6.0 * std::f64::consts::PI * f0 * t).sin()) as f32
            })
            .collect()
    }

    #[test]
    fn tracks_steady_tones_within_a_few_cents() {
        let sr = 16000.0;
        for &f in &[65.4, 110.0, 329.6, 880.0, 1500.0] {
            let track = track_pitch(
                &tone(f, 16000, sr),
                &PitchConfig::new(sr, 256, 50.0, 2000.0),
            );
            let inner = &track.f0_hz[4..track.f0_hz.len() - 4];
            for v in inner {
                let cents = 1200.0 * (*v as f64 / f).log2();
                assert!(cents.abs() < 5.0, "{f} Hz tracked as {v} Hz");
            }
            assert!(
                track.voiced_prob[4..60].iter().all(|p| *p > 0.5),
                "{f} Hz voicing"
            );
        }
    }

    #[test]
    fn windowed_decoding_equals_one_pass_in_any_blocks() {
        let path = std::path::Path::new("data/demo/violin_fluidr3.wav");
        let audio = crate::features::audio::read_audio(path).unwrap().samples;
        let config = PitchConfig::new(16000.0, 64, 50.0, 1500.0);
        let run = |window: f64, block: usize| {
            let mut stream = crate::features::FeatureStream::pitch_only(&config);
            stream.set_window_seconds(window);
            for b in audio.chunks(block) {
                stream.push(b);
            }
            stream.finish()
        };
        let whole = run(f64::INFINITY, audio.len());
        // 2 s windows with 5 s of context on each side: 16 windows over 31 s, audio pushed in
        // blocks of 1000 samples.
        let windowed = run(2.0, 1000);
        assert_eq!(whole.voiced_prob, windowed.voiced_prob);
        let same = whole
            .f0_hz
            .iter()
            .zip(&windowed.f0_hz)
            .filter(|(a, b)| a == b)
            .count();
        assert_eq!(
            same,
            whole.f0_hz.len(),
            "windows changed {} frames",
            whole.f0_hz.len() - same
        );
        let tracked = track_pitch(&audio, &config);
        let streamed = run(WINDOW_SECONDS, 4096);
        assert_eq!(
            (tracked.f0_hz, tracked.voiced_prob),
            (streamed.f0_hz, streamed.voiced_prob)
        );
    }

    #[test]
    fn silence_and_noise_are_unvoiced_with_finite_f0() {
        let sr = 16000.0;
        let mut audio = vec![0.0f32; 8000];
        audio.extend(tone(440.0, 8000, sr));
        audio.extend(vec![0.0f32; 8000]);
        let track = track_pitch(&audio, &PitchConfig::new(sr, 256, 50.0, 1000.0));
        assert!(track.f0_hz.iter().all(|f| f.is_finite() && *f > 0.0));
        assert!(track.voiced_prob[..25].iter().all(|p| *p < 0.3));
        assert!(track.voiced_prob[70..].iter().all(|p| *p < 0.3));
        // Held f0 in the silent parts equals the neighbouring note.
        assert!((track.f0_hz[5] - 440.0).abs() < 3.0, "{}", track.f0_hz[5]);
        assert!((track.f0_hz[90] - 440.0).abs() < 3.0);
    }
}
