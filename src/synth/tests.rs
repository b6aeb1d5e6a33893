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
    let (amp, dist) = h.get_controls(
        from_vec(raw_a.clone(), [1, 6, 1], &device),
        from_vec(raw_d, [1, 6, 20], &device),
        from_vec(f0.clone(), [1, 6], &device),
        1.0,
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

/// The other scalings, value by value from their formulas.
#[test]
fn scalings_follow_their_formulas() {
    let device = Device::flex();
    let (f, k) = (5, 4);
    let raw_a = rand_vec(f, 8, -3.0, 3.0);
    let raw_d = rand_vec(f * k, 9, -3.0, 3.0);
    let sig = |x: f32| 1.0 / (1.0 + (-x as f64).exp());
    let softplus = |x: f32| (1.0 + (x as f64).exp()).ln();
    for scaling in [
        HarmonicScaling::Legacy,
        HarmonicScaling::Normalized,
        HarmonicScaling::SoftmaxDb,
    ] {
        let (floor, t, lo, hi) = (0.1, 0.7, -50.0, 6.0);
        let h = HarmonicConfig::new(16000.0, 64)
            .with_scaling(scaling)
            .with_softmax_amp_floor(floor)
            .with_softmax_gain_min_db(lo)
            .with_softmax_gain_max_db(hi)
            .init(&device);
        let (amp, dist) = h.get_controls(
            from_vec(raw_a.clone(), [1, f, 1], &device),
            from_vec(raw_d.clone(), [1, f, k], &device),
            Tensor::full([1, f], 440.0, &device),
            t,
        );
        let (amp, dist) = (to_vec(amp), to_vec(dist));
        for i in 0..f {
            let row = &raw_d[i * k..(i + 1) * k];
            let (a, d): (f64, Vec<f64>) = match scaling {
                HarmonicScaling::Legacy => (
                    sig(raw_a[i]),
                    row.iter().map(|&x| sig(x) / k as f64).collect(),
                ),
                HarmonicScaling::Normalized => {
                    let sp: Vec<f64> = row.iter().map(|&x| softplus(x)).collect();
                    let total: f64 = sp.iter().sum();
                    (softplus(raw_a[i]), sp.iter().map(|v| v / total).collect())
                }
                _ => {
                    let e: Vec<f64> = row.iter().map(|&x| (x as f64 / t).exp()).collect();
                    let total: f64 = e.iter().sum();
                    let db = lo + (hi - lo) * sig(raw_a[i]);
                    (
                        10f64.powf(db / 20.0),
                        e.iter()
                            .map(|v| (1.0 - floor) * v / total + floor / k as f64)
                            .collect(),
                    )
                }
            };
            assert!(
                (amp[i] as f64 - a).abs() < 1e-5 * a.max(1.0),
                "{scaling:?} amp {i}"
            );
            assert_close(
                &dist[i * k..(i + 1) * k],
                &d,
                1e-5,
                &format!("{scaling:?} dist {i}"),
            );
        }
    }
}

#[test]
fn noise_scalings_follow_their_formulas() {
    let device = Device::flex();
    let raw = rand_vec(3 * 4, 10, -3.0, 3.0);
    let sig = |x: f32| 1.0 / (1.0 + (-x as f64).exp());
    let paper = FilteredNoiseConfig::new(64).with_bands(4).init(&device);
    let got = to_vec(paper.get_controls(from_vec(raw.clone(), [1, 3, 4], &device)));
    let expected: Vec<f64> = to_vec(exp_sigmoid(
        from_vec(raw.clone(), [12], &device).add_scalar(-5.0),
    ))
    .into_iter()
    .map(f64::from)
    .collect();
    assert_close(&got, &expected, 1e-6, "exp-sigmoid with bias -5");
    let gain = FilteredNoiseConfig::new(64)
        .with_bands(3)
        .with_scaling(NoiseScaling::SigmoidGain);
    assert_eq!(gain.raw_channels(), 4);
    let got = to_vec(
        gain.init(&device)
            .get_controls(from_vec(raw.clone(), [1, 3, 4], &device)),
    );
    let expected: Vec<f64> = (0..3)
        .flat_map(|t| (1..4).map(move |b| (t, b)))
        .map(|(t, b)| sig(raw[t * 4]) * sig(raw[t * 4 + b]))
        .collect();
    assert_close(&got, &expected, 1e-6, "sigmoid gain x sigmoid bands");
}

#[test]
fn smoothing_kernels_match_their_recurrences() {
    let device = Device::flex();
    let x = rand_vec(40, 31, 0.0, 1.0);
    let t = from_vec(x.clone(), [1, 40, 1], &device);
    let fir = to_vec(crate::dsp::causal_smooth(t.clone(), &[0.25; 4]));
    for i in 0..40usize {
        let expected: f32 = (0..4usize).map(|k| x[i.saturating_sub(k)]).sum::<f32>() / 4.0;
        assert!((fir[i] - expected).abs() < 1e-5);
    }
    // One-pole: y[t] = a y[t-1] + (1 - a) x[t], started from y[-1] = x[0].
    let smoother = SmoothingConfig::new()
        .with_mode(ControlSmoothing::Onepole)
        .with_alpha(0.5)
        .with_targets(vec![SmoothingTarget::HarmonicGain])
        .init();
    let y = to_vec(smoother.apply(t.clone(), SmoothingTarget::HarmonicGain));
    let mut state = x[0];
    for i in 0..40 {
        state = 0.5 * state + 0.5 * x[i];
        assert!(
            (y[i] - state).abs() < 2e-3,
            "frame {i}: {} vs {state}",
            y[i]
        );
    }
    // Streams that are not targets pass unchanged.
    assert_eq!(to_vec(smoother.apply(t, SmoothingTarget::NoiseGain)), x);
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
    let noise = to_vec(crate::dsp::uniform_noise(1, 1000, 9 ^ 0x5eed, 0, &device));
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
    let full = SynthConfig::paper(16000.0, 32)
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
    let dry = SynthConfig::paper(16000.0, 32)
        .with_noise(None)
        .init(&device)
        .forward(c, 5);
    assert!(to_vec(dry.noise).iter().all(|v| *v == 0.0));
    assert_eq!(to_vec(dry.audio), harmonic);
}

#[test]
fn synth_agrees_on_flex_and_wgpu() {
    let Some((gpu, _one_at_a_time)) = wgpu_or_skip("synth_agrees_on_flex_and_wgpu") else {
        return;
    };
    let run = |device: &Device| {
        let harmonic =
            HarmonicConfig::new(16000.0, 32).with_amp_resample(crate::dsp::AmpResample::Window);
        let synth = SynthConfig::new(harmonic)
            .with_noise(Some(FilteredNoiseConfig::new(32)))
            .with_reverb(Some(ReverbConfig::new(256).with_mode(ReverbMode::ExpDecay)))
            .init(device);
        let out = synth.forward(controls(device, 2, 16, 10, 17), 7);
        [out.harmonic, out.noise, out.audio].map(to_vec)
    };
    let (flex, wgpu) = (run(&Device::flex()), run(&gpu));
    // Each part on its own, so a failure says which stage differs, where and how widely.
    for (part, (a, b)) in ["harmonic", "noise", "audio"]
        .iter()
        .zip(flex.iter().zip(&wgpu))
    {
        let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
        let bad: Vec<usize> = (0..a.len())
            .filter(|&i| (a[i] - b[i]).abs() > 1e-4 * scale)
            .collect();
        if let Some(&i) = bad.first() {
            panic!(
                "{part}: {} of {} samples differ, first at {i}: flex {} vs wgpu {}",
                bad.len(),
                a.len(),
                a[i],
                b[i]
            );
        }
    }
}

/// A synth with every stateful part: window-upsampled harmonic, filtered noise whose delay
/// (64 samples) exceeds the hop, FIR reverb longer than the signal's pieces, one-pole
/// smoothing of every stream, the AR residual path.
fn stateful_synth(device: &Device) -> Synth {
    let harmonic =
        HarmonicConfig::new(16000.0, 32).with_amp_resample(crate::dsp::AmpResample::Window);
    SynthConfig::new(harmonic)
        .with_noise(Some(FilteredNoiseConfig::new(32).with_bands(65)))
        .with_reverb(Some(ReverbConfig::new(700).with_seed(4)))
        .with_smoothing(
            SmoothingConfig::new()
                .with_mode(ControlSmoothing::Onepole)
                .with_alpha(0.6)
                .with_targets(vec![
                    SmoothingTarget::HarmonicGain,
                    SmoothingTarget::NoiseGain,
                    SmoothingTarget::HarmonicDistribution,
                ]),
        )
        .with_residual(Some(0.7))
        .init(device)
}

/// Raw controls for `f` frames, as a decoder would give them.
fn raw(device: &Device, f: usize, seed: u64) -> (RawControls, Tensor<2>) {
    let b = 2;
    (
        RawControls {
            amplitude: from_vec(rand_vec(b * f, seed, -3.0, 1.0), [b, f, 1], device),
            distribution: from_vec(
                rand_vec(b * f * 12, seed + 1, -3.0, 3.0),
                [b, f, 12],
                device,
            ),
            noise: from_vec(
                rand_vec(b * f * 65, seed + 2, -3.0, 3.0),
                [b, f, 65],
                device,
            ),
        },
        from_vec(rand_vec(b * f, seed + 3, 100.0, 900.0), [b, f], device),
    )
}

fn frames<const D: usize>(t: &Tensor<D>, a: usize, c: usize) -> Tensor<D> {
    let mut ranges: Vec<std::ops::Range<usize>> = t.dims().iter().map(|&d| 0..d).collect();
    ranges[1] = a..c;
    t.clone().slice(ranges.as_slice())
}

#[test]
fn rendering_in_pieces_equals_one_pass() {
    let device = Device::flex();
    let synth = stateful_synth(&device);
    let f = 50;
    let (r, f0) = raw(&device, f, 60);
    let whole = synth.forward(synth.get_controls(r.clone(), f0.clone(), 1.0), 9);
    let n = f * 32;
    // Pieces of 1 frame (shorter than the noise delay), 3, 7, 1 and the rest.
    for cuts in [vec![0, 1, 4, 11, 12, f], vec![0, f], vec![0, 25, 26, 27, f]] {
        let mut state = SynthState::new(9);
        let mut outs = Vec::new();
        for w in cuts.windows(2) {
            let (a, c) = (w[0], w[1]);
            let piece = RawControls {
                amplitude: frames(&r.amplitude, a, c),
                distribution: frames(&r.distribution, a, c),
                noise: frames(&r.noise, a, c),
            };
            let controls = synth.get_controls_continued(piece, frames(&f0, a, c), 1.0, &mut state);
            outs.push(synth.render(controls, &mut state));
        }
        outs.push(synth.finish(&mut state));
        let cat = |get: fn(&SynthOutput) -> Tensor<2>| {
            to_vec(Tensor::cat(outs.iter().map(get).collect(), 1))
        };
        for (name, pieced, one) in [
            (
                "harmonic",
                cat(|o| o.harmonic.clone()),
                to_vec(whole.harmonic.clone()),
            ),
            (
                "noise",
                cat(|o| o.noise.clone()),
                to_vec(whole.noise.clone()),
            ),
            (
                "audio",
                cat(|o| o.audio.clone()),
                to_vec(whole.audio.clone()),
            ),
        ] {
            assert_eq!(pieced.len(), 2 * n, "{name} {cuts:?}");
            let worst = pieced
                .iter()
                .zip(&one)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max);
            let first = pieced
                .iter()
                .zip(&one)
                .position(|(x, y)| (x - y).abs() > 1e-5);
            assert!(
                worst < 1e-5,
                "{name} {cuts:?}: pieces differ by {worst}, first at {first:?} of {}",
                one.len()
            );
        }
        assert_eq!(state.samples_out(), n);
    }
}

