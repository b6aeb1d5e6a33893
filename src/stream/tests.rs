//! The stream against the offline model.

use super::*;
use crate::Config;
use crate::dsp::{from_vec, to_vec};
use crate::testing::rand_vec;
use burn::tensor::Device;

fn model() -> (DdspModel, Config) {
    let config = Config::from_sources(
        Some(std::path::Path::new("configs/tiny.json")),
        &[("reverb-length", "300"), ("control-smoothing", "onepole")],
    )
    .expect("tiny preset");
    (DdspModel::new(&config, &Device::flex()), config)
}

fn frames(f: usize) -> Vec<FrameIn> {
    let f0 = rand_vec(f, 151, 90.0, 900.0);
    let ld = rand_vec(f, 152, -70.0, -10.0);
    let uv = rand_vec(f, 153, 0.0, 1.0);
    (0..f)
        .map(|i| FrameIn {
            f0_hz: if i == 7 { 0.0 } else { f0[i] },
            loudness_db: ld[i],
            voicing: uv[i],
        })
        .collect()
}

/// Fed the same frames, the stream's blocks of 64, 256, 1024 and 4096 samples, concatenated,
/// equal the offline forward pass on all the frames (the bar: 1e-3 max abs error;
/// asserted much tighter).
#[test]
fn streamed_blocks_equal_the_offline_render() {
    let (model, config) = model();
    streamed_blocks_equal_the_offline_render_of(&model, &config);
}

/// The same with the biquad smoothing on every stream and the AR residual path.
#[test]
fn streamed_recurrent_lite_controls_equal_the_offline_render() {
    let config = Config::from_sources(
        Some(std::path::Path::new("configs/tiny.json")),
        &[
            ("reverb-length", "300"),
            ("control-smoothing", "biquad"),
            ("control-smoothing-cutoff-hz", "20"),
            (
                "control-smoothing-targets",
                "harmonic-gain,noise-gain,harmonic-distribution",
            ),
            ("control-residual", "ar"),
            ("control-residual-alpha", "0.6"),
        ],
    )
    .expect("tiny preset");
    let model = DdspModel::new(&config, &Device::flex());
    assert!(model.synth.residual().is_some() && model.synth.smoother().kernel().len() > 5);
    streamed_blocks_equal_the_offline_render_of(&model, &config);
}

fn streamed_blocks_equal_the_offline_render_of(model: &DdspModel, config: &Config) {
    let device = Device::flex();
    let input = frames(45);
    let f = input.len();
    let (temperature, seed) = (config.temperature().at(0), 3);
    let t = |get: fn(&FrameIn) -> f32| from_vec(input.iter().map(get).collect(), [1, f], &device);
    let offline = to_vec(
        model
            .forward(
                t(|x| x.f0_hz),
                t(|x| x.loudness_db),
                t(|x| x.voicing),
                None,
                temperature,
                seed,
            )
            .audio
            .audio,
    );
    let peak = offline.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(peak > 1e-3, "the offline render is silent ({peak})");
    for block in [64, 256, 1024, 4096] {
        let mut stream = FrameStream::new(model, temperature, seed, block).unwrap();
        for round in 0..2 {
            let mut source = input.clone().into_iter();
            let mut out = vec![0.0f32; block];
            let mut got = Vec::new();
            loop {
                let n = stream.process(&mut source, &mut out);
                got.extend_from_slice(&out[..n]);
                if n < block {
                    break;
                }
            }
            assert_eq!(got.len(), offline.len(), "block {block}");
            let worst = got
                .iter()
                .zip(&offline)
                .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                worst < 1e-5 * peak.max(1.0),
                "block {block} round {round}: max abs error {worst}"
            );
            stream.reset();
        }
    }
}

