//! Core ops against references computed from the published formulas in `f64`, and gradients
//! against finite differences.

use super::*;
use crate::testing::{assert_close, check_gradient, convolve_naive, rand_vec};
use burn::tensor::Device;
use std::f64::consts::PI;

fn flex() -> Device {
    Device::flex()
}

#[test]
fn exp_sigmoid_matches_formula() {
    let xs = [-20.0f32, -5.0, -1.0, 0.0, 0.5, 3.0, 12.0];
    let out = to_vec(exp_sigmoid(from_vec(xs.to_vec(), [xs.len()], &flex())));
    let reference: Vec<f64> = xs
        .iter()
        .map(|&x| {
            let s = 1.0 / (1.0 + (-(x as f64)).exp());
            2.0 * s.powf(10f64.ln()) + 1e-7
        })
        .collect();
    assert_close(&out, &reference, 1e-5, "exp_sigmoid");
    // Saturates at max_value + threshold.
    assert!((out[6] - 2.0).abs() < 1e-4);
}

#[test]
fn midi_conversions_match_formula() {
    let hz = [0.0f32, 110.0, 261.6256, 440.0, 880.0, 1975.5];
    let midi = to_vec(hz_to_midi(from_vec(hz.to_vec(), [6], &flex())));
    let reference: Vec<f64> = hz
        .iter()
        .map(|&f| {
            if f <= 0.0 {
                0.0
            } else {
                69.0 + 12.0 * (f as f64 / 440.0).log2()
            }
        })
        .collect();
    assert_close(&midi, &reference, 1e-5, "hz_to_midi");
    assert!((midi[3] - 69.0).abs() < 1e-5 && (midi[4] - 81.0).abs() < 1e-4);
    let back = to_vec(midi_to_hz(from_vec(midi[1..].to_vec(), [5], &flex())));
    assert_close(
        &back,
        &[110.0, 261.6256, 440.0, 880.0, 1975.5],
        1e-5,
        "midi_to_hz",
    );
    assert!((midi_to_hz_f64(hz_to_midi_f64(523.25)) - 523.25).abs() < 1e-9);
    let scaled = to_vec(scale_f0(from_vec(vec![440.0], [1], &flex())));
    assert!((scaled[0] - 69.0 / 127.0).abs() < 1e-6);
    let ld = to_vec(scale_loudness(from_vec(
        vec![-80.0, -40.0, 0.0],
        [3],
        &flex(),
    )));
    assert_close(&ld, &[0.0, 0.5, 1.0], 1e-6, "scale_loudness");
}

#[test]
fn normalize_harmonics_masks_at_nyquist_and_sums_to_one() {
    // f0 1000 Hz at 16 kHz: harmonics 8 (= 8000 Hz, Nyquist) and above are removed.
    let k = 10;
    let dist = rand_vec(2 * k, 1, 0.1, 1.0);
    let f0 = vec![1000.0f32, 450.0];
    let out = to_vec(normalize_harmonics(
        from_vec(dist.clone(), [1, 2, k], &flex()),
        from_vec(f0.clone(), [1, 2], &flex()),
        16000.0,
    ));
    for frame in 0..2 {
        let keep: Vec<bool> = (1..=k).map(|h| (h as f32) * f0[frame] < 8000.0).collect();
        let total: f64 = (0..k)
            .filter(|&h| keep[h])
            .map(|h| dist[frame * k + h] as f64)
            .sum();
        let reference: Vec<f64> = (0..k)
            .map(|h| {
                if keep[h] {
                    dist[frame * k + h] as f64 / total
                } else {
                    0.0
                }
            })
            .collect();
        assert_close(
            &out[frame * k..(frame + 1) * k],
            &reference,
            1e-6,
            "normalize",
        );
    }
    assert_eq!(
        out[7], 0.0,
        "harmonic 8 of 1000 Hz sits at Nyquist and must be removed"
    );
}

#[test]
fn linear_upsampling_interpolates_between_frame_centres() {
    let x = from_vec(vec![0.0, 1.0, 3.0], [1, 3, 1], &flex());
    let out = to_vec(upsample(x, 4, AmpResample::Linear));
    let reference = [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 3.0, 3.0, 3.0];
    assert_close(&out, &reference, 1e-6, "linear upsample");
}

#[test]
fn window_upsampling_equals_overlap_added_hann_windows() {
    // DDSP upsample_with_windows: hold the last frame once more, place a periodic Hann window
    // of 2*hop on every frame, overlap-add with hop, trim hop on both sides.
    let (frames, hop) = (5, 8);
    let x = rand_vec(frames * 2, 3, -1.0, 1.0);
    let out = to_vec(upsample(
        from_vec(x.clone(), [1, frames, 2], &flex()),
        hop,
        AmpResample::Window,
    ));
    for ch in 0..2 {
        let mut held: Vec<f64> = (0..frames).map(|i| x[i * 2 + ch] as f64).collect();
        held.push(held[frames - 1]);
        let win: Vec<f64> = (0..2 * hop)
            .map(|m| 0.5 - 0.5 * (2.0 * PI * m as f64 / (2 * hop) as f64).cos())
            .collect();
        let mut ola = vec![0.0; (held.len() - 1) * hop + 2 * hop];
        for (i, v) in held.iter().enumerate() {
            for (m, w) in win.iter().enumerate() {
                ola[i * hop + m] += v * w;
            }
        }
        let reference = &ola[hop..hop + frames * hop];
        let got: Vec<f32> = (0..frames * hop).map(|n| out[n * 2 + ch]).collect();
        assert_close(&got, reference, 1e-5, "window upsample");
    }
}

