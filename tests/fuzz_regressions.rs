//! Every input kept under `fuzz/` replayed through the fuzz targets' bodies
//! (`ddsp::fuzzing`): the crashes the fuzzers found (`fuzz/regressions/<target>/`, each fixed
//! since), the seeds (`fuzz/seeds/<target>/`, which must all be accepted: the targets reach
//! past the parsers) and the minimized corpora (`fuzz/corpus/<target>/`). See RELIABILITY.md.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8]) -> bool) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let (regressions, _) = ddsp::fuzzing::replay(&fuzz.join("regressions").join(target), run);
    let (seeds, accepted) = ddsp::fuzzing::replay(&fuzz.join("seeds").join(target), run);
    assert!(
        seeds > 0 && accepted == seeds,
        "{target}: {accepted} of {seeds} seeds accepted"
    );
    let (corpus, _) = ddsp::fuzzing::replay(&fuzz.join("corpus").join(target), run);
    println!("{target}: {regressions} regression, {seeds} seed and {corpus} corpus input(s)");
}

#[test]
fn audio_inputs() {
    replay("audio", ddsp::fuzzing::audio);
}

#[test]
fn config_inputs() {
    replay("config", ddsp::fuzzing::config);
}

#[test]
fn manifest_inputs() {
    replay("manifest", ddsp::fuzzing::manifest);
}

#[test]
fn checkpoint_inputs() {
    replay("checkpoint", ddsp::fuzzing::checkpoint);
}

/// The crashes found, as the errors they are now.
#[test]
fn found_crashes_are_errors_naming_the_problem() {
    let dir = std::env::temp_dir().join(format!("ddsp-fuzz-found-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let regressions = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");

    // A WAV header declaring 32774 channels: symphonia's block-align product overflowed.
    let bytes =
        std::fs::read(regressions.join("audio/crash-02931e7e923b1e3ec89bd9665c618a3750ca0496"))
            .unwrap();
    let wav = dir.join("in.wav");
    std::fs::write(&wav, &bytes[1..]).unwrap();
    let e = ddsp::features::audio::read_audio(&wav)
        .unwrap_err()
        .to_string();
    assert!(e.contains("32774 channels") && e.contains("in.wav"), "{e}");

    // An optimizer state whose tensors carry no parameter id: Burn's load_record panicked.
    let bytes = std::fs::read(
        regressions.join("checkpoint/crash-23931576d8b06f532c196da30b3ef0d06db68f71"),
    )
    .unwrap();
    let at = bytes.windows(5).position(|w| w == b"\0OPT\0").unwrap();
    std::fs::write(dir.join("optimizer.bpk"), &bytes[at + 5..]).unwrap();
    let e = ddsp::train::load_optimizer(&dir, ddsp::train::adam())
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("carries no parameter id") && e.contains("optimizer.bpk"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