/// With half-precision weights the stream stays within the equivalence bar (1e-3
/// max abs error) of the full-precision one, though it is no longer that render to rounding:
/// every weight moved by up to 2^-11 of itself. Tiny, and the paper preset's 512-wide stacks
/// and GRU (where the rounding errors of more and wider layers add up).
#[test]
fn half_weights_stay_within_the_equivalence_bar() {
    for preset in ["tiny", "paper"] {
        let config = Config::from_sources(
            Some(std::path::Path::new(&format!("configs/{preset}.json"))),
            &[("reverb-length", "300")],
        )
        .expect("a bundled preset");
        let model = DdspModel::new(&config, &Device::flex());
        let input = frames(60);
        let (temperature, seed) = (config.temperature().at(0), 3);
        let render = |half: bool| {
            let mut stream = FrameStream::new(&model, temperature, seed, 256).unwrap();
            if half {
                stream = stream.with_half_weights();
            }
            let mut source = input.clone().into_iter();
            let mut out = vec![0.0f32; 256];
            let mut got = Vec::new();
            while stream.process(&mut source, &mut out) == out.len() {
                got.extend_from_slice(&out);
            }
            got
        };
        let (full, half) = (render(false), render(true));
        assert_eq!(full.len(), half.len());
        let peak = full.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let worst = full
            .iter()
            .zip(&half)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        // Measured: tiny 5.4e-5 of a 0.38 peak, paper 1.1e-4 of 0.37 (2.9e-4 of the peak).
        assert!(peak > 1e-3, "{preset}: silent render ({peak})");
        assert!(worst > 0.0, "{preset}: the weights were not rounded");
        assert!(
            worst < 1e-3 * peak.min(1.0),
            "{preset}: max abs error {worst} (peak {peak})"
        );
    }
}

/// Non-finite frames play as silence and the stream carries on: every block stays finite,
/// and clean frames afterwards sound again.
#[test]
fn non_finite_frames_do_not_poison_the_stream() {
    let (model, config) = model();
    let mut stream = FrameStream::new(&model, config.temperature().at(0), 0, 256).unwrap();
    let mut input = frames(40);
    for (i, v) in [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        1e30,
        -1e30,
        f32::MIN_POSITIVE / 4.0,
    ]
    .into_iter()
    .enumerate()
    {
        input[5 + i].f0_hz = v;
        input[12 + i].loudness_db = v;
        input[20 + i].voicing = v;
    }
    let mut source = input.into_iter();
    let mut out = vec![0.0f32; 256];
    let mut last_peak = 0.0f32;
    loop {
        let n = stream.process(&mut source, &mut out);
        assert!(out.iter().all(|v| v.is_finite()));
        if n > 0 {
            last_peak = out[..n].iter().fold(0.0, |m, v| m.max(v.abs()));
        }
        if n < 256 {
            break;
        }
    }
    assert!(last_peak > 0.0, "silent after the bad frames");
}

/// One scheduled note: silent before it, the attack rising, the sustain at
/// `peak + 20 log10(sustain)` dB for velocity 127 at the note's pitch, the release falling to
/// silence, and the source ending once the release is over.
#[test]
fn a_note_plays_its_adsr_envelope() {
    use crate::features::midi::Note;
    let shape = NoteShape {
        attack: 0.1,
        decay: 0.1,
        sustain: 0.5,
        release: 0.2,
        peak_db: -20.0,
        ..NoteShape::default()
    };
    let rate = 100.0;
    let note = Note {
        start: 0.5,
        end: 1.5,
        key: 69,
        velocity: 127,
    };
    let mut player = NotePlayer::from_notes(&[note], shape, rate);
    let frames: Vec<FrameIn> = std::iter::from_fn(|| player.next_frame()).collect();
    assert_eq!(frames.len() as u64, ((1.5 + 0.2) * rate).ceil() as u64 + 1);
    assert!(
        frames[..50]
            .iter()
            .all(|f| f.voicing == 0.0 && f.loudness_db == SILENT_DB)
    );
    let attack: Vec<f32> = frames[50..60].iter().map(|f| f.loudness_db).collect();
    assert!(attack.windows(2).all(|w| w[1] > w[0]), "{attack:?}");
    let sustained = &frames[100];
    assert!((sustained.loudness_db - (-20.0 + 20.0 * 0.5f32.log10())).abs() < 1e-3);
    assert!((sustained.f0_hz - 440.0).abs() < 1e-3 && sustained.voicing == 1.0);
    let release: Vec<f32> = frames[150..170].iter().map(|f| f.loudness_db).collect();
    assert!(release.windows(2).all(|w| w[1] <= w[0]), "{release:?}");
    assert!(frames.last().unwrap().voicing == 0.0);
}

