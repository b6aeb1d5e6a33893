"""Side-by-side: one DDSP training step, the `ddsp` crate (Burn) against the PyTorch peer.

    python benches/peer/compare.py --shape tiny --threads 2
    python benches/peer/compare.py --shape paper --threads 2 --steps 3
    python benches/peer/compare.py --shape paper --device cuda      # ours: --features cuda
    python benches/peer/compare.py --shape tiny --only peer          # or --only ours

Run from anywhere; the crate's bench runs from the repository root. The peer runs the step
of `ddsp_peer.py` (warm-up steps, then timed steps; median, and on CUDA the peak of
torch.cuda.max_memory_allocated). Ours runs `cargo bench --bench train_step` filtered to
`train_step/<shape>/<device>` and reads Criterion's median from its estimates.json.
Shapes: tiny = rnnChannels 64, batch 4, 1 s; paper = rnnChannels 512, batch 16, 4 s; every
other setting comes from the config (the crate's bench always reads
benches/peer/step_config.json).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DEFAULT_CONFIG = HERE / "step_config.json"
SHAPES = {
    "tiny": dict(rnn_channels=64, batch_size=4, chunk_size=16000),
    "paper": dict(rnn_channels=512, batch_size=16, chunk_size=64000),
}
# Defaults per shape: (peer warm-up steps, peer timed steps, Criterion measurement seconds).
DEFAULTS = {"tiny": (2, 10, 10), "paper": (1, 3, 60)}


def run_peer(args):
    """Time the PyTorch step; returns (median seconds, peak bytes or None, torch version)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    sys.path.insert(0, str(HERE))
    import torch  # after the thread variables are set
    import ddsp_peer

    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(args.threads)
    except RuntimeError:
        pass  # already set by an earlier parallel section
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("compare.py: --device cuda but torch.cuda.is_available() is False")
    cfg = ddsp_peer.load_config(args.config, **SHAPES[args.shape])
    print(f"[peer] torch {torch.__version__}, {args.device}, {args.threads} threads, "
          f"{args.warmup} warm-up + {args.steps} timed steps, shape {args.shape} "
          f"(rnn {cfg.rnn_channels}, batch {cfg.batch_size}, {cfg.chunk_size} samples)",
          flush=True)
    times, peak, losses = ddsp_peer.time_steps(cfg, args.warmup, args.steps, args.device)
    print(f"[peer] step times (ms): {', '.join(f'{t * 1e3:.1f}' for t in times)}; "
          f"loss {losses[0]:.3f} -> {losses[-1]:.3f}", flush=True)
    return statistics.median(times), peak, torch.__version__


def criterion_dir():
    """Where Criterion 0.7 writes (its lib.rs): $CRITERION_HOME, else $CARGO_TARGET_DIR/criterion,
    else cargo metadata's target_directory/criterion, else <root>/target/criterion."""
    if os.environ.get("CRITERION_HOME"):
        return Path(os.environ["CRITERION_HOME"]).resolve()
    if os.environ.get("CARGO_TARGET_DIR"):
        return (ROOT / os.environ["CARGO_TARGET_DIR"]).resolve() / "criterion"
    try:
        out = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"],
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout
        return Path(json.loads(out)["target_directory"]) / "criterion"
    except (OSError, subprocess.CalledProcessError, ValueError, KeyError):
        return ROOT / "target" / "criterion"


def find_estimates(criterion_dir: Path, full_id: str) -> Path:
    """The estimates.json of Criterion benchmark `full_id` (e.g. train_step/tiny/flex).

    Criterion stores it under <group>/<function id with '/' made '_'>/new/, so
    train_step/tiny/flex is train_step/tiny_flex/new/estimates.json; the benchmark.json
    beside it names the full id, which is checked (and searched for if the folder differs).
    """
    group, _, function = full_id.partition("/")
    guess = criterion_dir / group / function.replace("/", "_") / "new"
    candidates = [guess] + sorted(p.parent for p in (criterion_dir / group).glob(
        "*/new/benchmark.json"))
    for d in candidates:
        try:
            if json.loads((d / "benchmark.json").read_text()).get("full_id") == full_id:
                return d / "estimates.json"
        except (OSError, ValueError):
            continue
    raise FileNotFoundError(f"no Criterion results for {full_id} under {criterion_dir / group}")


def read_median_ns(estimates: Path) -> float:
    """Criterion's median per-iteration time, ns (`median.point_estimate`)."""
    return float(json.loads(estimates.read_text())["median"]["point_estimate"])


