//! The DDSP autoencoder: decoder + synthesizer, one Burn module, and its weight files.

use burn::module::Module;
use burn::store::{BurnpackStore, ModuleSnapshot, SafetensorsStore};
use burn::tensor::{Device, Tensor};
use std::path::Path;

use crate::config::Config;
use crate::decoder::{Decoder, DecoderState};
use crate::error::{Error, Result};
use crate::synth::{Synth, SynthControls, SynthOutput, SynthState};

/// Decoder and synthesizer.
#[derive(Module, Debug)]
pub struct DdspModel {
    /// Features to controls.
    pub decoder: Decoder,
    /// Controls to audio.
    pub synth: Synth,
}

/// Controls and audio of one forward pass.
#[derive(Clone, Debug)]
pub struct ModelOutput {
    /// The scaled controls.
    pub controls: SynthControls,
    /// The rendered audio.
    pub audio: SynthOutput,
}

/// What a [`DdspModel`] carries from one piece of frames to the next
/// ([`DdspModel::forward_continued`]).
#[derive(Clone, Debug)]
pub struct ModelState {
    /// The decoder's state (GRU hidden state, transformer window, previous frame).
    pub decoder: DecoderState,
    /// The synthesizer's state (oscillator phase, pending frame, noise and reverb tails,
    /// smoothing history).
    pub synth: SynthState,
}

impl ModelState {
    /// A fresh state; `seed` picks the noise, as in [`DdspModel::forward`].
    pub fn new(seed: u64) -> Self {
        Self {
            decoder: DecoderState::default(),
            synth: SynthState::new(seed),
        }
    }
}

impl DdspModel {
    /// Build a freshly initialised model: the same `config.seed` gives the same weights on the
    /// same device, also when other threads build models at the same time.
    ///
    /// Burn's backends keep one random generator per process and initialise parameters lazily,
    /// so the seed is set, the model built and every parameter drawn under one process-wide
    /// lock (random tensors drawn elsewhere, outside `DdspModel::new`, are not covered).
    pub fn new(config: &Config, device: &Device) -> Self {
        static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _guard = INIT.lock().unwrap_or_else(|e| e.into_inner());
        device.seed(config.seed);
        let model = Self {
            decoder: config.decoder_config().init(device),
            synth: config.synth_config().init(device),
        };
        model.visit(&mut Materialise);
        model
    }

    /// Decode features `[B, F]` (and MFCCs `[B, F, mfccBins]` for a z-encoder, see
    /// [`Decoder::forward`]) into raw controls, scale them with the synthesizer and render
    /// them. `temperature` is the softmax temperature (softmax-db scaling); `seed` picks the
    /// noise.
    pub fn forward(
        &self,
        f0_hz: Tensor<2>,
        loudness_db: Tensor<2>,
        voicing: Tensor<2>,
        mfcc: Option<Tensor<3>>,
        temperature: f64,
        seed: u64,
    ) -> ModelOutput {
        let raw = self
            .decoder
            .forward(f0_hz.clone(), loudness_db, voicing, mfcc);
        let controls = self.synth.get_controls(raw, f0_hz, temperature);
        let audio = self.synth.forward(controls.clone(), seed);
        ModelOutput { controls, audio }
    }

    /// [`Self::forward`] for the next piece of a longer signal: the controls of the piece's
    /// frames and the audio complete so far (it lags the frames by a hop and the noise
    /// filter's half length, see [`SynthState`]); [`Self::finish`] returns the rest. The pieces'
    /// audio, concatenated, is the audio of one [`Self::forward`] on all the frames.
    pub fn forward_continued(
        &self,
        f0_hz: Tensor<2>,
        loudness_db: Tensor<2>,
        voicing: Tensor<2>,
        mfcc: Option<Tensor<3>>,
        temperature: f64,
        state: &mut ModelState,
    ) -> ModelOutput {
        let controls =
            self.controls_continued(f0_hz, loudness_db, voicing, mfcc, temperature, state);
        let audio = self.synth.render(controls.clone(), &mut state.synth);
        ModelOutput { controls, audio }
    }

    /// The first half of [`Self::forward_continued`]: the scaled controls of the next piece,
    /// to render with [`Synth::render`] and `state.synth` (after editing them, if wanted).
    pub fn controls_continued(
        &self,
        f0_hz: Tensor<2>,
        loudness_db: Tensor<2>,
        voicing: Tensor<2>,
        mfcc: Option<Tensor<3>>,
        temperature: f64,
        state: &mut ModelState,
    ) -> SynthControls {
        let raw = self.decoder.forward_continued(
            f0_hz.clone(),
            loudness_db,
            voicing,
            mfcc,
            &mut state.decoder,
        );
        self.synth
            .get_controls_continued(raw, f0_hz, temperature, &mut state.synth)
    }

