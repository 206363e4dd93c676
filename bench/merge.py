"""Benchmark: `sdlib merge --method weighted-sum` on two >= 1 GiB fp16 checkpoints.

The inputs have the real SD 1.5 layout (UNet + VAE + CLIP-L, 1,066 M parameters, 2.0 GiB in
fp16) with random weights. Prints, same run:
  (a) peak RSS of the `sdlib merge` child process / one input's size        (target <= 0.15);
  (b) wall time of `sdlib merge` / wall time of the naive way, a child that loads both
      files with safetensors.torch.load_file, computes A*(1-M) + B*M in float32 tensor by
      tensor and saves with save_file                                       (target <= 1.0).
Both are whole child processes (interpreter start and imports included); `sdlib merge` also
records the inputs' SHA-256 (timed twice: with a cold hash cache, computing all six hashes
of both inputs on the side, and with a warm one), fsyncs and re-reads its output to verify
it. The naive way's in-process time without `import torch` is printed
too, and the two outputs are compared tensor by tensor. Everything lives in a temporary
folder that is removed at the end.

Usage: python bench/merge.py [--repeat 2] [--alpha 0.3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _util import run_child, same_outputs, warm  # bench/ is on sys.path as a script

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
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--alpha", type=float, default=0.3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sdlib-bench-merge-"))
    try:
        a, b = tmp / "a.safetensors", tmp / "b.safetensors"
        size = make_checkpoint(a, 1)
        make_checkpoint(b, 2)
        ours, naive = tmp / "ours.safetensors", tmp / "naive.safetensors"
        cache = tmp / "cache"
        env = {**os.environ, "SDLIB_CACHE_DIR": str(cache)}
        merge = [sys.executable, "-m", "sdlib", "merge", str(a), str(b), "-o", str(ours),
                 "--method", "weighted-sum", "--alpha", str(args.alpha), "--overwrite"]  # fmt: skip
        cold: list[float] = []
        warm_cache: list[float] = []
        naive_wall: list[float] = []
        work: list[float] = []
        peak = naive_peak = 0
        for _ in range(args.repeat):
            naive.unlink(missing_ok=True)
            shutil.rmtree(cache, ignore_errors=True)  # cold: the inputs' hashes are computed
            for runs in (cold, warm_cache):  # warm: they come from the hash cache
                warm(a, b)
                wall, rss, _ = run_child(merge, env)
                runs.append(wall)
                peak = max(peak, rss)
            warm(a, b)
            wall, rss, out = run_child(
                [sys.executable, "-c", NAIVE, str(a), str(b), str(naive), str(args.alpha)]
            )
            naive_wall.append(wall)
            naive_peak = max(naive_peak, rss)
            work.append(float(out.split()[0]))
        best_naive = min(naive_wall)
        print(f"inputs: 2 x {size / 2**30:.2f} GiB fp16 safetensors (SD 1.5 layout, random)")
        print(
            f"(a) peak RSS of sdlib merge: {peak / 2**20:.0f} MiB = {peak / size:.3f} x one "
            f"input (target <= 0.15); naive: {naive_peak / 2**20:.0f} MiB"
        )
        for label, runs in (("cold hash cache", cold), ("warm hash cache", warm_cache)):
            print(
                f"(b) sdlib merge, {label}: {min(runs):.2f} s / naive {best_naive:.2f} s = "
                f"{min(runs) / best_naive:.2f} (target <= 1.0)"
            )
        print(f"    naive without interpreter start and `import torch`: {min(work):.2f} s")
        print(f"outputs identical tensor by tensor: {same_outputs(ours, naive)}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
