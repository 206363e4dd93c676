"""Benchmark: `sdlib convert --dtype fp16` on a >= 1 GiB fp32 pickle checkpoint.

Prints, same run:
  (a) peak RSS of the `sdlib convert` child process / input size          (target <= 0.35);
  (b) wall time of `sdlib convert` / wall time of the naive way, a child running
      torch.load + .half() + safetensors.torch.save_file + fsync of the output
      (sdlib fsyncs too)                                                  (target <= 0.8,
      in every round, not only best against best).
Both sides run --repeat times, interleaved (the order alternates by round), each from the
same state: the input read once into the page cache, the previous outputs deleted and
everything dirty written out (sync). The spread (min, median, max) and each round's ratio
are printed, with each side's CPU time (steadier than wall time on a loaded machine) and
the naive way's phases (import, load, cast+save, fsync). The outputs are compared tensor by
tensor. Everything lives in a temporary folder that is removed at the end.

Usage: python bench/convert.py [--size-mib 1100] [--repeat 5] [--before DIR]
(run it from outside the checkout when using --before: `python -m` puts the current folder
first on sys.path)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _interleave import Run, interleave, report, run_child, settle
from _util import same_outputs, warm  # bench/ is on sys.path as a script

NAIVE = """
import os, sys, time
t0 = time.perf_counter()
import torch, safetensors.torch
t1 = time.perf_counter()
ckpt = torch.load(sys.argv[1], weights_only=True)
sd = ckpt.get("state_dict", ckpt)
t2 = time.perf_counter()
safetensors.torch.save_file({k: v.half().contiguous() for k, v in sd.items()}, sys.argv[2])
t3 = time.perf_counter()
fd = os.open(sys.argv[2], os.O_RDONLY)
os.fsync(fd)
os.close(fd)
t4 = time.perf_counter()
print(f"{t1 - t0:.3f} {t2 - t1:.3f} {t3 - t2:.3f} {t4 - t3:.3f}")
"""


MAKE = """
import sys, torch
g = torch.Generator().manual_seed(0)
state, total, i = {}, 0, 0
shapes = [(1280, 1280), (640, 640, 3, 3), (320, 1280), (1280,), (77, 768)]
while total < int(sys.argv[2]) << 20:
    tensor = torch.randn(*shapes[i % len(shapes)], generator=g)
    state[f"model.diffusion_model.block_{i // len(shapes)}.{i % len(shapes)}.weight"] = tensor
    total += tensor.numel() * 4
    i += 1
torch.save({"state_dict": state, "global_step": 1000, "epoch": 1}, sys.argv[1])
"""


def make_checkpoint(path: Path, size_mib: int) -> int:
    """An SD-shaped fp32 checkpoint, written by a child so this process stays small (a child
    forked from a big parent would inherit its peak RSS figure)."""
    subprocess.run([sys.executable, "-c", MAKE, str(path), str(size_mib)], check=True)
    return path.stat().st_size


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1100)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument(
        "--before",
        metavar="DIR",
        help="also time the sdlib package found in DIR (an older checkout) for before/after",
    )
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sdlib-bench-convert-"))
    try:
        src = tmp / "model.ckpt"
        size = make_checkpoint(src, args.size_mib)
        ours, naive = tmp / "model.fp16.safetensors", tmp / "naive.safetensors"

        before = tmp / "before.safetensors"
        outputs = {"sdlib": ours, "naive": naive, "before": before}

        def prepare(side: str) -> None:
            outputs[side].unlink(missing_ok=True)
            warm(src)
            settle()

        sdlib = [sys.executable, "-m", "sdlib", "convert", str(src), "--dtype", "fp16"]
        sides = {
            "sdlib": lambda: run_child(sdlib),
            "naive": lambda: run_child([sys.executable, "-c", NAIVE, str(src), str(naive)]),
        }
        if args.before:
            env = {**os.environ, "PYTHONPATH": args.before}
            sides["before"] = lambda: run_child([*sdlib, "-o", str(before)], env)
        runs = interleave(sides, args.repeat, prepare)
        print(f"input: {size / 2**30:.2f} GiB fp32 pickle checkpoint ({src.name})")
        peak = max(r.rss for r in runs["sdlib"])
        print(
            f"(a) peak RSS of sdlib convert: {peak / 2**20:.0f} MiB = "
            f"{peak / size:.3f} x input size (target <= 0.35)"
        )
        print(f"(b) convert time, {args.repeat} interleaved rounds:")
        report("sdlib convert", runs["sdlib"], runs["naive"], "naive (+fsync)", 0.8)
        if args.before:
            print(f"    the same against sdlib from {args.before}:")
            report("sdlib before", runs["before"], runs["naive"], "naive (+fsync)", 0.8)
        _phases(runs["naive"])
        print(f"outputs identical tensor by tensor: {same_outputs(ours, naive)}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _phases(naive: list[Run]) -> None:
    phases = [[float(x) for x in r.out.split()] for r in naive]
    names = ("import torch", "torch.load", "half+save_file", "fsync")
    shown = ", ".join(
        f"{name} {statistics.median(p[i] for p in phases):.2f}" for i, name in enumerate(names)
    )
    print(f"    naive's phases (median s): {shown}")


if __name__ == "__main__":
    main()
