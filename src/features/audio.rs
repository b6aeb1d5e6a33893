//! Audio input (WAV, AIFF, FLAC, MP3, Ogg Vorbis) and WAV output, mono mix-down,
//! band-limited resampling and peak normalisation.

use std::io::Read;
use std::path::Path;

use rubato::{FftFixedInOut, Resampler};

use crate::error::{Error, Result};

/// Peak below which a file counts as silent (-120 dBFS).
pub const SILENCE_PEAK: f32 = 1e-6;
/// The file extensions read as audio (any letter case).
pub const AUDIO_EXTENSIONS: [&str; 9] = [
    "wav", "wave", "flac", "mp3", "ogg", "oga", "aif", "aiff", "aifc",
];
/// Sample rates outside this range (Hz) are refused: nothing records below 1 kHz or above
/// 384 kHz, and a rate from a broken header would make resampling allocate without bound.
pub const SAMPLE_RATE_RANGE: std::ops::RangeInclusive<u32> = 1000..=384_000;
/// The longest recording decoded, seconds (4 hours): longer files, or compressed files that
/// claim to decode to more, are refused rather than exhausting memory.
pub const MAX_SECONDS: f64 = 4.0 * 3600.0;

/// A decoded recording: mono samples at the file's own rate.
#[derive(Clone, Debug)]
pub struct Decoded {
    /// Samples in `[-1, 1]`, channels averaged.
    pub samples: Vec<f32>,
    /// The file's sample rate, Hz.
    pub sample_rate: u32,
    /// Channels in the file.
    pub channels: u16,
}

fn audio_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Audio {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Whether `path` has one of the [`AUDIO_EXTENSIONS`].
pub fn is_audio_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| AUDIO_EXTENSIONS.iter().any(|a| e.eq_ignore_ascii_case(a)))
}

/// Decode an audio file, mixed to mono at its own rate: WAV (PCM 8/16/24/32-bit integer,
/// 32/64-bit float, plain or extensible), AIFF, FLAC, MP3 and Ogg Vorbis. Corrupt, truncated,
/// empty, non-finite, implausibly fast or slow, and over-long files are errors naming the file
/// and the problem. (See [`AudioStream`] to decode block by block.)
pub fn read_audio(path: &Path) -> Result<Decoded> {
    let mut stream = AudioStream::open(path)?;
    let mut samples = Vec::new();
    while let Some(block) = stream.next_block()? {
        samples.extend_from_slice(&block);
    }
    Ok(Decoded {
        samples,
        sample_rate: stream.sample_rate(),
        channels: stream.channels(),
    })
}

/// Sample frames per block of [`AudioStream`] from a WAV file.
const BLOCK_FRAMES: usize = 16384;

/// An audio file decoded block by block, mixed to mono at its own rate, with the checks of
/// [`read_audio`] made as it goes (non-finite samples, over-long files) and at the end (no
/// samples, a truncated file): memory stays bounded whatever the file's length.
pub struct AudioStream {
    path: std::path::PathBuf,
    sample_rate: u32,
    channels: u16,
    source: Source,
    /// Mono samples returned so far.
    frames: u64,
    /// Sample frames the header announces, when it does (symphonia).
    expected: Option<u64>,
}

/// Where an [`AudioStream`]'s samples come from.
enum Source {
    /// hound, 32-bit float.
    WavFloat(hound::WavIntoSamples<std::io::BufReader<std::fs::File>, f32>),
    /// hound, integer PCM, with the scale to `[-1, 1)`.
    WavInt(
        hound::WavIntoSamples<std::io::BufReader<std::fs::File>, i32>,
        f32,
    ),
    /// symphonia.
    Symphonia {
        format: Box<dyn symphonia::core::formats::FormatReader>,
        decoder: Box<dyn symphonia::core::codecs::audio::AudioDecoder>,
        track: u32,
        interleaved: Vec<f32>,
    },
    /// Ended.
    Done,
}

