//! Play a trained model live: microphone in (timbre transfer) or a MIDI keyboard in (synth
//! mode), speakers out, through `ddsp::stream::LiveStream` at the sound card's rate.
//!
//! ```sh
//! cargo run --release --features live --example live -- --run runs/violin
//! cargo run --release --features live --example live -- --run runs/violin --midi-in
//! cargo run --release --features live --example live -- --list
//! ```
//!
//! Needs the `live` feature (`cpal` and `midir`; on Linux the ALSA headers: `sudo apt install
//! libasound2-dev`). The audio callback only moves samples between lock-free ring buffers
//! (`rtrb`) and calls `LiveStream::process`, which allocates nothing; input and output run on
//! the default devices at the output's rate (the input is opened at the same rate). Press
//! Enter to stop.

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use clap::Parser;
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use ddsp::infer::{Checkpoint, Model};
use ddsp::stream::{Conditioning, LiveStream, MAX_BLOCK, NotePlayer, NoteShape};
use std::path::PathBuf;

/// Play a checkpoint live.
#[derive(Parser)]
struct Args {
    /// Run directory (or checkpoint directory) to load.
    #[arg(long, required_unless_present = "list")]
    run: Option<PathBuf>,
    /// Synth mode: play notes from the first MIDI input port (or `--midi-port`).
    #[arg(long)]
    midi_in: bool,
    /// MIDI input port number (see `--list`).
    #[arg(long, default_value_t = 0)]
    midi_port: usize,
    /// Input gain, dB (audio in): bring the microphone's peaks near the model's
    /// `normalizeTo`.
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    input_gain_db: f32,
    /// List the audio devices and MIDI ports, then exit.
    #[arg(long)]
    list: bool,
}

/// Input samples the output callback lets wait beyond its own block before dropping the
/// oldest (a slower output clock).
const BACKLOG: usize = 1024;

/// A MIDI message the audio callback applies: note on (key, velocity) or off (key).
#[derive(Clone, Copy)]
enum NoteEvent {
    On(u8, u8),
    Off(u8),
}

