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