/// Last-note priority: a key pressed over a held one sounds at once, releasing it falls back
/// to the held key, and vibrato swings the pitch by its depth either way.
#[test]
fn the_newest_held_key_sounds_and_vibrato_swings() {
    let mut player = NotePlayer::live(NoteShape::default(), 250.0);
    let mut next = || player.next_frame().unwrap();
    let mut p = NotePlayer::live(NoteShape::default(), 250.0);
    p.note_on(60, 100);
    let a = (0..50).map(|_| p.next_frame().unwrap()).last().unwrap();
    p.note_on(67, 100);
    let b = p.next_frame().unwrap();
    p.note_off(67);
    let c = (0..5).map(|_| p.next_frame().unwrap()).last().unwrap();
    let hz = |k: f64| (440.0 * 2f64.powf((k - 69.0) / 12.0)) as f32;
    assert!((a.f0_hz - hz(60.0)).abs() < 1e-2 && (b.f0_hz - hz(67.0)).abs() < 1e-2);
    assert!((c.f0_hz - hz(60.0)).abs() < 1e-2 && c.voicing == 1.0);
    assert_eq!(next().voicing, 0.0, "a live player starts silent");
    let shape = NoteShape {
        vibrato_cents: 50.0,
        vibrato_hz: 5.0,
        ..NoteShape::default()
    };
    let mut v = NotePlayer::live(shape, 250.0);
    v.note_on(69, 127);
    let f0: Vec<f32> = (0..250).map(|_| v.next_frame().unwrap().f0_hz).collect();
    let (lo, hi) = f0
        .iter()
        .fold((f32::MAX, 0.0f32), |(l, h), f| (l.min(*f), h.max(*f)));
    assert!((hi / 440.0 - 2f32.powf(50.0 / 1200.0)).abs() < 1e-3, "{hi}");
    assert!((440.0 / lo - 2f32.powf(50.0 / 1200.0)).abs() < 1e-3, "{lo}");
}

/// A test signal: a gliding harmonic tone with a loudness swell and a gap of silence.
fn voice(rate: f64, seconds: f64) -> Vec<f32> {
    let n = (rate * seconds) as usize;
    let mut phase = 0.0f64;
    (0..n)
        .map(|i| {
            let t = i as f64 / rate;
            let f0 = 220.0 * (1.0 + 0.5 * (t / seconds));
            phase += 2.0 * std::f64::consts::PI * f0 / rate;
            let gate = if (0.45..0.55).contains(&(t / seconds)) {
                0.0
            } else {
                1.0
            };
            let swell = 0.3 + 0.2 * (2.0 * std::f64::consts::PI * t).sin();
            (gate * swell * (phase.sin() + 0.4 * (2.0 * phase).sin())) as f32
        })
        .collect()
}

fn live(model: &DdspModel, config: &Config, host_rate: u32, max_block: usize) -> LiveStream {
    let conditioning = Conditioning::Audio { input_gain: 1.0 };
    let (t, seed) = (config.temperature().at(0), 5);
    LiveStream::new(
        model,
        &config.feature_config(),
        t,
        seed,
        host_rate,
        max_block,
        conditioning,
    )
    .expect("a GRU model at a standard rate")
}

/// Feed `input` in blocks cycling through `sizes`.
fn run(stream: &mut LiveStream, input: &[f32], sizes: &[usize]) -> Vec<f32> {
    let mut out = vec![0.0f32; input.len()];
    let (mut at, mut k) = (0, 0);
    while at < input.len() {
        let n = sizes[k % sizes.len()].min(input.len() - at);
        stream.process(&input[at..at + n], &mut out[at..at + n]);
        at += n;
        k += 1;
    }
    out
}

