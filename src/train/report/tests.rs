use super::*;
use crate::features::audio::write_wav;
use base64::Engine;

/// A fresh folder under the system temp folder, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("ddsp-report-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn sine(hz: f32, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| 0.5 * (std::f32::consts::TAU * hz * i as f32 / 16000.0).sin())
        .collect()
}

/// A run directory with every part a report shows: metadata, config, losses, validation,
/// control statistics, renders at three steps (two clips each) and an evaluation.
fn full_run(root: &Path, name: &str, lr: f64) -> PathBuf {
    let dir = root.join(name);
    let config = crate::Config {
        lr,
        ..Default::default()
    };
    config
        .write_json(&dir.join("resolved_config.json"))
        .unwrap();
    let meta = super::super::RunMeta {
        crate_version: "0.1.0".into(),
        mode: super::super::Mode::M2,
        device: "flex (CPU)".into(),
        cache: "/tmp/cache".into(),
        cache_manifest_sha256: String::new(),
        started_unix: 1_700_000_000,
        ended_unix: Some(1_700_000_125),
        steps: 30,
        steps_requested: 30,
        best_val_loss: Some(5.5),
        best_step: Some(20),
        skipped_steps: 0,
        status: super::super::RunStatus::Finished,
    };
    std::fs::write(
        dir.join("run_meta.json"),
        serde_json::to_string(&meta).unwrap(),
    )
    .unwrap();
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let mut train = String::from("step,lr,total,spectral,logmag,grad_norm\n");
    for s in 1..=30 {
        let v = 10.0 / s as f64;
        train.push_str(&format!("{s},0.001,{},{v},{},1.0\n", 3.0 * v, 2.0 * v));
    }
    std::fs::write(logs.join("train.csv"), train).unwrap();
    std::fs::write(
        logs.join("val.csv"),
        "step,spectral_paper,f0_cents_median,loudness_l1_db,f0_l1_cents,outlier_ratio\n\
         0,20.0,30.0,12.0,40.0,0.1\n10,7.0,12.0,5.0,15.0,0.0\n20,5.5,9.0,4.0,11.0,0.0\n\
         30,6.0,10.0,4.5,12.0,0.0\n",
    )
    .unwrap();
    std::fs::write(
        logs.join("controls.csv"),
        "step,harmonic_entropy,top_harmonic_share,amplitude_sum,gain_min,gain_max,noise_to_harmonic_db\n\
         1,3.0,0.2,0.5,0.01,0.4,-10.0\n10,2.5,0.3,0.6,0.02,0.5,-14.0\n",
    )
    .unwrap();
    for step in [10, 20, 30] {
        let r = dir.join("renders").join(format!("step_{step:08}"));
        for clip in ["0_0", "0_4096"] {
            write_wav(
                &r.join(format!("{clip}_target.wav")),
                &sine(440.0, 4096),
                16000,
            )
            .unwrap();
            write_wav(
                &r.join(format!("{clip}_prediction.wav")),
                &sine(440.0 + step as f32, 4096),
                16000,
            )
            .unwrap();
            write_wav(&r.join(format!("{clip}_harmonic.wav")), &[0.0; 64], 16000).unwrap();
        }
    }
    let eval = dir.join("eval").join("best-val");
    std::fs::create_dir_all(&eval).unwrap();
    std::fs::write(
        eval.join("metrics.json"),
        r#"{"what": "9 chunks of the val split", "summary": {"count": 9, "spectralLoss": 5.2279468}, "rows": []}"#,
    )
    .unwrap();
    dir
}

/// Every `data:` URI of a page: `(mime type, decoded bytes)`.
fn data_uris(html: &str) -> Vec<(String, Vec<u8>)> {
    html.match_indices("data:")
        .map(|(i, _)| {
            let rest = &html[i + 5..];
            let (mime, rest) = rest.split_once(";base64,").expect("base64 data URI");
            let end = rest.find('"').expect("URI ends with the attribute");
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(&rest[..end])
                .unwrap_or_else(|e| panic!("{mime} URI does not decode: {e}"));
            (mime.to_string(), bytes)
        })
        .collect()
}

