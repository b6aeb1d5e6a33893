use super::*;
use crate::config::SpectralLossMode;
use crate::dsp::{from_vec, to_vec};
use crate::testing::{check_gradient, rand_vec, wgpu_or_skip};
use burn::tensor::Device;
use std::f64::consts::PI;

/// Magnitude spectrogram straight from the DFT definition: frames start at `i * hop`,
/// `ceil(N / hop)` of them, zero-padded past the end, periodic Hann window.
fn naive_spectrogram(x: &[f32], n_fft: usize, hop: usize) -> Vec<Vec<f64>> {
    let frames = x.len().div_ceil(hop);
    (0..frames)
        .map(|f| {
            (0..=n_fft / 2)
                .map(|k| {
                    let (mut re, mut im) = (0.0, 0.0);
                    for j in 0..n_fft {
                        let v = x.get(f * hop + j).copied().unwrap_or(0.0) as f64;
                        let w = 0.5 - 0.5 * (2.0 * PI * j as f64 / n_fft as f64).cos();
                        let a = -2.0 * PI * (k * j) as f64 / n_fft as f64;
                        re += v * w * a.cos();
                        im += v * w * a.sin();
                    }
                    (re * re + im * im).sqrt()
                })
                .collect()
        })
        .collect()
}

fn naive_loss(p: &[f32], t: &[f32], sizes: &[usize], l1: bool, eps: f64) -> (f64, f64) {
    let (mut mag, mut logmag) = (0.0, 0.0);
    for &n in sizes {
        let (a, b) = (
            naive_spectrogram(p, n, n / 4),
            naive_spectrogram(t, n, n / 4),
        );
        let count = (a.len() * a[0].len()) as f64;
        let d = |x: f64| if l1 { x.abs() } else { x * x };
        let (mut m, mut l) = (0.0, 0.0);
        for (ra, rb) in a.iter().zip(&b) {
            for (x, y) in ra.iter().zip(rb) {
                m += d(x - y);
                l += d((x + eps).ln() - (y + eps).ln());
            }
        }
        mag += m / count;
        logmag += l / count;
    }
    (mag, logmag)
}

#[test]
fn spectral_loss_matches_dft_definition() {
    let device = Device::flex();
    let (p, t) = (rand_vec(100, 1, -1.0, 1.0), rand_vec(100, 2, -1.0, 1.0));
    let sizes = vec![32, 16, 8];
    for (mode, l1) in [(SpectralLossMode::L1, true), (SpectralLossMode::L2, false)] {
        let loss = SpectralLossConfig::new(sizes.clone())
            .with_mode(mode)
            .init(&device);
        let terms = loss.forward(
            from_vec(p.clone(), [1, 100], &device),
            from_vec(t.clone(), [1, 100], &device),
        );
        let (mag, logmag) = naive_loss(&p, &t, &sizes, l1, 1e-5);
        let got = (
            to_vec(terms.magnitude)[0] as f64,
            to_vec(terms.log_magnitude)[0] as f64,
        );
        assert!(
            (got.0 - mag).abs() < 1e-4 * mag.max(1.0),
            "{mode:?} mag {} vs {mag}",
            got.0
        );
        assert!(
            (got.1 - logmag).abs() < 1e-4 * logmag.max(1.0),
            "{mode:?} logmag {} vs {logmag}",
            got.1
        );
    }
}

#[test]
fn identical_signals_give_zero_for_every_term() {
    let device = Device::flex();
    let mut config = crate::Config::default();
    config
        .apply_overrides(&[
            ("spectral-windows", "64,32"),
            ("spectral-weight", "1"),
            ("spectral-logmag-weight", "1"),
            ("spectral-warmup-steps", "0"),
            ("spectral-ramp-steps", "0"),
            ("loudness-weight", "1"),
            ("frame-size", "64"),
            ("frame-hop", "16"),
        ])
        .unwrap();
    let objective = config.objective_config().init(&device);
    let x = from_vec(rand_vec(256, 3, -1.0, 1.0), [1, 256], &device);
    let report = objective.evaluate(x.clone(), x, None, None, 0);
    let values = report.values();
    assert_eq!(values.len(), 5, "{values:?}");
    for (name, v) in values {
        assert!(v.abs() < 1e-6, "{name} = {v}");
    }
}

