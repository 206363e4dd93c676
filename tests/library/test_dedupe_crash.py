"""Kill ``sdlib dedupe --apply`` (and ``--undo``) at every step; nothing may be lost.

Each run starts from a copy of the same two roots. The process dies after N steps
(``SDLIB_TEST_CRASH_AFTER``: ``os._exit(137)``, no cleanup) or by a real SIGKILL at a random
moment. Then ``--apply`` again must finish (every copy one inode with its kept twin, bytes
unchanged), or ``--undo`` must give back the start exactly: the same bytes, mtimes and
modes, and separate inodes.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import trees
from tests.support.cli import isolated_env, run_sdlib, sdlib_argv

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX kill semantics"),
    pytest.mark.slow,  # real SIGKILLs and crash hooks at every step
]

NAMES = ("ckpt one.safetensors", "ckpt ü two.safetensors", "lora 模型.safetensors",
         "lora b.safetensors", "emb.safetensors")  # fmt: skip
SPECS = ("sd15_pruned_fp16", "sdxl_base", "lora_sd15_kohya", "lokr_sdxl", "embedding_sd15")


def template(base: Path) -> Path:
    """Two A1111 roots (``a``, ``b``) holding the same five models, with sidecars."""
    a = trees.a1111(base / "a")
    for name, spec in zip(NAMES, SPECS, strict=True):
        p = trees.st(a / "models/Stable-diffusion" / name, spec, small=True)
        trees.touch(p.with_suffix(".civitai.info"), '{"id": 1}')
    shutil.copytree(a, base / "b")
    return base


def state(run: Path) -> dict[str, tuple[str, int, int]]:
    out = {}
    for root in ("a", "b"):
        for dirpath, _dirs, names in os.walk(run / root):
            for name in names:
                p = os.path.join(dirpath, name)
                st = os.lstat(p)
                with open(p, "rb") as fh:
                    digest = hashlib.sha256(fh.read()).hexdigest()
                out[os.path.relpath(p, run)] = (digest, st.st_mtime_ns, st.st_mode)
    return out


def models(run: Path, root: str) -> list[Path]:
    return [run / root / "models/Stable-diffusion" / n for n in NAMES]


class Runs:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.template = template(base / "template")
        self.start = state(self.template)
        self.count = 0

    def fresh(self) -> tuple[Path, dict[str, str]]:
        self.count += 1
        run = self.base / f"run{self.count}"
        shutil.copytree(self.template, run)
        return run, isolated_env(run / "env")

    def check_linked(self, run: Path) -> None:
        assert not [p for p in state(run) if p.endswith(".sdlib-part")]
        assert {p: v[0] for p, v in state(run).items()} == {
            p: v[0] for p, v in self.start.items()
        }  # the same bytes under every name
        for pa, pb in zip(models(run, "a"), models(run, "b"), strict=True):
            assert os.path.samefile(pa, pb)

    def check_start(self, run: Path) -> None:
        assert state(run) == self.start
        paths = models(run, "a") + models(run, "b")
        assert len({os.stat(p).st_ino for p in paths}) == len(paths)

    def check_nothing_lost(self, run: Path) -> None:
        """Right after a crash: every name holds its bytes (a part file may be left)."""
        now = {p: v[0] for p, v in state(run).items() if not p.endswith(".sdlib-part")}
        assert now == {p: v[0] for p, v in self.start.items()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    return Runs(tmp_path_factory.mktemp("dedupe-crash"))


def dedupe(run: Path, env: dict[str, str], *args: str, **extra: str
           ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return run_sdlib("dedupe", str(run / "a"), str(run / "b"), *args, env={**env, **extra})


def test_crash_at_every_step_then_rerun_or_undo(runs: Runs) -> None:
    finished = False
    for n in range(1, 40):
        run, env = runs.fresh()
        crashed = dedupe(run, env, "--apply", SDLIB_TEST_CRASH_AFTER=str(n))
        if crashed.returncode == 0:
            finished = True  # N is past the last step
            runs.check_linked(run)
            break
        assert crashed.returncode == 137, crashed.stderr
        runs.check_nothing_lost(run)
        if n % 2:
            again = dedupe(run, env, "--apply")
            assert again.returncode == 0, again.stderr
            assert "finished" in again.stdout
            runs.check_linked(run)
        else:
            undone = dedupe(run, env, "--undo")
            assert undone.returncode == 0, undone.stderr
            runs.check_start(run)
    assert finished, "the plan has more steps than the test tries"


def test_crash_during_undo_then_undo_again(runs: Runs) -> None:
    for n in (1, 2, 4, 7, 9):  # two steps per copy: its bytes back, then the record
        run, env = runs.fresh()
        assert dedupe(run, env, "--apply").returncode == 0
        crashed = dedupe(run, env, "--undo", SDLIB_TEST_CRASH_AFTER=str(n))
        assert crashed.returncode == 137, crashed.stderr
        runs.check_nothing_lost(run)
        refused = dedupe(run, env, "--apply")
        assert refused.returncode == 2 and "--undo" in refused.stderr
        again = dedupe(run, env, "--undo")
        assert again.returncode == 0, again.stderr
        runs.check_start(run)


def test_real_sigkill_at_random_moments(runs: Runs) -> None:
    rng = random.Random(18)
    for i in range(4):
        run, env = runs.fresh()
        proc = subprocess.Popen(
            sdlib_argv("dedupe", run / "a", run / "b", "--apply"),
            env={**env, "SDLIB_TEST_STEP_DELAY": "0.05"},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(rng.uniform(0.8, 2.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        runs.check_nothing_lost(run)
        if i % 2 == 0:
            again = dedupe(run, env, "--apply")
            assert again.returncode == 0, again.stderr
            runs.check_linked(run)
        else:
            undone = dedupe(run, env, "--undo")
            # Killed before the journal was written: there is nothing to undo (exit 2).
            assert undone.returncode in (0, 2), undone.stderr
            runs.check_start(run)
