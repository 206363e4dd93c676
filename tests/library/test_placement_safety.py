"""Safety before classification: an unsafe pickle is deleted before anything else reads it,
so a crash in a later step (the classifier) can never leave it placed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sdlib.errors import UnsafeFileError
from sdlib.hashcache import HashCache
from sdlib.install import Installer
from sdlib.library.placement import Destination, refuse_unsafe
from sdlib.taxonomy import Base, Kind
from tests.support import pickles as pk
from tests.support import trees

VAE_KEYS = ("first_stage_model.decoder.conv_in.weight", "first_stage_model.encoder.conv_in.weight")


def hostile_vae(path: Path, sentinel: Path) -> Path:
    """A torch zip: a 1-D "VAE" tensor beside an os.system call that would touch sentinel."""
    state = pk.StateDict()
    for key in VAE_KEYS:
        state[key] = pk.Tensor(pk.f32([1.0, 2.0, 3.0]), "F32", (3,))
    payload = pk.Call(pk.Global("posix", "system"), (pk.shell_touch(sentinel),))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pk.torch_zip({"state_dict": state, "payload": payload}))
    return path


def benign_vae(path: Path) -> Path:
    state = pk.StateDict()
    for key in VAE_KEYS:
        state[key] = pk.Tensor(pk.f32([1.0, 2.0, 3.0]), "F32", (3,))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pk.torch_zip({"state_dict": state}))
    return path


def crash(*_a: Any, **_k: Any) -> Any:
    raise IndexError("tuple index out of range")  # what a 1-D tensor did to the classifier


@pytest.fixture
def installer(tmp_path: Path) -> Any:
    root = trees.a1111(tmp_path / "webui")
    with HashCache(tmp_path / "cache" / "hashes.sqlite") as hc:
        yield Installer(civitai=None, http=None, destination=Destination.for_ui(root, "a1111"),  # type: ignore[arg-type]
                        options=None, hashes=hc)  # type: ignore[arg-type]  # fmt: skip


def test_refuse_unsafe_deletes_the_pickle_without_running_it(tmp_path: Path) -> None:
    sentinel = tmp_path / "PWNED"
    path = hostile_vae(tmp_path / "webui" / "models" / "VAE" / "vae.ckpt", sentinel)
    with pytest.raises(UnsafeFileError) as info:
        refuse_unsafe(path)
    assert info.value.exit_code == 3
    assert "posix.system" in info.value.findings
    assert not path.exists() and not sentinel.exists()


def test_safe_and_non_pickle_files_are_left_alone(tmp_path: Path) -> None:
    vae = benign_vae(tmp_path / "vae.ckpt")
    st = trees.st(tmp_path / "lora.safetensors", "lora_sd15_kohya")
    text = trees.touch(tmp_path / "notes.bin", b"just some bytes, not a pickle")
    for path in (vae, st, text):
        refuse_unsafe(path)
        assert path.exists()


def test_a_classifier_crash_cannot_leave_an_unsafe_file_placed(
    tmp_path: Path, installer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sdlib.files.classify

    monkeypatch.setattr(sdlib.files.classify, "classify", crash)
    sentinel = tmp_path / "PWNED"
    folder = tmp_path / "webui" / "models" / "VAE"
    path = hostile_vae(folder / "vae.ckpt", sentinel)
    with pytest.raises(UnsafeFileError):
        installer._check_and_place(path, Kind.VAE, Base.SD1, installer.destination)
    assert list(folder.iterdir()) == [] and not sentinel.exists()


def test_a_classifier_crash_on_a_safe_file_is_a_warning_not_a_traceback(
    tmp_path: Path, installer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sdlib.files.classify

    monkeypatch.setattr(sdlib.files.classify, "classify", crash)
    path = benign_vae(tmp_path / "webui" / "models" / "VAE" / "vae.ckpt")
    placed, kind, base, warnings = installer._check_and_place(
        path, Kind.VAE, Base.SD1, installer.destination
    )
    assert placed == path and path.exists() and (kind, base) == (Kind.VAE, Base.SD1)
    assert "could not classify" in warnings[0]


def test_a_scanner_crash_deletes_rather_than_keeps_an_unjudged_pickle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sdlib.files.pickles

    monkeypatch.setattr(sdlib.files.pickles, "scan_file", crash)
    path = benign_vae(tmp_path / "vae.ckpt")
    with pytest.raises(UnsafeFileError, match="could not be checked"):
        refuse_unsafe(path)
    assert not path.exists()