/// The host control scaling, fed pieces of frames, equals `Synth::get_controls` on all frames:
/// every harmonic and noise scaling, with smoothing off, one-pole and FIR on every stream, f0
/// high enough that harmonics cross Nyquist; after `reset` it starts over.
#[test]
fn frame_controls_in_pieces_equal_get_controls() {
    let device = Device::flex();
    let (f, k, sr, temperature) = (17, 12, 16000.0, 0.7);
    let f0 = rand_vec(f, 131, 100.0, 1500.0);
    let harmonic_scalings = [
        HarmonicScaling::ExpSigmoid,
        HarmonicScaling::Legacy,
        HarmonicScaling::Normalized,
        HarmonicScaling::SoftmaxDb,
    ];
    let smoothing_modes = [
        ControlSmoothing::Off,
        ControlSmoothing::Onepole,
        ControlSmoothing::Fir,
        ControlSmoothing::Biquad,
    ];
    for (i, harmonic) in harmonic_scalings.into_iter().enumerate() {
        for noise in [NoiseScaling::ExpSigmoid, NoiseScaling::SigmoidGain] {
            let mode = smoothing_modes[i % smoothing_modes.len()];
            // Every scaling with and without the AR residual path.
            let residual = (noise == NoiseScaling::SigmoidGain).then_some(0.7);
            let config = SynthConfig::new(
                HarmonicConfig::new(sr, 64)
                    .with_scaling(harmonic)
                    .with_softmax_amp_floor(0.05),
            )
            .with_noise(Some(
                FilteredNoiseConfig::new(64)
                    .with_bands(9)
                    .with_scaling(noise),
            ))
            .with_smoothing(
                SmoothingConfig::new()
                    .with_mode(mode)
                    .with_alpha(0.6)
                    .with_fir_size(3)
                    .with_targets(vec![
                        SmoothingTarget::HarmonicGain,
                        SmoothingTarget::HarmonicDistribution,
                        SmoothingTarget::NoiseGain,
                    ]),
            )
            .with_residual(residual);
            let r = config.raw_noise_channels();
            let synth = config.init(&device);
            let raw_a = rand_vec(f, 132, -4.0, 4.0);
            let raw_d = rand_vec(f * k, 133, -6.0, 6.0);
            let raw_n = rand_vec(f * r, 134, -4.0, 4.0);
            let controls = synth.get_controls(
                RawControls {
                    amplitude: from_vec(raw_a.clone(), [1, f, 1], &device),
                    distribution: from_vec(raw_d.clone(), [1, f, k], &device),
                    noise: from_vec(raw_n.clone(), [1, f, r], &device),
                },
                from_vec(f0.clone(), [1, f], &device),
                temperature,
            );
            let expected = [
                to_vec(controls.amplitude),
                to_vec(controls.distribution),
                to_vec(controls.noise_magnitudes.expect("a noise branch")),
            ];
            let bands = expected[2].len() / f;
            let mut host = FrameControls::new(&synth, k, r, 10);
            let mut raw = RawFrames::new(10, k, r);
            let mut out = host.output();
            for round in 0..2 {
                let mut got = [Vec::new(), Vec::new(), Vec::new()];
                let mut start = 0;
                for len in [6, 1, 10] {
                    raw.frames = len;
                    raw.amplitude[..len].copy_from_slice(&raw_a[start..start + len]);
                    raw.distribution[..len * k]
                        .copy_from_slice(&raw_d[start * k..(start + len) * k]);
                    raw.noise[..len * r].copy_from_slice(&raw_n[start * r..(start + len) * r]);
                    host.scale(&raw, &f0[start..start + len], temperature, &mut out);
                    got[0].extend_from_slice(&out.amplitude[..len]);
                    got[1].extend_from_slice(&out.distribution[..len * k]);
                    got[2].extend_from_slice(&out.noise[..len * bands]);
                    start += len;
                }
                for (name, (g, e)) in ["amplitude", "distribution", "noise"]
                    .iter()
                    .zip(got.iter().zip(&expected))
                {
                    let reference: Vec<f64> = e.iter().map(|&v| v as f64).collect();
                    let what = format!(
                        "{harmonic:?} {noise:?} {mode:?} {residual:?} {name} round {round}"
                    );
                    assert_close(g, &reference, 1e-5, &what);
                }
                host.reset();
            }
        }
    }
}

