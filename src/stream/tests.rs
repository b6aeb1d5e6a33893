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
                temperature,
                seed,
            )
            .audio
            .audio,
    );
    let peak = offline.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(peak > 1e-3, "the offline render is silent ({peak})");
    for block in [64, 256, 1024, 4096] {
        let mut stream = FrameStream::new(&model, temperature, seed, block).unwrap();
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
    let mut at48 = LiveStream::new(
        &model,
        &features,
        t,
        seed,
        48_000,
        256,
        Conditioning::Notes(player),
    )
    .unwrap();
    assert_eq!(
        at48.latency_samples(),
        live(&model, &config, 48_000, 256).latency_samples()
    );
    let mut out = vec![0.0f32; 256];
    let mut energy = 0.0;
    for _ in 0..100 {
        at48.process(&[], &mut out);
        assert!(out.iter().all(|v| v.is_finite()));
        energy += out.iter().map(|v| v * v).sum::<f32>();
    }
    assert!(energy > 1e-4);
}
