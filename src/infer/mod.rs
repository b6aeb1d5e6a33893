//! Using a trained model: load a checkpoint (its config and data statistics stored beside the
//! weights), turn audio at any sample rate into frame features, adjust them for timbre
//! transfer ([`adjust`]), render them in bounded pieces with explicit state, and score renders
//! with magenta's metrics ([`eval`]).
//!
//! ```no_run
//! use burn::tensor::Device;
//! use ddsp::infer::{Checkpoint, Model};
//! # fn main() -> ddsp::Result<()> {
//! let model = Model::load(std::path::Path::new("runs/violin"), Checkpoint::Best, &Device::flex())?;
//! let input = ddsp::features::audio::read_audio(std::path::Path::new("voice.flac"))?;
//! let frames = model.features(&input.samples, input.sample_rate)?;
//! let out = model.render_all(&frames, &mut |_, _| {}); // audio, stems and controls
//! ddsp::features::audio::write_wav(std::path::Path::new("out.wav"), &out.audio, model.sample_rate_hz())?;
//! # Ok(()) }
//! ```

pub mod adjust;
pub mod eval;

use burn::tensor::{Device, Tensor};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::config::Config;
use crate::data::DataStats;
use crate::dsp::{from_vec, to_vec};
use crate::error::{Error, Result};
use crate::features::{self, FrameFeatures, audio};
use crate::model::{DdspModel, ModelState};
use crate::synth::{SynthControls, SynthOutput};

/// Which checkpoint of a run directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Checkpoint {
    /// The best validation loss (`checkpoints/best`).
    #[default]
    Best,
    /// The last one written (`checkpoints/latest`).
    Latest,
    /// The one after this many steps (`checkpoints/step_N`).
    Step(usize),
}

impl FromStr for Checkpoint {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "best" => Ok(Checkpoint::Best),
            "latest" => Ok(Checkpoint::Latest),
            other => other
                .trim_start_matches("step_")
                .parse()
                .map(Checkpoint::Step)
                .map_err(|_| {
                    Error::Config(format!(
                        "unknown checkpoint `{other}` (expected best, latest or step_N)"
                    ))
                }),
        }
    }
}

impl Checkpoint {
    /// Its folder name under `checkpoints/`.
    pub fn folder(&self) -> String {
        match self {
            Checkpoint::Best => "best".into(),
            Checkpoint::Latest => "latest".into(),
            Checkpoint::Step(n) => crate::train::step_label(*n),
        }
    }
}

/// Frame-rate conditioning: f0 (Hz), loudness (dB) and voicing probability per frame, and
/// the MFCCs of a model with a z-encoder.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Frames {
    /// f0 per frame, Hz.
    pub f0_hz: Vec<f32>,
    /// Loudness per frame, dB.
    pub loudness_db: Vec<f32>,
    /// Voicing probability per frame, `[0, 1]`.
    pub voicing: Vec<f32>,
    /// MFCCs, the same number per frame, frame after frame; empty when the model has no
    /// z-encoder or there is no audio (synth mode: the encoder then hears silence).
    pub mfcc: Vec<f32>,
}

impl Frames {
    /// Number of frames.
    pub fn len(&self) -> usize {
        self.f0_hz.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.f0_hz.is_empty()
    }

    /// MFCCs per frame (0 without them).
    pub fn mfcc_bins(&self) -> usize {
        self.mfcc.len().checked_div(self.len()).unwrap_or(0)
    }

    /// Frames `range`.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Frames {
        let m = self.mfcc_bins();
        Frames {
            f0_hz: self.f0_hz[range.clone()].to_vec(),
            loudness_db: self.loudness_db[range.clone()].to_vec(),
            voicing: self.voicing[range.clone()].to_vec(),
            mfcc: self.mfcc[range.start * m..range.end * m].to_vec(),
        }
    }
}

impl From<FrameFeatures> for Frames {
    fn from(f: FrameFeatures) -> Self {
        Frames {
            f0_hz: f.f0_hz,
            loudness_db: f.loudness_db,
            voicing: f.voiced_prob,
            mfcc: f.mfcc,
        }
    }
}

/// Rendered audio with its parts, and the controls of the frames rendered, on the host.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rendered {
    /// The output: dry plus reverb.
    pub audio: Vec<f32>,
    /// The harmonic branch.
    pub harmonic: Vec<f32>,
    /// The filtered-noise branch.
    pub noise: Vec<f32>,
    /// Harmonic plus noise, before the reverb.
    pub dry: Vec<f32>,
    /// What the reverb adds (`audio - dry`).
    pub wet: Vec<f32>,
    /// The controls of the frames taken in.
    pub controls: Controls,
}