def ours_command(args):
    features = ["--features", "cuda"] if args.ours_device == "cuda" else []
    return (["cargo", "bench", "--bench", "train_step", *features, "--",
             f"train_step/{args.shape}/{args.ours_device}$", "--warm-up-time", "2",
             "--measurement-time", str(args.measurement_time), "--noplot"],
            {"RAYON_NUM_THREADS": str(args.threads)})


def run_ours(args):
    """Run the crate's Criterion bench; returns (median seconds, estimates.json path)."""
    cmd, env = ours_command(args)
    full_id = f"train_step/{args.shape}/{args.ours_device}"
    print(f"[ours] {format_command(cmd, env)}  (in {ROOT})", flush=True)
    started = time.time()
    rc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **env}).returncode
    if rc != 0:
        sys.exit(f"compare.py: cargo bench failed (exit {rc})")
    try:
        estimates = find_estimates(criterion_dir(), full_id)
    except FileNotFoundError as e:
        sys.exit(f"compare.py: {e}: did the filter match? (wgpu/cuda ids exist only where "
                 f"such a device does)")
    if estimates.stat().st_mtime < started - 1:
        sys.exit(f"compare.py: {estimates} was not updated by this run: did the filter match "
                 f"{full_id}? (wgpu/cuda ids exist only where such a device does)")
    return read_median_ns(estimates) * 1e-9, estimates


def format_command(cmd, env=None):
    pre = " ".join(f"{k}={v}" for k, v in (env or {}).items())
    return (pre + " " if pre else "") + " ".join(shlex.quote(c) for c in cmd)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n", 2)[2])
    p.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    p.add_argument("--threads", type=int, default=2,
                   help="torch.set_num_threads / OMP / MKL, and RAYON_NUM_THREADS for ours")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                   help="PyTorch device; ours runs flex for cpu and cuda for cuda")
    p.add_argument("--ours-device", choices=["flex", "wgpu", "cuda"],
                   help="the crate's device id (default: flex for cpu, cuda for cuda)")
    p.add_argument("--steps", type=int, help="peer timed steps (tiny 10, paper 3)")
    p.add_argument("--warmup", type=int, help="peer warm-up steps (tiny 2, paper 1)")
    p.add_argument("--measurement-time", type=int,
                   help="Criterion --measurement-time, s (tiny 10, paper 60)")
    p.add_argument("--only", choices=["peer", "ours"], help="run one side only")
    p.add_argument("--config", default=str(DEFAULT_CONFIG),
                   help="peer config (the crate's bench reads benches/peer/step_config.json)")
    args = p.parse_args(argv)
    warmup, steps, meas = DEFAULTS[args.shape]
    args.warmup = warmup if args.warmup is None else args.warmup
    args.steps = steps if args.steps is None else args.steps
    args.measurement_time = meas if args.measurement_time is None else args.measurement_time
    args.ours_device = args.ours_device or ("cuda" if args.device == "cuda" else "flex")
    if args.only != "peer" and Path(args.config).resolve() != DEFAULT_CONFIG.resolve():
        print(f"note: --config applies to the peer only; the crate's bench reads "
              f"{DEFAULT_CONFIG.relative_to(ROOT)}", file=sys.stderr)

    peer = ours = None
    if args.only != "ours":
        peer = run_peer(args)
    if args.only != "peer":
        ours = run_ours(args)

    fmt = lambda s: f"{s * 1e3:.1f}" if s is not None else "-"
    ours_s = ours[0] if ours else None
    peer_s, peak, torch_version = peer if peer else (None, None, None)
    ratio = f"{ours_s / peer_s:.2f}" if ours_s and peer_s else "-"
    print()
    print("| shape | device (PyTorch / ours) | threads | ours ms | PyTorch ms | ours/PyTorch "
          "| PyTorch peak MiB |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {args.shape} | {args.device} / {args.ours_device} | {args.threads} | {fmt(ours_s)} | "
          f"{fmt(peer_s)} | {ratio} | {f'{peak / 2**20:.0f}' if peak else '-'} |")
    cmds = []
    if peer:
        cmds.append(f"PyTorch {torch_version}: OMP_NUM_THREADS={args.threads} "
                    f"MKL_NUM_THREADS={args.threads} python benches/peer/compare.py "
                    f"--only peer --shape {args.shape} --threads {args.threads} "
                    f"--device {args.device} --warmup {args.warmup} --steps {args.steps} "
                    f"--config {shlex.quote(args.config)} (median of {args.steps} steps "
                    f"after {args.warmup} warm-up)")
    if ours:
        cmds.append(f"ours: {format_command(*ours_command(args))} (Criterion median, "
                    f"{ours[1]})")
    print("commands: " + "; ".join(cmds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