/// Audio in at the model's rate: the output is the offline render of the frames the live
/// tracker makes, exactly `latency_samples()` late, for any block sizes (the renderer's lag is
/// the whole latency here).
#[test]
fn live_audio_equals_the_render_of_its_frames_after_the_latency() {
    let (model, config) = model();
    let rate = config.sample_rate as u32;
    let input = voice(config.sample_rate, 1.0);
    // The frames the live tracker makes of this input, rendered offline by FrameStream (which
    // the test above ties to DdspModel::forward).
    let mut tracker = crate::features::live::LiveFeatures::new(&config.feature_config());
    let mut frames = Vec::new();
    tracker.push(&input, |f| frames.push(f));
    assert!(frames.iter().filter(|f| f.voicing > 0.5).count() > frames.len() / 2);
    let (t, seed) = (config.temperature().at(0), 5);
    let mut offline_stream = FrameStream::new(&model, t, seed, 4096).unwrap();
    let mut source = frames.into_iter();
    let mut offline = vec![0.0f32; input.len() + 4096];
    let (mut at, len) = (0, offline.len());
    while at < len {
        let n = offline_stream.process(&mut source, &mut offline[at..(at + 4096).min(len)]);
        if n == 0 {
            break;
        }
        at += n;
    }
    let peak = offline.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(peak > 1e-3, "silent render");
    for sizes in [&[64usize][..], &[256], &[4096], &[37, 500, 1, 2048, 129]] {
        let mut stream = live(&model, &config, rate, 4096);
        let latency = stream.latency_samples();
        let lag = FrameStream::new(&model, t, seed, 64).unwrap().lag();
        assert_eq!(latency, lag, "no resampling: the lag is the latency");
        let got = run(&mut stream, &input, sizes);
        assert!(got[..latency].iter().all(|v| *v == 0.0));
        let worst = (latency..input.len())
            .map(|i| (got[i] - offline[i - latency]).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst < 1e-5 * peak.max(1.0),
            "blocks {sizes:?}: max abs error {worst}"
        );
    }
}

/// At 48 kHz the latency is the renderer's lag plus the resamplers' chunks, under the issue's
/// bar of one block plus one hop plus the resamplers; the output is audible and finite.
#[test]
fn live_audio_at_host_rates_reports_a_bounded_latency() {
    let (model, config) = model();
    let hop = config.frame_hop;
    for host in [48_000u32, 44_100] {
        let input = voice(host as f64, 0.6);
        let mut stream = live(&model, &config, host, 256);
        let latency_ms = stream.latency_seconds() * 1e3;
        // The bar less the block (which adds nothing here): one hop plus the
        // resamplers' delay, at most two chunks of waiting and one of filter delay. A chunk is
        // at least a hop (8 ms) at 48 kHz, 441 samples (10 ms) at 44.1 kHz.
        let hop_ms = hop as f64 * 1e3 / config.sample_rate;
        let chunk_ms = if host == 48_000 { hop_ms } else { 10.0 };
        assert!(
            latency_ms <= hop_ms + 3.0 * chunk_ms,
            "{host} Hz: {latency_ms} ms"
        );
        let got = run(&mut stream, &input, &[256, 100, 32]);
        assert!(got.iter().all(|v| v.is_finite()));
        let energy: f32 = got.iter().map(|v| v * v).sum();
        assert!(energy > 1e-4, "{host} Hz: silent");
    }
}

/// A block with a NaN comes out silent; the next clean block plays again, as a fresh stream
/// would from there (the stream restarted), and nothing non-finite ever comes out.
#[test]
fn live_stream_survives_nan_and_inf_blocks() {
    let (model, config) = model();
    let input = voice(48_000.0, 0.4);
    let mut stream = live(&model, &config, 48_000, 512);
    // Long enough a prefix that voiced frames set the tracker's held f0 before the bad block.
    let mut out = vec![1.0f32; 512];
    for block in input[..4608].chunks(512) {
        stream.process(block, &mut out);
    }
    assert!(out.iter().any(|v| *v != 0.0));
    let mut bad = input[4608..5120].to_vec();
    bad[100] = f32::NAN;
    bad[200] = f32::INFINITY;
    stream.process(&bad, &mut out);
    assert!(out.iter().all(|v| *v == 0.0), "a NaN block is silence");
    let rest = &input[5120..];
    let after = run(&mut stream, rest, &[512]);
    let fresh = run(&mut live(&model, &config, 48_000, 512), rest, &[512]);
    assert_eq!(after, fresh, "the stream restarts after a bad block");
    assert!(after.iter().all(|v| v.is_finite()) && after.iter().any(|v| *v != 0.0));
    // Extreme but finite input (full-scale square, denormals) stays finite.
    let harsh: Vec<f32> = (0..4800)
        .map(|i| match i % 3 {
            0 => 1e30,
            1 => -1e30,
            _ => 1e-40,
        })
        .collect();
    let out = run(&mut stream, &harsh, &[480]);
    assert!(out.iter().all(|v| v.is_finite()));
}