/// Synthesizer controls per frame, on the host.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Controls {
    /// f0, Hz.
    pub f0_hz: Vec<f32>,
    /// Overall harmonic amplitude.
    pub amplitude: Vec<f32>,
    /// Harmonic distribution, `harmonics` values per frame.
    pub distribution: Vec<f32>,
    /// Harmonics per frame.
    pub harmonics: usize,
    /// Noise band magnitudes, `bands` values per frame.
    pub noise: Vec<f32>,
    /// Noise bands per frame.
    pub bands: usize,
}

impl Rendered {
    /// Append a later piece.
    pub fn extend(&mut self, other: Rendered) {
        self.audio.extend(other.audio);
        self.harmonic.extend(other.harmonic);
        self.noise.extend(other.noise);
        self.dry.extend(other.dry);
        self.wet.extend(other.wet);
        let c = &mut self.controls;
        c.f0_hz.extend(other.controls.f0_hz);
        c.amplitude.extend(other.controls.amplitude);
        c.distribution.extend(other.controls.distribution);
        c.noise.extend(other.controls.noise);
        c.harmonics = c.harmonics.max(other.controls.harmonics);
        c.bands = c.bands.max(other.controls.bands);
    }

    fn from_parts(out: SynthOutput, controls: Option<SynthControls>) -> Self {
        let audio = to_vec(out.audio);
        let harmonic = to_vec(out.harmonic);
        let noise = to_vec(out.noise);
        let dry: Vec<f32> = harmonic.iter().zip(&noise).map(|(h, n)| h + n).collect();
        let wet = audio.iter().zip(&dry).map(|(a, d)| a - d).collect();
        let controls = controls
            .map(|c| {
                let [_, _, k] = c.distribution.dims();
                let (noise, bands) = match c.noise_magnitudes {
                    Some(n) => {
                        let m = n.dims()[2];
                        (to_vec(n), m)
                    }
                    None => (Vec::new(), 0),
                };
                Controls {
                    f0_hz: to_vec(c.f0_hz),
                    amplitude: to_vec(c.amplitude),
                    distribution: to_vec(c.distribution),
                    harmonics: k,
                    noise,
                    bands,
                }
            })
            .unwrap_or_default();
        Rendered {
            audio,
            harmonic,
            noise,
            dry,
            wet,
            controls,
        }
    }
}

/// What one render call hands to the next (see [`Model::render`]).
#[derive(Clone, Debug)]
pub struct RenderState {
    model: ModelState,
    /// Keep only the first this many harmonics (the timbre grower's stages).
    harmonics_kept: Option<usize>,
}

impl RenderState {
    /// Keep only the first `n` harmonics of every frame rendered from now on (the rest get 0).
    pub fn keep_harmonics(mut self, n: usize) -> Self {
        self.harmonics_kept = Some(n);
        self
    }
}

/// Frames per piece when a whole input is rendered: 4 s at 250 frames/s, bounded memory.
pub const PIECE_FRAMES: usize = 1000;

/// How [`Model`] sets the level of the audio it is given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InputLevel {
    /// Peak-normalise every input to the config's `normalizeTo`, as the training cache does
    /// with every file (any recording is heard at the level the model was trained on).
    #[default]
    Normalize,
    /// Keep the input's own level: for a piece of a longer recording already at its training
    /// gain (a quiet passage stays quiet instead of being raised to full scale).
    Keep,
}

impl InputLevel {
    /// [`InputLevel::Keep`] when `keep`, else [`InputLevel::Normalize`] (a `--keep-level`
    /// flag).
    pub fn keep_if(keep: bool) -> Self {
        if keep { Self::Keep } else { Self::Normalize }
    }
}

/// A trained model ready to render, with the config and data statistics stored beside its
/// weights.
pub struct Model {
    model: DdspModel,
    level: InputLevel,
    config: Config,
    stats: Option<DataStats>,
    temperature: f64,
    device: Device,
    dir: PathBuf,
    step: usize,
    notes: Vec<String>,
}