impl AudioStream {
    /// Open `path` and read its header.
    pub fn open(path: &Path) -> Result<Self> {
        let mut head = [0u8; 12];
        let is_wav = {
            let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
            let n = f.read(&mut head).map_err(|e| Error::io(path, e))?;
            n == 12 && &head[0..4] == b"RIFF" && &head[8..12] == b"WAVE"
        };
        let looks_wav = is_wav
            || path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e.eq_ignore_ascii_case("wav") || e.eq_ignore_ascii_case("wave"));
        if !looks_wav {
            return open_symphonia(path);
        }
        // hound first (exact error reports for broken WAVs); encodings it lacks (64-bit float,
        // some extensible layouts) through symphonia.
        match open_hound(path) {
            Ok(stream) => Ok(stream),
            Err(HoundFailure::Unsupported(e)) => {
                check_wav_format(path)?;
                open_symphonia(path)
                    .map_err(|_| audio_err(path, format!("not a readable WAV file: {e}")))
            }
            Err(HoundFailure::Broken(e)) => Err(e),
        }
    }

    /// The file's sample rate, Hz.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// The file's channels.
    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// The next block of mono samples, `None` after the last.
    pub fn next_block(&mut self) -> Result<Option<Vec<f32>>> {
        let path = self.path.clone();
        let channels = self.channels as usize;
        let mono = match &mut self.source {
            Source::WavFloat(samples) => hound_block(&path, samples, channels, |v| v)?,
            Source::WavInt(samples, scale) => {
                let scale = *scale;
                hound_block(&path, samples, channels, |v| v as f32 * scale)?
            }
            Source::Symphonia {
                format,
                decoder,
                track,
                interleaved,
            } => symphonia_block(
                &path,
                format.as_mut(),
                decoder.as_mut(),
                *track,
                interleaved,
            )?,
            Source::Done => None,
        };
        let Some(mono) = mono else {
            self.source = Source::Done;
            return self.end().map(|_| None);
        };
        if let Some(i) = mono.iter().position(|v| !v.is_finite()) {
            return Err(audio_err(
                &path,
                format!(
                    "contains a non-finite sample (NaN/Inf) at frame {}",
                    self.frames + i as u64
                ),
            ));
        }
        self.frames += mono.len() as u64;
        let seconds = self.frames as f64 / self.sample_rate as f64;
        if seconds > MAX_SECONDS {
            return Err(too_long(&path, seconds));
        }
        Ok(Some(mono))
    }

    /// The checks that need the whole file: some samples, none missing.
    fn end(&self) -> Result<()> {
        if self.frames == 0 {
            return Err(audio_err(&self.path, "zero length (no samples)"));
        }
        match self.expected {
            Some(n) if self.frames < n => Err(audio_err(
                &self.path,
                format!(
                    "truncated: {} of the {n} sample frames its header announces",
                    self.frames
                ),
            )),
            _ => Ok(()),
        }
    }
}

/// Up to [`BLOCK_FRAMES`] sample frames from hound, mixed to mono.
fn hound_block<S: hound::Sample>(
    path: &Path,
    samples: &mut hound::WavIntoSamples<std::io::BufReader<std::fs::File>, S>,
    channels: usize,
    to_f32: impl Fn(S) -> f32,
) -> Result<Option<Vec<f32>>> {
    let mut interleaved = Vec::with_capacity(BLOCK_FRAMES * channels);
    for sample in samples.by_ref().take(BLOCK_FRAMES * channels) {
        let v =
            sample.map_err(|e| audio_err(path, format!("truncated or corrupt WAV data: {e}")))?;
        interleaved.push(to_f32(v));
    }
    if interleaved.is_empty() {
        return Ok(None);
    }
    if interleaved.len() % channels != 0 {
        return Err(audio_err(
            path,
            "truncated or corrupt WAV data: a partial sample frame at the end",
        ));
    }
    Ok(Some(mix_to_mono(&interleaved, channels)))
}

/// Why hound could not read a file: an encoding it does not know, or a broken file.
enum HoundFailure {
    Unsupported(String),
    Broken(Error),
}

