//! `ddspe2e render`: timbre transfer of any recording through a trained model.

use anyhow::{Context, Result, bail};
use ddsp::features::audio::WavSink;
use ddsp::infer::adjust::{Adjustments, adjust};
use ddsp::infer::{Checkpoint, Frames, InputLevel, Model, Rendered};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};

/// `render`'s flags.
#[derive(clap::Args)]
pub struct RenderArgs {
    /// A run directory (its best checkpoint unless --which says otherwise) or a checkpoint
    /// directory.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Which checkpoint of a run: best, latest or step_N.
    #[arg(long, default_value = "best")]
    which: Checkpoint,
    /// The recording to render (WAV, AIFF, FLAC, MP3, Ogg Vorbis; any rate; channels mixed).
    #[arg(long, required_unless_present = "midi", conflicts_with = "midi")]
    input: Option<PathBuf>,
    /// Play a MIDI file instead (synth mode: f0 and loudness from its notes, monophonic, the
    /// newest held key sounding, with an ADSR envelope).
    #[arg(long)]
    midi: Option<PathBuf>,
    /// Synth mode: loudness of a velocity-127 note at its envelope's peak, dB (default: the
    /// training data's loudest notes where known, else -25).
    #[arg(long, allow_hyphen_values = true)]
    peak_db: Option<f64>,
    /// Synth mode: vibrato depth, cents (at 5.5 Hz).
    #[arg(long, default_value_t = 0.0)]
    vibrato_cents: f64,
    /// The WAV file to write (at the model's sample rate).
    #[arg(long)]
    output: PathBuf,
    /// Transpose the input by this many semitones.
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    pitch_shift: f64,
    /// Keep the input's level instead of peak-normalising it as training audio was (for a
    /// piece of a longer recording already at its training gain).
    #[arg(long, requires = "input")]
    keep_level: bool,
    /// Add this many dB to the input's loudness.
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    loudness_shift: f64,
    /// Move the input's register by octaves toward the training data's and map its note
    /// loudness onto the training data's (magenta's timbre transfer adjustments).
    #[arg(long)]
    auto_adjust: bool,
    /// Frames without a note (breaths, consonants, silence) are turned down by up to this
    /// many dB; 0 keeps them.
    #[arg(long, default_value_t = 20.0)]
    quiet_db: f64,
    /// Note detection threshold (magenta's note-on ratio; higher keeps fewer frames).
    #[arg(long, default_value_t = 1.0)]
    note_threshold: f64,
    /// Also write the harmonic, noise, dry and wet (reverb) parts beside the output.
    #[arg(long)]
    stems: bool,
    /// The timbre grower: render the first --stage-seconds of the input with the first 1, 2,
    /// ... N harmonics, one stage after another, into the output.
    #[arg(long, value_name = "N")]
    grow_stages: Option<usize>,
    /// Length of each grow stage, seconds.
    #[arg(long, default_value_t = 0.5)]
    stage_seconds: f64,
    /// Silence between grow stages, seconds.
    #[arg(long, default_value_t = 0.2)]
    gap_seconds: f64,
    /// Noise seed (default: the run's seed).
    #[arg(long)]
    seed: Option<u64>,
    /// Compute device.
    #[arg(long, default_value = "auto")]
    device: ddsp::DeviceChoice,
}

/// Which part of a render a stem file holds.
type Part = fn(&Rendered) -> &Vec<f32>;

/// The output file and, with stems, its parts beside it.
struct Sinks {
    main: WavSink,
    stems: Vec<(WavSink, Part)>,
}

impl Sinks {
    fn create(output: &Path, stems: bool, rate: u32) -> Result<Self> {
        let parts: [(&str, Part); 4] = [
            ("harmonic", |r| &r.harmonic),
            ("noise", |r| &r.noise),
            ("dry", |r| &r.dry),
            ("wet", |r| &r.wet),
        ];
        let stems = if stems {
            parts
                .iter()
                .map(|(name, get)| Ok((WavSink::create(&stem_path(output, name), rate)?, *get)))
                .collect::<Result<Vec<_>>>()?
        } else {
            Vec::new()
        };
        Ok(Self {
            main: WavSink::create(output, rate)?,
            stems,
        })
    }

    fn write(&mut self, piece: &Rendered) -> ddsp::Result<()> {
        self.main.write(&piece.audio)?;
        for (sink, get) in &mut self.stems {
            sink.write(get(piece))?;
        }
        Ok(())
    }

    fn silence(&mut self, samples: usize) -> ddsp::Result<()> {
        let zeros = vec![0f32; samples];
        self.main.write(&zeros)?;
        for (sink, _) in &mut self.stems {
            sink.write(&zeros)?;
        }
        Ok(())
    }

    fn finish(self) -> ddsp::Result<()> {
        for (sink, _) in self.stems {
            sink.finish()?;
        }
        self.main.finish()
    }
}

/// `out.wav` -> `out.harmonic.wav`.
fn stem_path(output: &Path, stem: &str) -> PathBuf {
    let base = output.file_stem().unwrap_or_default().to_string_lossy();
    output.with_file_name(format!("{base}.{stem}.wav"))
}