#[test]
fn report_total_is_the_weighted_sum_and_schedules_apply() {
    let device = Device::flex();
    let mut config = crate::Config::default();
    config
        .apply_overrides(&[
            ("spectral-windows", "64,32"),
            ("spectral-weight", "2"),
            ("spectral-logmag-weight", "0.5"),
            ("spectral-warmup-steps", "10"),
            ("spectral-ramp-steps", "10"),
            ("mse-weight", "3"),
            ("harmonic-entropy-weight", "0.1"),
            ("harmonic-entropy-weight-end", "0.3"),
            ("harmonic-entropy-ramp-steps", "30"),
        ])
        .unwrap();
    let objective = config.objective_config().init(&device);
    let weight = |step: usize, name: &str| {
        objective
            .weights(step)
            .into_iter()
            .find(|(n, _)| *n == name)
            .unwrap()
            .1
    };
    assert!((weight(15, "spectral") - 1.0).abs() < 1e-12);
    assert!((weight(15, "logmag") - 0.25).abs() < 1e-12);
    assert!((weight(15, "entropy") - 0.2).abs() < 1e-12);
    assert_eq!(weight(5, "spectral"), 0.0);
    let p = from_vec(rand_vec(256, 4, -1.0, 1.0), [1, 256], &device);
    let t = from_vec(rand_vec(256, 5, -1.0, 1.0), [1, 256], &device);
    let d = from_vec(vec![0.5, 0.5, 0.0, 1.0], [1, 2, 2], &device);
    let report = objective.evaluate(p, t, None, Some(d), 15);
    let v = report.values();
    let get = |n: &str| v.iter().find(|(k, _)| *k == n).unwrap().1 as f64;
    let expected =
        1.0 * get("spectral") + 0.25 * get("logmag") + 3.0 * get("mse") + 0.2 * get("entropy");
    assert!((get("total") - expected).abs() < 1e-4 * expected, "{v:?}");
}

#[test]
fn the_objective_owns_its_term_names_and_reports_them_at_every_step() {
    let device = Device::flex();
    let mut config = crate::Config::default();
    config
        .apply_overrides(&[
            ("spectral-windows", "64,32"),
            ("spectral-weight", "1"),
            ("spectral-warmup-steps", "0"),
            ("spectral-ramp-steps", "0"),
            ("mse-weight", "0"),
            ("loudness-weight", "1"),
            ("loudness-weight-end", "0"),
            ("loudness-ramp-steps", "4"),
            ("frame-size", "64"),
            ("frame-hop", "16"),
        ])
        .unwrap();
    let objective = config.objective_config().init(&device);
    assert_eq!(objective.term_names(), ["spectral", "logmag", "loudness"]);
    let p = from_vec(rand_vec(256, 6, -1.0, 1.0), [1, 256], &device);
    let t = from_vec(rand_vec(256, 7, -1.0, 1.0), [1, 256], &device);
    for step in [0, 2, 4, 100] {
        let report = objective.evaluate(p.clone(), t.clone(), None, None, step);
        let names: Vec<&str> = report.terms.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, objective.term_names(), "step {step}");
    }
    // The loudness weight ramps 1 -> 0 over 4 steps.
    let loudness = |step| objective.weights(step)[2].1;
    assert_eq!((loudness(0), loudness(2), loudness(4)), (1.0, 0.5, 0.0));
}

