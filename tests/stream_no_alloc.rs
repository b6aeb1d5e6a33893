//! `FrameStream::process` allocates nothing once the stream is warm: a global allocator that
//! counts the allocations of the test's own thread while it processes (other threads, the
//! harness's, a thread pool's or another test's, do not count).

use burn::tensor::Device;
use ddsp::Config;
use ddsp::model::DdspModel;
use ddsp::stream::{FrameIn, FrameStream};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    /// Allocations counted on this thread (tests run on threads of their own, in parallel).
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

fn reset_allocations() {
    ALLOCATIONS.with(|c| c.set(0));
}

fn counting() -> bool {
    COUNTING.try_with(Cell::get).unwrap_or(false)
}

fn count(on: bool) {
    COUNTING.with(|c| c.set(on));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counting() {
            // `try_with`: never touch a thread-local that is being torn down.
            let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counting() {
            // `try_with`: never touch a thread-local that is being torn down.
            let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn process_allocates_nothing() {
    let model = |overrides: &[(&str, &str)]| {
        let config =
            Config::from_sources(Some(std::path::Path::new("configs/tiny.json")), overrides)
                .expect("tiny preset");
        DdspModel::new(&config, &Device::flex())
    };
    let gru = model(&[("reverb-length", "500")]);
    // The micro-RNN backbone with the AR residual path and biquad smoothing.
    let micro = model(&[
        ("reverb-length", "500"),
        ("decoder-backbone", "micro-rnn"),
        ("control-residual", "ar"),
        ("control-smoothing", "biquad"),
    ]);
    // The counter sees allocations.
    count(true);
    let probe = std::hint::black_box(Box::new(1u64));
    count(false);
    assert_eq!(allocations(), 1, "the counting allocator is not in use");
    drop(probe);
    let cases = [32, 64, 256, 1024, 4096]
        .map(|block| (&gru, block))
        .into_iter()
        .chain([(&micro, 32), (&micro, 1024)]);
    for (model, block) in cases {
        let mut stream = FrameStream::new(model, 1.0, 0, block).unwrap();
        let mut frames = (0..).map(|i| FrameIn {
            f0_hz: 220.0 + (i % 50) as f32 * 7.0,
            loudness_db: -30.0 - (i % 13) as f32,
            voicing: 0.9,
        });
        let mut out = vec![0.0f32; block];
        // Warm-up: the matrix kernels size their thread-local packing buffers once.
        stream.process(&mut frames, &mut out);
        reset_allocations();
        count(true);
        let mut total = 0;
        for _ in 0..(16384 / block).max(4) {
            total += stream.process(&mut frames, &mut out);
        }
        count(false);
        assert!(total > 0);
        assert_eq!(allocations(), 0, "block {block}: allocations in process");
        assert!(out.iter().any(|v| *v != 0.0), "block {block}: silent");
    }
}

/// The host-rate stream (resamplers, live tracker, synth mode) allocates nothing either, for
/// block sizes that change from call to call.
#[test]
fn live_process_allocates_nothing() {
    use ddsp::stream::{Conditioning, LiveStream, NotePlayer, NoteShape};
    let config = Config::from_sources(
        Some(std::path::Path::new("configs/tiny.json")),
        &[("reverb-length", "500")] as &[(&str, &str)],
    )
    .expect("tiny preset");
    let model = DdspModel::new(&config, &Device::flex());
    let features = config.feature_config();
    let frame_rate = config.sample_rate / config.frame_hop as f64;
    let cases = [
        (44_100u32, false, 4096),
        (48_000, false, 4096),
        (16_000, false, 4096),
        (48_000, true, 4096),
        (22_050, false, 517),
        (96_000, false, 32),
        (8_000, false, 256),
    ];
    for (host, notes, max_block) in cases {
        let conditioning = if notes {
            Conditioning::Notes(NotePlayer::live(NoteShape::default(), frame_rate))
        } else {
            Conditioning::Audio { input_gain: 1.0 }
        };
        let mut stream =
            LiveStream::new(&model, &features, 1.0, 0, host, max_block, conditioning).unwrap();
        if host == 44_100 {
            // The half-precision kernel's path too.
            stream = stream.with_half_weights();
        }
        let input: Vec<f32> = (0..4097).map(|i| (i as f32 * 0.05).sin() * 0.4).collect();
        // One block with a NaN (the restart path); every other block plays.
        let mut bad = input.clone();
        bad[7] = f32::NAN;
        let mut out = vec![0.0f32; 4096];
        stream.process(&input[1..max_block], &mut out[1..max_block]);
        reset_allocations();
        count(true);
        let sizes = [32usize, 4096, 517, 1, 256, 1024, 33, 4000];
        for (k, n) in sizes
            .iter()
            .map(|n| (*n).min(max_block))
            .cycle()
            .take(40)
            .enumerate()
        {
            if notes && k == 3 {
                stream.notes().expect("synth mode").note_on(64, 90);
            }
            let (source, from) = if k == 11 { (&bad, 0) } else { (&input, k % 2) };
            stream.process(&source[from..from + n], &mut out[..n]);
        }
        count(false);
        assert_eq!(
            allocations(),
            0,
            "{host} Hz (notes {notes}): allocations in process"
        );
    }
}