fn open_hound(path: &Path) -> std::result::Result<AudioStream, HoundFailure> {
    let file = std::fs::File::open(path).map_err(|e| HoundFailure::Broken(Error::io(path, e)))?;
    let wav = hound::WavReader::new(std::io::BufReader::new(file)).map_err(|e| match e {
        hound::Error::Unsupported => HoundFailure::Unsupported(e.to_string()),
        hound::Error::IoError(ref io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            HoundFailure::Broken(audio_err(path, format!("not a readable WAV file: {e}")))
        }
        other => HoundFailure::Unsupported(other.to_string()),
    })?;
    let broken = HoundFailure::Broken;
    let spec = wav.spec();
    if spec.channels == 0 {
        return Err(broken(audio_err(path, "WAV header declares 0 channels")));
    }
    check_rate(path, spec.sample_rate).map_err(broken)?;
    let claimed =
        wav.duration() as u64 * spec.channels as u64 * spec.bits_per_sample.div_ceil(8) as u64;
    let len = std::fs::metadata(path)
        .map_err(|e| broken(Error::io(path, e)))?
        .len();
    if claimed > len {
        return Err(broken(audio_err(
            path,
            format!(
                "the header claims {claimed} bytes of samples, but the file holds only {len} \
                 bytes (truncated, or a broken header)"
            ),
        )));
    }
    let seconds = wav.duration() as f64 / spec.sample_rate as f64;
    if seconds > MAX_SECONDS {
        return Err(broken(too_long(path, seconds)));
    }
    let source = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => Source::WavFloat(wav.into_samples()),
        (hound::SampleFormat::Int, bits @ 1..=32) => {
            Source::WavInt(wav.into_samples(), 1.0 / (1u64 << (bits - 1)) as f32)
        }
        (format, bits) => {
            return Err(HoundFailure::Unsupported(format!(
                "sample format {format:?} with {bits} bits"
            )));
        }
    };
    Ok(AudioStream {
        path: path.to_path_buf(),
        sample_rate: spec.sample_rate,
        channels: spec.channels,
        source,
        frames: 0,
        expected: None,
    })
}

fn check_rate(path: &Path, rate: u32) -> Result<()> {
    if rate == 0 {
        return Err(audio_err(path, "the header declares a sample rate of 0"));
    }
    if !SAMPLE_RATE_RANGE.contains(&rate) {
        return Err(audio_err(
            path,
            format!(
                "sample rate {rate} Hz is outside {}..={} Hz (a broken header?)",
                SAMPLE_RATE_RANGE.start(),
                SAMPLE_RATE_RANGE.end()
            ),
        ));
    }
    Ok(())
}

fn too_long(path: &Path, seconds: f64) -> Error {
    audio_err(
        path,
        format!(
            "{:.1} hours of audio, more than the {:.0} hours read at once; split it",
            seconds / 3600.0,
            MAX_SECONDS / 3600.0
        ),
    )
}

/// Open with symphonia (any supported container and codec).
/// The most channels a WAV file read through symphonia may declare.
const WAV_MAX_CHANNELS: u16 = 64;

/// Check the `fmt ` chunk of every RIFF/WAVE header in the first MiB of a file before
/// symphonia reads it (its probe looks for a header anywhere there, not only at the start):
/// symphonia 0.6 computes `channels * bits / 8` in 16 bits, which overflows (a panic where
/// overflow checks are on, as in debug builds) for a header claiming e.g. 32774 channels
/// (found by fuzzing). A header whose `fmt ` chunk cannot be found is left to symphonia.
fn check_wav_format(path: &Path) -> Result<()> {
    let Ok(file) = std::fs::File::open(path) else {
        return Ok(());
    };
    let mut head = Vec::new();
    let _ = file.take(1 << 20).read_to_end(&mut head);
    let mut from = 0;
    while let Some(i) = head[from..].windows(4).position(|w| w == b"RIFF") {
        let riff = from + i;
        if head.get(riff + 8..riff + 12) == Some(b"WAVE".as_slice()) {
            check_wav_fmt(path, &head[riff..])?;
        }
        from = riff + 4;
    }
    Ok(())
}

/// [`check_wav_format`] for the RIFF/WAVE header at the start of `riff`.
fn check_wav_fmt(path: &Path, riff: &[u8]) -> Result<()> {
    let u16_at = |i: usize| u16::from_le_bytes([riff[i], riff[i + 1]]);
    let mut at = 12;
    while at + 8 <= riff.len() {
        let size = u32::from_le_bytes([riff[at + 4], riff[at + 5], riff[at + 6], riff[at + 7]]);
        if &riff[at..at + 4] == b"fmt " {
            if at + 8 + 16 > riff.len() {
                return Ok(());
            }
            let (channels, bits) = (u16_at(at + 10), u16_at(at + 22));
            if channels == 0 || channels > WAV_MAX_CHANNELS {
                return Err(audio_err(
                    path,
                    format!(
                        "the WAV header declares {channels} channels (1 to {WAV_MAX_CHANNELS} \
                         are read)"
                    ),
                ));
            }
            if bits > 64 {
                return Err(audio_err(
                    path,
                    format!("the WAV header declares {bits} bits per sample (at most 64)"),
                ));
            }
            return Ok(());
        }
        // Chunks are padded to an even length.
        at = at
            .saturating_add(8)
            .saturating_add(size as usize)
            .saturating_add(size as usize & 1);
    }
    Ok(())
}

