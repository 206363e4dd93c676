"""Helpers the benchmarks share: timed children with their own peak RSS, page-cache warming,
tensor-by-tensor comparison of two safetensors files."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path


def run_child(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """Wall seconds, peak RSS in bytes (this child only, via wait4) and stdout."""
    t = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    out = proc.stdout.read() if proc.stdout else ""
    err = proc.stderr.read() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv[1:4]} failed:\n{err}")
    return wall, usage.ru_maxrss * 1024, out  # ru_maxrss is KiB on Linux


def warm(*paths: Path) -> None:
    """Read files once so every timed run starts from the page cache."""
    for path in paths:
        with open(path, "rb") as fh:
            while fh.read(64 << 20):
                pass


def same_outputs(a: Path, b: Path) -> bool:
    from safetensors import safe_open

    with safe_open(str(a), framework="numpy") as fa, safe_open(str(b), framework="numpy") as fb:
        if set(fa.keys()) != set(fb.keys()):
            return False
        for key in fa.keys():  # noqa: SIM118 - safe_open is not a dict
            x, y = fa.get_tensor(key), fb.get_tensor(key)
            if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
                return False
    return True