    /// The audio left after the last piece.
    pub fn finish(&self, state: &mut ModelState) -> SynthOutput {
        self.synth.finish(&mut state.synth)
    }

    /// Save the weights as safetensors (loadable from Python), with the backbone and reverb
    /// kinds in the metadata, written atomically.
    pub fn save_safetensors(&self, path: &Path, config: &Config) -> Result<()> {
        let mut store = SafetensorsStore::from_bytes(None)
            .metadata("ddsp.backbone", config_name(&self.decoder.kind()))
            .metadata("ddsp.encoder", self.encoder_name())
            .metadata("ddsp.reverb", config_name(&config.reverb))
            .metadata(
                "ddsp.config",
                serde_json::to_string(config).expect("config serialises"),
            );
        self.save_into(&mut store).map_err(|e| ckpt_err(path, e))?;
        let bytes = store.get_bytes().map_err(|e| ckpt_err(path, e))?;
        crate::io::write_atomic(path, &bytes)
    }

    /// Save the weights with their parameter ids (burnpack), for exact resumption.
    pub fn save_burnpack(&self, path: &Path) -> Result<()> {
        let mut store = BurnpackStore::from_bytes(None)
            .metadata("ddsp.backbone", config_name(&self.decoder.kind()))
            .metadata("ddsp.encoder", self.encoder_name());
        self.save_into(&mut store).map_err(|e| ckpt_err(path, e))?;
        let bytes = store.get_bytes().map_err(|e| ckpt_err(path, e))?;
        crate::io::write_atomic(path, &bytes)
    }

    /// `mfcc` with the z-encoder, else `none` (the `encoder` config values).
    fn encoder_name(&self) -> String {
        let kind = if self.decoder.has_encoder() {
            crate::config::EncoderKind::Mfcc
        } else {
            crate::config::EncoderKind::None
        };
        config_name(&kind)
    }

    /// Load weights saved by [`DdspModel::save_safetensors`] or [`DdspModel::save_burnpack`]
    /// (by extension). A file from another backbone or with(out) the z-encoder, or with
    /// missing or extra tensors, is an error that says so.
    pub fn load_weights(mut self, path: &Path) -> Result<Self> {
        let bytes = crate::io::read_regular(path).map_err(|e| ckpt_err(path, e))?;
        let backbone = config_name(&self.decoder.kind());
        if let Some(found) = stored_backbone(&bytes)
            && found != backbone
        {
            return Err(Error::Checkpoint {
                path: path.to_path_buf(),
                reason: format!(
                    "it holds a `{found}` decoder, but the config asks for `{backbone}` \
                     (set decoderBackbone to `{found}` to use it)"
                ),
            });
        }
        let encoder = self.encoder_name();
        if let Some(found) = stored_value(&bytes, b"ddsp.encoder", &["mfcc", "none"])
            && found != encoder
        {
            return Err(Error::Checkpoint {
                path: path.to_path_buf(),
                reason: format!(
                    "it was saved with encoder `{found}`, but the config asks for `{encoder}` \
                     (set encoder to `{found}` to use it)"
                ),
            });
        }
        let result = if path.extension().is_some_and(|e| e == "bpk") {
            let mut store =
                BurnpackStore::from_bytes(Some(burn::tensor::Bytes::from_bytes_vec(bytes)))
                    .allow_partial(false)
                    .validate(true);
            self.load_from(&mut store).map_err(|e| ckpt_err(path, e))?
        } else {
            let mut store = SafetensorsStore::from_bytes(Some(bytes))
                .allow_partial(false)
                .validate(true);
            self.load_from(&mut store).map_err(|e| ckpt_err(path, e))?
        };
        if !result.missing.is_empty() || !result.unused.is_empty() || !result.errors.is_empty() {
            return Err(Error::Checkpoint {
                path: path.to_path_buf(),
                reason: format!(
                    "does not match the model: {} missing, {} unexpected, {} mismatched tensors \
                     (was it saved with another config?)",
                    result.missing.len(),
                    result.unused.len(),
                    result.errors.len()
                ),
            });
        }
        Ok(self)
    }
}

