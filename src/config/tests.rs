use super::*;
use serde_json::Value;

fn overridden(pairs: &[(&str, &str)]) -> Result<Config> {
    Config::from_sources(None, pairs)
}

#[test]
fn defaults_are_valid_and_match_the_original_tool() {
    let c = Config::default();
    c.validate().unwrap();
    assert_eq!(c.sample_rate, 16000.0);
    assert_eq!((c.chunk_size, c.chunk_hop), (16384, 8192));
    assert_eq!((c.frame_size, c.frame_hop), (1024, 256));
    assert_eq!((c.min_f0, c.max_f0), (50.0, 1000.0));
    assert_eq!(c.harmonic_head_mode, HarmonicHeadMode::Legacy);
    assert_eq!(c.grad_clip_mode, GradClipMode::Element);
    assert_eq!(c.spectral_loss_mode, SpectralLossMode::L2);
    assert_eq!((c.spectral_warmup_steps, c.spectral_ramp_steps), (100, 200));
    assert_eq!(c.render_every(), c.checkpoint_every);
    assert_eq!(c.frames_per_chunk(), 64);
}

#[test]
fn json_round_trip_is_exact() {
    let mut c = Config::default();
    c.apply_overrides(&[
        ("spectral-windows", "64,128,256"),
        ("harmonic-head-mode", "softmax-db"),
        ("softmax-temp-end", "0.5"),
        ("max-files", "3"),
        ("lr", "0.0003"),
        ("control-smoothing-targets", "harmonic-distribution"),
    ])
    .unwrap();
    let text = c.to_json_string();
    let back = Config::from_json_str(&text).unwrap();
    assert_eq!(back, c);
    assert_eq!(back.to_json_string(), text);
    // Every key appears, unset options as null.
    let map: serde_json::Map<String, Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(map.len(), Config::option_specs().len());
    assert!(map.contains_key("sampleRate") && map.contains_key("spectralLogmagWeight"));
    assert_eq!(
        Config::from_json_str(&Config::default().to_json_string()).unwrap(),
        Config::default()
    );
}