/// Whether a page is self-contained: no address outside it, no script, no linked file.
fn assert_self_contained(html: &str) {
    let lower = html.to_lowercase();
    for banned in ["http://", "https://", "<script", "<link", "url(", "@import"] {
        assert!(
            !lower.contains(banned),
            "page refers outside itself: {banned}"
        );
    }
    // Every src= is a data: URI.
    for (i, _) in html.match_indices("src=\"") {
        assert!(html[i + 5..].starts_with("data:"), "{}", &html[i..i + 40]);
    }
}

#[test]
fn a_report_embeds_every_part_of_a_run() {
    let tmp = TempDir::new("full");
    let run = full_run(&tmp.0, "violin", 0.003);
    let out = write_report(std::slice::from_ref(&run), None).unwrap();
    assert_eq!(out, run.join("report.html"));
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    for (id, heading) in SECTIONS {
        assert!(
            html.contains(&format!("<section id=\"{id}\"><h2>{heading}</h2>")),
            "{id}"
        );
    }
    assert!(!html.contains("not recorded"), "every part is there");
    assert!(!html.contains("could not read"));
    assert_self_contained(&html);

    let uris = data_uris(&html);
    let pngs: Vec<&Vec<u8>> = uris
        .iter()
        .filter(|u| u.0 == "image/png")
        .map(|u| &u.1)
        .collect();
    let wavs: Vec<&Vec<u8>> = uris
        .iter()
        .filter(|u| u.0 == "audio/wav")
        .map(|u| &u.1)
        .collect();
    assert_eq!(pngs.len() + wavs.len(), uris.len(), "only PNGs and WAVs");
    // Loss curves, control statistics, and a spectrogram for each of the three steps.
    assert_eq!(pngs.len(), 2 + 3);
    for png in &pngs {
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    }
    // The target (the same at every step) once, and a prediction per step: one clip of two.
    assert_eq!(wavs.len(), 1 + 3);
    for wav in &wavs {
        assert_eq!((&wav[..4], &wav[8..12]), (&b"RIFF"[..], &b"WAVE"[..]));
        let reader = hound::WavReader::new(std::io::Cursor::new(wav.as_slice())).unwrap();
        assert_eq!(reader.spec().sample_rate, 16000);
        assert_eq!(reader.spec().bits_per_sample, 16);
        assert_eq!(reader.len(), 4096);
    }
    assert_eq!(html.matches("<audio controls").count(), 4);
    assert!(
        html.contains("1 of 2 clips per step"),
        "says what was left out"
    );
    assert!(html.contains("the same at every step"));
    // The summary, validation, controls, evaluation and config tables.
    assert!(html.contains("5.500 at step 20"), "best validation loss");
    assert!(html.contains("2 min 05 s"), "training time");
    assert!(html.contains("best (step 20)"), "best validation row");
    assert!(html.contains("noise_to_harmonic_db"));
    assert!(html.contains("9 chunks of the val split") && html.contains("5.228"));
    assert!(html.contains("<th>lr</th><td>0.003</td>"));
    assert!(html.contains("<th>lrSchedule</th><td>none</td>"));
    assert!(html.contains("<th>controlSmoothingTargets</th><td>[harmonic-gain, noise-gain]</td>"));
    // Written atomically: no temporary file beside it.
    crate::testing::assert_no_temp_files(&run);
}

