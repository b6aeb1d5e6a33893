//! Stream a recording (timbre transfer) or a MIDI file (synth mode) through a trained model
//! block by block, as an audio host calls a plugin, and report the real-time factor and the
//! latency.
//!
//! ```sh
//! cargo run --release --example realtime -- --run runs/violin --input speech.wav --block 256
//! cargo run --release --example realtime -- --run runs/violin --midi data/demo/scale.mid
//! ```
//!
//! Audio in: the file's own sample rate is the host's (or `--host-rate`, resampling the file
//! first); `ddsp::stream::LiveStream` resamples each block to the model's rate, tracks f0 and
//! loudness live (causally: see the README's Realtime section for how that differs from the
//! offline analysis), renders, and resamples back. The input gain is set once from the
//! file's peak, as a user sets their input level (`--input-gain-db` to choose it).
//!
//! `--frames`: the offline analysis of the whole file streamed frame by frame at the model's
//! rate (`FrameStream`); its output equals `ddspe2e render --quiet-db 0` sample for sample.

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use clap::Parser;
use ddsp::features::audio::{read_audio, resample, write_wav};
use ddsp::features::midi::read_midi;
use ddsp::infer::{Checkpoint, Model};
use ddsp::stream::{Conditioning, FrameIn, FrameStream, LiveStream, NotePlayer, NoteShape};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Stream a recording or a MIDI file through a checkpoint in blocks.
#[derive(Parser)]
struct Args {
    /// Run directory (or checkpoint directory) to load.
    #[arg(long)]
    run: PathBuf,
    /// Audio to transfer (any format `ddspe2e render` reads).
    #[arg(long, required_unless_present = "midi", conflicts_with = "midi")]
    input: Option<PathBuf>,
    /// A MIDI file to play (synth mode).
    #[arg(long)]
    midi: Option<PathBuf>,
    /// Output WAV.
    #[arg(long, default_value = "realtime.wav")]
    output: PathBuf,
    /// Block size, samples at the host rate (32 to 4096).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(32..=4096))]
    block: u32,
    /// Host sample rate, Hz (default: the input file's; 48000 for MIDI).
    #[arg(long)]
    host_rate: Option<u32>,
    /// Input gain, dB (default: the gain that brings the file's peak to the model's
    /// `normalizeTo`, as the offline analysis normalises).
    #[arg(long, allow_hyphen_values = true)]
    input_gain_db: Option<f32>,
    /// Stream the offline analysis frame by frame at the model's rate instead.
    #[arg(long, conflicts_with = "midi")]
    frames: bool,
    /// Store the decoder's weights in half precision (f16): about twice as fast for the wide
    /// presets, output within about 1e-4 of the full-precision stream.
    #[arg(long)]
    half_weights: bool,
}

/// The host's blocks: how long `process` took in all, and the output.
struct Streamed {
    audio: Vec<f32>,
    busy: Duration,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let model = Model::load(&args.run, Checkpoint::Best, &Device::flex())
        .with_context(|| format!("loading {}", args.run.display()))?;
    let block = args.block as usize;
    let (streamed, rate, latency) = match (&args.input, &args.midi) {
        (Some(input), _) if args.frames => frames_mode(&model, input, block, args.half_weights)?,
        (Some(input), _) => audio_mode(&model, input, &args)?,
        (None, Some(midi)) => midi_mode(&model, midi, &args)?,
        (None, None) => bail!("give --input or --midi"),
    };
    write_wav(&args.output, &streamed.audio, rate)?;
    let seconds = streamed.audio.len() as f64 / rate as f64;
    println!(
        "{}: {seconds:.2} s at {rate} Hz in blocks of {block} ({:.1} ms)",
        args.output.display(),
        block as f64 * 1e3 / rate as f64
    );
    if let Some(ms) = latency {
        println!("latency {ms:.1} ms (ddsp-vst: 64 ms)");
    }
    println!(
        "rendering took {:.3} s on one thread: {:.0}x real time",
        streamed.busy.as_secs_f64(),
        seconds / streamed.busy.as_secs_f64().max(1e-9)
    );
    Ok(())
}