/// The host synth, fed frames one at a time and pulled in blocks, equals `Synth::forward` on
/// all the frames: harmonics crossing Nyquist, filtered noise from the same seed, a reverb,
/// both crossfades; after `reset` it renders the same again.
#[test]
fn frame_synth_equals_synth_forward() {
    let device = Device::flex();
    let (f, k, bands, hop, sr, seed) = (21, 12, 9, 32, 16000.0, 7);
    for method in [
        crate::dsp::AmpResample::Linear,
        crate::dsp::AmpResample::Window,
    ] {
        let config = SynthConfig::new(HarmonicConfig::new(sr, hop).with_amp_resample(method))
            .with_noise(Some(FilteredNoiseConfig::new(hop).with_bands(bands)))
            .with_reverb(Some(ReverbConfig::new(70)));
        let mut synth = config.init(&device);
        let taps = from_vec(rand_vec(70, 141, -0.05, 0.05), [70], &device);
        synth.reverb = synth.reverb.map(|r| r.with_taps(taps));
        let f0 = rand_vec(f, 142, 80.0, 1400.0);
        let amplitude = rand_vec(f, 143, 0.05, 0.5);
        let distribution = rand_vec(f * k, 144, 0.0, 0.2);
        let noise = rand_vec(f * bands, 145, 0.0, 0.3);
        let controls = SynthControls {
            f0_hz: from_vec(f0.clone(), [1, f], &device),
            amplitude: from_vec(amplitude.clone(), [1, f], &device),
            distribution: from_vec(distribution.clone(), [1, f, k], &device),
            noise_magnitudes: Some(from_vec(noise.clone(), [1, f, bands], &device)),
        };
        let expected: Vec<f64> = to_vec(synth.forward(controls, seed).audio)
            .into_iter()
            .map(|v| v as f64)
            .collect();
        let frames = ControlFrames {
            frames: f,
            amplitude,
            distribution,
            noise,
        };
        let max_pull = 3 * hop;
        let mut host = FrameSynth::new(&synth, k, bands, seed, max_pull);
        let mut block = vec![0.0f32; max_pull];
        for round in 0..2 {
            let mut got = Vec::new();
            for (t, &f0_t) in f0.iter().enumerate() {
                host.push(&frames, f0_t, t);
                let n = host.pull(&mut block);
                got.extend_from_slice(&block[..n]);
            }
            host.finish();
            loop {
                let n = host.pull(&mut block);
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&block[..n]);
            }
            assert_close(&got, &expected, 1e-5, &format!("{method:?} round {round}"));
            host.reset();
        }
    }
}

