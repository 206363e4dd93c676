"""Benchmark: a studio mirror in front of upstream, for many machines installing one lock.

Prints, same run:
  (a) 8 simulated machines (separate processes, homes, caches and webUI roots) install one
      6-file lock at once (`sdlib install -f models.toml --frozen`) with an S3 mirror that
      publishes: how many file bodies upstream served (target: 6, each file crossed "the
      internet" once) and the wall time;
  (b) the same 8 machines without a mirror: upstream bodies (48) and wall time, and the
      ratio of (a) to (b);
  (c) one file pulled from the mirror over loopback (`sdlib mirror pull`, every hash
      verified) against `curl -o` of the same object (its presigned URL).

Upstream is the demo Civitai server, each connection capped at --rate-mib (the internet);
the mirror is moto's S3 server on 127.0.0.1 (the LAN; moto does ~100-150 MiB/s here, slower
than a real S3 server, so (c) is about sdlib's overhead on top of the server, not S3 speed).
The lock is written from what the demo server serves (SHA256 and size of each file).

Usage: python bench/mirror.py [--machines 8] [--large-mib 128] [--rate-mib 16]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests.support: the S3 server fixture, isolated environments

from sdlib.demo.catalogue import LARGE_FILE_ID, LARGE_MODEL_ID, LARGE_VERSION_ID  # noqa: E402
from sdlib.demo.server import DemoServer  # noqa: E402
from tests.support.cli import isolated_env  # noqa: E402
from tests.support.demo_lock import write_lock  # noqa: E402
from tests.support.s3_server import FAKE_CREDENTIALS, S3Bucket, S3Server  # noqa: E402

#: Five demo files (checkpoints and LoRAs, 0.1-5 MiB) and the large generated one.
FILES = (
    ("4384@128713", 1287131), ("4823@15236", 152361), ("43331@176425", 1764251),
    ("58390@62833", 628331), ("7371@8217", 82171),
    (f"{LARGE_MODEL_ID}@{LARGE_VERSION_ID}", LARGE_FILE_ID),
)  # fmt: skip


def upstream_bodies(server: DemoServer) -> int:
    """File bodies the storage host served (a download's first request has no Range)."""
    return sum(
        1
        for r in server.requests
        if r.server == "storage" and r.method == "GET" and r.path.startswith("/files/")
        and not r.header("Range")
    )  # fmt: skip


def machine_env(home: Path, server: DemoServer, bucket: S3Bucket | None) -> dict[str, str]:
    env = isolated_env(home, SDLIB_CIVITAI_URL=server.url,
                       PYTHONPYCACHEPREFIX=str(home.parent / "pycache"))  # fmt: skip
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed sdlib has its .pyc files
    if bucket is not None:
        env.update(bucket.env())
        config = Path(env["SDLIB_CONFIG"])
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(bucket.config_toml(publish=True))
    return env


def install(home: Path, manifest: Path, env: dict[str, str]) -> float:
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(manifest, home / "models.toml")
    shutil.copy(manifest.with_suffix(".lock"), home / "models.lock")
    began = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "sdlib", "install", "-f", str(home / "models.toml"), "--frozen",
         "--root", str(home / "webui"), "--ui", "a1111", "--no-preview", "--no-refresh"],
        env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"machine {home.name} failed:\n{proc.stdout}\n{proc.stderr}")
    return time.perf_counter() - began


def many(root: Path, manifest: Path, server: DemoServer, bucket: S3Bucket | None, n: int) -> float:
    homes = [root / f"machine{i}" for i in range(n)]
    envs = [machine_env(h, server, bucket) for h in homes]
    began = time.perf_counter()
    with ThreadPoolExecutor(n) as pool:
        list(pool.map(install, homes, [manifest] * n, envs))
    return time.perf_counter() - began


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--machines", type=int, default=8)
    ap.add_argument("--large-mib", type=int, default=128)
    ap.add_argument("--rate-mib", type=int, default=16, help="upstream cap per connection")
    args = ap.parse_args()
    if shutil.which("curl") is None:
        sys.exit("curl is needed for the baseline")
    os.environ.update(FAKE_CREDENTIALS)
    with tempfile.TemporaryDirectory() as tmp, S3Server() as s3:
        root = Path(tmp)
        with DemoServer(root / "files", large_size=args.large_mib << 20) as server:
            server.rate_limit = args.rate_mib << 20
            total = sum(server.files[f].size for _, f in FILES)
            manifest = write_lock(root, server, FILES)
            warm = root / "warm"  # compile sdlib's bytecode once, untimed
            subprocess.run([sys.executable, "-m", "sdlib", "--help"], capture_output=True,
                           env=machine_env(warm, server, None), check=True)  # fmt: skip
            print(f"lock: {len(FILES)} files, {total / (1 << 20):.0f} MiB; upstream capped at "
                  f"{args.rate_mib} MiB/s a connection; {args.machines} machines; "
                  f"cores: {os.cpu_count()}")  # fmt: skip

            s3.create_bucket("bench")
            bucket = S3Bucket(endpoint=s3.endpoint, name="bench")
            server.reset()
            server.rate_limit = args.rate_mib << 20
            with_mirror = many(root / "with", manifest, server, bucket, args.machines)
            bodies = upstream_bodies(server)
            print(f"(a) with the mirror: {bodies} upstream downloads (target {len(FILES)}), "
                  f"{with_mirror:.1f} s")  # fmt: skip

            server.reset()
            server.rate_limit = args.rate_mib << 20
            without = many(root / "without", manifest, server, None, args.machines)
            print(f"(b) without a mirror: {upstream_bodies(server)} upstream downloads, "
                  f"{without:.1f} s; with / without = {with_mirror / without:.2f}")  # fmt: skip
            pull_vs_curl(root, server, bucket)


def pull_vs_curl(root: Path, server: DemoServer, bucket: S3Bucket) -> None:
    """(c): the large file from the mirror, `sdlib mirror pull` against `curl -o`."""
    from sdlib.mirror import object_key

    ref, file_id = FILES[-1]
    served = server.files[file_id]
    folder = root / "pull"
    folder.mkdir()
    write_lock(folder, server, ((ref, file_id),))
    env = machine_env(folder / "home", server, bucket)
    key = object_key(served.hashes["SHA256"])
    url = subprocess.run(
        [sys.executable, "-c", "import sys; from sdlib.config import load_settings;"
         "from sdlib.services import Context\nwith Context(load_settings()) as ctx:"
         f" print(ctx.mirror.object_url({served.hashes['SHA256']!r}))"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    runs: dict[str, list[float]] = {"curl": [], "pull": []}
    for _ in range(3):
        out = folder / "curl.bin"
        began = time.perf_counter()
        subprocess.run(["curl", "-s", "-f", "-o", str(out), url], check=True)
        runs["curl"].append(time.perf_counter() - began)
        out.unlink()
        dest = folder / "pulled"
        shutil.rmtree(dest, ignore_errors=True)
        began = time.perf_counter()
        subprocess.run([sys.executable, "-m", "sdlib", "mirror", "pull", "--lock",
                        str(folder / "models.lock"), "--to", str(dest)],
                       env=env, capture_output=True, check=True)  # fmt: skip
        runs["pull"].append(time.perf_counter() - began)
    curl, pull = min(runs["curl"]), min(runs["pull"])
    print(f"(c) {served.size / (1 << 20):.0f} MiB object {key[:18]}... over loopback, best of 3: "
          f"curl -o {curl:.2f} s, sdlib mirror pull (all hashes verified) {pull:.2f} s = "
          f"{pull / curl:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