/// Feature settings that disagree with the model (another hop or rate) are refused: the
/// stream's timing is sized from the model.
#[test]
fn live_stream_refuses_features_that_do_not_match_the_model() {
    let (model, config) = model();
    let mut features = config.feature_config();
    features.frame_hop *= 2;
    let audio_in = Conditioning::Audio { input_gain: 1.0 };
    let err = LiveStream::new(&model, &features, 1.0, 0, 48_000, 256, audio_in)
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("do not match"), "{err}");
}

/// Synth mode through the live stream: at the model's rate, the output is the render of the
/// note player's frames, `latency_samples()` late; at 48 kHz the latency is the same as for
/// audio in and the input is ignored.
#[test]
fn live_notes_equal_the_render_of_the_players_frames() {
    use crate::features::midi::Note;
    let (model, config) = model();
    let frame_rate = config.sample_rate / config.frame_hop as f64;
    let notes = [
        Note {
            key: 60,
            velocity: 100,
            start: 0.05,
            end: 0.3,
        },
        Note {
            key: 67,
            velocity: 80,
            start: 0.25,
            end: 0.5,
        },
    ];
    let player = NotePlayer::from_notes(&notes, NoteShape::default(), frame_rate);
    let (t, seed) = (config.temperature().at(0), 5);
    let features = config.feature_config();
    let rate = config.sample_rate as u32;
    let mut offline_stream = FrameStream::new(&model, t, seed, 1024).unwrap();
    let mut source = player.clone();
    let n = rate as usize;
    let mut offline = vec![0.0f32; n];
    let mut at = 0;
    while at < n {
        let got = offline_stream.process(&mut source, &mut offline[at..(at + 1024).min(n)]);
        if got == 0 {
            break;
        }
        at += got;
    }
    let mut stream = LiveStream::new(
        &model,
        &features,
        t,
        seed,
        rate,
        256,
        Conditioning::Notes(player.clone()),
    )
    .unwrap();
    let latency = stream.latency_samples();
    let mut got = vec![0.0f32; n];
    for block in got.chunks_mut(200) {
        stream.process(&[], block);
    }
    // Up to the player's end (then the offline stream ends its tails while the live one
    // carries on with silent frames).
    let end = (player.len_frames().expect("a note list") as usize - 1) * config.frame_hop;
    let peak = offline.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let worst = (latency..end + latency)
        .map(|i| (got[i] - offline[i - latency]).abs())
        .fold(0.0f32, f32::max);
    assert!(
        peak > 1e-3 && worst < 1e-5 * peak.max(1.0),
        "max abs error {worst}"
    );
}

/// `x` (periodic, even length) resampled to `factor` times its rate with everything above
/// `keep` of the original Nyquist frequency removed: its spectrum cut and zero-padded (an
/// ideal zero-phase resampler, independent of the stream's `rubato` one, whose own
/// transition band starts below Nyquist). `factor` 1 only filters.
fn band_limited(x: &[f32], factor: usize, keep: f64) -> Vec<f32> {
    use realfft::RealFftPlanner;
    let (n, m) = (x.len(), x.len() * factor);
    let mut planner = RealFftPlanner::<f64>::new();
    let forward = planner.plan_fft_forward(n);
    let mut input: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let mut spectrum = forward.make_output_vec();
    forward.process(&mut input, &mut spectrum).unwrap();
    let cut = (keep * (n / 2) as f64) as usize;
    spectrum[cut..].fill(Default::default());
    let inverse = planner.plan_fft_inverse(m);
    let mut padded = inverse.make_input_vec();
    padded[..spectrum.len()].copy_from_slice(&spectrum);
    let mut out = inverse.make_output_vec();
    inverse.process(&mut padded, &mut out).unwrap();
    out.iter().map(|&v| (v / n as f64) as f32).collect()
}