#[test]
fn wrapped_cumsum_keeps_precision_over_minutes() {
    // Two minutes at 16 kHz of a ~1 kHz tone, in cycles per sample: the plain f32 cumsum would
    // reach 120000 cycles and lose ~0.01 cycles of precision.
    let n = 16000 * 120;
    let x = rand_vec(n, 5, 0.05, 0.07);
    let out = to_vec(wrapped_cumsum(from_vec(x.clone(), [1, n], &flex())));
    let mut acc = 0.0f64;
    let mut naive = 0.0f32;
    let (mut worst, mut worst_naive) = (0.0f64, 0.0f64);
    let wrap_dist = |a: f64, b: f64| {
        let d = (a - b).rem_euclid(1.0);
        d.min(1.0 - d)
    };
    for (i, v) in x.iter().enumerate() {
        acc += *v as f64;
        naive += *v;
        worst = worst.max(wrap_dist(out[i] as f64, acc));
        worst_naive = worst_naive.max(wrap_dist(naive as f64, acc));
    }
    // 1e-3 cycles is 0.006 rad of phase: inaudible. A plain f32 running sum is far off.
    assert!(worst < 1e-3, "wrapped cumsum drifted by {worst} cycles");
    assert!(
        worst_naive > 10.0 * worst,
        "naive {worst_naive} vs wrapped {worst}"
    );
    assert!(out.iter().all(|v| (0.0..1.0).contains(v)));
}

#[test]
fn oscillator_bank_matches_direct_sum_of_sines() {
    let (n, sr) = (2000, 16000.0);
    let freqs = [440.0f32, 1234.5, 9000.0]; // the last one is above Nyquist: silent
    let amps = [0.5f32, 0.25, 1.0];
    let f: Vec<f32> = (0..n).flat_map(|_| freqs).collect();
    let a: Vec<f32> = (0..n).flat_map(|_| amps).collect();
    let out = to_vec(oscillator_bank(
        from_vec(f, [1, n, 3], &flex()),
        from_vec(a, [1, n, 3], &flex()),
        sr,
    ));
    let reference: Vec<f64> = (0..n)
        .map(|i| {
            (0..2)
                .map(|k| amps[k] as f64 * (2.0 * PI * freqs[k] as f64 * (i + 1) as f64 / sr).sin())
                .sum()
        })
        .collect();
    assert_close(&out, &reference, 1e-4, "oscillator bank");
}

#[test]
fn harmonic_synthesis_equals_oscillator_bank_on_upsampled_envelopes() {
    let (b, frames, k, hop, sr) = (2, 12, 5, 32, 16000.0);
    let f0: Vec<f32> = rand_vec(b * frames, 7, 200.0, 2500.0);
    let amps = rand_vec(b * frames * k, 8, 0.0, 1.0);
    let device = flex();
    for method in [AmpResample::Linear, AmpResample::Window] {
        let f0_t = from_vec(f0.clone(), [b, frames], &device);
        let amps_t = from_vec(amps.clone(), [b, frames, k], &device);
        let fast = to_vec(harmonic_synthesis(
            f0_t.clone(),
            amps_t.clone(),
            hop,
            sr,
            method,
        ));
        let freq_env = upsample(f0_t.unsqueeze_dim::<3>(2), hop, AmpResample::Linear)
            * harmonic_numbers(k, &device);
        let amp_env = upsample(amps_t, hop, method);
        let general = to_vec(oscillator_bank(freq_env, amp_env, sr));
        let general: Vec<f64> = general.iter().map(|&v| v as f64).collect();
        assert_close(&fast, &general, 2e-4, "harmonic vs oscillator bank");
    }
}

fn magnitude_spectrum(x: &[f32]) -> Vec<f64> {
    let mut planner = realfft::RealFftPlanner::<f64>::new();
    let fft = planner.plan_fft_forward(x.len());
    let mut input: Vec<f64> = x
        .iter()
        .enumerate()
        .map(|(i, v)| {
            // 4-term Blackman-Harris: sidelobes below -92 dB, main lobe +-4 bins.
            let t = 2.0 * PI * i as f64 / x.len() as f64;
            let w =
                0.35875 - 0.48829 * t.cos() + 0.14128 * (2.0 * t).cos() - 0.01168 * (3.0 * t).cos();
            *v as f64 * w
        })
        .collect();
    let mut out = fft.make_output_vec();
    fft.process(&mut input, &mut out).unwrap();
    out.iter().map(|c| c.norm()).collect()
}

#[test]
fn pure_sine_peaks_at_its_frequency() {
    let (frames, hop, sr) = (250, 64, 16000.0);
    let n = frames * hop;
    let f0 = from_vec(vec![440.0; frames], [1, frames], &flex());
    let amps = from_vec(vec![0.5; frames], [1, frames, 1], &flex());
    let audio = to_vec(harmonic_synthesis(f0, amps, hop, sr, AmpResample::Linear));
    let spec = magnitude_spectrum(&audio);
    let peak = spec
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.partial_cmp(b.1).unwrap())
        .unwrap()
        .0;
    let bin_hz = sr / n as f64;
    assert!(
        (peak as f64 * bin_hz - 440.0).abs() <= bin_hz,
        "peak at {} Hz",
        peak as f64 * bin_hz
    );
}

