"""Benchmark: `sdlib download` over loopback against the local Civitai-compatible server.

Prints, same run:
  (a) a 1 GiB file: wall time of `sdlib download` (all six hashes verified while
      streaming) / wall time of `curl -o` on the same signed URL   (target <= 1.10);
  (b) a server capping each connection at a fixed rate: 4 connections vs 1
      (target: at least 3x faster).

Usage: python bench/download.py [--size-mib 1024] [--rate-mib 16] [--rate-size-mib 192]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from sdlib.testing.catalogue import LARGE_FILE_ID, LARGE_MODEL_ID, LARGE_VERSION_ID
from sdlib.testing.server import DemoServer


def run_sdlib(env: dict[str, str], dest: Path, *extra: str) -> float:
    shutil.rmtree(dest, ignore_errors=True)
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "sdlib", "download", str(LARGE_MODEL_ID), "--to", str(dest),
         "--no-preview", *extra],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    return time.perf_counter() - t


def signed_url(server: DemoServer) -> str:
    url = f"{server.url}/api/download/models/{LARGE_VERSION_ID}?fileId={LARGE_FILE_ID}"
    response = httpx.get(url, headers={"User-Agent": "bench"}, follow_redirects=False)
    return response.headers["Location"]


def run_curl(url: str, out: Path) -> float:
    out.unlink(missing_ok=True)
    t = time.perf_counter()
    subprocess.run(["curl", "-s", "-o", str(out), url], check=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--rate-mib", type=int, default=16, help="per-connection cap for (b)")
    ap.add_argument("--rate-size-mib", type=int, default=192, help="file size for (b)")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    if shutil.which("curl") is None:
        sys.exit("curl is needed for the baseline")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = {**os.environ, "SDLIB_CACHE_DIR": str(root / "cache"),
               "SDLIB_CONFIG": str(root / "none.toml")}  # fmt: skip
        with DemoServer(root / "files", large_size=args.size_mib << 20) as server:
            env["SDLIB_CIVITAI_URL"] = server.url
            url = signed_url(server)
            run_curl(url, root / "warm.bin")  # warm the generator and the page cache
            t_curl = min(run_curl(url, root / "curl.bin") for _ in range(args.repeat))
            (root / "curl.bin").unlink()
            t_one = min(run_sdlib(env, root / "dl", "--connections", "1")
                        for _ in range(args.repeat))  # fmt: skip
            t_four = min(run_sdlib(env, root / "dl") for _ in range(args.repeat))
            print(f"file: {args.size_mib} MiB over loopback, cores: {os.cpu_count()}")
            print(f"(a) curl -o: {t_curl:.2f} s; sdlib download (1 conn.): {t_one:.2f} s "
                  f"= {t_one / t_curl:.2f}; (4 conn.): {t_four:.2f} s = {t_four / t_curl:.2f}"
                  "  (target <= 1.10)")  # fmt: skip
        with DemoServer(root / "files2", large_size=args.rate_size_mib << 20) as server:
            env["SDLIB_CIVITAI_URL"] = server.url
            server.rate_limit = args.rate_mib << 20
            t1 = run_sdlib(env, root / "dl", "--connections", "1")
            t4 = run_sdlib(env, root / "dl", "--connections", "4")
            print(
                f"(b) {args.rate_mib} MiB/s per connection, {args.rate_size_mib} MiB: "
                f"1 conn. {t1:.2f} s, 4 conn. {t4:.2f} s = {t1 / t4:.2f}x  (target >= 3x)"
            )


if __name__ == "__main__":
    main()