#[test]
fn file_round_trip_through_disk() {
    let dir = std::env::temp_dir().join(format!("ddsp-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("c.json");
    Config::default().write_json(&path).unwrap();
    let back = Config::from_sources::<&str, &str>(Some(&path), &[]).unwrap();
    assert_eq!(back, Config::default());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn precedence_is_defaults_then_file_then_flags() {
    let dir = std::env::temp_dir().join(format!("ddsp-prec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("c.json");
    std::fs::write(
        &path,
        r#"{"sampleRate": 22050, "harmonics": 40, "shuffle": false}"#,
    )
    .unwrap();
    let c = Config::from_sources(Some(&path), &[("sample-rate", "24000")]).unwrap();
    assert_eq!(c.sample_rate, 24000.0, "flag beats file");
    assert_eq!(c.harmonics, 40, "file beats default");
    assert!(!c.shuffle, "file boolean kept");
    assert_eq!(c.chunk_size, 16384, "default where neither sets it");
    let c = Config::from_sources(Some(&path), &[("shuffle", "true")]).unwrap();
    assert!(c.shuffle);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unknown_json_key_is_named() {
    let err = Config::from_json_str(r#"{"sampleRat": 16000}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("sampleRat"), "{err}");
}

#[test]
fn unknown_flag_and_bad_values_are_named() {
    let err = overridden(&[("sample-rat", "1")]).unwrap_err().to_string();
    assert!(err.contains("sample-rat"), "{err}");
    let err = overridden(&[("harmonic-head-mode", "fancy")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("harmonicHeadMode") && err.contains("fancy"),
        "{err}"
    );
    let err = overridden(&[("shuffle", "yes")]).unwrap_err().to_string();
    assert!(err.contains("shuffle"), "{err}");
    let err = overridden(&[("chunk-size", "-5")]).unwrap_err().to_string();
    assert!(err.contains("chunkSize"), "{err}");
}

#[test]
fn flag_spellings_and_value_forms() {
    let c = overridden(&[
        ("--spectral-windows", "64,128,256"),
        ("spectral-weight", "1"),
        ("clip-mode", "global"),
        ("loudness-weight", "0.5"),
        ("max-chunks-per-file", "8"),
        ("transformer-causal", "false"),
    ])
    .unwrap();
    assert_eq!(c.spectral_windows, vec![64, 128, 256]);
    assert_eq!(c.grad_clip_mode, GradClipMode::Global);
    assert_eq!(c.loudness_loss_weight, 0.5);
    assert_eq!(c.max_chunks_per_file, Some(8));
    assert!(!c.transformer_causal);
    let c = overridden(&[
        ("max-chunks-per-file", "8"),
        ("max-chunks-per-file", "none"),
    ])
    .unwrap();
    assert_eq!(c.max_chunks_per_file, None);
    let c = overridden(&[("spectral-windows", "")]).unwrap();
    assert!(c.spectral_windows.is_empty());
    assert_eq!(
        Config::key_for_flag("loudness-weight-end").unwrap(),
        "loudnessLossWeightEnd"
    );
    assert_eq!(Config::key_for_flag("frame-hop").unwrap(), "frameHop");
    assert!(Config::key_for_flag("frame-hopp").is_none());
}

#[test]
fn normalized_alias_selects_normalized_head() {
    let c = overridden(&[("normalized-harmonic-head", "true")]).unwrap();
    assert_eq!(c.harmonic_head_mode, HarmonicHeadMode::Normalized);
}

#[test]
fn spec_flags_are_kebab_case_of_keys() {
    for spec in Config::option_specs() {
        assert_eq!(kebab_to_camel(&spec.flags[0]), spec.key);
        assert_eq!(camel_to_kebab(&spec.key), spec.flags[0]);
    }
}

/// Every validation rule: the overrides that break it and the option the message must name.
const BROKEN: &[(&[(&str, &str)], &str)] = &[
    (&[("sample-rate", "0")], "sampleRate"),
    (&[("chunk-size", "0")], "chunkSize"),
    (&[("chunk-hop", "0")], "chunkHop"),
    (&[("frame-hop", "0")], "frameHop"),
    (&[("frame-size", "1")], "frameSize"),
    (&[("frame-hop", "100")], "frameHop"),
    (&[("frame-size", "128")], "frameSize"),
    (&[("chunk-hop", "1000")], "chunkHop"),
    (&[("min-f0", "0")], "minF0"),
    (&[("min-f0", "-5")], "minF0"),
    (&[("max-f0", "40")], "maxF0"),
    (&[("max-f0", "8000")], "maxF0"),
    (&[("silence-rms", "-1")], "silenceRms"),
    (&[("voiced-threshold", "1.5")], "voicedThreshold"),
    (&[("normalize-to", "0")], "normalizeTo"),
    (&[("normalize-to", "1.5")], "normalizeTo"),
    (&[("train-split", "0")], "trainSplit"),
    (&[("train-split", "1.1")], "trainSplit"),
    (&[("max-files", "0")], "maxFiles"),
    (&[("max-chunks-per-file", "0")], "maxChunksPerFile"),
    (&[("model-hidden", "0")], "modelHidden"),
    (&[("model-layers", "0")], "modelLayers"),
    (&[("rnn-channels", "0")], "rnnChannels"),
    (&[("transformer-d-model", "0")], "transformerDModel"),
    (&[("transformer-layers", "0")], "transformerLayers"),
    (&[("transformer-heads", "0")], "transformerHeads"),
    (
        &[("transformer-d-model", "63"), ("transformer-heads", "1")],
        "transformerDModel",
    ),
    (&[("transformer-heads", "3")], "transformerHeads"),
    (
        &[("transformer-ff-multiplier", "0")],
        "transformerFfMultiplier",
    ),
    (&[("harmonics", "0")], "harmonics"),
    (&[("softmax-temp", "0")], "softmaxTemp"),
    (&[("softmax-temp-end", "-1")], "softmaxTempEnd"),
    (&[("softmax-amp-floor", "2")], "softmaxAmpFloor"),
    (&[("softmax-gain-min-db", "10")], "softmaxGainMaxDb"),
    (&[("noise-filter-size", "0")], "noiseFilterSize"),
    (&[("noise-bands", "0")], "noiseBands"),
    (&[("reverb-length", "1")], "reverbLength"),
    (&[("reverb-lr-scale", "0")], "reverbLrScale"),
    (&[("mfcc-bins", "1")], "mfccBins"),
    (&[("mfcc-bins", "129")], "mfccBins"),
    (&[("z-dims", "0")], "zDims"),
    (&[("encoder-units", "0")], "encoderUnits"),
    (&[("reverb-lr-scale", "11")], "reverbLrScale"),
    (&[("control-smoothing-alpha", "1")], "controlSmoothingAlpha"),
    (
        &[("control-smoothing-fir-size", "0")],
        "controlSmoothingFirSize",
    ),
    (
        &[
            ("control-smoothing", "biquad"),
            ("control-smoothing-cutoff-hz", "40"),
        ],
        "controlSmoothingCutoffHz",
    ),
    (
        &[
            ("control-smoothing", "biquad"),
            ("control-smoothing-q", "0"),
        ],
        "controlSmoothingQ",
    ),
    (&[("control-residual-alpha", "1")], "controlResidualAlpha"),
    (
        &[("control-residual-alpha", "-0.1")],
        "controlResidualAlpha",
    ),
    (&[("micro-rnn-units", "0")], "microRnnUnits"),
    (
        &[
            ("control-smoothing", "biquad"),
            ("control-smoothing-q", "20"),
        ],
        "controlSmoothingQ",
    ),
    (
        &[
            ("control-smoothing", "biquad"),
            ("control-smoothing-cutoff-hz", "0.1"),
            ("control-smoothing-q", "8"),
        ],
        "controlSmoothingCutoffHz",
    ),
    (&[("lr", "0")], "lr"),
    (&[("lr-min", "0.1")], "lrMin"),
    (&[("lr-min", "-1")], "lrMin"),
    (&[("lr-decay-steps", "0")], "lrDecaySteps"),
    (&[("lr-decay-rate", "0")], "lrDecayRate"),
    (&[("lr-decay-rate", "1.5")], "lrDecayRate"),
    (&[("batch-size", "0")], "batchSize"),
    (&[("grad-accum-steps", "0")], "gradAccumSteps"),
    (&[("grad-clip", "-1")], "gradClip"),
    (&[("early-stop-min-delta", "-1")], "earlyStopMinDelta"),
    (&[("spectral-windows", "100")], "spectralWindows"),
    (&[("spectral-windows", "1")], "spectralWindows"),
    (&[("spectral-windows", "32768")], "spectralWindows"),
    (&[("spectral-hop-divisor", "0")], "spectralHopDivisor"),
    (&[("spectral-log-epsilon", "0")], "spectralLogEpsilon"),
    (&[("spectral-weight", "-1")], "spectralWeight"),
    (&[("spectral-logmag-weight", "-1")], "spectralLogmagWeight"),
    (&[("mse-weight", "-1")], "mseWeight"),
    (&[("loudness-weight", "-1")], "loudnessLossWeight"),
    (&[("loudness-weight-end", "-1")], "loudnessLossWeightEnd"),
    (
        &[("harmonic-entropy-weight", "-1")],
        "harmonicEntropyWeight",
    ),
    (
        &[("harmonic-entropy-weight-end", "-1")],
        "harmonicEntropyWeightEnd",
    ),
    (
        &[("harmonic-concentration-weight", "-1")],
        "harmonicConcentrationWeight",
    ),
    (
        &[("harmonic-concentration-weight-end", "-1")],
        "harmonicConcentrationWeightEnd",
    ),
    (&[("spectral-weight", "1")], "spectralWindows"),
    (&[("spectral-logmag-weight", "1")], "spectralWindows"),
    (&[("log-every", "0")], "logEvery"),
    (&[("checkpoint-every", "0")], "checkpointEvery"),
];

#[test]
fn every_validation_rule_rejects_and_names_its_option() {
    for (pairs, option) in BROKEN {
        let err = overridden(pairs)
            .expect_err(&format!("{pairs:?} should be rejected"))
            .to_string();
        assert!(
            err.contains(&format!("`{option}`")),
            "{pairs:?}: message should name `{option}`: {err}"
        );
    }
}

#[test]
fn non_finite_values_are_rejected() {
    for set in [
        (|c: &mut Config| c.spectral_weight = f64::INFINITY) as fn(&mut Config),
        |c| c.mse_weight = f64::NAN,
        |c| c.lr = f64::NAN,
        |c| c.sample_rate = f64::INFINITY,
        |c| c.softmax_gain_min_db = f64::NEG_INFINITY,
        |c| c.grad_clip = f64::NAN,
    ] {
        let mut c = Config::default();
        set(&mut c);
        assert!(c.validate().is_err(), "{c:?}");
    }
}

#[test]
fn paper_preset_values_are_accepted() {
    let c = overridden(&[
        ("chunk-size", "64000"),
        ("chunk-hop", "64000"),
        ("frame-hop", "64"),
        ("frame-size", "1024"),
        ("spectral-windows", "2048,1024,512,256,128,64"),
        ("spectral-weight", "1"),
        ("spectral-logmag-weight", "1"),
        ("spectral-loss-mode", "l1"),
        ("harmonic-head-mode", "exp-sigmoid"),
        ("decoder-backbone", "gru"),
        ("reverb", "fir"),
        ("lr-schedule", "exp"),
        ("clip-mode", "global"),
        ("grad-clip", "3"),
    ])
    .unwrap();
    assert_eq!(c.frames_per_chunk(), 1000);
    assert_eq!(c.spectral_hop(2048), 512);
    assert_eq!(c.spectral_hop(64), 16);
}

#[test]
fn all_loss_weights_zero_at_some_step_is_a_validation_error() {
    // The original tool's defaults: the spectral terms ramp in after 100 steps, so with the
    // waveform MSE off, steps 0..100 have nothing to learn from.
    let err = overridden(&[
        ("mse-weight", "0"),
        ("spectral-windows", "64,128"),
        ("spectral-weight", "1"),
    ])
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("every loss weight is 0 at step 0")
            && err.contains("mseWeight")
            && err.contains("spectralWarmupSteps 100"),
        "{err}"
    );
    let err = overridden(&[("mse-weight", "0")]).unwrap_err().to_string();
    assert!(err.contains("every loss weight is 0 at step 0"), "{err}");
    // A weight that ramps down to 0 with nothing after it leaves a step without weight.
    let err = overridden(&[
        ("mse-weight", "0"),
        ("loudness-weight", "1"),
        ("loudness-weight-end", "0"),
        ("loudness-ramp-steps", "50"),
    ])
    .unwrap_err()
    .to_string();
    assert!(err.contains("at step 50"), "{err}");
    // A ramp from 0 has no weight at its first step either.
    let err = overridden(&[
        ("mse-weight", "0"),
        ("spectral-windows", "64,128"),
        ("spectral-weight", "1"),
        ("spectral-warmup-steps", "0"),
    ])
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("at step 0") && err.contains("--spectral-ramp-steps 0"),
        "{err}"
    );
    // Covered at every step: accepted.
    overridden(&[
        ("mse-weight", "0"),
        ("spectral-windows", "64,128"),
        ("spectral-weight", "1"),
        ("spectral-warmup-steps", "0"),
        ("spectral-ramp-steps", "0"),
    ])
    .unwrap();
    overridden(&[
        ("mse-weight", "0"),
        ("loudness-weight", "1"),
        ("spectral-windows", "64,128"),
        ("spectral-weight", "1"),
    ])
    .unwrap();
}

#[test]
fn the_cache_fingerprint_has_the_split_seed_not_the_training_seed() {
    let a = Config::default();
    let mut b = a.clone();
    b.seed = 7;
    assert_eq!(a.feature_fingerprint(), b.feature_fingerprint());
    b.split_seed = 7;
    assert_ne!(a.feature_fingerprint(), b.feature_fingerprint());
    assert!(
        b.feature_fingerprint()
            .contains(&("splitSeed", "7".to_string()))
    );
}

#[test]
fn translators_map_the_flat_config_onto_module_configs() {
    use crate::decoder::{Backbone, DecoderBackbone};
    let c = Config {
        decoder_backbone: DecoderBackbone::Gru,
        rnn_channels: 24,
        layers_per_stack: 0,
        harmonics: 5,
        harmonic_head_mode: HarmonicHeadMode::ExpSigmoid,
        noise_bands: 17,
        ..Config::default()
    };
    let d = c.decoder_config().init(&burn::tensor::Device::flex());
    assert_eq!(d.kind(), DecoderBackbone::Gru);
    match &d.backbone {
        Backbone::Gru(g) => assert_eq!(g.d_output(), 24 + 3, "tiny: GRU output + raw inputs"),
        _ => panic!("wrong backbone"),
    }
    assert_eq!(c.decoder_config().heads.noise_outputs, 17);
    assert_eq!(c.decoder_config().heads.harmonics, 5);
    // The original tool's noise: a gain, times the filter bands when filtered.
    let legacy = Config {
        harmonic_head_mode: HarmonicHeadMode::Legacy,
        noise_filter: true,
        noise_filter_size: 9,
        ..c.clone()
    };
    assert_eq!(legacy.decoder_config().heads.noise_outputs, 10);
    let white = Config {
        noise_filter: false,
        ..legacy
    };
    assert_eq!(white.synth_config().raw_noise_channels(), 1);
    assert_eq!(c.feature_config().pitch().hop, c.frame_hop);
    let t = Config {
        softmax_temp: 2.0,
        softmax_temp_end: Some(1.0),
        softmax_temp_ramp_steps: 10,
        ..Config::default()
    }
    .temperature();
    assert_eq!((t.at(0), t.at(5), t.at(10)), (2.0, 1.5, 1.0));
}

/// Issue 15, defect 7: a JSON array (which serde would read positionally) or any other
/// non-object is not a config.
#[test]
fn a_config_must_be_a_json_object() {
    for text in ["[16000, 16384]", "\"gru\"", "42", "null", ""] {
        let err = Config::from_json_str(text).unwrap_err().to_string();
        assert!(err.contains("JSON object"), "{text:?}: {err}");
    }
    let dir = std::env::temp_dir().join(format!("ddsp-config-array-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("array.json");
    std::fs::write(&path, "  [16000]").unwrap();
    let err = Config::from_json_file(&path).unwrap_err().to_string();
    assert!(
        err.contains("array.json") && err.contains("JSON object"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(Config::from_json_str("{\"sampleRate\": 16000}").is_ok());
}

/// Issue 15, defect 2 (config half): values that would allocate absurd amounts are refused,
/// naming the option and the limit.
#[test]
fn sizes_that_would_exhaust_memory_are_refused() {
    for (key, value, limit) in [
        ("min-f0", "0.001", "20"),
        ("sample-rate", "1e9", "384000"),
        ("chunk-size", "100000000", "16777216"),
        ("frame-size", "1000000", "65536"),
        ("batch-size", "1000000", "4096"),
    ] {
        let err = overridden(&[(key, value)]).unwrap_err().to_string();
        let option = key
            .split('-')
            .enumerate()
            .fold(String::new(), |mut s, (i, w)| {
                if i == 0 {
                    s.push_str(w);
                } else {
                    s.push_str(&w[..1].to_uppercase());
                    s.push_str(&w[1..]);
                }
                s
            });
        assert!(err.contains(&option) && err.contains(limit), "{key}: {err}");
    }
}

/// `encoder mfcc` asks the feature pipeline for `mfccBins` MFCCs (and names them in the cache
/// fingerprint, which is unchanged without them) and gives the decoder a z-encoder whose
/// latent widens the backbone's input.
#[test]
fn the_z_encoder_reaches_the_features_the_cache_and_the_decoder() {
    let plain = Config::from_sources::<&str, &str>(None, &[]).unwrap();
    let with = Config::from_sources(
        None,
        &[
            ("encoder", "mfcc"),
            ("mfcc-bins", "20"),
            ("z-dims", "8"),
            ("encoder-units", "32"),
            ("decoder-backbone", "mlp"),
        ],
    )
    .unwrap();
    assert_eq!(plain.feature_config().mfcc_bins, 0);
    assert_eq!(with.feature_config().mfcc_bins, 20);
    let keys = |c: &Config| {
        c.feature_fingerprint()
            .into_iter()
            .map(|(k, _)| k)
            .collect::<Vec<_>>()
    };
    assert!(!keys(&plain).contains(&"mfccBins"));
    assert!(keys(&with).contains(&"mfccBins"));
    assert_eq!(keys(&with).len(), keys(&plain).len() + 1);
    assert!(plain.decoder_config().encoder.is_none());
    let d = with.decoder_config();
    let e = d.encoder.as_ref().unwrap();
    assert_eq!((e.mfcc_bins, e.z_dims, e.units), (20, 8, 32));
    assert_eq!(
        d.backbone.d_input(),
        crate::decoder::input_features(false) + 8
    );
    let mut gru = with.clone();
    gru.decoder_backbone = crate::decoder::DecoderBackbone::Gru;
    let g = gru.decoder_config();
    assert_eq!(
        g.backbone.d_input(),
        crate::decoder::input_features(false) + 8
    );
    // The config's pieces fit together: building the decoder checks the widths.
    let _ = g.init(&burn::tensor::Device::flex());
    let err = Config::from_sources(None, &[("encoder", "wavenet")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("encoder"), "{err}");
}
