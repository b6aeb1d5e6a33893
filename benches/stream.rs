//! Realtime rendering on the calling thread, for the tiny and paper presets (randomly
//! initialised weights: the cost does not depend on their values). Each iteration renders one
//! second of audio; the real-time factor is one second over the time per iteration.
//!
//! - `stream/{tiny,paper}/block256`: `FrameStream`, frames in, 16 kHz out, blocks of 256.
//! - `stream/{tiny,paper}/live48k`: `LiveStream` as a plugin runs it: 48 kHz audio in
//!   (resampled to 16 kHz, f0 and loudness tracked live), 48 kHz audio out, blocks of 256.
//! - `stream/tiny/notes48k`: `LiveStream` in synth mode at 48 kHz, blocks of 256.
//! - `stream/paper/live48k-f16`, `stream/paper/block256-f16`: the same with the decoder's
//!   weights in half precision (`with_half_weights`).
//! - `stream/paper/live48k-b1024`, `stream/paper/live48k-b1024-f16`: host blocks of 1024.

use burn::tensor::Device;
use criterion::{Criterion, criterion_group, criterion_main};
use ddsp::Config;
use ddsp::model::DdspModel;
use ddsp::stream::{Conditioning, FrameIn, FrameStream, LiveStream, NotePlayer, NoteShape};

const BLOCK: usize = 256;
const HOST_RATE: u32 = 48_000;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("stream");
    group.sample_size(10);
    for preset in ["tiny", "paper"] {
        let path = format!("configs/{preset}.json");
        let no_overrides: &[(&str, &str)] = &[];
        let config = Config::from_sources(Some(std::path::Path::new(&path)), no_overrides)
            .expect("a bundled preset");
        let model = DdspModel::new(&config, &Device::flex());
        // Half-precision weights matter where reading the weights bounds the speed: paper.
        let precisions: &[bool] = if preset == "paper" {
            &[false, true]
        } else {
            &[false]
        };
        let second = config.sample_rate as usize;
        for &half in precisions {
            let mut stream = FrameStream::new(&model, 1.0, 0, BLOCK).expect("a GRU preset");
            if half {
                stream = stream.with_half_weights();
            }
            let mut frames = (0..).map(|i| FrameIn {
                f0_hz: 110.0 * (1.0 + (i % 40) as f32 / 20.0),
                loudness_db: -25.0 - (i % 9) as f32,
                voicing: 1.0,
            });
            let mut out = vec![0.0f32; BLOCK];
            let suffix = if half { "-f16" } else { "" };
            group.bench_function(format!("{preset}/block{BLOCK}{suffix}"), |b| {
                b.iter(|| {
                    for _ in 0..second / BLOCK {
                        stream.process(&mut frames, &mut out);
                    }
                })
            });
        }

        let features = config.feature_config();
        // One second of a gliding two-partial tone at the host rate.
        let host_second = HOST_RATE as usize;
        let mut phase = 0.0f64;
        let input: Vec<f32> = (0..host_second)
            .map(|i| {
                let f0 = 150.0 + 300.0 * i as f64 / host_second as f64;
                phase += std::f64::consts::TAU * f0 / HOST_RATE as f64;
                (0.4 * phase.sin() + 0.2 * (2.0 * phase).sin()) as f32
            })
            .collect();
        let mut host_out = vec![0.0f32; host_second];
        let blocks: &[usize] = if preset == "paper" {
            &[BLOCK, 1024]
        } else {
            &[BLOCK]
        };
        for &block in blocks {
            for &half in precisions {
                let audio_in = Conditioning::Audio { input_gain: 1.0 };
                let mut live =
                    LiveStream::new(&model, &features, 1.0, 0, HOST_RATE, block, audio_in)
                        .expect("a GRU preset at 48 kHz");
                if half {
                    live = live.with_half_weights();
                }
                let block_name = if block == BLOCK {
                    String::new()
                } else {
                    format!("-b{block}")
                };
                let suffix = if half { "-f16" } else { "" };
                group.bench_function(format!("{preset}/live48k{block_name}{suffix}"), |b| {
                    b.iter(|| {
                        for (i, o) in input.chunks(block).zip(host_out.chunks_mut(block)) {
                            live.process(i, o);
                        }
                    })
                });
            }
        }

        if preset == "tiny" {
            let frame_rate = config.sample_rate / config.frame_hop as f64;
            let player = NotePlayer::live(NoteShape::default(), frame_rate);
            let mut synth = LiveStream::new(
                &model,
                &features,
                1.0,
                0,
                HOST_RATE,
                BLOCK,
                Conditioning::Notes(player),
            )
            .expect("a GRU preset at 48 kHz");
            synth.notes().expect("synth mode").note_on(57, 100);
            group.bench_function(format!("{preset}/notes48k"), |b| {
                b.iter(|| {
                    for o in host_out.chunks_mut(BLOCK) {
                        synth.process(&[], o);
                    }
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
