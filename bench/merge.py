"""Benchmark: `sdlib merge --method weighted-sum` on two >= 1 GiB fp16 checkpoints.

The inputs have the real SD 1.5 layout (UNet + VAE + CLIP-L, 1,066 M parameters, 2.0 GiB in
fp16) with random weights. Prints, same run:
  (a) peak RSS of the `sdlib merge` child process / one input's size        (target <= 0.15);
  (b) wall time of `sdlib merge` / wall time of the naive way, a child that loads both
      files with safetensors.torch.load_file, computes A*(1-M) + B*M in float32 tensor by
      tensor and saves with save_file (no fsync)                            (target <= 1.0,
      in every round).
Every side runs --repeat times, interleaved (the order rotates by round), each from the same
state: inputs in the page cache, the previous outputs deleted and everything dirty written
out (sync). `sdlib merge` runs twice a round: with a cold hash cache (it computes all six
hashes of both inputs on the side) and a warm one; it also fsyncs and re-reads its output to
verify it. The spread (min, median, max), each round's ratio and each side's CPU time are
printed; the naive way's in-process time without `import torch` too, and the two outputs are
compared tensor by tensor. Everything lives in a temporary folder that is removed at the end.

Usage: python bench/merge.py [--repeat 4] [--alpha 0.3] [--before DIR]
(run it from outside the checkout when using --before: `python -m` puts the current folder
first on sys.path)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _interleave import Run, interleave, report, run_child, settle
from _util import same_outputs, warm  # bench/ is on sys.path as a script

MAKE = """
import sys, math
import numpy as np
from sdlib.demo.specs import sd15_checkpoint
from sdlib.demo.writers import safetensors_header
spec = sd15_checkpoint("F16")
rng = np.random.default_rng(int(sys.argv[2]))
pool = (rng.standard_normal(1 << 24, dtype=np.float32) * 0.05).astype("<f2")
with open(sys.argv[1], "wb") as fh:
    fh.write(safetensors_header(spec, {"format": "pt"}))
    for name, (dtype, shape) in spec.items():
        n = math.prod(shape)
        if dtype == "I64":
            fh.write(np.arange(n, dtype="<i8").tobytes())
            continue
        if dtype == "F32":  # the DDPM schedule buffers
            fh.write(np.linspace(1e-4, 2e-2, n, dtype="<f4").tobytes())
            continue
        left = n
        while left:  # random slices of a random pool: fast, and A differs from B
            k = min(left, 1 << 22)
            start = int(rng.integers(0, pool.size - k))
            fh.write(pool[start : start + k].tobytes())
            left -= k
"""

NAIVE = """
import sys, time
t0 = time.perf_counter()
import torch, safetensors.torch
t1 = time.perf_counter()
alpha = float(sys.argv[4])
a = safetensors.torch.load_file(sys.argv[1])
b = safetensors.torch.load_file(sys.argv[2])
parts = ("model.diffusion_model.", "first_stage_model.", "cond_stage_model.")
out = {}
for name, ta in a.items():
    tb = b.get(name)
    if (tb is None or not ta.is_floating_point() or not name.startswith(parts)
            or name.endswith("position_ids")):
        out[name] = ta
        continue
    out[name] = (ta.float() * (1 - alpha) + tb.float() * alpha).to(ta.dtype)
safetensors.torch.save_file(out, sys.argv[3], metadata={"format": "pt"})
print(f"{time.perf_counter() - t1:.3f} {t1 - t0:.3f}")
"""


def make_checkpoint(path: Path, seed: int) -> int:
    """Written by a child so this process stays small (a child forked from a big parent would
    inherit its peak RSS figure)."""
    subprocess.run([sys.executable, "-c", MAKE, str(path), str(seed)], check=True)
    return path.stat().st_size


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=4)
    ap.add_argument("--alpha", type=float, default=0.3)
    ap.add_argument(
        "--before",
        metavar="DIR",
        help="also time the sdlib package found in DIR (an older checkout) for before/after",
    )
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sdlib-bench-merge-"))
    try:
        a, b = tmp / "a.safetensors", tmp / "b.safetensors"
        size = make_checkpoint(a, 1)
        make_checkpoint(b, 2)
        ours, naive = tmp / "ours.safetensors", tmp / "naive.safetensors"
        cache = tmp / "cache"
        env = {**os.environ, "SDLIB_CACHE_DIR": str(cache), "SDLIB_DATA_DIR": str(tmp / "data"),
               "SDLIB_CONFIG": str(tmp / "none.toml")}  # fmt: skip
        old_env = {**env, "PYTHONPATH": args.before or ""}
        merge = [sys.executable, "-m", "sdlib", "merge", str(a), str(b), "--method",
                 "weighted-sum", "--alpha", str(args.alpha), "--overwrite"]  # fmt: skip

        outputs = {"sdlib": ours, "naive": naive, "before": tmp / "before.safetensors"}

        def prepare(side: str) -> None:
            outputs[side].unlink(missing_ok=True)
            warm(a, b)
            settle()

        warm_runs: dict[str, list[Run]] = {"sdlib": [], "before": []}

        def cold_then_warm(key: str, run_env: dict[str, str]) -> Run:
            """A cold-cache run (the inputs' hashes are computed), then a warm one (they
            come from the cache that run filled); returns the cold one."""
            argv = [*merge, "-o", str(outputs[key])]
            shutil.rmtree(cache, ignore_errors=True)
            cold = run_child(argv, run_env)
            prepare(key)
            warm_runs[key].append(run_child(argv, run_env))
            return cold

        naive_argv = [sys.executable, "-c", NAIVE, str(a), str(b), str(naive), str(args.alpha)]
        sides = {
            "sdlib": lambda: cold_then_warm("sdlib", env),
            "naive": lambda: run_child(naive_argv),
        }
        if args.before:
            sides["before"] = lambda: cold_then_warm("before", old_env)
        runs = interleave(sides, args.repeat, prepare)
        print(f"inputs: 2 x {size / 2**30:.2f} GiB fp16 safetensors (SD 1.5 layout, random)")
        peak = max(r.rss for key in warm_runs for r in runs.get(key, []) + warm_runs[key])
        naive_peak = max(r.rss for r in runs["naive"])
        print(
            f"(a) peak RSS of sdlib merge: {peak / 2**20:.0f} MiB = {peak / size:.3f} x one "
            f"input (target <= 0.15); naive: {naive_peak / 2**20:.0f} MiB"
        )
        print(f"(b) merge time, {args.repeat} interleaved rounds:")
        for key in ("sdlib", "before") if args.before else ("sdlib",):
            name = "sdlib merge" if key == "sdlib" else "before"
            report(f"{name}, cold hash cache", runs[key], runs["naive"], "naive", 1.0)
            report(f"{name}, warm hash cache", warm_runs[key], runs["naive"], "naive", 1.0)
        work = [float(r.out.split()[0]) for r in runs["naive"]]
        print(f"    naive without interpreter start and `import torch`: {min(work):.2f} s")
        print(f"outputs identical tensor by tensor: {same_outputs(ours, naive)}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
