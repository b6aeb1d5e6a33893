//! WAV input and output, mono mix-down, band-limited resampling and peak normalisation.

use std::io::{Read, Seek};
use std::path::Path;

use rubato::{FftFixedInOut, Resampler};

use crate::error::{Error, Result};

/// Peak below which a file counts as silent (-120 dBFS).
pub const SILENCE_PEAK: f32 = 1e-6;

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

/// Decode a WAV file: PCM 8/16/24/32-bit integer or 32/64-bit float, any channel count (mixed
/// to mono by averaging), any sample rate. Corrupt, truncated, empty and non-finite files are
/// errors naming the file and the problem.
pub fn read_wav(path: &Path) -> Result<Decoded> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = std::io::BufReader::new(file);
    match hound::WavReader::new(&mut reader) {
        Ok(wav) => decode_hound(path, wav),
        // hound rejects 64-bit float; try that encoding before giving up.
        Err(e) => {
            reader.rewind().map_err(|e| Error::io(path, e))?;
            decode_f64(path, &mut reader)
                .map_err(|_| audio_err(path, format!("not a readable WAV file: {e}")))
        }
    }
    .and_then(|d| check_decoded(path, d))
}

fn decode_hound<R: Read>(path: &Path, wav: hound::WavReader<R>) -> Result<Decoded> {
    let spec = wav.spec();
    if spec.channels == 0 {
        return Err(audio_err(path, "WAV header declares 0 channels"));
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

/// 64-bit float WAV (format 3, or extensible with the float sub-format), which hound lacks.
fn decode_f64<R: Read>(path: &Path, reader: &mut R) -> Result<Decoded> {
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(audio_err(path, "not a RIFF/WAVE file"));
    }
    let (mut pos, mut fmt, mut data) = (12usize, None, None);
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let size = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
        let body = &bytes[pos + 8..(pos + 8 + size).min(bytes.len())];
        match id {
            b"fmt " if body.len() >= 16 => fmt = Some(body.to_vec()),
            b"data" => data = Some(body.to_vec()),
            _ => {}
        }
        pos += 8 + size + (size & 1);
    }
    let fmt = fmt.ok_or_else(|| audio_err(path, "WAV file has no fmt chunk"))?;
    let data = data.ok_or_else(|| audio_err(path, "WAV file has no data chunk"))?;
    let tag = u16::from_le_bytes([fmt[0], fmt[1]]);
    let channels = u16::from_le_bytes([fmt[2], fmt[3]]);
    let sample_rate = u32::from_le_bytes(fmt[4..8].try_into().unwrap());
    let bits = u16::from_le_bytes([fmt[14], fmt[15]]);
    let float = tag == 3 || (tag == 0xFFFE && fmt.len() >= 26 && fmt[24] == 3);
    if !float || bits != 64 || channels == 0 {
        return Err(audio_err(
            path,
            format!(
                "unsupported WAV encoding (format tag {tag:#x}, {bits} bits, {channels} channels)"
            ),
        ));
    }
    let frame_bytes = 8 * channels as usize;
    if data.len() % frame_bytes != 0 {
        return Err(audio_err(path, "truncated WAV data (partial sample frame)"));
    }
    let interleaved: Vec<f32> = data
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().unwrap()) as f32)
        .collect();
    Ok(Decoded {
        samples: mix_to_mono(&interleaved, channels as usize),
        sample_rate,
        channels,
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
    if d.sample_rate == 0 {
        return Err(audio_err(path, "WAV header declares a sample rate of 0"));
    }
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
/// `rubato`), delay-compensated, `round(n * to / from)` samples out.
pub fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>> {
    if from == to || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    let mut r = FftFixedInOut::<f64>::new(from as usize, to as usize, 1024, 1)
        .map_err(|e| Error::Resample(format!("cannot resample {from} Hz -> {to} Hz: {e}")))?;
    let delay = r.output_delay();
    let expected =
        ((samples.len() as u128 * to as u128 + from as u128 / 2) / from as u128) as usize;
    let input: Vec<f64> = samples.iter().map(|&v| v as f64).collect();
    let mut out: Vec<f64> = Vec::with_capacity(expected + delay + 4096);
    let mut pos = 0;
    let fail =
        |e: rubato::ResampleError| Error::Resample(format!("{from} Hz -> {to} Hz failed: {e}"));
    while out.len() < expected + delay {
        let need = r.input_frames_next();
        let chunk = if pos + need <= input.len() {
            let c = r.process(&[&input[pos..pos + need]], None).map_err(fail)?;
            pos += need;
            c
        } else if pos < input.len() {
            let c = r
                .process_partial(Some(&[&input[pos..]]), None)
                .map_err(fail)?;
            pos = input.len();
            c
        } else {
            r.process_partial::<&[f64]>(None, None).map_err(fail)?
        };
        out.extend_from_slice(&chunk[0]);
    }
    Ok(out[delay..delay + expected]
        .iter()
        .map(|&v| v as f32)
        .collect())
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

/// Read, mix to mono, resample to `sample_rate` and peak-normalise to `normalize_to`.
/// A silent file is an error naming the file.
pub fn load_audio(path: &Path, sample_rate: f64, normalize_to: f64) -> Result<Vec<f32>> {
    let decoded = read_wav(path)?;
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