fn main() -> Result<()> {
    let args = Args::parse();
    let host = cpal::default_host();
    if args.list {
        return list(&host);
    }
    let run = args.run.as_ref().expect("clap requires --run");
    let model = Model::load(run, Checkpoint::Best, &Device::flex())
        .with_context(|| format!("loading {}", run.display()))?;
    let output = host
        .default_output_device()
        .context("no audio output device (see --list)")?;
    let out_config = output
        .default_output_config()
        .context("the output device has no default configuration")?;
    if out_config.sample_format() != cpal::SampleFormat::F32 {
        bail!(
            "the output device's format is {:?}; this example plays f32",
            out_config.sample_format()
        );
    }
    let rate = out_config.sample_rate().0;
    let channels = out_config.channels() as usize;
    let out_config: cpal::StreamConfig = out_config.into();

    // Ring buffers: microphone samples and MIDI events into the audio callback.
    let (mut mic_tx, mut mic_rx) = rtrb::RingBuffer::<f32>::new(4 * MAX_BLOCK);
    let (mut note_tx, mut note_rx) = rtrb::RingBuffer::<NoteEvent>::new(256);

    let conditioning = if args.midi_in {
        let shape = NoteShape {
            peak_db: model.loud_note_db().unwrap_or(NoteShape::default().peak_db),
            ..Default::default()
        };
        Conditioning::Notes(NotePlayer::live(shape, model.frame_rate()))
    } else {
        Conditioning::Audio {
            input_gain: 10f32.powf(args.input_gain_db / 20.0),
        }
    };
    let mut stream = LiveStream::for_model(&model, rate, MAX_BLOCK, conditioning)?;
    println!(
        "{} at {rate} Hz, {channels} channel(s); model latency {:.1} ms plus the devices' buffers",
        output.name().unwrap_or_else(|_| "output".into()),
        stream.latency_seconds() * 1e3
    );

    // Keep the input stream or MIDI connection alive while playing.
    let mut _mic = None;
    let mut _midi = None;
    if args.midi_in {
        let midi = midir::MidiInput::new("ddsp").context("cannot open MIDI input")?;
        let ports = midi.ports();
        let port = ports
            .get(args.midi_port)
            .with_context(|| format!("no MIDI input port {} (see --list)", args.midi_port))?;
        println!("MIDI in: {}", midi.port_name(port).unwrap_or_default());
        let connection = midi
            .connect(
                port,
                "ddsp-in",
                move |_, message, _| {
                    let event = match *message {
                        [status, key, velocity] if status & 0xF0 == 0x90 && velocity > 0 => {
                            Some(NoteEvent::On(key, velocity))
                        }
                        [status, key, _] if matches!(status & 0xF0, 0x80 | 0x90) => {
                            Some(NoteEvent::Off(key))
                        }
                        _ => None,
                    };
                    if let Some(e) = event {
                        // A full queue drops the event rather than block the MIDI thread.
                        let _ = note_tx.push(e);
                    }
                },
                (),
            )
            .map_err(|e| anyhow::anyhow!("cannot connect to the MIDI port: {e}"))?;
        _midi = Some(connection);
    }

    // Warm up (first touches of every buffer happen here, not in the audio callback).
    let mut mono_in = vec![0.0f32; MAX_BLOCK];
    let mut mono_out = vec![0.0f32; MAX_BLOCK];
    for _ in 0..8 {
        stream.process(&mono_in, &mut mono_out);
    }
    stream.reset();
    let speakers = output.build_output_stream(
        &out_config,
        move |data: &mut [f32], _: &cpal::OutputCallbackInfo| {
            while let Ok(event) = note_rx.pop() {
                if let Some(player) = stream.notes() {
                    match event {
                        NoteEvent::On(key, velocity) => player.note_on(key, velocity),
                        NoteEvent::Off(key) => player.note_off(key),
                    }
                }
            }
            // More input waiting than this callback and a margin (the input's clock running
            // ahead of the output's): drop the oldest, so latency cannot grow.
            let frames = data.len() / channels;
            let excess = mic_rx.slots().saturating_sub(frames + BACKLOG);
            if excess > 0
                && let Ok(chunk) = mic_rx.read_chunk(excess)
            {
                chunk.commit_all();
            }
            for block in data.chunks_mut(MAX_BLOCK * channels) {
                let n = block.len() / channels;
                for v in &mut mono_in[..n] {
                    // Input not there yet (start-up, or a slower input clock) plays as silence.
                    *v = mic_rx.pop().unwrap_or(0.0);
                }
                stream.process(&mono_in[..n], &mut mono_out[..n]);
                for (frame, v) in block.chunks_mut(channels).zip(&mono_out[..n]) {
                    frame.fill(*v);
                }
            }
        },
        |e| eprintln!("output stream error: {e}"),
        None,
    )?;
    speakers.play()?;
    // The microphone starts after the speakers, so no input piles up before the first
    // output callback.
    if !args.midi_in {
        let input = host
            .default_input_device()
            .context("no audio input device (see --list), or use --midi-in")?;
        let in_default = input
            .default_input_config()
            .context("the input device has no default configuration")?;
        if in_default.sample_format() != cpal::SampleFormat::F32 {
            bail!(
                "the input device's format is {:?}; this example records f32",
                in_default.sample_format()
            );
        }
        let in_channels = in_default.channels() as usize;
        let in_config = cpal::StreamConfig {
            channels: in_channels as u16,
            sample_rate: cpal::SampleRate(rate),
            buffer_size: cpal::BufferSize::Default,
        };
        println!(
            "audio in: {} at {rate} Hz",
            input.name().unwrap_or_else(|_| "input".into())
        );
        let mic = input
            .build_input_stream(
                &in_config,
                move |data: &[f32], _: &cpal::InputCallbackInfo| {
                    for frame in data.chunks(in_channels) {
                        let mono = frame.iter().sum::<f32>() / in_channels as f32;
                        // A full queue (output stalled) drops input rather than block.
                        let _ = mic_tx.push(mono);
                    }
                },
                |e| eprintln!("input stream error: {e}"),
                None,
            )
            .context("cannot open the input at the output's rate")?;
        mic.play()?;
        _mic = Some(mic);
    }
    println!("playing; press Enter to stop");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(())
}

/// Print the host's devices and the MIDI input ports.
fn list(host: &cpal::Host) -> Result<()> {
    println!("audio host: {:?}", host.id());
    for device in host.output_devices()? {
        println!("  output: {}", device.name().unwrap_or_default());
    }
    for device in host.input_devices()? {
        println!("  input:  {}", device.name().unwrap_or_default());
    }
    match midir::MidiInput::new("ddsp") {
        Ok(midi) => {
            for (i, port) in midi.ports().iter().enumerate() {
                println!(
                    "  MIDI in {i}: {}",
                    midi.port_name(port).unwrap_or_default()
                );
            }
        }
        Err(e) => println!("  MIDI: {e}"),
    }
    Ok(())
}
