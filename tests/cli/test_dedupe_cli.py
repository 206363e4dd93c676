"""``sdlib dedupe`` in a subprocess: the issue's "done when" (two A1111 roots holding the same
three checkpoints use the disk of one copy after ``--apply``, both paths read the same
bytes, ``--undo`` restores the start exactly), JSON, help, and clear errors.

Expected values come from ``os.stat`` and ``hashlib``, never from sdlib's output.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import RunCli
from tests.support import trees

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="st_blocks is POSIX")

CHECKPOINTS = (("dreamshaper 8.safetensors", "sd15_pruned_fp16"),
               ("sdxl base 1.0.safetensors", "sdxl_base"),
               ("v2 768 ü.safetensors", "sd21_768v"))  # fmt: skip


def checkpoints(root: Path) -> list[Path]:
    """An A1111 root with three sparse checkpoints, each with 256 KiB of random weights
    written at its end (the rest a hole), so that the disk they use can be counted."""
    trees.a1111(root)
    out = []
    for name, spec in CHECKPOINTS:
        path = trees.st(root / "models/Stable-diffusion" / name, spec, small=True)
        with open(path, "r+b") as fh:
            fh.seek(-(256 << 10), os.SEEK_END)
            fh.write(os.urandom(256 << 10))
        out.append(path)
    return out


def copy_root(src: Path, dst: Path) -> list[Path]:
    shutil.copytree(src, dst)
    return [dst / "models/Stable-diffusion" / name for name, _ in CHECKPOINTS]


def state(*roots: Path) -> dict[str, tuple[str, int, int]]:
    out = {}
    for root in roots:
        for dirpath, _dirs, names in os.walk(root):
            for name in names:
                p = os.path.join(dirpath, name)
                st = os.lstat(p)
                with open(p, "rb") as fh:
                    out[p] = (hashlib.sha256(fh.read()).hexdigest(), st.st_mtime_ns, st.st_mode)
    return out


def disk_used(paths: list[Path]) -> int:
    """Bytes of disk the files hold, each inode counted once."""
    seen: dict[tuple[int, int], int] = {}
    for p in paths:
        st = os.stat(p)
        seen[(st.st_dev, st.st_ino)] = st.st_blocks * 512
    return sum(seen.values())


def test_two_roots_with_three_checkpoints_end_on_the_disk_of_one(
    tmp_path: Path, run_cli: RunCli
) -> None:
    a_files = checkpoints(tmp_path / "webui A")
    b_files = copy_root(tmp_path / "webui A", tmp_path / "forge B")
    a, b = tmp_path / "webui A", tmp_path / "forge B"
    start = state(a, b)
    one_copy = disk_used(a_files)
    assert disk_used(a_files + b_files) >= 2 * one_copy > 0

    planned = run_cli("dedupe", str(a), str(b), "--json")
    assert planned.returncode == 0, planned.stderr
    plan = json.loads(planned.stdout)
    assert plan["summary"]["reclaimable_bytes"] == sum(os.stat(p).st_size for p in b_files)
    assert len(plan["groups"]) == 3 and state(a, b) == start

    done = run_cli("dedupe", str(a), str(b), "--apply")
    assert done.returncode == 0, done.stderr
    assert "linked 3 of 3 copies" in done.stdout
    for pa, pb in zip(a_files, b_files, strict=True):
        sa, sb = os.stat(pa), os.stat(pb)
        assert (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino) and sa.st_nlink == 2
        assert pa.read_bytes() == pb.read_bytes()
        assert hashlib.sha256(pb.read_bytes()).hexdigest() == start[str(pb)][0]
    assert disk_used(a_files + b_files) == one_copy

    again = run_cli("dedupe", str(a), str(b), "--json")
    assert json.loads(again.stdout)["groups"] == []  # nothing left to link

    undone = run_cli("dedupe", str(a), str(b), "--undo")
    assert undone.returncode == 0, undone.stderr
    assert state(a, b) == start
    assert len({(os.stat(p).st_dev, os.stat(p).st_ino) for p in a_files + b_files}) == 6
    assert all(os.stat(p).st_nlink == 1 for p in a_files + b_files)


def test_plan_through_a_pipe_is_plain_text(tmp_path: Path, run_cli: RunCli) -> None:
    checkpoints(tmp_path / "a")
    copy_root(tmp_path / "a", tmp_path / "b")
    out = run_cli("dedupe", str(tmp_path / "a"), str(tmp_path / "b"))
    assert out.returncode == 0, out.stderr
    assert "\x1b[" not in out.stdout
    roles = [line.split()[0] for line in out.stdout.splitlines() if line.startswith("  ")]
    assert sorted(roles) == ["keep"] * 3 + ["link"] * 3
    assert "--apply" in out.stdout


def test_help_has_an_example(run_cli: RunCli) -> None:
    out = run_cli("dedupe", "--help")
    assert out.returncode == 0
    assert "Examples:" in out.stdout and "sdlib dedupe " in out.stdout and "--undo" in out.stdout


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (("--apply", "--undo"), 2, "not both"),
        (("--undo",), 2, "no dedupe run"),
        (("--ui", "a1111", "--ui", "comfyui", "--ui", "forge"), 2, "one --ui"),
    ],
)
def test_bad_input_is_one_line_and_an_exit_code(tmp_path: Path, run_cli: RunCli,
                                                args: tuple[str, ...], code: int,
                                                words: str) -> None:  # fmt: skip
    a, b = trees.a1111(tmp_path / "a"), trees.a1111(tmp_path / "b")
    out = run_cli("dedupe", str(a), str(b), *args)
    assert out.returncode == code, out.stderr
    assert words in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert "Traceback" not in out.stderr


def test_a_missing_root_is_a_usage_error(tmp_path: Path, run_cli: RunCli) -> None:
    out = run_cli("dedupe", str(tmp_path / "nope"))
    assert out.returncode == 2 and "Traceback" not in out.stderr


@pytest.mark.slow  # a few seconds of paced steps
def test_a_long_apply_says_how_far_it_is_on_stderr(tmp_path: Path, run_cli: RunCli) -> None:
    checkpoints(tmp_path / "a")
    copy_root(tmp_path / "a", tmp_path / "b")
    out = run_cli("dedupe", str(tmp_path / "a"), str(tmp_path / "b"), "--apply",
                  env={"SDLIB_TEST_STEP_DELAY": "0.5"})  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "sdlib: link: " in out.stderr and "of 3" in out.stderr
    assert "sdlib:" not in out.stdout
