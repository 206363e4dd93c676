"""Benchmark: `sdlib convert --dtype fp16` on a >= 1 GiB fp32 pickle checkpoint.

Prints, same run:
  (a) peak RSS of the `sdlib convert` child process / input size          (target <= 0.35);
  (b) wall time of `sdlib convert` / wall time of the naive way, a child running
      torch.load + .half() + safetensors.torch.save_file                  (target <= 1.0).
Both are whole child processes (interpreter start and imports included); the naive way's
in-process time without `import torch` is printed too. The outputs are compared tensor by
tensor. Everything lives in a temporary folder that is removed at the end.

Usage: python bench/convert.py [--size-mib 1100] [--repeat 2]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _util import run_child, same_outputs, warm  # bench/ is on sys.path as a script

NAIVE = """
import sys, time
t0 = time.perf_counter()
import torch, safetensors.torch
t1 = time.perf_counter()
ckpt = torch.load(sys.argv[1], weights_only=True)
sd = ckpt.get("state_dict", ckpt)
safetensors.torch.save_file({k: v.half().contiguous() for k, v in sd.items()}, sys.argv[2])
print(f"{time.perf_counter() - t1:.3f} {t1 - t0:.3f}")
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
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sdlib-bench-convert-"))
    try:
        src = tmp / "model.ckpt"
        size = make_checkpoint(src, args.size_mib)
        ours, naive = tmp / "model.fp16.safetensors", tmp / "naive.safetensors"
        best_ours, best_naive, best_work, peak = float("inf"), float("inf"), float("inf"), 0
        for _ in range(args.repeat):
            for path in (ours, naive):
                path.unlink(missing_ok=True)
            warm(src)
            wall, rss, _ = run_child(
                [sys.executable, "-m", "sdlib", "convert", str(src), "--dtype", "fp16"]
            )
            best_ours, peak = min(best_ours, wall), max(peak, rss)
            warm(src)
            wall, _, out = run_child([sys.executable, "-c", NAIVE, str(src), str(naive)])
            best_naive = min(best_naive, wall)
            best_work = min(best_work, float(out.split()[0]))
        print(f"input: {size / 2**30:.2f} GiB fp32 pickle checkpoint ({src.name})")
        print(
            f"(a) peak RSS of sdlib convert: {peak / 2**20:.0f} MiB = "
            f"{peak / size:.3f} x input size (target <= 0.35)"
        )
        print(
            f"(b) sdlib convert {best_ours:.2f} s / naive {best_naive:.2f} s = "
            f"{best_ours / best_naive:.2f} (target <= 1.0)"
        )
        print(
            f"    naive without interpreter start and `import torch`: {best_work:.2f} s "
            f"(sdlib / that = {best_ours / best_work:.2f})"
        )
        print(f"outputs identical tensor by tensor: {same_outputs(ours, naive)}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