fn open_symphonia(path: &Path) -> Result<AudioStream> {
    check_wav_format(path)?;
    use symphonia::core::codecs::audio::AudioDecoderOptions;
    use symphonia::core::errors::Error as SymError;
    use symphonia::core::formats::probe::Hint;
    use symphonia::core::formats::{FormatOptions, TrackType};
    use symphonia::core::io::MediaSourceStream;
    use symphonia::core::meta::MetadataOptions;

    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let stream = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let unreadable = |e: SymError| {
        audio_err(
            path,
            format!("not a readable audio file (WAV, AIFF, FLAC, MP3 or Ogg Vorbis): {e}"),
        )
    };
    let format = symphonia::default::get_probe()
        .probe(
            &hint,
            stream,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(unreadable)?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| audio_err(path, "no audio track"))?;
    let (track_id, expected) = (track.id, track.num_frames);
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| audio_err(path, "no audio track"))?
        .clone();
    let decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(|e| audio_err(path, format!("unsupported audio codec: {e}")))?;
    let rate = params.sample_rate.unwrap_or(0);
    check_rate(path, rate)?;
    let channels = params.channels.as_ref().map(|c| c.count()).unwrap_or(0);
    if channels == 0 {
        return Err(audio_err(path, "the stream declares 0 channels"));
    }
    if let Some(n) = expected
        && n as f64 / rate as f64 > MAX_SECONDS
    {
        return Err(too_long(path, n as f64 / rate as f64));
    }
    Ok(AudioStream {
        path: path.to_path_buf(),
        sample_rate: rate,
        channels: channels.min(u16::MAX as usize) as u16,
        source: Source::Symphonia {
            format,
            decoder,
            track: track_id,
            interleaved: Vec::new(),
        },
        frames: 0,
        expected,
    })
}

/// The next decoded packet of the track, mixed to mono (damaged packets are skipped, as
/// players do).
fn symphonia_block(
    path: &Path,
    format: &mut dyn symphonia::core::formats::FormatReader,
    decoder: &mut dyn symphonia::core::codecs::audio::AudioDecoder,
    track: u32,
    interleaved: &mut Vec<f32>,
) -> Result<Option<Vec<f32>>> {
    use symphonia::core::errors::Error as SymError;
    loop {
        let packet = match format.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(None),
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Ok(None);
            }
            Err(SymError::ResetRequired) => return Ok(None),
            Err(e) => return Err(audio_err(path, format!("corrupt audio data: {e}"))),
        };
        if packet.track_id != track {
            continue;
        }
        let audio = match decoder.decode(&packet) {
            Ok(a) => a,
            Err(SymError::DecodeError(_)) => continue,
            Err(e) => return Err(audio_err(path, format!("corrupt audio data: {e}"))),
        };
        let channels = audio.spec().channels().count();
        if channels == 0 {
            return Err(audio_err(path, "the stream declares 0 channels"));
        }
        interleaved.resize(audio.samples_interleaved(), 0.0);
        audio.copy_to_slice_interleaved(&mut interleaved[..]);
        if !interleaved.is_empty() {
            return Ok(Some(mix_to_mono(interleaved, channels)));
        }
    }
}

fn mix_to_mono(interleaved: &[f32], channels: usize) -> Vec<f32> {
    if channels == 1 {
        return interleaved.to_vec();
    }
    interleaved
        .chunks_exact(channels)
        .map(|frame| frame.iter().sum::<f32>() / channels as f32)
        .collect()
}

/// Band-limited resampling of mono audio from `from` Hz to `to` Hz (FFT resampler from
/// `rubato`), delay-compensated, `round(n * to / from)` samples out (see [`StreamResampler`]).
pub fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>> {
    let mut r = StreamResampler::new(from, to)?;
    let mut out = r.push(samples)?;
    out.extend(r.finish()?);
    Ok(out)
}

/// [`resample`] block by block: pushing a signal in blocks of any sizes, then finishing, gives
/// the same samples as resampling it whole, with bounded memory.
pub struct StreamResampler {
    /// `None` when the rates are equal (samples pass through).
    inner: Option<FftFixedInOut<f64>>,
    pending: Vec<f64>,
    /// Output samples still to drop (the resampler's delay).
    skip: usize,
    input: u64,
    output: u64,
    from: u32,
    to: u32,
}