#[test]
fn missing_parts_are_shown_as_not_recorded() {
    let tmp = TempDir::new("bare");
    // A run that stopped before its first step: only its config.
    let run = tmp.0.join("early");
    crate::Config::default()
        .write_json(&run.join("resolved_config.json"))
        .unwrap();
    let html = report_html(std::slice::from_ref(&run)).unwrap();
    for missing in [
        "not recorded: training losses (logs/train.csv)",
        "not recorded: validation (logs/val.csv)",
        "not recorded: control statistics",
        "not recorded: renders",
        "not recorded: evaluations",
    ] {
        assert!(html.contains(missing), "{missing}");
    }
    assert!(html.contains("<th>status</th><td>not recorded</td>"));
    assert!(html.contains("<th>lr</th>"), "the config is still shown");
    assert_self_contained(&html);
    assert!(data_uris(&html).is_empty());

    // Broken files are named in the page, not fatal.
    std::fs::write(run.join("run_meta.json"), "{").unwrap();
    std::fs::create_dir_all(run.join("eval/x")).unwrap();
    std::fs::write(run.join("eval/x/metrics.json"), "[1, 2]").unwrap();
    let r = run.join("renders/step_00000005");
    write_wav(&r.join("a_target.wav"), &sine(300.0, 2048), 16000).unwrap();
    std::fs::write(r.join("a_prediction.wav"), b"RIFF not really").unwrap();
    let html = report_html(std::slice::from_ref(&run)).unwrap();
    assert!(
        html.contains("could not read early&#39;s run metadata"),
        "meta"
    );
    let metrics = run.join("eval/x/metrics.json");
    assert!(html.contains(&format!(
        "{}: no &quot;summary&quot; object",
        metrics.display()
    )));
    assert!(html.contains("could not read a render"));
    assert!(html.contains("a_prediction.wav"), "the bad render is named");
}

#[test]
fn a_folder_that_is_no_run_is_an_error_naming_it() {
    let tmp = TempDir::new("norun");
    let empty = tmp.0.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let file = tmp.0.join("file.txt");
    std::fs::write(&file, "x").unwrap();
    let absent = tmp.0.join("absent");
    for (dir, why) in [
        (&empty, "not a run directory (no resolved_config.json"),
        (&file, "not a run directory (a file)"),
        (&absent, "no such run directory"),
    ] {
        let good = full_run(&tmp.0, "good", 0.001);
        let err = report_html(&[good, dir.clone()]).unwrap_err().to_string();
        assert!(err.contains(&dir.display().to_string()), "{err}");
        assert!(err.contains(why), "{err}");
    }
    assert!(!empty.join("report.html").exists());
    let err = report_html(&[]).unwrap_err().to_string();
    assert!(err.contains("at least one run"), "{err}");
}

#[test]
fn several_runs_are_side_by_side_with_their_losses_overlaid() {
    let tmp = TempDir::new("several");
    let a = full_run(&tmp.0, "a", 0.003);
    let b = full_run(&tmp.0, "b", 0.001);
    // Several runs need an output file.
    let err = write_report(&[a.clone(), b.clone()], None).unwrap_err();
    assert!(err.to_string().contains("--out"), "{err}");
    let out = tmp.0.join("compare").join("ab.html");
    write_report(&[a.clone(), b.clone()], Some(&out)).unwrap();
    let html = std::fs::read_to_string(&out).unwrap();
    assert_self_contained(&html);
    assert!(html.contains("--columns:2"), "a column per run");
    assert!(html.contains("All runs: total training loss and validation loss"));
    // Overlay + each run's losses, control statistics, 3 spectrograms.
    let pngs = data_uris(&html)
        .iter()
        .filter(|u| u.0 == "image/png")
        .count();
    assert_eq!(pngs, 1 + 2 * (2 + 3));
    // Run names with their plot colours.
    assert!(html.contains(&format!(
        "background:{}\"></span>a</h3>",
        plots::color_hex(0)
    )));
    assert!(html.contains(&format!(
        "background:{}\"></span>b</h3>",
        plots::color_hex(1)
    )));
    // The one differing setting is listed and highlighted.
    assert!(html.contains("<h4>1 setting differs</h4>"));
    assert!(html.contains("<tr class=\"differs\"><th>lr</th><td>0.003</td><td>0.001</td></tr>"));
    // Two runs of the same folder name are told apart by their paths.
    let other = full_run(&tmp.0.join("elsewhere"), "a", 0.003);
    assert_eq!(
        display_names(&[a.clone(), other.clone()]),
        [a.display().to_string(), other.display().to_string()]
    );
}

#[test]
fn rendered_steps_are_picked_evenly_with_first_and_last() {
    assert_eq!(pick_evenly(3, 4), [0, 1, 2]);
    assert_eq!(pick_evenly(10, 4), [0, 3, 6, 9]);
    assert_eq!(pick_evenly(5, 4), [0, 1, 3, 4]);
    assert_eq!(pick_evenly(7, 1), [6]);
    assert!(pick_evenly(0, 4).is_empty());
}