#[test]
fn spectral_gradient_matches_finite_differences() {
    let t = rand_vec(64, 6, -1.0, 1.0);
    let loss = SpectralLossConfig::new(vec![16, 8]).init(&Device::flex());
    check_gradient(
        |p: Tensor<2>| {
            let target = from_vec(t.clone(), [1, 64], &p.device());
            let terms = loss.forward(p, target);
            terms.magnitude + terms.log_magnitude.mul_scalar(0.1)
        },
        &rand_vec(64, 7, -1.0, 1.0),
        [1, 64],
        &[0, 5, 17, 31, 63],
        1e-3,
        3e-2,
    );
}

#[test]
fn tensor_loudness_matches_plain_loudness() {
    let device = Device::flex();
    let x = rand_vec(2000, 8, -0.5, 0.5);
    let plain = crate::features::loudness::compute_loudness(&x, 16000.0, 256, 64);
    let tensor = to_vec(loudness_db(
        from_vec(x, [1, 2000], &device),
        16000.0,
        256,
        64,
    ));
    assert_eq!(plain.len(), tensor.len());
    for (a, b) in plain.iter().zip(&tensor) {
        assert!((a - b).abs() < 1e-2, "{a} vs {b}");
    }
}

#[test]
fn frame_rms_matches_definition() {
    let device = Device::flex();
    let (n, n_fft, hop) = (200, 32, 16);
    let x = rand_vec(n, 9, -1.0, 1.0);
    let rms = to_vec(frame_rms(from_vec(x.clone(), [1, n], &device), n_fft, hop));
    assert_eq!(rms.len(), 1 + n / hop);
    for (i, r) in rms.iter().enumerate() {
        let (mut e, mut wsum) = (0.0, 0.0);
        for j in 0..n_fft {
            let idx = (i * hop + j) as isize - (n_fft / 2) as isize;
            let v = if idx >= 0 && (idx as usize) < n {
                x[idx as usize] as f64
            } else {
                0.0
            };
            let w = 0.5 - 0.5 * (2.0 * PI * j as f64 / n_fft as f64).cos();
            e += (v * w).powi(2);
            wsum += w * w;
        }
        assert!((*r as f64 - (e / wsum).sqrt()).abs() < 1e-4, "frame {i}");
    }
}

#[test]
fn regularisers_match_their_formulas() {
    let device = Device::flex();
    let k = 8;
    let uniform = from_vec(vec![1.0 / k as f32; 2 * k], [1, 2, k], &device);
    assert!(to_vec(entropy_penalty(uniform.clone()))[0].abs() < 1e-5);
    assert!(to_vec(concentration_penalty(uniform))[0].abs() < 1e-6);
    let mut onehot = vec![0.0; k];
    onehot[3] = 1.0;
    let onehot = from_vec(onehot, [1, 1, k], &device);
    assert!((to_vec(entropy_penalty(onehot.clone()))[0] as f64 - (k as f64).ln()).abs() < 1e-4);
    assert!(
        (to_vec(concentration_penalty(onehot))[0] as f64 - (1.0 - 1.0 / k as f64)).abs() < 1e-6
    );
    let raw = rand_vec(3 * k, 10, 0.01, 1.0);
    let mut p = raw.clone();
    for row in p.chunks_mut(k) {
        let s: f32 = row.iter().sum();
        row.iter_mut().for_each(|v| *v /= s);
    }
    let (mut h, mut c) = (0.0, 0.0);
    for row in p.chunks(k) {
        h += -row.iter().map(|&v| v as f64 * (v as f64).ln()).sum::<f64>();
        c += row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>();
    }
    let t = from_vec(p, [1, 3, k], &device);
    assert!(
        (to_vec(entropy_penalty(t.clone()))[0] as f64 - ((k as f64).ln() - h / 3.0)).abs() < 1e-5
    );
    assert!(
        (to_vec(concentration_penalty(t))[0] as f64 - (c / 3.0 - 1.0 / k as f64).max(0.0)).abs()
            < 1e-6
    );
}

