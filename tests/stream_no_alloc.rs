//! `FrameStream::process` allocates nothing once the stream is warm: a global allocator that
//! counts the allocations of the test's own thread while it processes (other threads, the
//! harness's or a thread pool's, do not count).

use burn::tensor::Device;
use ddsp::Config;
use ddsp::model::DdspModel;
use ddsp::stream::{FrameIn, FrameStream};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn counting() -> bool {
    COUNTING.try_with(Cell::get).unwrap_or(false)
}

fn count(on: bool) {
    COUNTING.with(|c| c.set(on));
}
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counting() {
            ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counting() {
            ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn process_allocates_nothing() {
    let config = Config::from_sources(
        Some(std::path::Path::new("configs/tiny.json")),
        &[("reverb-length", "500")] as &[(&str, &str)],
    )
    .expect("tiny preset");
    let model = DdspModel::new(&config, &Device::flex());
    // The counter sees allocations.
    count(true);
    let probe = std::hint::black_box(Box::new(1u64));
    count(false);
    assert_eq!(
        ALLOCATIONS.load(Ordering::SeqCst),
        1,
        "the counting allocator is not in use"
    );
    drop(probe);
    for block in [32, 64, 256, 1024, 4096] {
        let mut stream = FrameStream::new(&model, 1.0, 0, block).unwrap();
        let mut frames = (0..).map(|i| FrameIn {
            f0_hz: 220.0 + (i % 50) as f32 * 7.0,
            loudness_db: -30.0 - (i % 13) as f32,
            voicing: 0.9,
        });
        let mut out = vec![0.0f32; block];
        // Warm-up: the matrix kernels size their thread-local packing buffers once.
        stream.process(&mut frames, &mut out);
        ALLOCATIONS.store(0, Ordering::SeqCst);
        count(true);
        let mut total = 0;
        for _ in 0..(16384 / block).max(4) {
            total += stream.process(&mut frames, &mut out);
        }
        count(false);
        assert!(total > 0);
        assert_eq!(
            ALLOCATIONS.load(Ordering::SeqCst),
            0,
            "block {block}: allocations in process"
        );
        assert!(out.iter().any(|v| *v != 0.0), "block {block}: silent");
    }
}
