//! Stream a recording through a trained model block by block, as an audio callback would, and
//! report the real-time factor.
//!
//! ```sh
//! cargo run --example realtime -- --run runs/violin --input speech.wav --block 256
//! ```
//!
//! The f0, loudness and voicing frames are analysed from the whole file first (frames mode:
//! the causal live analysis, host sample rates, MIDI input and live audio are still to come,
//! issue 14); then `ddsp::stream::FrameStream` renders them in blocks of `--block` samples on
//! one thread, and the result is written at the model's sample rate. The features are used as
//! analysed: the output equals `ddspe2e render --quiet-db 0` (render's other adjustments off)
//! sample for sample.

use anyhow::{Context, Result};
use burn::tensor::Device;
use clap::Parser;
use ddsp::features::audio::write_wav;
use ddsp::infer::{Checkpoint, Model};
use ddsp::stream::{FrameIn, FrameStream};
use std::path::PathBuf;
use std::time::Instant;

/// Stream a recording through a checkpoint in blocks.
#[derive(Parser)]
struct Args {
    /// Run directory (or checkpoint directory) to load.
    #[arg(long)]
    run: PathBuf,
    /// Audio to transfer (any format `ddspe2e render` reads).
    #[arg(long)]
    input: PathBuf,
    /// Output WAV.
    #[arg(long, default_value = "realtime.wav")]
    output: PathBuf,
    /// Block size, samples at the model's rate (32 to 4096).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(32..=4096))]
    block: u32,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let model = Model::load(&args.run, Checkpoint::Best, &Device::flex())
        .with_context(|| format!("loading {}", args.run.display()))?;
    let (frames, _) = model
        .features_of_file(&args.input)
        .with_context(|| format!("analysing {}", args.input.display()))?;
    let block = args.block as usize;
    let mut stream = FrameStream::for_model(&model, block)?;
    let mut source = (0..frames.len()).map(|i| FrameIn {
        f0_hz: frames.f0_hz[i],
        loudness_db: frames.loudness_db[i],
        voicing: frames.voicing[i],
    });
    let mut out = vec![0.0f32; block];
    let mut audio = Vec::with_capacity(frames.len() * stream.hop());
    let mut busy = std::time::Duration::ZERO;
    loop {
        let started = Instant::now();
        let n = stream.process(&mut source, &mut out);
        busy += started.elapsed();
        audio.extend_from_slice(&out[..n]);
        if n < block {
            break;
        }
    }
    let rate = model.sample_rate_hz();
    write_wav(&args.output, &audio, rate)?;
    let seconds = audio.len() as f64 / rate as f64;
    println!(
        "{}: {seconds:.2} s of audio in blocks of {block} ({:.1} ms) at {rate} Hz",
        args.output.display(),
        block as f64 * 1e3 / rate as f64
    );
    println!(
        "rendering took {:.3} s on one thread: {:.0}x real time",
        busy.as_secs_f64(),
        seconds / busy.as_secs_f64().max(1e-9)
    );
    Ok(())
}