#[test]
fn no_energy_from_harmonics_above_nyquist() {
    let (frames, hop, sr) = (128, 64, 16000.0);
    let n = frames * hop;
    let bin_hz = sr / n as f64;
    for &f0 in &[1234.5f64, 3000.0, 5100.0, 7900.0] {
        for &k in &[1usize, 7, 60] {
            let f0_t = from_vec(vec![f0 as f32; frames], [1, frames], &flex());
            let amps = from_vec(vec![1.0 / k as f32; frames * k], [1, frames, k], &flex());
            let audio = to_vec(harmonic_synthesis(f0_t, amps, hop, sr, AmpResample::Linear));
            let spec = magnitude_spectrum(&audio);
            let allowed: Vec<f64> = (1..=k)
                .map(|h| h as f64 * f0)
                .filter(|f| *f < sr / 2.0)
                .collect();
            let total: f64 = spec.iter().map(|m| m * m).sum();
            let stray: f64 = spec
                .iter()
                .enumerate()
                .filter(|(i, _)| {
                    let hz = *i as f64 * bin_hz;
                    allowed.iter().all(|a| (hz - a).abs() > 8.0 * bin_hz)
                })
                .map(|(_, m)| m * m)
                .sum();
            assert!(
                stray <= 1e-6 * total.max(1e-12),
                "f0 {f0} Hz, {k} harmonics: {:.3e} of the energy lies off the audible harmonics",
                stray / total
            );
        }
    }
}

/// Zero-phase IR by a direct inverse DFT of the Hermitian-extended magnitudes, then the Hann
/// window and causal shift, written independently of `fir_design_matrix`.
fn reference_fir(mags: &[f64], window: usize) -> Vec<f64> {
    let m = mags.len();
    let p = 2 * (m - 1);
    let full: Vec<f64> = (0..p)
        .map(|k| if k < m { mags[k] } else { mags[p - k] })
        .collect();
    let h0: Vec<f64> = (0..p)
        .map(|n| {
            (0..p)
                .map(|k| full[k] * (2.0 * PI * (k * n) as f64 / p as f64).cos())
                .sum::<f64>()
                / p as f64
        })
        .collect();
    let w = if window == 0 || window > p { p } else { window };
    let c = w / 2;
    (0..w)
        .map(|j| {
            let hann = 0.5 - 0.5 * (2.0 * PI * j as f64 / w as f64).cos();
            let idx = (j as isize - c as isize).rem_euclid(p as isize) as usize;
            hann * h0[idx]
        })
        .collect()
}

#[test]
fn frequency_impulse_response_matches_inverse_dft() {
    for &(m, window) in &[(9usize, 0usize), (15, 0), (65, 0), (65, 33)] {
        let mags = rand_vec(m * 2, m as u64, 0.0, 1.0);
        let out = to_vec(frequency_impulse_response(
            from_vec(mags.clone(), [1, 2, m], &flex()),
            window,
        ));
        let w = fir_window_size(m, window);
        for frame in 0..2 {
            let mf: Vec<f64> = mags[frame * m..(frame + 1) * m]
                .iter()
                .map(|&v| v as f64)
                .collect();
            let reference = reference_fir(&mf, window);
            assert_close(
                &out[frame * w..(frame + 1) * w],
                &reference,
                1e-5,
                "fir design",
            );
        }
    }
}

#[test]
fn frequency_impulse_response_agrees_with_burn_irfft() {
    // For a power-of-two period the zero-phase response is burn's irfft, rolled to the centre.
    let m = 33; // period 64
    let mags = rand_vec(m, 11, 0.0, 1.0);
    let device = flex();
    let t = from_vec(mags.clone(), [1, m], &device);
    let h0 = to_vec(burn::signal::irfft(t.clone(), t.zeros_like(), 1, None));
    let ours = to_vec(frequency_impulse_response(t.reshape([1, 1, m]), 0));
    let p = 64;
    for j in 0..p {
        let hann = 0.5 - 0.5 * (2.0 * PI * j as f64 / p as f64).cos();
        let expected = hann * h0[(j + p - p / 2) % p] as f64;
        assert!((ours[j] as f64 - expected).abs() < 1e-5, "tap {j}");
    }
}

#[test]
fn frame_convolve_matches_direct_convolution() {
    let (b, f, hop, l) = (2, 6, 16, 11);
    let audio = rand_vec(b * f * hop, 21, -1.0, 1.0);
    let irs = rand_vec(b * f * l, 22, -1.0, 1.0);
    let delay = 5;
    let out = to_vec(frame_convolve(
        from_vec(audio.clone(), [b, f * hop], &flex()),
        from_vec(irs.clone(), [b, f, l], &flex()),
        delay,
    ));
    let n = f * hop;
    for bi in 0..b {
        let mut full = vec![0.0f64; n + l - 1];
        for fi in 0..f {
            let x: Vec<f64> = (0..hop)
                .map(|i| audio[bi * n + fi * hop + i] as f64)
                .collect();
            let h: Vec<f64> = (0..l).map(|i| irs[(bi * f + fi) * l + i] as f64).collect();
            for (i, v) in convolve_naive(&x, &h).into_iter().enumerate() {
                full[fi * hop + i] += v;
            }
        }
        assert_close(
            &out[bi * n..(bi + 1) * n],
            &full[delay..delay + n],
            1e-5,
            "frame convolve",
        );
    }
}

#[test]
fn fft_convolve_matches_direct_convolution() {
    let (b, n, l) = (2, 300, 77);
    let audio = rand_vec(b * n, 31, -1.0, 1.0);
    let ir = rand_vec(l, 32, -1.0, 1.0);
    let out = to_vec(fft_convolve(
        from_vec(audio.clone(), [b, n], &flex()),
        from_vec(ir.clone(), [1, l], &flex()),
        0,
    ));
    let h: Vec<f64> = ir.iter().map(|&v| v as f64).collect();
    for bi in 0..b {
        let x: Vec<f64> = audio[bi * n..(bi + 1) * n]
            .iter()
            .map(|&v| v as f64)
            .collect();
        let full = convolve_naive(&x, &h);
        assert_close(&out[bi * n..(bi + 1) * n], &full[..n], 1e-5, "fft convolve");
    }
}

