//! The resynthesis metrics against magenta's own values on two signal pairs
//! (`../shared/reference/metrics/`, see its README): spectral loss within 1e-5 relative,
//! loudness L1 within 1e-4 dB.

use burn::tensor::Device;
use ddsp::dsp::from_vec;
use ddsp::features::audio::read_audio;
use ddsp::loss::{SpectralLogForm, SpectralLossConfig, SpectralLossMode};
use ddsp::metrics::{loudness_l1_db, paper_spectral_loss};
use std::path::Path;

const DIR: &str = "../shared/reference/metrics";

fn shared_or_skip() -> bool {
    if Path::new(DIR).join("values.json").exists() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{DIR} is missing in CI"
    );
    eprintln!("metrics reference: skipped, {DIR} not found");
    false
}

fn pair(name: &str) -> (Vec<f32>, Vec<f32>, serde_json::Value) {
    let values: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(Path::new(DIR).join("values.json")).unwrap())
            .unwrap();
    let read = |part: &str| read_audio(&Path::new(DIR).join(format!("{name}_{part}.wav"))).unwrap();
    let (t, r) = (read("target"), read("render"));
    assert_eq!((t.sample_rate, r.sample_rate), (16000, 16000));
    (t.samples, r.samples, values[name].clone())
}

fn relative(got: f64, want: f64) -> f64 {
    (got - want).abs() / want.abs()
}

#[test]
fn spectral_loss_and_loudness_l1_match_magenta() {
    if !shared_or_skip() {
        return;
    }
    let device = Device::flex();
    for name in ["cello_gain_noise", "flute_vs_violin"] {
        let (t, r, want) = pair(name);
        let n = t.len();
        let metric = paper_spectral_loss(&device);
        let terms = metric.forward(
            from_vec(r.clone(), [1, n], &device),
            from_vec(t.clone(), [1, n], &device),
        );
        let mag = ddsp::dsp::to_vec(terms.magnitude)[0] as f64;
        let logmag = ddsp::dsp::to_vec(terms.log_magnitude)[0] as f64;
        for (what, got, key) in [
            ("magnitude", mag, "spectral_mag"),
            ("log-magnitude", logmag, "spectral_logmag"),
            ("total", mag + logmag, "spectral_loss"),
        ] {
            let w = want[key].as_f64().unwrap();
            assert!(
                relative(got, w) < 1e-5,
                "{name} {what}: ours {got}, magenta {w} (relative {:.2e})",
                relative(got, w)
            );
        }
        let ld = loudness_l1_db(&t, &r, 16000.0);
        let w = want["loudness_l1_db"].as_f64().unwrap();
        assert!(
            (ld - w).abs() < 1e-4,
            "{name} loudness L1: ours {ld}, magenta {w}"
        );
        // The other log forms are other metrics: measurably off here.
        for form in [SpectralLogForm::PlusEps, SpectralLogForm::MaxEps] {
            let other = SpectralLossConfig::new(vec![2048, 1024, 512, 256, 128, 64])
                .with_mode(SpectralLossMode::L1)
                .with_log_form(form)
                .with_power_floor(0.0)
                .init(&device)
                .forward(
                    from_vec(r.clone(), [1, n], &device),
                    from_vec(t.clone(), [1, n], &device),
                );
            let other = ddsp::dsp::to_vec(other.log_magnitude)[0] as f64;
            let w = want["spectral_logmag"].as_f64().unwrap();
            eprintln!("{name}: {form:?} {other:.7}, safe_log {logmag:.7}, magenta {w}");
            assert!(relative(other, w) > 1e-4, "{form:?} should not match");
        }
    }
}
