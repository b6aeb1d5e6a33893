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
/// Sample rates outside this range (Hz) are refused: nothing records below 1 kHz, and a rate
/// from a broken header would make resampling allocate without bound.
pub const SAMPLE_RATE_RANGE: std::ops::RangeInclusive<u32> = 1000..=768_000;
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
/// and the problem.
pub fn read_audio(path: &Path) -> Result<Decoded> {
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
    let decoded = if looks_wav {
        // hound first (exact error reports for broken WAVs); encodings it lacks (64-bit float,
        // some extensible layouts) through symphonia.
        match read_wav_hound(path) {
            Ok(d) => Ok(d),
            Err(HoundFailure::Unsupported(e)) => read_symphonia(path)
                .map_err(|_| audio_err(path, format!("not a readable WAV file: {e}"))),
            Err(HoundFailure::Broken(e)) => Err(e),
        }
    } else {
        read_symphonia(path)
    }?;
    check_decoded(path, decoded)
}

/// Why hound could not read a file: an encoding it does not know, or a broken file.
enum HoundFailure {
    Unsupported(String),
    Broken(Error),
}

fn read_wav_hound(path: &Path) -> std::result::Result<Decoded, HoundFailure> {
    let file = std::fs::File::open(path).map_err(|e| HoundFailure::Broken(Error::io(path, e)))?;
    let wav = hound::WavReader::new(std::io::BufReader::new(file)).map_err(|e| match e {
        hound::Error::Unsupported => HoundFailure::Unsupported(e.to_string()),
        hound::Error::IoError(ref io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            HoundFailure::Broken(audio_err(path, format!("not a readable WAV file: {e}")))
        }
        other => HoundFailure::Unsupported(other.to_string()),
    })?;
    decode_hound(path, wav).map_err(HoundFailure::Broken)
}

