#!/usr/bin/env bash
# The alignment plan's experiment matrix (issue #16), reproduced end to end: decoder backbones
# and control choices, each trained on three regimes at equal steps, then scored on held-out
# audio. Writes $WORK/results.csv and $WORK/results.md (one row per run) and $WORK/cells.md
# (each run and regime over its seeds: the tables EXPERIMENTS.md quotes); each
# run keeps its logs, renders and spectrogram PNGs under $WORK/runs/.
#
# Runs (the tiny preset's shapes by default; A-H keep the 0.5 s FIR reverb they were first
# measured with, whatever the preset's reverb):
#   A mlp + one-pole smoothing   B mlp                     C causal transformer
#   D transformer + smoothing    E gru (the paper's)       G micro-RNN
#   H mlp + recurrent-lite (AR residual path + biquad smoothing)
#   F gru + z-encoder (MFCCs cached beside the others: its cache has them)
# and the reverb's share (issue #16's ringing), each E with another reverb:
#   N no reverb   S the FIR learning at a tenth of the rate (--reverb-lr-scale 0.1)
#   X the exp-decay reverb (trainable gain and decay of a noise response)
#   Z F with the exp-decay reverb (the z-encoder on the preset's reverb)
# Regimes:
#   1 one chunk of one recording, the same batch every step (an overfit test)
#   2 eight chunks of one recording, the same batch every step
#   3 shuffled batches of eight from every recording
# Held out: every recording is cut at 80%; training sees the first 80% only, and `ddspe2e eval`
# resynthesises the last 20% of each recording with the best checkpoint, at the gain training
# gave the recording.
#
# Environment (defaults in brackets):
#   STEPS    training steps per run [1000]
#   SEEDS    seeds, space-separated ["1"]
#   RUNS     run letters ["A B C D E F G H N S X Z"]
#   REGIMES  regimes ["1 2 3"]
#   DEV      folder of recordings [../shared/audio/dev]
#   ONE      the recording of regimes 1 and 2 [violin_fluidr3]
#   WORK     working folder [target/experiments]
#   CONFIG   the preset the runs start from [configs/tiny.json]
#   DEVICE   flex | wgpu | cuda | auto [flex]
#   FEATURES extra cargo features, e.g. "cuda" [none]
# Needs sox (to cut the recordings) and python3 (to summarise).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ddsp-target}"

STEPS=${STEPS:-1000}
SEEDS=${SEEDS:-1}
RUNS=${RUNS:-A B C D E F G H N S X Z}
REGIMES=${REGIMES:-1 2 3}
DEV=${DEV:-../shared/audio/dev}
ONE=${ONE:-violin_fluidr3}
WORK=${WORK:-target/experiments}
CONFIG=${CONFIG:-configs/tiny.json}
DEVICE=${DEVICE:-flex}
FEATURES=${FEATURES:-}
EVAL_EVERY=$(( STEPS / 4 > 0 ? STEPS / 4 : 1 ))

command -v sox >/dev/null || { echo "error: sox is needed to cut the recordings" >&2; exit 2; }
command -v python3 >/dev/null || { echo "error: python3 is needed to summarise" >&2; exit 2; }
[ -d "$DEV" ] || { echo "error: no folder of recordings at $DEV (set DEV)" >&2; exit 2; }

build_args=(build --release --example ddspe2e)
[ -n "$FEATURES" ] && build_args+=(--features "$FEATURES")
cargo "${build_args[@]}"
BIN="$CARGO_TARGET_DIR/release/examples/ddspe2e"