#[test]
fn flat_response_filter_is_identity() {
    let (f, hop, m) = (10, 64, 65);
    let audio = rand_vec(f * hop, 41, -1.0, 1.0);
    let irs = frequency_impulse_response(from_vec(vec![1.0; f * m], [1, f, m], &flex()), 0);
    let out = to_vec(frame_convolve(
        from_vec(audio.clone(), [1, f * hop], &flex()),
        irs,
        fir_window_size(m, 0) / 2,
    ));
    let reference: Vec<f64> = audio.iter().map(|&v| v as f64).collect();
    assert_close(&out, &reference, 1e-5, "flat filter");
}

#[test]
fn overlap_add_matches_manual_sum() {
    let (f, l, hop) = (4, 7, 3);
    let frames = rand_vec(f * l, 51, -1.0, 1.0);
    let out = to_vec(overlap_add(
        from_vec(frames.clone(), [1, f, l], &flex()),
        hop,
    ));
    let mut reference = vec![0.0f64; (f - 1) * hop + l];
    for i in 0..f {
        for j in 0..l {
            reference[i * hop + j] += frames[i * l + j] as f64;
        }
    }
    assert_close(&out, &reference, 1e-6, "overlap-add");
}

#[test]
fn gradients_of_exp_sigmoid_and_normalize_match_finite_differences() {
    let x0 = rand_vec(12, 61, -3.0, 3.0);
    let w = rand_vec(12, 62, -1.0, 1.0);
    check_gradient(
        |x: Tensor<3>| {
            let device = x.device();
            let f0 = from_vec(vec![700.0, 2100.0], [1, 2], &device);
            let y = normalize_harmonics(exp_sigmoid(x), f0, 16000.0);
            (y * from_vec(w.clone(), [1, 2, 6], &device))
                .sum()
                .reshape([1])
        },
        &x0,
        [1, 2, 6],
        &(0..12).collect::<Vec<_>>(),
        1e-2,
        2e-2,
    );
}

#[test]
fn gradients_of_harmonic_synthesis_match_finite_differences() {
    let (frames, k, hop) = (4, 3, 16);
    let weights = rand_vec(frames * hop, 71, -1.0, 1.0);
    let amps0 = rand_vec(frames * k, 72, 0.1, 1.0);
    let loss = |audio: Tensor<2>| {
        let device = audio.device();
        (audio * from_vec(weights.clone(), [1, frames * hop], &device))
            .sum()
            .reshape([1])
    };
    // With respect to amplitudes (linear, so differences are exact up to f32 rounding).
    check_gradient(
        |a: Tensor<3>| {
            let f0 = from_vec(vec![300.0, 320.0, 310.0, 305.0], [1, frames], &a.device());
            loss(harmonic_synthesis(f0, a, hop, 16000.0, AmpResample::Window))
        },
        &amps0,
        [1, frames, k],
        &(0..frames * k).collect::<Vec<_>>(),
        1e-2,
        1e-2,
    );
    // With respect to f0 (through the phase accumulation).
    check_gradient(
        |f0: Tensor<2>| {
            let a = from_vec(amps0.clone(), [1, frames, k], &f0.device());
            loss(harmonic_synthesis(f0, a, hop, 16000.0, AmpResample::Linear))
        },
        &[300.0, 320.0, 310.0, 305.0],
        [1, frames],
        &[0, 1, 2, 3],
        5e-2,
        2e-2,
    );
}

#[test]
fn gradients_of_filtering_match_finite_differences() {
    let (f, hop, m) = (3, 16, 9);
    let audio = rand_vec(f * hop, 81, -1.0, 1.0);
    let weights = rand_vec(f * hop, 82, -1.0, 1.0);
    check_gradient(
        |mags: Tensor<3>| {
            let device = mags.device();
            let irs = frequency_impulse_response(mags, 0);
            let y = frame_convolve(from_vec(audio.clone(), [1, f * hop], &device), irs, 8);
            (y * from_vec(weights.clone(), [1, f * hop], &device))
                .sum()
                .reshape([1])
        },
        &rand_vec(f * m, 83, 0.0, 1.0),
        [1, f, m],
        &(0..f * m).step_by(2).collect::<Vec<_>>(),
        1e-2,
        1e-2,
    );
}

#[test]
fn blocked_harmonic_synthesis_equals_one_block() {
    let (b, frames, k, hop) = (3, 50, 24, 32);
    let f0 = rand_vec(b * frames, 91, 80.0, 900.0);
    let amps = rand_vec(b * frames * k, 92, 0.0, 0.1);
    let device = flex();
    let run = |max_bytes: usize| {
        to_vec(
            harmonic_synthesis_blocked(
                from_vec(f0.clone(), [b, frames], &device),
                from_vec(amps.clone(), [b, frames, k], &device),
                hop,
                16000.0,
                AmpResample::Window,
                None,
                Bank::Composed(max_bytes),
            )
            .0,
        )
    };
    let whole = run(usize::MAX);
    // 7 frames per block (not a divisor of 50) and one frame per block.
    for bytes in [7 * b * hop * k * 4, 1] {
        let blocked = run(bytes);
        assert_eq!(blocked.len(), whole.len());
        for (i, (x, y)) in blocked.iter().zip(&whole).enumerate() {
            assert!(
                (x - y).abs() < 1e-6,
                "sample {i}: {x} vs {y} (block {bytes} bytes)"
            );
        }
    }
}