fn decode_hound<R: Read>(path: &Path, wav: hound::WavReader<R>) -> Result<Decoded> {
    let spec = wav.spec();
    if spec.channels == 0 {
        return Err(audio_err(path, "WAV header declares 0 channels"));
    }
    check_rate(path, spec.sample_rate)?;
    let frames = wav.duration() as f64;
    if frames / spec.sample_rate as f64 > MAX_SECONDS {
        return Err(too_long(path, frames / spec.sample_rate as f64));
    }
    let interleaved: std::result::Result<Vec<f32>, hound::Error> =
        match (spec.sample_format, spec.bits_per_sample) {
            (hound::SampleFormat::Float, 32) => wav.into_samples::<f32>().collect(),
            (hound::SampleFormat::Int, bits @ 1..=32) => {
                let scale = 1.0 / (1u64 << (bits - 1)) as f32;
                wav.into_samples::<i32>()
                    .map(|s| s.map(|v| v as f32 * scale))
                    .collect()
            }
            (format, bits) => {
                return Err(audio_err(
                    path,
                    format!("unsupported sample format {format:?} with {bits} bits"),
                ));
            }
        };
    let interleaved =
        interleaved.map_err(|e| audio_err(path, format!("truncated or corrupt WAV data: {e}")))?;
    Ok(Decoded {
        samples: mix_to_mono(&interleaved, spec.channels as usize),
        sample_rate: spec.sample_rate,
        channels: spec.channels,
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

/// Decode with symphonia (any supported container and codec).
fn read_symphonia(path: &Path) -> Result<Decoded> {
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
    let mut format = symphonia::default::get_probe()
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
    let (track_id, expected_frames) = (track.id, track.num_frames);
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| audio_err(path, "no audio track"))?
        .clone();
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(|e| audio_err(path, format!("unsupported audio codec: {e}")))?;
    let (mut rate, mut channels) = (
        params.sample_rate.unwrap_or(0),
        params.channels.as_ref().map(|c| c.count()).unwrap_or(0),
    );
    if rate > 0 {
        check_rate(path, rate)?;
        if let Some(n) = expected_frames
            && n as f64 / rate as f64 > MAX_SECONDS
        {
            return Err(too_long(path, n as f64 / rate as f64));
        }
    }
    let mut mono: Vec<f32> = Vec::new();
    let mut buffer: Vec<f32> = Vec::new();
    loop {
        let packet = match format.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(SymError::ResetRequired) => break,
            Err(e) => return Err(audio_err(path, format!("corrupt audio data: {e}"))),
        };
        if packet.track_id != track_id {
            continue;
        }
        let audio = match decoder.decode(&packet) {
            Ok(a) => a,
            // A damaged packet is skipped, as players do; a file of nothing else decodes to
            // zero length, reported below.
            Err(SymError::DecodeError(_)) => continue,
            Err(e) => return Err(audio_err(path, format!("corrupt audio data: {e}"))),
        };
        rate = audio.spec().rate();
        channels = audio.spec().channels().count();
        if channels == 0 {
            return Err(audio_err(path, "the stream declares 0 channels"));
        }
        buffer.resize(audio.samples_interleaved(), 0.0);
        audio.copy_to_slice_interleaved(&mut buffer[..]);
        mono.extend(
            buffer
                .chunks_exact(channels)
                .map(|f| f.iter().sum::<f32>() / channels as f32),
        );
        if rate > 0 && mono.len() as f64 / rate as f64 > MAX_SECONDS {
            return Err(too_long(path, mono.len() as f64 / rate as f64));
        }
    }
    if let Some(n) = expected_frames
        && (mono.len() as u64) < n
        && !mono.is_empty()
    {
        return Err(audio_err(
            path,
            format!(
                "truncated: {} of the {n} sample frames its header announces",
                mono.len()
            ),
        ));
    }
    check_rate(path, rate)?;
    Ok(Decoded {
        samples: mono,
        sample_rate: rate,
        channels: channels.min(u16::MAX as usize) as u16,
    })
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

fn check_decoded(path: &Path, d: Decoded) -> Result<Decoded> {
    check_rate(path, d.sample_rate)?;
    if d.samples.is_empty() {
        return Err(audio_err(path, "zero length (no samples)"));
    }
    if let Some(i) = d.samples.iter().position(|v| !v.is_finite()) {
        return Err(audio_err(
            path,
            format!("contains a non-finite sample (NaN/Inf) at frame {i}"),
        ));
    }
    Ok(d)
}

/// Band-limited resampling of mono audio from `from` Hz to `to` Hz (FFT resampler from
/// `rubato`), delay-compensated, `round(n * to / from)` samples out. Works through the input
/// in blocks, so memory beyond the output stays bounded.
pub fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>> {
    if from == to || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    let mut r = FftFixedInOut::<f64>::new(from as usize, to as usize, 1024, 1)
        .map_err(|e| Error::Resample(format!("cannot resample {from} Hz -> {to} Hz: {e}")))?;
    let mut skip = r.output_delay();
    let expected =
        ((samples.len() as u128 * to as u128 + from as u128 / 2) / from as u128) as usize;
    let mut out: Vec<f32> = Vec::with_capacity(expected);
    let mut block: Vec<f64> = Vec::new();
    let mut pos = 0;
    let fail =
        |e: rubato::ResampleError| Error::Resample(format!("{from} Hz -> {to} Hz failed: {e}"));
    while out.len() < expected {
        let need = r.input_frames_next();
        let take = need.min(samples.len() - pos);
        block.clear();
        block.extend(samples[pos..pos + take].iter().map(|&v| v as f64));
        pos += take;
        let chunk = if take == need {
            r.process(&[&block[..]], None).map_err(fail)?
        } else if take > 0 {
            r.process_partial(Some(&[&block[..]]), None).map_err(fail)?
        } else {
            r.process_partial::<&[f64]>(None, None).map_err(fail)?
        };
        let produced = &chunk[0];
        let dropped = skip.min(produced.len());
        skip -= dropped;
        let room = expected - out.len();
        out.extend(produced[dropped..].iter().take(room).map(|&v| v as f32));
    }
    Ok(out)
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
/// `normalize_to`. A silent file is an error naming the file.
pub fn load_audio(path: &Path, sample_rate: f64, normalize_to: f64) -> Result<Vec<f32>> {
    let decoded = read_audio(path)?;
    let target = sample_rate.round() as u32;
    let mut samples = resample(&decoded.samples, decoded.sample_rate, target)
        .map_err(|e| audio_err(path, e.to_string()))?;
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
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut cursor = std::io::Cursor::new(Vec::new());
    {
        let mut w = hound::WavWriter::new(&mut cursor, spec)
            .map_err(|e| Error::Encode(format!("WAV: {e}")))?;
        for &s in samples {
            w.write_sample(s)
                .map_err(|e| Error::Encode(format!("WAV: {e}")))?;
        }
        w.finalize()
            .map_err(|e| Error::Encode(format!("WAV: {e}")))?;
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
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
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
        let file = std::fs::File::open(&self.tmp).map_err(|e| Error::io(&self.tmp, e))?;
        file.sync_all().map_err(|e| Error::io(&self.tmp, e))?;
        std::fs::rename(&self.tmp, &self.path).map_err(|e| Error::io(&self.path, e))
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
        hound::Error::IoError(io) => Error::io(path, io),
        other => Error::io(path, std::io::Error::other(other.to_string())),
    }
}
