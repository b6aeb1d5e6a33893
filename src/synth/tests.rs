use super::*;
use crate::dsp::{exp_sigmoid, from_vec, to_vec};
use crate::testing::{assert_close, check_gradient, convolve_naive, rand_vec, wgpu_or_skip};
use burn::tensor::Device;

fn controls(device: &Device, b: usize, f: usize, k: usize, m: usize) -> SynthControls {
    SynthControls {
        f0_hz: from_vec(rand_vec(b * f, 1, 200.0, 900.0), [b, f], device),
        amplitude: from_vec(rand_vec(b * f, 2, 0.1, 0.5), [b, f], device),
        distribution: from_vec(rand_vec(b * f * k, 3, 0.0, 1.0), [b, f, k], device),
        noise_magnitudes: Some(from_vec(
            rand_vec(b * f * m, 4, 0.0, 0.1),
            [b, f, m],
            device,
        )),
    }
}

#[test]
fn paper_controls_are_exp_sigmoid_and_normalised() {
    let device = Device::flex();
    let h = HarmonicConfig::new(16000.0, 64).init(&device);
    let raw_a = rand_vec(6, 5, -3.0, 3.0);
    let raw_d = rand_vec(6 * 20, 6, -3.0, 3.0);
    let f0 = vec![100.0, 500.0, 1000.0, 2000.0, 4000.0, 7000.0];
    let (amp, dist) = h.controls_from_raw(
        from_vec(raw_a.clone(), [1, 6, 1], &device),
        from_vec(raw_d, [1, 6, 20], &device),
        from_vec(f0.clone(), [1, 6], &device),
    );
    let expected = to_vec(exp_sigmoid(from_vec(raw_a, [6], &device)));
    assert_close(
        &to_vec(amp),
        &expected.iter().map(|&v| v as f64).collect::<Vec<_>>(),
        1e-6,
        "amp",
    );
    let dist = to_vec(dist);
    for (i, f) in f0.iter().enumerate() {
        let row = &dist[i * 20..(i + 1) * 20];
        let sum: f32 = row.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5, "frame {i} sums to {sum}");
        for (k, v) in row.iter().enumerate() {
            if (k + 1) as f32 * f >= 8000.0 {
                assert_eq!(*v, 0.0, "harmonic {} of {f} Hz must be removed", k + 1);
            }
        }
    }
}

#[test]
fn noise_is_deterministic_given_a_seed() {
    let device = Device::flex();
    let noise = FilteredNoiseConfig::new(32).init(&device);
    let mags = from_vec(rand_vec(4 * 17, 7, 0.0, 1.0), [1, 4, 17], &device);
    let a = to_vec(noise.forward(mags.clone(), 42));
    let b = to_vec(noise.forward(mags.clone(), 42));
    let c = to_vec(noise.forward(mags, 43));
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(a.len(), 128);
}

#[test]
fn fir_reverb_is_dry_plus_causal_convolution_with_masked_first_tap() {
    let device = Device::flex();
    let reverb = ReverbConfig::new(40).with_seed(3).init(&device);
    let ir = to_vec(reverb.impulse_response());
    assert_eq!(ir[0], 0.0, "first tap is masked");
    let x = rand_vec(2 * 100, 8, -1.0, 1.0);
    let out = to_vec(reverb.forward(from_vec(x.clone(), [2, 100], &device)));
    let h: Vec<f64> = ir.iter().map(|&v| v as f64).collect();
    for b in 0..2 {
        let xs: Vec<f64> = x[b * 100..(b + 1) * 100]
            .iter()
            .map(|&v| v as f64)
            .collect();
        let wet = convolve_naive(&xs, &h);
        let reference: Vec<f64> = (0..100).map(|i| xs[i] + wet[i]).collect();
        assert_close(&out[b * 100..(b + 1) * 100], &reference, 1e-5, "reverb");
    }
}

#[test]
fn exp_decay_reverb_follows_its_formula() {
    let device = Device::flex();
    let reverb = ReverbConfig::new(1000)
        .with_mode(ReverbMode::ExpDecay)
        .with_seed(9)
        .init(&device);
    let ir = to_vec(reverb.impulse_response());
    let noise = to_vec(crate::dsp::uniform_noise(1, 1000, 9 ^ 0x5eed, &device));
    let gain = 2.0 * (1.0 / (1.0 + 4f64.exp())).powf(10f64.ln()) + 1e-7;
    let rate = 2.0 + 4f64.exp();
    for (i, v) in ir.iter().enumerate() {
        let t = i as f64 / 999.0;
        let expected = if i == 0 {
            0.0
        } else {
            gain * (-rate * t).exp() * noise[i] as f64
        };
        assert!(
            (*v as f64 - expected).abs() < 1e-6 + 1e-4 * expected.abs(),
            "tap {i}"
        );
    }
}

#[test]
fn reverb_gradient_matches_finite_differences() {
    let x = rand_vec(64, 10, -1.0, 1.0);
    let w = rand_vec(64, 11, -1.0, 1.0);
    check_gradient(
        |ir: Tensor<1>| {
            let device = ir.device();
            let wet = crate::dsp::fft_convolve(
                from_vec(x.clone(), [1, 64], &device),
                ir.unsqueeze_dim::<2>(0),
                0,
            );
            (wet * from_vec(w.clone(), [1, 64], &device))
                .sum()
                .reshape([1])
        },
        &rand_vec(16, 12, -0.5, 0.5),
        [16],
        &(0..16).collect::<Vec<_>>(),
        1e-2,
        1e-2,
    );
}

#[test]
fn synth_parts_are_switchable_and_sum() {
    let device = Device::flex();
    let c = controls(&device, 2, 8, 6, 9);
    let full = SynthConfig::new(16000.0, 32)
        .init(&device)
        .forward(c.clone(), 5);
    let (audio, harmonic, noise) = (
        to_vec(full.audio),
        to_vec(full.harmonic),
        to_vec(full.noise),
    );
    for i in 0..audio.len() {
        assert!((audio[i] - harmonic[i] - noise[i]).abs() < 1e-6);
    }
    assert!(noise.iter().any(|v| v.abs() > 0.0));
    let dry = SynthConfig::new(16000.0, 32)
        .with_noise(false)
        .init(&device)
        .forward(c, 5);
    assert!(to_vec(dry.noise).iter().all(|v| *v == 0.0));
    assert_eq!(to_vec(dry.audio), harmonic);
}

#[test]
fn synth_agrees_on_flex_and_wgpu() {
    let Some(gpu) = wgpu_or_skip("synth_agrees_on_flex_and_wgpu") else {
        return;
    };
    let run = |device: &Device| {
        let synth = SynthConfig::new(16000.0, 32)
            .with_reverb(ReverbMode::ExpDecay)
            .with_reverb_length(256)
            .with_amp_resample(crate::config::AmpResample::Window)
            .init(device);
        to_vec(synth.forward(controls(device, 2, 16, 10, 17), 7).audio)
    };
    let (a, b) = (run(&Device::flex()), run(&gpu));
    let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-4 * scale,
            "sample {i}: flex {x} vs wgpu {y}"
        );
    }
}