/// The AR residual states equal the recursion `s[t] = a s[t-1] + x[t]` from zero, run here
/// frame by frame in f64 (the library convolves with `a^k` by FFT); two pieces continued
/// through the final state equal one pass; the host recursion gives the same; the gradient
/// matches finite differences.
#[test]
fn ar_states_follow_the_recursion_in_pieces() {
    use super::{ar_states, ar_step};
    let device = Device::flex();
    let (b, f, c, a) = (2, 23, 3, 0.85);
    let x = rand_vec(b * f * c, 161, -1.0, 1.0);
    let mut expected = vec![0.0f64; b * f * c];
    for bi in 0..b {
        for ch in 0..c {
            let mut s = 0.0f64;
            for t in 0..f {
                let i = (bi * f + t) * c + ch;
                s = a * s + x[i] as f64;
                expected[i] = s;
            }
        }
    }
    let (whole, end) = ar_states(from_vec(x.clone(), [b, f, c], &device), a, None);
    assert_close(&to_vec(whole), &expected, 1e-5, "one pass");
    let last: Vec<f64> = (0..b * c)
        .map(|i| expected[((i / c) * f + f - 1) * c + i % c])
        .collect();
    assert_close(&to_vec(end), &last, 1e-5, "final state");
    let t = from_vec(x.clone(), [b, f, c], &device);
    let (first, mid) = ar_states(t.clone().slice([0..b, 0..9, 0..c]), a, None);
    let (second, _) = ar_states(t.slice([0..b, 9..f, 0..c]), a, Some(mid));
    let pieced = to_vec(Tensor::cat(vec![first, second], 1));
    assert_close(&pieced, &expected, 1e-5, "two pieces");
    // The host form, one batch item.
    let mut state = vec![0.0f32; c];
    let mut host = x[..f * c].to_vec();
    ar_step(a as f32, &mut state, &mut host[..5 * c]);
    ar_step(a as f32, &mut state, &mut host[5 * c..]);
    assert_close(&host, &expected[..f * c], 1e-5, "host recursion");
    crate::testing::check_gradient(
        |x: Tensor<3>| {
            let w = from_vec(rand_vec(b * f * c, 162, -1.0, 1.0), [b, f, c], &x.device());
            (ar_states(x, a, None).0 * w).sum()
        },
        &x,
        [b, f, c],
        &[0, 7, 40, 100, b * f * c - 1],
        1e-2,
        1e-2,
    );
}