/// Audio in through a [`LiveStream`] at the file's (or the chosen) host rate.
fn audio_mode(model: &Model, input: &Path, args: &Args) -> Result<(Streamed, u32, Option<f64>)> {
    let decoded = read_audio(input).with_context(|| format!("reading {}", input.display()))?;
    let host_rate = args.host_rate.unwrap_or(decoded.sample_rate);
    let samples = resample(&decoded.samples, decoded.sample_rate, host_rate)?;
    let peak = samples.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let gain_db = args.input_gain_db.unwrap_or_else(|| {
        let target = model.config().normalize_to as f32;
        if peak > 0.0 {
            20.0 * (target / peak).log10()
        } else {
            0.0
        }
    });
    println!("{}: input gain {gain_db:+.1} dB", input.display());
    let input_gain = 10f32.powf(gain_db / 20.0);
    let block = args.block as usize;
    let mut stream = live(
        LiveStream::for_model(model, host_rate, block, Conditioning::Audio { input_gain })?,
        args,
    );
    let latency = stream.latency_seconds() * 1e3;
    // The input, then silence for the latency and the reverb's tail.
    let tail = stream.latency_samples() + host_rate as usize / 2;
    let mut padded = samples;
    padded.resize(padded.len() + tail, 0.0);
    let streamed = run_blocks(&mut stream, &padded, block, padded.len());
    Ok((streamed, host_rate, Some(latency)))
}

/// Synth mode: the file's notes through a [`LiveStream`] at the host rate.
fn midi_mode(model: &Model, midi: &Path, args: &Args) -> Result<(Streamed, u32, Option<f64>)> {
    let notes = read_midi(midi).with_context(|| format!("reading {}", midi.display()))?;
    if notes.is_empty() {
        bail!("{}: no notes", midi.display());
    }
    let shape = NoteShape {
        peak_db: model.loud_note_db().unwrap_or(NoteShape::default().peak_db),
        ..Default::default()
    };
    let player = NotePlayer::from_notes(&notes, shape, model.frame_rate());
    let frames = player.len_frames().expect("a note list ends") as f64;
    let host_rate = args.host_rate.unwrap_or(48_000);
    let block = args.block as usize;
    let mut stream = live(
        LiveStream::for_model(model, host_rate, block, Conditioning::Notes(player))?,
        args,
    );
    let latency = stream.latency_seconds() * 1e3;
    let seconds = frames / model.frame_rate() + stream.latency_seconds() + 0.5;
    let total = (seconds * host_rate as f64) as usize;
    let streamed = run_blocks(&mut stream, &[], block, total);
    Ok((streamed, host_rate, Some(latency)))
}

/// `stream` with the weights the arguments ask for.
fn live(stream: LiveStream, args: &Args) -> LiveStream {
    if args.half_weights {
        stream.with_half_weights()
    } else {
        stream
    }
}

/// `total` samples of `stream` in blocks of `block`, timing `process` alone.
fn run_blocks(stream: &mut LiveStream, input: &[f32], block: usize, total: usize) -> Streamed {
    let mut audio = vec![0.0f32; total];
    let mut busy = Duration::ZERO;
    for (k, out) in audio.chunks_mut(block).enumerate() {
        let from = (k * block).min(input.len());
        let to = (from + out.len()).min(input.len());
        let started = Instant::now();
        stream.process(&input[from..to], out);
        busy += started.elapsed();
    }
    Streamed { audio, busy }
}

/// The offline analysis, streamed frame by frame at the model's rate.
fn frames_mode(
    model: &Model,
    input: &Path,
    block: usize,
    half_weights: bool,
) -> Result<(Streamed, u32, Option<f64>)> {
    // The stream first: a model it cannot run is refused before the file is analysed.
    let mut stream = FrameStream::for_model(model, block)?;
    let (frames, _) = model
        .features_of_file(input)
        .with_context(|| format!("analysing {}", input.display()))?;
    if half_weights {
        stream = stream.with_half_weights();
    }
    let mut source = (0..frames.len()).map(|i| FrameIn {
        f0_hz: frames.f0_hz[i],
        loudness_db: frames.loudness_db[i],
        voicing: frames.voicing[i],
    });
    let mut out = vec![0.0f32; block];
    let mut audio = Vec::with_capacity(frames.len() * stream.hop());
    let mut busy = Duration::ZERO;
    loop {
        let started = Instant::now();
        let n = stream.process(&mut source, &mut out);
        busy += started.elapsed();
        audio.extend_from_slice(&out[..n]);
        if n < block {
            break;
        }
    }
    // The whole file's analysis comes first: the output is aligned with the frames, and a
    // latency has no meaning.
    Ok((Streamed { audio, busy }, model.sample_rate_hz(), None))
}
