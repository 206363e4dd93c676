"""``merge_files`` refuses what cannot be merged before anything is written: other
architectures, other shapes, the inpainting model in the wrong slot, unsafe pickles, a VAE
that does not fit, bad options and outputs that would replace something. A failure during
the merge leaves no file behind."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sdlib.demo.specs import lora_sd15_kohya
from sdlib.errors import FormatError, SdlibError, UnsafeFileError, UsageError
from sdlib.transform import merge as merge_mod
from sdlib.transform.merge import merge_files
from tests.support import merge_models as M
from tests.support.pickles import StateDict, Tensor, call_pickle, shell_touch, torch_zip


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    return tmp_path / "in", tmp_path / "out"


def _write(folder: Path, name: str, spec: Any, seed: int = 0) -> Path:
    return M.write_model(folder / name, M.random_tensors(spec, seed))


def _refused(
    out_dir: Path, exc: type[SdlibError], match: str, *inputs: Path, **kw: Any
) -> SdlibError:
    kw.setdefault("method", "add-difference" if len(inputs) == 3 else "weighted-sum")
    with pytest.raises(exc, match=match) as info:
        merge_files(*inputs, output=out_dir / "out.safetensors", **kw)
    assert list(out_dir.iterdir()) == []  # no output, no temporary file
    return info.value


def test_sd1_and_sdxl_are_refused(dirs: tuple[Path, Path]) -> None:
    src, out = dirs
    a = _write(src, "sd15.safetensors", M.tiny_sd15())
    b = _write(src, "sdxl.safetensors", M.tiny_sdxl())
    err = _refused(out, UsageError, "same architecture", a, b)
    assert "sd1 checkpoint" in str(err) and "sdxl checkpoint" in str(err)
    assert err.exit_code == 2


def test_a_different_shape_is_refused(dirs: tuple[Path, Path]) -> None:
    src, out = dirs
    a = _write(src, "a.safetensors", M.tiny_sd15())
    spec = M.tiny_sd15()
    spec["model.diffusion_model.out.2.weight"] = ("F16", (4, 8, 1, 1))
    b = _write(src, "b.safetensors", spec)
    _refused(out, UsageError, r"differ in 1 tensor shape.*out\.2\.weight A\[4, 8, 3, 3\]", a, b)


@pytest.mark.parametrize(("channels", "variant"), [(9, "inpaint"), (8, "instruct-pix2pix")])
def test_the_inpainting_model_must_be_a(
    dirs: tuple[Path, Path], channels: int, variant: str
) -> None:
    src, out = dirs
    normal = _write(src, "normal.safetensors", M.tiny_sd15())
    special = _write(src, "special.safetensors", M.tiny_sd15(in_ch=channels))
    _refused(out, UsageError, f"A must be the {variant} model", normal, special)
    # add difference: a 9-channel C with 4-channel A and B is refused the same way
    other = _write(src, "other.safetensors", M.tiny_sd15(), seed=3)
    _refused(out, UsageError, f"C is an {variant} model", normal, other, special)


def test_b_and_c_must_agree_on_the_first_conv(dirs: tuple[Path, Path]) -> None:
    src, out = dirs
    a = _write(src, "a.safetensors", M.tiny_sd15(in_ch=9))
    b = _write(src, "b.safetensors", M.tiny_sd15(), seed=1)
    c = _write(src, "c.safetensors", M.tiny_sd15(in_ch=9), seed=2)
    _refused(out, UsageError, "B and C differ", a, b, c)


def test_a_lora_is_not_a_checkpoint(dirs: tuple[Path, Path]) -> None:
    src, out = dirs
    a = _write(src, "a.safetensors", M.tiny_sd15())
    lora = M.write_model(src / "lora.safetensors", _zeros(lora_sd15_kohya(rank=4)))
    _refused(out, UsageError, "B is a lora, not a checkpoint", a, lora)


def _zeros(spec: Any) -> dict[str, tuple[str, np.ndarray]]:
    return {n: (d, np.zeros(s, M.BITS[d])) for n, (d, s) in spec.items()}


def test_fp8_tensors_are_refused(dirs: tuple[Path, Path]) -> None:
    src, out = dirs
    a = _write(src, "a.safetensors", M.tiny_sd15())
    tensors = M.random_tensors(M.tiny_sd15(), 1)
    name = "model.diffusion_model.out.2.weight"
    tensors[name] = ("F8_E4M3", np.zeros(tensors[name][1].shape, "u1"))
    b = M.write_model(src / "b.safetensors", tensors)
    _refused(out, FormatError, "fp8", a, b)


def _unsafe_pickle(path: Path, sentinel: Path) -> Path:
    """A checkpoint whose state dict carries a call of posix.system."""
    evil = torch_zip(
        {"state_dict": StateDict({"w": Tensor(b"\0" * 16, "F32", (4,))})},
        pickle_bytes=call_pickle("posix", "system", shell_touch(sentinel)),
    )
    path.write_bytes(evil)
    return path


@pytest.mark.parametrize("role", ["B", "C", "VAE"])
def test_an_unsafe_pickle_is_refused_before_any_output(dirs: tuple[Path, Path], role: str) -> None:
    src, out = dirs
    sentinel = src / "pwned"
    a = _write(src, "a.safetensors", M.tiny_sd15())
    b = _write(src, "b.safetensors", M.tiny_sd15(), seed=1)
    evil = _unsafe_pickle(src / "evil.ckpt", sentinel)
    if role == "B":
        err = _refused(out, UnsafeFileError, "unsafe pickle", a, evil)
    elif role == "C":
        err = _refused(out, UnsafeFileError, "unsafe pickle", a, b, evil)
    else:
        err = _refused(out, UnsafeFileError, "unsafe pickle", a, b, bake_vae=evil)
    assert err.exit_code == 3 and err.path == str(evil)
    assert not sentinel.exists()


def test_a_vae_that_does_not_fit_is_refused(dirs: tuple[Path, Path]) -> None:
    src, out = dirs
    a = _write(src, "a.safetensors", M.tiny_sd15())
    b = _write(src, "b.safetensors", M.tiny_sd15(), seed=1)
    flux_vae = _write(src, "ae.safetensors", M.tiny_vae("", "F32", z=16))
    _refused(out, UsageError, "does not fit A's VAE", a, b, bake_vae=flux_vae)
    _refused(out, UsageError, "needs a VAE file; this is a sd1 checkpoint", a, b, bake_vae=b)


def test_bad_options(dirs: tuple[Path, Path]) -> None:
    src, out = dirs
    a = _write(src, "a.safetensors", M.tiny_sd15())
    b = _write(src, "b.safetensors", M.tiny_sd15(), seed=1)
    _refused(out, UsageError, "needs a third model C", a, b, method="add-difference")
    _refused(out, UsageError, "C is only used by add-difference", a, b, a, method="weighted-sum")
    _refused(out, UsageError, "--method", a, b, method="slerp")
    _refused(out, UsageError, "--dtype", a, b, dtype="fp8")
    _refused(out, UsageError, "--components", a, b, components=["unet", "clip"])
    _refused(out, UsageError, "--alpha", a, b, alpha=math.nan)
    _refused(out, UsageError, "no such file", a, src / "missing.safetensors")


def test_output_rules(dirs: tuple[Path, Path]) -> None:
    src, out = dirs
    a = _write(src, "a.safetensors", M.tiny_sd15())
    b = _write(src, "b.safetensors", M.tiny_sd15(), seed=1)
    before = a.read_bytes()
    for target in (a, b):
        with pytest.raises(UsageError, match="would replace the input"):
            merge_files(a, b, output=target, method="weighted-sum", overwrite=True)
    assert a.read_bytes() == before
    with pytest.raises(UsageError, match=r"\.safetensors"):
        merge_files(a, b, output=out / "out.ckpt", method="weighted-sum")
    target = out / "out.safetensors"
    target.write_bytes(b"precious")
    with pytest.raises(UsageError, match="already exists"):
        merge_files(a, b, output=target, method="weighted-sum")
    assert target.read_bytes() == b"precious"
    merge_files(a, b, output=target, method="weighted-sum", overwrite=True)
    assert target.read_bytes() != b"precious" and sorted(out.iterdir()) == [target]


def test_a_failure_mid_merge_leaves_nothing(
    dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    src, out = dirs
    a = _write(src, "a.safetensors", M.tiny_sd15())
    b = _write(src, "b.safetensors", M.tiny_sd15(), seed=1)
    calls = 0

    def boom(self: Any, *args: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 50:
            raise RuntimeError("simulated crash")

    monkeypatch.setattr(merge_mod._Merger, "_combine", boom)
    with pytest.raises(RuntimeError, match="simulated crash"):
        merge_files(a, b, output=out / "out.safetensors", method="weighted-sum")
    assert list(out.iterdir()) == []


def test_a_truncated_input_fails_cleanly(dirs: tuple[Path, Path]) -> None:
    src, out = dirs
    a = _write(src, "a.safetensors", M.tiny_sd15())
    b = _write(src, "b.safetensors", M.tiny_sd15(), seed=1)
    with open(b, "r+b") as fh:
        fh.truncate(b.stat().st_size - 100)
    _refused(out, FormatError, "truncated", a, b)


def test_a_corrupted_pickle_storage_is_caught_mid_merge(dirs: tuple[Path, Path]) -> None:
    """The zip records a CRC per storage: a flipped byte fails the merge and leaves nothing."""
    src, out = dirs
    a = _write(src, "a.safetensors", M.tiny_sd15())
    tensors = M.random_tensors(M.tiny_sd15(), 1)
    state = StateDict({n: Tensor(arr.tobytes(), d, arr.shape) for n, (d, arr) in tensors.items()})
    raw = bytearray(torch_zip({"state_dict": state}))
    victim = tensors["model.diffusion_model.out.2.weight"][1].tobytes()
    at = raw.find(victim)
    assert at > 0 and raw.find(victim, at + 1) == -1
    raw[at + len(victim) // 2] ^= 0xFF
    b = src / "b.ckpt"
    b.write_bytes(bytes(raw))
    _refused(out, FormatError, "CRC mismatch", a, b)