# The first 80% of every recording to train on, the last 20% held out. Training peak-normalises
# each file of its input, so the held-out part gets the gain its training part gets (0.99 over
# that part's peak; 32-bit float, so nothing clips) and is scored at that level (`--keep-level`):
# normalising the held-out part on its own would raise a quiet ending by 30 dB or more.
mkdir -p "$WORK/train_all" "$WORK/train_one" "$WORK/heldout_at_gain"
for f in "$DEV"/*.wav; do
  name=$(basename "$f")
  seconds=$(soxi -D "$f")
  cut=$(python3 -c "print(round($seconds * 0.8, 3))")
  [ -f "$WORK/train_all/$name" ] || sox "$f" "$WORK/train_all/$name" trim 0 "$cut"
  if [ ! -f "$WORK/heldout_at_gain/$name" ]; then
    # The absolute peak, as peak normalisation takes it: the larger of |max| and |min|.
    peak=$(sox "$WORK/train_all/$name" -n stat 2>&1 \
      | awk '/Maximum amplitude/ {a = $3} /Minimum amplitude/ {b = -$3} END {print (a > b ? a : b)}')
    gain=$(python3 -c "print(0.99 / max($peak, 1e-6))")
    sox "$f" -e floating-point -b 32 "$WORK/heldout_at_gain/$name" trim "$cut" vol "$gain"
  fi
done
cp "$WORK/train_all/$ONE.wav" "$WORK/train_one/"

variant() {
  case $1 in
    A) echo "--decoder-backbone mlp --control-smoothing onepole --reverb fir" ;;
    B) echo "--decoder-backbone mlp --reverb fir" ;;
    C) echo "--decoder-backbone transformer --transformer-causal true --reverb fir" ;;
    D) echo "--decoder-backbone transformer --transformer-causal true --control-smoothing onepole --reverb fir" ;;
    E) echo "--decoder-backbone gru --reverb fir" ;;
    F) echo "--decoder-backbone gru --reverb fir --encoder mfcc --encoder-units 64" ;;
    G) echo "--decoder-backbone micro-rnn --model-hidden 64 --model-layers 2 --reverb fir" ;;
    H) echo "--decoder-backbone mlp --control-residual ar --control-smoothing biquad --reverb fir" ;;
    N) echo "--decoder-backbone gru --reverb off" ;;
    S) echo "--decoder-backbone gru --reverb fir --reverb-lr-scale 0.1" ;;
    X) echo "--decoder-backbone gru --reverb exp-decay" ;;
    Z) echo "--decoder-backbone gru --reverb exp-decay --encoder mfcc --encoder-units 64" ;;
    *) echo "error: unknown run $1" >&2; exit 2 ;;
  esac
}

# regime REGIME RUN: a run with MFCCs (F, Z) has caches of its own (they hold other features).
regime() {
  local mfcc=""
  case $2 in F | Z) mfcc="_mfcc" ;; esac
  case $1 in
    1) echo "--input $WORK/train_one --cache $WORK/cache_one$mfcc --fixed-batch true --batch-size 1 --max-chunks-per-file 1" ;;
    2) echo "--input $WORK/train_one --cache $WORK/cache_one$mfcc --fixed-batch true --batch-size 8" ;;
    3) echo "--input $WORK/train_all --cache $WORK/cache_all$mfcc --shuffle true --batch-size 8" ;;
    *) echo "error: unknown regime $1" >&2; exit 2 ;;
  esac
}

for seed in $SEEDS; do
  for r in $REGIMES; do
    for v in $RUNS; do
      name="$v$r-s$seed"
      run="$WORK/runs/$name"
      if [ -f "$run/run_meta.json" ] && grep -q '"status": "finished"' "$run/run_meta.json"; then
        echo "== $name: done already"
      else
        echo "== $name"
        # shellcheck disable=SC2046
        "$BIN" train --config "$CONFIG" $(regime "$r" "$v") $(variant "$v") \
          --steps "$STEPS" --eval-every "$EVAL_EVERY" --checkpoint-every "$EVAL_EVERY" \
          --log-every 25 --seed "$seed" --device "$DEVICE" --runs-dir "$WORK/runs" --run-name "$name" \
          --overwrite --kernel-dump "$run/kernels.log" > "$WORK/$name.log" 2>&1 \
          || { echo "error: $name failed, see $WORK/$name.log" >&2; exit 1; }
      fi
      mkdir -p "$run/eval"
      [ -s "$run/eval/heldout_at_gain.json" ] || "$BIN" eval --run "$run" --keep-level \
        --input "$WORK"/heldout_at_gain/*.wav --device "$DEVICE" --json \
        --output "$run/eval/heldout_at_gain" > "$run/eval/heldout_at_gain.json"
    done
  done
done

python3 - "$WORK" <<'PY'
import csv, json, math, os, statistics, sys
work = sys.argv[1]
rows = []
for name in sorted(os.listdir(os.path.join(work, "runs"))):
    run = os.path.join(work, "runs", name)
    held_path = os.path.join(run, "eval", "heldout_at_gain.json")
    if not os.path.exists(held_path):
        print(f"note: {name} has no held-out evaluation yet (run its seed and regime); left out")
        continue
    meta = json.load(open(os.path.join(run, "run_meta.json")))
    train = list(csv.DictReader(open(os.path.join(run, "logs", "train.csv"))))
    steps = [int(r["step"]) for r in train]
    total = [float(r["total"]) for r in train]
    finite = [(s, t) for s, t in zip(steps, total) if math.isfinite(t) and t > 0]
    # Slope of log(total) per 100 steps after the early drop (the last 75% of the steps).
    late = [(s, math.log(t)) for s, t in finite if s > steps[-1] * 0.25]
    n = len(late)
    mx = sum(s for s, _ in late) / n
    my = sum(y for _, y in late) / n
    slope = sum((s - mx) * (y - my) for s, y in late) / max(sum((s - mx) ** 2 for s, _ in late), 1e-9)
    controls = list(csv.DictReader(open(os.path.join(run, "logs", "controls.csv"))))
    last = controls[-1]
    profile = list(csv.DictReader(open(os.path.join(run, "profile.csv"))))
    def ms(key):
        vals = [float(p[key]) for p in profile[len(profile) // 10:] if p.get(key)]
        return statistics.median(vals) if vals else float("nan")
    text = open(held_path).read()
    held = json.loads(text[text.index("{"):])["summary"]
    rows.append({
        "run": name,
        "best_val_spectral": round(meta["bestValLoss"], 3),
        "best_step": meta["bestStep"],
        "final_train_total": round(statistics.mean(total[-10:]), 3),
        "log_loss_slope_per_100": round(slope * 100, 4),
        "entropy_first": round(float(controls[0]["harmonic_entropy"]), 3),
        "entropy_last": round(float(last["harmonic_entropy"]), 3),
        "top_share_last": round(float(last["top_harmonic_share"]), 3),
        "forward_ms": round(ms("forward"), 1),
        "backward_ms": round(ms("backward"), 1),
        "heldout_spectral": round(held["spectralLoss"], 3),
        "heldout_loudness_db": round(held["loudnessL1Db"], 2),
        "heldout_f0_cents": round(held["f0L1Cents"], 1),
    })
keys = list(rows[0].keys())
with open(os.path.join(work, "results.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, keys)
    w.writeheader()
    w.writerows(rows)
with open(os.path.join(work, "results.md"), "w") as f:
    f.write("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys) + "\n")
    for r in rows:
        f.write("| " + " | ".join(str(r[k]) for k in keys) + " |\n")
print(open(os.path.join(work, "results.md")).read())

# Each cell (run letter and regime) over its seeds: mean (min-max).
cells = {}
for r in rows:
    cells.setdefault(r["run"].split("-s")[0], []).append(r)
keys = ["best_val_spectral", "final_train_total", "top_share_last", "forward_ms",
        "backward_ms", "heldout_spectral", "heldout_loudness_db", "heldout_f0_cents"]
lines = ["| cell | seeds | " + " | ".join(keys) + " |", "|" + "---|" * (len(keys) + 2)]
for cell in sorted(cells):
    group = cells[cell]
    def summary(k):
        v = [float(r[k]) for r in group]
        m = statistics.mean(v)
        return f"{m:.3g}" if len(v) == 1 else f"{m:.3g} ({min(v):.3g}-{max(v):.3g})"
    lines.append(f"| {cell} | {len(group)} | " + " | ".join(summary(k) for k in keys) + " |")
with open(os.path.join(work, "cells.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
