"""Benchmark: `sdlib hash` (all six hashes) against hashlib SHA256 alone, same run.

Prints, for a file of at least 1 GiB:
  (a) wall time of the six-hash pass / wall time of SHA256 alone  (target <= 1.15)
      for a safetensors file (AutoV3 adds a second SHA256 stream) and for a plain file;
  (b) re-hash of the unchanged file from the cache, in process and via the CLI (< 50 ms);
  (c) `sdlib --help` wall time (target < 0.4 s), beside `python -c pass`.

Usage: python bench/hash.py [--size-mib 1024] [--dir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sdlib.demo.writers import safetensors_header
from sdlib.hashcache import HashCache
from sdlib.hashing import hash_file


def make_file(path: Path, size: int, safetensors: bool) -> None:
    block = os.urandom(1 << 20)
    with open(path, "wb") as fh:
        if safetensors:
            n = (size - 4096) // 4
            fh.write(safetensors_header({"w": ("F32", (n,))}))
            size = n * 4
        while size > 0:
            fh.write(block[: min(size, len(block))])
            size -= len(block)


def sha_only(path: Path) -> None:
    h = hashlib.sha256()
    buf = bytearray(8 << 20)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            h.update(memoryview(buf)[:n])


def best(func: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        func()  # type: ignore[operator]
        times.append(time.perf_counter() - t)
    return min(times)


def cli_time(args: list[str], env: dict[str, str], repeat: int = 5) -> float:
    return best(lambda: subprocess.run(args, env=env, capture_output=True, check=True), repeat)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    size = args.size_mib << 20
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        env = {**os.environ, "SDLIB_CACHE_DIR": str(root / "cache")}
        print(f"file size: {args.size_mib} MiB, cores: {os.cpu_count()}")
        for label, st in (("safetensors", True), ("plain (.ckpt-like)", False)):
            path = root / ("model.safetensors" if st else "model.ckpt")
            make_file(path, size, st)
            sha_only(path)  # warm the page cache so both sides read from memory
            t_sha = best(lambda p=path: sha_only(p), args.repeat)
            t_all = best(lambda p=path: hash_file(p), args.repeat)
            print(
                f"(a) {label}: six hashes {t_all:.3f} s / SHA256 alone {t_sha:.3f} s"
                f" = {t_all / t_sha:.2f}  (target <= 1.15)"
            )
        with HashCache(root / "cache" / "hashes.sqlite") as cache:
            cache.get(path)
            t_cached = best(lambda: cache.get(path), 20)
        subprocess.run([sys.executable, "-m", "sdlib", "hash", str(path)], env=env, check=True,
                       capture_output=True)  # fmt: skip
        t_cli = cli_time([sys.executable, "-m", "sdlib", "hash", str(path)], env)
        print(f"(b) cached re-hash: {t_cached * 1000:.2f} ms in process (target < 50 ms); "
              f"whole CLI process {t_cli * 1000:.0f} ms")  # fmt: skip
        t_help = cli_time([sys.executable, "-m", "sdlib", "--help"], env)
        t_pass = cli_time([sys.executable, "-c", "pass"], env)
        print(f"(c) sdlib --help: {t_help:.3f} s (target < 0.4 s); python -c pass: {t_pass:.3f} s")


if __name__ == "__main__":
    main()