impl StreamResampler {
    /// A resampler from `from` Hz to `to` Hz.
    pub fn new(from: u32, to: u32) -> Result<Self> {
        let inner = if from == to {
            None
        } else {
            Some(
                FftFixedInOut::<f64>::new(from as usize, to as usize, 1024, 1).map_err(|e| {
                    Error::Resample(format!("cannot resample {from} Hz -> {to} Hz: {e}"))
                })?,
            )
        };
        Ok(Self {
            skip: inner.as_ref().map(|r| r.output_delay()).unwrap_or(0),
            inner,
            pending: Vec::new(),
            input: 0,
            output: 0,
            from,
            to,
        })
    }

    /// Take in the next block; returns the samples ready so far.
    pub fn push(&mut self, samples: &[f32]) -> Result<Vec<f32>> {
        self.input += samples.len() as u64;
        if self.inner.is_none() {
            self.output += samples.len() as u64;
            return Ok(samples.to_vec());
        }
        self.pending.extend(samples.iter().map(|&v| v as f64));
        let mut out = Vec::new();
        loop {
            let need = self.inner.as_ref().expect("resampling").input_frames_next();
            if self.pending.len() < need {
                return Ok(out);
            }
            let r = self.inner.as_mut().expect("resampling");
            let chunk = r
                .process(&[&self.pending[..need]], None)
                .map_err(|e| self.failed(e))?;
            self.pending.drain(..need);
            self.emit(&chunk[0], usize::MAX, &mut out);
        }
    }

    /// The samples left after the last block.
    pub fn finish(mut self) -> Result<Vec<f32>> {
        let mut out = Vec::new();
        let Some(mut r) = self.inner.take() else {
            return Ok(out);
        };
        let expected = ((self.input as u128 * self.to as u128 + self.from as u128 / 2)
            / self.from as u128) as u64;
        while self.output < expected {
            let chunk = if self.pending.is_empty() {
                r.process_partial::<&[f64]>(None, None)
            } else {
                let c = r.process_partial(Some(&[&self.pending[..]]), None);
                self.pending.clear();
                c
            }
            .map_err(|e| self.failed(e))?;
            let room = (expected - self.output) as usize;
            self.emit(&chunk[0], room, &mut out);
        }
        Ok(out)
    }

    /// Append `produced` after the delay still to drop, at most `room` samples.
    fn emit(&mut self, produced: &[f64], room: usize, out: &mut Vec<f32>) {
        let dropped = self.skip.min(produced.len());
        self.skip -= dropped;
        let kept = produced[dropped..].iter().take(room);
        let before = out.len();
        out.extend(kept.map(|&v| v as f32));
        self.output += (out.len() - before) as u64;
    }

    fn failed(&self, e: rubato::ResampleError) -> Error {
        Error::Resample(format!("{} Hz -> {} Hz failed: {e}", self.from, self.to))
    }
}

/// Scale so the peak magnitude is `target`. Silent input (peak below [`SILENCE_PEAK`]) is
/// returned unchanged.
pub fn peak_normalize(samples: &mut [f32], target: f64) {
    let peak = samples.iter().fold(0f32, |m, v| m.max(v.abs()));
    if peak >= SILENCE_PEAK {
        let g = (target / peak as f64) as f32;
        samples.iter_mut().for_each(|v| *v *= g);
    }
}

/// Read ([`read_audio`]), mix to mono, resample to `sample_rate` and peak-normalise to
/// `normalize_to`. A file that resamples to no samples, or a silent file, is an error naming
/// the file.
pub fn load_audio(path: &Path, sample_rate: f64, normalize_to: f64) -> Result<Vec<f32>> {
    load_audio_at_least(path, sample_rate, normalize_to, 1)
}

/// [`load_audio`], refusing a file with fewer than `min_samples` samples at `sample_rate` (an
/// error saying how long it is, at its rate and at `sample_rate`, and what is needed).
pub fn load_audio_at_least(
    path: &Path,
    sample_rate: f64,
    normalize_to: f64,
    min_samples: usize,
) -> Result<Vec<f32>> {
    let decoded = read_audio(path)?;
    let target = sample_rate.round() as u32;
    let mut samples = resample(&decoded.samples, decoded.sample_rate, target)
        .map_err(|e| audio_err(path, e.to_string()))?;
    if samples.len() < min_samples.max(1) {
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        let (n, m) = (decoded.samples.len(), samples.len());
        return Err(audio_err(
            path,
            format!(
                "too short: {n} sample{} at {} Hz, {m} at {target} Hz; at least {} ({:.1} ms) \
                 are needed",
                plural(n),
                decoded.sample_rate,
                min_samples.max(1),
                min_samples.max(1) as f64 * 1000.0 / target as f64
            ),
        ));
    }
    let peak = samples.iter().fold(0f32, |m, v| m.max(v.abs()));
    if peak < SILENCE_PEAK {
        return Err(audio_err(path, format!("all silence (peak {peak:.2e})")));
    }
    peak_normalize(&mut samples, normalize_to);
    Ok(samples)
}

