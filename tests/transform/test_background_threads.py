"""The threads convert and merge start never outlive them: the source/input hashers are
cancelled and joined when the operation fails, and the write-behind thread that pushes the
output to disk while it is written is joined on every path; a flush that fails (a full disk)
fails the operation cleanly."""

from __future__ import annotations

import errno
import hashlib
import os
import threading
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from sdlib.errors import DiskFull, NonFiniteError
from sdlib.hashing import FileHashes
from sdlib.transform import _merge_inputs, _stwriter, _tensordata, _writebehind
from sdlib.transform import convert as convert_module
from sdlib.transform.convert import convert_file
from sdlib.transform.merge import merge_files
from tests.support import merge_models as M

THREADS = ("sdlib-sha256", "sdlib-merge-sha256", "sdlib-write-behind")


def _alive() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name in THREADS and t.is_alive()]


class _SlowSha256:
    """hashlib.sha256 that takes a second per block, so the hasher is still busy when the
    operation fails."""

    blocks = 0

    def __init__(self) -> None:
        self._digest = hashlib.sha256()

    def update(self, data: Any) -> None:
        type(self).blocks += 1
        time.sleep(1.0)
        self._digest.update(data)

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def _f32_model(path: Path, nbytes: int, nan: bool = False) -> Path:
    values = np.random.default_rng(0).standard_normal(nbytes // 4).astype("<f4") * 0.02
    if nan:
        values[-1] = np.nan
    save_file({"model.diffusion_model.w": values.reshape(-1, 256)}, str(path))
    return path


def test_a_failed_convert_stops_and_joins_its_source_hasher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = types.SimpleNamespace(sha256=_SlowSha256)
    monkeypatch.setattr(convert_module, "hashlib", slow)
    _SlowSha256.blocks = 0
    src = _f32_model(tmp_path / "m.safetensors", 24 << 20, nan=True)  # 3 blocks: 3 s
    with pytest.raises(NonFiniteError):
        convert_file(src, tmp_path / "out.safetensors", dtype="fp16")
    assert _alive() == []  # was: the hasher read on after convert had returned
    assert _SlowSha256.blocks < 3  # stopped, not run to the end
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


class _SlowCache:
    """A hash cache that hashes a missing file slowly, reporting progress as HashCache does."""

    def __init__(self) -> None:
        self.reports = 0

    def get(self, path: Path, progress: Any = None) -> tuple[FileHashes, bool]:
        for _ in range(100):  # 5 s unless stopped
            time.sleep(0.05)
            self.reports += 1
            if progress is not None:
                progress(1 << 20)
        raise AssertionError("the merge's hasher was not cancelled")


def _checkpoint(path: Path, seed: int, extra: int = 0, nan: bool = False) -> Path:
    """A tiny SD 1.5 checkpoint in fp32, with ``extra`` more UNet elements."""
    tensors = M.random_tensors(M.tiny_sd15("F32"), seed)
    if extra:
        values = np.random.default_rng(seed).standard_normal(extra).astype("<f4")
        tensors["model.diffusion_model.extra.weight"] = ("F32", values)
    if nan:
        name = "model.diffusion_model.input_blocks.1.0.in_layers.2.weight"
        tensors[name][1].reshape(-1)[0] = np.nan
    return M.write_model(path, tensors)


def _pair(tmp_path: Path) -> tuple[Path, Path]:
    a = _checkpoint(tmp_path / "a.safetensors", 0)
    b = _checkpoint(tmp_path / "b.safetensors", 1, nan=True)
    return a, b


def test_a_failed_merge_cancels_the_cached_hashing_of_its_inputs(tmp_path: Path) -> None:
    a, b = _pair(tmp_path)
    cache = _SlowCache()
    hashes: Any = cache  # duck-typed: get(path, progress)
    with pytest.raises(NonFiniteError):
        merge_files(a, b, output=tmp_path / "ab.safetensors", method="weighted-sum", hashes=hashes)
    assert _alive() == []  # the caller may close its cache now: nothing uses it any more
    reports = cache.reports
    time.sleep(0.2)
    assert cache.reports == reports < 100


def test_a_failed_merge_joins_its_own_input_hasher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_merge_inputs, "hashlib", types.SimpleNamespace(sha256=_SlowSha256))
    a, b = _pair(tmp_path)
    with pytest.raises(NonFiniteError):
        merge_files(a, b, output=tmp_path / "ab.safetensors", method="weighted-sum")
    assert _alive() == []


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    if not _writebehind.AVAILABLE:
        pytest.skip("no write-behind thread on this platform (no os.fdatasync)")
    """1 MiB read chunks and a flush every MiB, so a 16 MiB model shows the behaviour."""
    monkeypatch.setattr(_tensordata, "CHUNK_BYTES", 1 << 20)
    monkeypatch.setattr(_stwriter, "FLUSH_BYTES", 1 << 20)


@pytest.mark.usefixtures("small_chunks")
def test_the_output_goes_to_disk_while_it_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes: list[int] = []
    real = _writebehind._datasync

    def datasync(fd: int) -> None:
        sizes.append(os.fstat(fd).st_size)
        real(fd)

    monkeypatch.setattr(_writebehind, "_datasync", datasync)
    src = _f32_model(tmp_path / "m.safetensors", 16 << 20)
    done = convert_file(src, tmp_path / "out.safetensors", dtype="fp16")
    assert _alive() == []
    final = done.output.stat().st_size
    # Flushed before the last chunk was written, not only by the final fsync.
    assert sizes and min(sizes) < final - (1 << 20)
    want = load_file(str(src))["model.diffusion_model.w"].astype("<f2")
    np.testing.assert_array_equal(load_file(str(done.output))["model.diffusion_model.w"], want)


@pytest.mark.usefixtures("small_chunks")
@pytest.mark.parametrize("operation", ["convert", "merge"])
def test_a_flush_that_fails_fails_the_operation_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, operation: str
) -> None:
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_writebehind, "_datasync", full)
    src = _checkpoint(tmp_path / "m.safetensors", 0, extra=4 << 20)
    other = _checkpoint(tmp_path / "n.safetensors", 1, extra=4 << 20)
    before = sorted(p.name for p in tmp_path.iterdir())
    out = tmp_path / "out.safetensors"
    with pytest.raises(DiskFull):
        if operation == "convert":
            convert_file(src, out, dtype="fp16")
        else:
            merge_files(src, other, output=out, method="weighted-sum")
    assert _alive() == []
    assert sorted(p.name for p in tmp_path.iterdir()) == before
