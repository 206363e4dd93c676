"""Benchmark: `sdlib download` over loopback against the local Civitai-compatible server.

Prints, same run:
  (a) a 1 GiB file: wall time of `sdlib download` (all six hashes verified while
      streaming) / wall time of `curl -o` on the same signed URL   (target <= 1.10);
  (b) a server capping each connection at a fixed rate: 4 connections vs 1
      (target: at least 3x faster);
  (c) the same as (a) for a file on the demo Hugging Face Hub: `sdlib download hf:...`
      (Hub API, resolve, 302 to the CDN host, sha256 and the other hashes verified while
      streaming) / `curl -o` on the signed CDN URL the resolve redirects to (target <= 1.10).

Usage: python bench/download.py [--size-mib 1024] [--rate-mib 16] [--rate-size-mib 192]
       [--repeat 3]
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

import httpx2

from sdlib.demo.catalogue import LARGE_FILE_ID, LARGE_MODEL_ID, LARGE_VERSION_ID
from sdlib.demo.hub_catalogue import HUB_LARGE_PATH, HUB_LARGE_REPO
from sdlib.demo.server import DemoServer


def timed(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one child process."""
    t = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv[:4]} failed:\n{err}")
    return wall, usage.ru_utime + usage.ru_stime


def run_sdlib(
    env: dict[str, str], dest: Path, *extra: str, ref: str = str(LARGE_MODEL_ID)
) -> tuple[float, float]:
    shutil.rmtree(dest, ignore_errors=True)
    argv = [sys.executable, "-m", "sdlib", "download", ref, "--to", str(dest),
            "--no-preview", *extra]  # fmt: skip
    return timed(argv, env)


def signed_url(server: DemoServer) -> str:
    url = f"{server.url}/api/download/models/{LARGE_VERSION_ID}?fileId={LARGE_FILE_ID}"
    response = httpx2.get(url, headers={"User-Agent": "bench"}, follow_redirects=False)
    return response.headers["Location"]


def hub_cdn_url(server: DemoServer) -> str:
    """The signed CDN URL the Hub's resolve redirects to (what `sdlib download` ends up on)."""
    url = f"{server.hub_url}/{HUB_LARGE_REPO}/resolve/main/{HUB_LARGE_PATH}"
    response = httpx2.head(url, headers={"User-Agent": "bench"}, follow_redirects=False)
    return response.headers["Location"]


def run_curl(url: str, out: Path) -> tuple[float, float]:
    out.unlink(missing_ok=True)
    result = timed(["curl", "-s", "-o", str(out), url])
    out.unlink()
    return result


def hashing_cpu(size: int) -> float:
    """CPU seconds the six hashes cost for ``size`` bytes of a safetensors file, in memory."""
    from sdlib.demo.catalogue import LargeFile
    from sdlib.hashing import Hasher

    head = LargeFile(size).header
    hasher = Hasher(size)
    block = memoryview(bytes(8 << 20))
    t = time.process_time()
    hasher.update(head)
    left = size - len(head)
    while left > 0:
        hasher.update(block[: min(left, len(block))])
        left -= len(block)
    hasher.result()
    return time.process_time() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--rate-mib", type=int, default=16, help="per-connection cap for (b)")
    ap.add_argument("--rate-size-mib", type=int, default=192, help="file size for (b)")
    ap.add_argument("--repeat", type=int, default=3)
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
            # Interleaved, best of each: page-cache allocation on a VM varies run to run.
            runs: dict[str, list[tuple[float, float]]] = {"curl": [], "one": [], "four": []}
            for _ in range(args.repeat):
                runs["curl"].append(run_curl(url, root / "curl.bin"))
                runs["one"].append(run_sdlib(env, root / "dl", "--connections", "1"))
                runs["four"].append(run_sdlib(env, root / "dl"))
            (c, c_cpu), (one, one_cpu), (four, four_cpu) = (min(runs[k]) for k in runs)
            print(f"file: {args.size_mib} MiB over loopback, cores: {os.cpu_count()}, "
                  f"best of {args.repeat}")  # fmt: skip
            print(f"(a) curl -o: {c:.2f} s; sdlib download (1 conn.): {one:.2f} s = "
                  f"{one / c:.2f}; (4 conn.): {four:.2f} s = {four / c:.2f}"
                  "  (target <= 1.10)")  # fmt: skip
            print(f"    CPU s: curl {c_cpu:.2f}, sdlib {one_cpu:.2f} (1 conn.) / {four_cpu:.2f} "
                  f"(4 conn.), of which the six hashes alone: "
                  f"{hashing_cpu(args.size_mib << 20):.2f}")  # fmt: skip
        with DemoServer(root / "files2", large_size=args.rate_size_mib << 20) as server:
            env["SDLIB_CIVITAI_URL"] = server.url
            server.rate_limit = args.rate_mib << 20
            t1 = run_sdlib(env, root / "dl", "--connections", "1")[0]
            t4 = run_sdlib(env, root / "dl", "--connections", "4")[0]
            print(
                f"(b) {args.rate_mib} MiB/s per connection, {args.rate_size_mib} MiB: "
                f"1 conn. {t1:.2f} s, 4 conn. {t4:.2f} s = {t1 / t4:.2f}x  (target >= 3x)"
            )
        hub_case(root, env, args.size_mib, args.repeat)


def hub_case(root: Path, env: dict[str, str], size_mib: int, repeat: int) -> None:
    """(c): (a) for the demo Hub's generated file, through HF_ENDPOINT and an empty HF cache
    (so every run fetches its bytes) and no token."""
    hidden = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_HUB_CACHE",
              "SDLIB_HF_ENDPOINT", "HF_HUB_OFFLINE")  # fmt: skip
    env = {k: v for k, v in env.items() if k not in hidden}
    env["HF_HOME"] = str(root / "hf-home")
    with DemoServer(root / "files3", catalogue=()) as server:
        env["HF_ENDPOINT"] = server.hub_url
        ref = server.hub.add_large_file(size_mib << 20)
        url = hub_cdn_url(server)  # the first resolve hashes the generated file (once)
        run_curl(url, root / "warm.bin")
        runs: dict[str, list[tuple[float, float]]] = {"curl": [], "one": [], "four": []}
        for _ in range(repeat):
            runs["curl"].append(run_curl(url, root / "curl.bin"))
            runs["one"].append(run_sdlib(env, root / "dl", "--connections", "1", ref=ref))
            runs["four"].append(run_sdlib(env, root / "dl", ref=ref))
        (c, c_cpu), (one, one_cpu), (four, four_cpu) = (min(runs[k]) for k in runs)
        print(f"(c) {ref} ({size_mib} MiB), curl -o on its CDN URL: {c:.2f} s; "
              f"sdlib download (1 conn.): {one:.2f} s = {one / c:.2f}; (4 conn.): {four:.2f} s "
              f"= {four / c:.2f}  (target <= 1.10)")  # fmt: skip
        print(f"    CPU s: curl {c_cpu:.2f}, sdlib {one_cpu:.2f} (1 conn.) / {four_cpu:.2f} "
              "(4 conn.)")  # fmt: skip


if __name__ == "__main__":
    main()