/// Mono `f32` samples as the bytes of a 32-bit float WAV file (see [`write_wav`] to write
/// one).
pub fn wav_bytes(samples: &[f32], sample_rate: u32) -> Result<Vec<u8>> {
    encode_wav(samples, sample_rate, 32)
}

/// Mono `f32` samples as the bytes of a 16-bit PCM WAV file, half the size of
/// [`wav_bytes`]' (for embedding: every browser plays it); samples beyond -1..=1 are clipped.
pub fn wav_bytes_16bit(samples: &[f32], sample_rate: u32) -> Result<Vec<u8>> {
    encode_wav(samples, sample_rate, 16)
}

/// `bits` 32: float samples; 16: integer samples.
fn encode_wav(samples: &[f32], sample_rate: u32, bits: u16) -> Result<Vec<u8>> {
    let float = bits == 32;
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: bits,
        sample_format: if float {
            hound::SampleFormat::Float
        } else {
            hound::SampleFormat::Int
        },
    };
    let encode = |e: hound::Error| Error::Encode(format!("WAV: {e}"));
    let mut cursor = std::io::Cursor::new(Vec::new());
    {
        let mut w = hound::WavWriter::new(&mut cursor, spec).map_err(encode)?;
        for &s in samples {
            if float {
                w.write_sample(s).map_err(encode)?;
            } else {
                // NaN becomes 0 (`as` saturates and maps NaN to 0).
                w.write_sample((s.clamp(-1.0, 1.0) * 32767.0).round() as i16)
                    .map_err(encode)?;
            }
        }
        w.finalize().map_err(encode)?;
    }
    Ok(cursor.into_inner())
}

/// Write mono samples to a 32-bit float WAV file through a temporary file and a rename.
pub fn write_wav(path: &Path, samples: &[f32], sample_rate: u32) -> Result<()> {
    crate::io::write_atomic(path, &wav_bytes(samples, sample_rate)?)
}

/// A mono 32-bit float WAV file written piece by piece into a temporary file beside `path`,
/// which [`WavSink::finish`] renames into place: a reader sees no file or the whole file,
/// never half of one, and memory stays flat however long the audio.
pub struct WavSink {
    writer: Option<hound::WavWriter<std::io::BufWriter<std::fs::File>>>,
    tmp: std::path::PathBuf,
    path: std::path::PathBuf,
}

impl WavSink {
    /// Start writing `path` at `sample_rate`.
    pub fn create(path: &Path, sample_rate: u32) -> Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            crate::io::create_dir_all(parent)?;
        }
        let tmp = crate::io::temp_path(path);
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let writer = hound::WavWriter::create(&tmp, spec).map_err(|e| wav_write_err(&tmp, e))?;
        Ok(Self {
            writer: Some(writer),
            tmp,
            path: path.to_path_buf(),
        })
    }

    /// Append samples.
    pub fn write(&mut self, samples: &[f32]) -> Result<()> {
        let writer = self.writer.as_mut().expect("written after finish");
        for &s in samples {
            writer
                .write_sample(s)
                .map_err(|e| wav_write_err(&self.tmp, e))?;
        }
        Ok(())
    }

    /// Complete the file (header, flush to disk) and rename it into place.
    pub fn finish(mut self) -> Result<()> {
        let writer = self.writer.take().expect("finished once");
        writer.finalize().map_err(|e| wav_write_err(&self.tmp, e))?;
        let file = std::fs::File::open(&self.tmp).map_err(|e| Error::write(&self.tmp, e))?;
        file.sync_all().map_err(|e| Error::write(&self.tmp, e))?;
        std::fs::rename(&self.tmp, &self.path).map_err(|e| Error::write(&self.path, e))
    }
}

impl Drop for WavSink {
    /// An unfinished sink (an error on the way) leaves no temporary file behind.
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

fn wav_write_err(path: &Path, e: hound::Error) -> Error {
    match e {
        hound::Error::IoError(io) => Error::write(path, io),
        other => Error::write(path, std::io::Error::other(other.to_string())),
    }
}