impl Model {
    /// Load from a run directory (its `checkpoints/<which>`) or from a checkpoint directory
    /// itself (`which` is then ignored): `state.json` gives the config and statistics,
    /// `model.bpk` (or `model.safetensors`) the weights. `device` without autodiff.
    pub fn load(path: &Path, which: Checkpoint, device: &Device) -> Result<Self> {
        let mut notes = Vec::new();
        let dir = if path.join("state.json").exists() {
            path.to_path_buf()
        } else if path.join("checkpoints").is_dir() {
            let checkpoints = path.join("checkpoints");
            let wanted = checkpoints.join(which.folder());
            match crate::train::find_checkpoint(&checkpoints, &which.folder()) {
                Some(found) if found != wanted => {
                    notes.push(format!(
                        "{} is missing (a checkpoint save was interrupted); loading {}",
                        wanted.display(),
                        found.display()
                    ));
                    found
                }
                _ => wanted,
            }
        } else {
            return Err(Error::Checkpoint {
                path: path.to_path_buf(),
                reason: "neither a run directory (with checkpoints/) nor a checkpoint \
                         directory (with state.json)"
                    .into(),
            });
        };
        if !dir.is_dir() {
            return Err(Error::Checkpoint {
                path: dir,
                reason: "no such checkpoint in this run yet".into(),
            });
        }
        let state = crate::train::read_state(&dir)?;
        state.config.validate()?;
        let weights = ["model.bpk", "model.safetensors"]
            .iter()
            .map(|f| dir.join(f))
            .find(|p| p.exists())
            .ok_or_else(|| Error::Checkpoint {
                path: dir.clone(),
                reason: "no model.bpk or model.safetensors".into(),
            })?;
        let file = weights.file_name().unwrap_or_default().to_string_lossy();
        if !crate::train::verify_checksum(&dir, &state, &file)? {
            notes.push(crate::train::unverified_note(&dir));
        }
        let model = DdspModel::new(&state.config, device).load_weights(&weights)?;
        Ok(Self {
            model,
            level: InputLevel::Normalize,
            temperature: state.config.temperature().at(state.step),
            config: state.config,
            stats: state.data_stats,
            device: device.clone(),
            dir,
            step: state.step,
            notes,
        })
    }

    /// What loading had to say without failing (a checkpoint recovered after an interrupted
    /// save, weights without checksums), one line each, for the caller to show.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The run's config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Statistics of the training data, when the checkpoint has them.
    pub fn stats(&self) -> Option<&DataStats> {
        self.stats.as_ref()
    }

    /// The checkpoint directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Training steps behind these weights.
    pub fn step(&self) -> usize {
        self.step
    }

    /// The model's sample rate, Hz.
    pub fn sample_rate_hz(&self) -> u32 {
        self.config.sample_rate.round() as u32
    }

    /// Loudness of the training data's loud notes, dB: the 95th percentile of its note
    /// loudness (what synth mode plays a velocity-127 note at), if the run kept statistics.
    pub fn loud_note_db(&self) -> Option<f64> {
        let q = &self.stats()?.loudness_note.quantiles;
        let at = (q.len().saturating_sub(1) as f64 * 0.95).round() as usize;
        q.get(at).map(|&v| v as f64)
    }

    /// Feature frames per second.
    pub fn frame_rate(&self) -> f64 {
        self.config.sample_rate / self.config.frame_hop as f64
    }

    /// This model, setting its inputs' level as `level` says (default: normalised).
    pub fn with_input_level(mut self, level: InputLevel) -> Self {
        self.level = level;
        self
    }

    /// The peak inputs are normalised to, or `None` when their level is kept.
    fn normalize_to(&self) -> Option<f64> {
        match self.level {
            InputLevel::Normalize => Some(self.config.normalize_to),
            InputLevel::Keep => None,
        }
    }

    /// Mono audio at any rate, as the model hears it: resampled to its rate and, unless
    /// [`InputLevel::Keep`], peak-normalised as its training audio was.
    pub fn prepare_audio(&self, samples: &[f32], sample_rate: u32) -> Result<Vec<f32>> {
        let mut x = audio::resample(samples, sample_rate, self.sample_rate_hz())?;
        if let Some(peak) = self.normalize_to() {
            audio::peak_normalize(&mut x, peak);
        }
        Ok(x)
    }

    /// The frame features of mono audio at any rate ([`Self::prepare_audio`], then the
    /// feature extractor with the model's settings): `1 + n / frameHop` frames for `n` samples
    /// at the model rate.
    pub fn features(&self, samples: &[f32], sample_rate: u32) -> Result<Frames> {
        let x = self.prepare_audio(samples, sample_rate)?;
        Ok(features::extract(&x, &self.config.feature_config()).into())
    }