/// End to end through both resamplers, with the model rendering: in synth mode at 32, 48 and
/// 96 kHz, the host-rate output is the model-rate render of the note player's frames,
/// band-limited to the host rate, `latency_samples()` late (the output's match with the
/// reference peaks there, not a sample either side), and the latency is audio-in's less the
/// down-resampler's delay, which synth mode does not go through.
#[test]
fn live_notes_at_host_rates_are_the_render_the_reported_latency_late() {
    use crate::features::midi::Note;
    let (model, config) = model();
    let frame_rate = config.sample_rate / config.frame_hop as f64;
    let notes = [Note {
        key: 57,
        velocity: 100,
        start: 0.05,
        end: 0.6,
    }];
    let player = NotePlayer::from_notes(&notes, NoteShape::default(), frame_rate);
    let (t, seed) = (config.temperature().at(0), 5);
    let rate = config.sample_rate as usize;
    // One second at the model's rate: the note, its release and the reverb's tail.
    let mut offline = vec![0.0f32; rate];
    let mut stream = FrameStream::new(&model, t, seed, 1024).unwrap();
    let mut source = player.clone();
    let mut at = 0;
    while at < rate {
        let got = stream.process(&mut source, &mut offline[at..(at + 1024).min(rate)]);
        if got == 0 {
            break;
        }
        at += got;
    }
    let peak = offline.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(peak > 1e-3, "silent render");
    for host in [32_000u32, 48_000, 96_000] {
        let factor = host as usize / rate;
        // Both below 0.8 of the model's Nyquist frequency (the output resampler's passband).
        let reference = band_limited(&offline, factor, 0.8);
        let notes_in = Conditioning::Notes(player.clone());
        let features = config.feature_config();
        let mut live_notes =
            LiveStream::new(&model, &features, t, seed, host, 256, notes_in).unwrap();
        let latency = live_notes.latency_samples();
        assert!((latency as f64 - live_notes.latency_seconds() * host as f64).abs() < 1e-6);
        let mut got = vec![0.0f32; reference.len() + latency];
        for block in got.chunks_mut(256) {
            live_notes.process(&[], block);
        }
        let got = band_limited(&got[latency..], 1, 0.8 / factor as f64);
        // Signal-to-error ratio of the output against the reference `d` samples late, over
        // the note (past the resamplers' start-up) and its release, up to the player's end
        // (where the offline stream ends its tails and the live one plays silent frames on),
        // less the reference filter's ringing.
        let end = (player.len_frames().expect("a note list") as usize - 1) * config.frame_hop;
        let span = factor * rate / 10..factor * (end - rate / 20);
        let snr = |d: usize| {
            let (mut signal, mut error) = (0.0f64, 0.0f64);
            for i in span.clone() {
                let r = reference[i] as f64;
                signal += r * r;
                error += (got[i + d - 1] as f64 - r).powi(2);
            }
            10.0 * (signal / error).log10()
        };
        // `got` starts at the latency: offset 1 is the latency itself.
        let at = snr(1);
        let (early, late) = (snr(0), snr(2));
        // Measured: 65 dB at the latency, 3-6 dB a sample either side (32 and 48 kHz).
        assert!(
            at > 50.0 && at > early + 20.0 && at > late + 20.0,
            "{host} Hz: {at:.1} dB at the latency {latency}, {early:.1} a sample earlier, \
             {late:.1} a sample later"
        );
        let audio_in = live(&model, &config, host, 256);
        assert!(
            audio_in.latency_samples() > latency,
            "{host} Hz: synth mode reports audio-in's latency or more"
        );
    }
}