#[test]
fn spectral_loss_agrees_on_flex_and_wgpu() {
    let Some((gpu, _one_at_a_time)) = wgpu_or_skip("spectral_loss_agrees_on_flex_and_wgpu") else {
        return;
    };
    let (p, t) = (rand_vec(512, 11, -1.0, 1.0), rand_vec(512, 12, -1.0, 1.0));
    let run = |device: &Device| {
        let loss = SpectralLossConfig::new(vec![128, 64, 32]).init(device);
        let terms = loss.forward(
            from_vec(p.clone(), [1, 512], device),
            from_vec(t.clone(), [1, 512], device),
        );
        (to_vec(terms.magnitude)[0], to_vec(terms.log_magnitude)[0])
    };
    let (a, b) = (run(&Device::flex()), run(&gpu));
    assert!(
        (a.0 - b.0).abs() <= 1e-4 * a.0.abs().max(1.0),
        "{a:?} vs {b:?}"
    );
    assert!(
        (a.1 - b.1).abs() <= 1e-4 * a.1.abs().max(1.0),
        "{a:?} vs {b:?}"
    );
}

/// The fused loss (flex) against the same maths from tensor ops: both terms and the gradient
/// of a weighted sum of them, for every norm and logarithm form, several items, a length
/// that is no multiple of the hops, and FFT sizes longer than the signal.
#[test]
fn fused_spectral_loss_equals_composed_ops() {
    let device = crate::testing::flex_ad();
    let (b, n) = (3, 700);
    let p = rand_vec(b * n, 11, -1.0, 1.0);
    let mut t = rand_vec(b * n, 12, -1.0, 1.0);
    t[..300].fill(0.0); // silent target frames: magnitudes of 0 reach every log form's edge
    for mode in [SpectralLossMode::L1, SpectralLossMode::L2] {
        for form in [
            SpectralLogForm::PlusEps,
            SpectralLogForm::SafeLog,
            SpectralLogForm::MaxEps,
        ] {
            let loss = SpectralLossConfig::new(vec![1024, 256, 64, 16])
                .with_mode(mode)
                .with_log_form(form)
                .with_power_floor(if form == SpectralLogForm::PlusEps {
                    1e-12
                } else {
                    0.0
                })
                .init(&device);
            let target = loss.target_spectrograms(from_vec(t.clone(), [b, n], &device));
            let run = |fused: bool| {
                let x = from_vec(p.clone(), [b, n], &device).require_grad();
                let terms = if fused {
                    spectral::fused_terms(&loss, x.clone(), &target).expect("flex runs fused")
                } else {
                    loss.composed_terms(x.clone(), &target)
                };
                let total = terms.magnitude.clone() + terms.log_magnitude.clone().mul_scalar(0.3);
                let grads = total.backward();
                (
                    to_vec(terms.magnitude)[0] as f64,
                    to_vec(terms.log_magnitude)[0] as f64,
                    to_vec(x.grad(&grads).unwrap()),
                )
            };
            let (fused, composed) = (run(true), run(false));
            let what = format!("{mode:?} {form:?}");
            assert!(
                (fused.0 - composed.0).abs() < 1e-5 * composed.0,
                "{what} magnitude: {} vs {}",
                fused.0,
                composed.0
            );
            assert!(
                (fused.1 - composed.1).abs() < 1e-5 * composed.1,
                "{what} log: {} vs {}",
                fused.1,
                composed.1
            );
            let reference: Vec<f64> = composed.2.iter().map(|&v| v as f64).collect();
            let scale = reference.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            assert!(scale > 0.0, "{what}: zero gradient");
            // Relative to the largest gradient (assert_close scales by it, floored at 1). The
            // log term weighs quiet bins by 1 / (|X| + eps), so two FFTs' f32 rounding of a
            // near-silent bin moves the gradient of its frame by up to ~1e-4 of the largest.
            crate::testing::assert_close(&fused.2, &reference, 5e-4 * scale.min(1.0), &what);
        }
    }
}