/// Frame phases against the closed form accumulated in f64: the phase advance of frame `i` is
/// `(hop f_i + (f_{i+1} - f_i) (hop - 1) / 2) / sr` cycles.
#[test]
fn frame_phases_are_exact_sums_of_frame_advances() {
    let (hop, sr) = (64, 16000.0);
    // 5 minutes of frames at 250 Hz, f0 sweeping 50..2000 Hz: partial sums far beyond i32.
    let f = 75_000;
    let f0: Vec<f32> = (0..=f)
        .map(|i| 50.0 + 1950.0 * (0.5 + 0.5 * (i as f32 * 0.001).sin()))
        .collect();
    let device = flex();
    let (starts, end) = frame_phases(from_vec(f0.clone(), [1, f + 1], &device), hop, sr, None);
    let starts: Vec<i64> = starts
        .into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .unwrap();
    let end: Vec<i64> = end
        .into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .unwrap();
    let one = (1i64 << PHASE_BITS) as f64;
    let mut cycles = 0f64;
    let mut worst = 0f64;
    for i in 0..f {
        let got = starts[i] as f64 / one;
        let d = (got - cycles.rem_euclid(1.0)).abs();
        worst = worst.max(d.min(1.0 - d));
        let (a, b) = (f0[i] as f64, f0[i + 1] as f64);
        cycles += (hop as f64 * a + (b - a) * (hop as f64 - 1.0) / 2.0) / sr;
    }
    // Each advance is rounded to 2^-24 cycles (and computed in f32): the error stays a
    // random walk far below an audible phase error.
    assert!(worst < 1e-3, "largest phase error {worst} cycles");
    let d = (end[0] as f64 / one - cycles.rem_euclid(1.0)).abs();
    assert!(d.min(1.0 - d) < 1e-3);
    // In pieces, carrying the end phase: identical integers.
    let mut phase = None;
    let mut pieced = Vec::new();
    for (a, b) in [(0, 1), (1, 700), (700, 701), (701, 30_000), (30_000, f)] {
        let piece = from_vec(f0[a..=b].to_vec(), [1, b - a + 1], &device);
        let (s, e) = frame_phases(piece, hop, sr, phase);
        pieced.extend(s.into_data().convert::<i64>().try_to_vec::<i64>().unwrap());
        phase = Some(e);
    }
    assert_eq!(pieced, starts);
    let last: Vec<i64> = phase
        .unwrap()
        .into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .unwrap();
    assert_eq!(last, end);
}

#[test]
fn harmonic_synthesis_in_pieces_equals_one_call() {
    let (b, frames, k, hop, sr) = (2, 61, 16, 32, 16000.0);
    let f0 = rand_vec(b * frames, 95, 80.0, 1200.0);
    let amps = rand_vec(b * frames * k, 96, 0.0, 0.1);
    let device = flex();
    for method in [AmpResample::Linear, AmpResample::Window] {
        let whole = to_vec(harmonic_synthesis(
            from_vec(f0.clone(), [b, frames], &device),
            from_vec(amps.clone(), [b, frames, k], &device),
            hop,
            sr,
            method,
        ));
        // Frames [a, c) with frame c (or the held last frame) as the one after.
        let frame_rows = |a: usize, c: usize| {
            let mut fv = Vec::new();
            let mut av = Vec::new();
            for row in 0..b {
                for i in a..=c {
                    let i = i.min(frames - 1);
                    fv.push(f0[row * frames + i]);
                    av.extend_from_slice(&amps[(row * frames + i) * k..(row * frames + i + 1) * k]);
                }
            }
            (
                from_vec(fv, [b, c - a + 1], &device),
                from_vec(av, [b, c - a + 1, k], &device),
            )
        };
        let mut phase = None;
        let mut pieces = vec![Vec::new(); b];
        for (a, c) in [(0, 1), (1, 17), (17, 18), (18, frames)] {
            let (fv, av) = frame_rows(a, c);
            let (audio, end) = harmonic_synthesis_from(fv, av, hop, sr, method, phase);
            phase = Some(end);
            let audio = to_vec(audio);
            let n = (c - a) * hop;
            for (row, out) in pieces.iter_mut().enumerate() {
                out.extend_from_slice(&audio[row * n..(row + 1) * n]);
            }
        }
        let pieced: Vec<f32> = pieces.concat();
        assert_eq!(pieced.len(), whole.len());
        let worst = pieced
            .iter()
            .zip(&whole)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-6, "{method:?}: pieces differ by {worst}");
    }
}

#[test]
fn counter_noise_is_uniform_and_the_same_in_pieces() {
    let device = flex();
    let whole = to_vec(uniform_noise(3, 10_000, 7, 0, &device));
    let mut pieced = vec![Vec::new(); 3];
    for (offset, len) in [(0, 1), (1, 4095), (4096, 5904)] {
        let piece = to_vec(uniform_noise(3, len, 7, offset as u64, &device));
        for (row, out) in pieced.iter_mut().enumerate() {
            out.extend_from_slice(&piece[row * len..(row + 1) * len]);
        }
    }
    assert_eq!(pieced.concat(), whole);
    assert!(whole.iter().all(|v| (-1.0..1.0).contains(v)));
    let mean = whole.iter().map(|&v| v as f64).sum::<f64>() / whole.len() as f64;
    let var = whole
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / whole.len() as f64;
    assert!(
        mean.abs() < 0.01 && (var - 1.0 / 3.0).abs() < 0.01,
        "mean {mean} var {var}"
    );
    // Rows are different streams; another seed is another stream.
    assert_ne!(whole[..100], whole[10_000..10_100]);
    assert_ne!(to_vec(uniform_noise(1, 100, 8, 0, &device)), whole[..100]);
}