fn ckpt_err(path: &Path, e: impl std::fmt::Display) -> Error {
    let mut reason = e.to_string();
    if reason.len() > 400 {
        let cut = (0..=400)
            .rev()
            .find(|&i| reason.is_char_boundary(i))
            .unwrap_or(0);
        reason.truncate(cut);
        reason.push_str("...");
    }
    Error::Checkpoint {
        path: path.to_path_buf(),
        reason,
    }
}

/// A config enum's spelling in the JSON config (`gru`, `exp-decay`, ...), its serde name.
fn config_name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        other => unreachable!("config enums serialise as strings, got {other:?}"),
    }
}

/// Draws every lazily initialised parameter (reading a parameter initialises it).
struct Materialise;

impl burn::module::ModuleVisitor for Materialise {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
        let _ = param.val();
    }
}

/// The backbone recorded in a weight file's metadata, if it has one.
fn stored_backbone(bytes: &[u8]) -> Option<String> {
    stored_value(
        bytes,
        b"ddsp.backbone",
        &["transformer", "micro-rnn", "mlp", "gru"],
    )
}

/// Which of `values` a weight file's metadata records under `key`, if any.
fn stored_value(bytes: &[u8], key: &[u8], values: &[&str]) -> Option<String> {
    // Safetensors keeps metadata as JSON and burnpack as CBOR, both near the start of the
    // file; either way the key is followed within a few bytes by the value's text.
    let head = &bytes[..bytes.len().min(1 << 20)];
    let at = head.windows(key.len()).position(|w| w == key)? + key.len();
    let tail = &head[at..head.len().min(at + 40)];
    values
        .iter()
        .find(|name| tail.windows(name.len()).any(|w| w == name.as_bytes()))
        .map(|name| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(backbone: &str) -> Config {
        Config::from_sources(
            None,
            &[
                ("decoder-backbone", backbone),
                ("rnn-channels", "8"),
                ("layers-per-stack", "1"),
                ("transformer-d-model", "8"),
                ("transformer-heads", "2"),
                ("harmonics", "4"),
            ],
        )
        .unwrap()
    }

    /// Every float parameter, flattened in visiting order.
    fn weights(model: &DdspModel) -> Vec<f32> {
        struct Collect(Vec<f32>);
        impl burn::module::ModuleVisitor for Collect {
            fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
                self.0.extend(crate::dsp::to_vec(param.val()));
            }
        }
        let mut c = Collect(Vec::new());
        model.visit(&mut c);
        c.0
    }

    #[test]
    fn same_seed_same_weights_even_when_models_are_built_concurrently() {
        let config = tiny("gru");
        let reference = weights(&DdspModel::new(&config, &Device::flex()));
        let mut other = config.clone();
        other.seed += 1;
        assert_ne!(
            weights(&DdspModel::new(&other, &Device::flex())),
            reference,
            "another seed gives other weights"
        );
        // Threads build models (one of them with another seed, drawing from the same
        // process-wide generator) and only then read their weights.
        let built: Vec<Vec<f32>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..6)
                .map(|i| {
                    let c = if i % 3 == 2 {
                        other.clone()
                    } else {
                        config.clone()
                    };
                    s.spawn(move || {
                        let models: Vec<DdspModel> = (0..4)
                            .map(|_| DdspModel::new(&c, &Device::flex()))
                            .collect();
                        std::thread::yield_now();
                        models.iter().map(weights).collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .enumerate()
                .filter(|(i, _)| i % 3 != 2)
                .flat_map(|(_, h)| h.join().unwrap())
                .collect()
        });
        for (i, w) in built.iter().enumerate() {
            assert!(*w == reference, "model {i} built in a thread differs");
        }
    }

    #[test]
    fn checkpoints_round_trip_and_refuse_other_backbones() {
        let device = Device::flex();
        let dir = std::env::temp_dir().join(format!("ddsp-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for backbone in ["mlp", "micro-rnn", "gru", "transformer"] {
            let config = tiny(backbone);
            let model = DdspModel::new(&config, &device);
            let st = dir.join(format!("{backbone}.safetensors"));
            let bp = dir.join(format!("{backbone}.bpk"));
            model.save_safetensors(&st, &config).unwrap();
            model.save_burnpack(&bp).unwrap();
            let f0 = Tensor::<2>::full([1, 4], 220.0, &device);
            let ld = Tensor::<2>::full([1, 4], -20.0, &device);
            let uv = Tensor::<2>::ones([1, 4], &device);
            let reference = crate::dsp::to_vec(
                model
                    .forward(f0.clone(), ld.clone(), uv.clone(), None, 1.0, 0)
                    .audio
                    .audio,
            );
            for path in [&st, &bp] {
                let mut other = config.clone();
                other.seed = 99;
                let loaded = DdspModel::new(&other, &device).load_weights(path).unwrap();
                let out = crate::dsp::to_vec(
                    loaded
                        .forward(f0.clone(), ld.clone(), uv.clone(), None, 1.0, 0)
                        .audio
                        .audio,
                );
                assert_eq!(out, reference, "{backbone} via {}", path.display());
            }
        }
        let err = DdspModel::new(&tiny("mlp"), &device)
            .load_weights(&dir.join("micro-rnn.bpk"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`micro-rnn` decoder") && err.contains("`mlp`"),
            "{err}"
        );
        let err = DdspModel::new(&tiny("gru"), &device)
            .load_weights(&dir.join("mlp.safetensors"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`mlp` decoder") && err.contains("`gru`"),
            "{err}"
        );
        let err = DdspModel::new(&tiny("transformer"), &device)
            .load_weights(&dir.join("gru.bpk"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`gru` decoder"), "{err}");
        let mut wider = tiny("mlp");
        wider.harmonics = 9;
        let err = DdspModel::new(&wider, &device)
            .load_weights(&dir.join("mlp.safetensors"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("mlp.safetensors"), "{err}");
        // With and without the z-encoder, both ways and both formats.
        let mut encoded = tiny("gru");
        encoded.encoder = crate::config::EncoderKind::Mfcc;
        encoded.mfcc_bins = 8;
        encoded.z_dims = 2;
        encoded.encoder_units = 4;
        let model = DdspModel::new(&encoded, &device);
        let (st, bp) = (dir.join("z.safetensors"), dir.join("z.bpk"));
        model.save_safetensors(&st, &encoded).unwrap();
        model.save_burnpack(&bp).unwrap();
        for path in [&st, &bp] {
            assert!(DdspModel::new(&encoded, &device).load_weights(path).is_ok());
            let err = DdspModel::new(&tiny("gru"), &device)
                .load_weights(path)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("encoder `mfcc`") && err.contains("`none`"),
                "{err}"
            );
        }
        let err = DdspModel::new(&encoded, &device)
            .load_weights(&dir.join("gru.bpk"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("encoder `none`"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rendering_in_pieces_equals_one_pass() {
        let device = Device::flex();
        let mut config = tiny("gru");
        config.harmonic_head_mode = crate::config::HarmonicHeadMode::ExpSigmoid;
        config.noise_bands = 33;
        config.frame_hop = 64;
        config.reverb = crate::config::ReverbMode::Fir;
        config.reverb_length = 3000;
        config.control_smoothing = crate::config::ControlSmoothing::Fir;
        config.delta_features = true;
        let model = DdspModel::new(&config, &device);
        // Give the reverb an audible response (it starts near silent).
        let f = 250; // 1 s
        let x = |seed: u64, lo: f32, hi: f32| {
            crate::dsp::from_vec(crate::testing::rand_vec(f, seed, lo, hi), [1, f], &device)
        };
        let (f0, ld, uv) = (x(1, 100.0, 800.0), x(2, -60.0, -5.0), x(3, 0.0, 1.0));
        let whole = model
            .forward(f0.clone(), ld.clone(), uv.clone(), None, 1.0, 5)
            .audio
            .audio;
        let mut state = ModelState::new(5);
        let mut parts = Vec::new();
        for w in [0usize, 1, 50, 51, 133, f].windows(2) {
            let (a, c) = (w[0], w[1]);
            let cut = |t: &Tensor<2>| t.clone().slice([0..1, a..c]);
            let out = model.forward_continued(cut(&f0), cut(&ld), cut(&uv), None, 1.0, &mut state);
            parts.push(out.audio.audio);
        }
        parts.push(model.finish(&mut state).audio);
        let pieced = crate::dsp::to_vec(Tensor::cat(parts, 1));
        let one = crate::dsp::to_vec(whole);
        assert_eq!(pieced.len(), one.len());
        let worst = pieced
            .iter()
            .zip(&one)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let peak = one.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(peak > 1e-3, "the render is not silent ({peak})");
        assert!(worst < 1e-4, "pieces differ by {worst}");
    }
}