    /// [`Self::features`] of an audio file, streaming: memory stays bounded however long the
    /// file (see [`features::features_of_file`]). Returns the frames and the file's seconds.
    pub fn features_of_file(&self, path: &Path) -> Result<(Frames, f64)> {
        let (f, seconds) =
            features::features_of_file(path, &self.config.feature_config(), self.normalize_to())?;
        Ok((f.into(), seconds))
    }

    /// A fresh render state; `seed` picks the noise.
    pub fn start(&self, seed: u64) -> RenderState {
        RenderState {
            model: ModelState::new(seed),
            harmonics_kept: None,
        }
    }

    /// Take in the next piece of frames and return the audio complete so far (it lags the
    /// frames by a hop and the noise filter's half length) and the piece's controls.
    /// Consecutive pieces then [`Self::finish`] give the audio of one pass over all frames.
    pub fn render(&self, frames: &Frames, state: &mut RenderState) -> Rendered {
        let f = frames.len();
        let t = |v: &[f32]| from_vec(v.to_vec(), [1, f], &self.device);
        // MFCCs of another width (frames from another config) are not this encoder's input:
        // it hears silence instead, as without any.
        let m = frames.mfcc_bins();
        let wanted = self.model.decoder.encoder.as_ref().map(|e| e.mfcc_bins());
        let mfcc = (wanted == Some(m) && frames.mfcc.len() == f * m)
            .then(|| from_vec(frames.mfcc.clone(), [1, f, m], &self.device));
        let mut controls = self.model.controls_continued(
            t(&frames.f0_hz),
            t(&frames.loudness_db),
            t(&frames.voicing),
            mfcc,
            self.temperature,
            &mut state.model,
        );
        if let Some(n) = state.harmonics_kept {
            controls.distribution = keep_first(controls.distribution, n);
        }
        let out = self
            .model
            .synth
            .render(controls.clone(), &mut state.model.synth);
        Rendered::from_parts(out, Some(controls))
    }

    /// The audio left after the last piece.
    pub fn finish(&self, state: &mut RenderState) -> Rendered {
        Rendered::from_parts(self.model.finish(&mut state.model), None)
    }

    /// Render all `frames` in pieces of [`PIECE_FRAMES`], handing each piece's output to
    /// `sink` as it is ready (memory stays flat however long the input); `on_progress` gets
    /// `(frames done, frames)`.
    pub fn render_pieces(
        &self,
        frames: &Frames,
        state: &mut RenderState,
        sink: &mut dyn FnMut(Rendered) -> Result<()>,
        on_progress: &mut dyn FnMut(usize, usize),
    ) -> Result<()> {
        let n = frames.len();
        for start in (0..n).step_by(PIECE_FRAMES) {
            let end = (start + PIECE_FRAMES).min(n);
            sink(self.render(&frames.slice(start..end), state))?;
            on_progress(end, n);
        }
        sink(self.finish(state))
    }

    /// Render all `frames` ([`Self::render_pieces`]) and collect the output.
    pub fn render_all(
        &self,
        frames: &Frames,
        on_progress: &mut dyn FnMut(usize, usize),
    ) -> Rendered {
        let mut all = Rendered::default();
        let mut state = self.start(self.config.seed);
        self.render_pieces(
            frames,
            &mut state,
            &mut |piece| {
                all.extend(piece);
                Ok(())
            },
            on_progress,
        )
        .expect("collecting pieces cannot fail");
        all
    }

    /// The softmax temperature renders use (softmax-db scaling; the schedule's value at the
    /// checkpoint's step).
    pub fn temperature(&self) -> f64 {
        self.temperature
    }

    /// The model and device, for lower-level use.
    pub fn inner(&self) -> (&DdspModel, &Device) {
        (&self.model, &self.device)
    }
}

/// Zero every harmonic above the first `n`: `[B, F, K]`.
fn keep_first(distribution: Tensor<3>, n: usize) -> Tensor<3> {
    let k = distribution.dims()[2];
    if n >= k {
        return distribution;
    }
    let mask: Vec<f32> = (0..k).map(|i| if i < n { 1.0 } else { 0.0 }).collect();
    let mask = from_vec(mask, [1, 1, k], &distribution.device());
    distribution * mask
}

#[cfg(test)]
mod tests;
