//! `FrameStream::process` allocates nothing once the stream is warm: a counting global
//! allocator around the calls (this file holds one test, so no other test allocates
//! meanwhile).

use burn::tensor::Device;
use ddsp::Config;
use ddsp::model::DdspModel;
use ddsp::stream::{FrameIn, FrameStream};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::SeqCst) {
            ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::SeqCst) {
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
    COUNTING.store(true, Ordering::SeqCst);
    let probe = std::hint::black_box(Box::new(1u64));
    COUNTING.store(false, Ordering::SeqCst);
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
        COUNTING.store(true, Ordering::SeqCst);
        let mut total = 0;
        for _ in 0..(16384 / block).max(4) {
            total += stream.process(&mut frames, &mut out);
        }
        COUNTING.store(false, Ordering::SeqCst);
        assert!(total > 0);
        assert_eq!(
            ALLOCATIONS.load(Ordering::SeqCst),
            0,
            "block {block}: allocations in process"
        );
        assert!(out.iter().any(|v| *v != 0.0), "block {block}: silent");
    }
}
