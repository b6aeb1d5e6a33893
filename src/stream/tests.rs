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
