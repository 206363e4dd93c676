"""Kill ``sdlib organize --apply`` (and ``--undo``) at many points; nothing may be lost.

Each run starts from a copy of the same messy tree. The process dies after N steps
(``SDLIB_TEST_CRASH_AFTER``: ``os._exit(137)``, no cleanup at all) or by a real SIGKILL at a
random moment. Then ``--apply`` must finish the job, giving exactly the tree an
uninterrupted run gives, or ``--undo`` must give back the original tree byte for byte. In
every state the multiset of file contents is unchanged and no sidecar is left behind.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.support import trees
from tests.support.cli import run_sdlib, sdlib_argv

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX kill semantics"),
    pytest.mark.slow,  # crash: real SIGKILLs and crash hooks at every step
]


class Runs:
    """Fresh copies of one template tree, each with its own data dir, and the CLI."""

    def __init__(self, base: Path, options: tuple[str, ...]) -> None:
        self.base = base
        self.options = options
        self.template = trees.small_tree(base / "template" / "webui")
        self.original = trees.tree_state(self.template)
        self.count = 0
        root, env = self.fresh()
        done = run_sdlib("organize", str(root), "--apply", *options, env=env)
        assert done.returncode == 0, done.stderr
        self.organized = trees.tree_state(root)
        assert self.organized != self.original

    def fresh(self) -> tuple[Path, dict[str, str]]:
        self.count += 1
        run = self.base / f"run{self.count}"
        shutil.copytree(self.template.parent, run, symlinks=True)
        env = {
            **os.environ, "SDLIB_DATA_DIR": str(run / "data"),
            "SDLIB_CACHE_DIR": str(self.base / "cache"), "SDLIB_CONFIG": str(run / "none.toml"),
        }  # fmt: skip
        for name in ("SDLIB_TEST_CRASH_AFTER", "SDLIB_TEST_STEP_DELAY", "SDLIB_TEST_FORCE_COPY"):
            env.pop(name, None)
        return run / "webui", env

    def check_consistent(self, root: Path, *, crashed: bool = False) -> None:
        """No content lost: after a finished run or undo exactly the same multiset of
        contents (``--dedupe delete`` may drop extra copies, never the last); right after a
        crash a move may be half-way, with the bytes under both names, or a part file."""
        files, _ = trees.tree_state(root)
        parts = [p for p in files if p.endswith(".sdlib-part")]
        assert crashed or parts == []
        have = [v for p, v in files.items() if not v.startswith("link:") and p not in parts]
        want = [v for v in self.original[0].values() if not v.startswith("link:")]
        if "delete" in self.options:
            assert set(have) == set(want)
        elif crashed:
            # Half-way through a move both names may hold the bytes: never fewer copies.
            missing = Counter(want) - Counter(have)
            assert not missing, missing
        else:
            assert sorted(have) == sorted(want)

    def check_sidecars(self, root: Path, env: dict[str, str]) -> None:
        from sdlib.hashcache import HashCache
        from sdlib.library.index import Index
        from sdlib.library.scan import load_layout, scan

        data = Path(env["SDLIB_DATA_DIR"])
        with Index(data / "check.sqlite") as index, HashCache(None) as hc:
            result = scan(root, load_layout(root, "auto"), index, hc)
        for f in result.files:
            if f.role == "sidecar":
                assert f.model and os.path.dirname(f.model) == os.path.dirname(f.path), f.rel


@pytest.fixture(
    scope="module",
    params=[(), ("--by-base", "--dedupe", "hardlink"), ("--dedupe", "delete")],
    ids=["plain", "by-base-hardlink", "delete"],
)
def runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    return Runs(tmp_path_factory.mktemp("crash"), request.param)


STEPS = (1, 2, 3, 4, 6, 8, 11, 15, 20, 26, 33, 41, 50, 60, 71, 83, 96, 110, 125)


def test_crash_at_every_stage_then_resume_or_undo(runs: Runs) -> None:
    finished = False
    steps = STEPS if not runs.options else STEPS[::2] + (1000,)
    for i, n in enumerate(steps):
        root, env = runs.fresh()
        crashed = run_sdlib("organize", str(root), "--apply", *runs.options,
                            env={**env, "SDLIB_TEST_CRASH_AFTER": str(n)})  # fmt: skip
        if crashed.returncode == 0:
            finished = True  # N is past the last step: the run completed
            assert trees.tree_state(root) == runs.organized
            break
        assert crashed.returncode == 137, crashed.stderr
        runs.check_consistent(root, crashed=True)
        if i % 2 == 0:
            resumed = run_sdlib("organize", str(root), "--apply", *runs.options, env=env)
            assert resumed.returncode == 0, resumed.stderr
            assert "finished" in resumed.stdout
            assert trees.tree_state(root) == runs.organized
        else:
            undone = run_sdlib("organize", str(root), "--undo", env=env)
            assert undone.returncode == 0, undone.stderr
            assert trees.tree_state(root) == runs.original
        runs.check_consistent(root)
        runs.check_sidecars(root, env)
    assert finished, "the plan has more steps than the test tries; add larger N"


def test_crash_during_undo_then_undo_again(runs: Runs) -> None:
    for n in (1, 5, 21):
        root, env = runs.fresh()
        assert run_sdlib("organize", str(root), "--apply", *runs.options, env=env).returncode == 0
        crashed = run_sdlib(
            "organize", str(root), "--undo", env={**env, "SDLIB_TEST_CRASH_AFTER": str(n)}
        )
        if crashed.returncode == 0:
            assert trees.tree_state(root) == runs.original
            break
        assert crashed.returncode == 137
        runs.check_consistent(root, crashed=True)
        refused = run_sdlib("organize", str(root), "--apply", env=env)
        assert refused.returncode == 2 and "--undo" in refused.stderr
        again = run_sdlib("organize", str(root), "--undo", env=env)
        assert again.returncode == 0, again.stderr
        assert trees.tree_state(root) == runs.original


def test_real_sigkill_at_random_moments(runs: Runs) -> None:
    rng = random.Random(20240601)
    for i in range(3):
        root, env = runs.fresh()
        proc = subprocess.Popen(
            sdlib_argv("organize", str(root), "--apply", *runs.options),
            env={**env, "SDLIB_TEST_STEP_DELAY": "0.02"},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(rng.uniform(0.6, 2.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        runs.check_consistent(root, crashed=True)
        if i % 2 == 0:
            # Killed before the journal existed, this plans afresh: same options, same result.
            resumed = run_sdlib("organize", str(root), "--apply", *runs.options, env=env)
            assert resumed.returncode == 0, resumed.stderr
            assert trees.tree_state(root) == runs.organized
        else:
            assert run_sdlib("organize", str(root), "--undo", env=env).returncode in (
                0,
                2,
            )
            assert trees.tree_state(root) == runs.original
        runs.check_consistent(root)
        runs.check_sidecars(root, env)


def test_forced_cross_device_copies_survive_a_crash(runs: Runs) -> None:
    for n in (4, 13):
        root, env = runs.fresh()
        crashed = run_sdlib("organize", str(root), "--apply", *runs.options,
                            env={**env, "SDLIB_TEST_CRASH_AFTER": str(n),
                                 "SDLIB_TEST_FORCE_COPY": "1"})  # fmt: skip
        assert crashed.returncode in (0, 137)
        runs.check_consistent(root, crashed=True)
        resumed = run_sdlib(
            "organize", str(root), "--apply", env={**env, "SDLIB_TEST_FORCE_COPY": "1"}
        )
        assert resumed.returncode == 0, resumed.stderr
        assert trees.tree_state(root) == runs.organized
