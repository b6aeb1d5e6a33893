#!/usr/bin/env bash
# The real-instrument quality bar (issue #7): train the paper preset (configs/paper.json) on all
# of one recording and check that
#   1. the validation spectral loss (paper definition) keeps falling: the last evaluation is
#      below the first, and the best of the second half of the evaluations is below the best of
#      the first half;
#   2. the re-tracked f0 of the final validation renders is within 25 cents (median) of the
#      input's.
# It prints the validation table and exits non-zero when a check fails. Re-running it resumes
# the run where it stopped (raise STEPS to train further).
#
# Environment (defaults in brackets):
#   AUDIO       the recording [../shared/audio/dev/violin_fluidr3.wav]
#   STEPS       total training steps [500]
#   EVAL_EVERY  validation and checkpoint interval [100]
#   DEVICE      auto | wgpu | flex | cuda [auto]
#   FEATURES    extra cargo features, e.g. "cuda" [none]
#   WORK        working folder (input copy, cache, run) [target/real_instrument]
set -euo pipefail
cd "$(dirname "$0")/.."
# The build directory .ci/run uses, so a warm build is reused.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ddsp-target}"

AUDIO=${AUDIO:-../shared/audio/dev/violin_fluidr3.wav}
STEPS=${STEPS:-500}
EVAL_EVERY=${EVAL_EVERY:-100}
DEVICE=${DEVICE:-auto}
FEATURES=${FEATURES:-}
WORK=${WORK:-target/real_instrument}
RUN="$WORK/runs/paper-$(basename "$AUDIO" .wav)"

[ -f "$AUDIO" ] || { echo "error: recording $AUDIO not found (set AUDIO)" >&2; exit 2; }
mkdir -p "$WORK/input"
cp "$AUDIO" "$WORK/input/"

cargo_args=(run --release --example ddspe2e)
[ -n "$FEATURES" ] && cargo_args+=(--features "$FEATURES")
train_args=(train --config configs/paper.json --input "$WORK/input" --cache "$WORK/cache"
  --steps "$STEPS" --eval-every "$EVAL_EVERY" --checkpoint-every "$EVAL_EVERY"
  --device "$DEVICE")
if [ -f "$RUN/checkpoints/latest/state.json" ]; then
  train_args+=(--resume "$RUN")
else
  train_args+=(--runs-dir "$(dirname "$RUN")" --run-name "$(basename "$RUN")")
fi
cargo "${cargo_args[@]}" -- "${train_args[@]}"

echo
echo "validation ($RUN/logs/val.csv):"
column -s, -t < "$RUN/logs/val.csv"
awk -F, 'BEGIN { n = 0 }
NR > 1 {
  if (n > 0 && step[n-1] == $1) n--   # a step logged twice (runs resumed by older versions)
  step[n] = $1; loss[n] = $2; cents[n] = $3; n++
}
END {
  if (n < 3) { print "FAIL: fewer than 3 validation evaluations"; exit 1 }
  half = int(n / 2); best1 = loss[0]; best2 = loss[half]
  for (i = 0; i < half; i++) if (loss[i] < best1) best1 = loss[i]
  for (i = half; i < n; i++) if (loss[i] < best2) best2 = loss[i]
  ok = 1
  printf "val spectral loss: first %.4f, last %.4f; best of first half %.4f, of second half %.4f\n",
    loss[0], loss[n-1], best1, best2
  if (!(loss[n-1] < loss[0])) { print "FAIL: the last validation loss is not below the first"; ok = 0 }
  if (!(best2 < best1)) { print "FAIL: the validation loss stopped falling (second half no better)"; ok = 0 }
  printf "re-tracked f0 at step %d: %.1f cents median from the input\n", step[n-1], cents[n-1]
  if (!(cents[n-1] < 25)) { print "FAIL: re-tracked f0 is 25 cents or more off"; ok = 0 }
  if (ok) print "PASS"; else exit 1
}' "$RUN/logs/val.csv"