#[test]
fn full_convolutions_are_the_cropped_ones_uncropped() {
    let device = flex();
    let audio = rand_vec(2 * 96, 97, -1.0, 1.0);
    let irs = rand_vec(2 * 6 * 10, 98, -1.0, 1.0);
    let full = to_vec(frame_convolve_full(
        from_vec(audio.clone(), [2, 96], &device),
        from_vec(irs.clone(), [2, 6, 10], &device),
    ));
    let cropped = to_vec(frame_convolve(
        from_vec(audio.clone(), [2, 96], &device),
        from_vec(irs, [2, 6, 10], &device),
        5,
    ));
    for row in 0..2 {
        assert_eq!(
            full[row * 105 + 5..row * 105 + 101],
            cropped[row * 96..(row + 1) * 96]
        );
    }
    let ir = rand_vec(20, 99, -1.0, 1.0);
    let full = to_vec(fft_convolve_full(
        from_vec(audio.clone(), [2, 96], &device),
        from_vec(ir.clone(), [1, 20], &device),
    ));
    for row in 0..2 {
        let x = &audio[row * 96..(row + 1) * 96];
        for n in 0..115 {
            let expected: f32 = (0..20)
                .filter(|&j| n >= j && n - j < 96)
                .map(|j| ir[j] * x[n - j])
                .sum();
            assert!((full[row * 115 + n] - expected).abs() < 1e-4, "sample {n}");
        }
    }
}

#[test]
fn causal_smoothing_continues_across_pieces() {
    let device = flex();
    let x = rand_vec(2 * 30 * 3, 100, 0.0, 1.0);
    let kernel = onepole_kernel(0.7);
    let whole = to_vec(causal_smooth(
        from_vec(x.clone(), [2, 30, 3], &device),
        &kernel,
    ));
    let t = from_vec(x, [2, 30, 3], &device);
    let l = kernel.len();
    let mut history: Option<Tensor<3>> = None;
    let mut pieces = Vec::new();
    for (a, c) in [(0, 4), (4, 5), (5, 30)] {
        let piece = t.clone().slice([0..2, a..c, 0..3]);
        let before = history
            .clone()
            .unwrap_or_else(|| t.clone().slice([0..2, 0..1, 0..3]).repeat_dim(1, l - 1));
        pieces.push(causal_smooth_from(
            piece.clone(),
            &kernel,
            Some(before.clone()),
        ));
        let all = Tensor::cat(vec![before, piece], 1);
        let n = all.dims()[1];
        history = Some(all.slice([0..2, n - (l - 1)..n, 0..3]));
    }
    let pieced = to_vec(Tensor::cat(pieces, 1));
    for (i, (p, w)) in pieced.iter().zip(&whole).enumerate() {
        assert!((p - w).abs() < 1e-6, "element {i}: {p} vs {w}");
    }
}

/// The fused bank (flex) against the same maths from tensor ops: audio, end phase and the
/// gradients of f0, amplitudes and the starting phase, with harmonics crossing Nyquist, a hop
/// that is not a multiple of the kernel's eight lanes, f0 at 0 and both crossfades.
#[test]
fn fused_oscillator_bank_equals_composed_ops_forward_and_gradients() {
    let device = crate::testing::flex_ad();
    // The fused operation is what flex runs, with and without autodiff.
    for d in [device.clone(), flex()] {
        let z2 = || Tensor::<2>::zeros([1, 2], &d);
        let bank = oscillator::bank(
            z2(),
            z2(),
            z2(),
            Tensor::zeros([1, 3, 4], &d),
            8,
            16e3,
            AmpResample::Linear,
        );
        assert!(bank.is_some());
    }
    for (b, frames, k, hop, method) in [
        (2, 9, 60, 20, AmpResample::Window),
        (3, 40, 12, 64, AmpResample::Linear),
    ] {
        let sr = 16000.0;
        let mut f0 = rand_vec(b * frames, 101, 60.0, 2500.0);
        f0[3] = 0.0;
        let amps = rand_vec(b * frames * k, 102, 0.0, 0.2);
        let phase0: Vec<i64> = (0..b as i64).map(|i| i * 5_000_000 + 12_345).collect();
        let w = rand_vec(b * frames * hop, 103, -1.0, 1.0);
        let run = |bank: Bank| {
            let f0 = from_vec(f0.clone(), [b, frames], &device).require_grad();
            let a = from_vec(amps.clone(), [b, frames, k], &device).require_grad();
            let f0_held =
                hold_last_frame(f0.clone().reshape([b, frames, 1])).reshape([b, frames + 1]);
            let p0 = Tensor::<2, Int>::from_data(TensorData::new(phase0.clone(), [b, 1]), &device);
            let (audio, end) = harmonic_synthesis_blocked(
                f0_held,
                hold_last_frame(a.clone()),
                hop,
                sr,
                method,
                Some(p0),
                bank,
            );
            let loss = (audio.clone() * from_vec(w.clone(), [b, frames * hop], &device)).sum();
            let grads = loss.backward();
            let end: Vec<f32> = end.into_data().iter::<i64>().map(|v| v as f32).collect();
            vec![
                ("audio", to_vec(audio)),
                ("end phase", end),
                ("d f0", to_vec(f0.grad(&grads).unwrap())),
                ("d amplitudes", to_vec(a.grad(&grads).unwrap())),
            ]
        };
        for ((what, fused), (_, composed)) in run(Bank::Fused)
            .into_iter()
            .zip(run(Bank::Composed(MAX_BLOCK_BYTES)))
        {
            let reference: Vec<f64> = composed.iter().map(|&v| v as f64).collect();
            let scale = reference.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            assert!(scale > 0.0, "{what} is all zeros");
            // Relative to the largest value (assert_close scales by it, floored at 1).
            let tol = 2e-4 * scale.min(1.0);
            crate::testing::assert_close(
                &fused,
                &reference,
                tol,
                &format!("{what}, k {k}, hop {hop}"),
            );
        }
    }
}