pub fn render(args: &RenderArgs) -> Result<()> {
    let started = std::time::Instant::now();
    let device = ddsp::device::select(args.device)?;
    let model = Model::load(&args.checkpoint, args.which, &device.device)?
        .with_input_level(InputLevel::keep_if(args.keep_level));
    for note in model.notes() {
        eprintln!("note: {note}");
    }
    eprintln!(
        "model {} (step {}), {} Hz, device {}",
        model.dir().display(),
        model.step(),
        model.sample_rate_hz(),
        device.description
    );
    let (frames, seconds) = match (&args.input, &args.midi) {
        (_, Some(midi)) => {
            if model.inner().0.decoder.has_encoder() {
                eprintln!(
                    "note: this model's z-encoder hears silence in synth mode (there is no \
                     audio to take MFCCs from); its timbre is the one it learned for silence"
                );
            }
            midi_frames(&model, midi, args)?
        }
        (Some(input), None) => {
            let spinner =
                ProgressBar::new_spinner().with_message(format!("analysing {}", input.display()));
            spinner.enable_steady_tick(std::time::Duration::from_millis(200));
            let analysed = model.features_of_file(input)?;
            spinner.finish_and_clear();
            analysed
        }
        (None, None) => bail!("render needs --input or --midi"),
    };
    // Notes played from MIDI are all notes: no gating of quiet frames, no register moves.
    let synth_mode = args.midi.is_some();
    let options = Adjustments {
        pitch_shift: args.pitch_shift,
        loudness_shift: args.loudness_shift,
        auto: args.auto_adjust && !synth_mode,
        quiet_db: if synth_mode { 0.0 } else { args.quiet_db },
        note_threshold: args.note_threshold,
    };
    let adjusted = adjust(&frames, model.frame_rate(), model.stats(), &options)?;
    eprintln!(
        "{:.0}% of the frames hold notes{}",
        100.0 * adjusted.note_share,
        if adjusted.auto_applied {
            format!(
                "; auto-adjust: {:+} octave(s), loudness mapped onto the training data's",
                adjusted.octave_shift
            )
        } else if args.auto_adjust {
            "; no notes found, so no auto-adjust".into()
        } else {
            String::new()
        }
    );
    let seed = args.seed.unwrap_or(model.config().seed);
    let mut sinks = Sinks::create(&args.output, args.stems, model.sample_rate_hz())?;
    match args.grow_stages {
        Some(stages) => grow(&model, &adjusted.frames, stages, args, seed, &mut sinks)?,
        None => {
            let bar = ProgressBar::new(adjusted.frames.len() as u64).with_style(
                ProgressStyle::with_template(
                    "[{elapsed_precise}] {bar:30} {percent}% rendering, eta {eta}",
                )
                .expect("valid template"),
            );
            let mut state = model.start(seed);
            model.render_pieces(
                &adjusted.frames,
                &mut state,
                &mut |piece| sinks.write(&piece),
                &mut |done, _| bar.set_position(done as u64),
            )?;
            bar.finish_and_clear();
        }
    }
    sinks
        .finish()
        .with_context(|| format!("writing {}", args.output.display()))?;
    let took = started.elapsed().as_secs_f64();
    println!(
        "wrote {}{} ({seconds:.1} s of input in {took:.1} s, {:.1}x real time)",
        args.output.display(),
        if args.stems { " and its stems" } else { "" },
        seconds / took
    );
    Ok(())
}

/// Synth mode: the frames a MIDI file's notes play, and their length in seconds.
fn midi_frames(model: &Model, path: &Path, args: &RenderArgs) -> Result<(Frames, f64)> {
    use ddsp::stream::FrameSource;
    let notes = ddsp::features::midi::read_midi(path)?;
    if notes.is_empty() {
        bail!("{}: no notes", path.display());
    }
    let peak_db = args
        .peak_db
        .or_else(|| model.loud_note_db())
        .unwrap_or(ddsp::stream::NoteShape::default().peak_db);
    if !peak_db.is_finite() || !args.vibrato_cents.is_finite() {
        bail!("--peak-db and --vibrato-cents must be finite");
    }
    let shape = ddsp::stream::NoteShape {
        peak_db,
        vibrato_cents: args.vibrato_cents,
        ..Default::default()
    };
    let mut player = ddsp::stream::NotePlayer::from_notes(&notes, shape, model.frame_rate());
    let mut frames = Frames::default();
    while let Some(f) = player.next_frame() {
        frames.f0_hz.push(f.f0_hz);
        frames.loudness_db.push(f.loudness_db);
        frames.voicing.push(f.voicing);
    }
    eprintln!(
        "{}: {} notes, played at {peak_db:.1} dB peak",
        path.display(),
        notes.len()
    );
    let seconds = frames.len() as f64 / model.frame_rate();
    Ok((frames, seconds))
}

/// The timbre grower: stage `n` renders the first `--stage-seconds` with harmonics 1..=n.
fn grow(
    model: &Model,
    frames: &Frames,
    stages: usize,
    args: &RenderArgs,
    seed: u64,
    sinks: &mut Sinks,
) -> Result<()> {
    let valid =
        |x: f64, min: f64, strict: bool| x.is_finite() && (x > min || (!strict && x == min));
    if stages == 0 || !valid(args.stage_seconds, 0.0, true) || !valid(args.gap_seconds, 0.0, false)
    {
        bail!("--grow-stages needs N >= 1, --stage-seconds > 0 and --gap-seconds >= 0");
    }
    let harmonics = model.config().harmonics;
    if stages > harmonics {
        bail!("--grow-stages {stages}: the model has {harmonics} harmonics");
    }
    let stage_frames =
        ((args.stage_seconds * model.frame_rate()).round() as usize).clamp(1, frames.len());
    let stage = frames.slice(0..stage_frames);
    let gap = (args.gap_seconds * model.sample_rate_hz() as f64).round() as usize;
    let bar = ProgressBar::new(stages as u64);
    for n in 1..=stages {
        let mut state = model.start(seed).keep_harmonics(n);
        model.render_pieces(&stage, &mut state, &mut |p| sinks.write(&p), &mut |_, _| {})?;
        if n < stages {
            sinks.silence(gap)?;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(())
}