/// The host kernel rendering a frame in pieces (the streaming engine's use) equals the frame
/// rendered whole, and both equal the formula evaluated per harmonic in `f64`.
#[test]
fn oscillator_frame_in_pieces_equals_whole_and_formula() {
    let (hop, k, sr) = (50, 30, 16000.0);
    let osc = oscillator::Oscillator::new(hop, sr, AmpResample::Window);
    let amplitudes = rand_vec(k, 111, 0.0, 0.3);
    let next = rand_vec(k, 112, 0.0, 0.3);
    let frame = oscillator::Frame {
        start: 0.37,
        f0: 310.0,
        slope: 95.0,
        amplitudes: &amplitudes,
        next: &next,
    };
    let mut whole = vec![0.0f32; hop];
    osc.render(&frame, 0..hop, &mut whole);
    let mut pieces = vec![0.0f32; hop];
    for (a, b) in [(0, 3), (3, 17), (17, 18), (18, 50)] {
        osc.render(&frame, a..b, &mut pieces[a..b]);
    }
    assert_eq!(whole, pieces);
    let weights = upsample_weights(hop, AmpResample::Window);
    let reference: Vec<f64> = (0..hop)
        .map(|r| {
            let rf = r as f64;
            let (f0, slope) = (310.0, 95.0);
            let phase =
                0.37 + ((rf + 1.0) * f0 + rf * (rf + 1.0) / (2.0 * hop as f64) * slope) / sr;
            let freq = f0 + slope * rf / hop as f64;
            (0..k)
                .filter(|h| (h + 1) as f64 * freq < sr / 2.0)
                .map(|h| {
                    let amp = amplitudes[h] as f64 * (1.0 - weights[r] as f64)
                        + next[h] as f64 * weights[r] as f64;
                    amp * (2.0 * PI * (h + 1) as f64 * phase).sin()
                })
                .sum()
        })
        .collect();
    assert_close(&whole, &reference, 1e-5, "oscillator frame");
}

/// The partitioned convolver, fed pieces of every size, equals direct convolution in `f64`:
/// impulse responses shorter than a partition, a whole number of partitions and a ragged
/// one, one to three stages of growing partitions; after `reset` it starts from silence.
#[test]
fn partitioned_convolver_equals_direct_convolution() {
    let x = rand_vec(3000, 161, -1.0, 1.0);
    for (len, p) in [
        (40, 64),
        (512, 64),
        (1000, 64),
        (777, 128),
        (5, 1),
        (5000, 16),
    ] {
        let ir = rand_vec(len, 162, -0.5, 0.5);
        let xs: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let hs: Vec<f64> = ir.iter().map(|&v| v as f64).collect();
        let reference = &convolve_naive(&xs, &hs)[..x.len()];
        let mut conv = convolver::Convolver::new(&ir, p);
        for round in 0..2 {
            let mut out = vec![0.0f32; x.len()];
            let mut at = 0;
            for (i, piece) in [1, 63, 64, 200, 7, 1000].iter().cycle().enumerate() {
                if at == x.len() || i > 1000 {
                    break;
                }
                let end = (at + piece).min(x.len());
                conv.process(&x[at..end], &mut out[at..end]);
                at = end;
            }
            assert_close(
                &out,
                reference,
                1e-5,
                &format!("ir {len}, partition {p}, round {round}"),
            );
            conv.reset();
        }
    }
}

/// The packed-panel kernel (SIMD where the CPU has it, and the scalar kernel) equals a naive
/// triple loop, `y += x W` from a non-zero `y`, for awkward shapes: 1 to 5 rows (a tile of
/// four plus a remainder), widths around the 16-column panel (partial panels, and four full
/// panels for a single row), `k` 1, 3 and 513, and `x` rows strided wider than `k`.
#[test]
fn packed_matmul_matches_naive_product() {
    use super::host::{Packed, matmul_packed, matmul_packed_scalar};
    for m in 1..=5 {
        for n in [1, 7, 16, 17, 40, 64, 65, 80, 100] {
            for k in [1, 3, 513] {
                let x_rs = k + 2;
                let seed = (m * 10_000 + n * 10 + k) as u64;
                let x = rand_vec((m - 1) * x_rs + k, seed, -1.0, 1.0);
                let w = rand_vec(k * n, seed + 1, -1.0, 1.0);
                let y0 = rand_vec(m * n, seed + 2, -1.0, 1.0);
                let mut reference = vec![0.0f64; m * n];
                for i in 0..m {
                    for j in 0..n {
                        let dot: f64 = (0..k)
                            .map(|t| x[i * x_rs + t] as f64 * w[t * n + j] as f64)
                            .sum();
                        reference[i * n + j] = y0[i * n + j] as f64 + dot;
                    }
                }
                let packed = Packed::new(&w, k, n);
                // A trailing value past the `m x n` outputs stays untouched.
                let mut y = [y0.as_slice(), &[7.0]].concat();
                matmul_packed(&mut y, &x, x_rs, &packed, m);
                let what = format!("m {m} n {n} k {k}");
                assert_close(&y[..m * n], &reference, 1e-5, &what);
                assert_eq!(y[m * n], 7.0, "{what}: wrote past the outputs");
                let mut y = y0.clone();
                matmul_packed_scalar(&mut y, &x, x_rs, &packed, m);
                assert_close(&y, &reference, 1e-5, &format!("{what} (scalar)"));

                // In half precision: the product of the weights rounded to f16.
                let half = packed.to_f16().expect("weights within f16's range");
                assert!(half.is_f16() && !packed.is_f16());
                let mut reference = vec![0.0f64; m * n];
                for i in 0..m {
                    for j in 0..n {
                        let dot: f64 = (0..k)
                            .map(|t| {
                                let wh = half::f16::from_f32(w[t * n + j]).to_f64();
                                x[i * x_rs + t] as f64 * wh
                            })
                            .sum();
                        reference[i * n + j] = y0[i * n + j] as f64 + dot;
                    }
                }
                let mut y = y0.clone();
                matmul_packed(&mut y, &x, x_rs, &half, m);
                assert_close(&y, &reference, 1e-5, &format!("{what} (f16)"));
                let mut y = y0.clone();
                matmul_packed_scalar(&mut y, &x, x_rs, &half, m);
                assert_close(&y, &reference, 1e-5, &format!("{what} (f16, scalar)"));
            }
        }
    }
}

/// Half-precision packing rounds to the nearest f16 (ties to even) and refuses weights it
/// cannot hold: beyond 65504 in magnitude (above the rounding midpoint to infinity), or not
/// finite.
#[test]
fn packed_f16_rounds_to_nearest_and_refuses_what_it_cannot_hold() {
    use super::host::{Packed, matmul_packed};
    // f16 has 10 fraction bits: spacing 2^-10 in [1, 2). 1 + 2^-11 is a tie (to even: 1),
    // 1 + 3 * 2^-11 is a tie to 1 + 2^-9 (even), 1 + 2^-11 + 2^-20 rounds up.
    let cases: [(f32, f32); 5] = [
        (1.0 + 2f32.powi(-11), 1.0),
        (1.0 + 3.0 * 2f32.powi(-11), 1.0 + 2f32.powi(-9)),
        (1.0 + 2f32.powi(-11) + 2f32.powi(-20), 1.0 + 2f32.powi(-10)),
        (65504.0, 65504.0),
        (-3.0e-8, -2f32.powi(-24)),
    ];
    for (w, rounded) in cases {
        let packed = Packed::new(&[w], 1, 1).to_f16().expect("in range");
        let mut y = [0.0f32];
        matmul_packed(&mut y, &[1.0], 1, &packed, 1);
        assert_eq!(y[0], rounded, "{w}");
    }
    for w in [65520.0, -1.0e5, f32::NAN, f32::INFINITY] {
        assert!(Packed::new(&[0.5, w], 1, 2).to_f16().is_none(), "{w}");
    }
}

/// The host dot product (eight partial sums, and the AVX2 kernel where the CPU has it)
/// equals the sum in `f64`, for lengths around its chunks, over the shorter operand.
#[test]
fn dot_products_match_the_sum() {
    for n in [0, 1, 7, 8, 9, 31, 32, 33, 64, 100, 128, 129] {
        let a = rand_vec(n, 300 + n as u64, -1.0, 1.0);
        let b = rand_vec(n + 3, 400 + n as u64, -1.0, 1.0);
        let exact: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
        let tol = 1e-6 * (n.max(1) as f64);
        let scalar = super::host::dot(&a, &b);
        assert!(
            (scalar as f64 - exact).abs() <= tol,
            "n {n}: {scalar} vs {exact}"
        );
        #[cfg(target_arch = "x86_64")]
        if super::host::avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA (checked above).
            let simd = unsafe { super::host::dot_avx2(&b, &a) };
            assert!(
                (simd as f64 - exact).abs() <= tol,
                "n {n}: AVX2 {simd} vs {exact}"
            );
        }
    }
}

/// The biquad smoothing kernel has the frequency response of the RBJ cookbook's low-pass
/// transfer function `H(z) = (b0 + b1 z^-1 + b2 z^-2) / (a0 + a1 z^-1 + a2 z^-2)`, evaluated
/// here from the published coefficients (not by running the recursion): 1 at DC, -3 dB at the
/// cutoff for Q = 1/sqrt(2), and the cookbook's gain at other frequencies and Q, within the
/// truncation of the tail (1e-3 of the peak).
#[test]
fn biquad_kernel_has_the_cookbook_lowpass_response() {
    use std::f64::consts::{FRAC_1_SQRT_2, TAU};
    let gain = |h: &[f32], f: f64| {
        let (re, im) = h.iter().enumerate().fold((0.0, 0.0), |(re, im), (k, &v)| {
            let w = TAU * f * k as f64;
            (re + v as f64 * w.cos(), im - v as f64 * w.sin())
        });
        (re * re + im * im).sqrt()
    };
    for (cutoff, q) in [(0.08, FRAC_1_SQRT_2), (0.02, FRAC_1_SQRT_2), (0.15, 2.0)] {
        let h = super::biquad_lowpass_kernel(cutoff, q);
        assert!(h.len() > 3 && h.len() <= 512, "{} taps", h.len());
        let w0 = TAU * cutoff;
        let alpha = w0.sin() / (2.0 * q);
        let (b0, b1, b2) = (
            (1.0 - w0.cos()) / 2.0,
            1.0 - w0.cos(),
            (1.0 - w0.cos()) / 2.0,
        );
        let (a0, a1, a2) = (1.0 + alpha, -2.0 * w0.cos(), 1.0 - alpha);
        let cookbook = |f: f64| {
            let z = |c: [f64; 3]| {
                let w = TAU * f;
                let re = c[0] + c[1] * w.cos() + c[2] * (2.0 * w).cos();
                let im = -c[1] * w.sin() - c[2] * (2.0 * w).sin();
                (re * re + im * im).sqrt()
            };
            z([b0, b1, b2]) / z([a0, a1, a2])
        };
        for f in [0.0, cutoff / 2.0, cutoff, 2.0 * cutoff, 0.45] {
            let (got, want) = (gain(&h, f), cookbook(f));
            assert!(
                (got - want).abs() < 5e-3,
                "cutoff {cutoff}, q {q}, f {f}: {got} vs {want}"
            );
        }
        assert!((gain(&h, 0.0) - 1.0).abs() < 1e-6);
        if q == FRAC_1_SQRT_2 {
            assert!((gain(&h, cutoff) - FRAC_1_SQRT_2).abs() < 5e-3);
        }
    }
}
