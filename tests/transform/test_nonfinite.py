"""NaN and Inf in what convert and merge write: refused by default (nothing left behind),
written with ``allow_nan``, counted exactly, and never a raw numpy warning (pytest turns
any warning into an error here)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sdlib.errors import Interrupted, NonFiniteError
from sdlib.services import Context, transform
from sdlib.transform._finite import FiniteCheck
from sdlib.transform.convert import convert_file
from sdlib.transform.merge import merge_files
from tests.support import merge_models as M

NAME = "model.diffusion_model.input_blocks.1.0.in_layers.2.weight"
OTHER = "first_stage_model.decoder.conv_out.weight"


def _model(path: Path, dtype: str, seed: int, poke: dict[str, list[float]] | None = None) -> Path:
    tensors = M.random_tensors(M.tiny_sd15(dtype), seed)
    for name, values in (poke or {}).items():
        d, bits = tensors[name]
        f32 = M.to_f32(d, bits).copy().reshape(-1)
        f32[: len(values)] = values
        tensors[name] = (d, M.from_f32(f32, d).reshape(bits.shape))
    return M.write_model(path, tensors)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".part", ".out")))


@pytest.mark.parametrize(
    ("dtype", "values", "nan", "inf"),
    [
        ("F16", [np.nan, np.inf, -np.inf, 1.0, 65504.0], 1, 2),
        ("BF16", [np.nan, -np.inf, 3e38, -3e38], 1, 1),
        ("F32", [np.inf, np.nan, np.nan, 3.4e38, -1e-45], 2, 1),
        ("F64", [-np.inf, np.nan, 1e308], 1, 1),
    ],
)
def test_counts_nan_and_inf_in_each_float_format(
    dtype: str, values: list[float], nan: int, inf: int
) -> None:
    arr = np.zeros(1000, np.float64)
    arr[::97][: len(values)] = values
    bits = {
        "F16": lambda a: a.astype("<f2"),
        "BF16": lambda a: (a.astype("<f4").view("<u4") >> 16).astype("<u2"),
        "F32": lambda a: a.astype("<f4"),
        "F64": lambda a: a.astype("<f8"),
    }[dtype](arr)
    check = FiniteCheck()
    check.chunk(bits[:500], dtype)
    check.chunk(bits[500:], dtype)  # counts add up over a tensor's chunks
    check.end("t")
    check.chunk(np.ones(10, "<f4"), "F32")
    check.end("finite")
    check.chunk(np.array([0xFFFF], "<u2"), "U16")  # not a float: never judged
    check.end("ints")
    assert [(f.name, f.nan, f.inf) for f in check.found] == [("t", nan, inf)]


def test_values_past_the_first_block_of_a_chunk_are_counted() -> None:
    bits = np.zeros(1_000_003, "<f2")  # ~2 MiB: several of the check's 256 KiB blocks
    bits[[200_000, 700_001]] = np.nan
    bits[-1] = -np.inf
    check = FiniteCheck()
    check.chunk(bits, "F16")
    check.end("big")
    assert [(f.name, f.nan, f.inf) for f in check.found] == [("big", 2, 1)]


def test_convert_refuses_nan_and_writes_nothing(tmp_path: Path) -> None:
    src = _model(tmp_path / "m.safetensors", "F32", 0, {NAME: [np.nan, np.nan], OTHER: [np.inf]})
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(NonFiniteError) as info:
        convert_file(src, tmp_path / "out.safetensors", dtype="bf16")
    assert info.value.exit_code == 1
    assert info.value.tensors == (OTHER, NAME) or set(info.value.tensors) == {OTHER, NAME}
    message = str(info.value)
    assert "2 tensors hold NaN and Inf" in message and f"{NAME} (2 NaN)" in message
    assert f"{OTHER} (1 Inf)" in message and "--allow-nan" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no output, no .part


def test_fp16_overflow_to_inf_is_refused_with_the_reason(tmp_path: Path) -> None:
    # 70000 is finite in fp32 and beyond fp16's largest value (65504): the cast makes Inf.
    src = _model(tmp_path / "m.safetensors", "F32", 0, {NAME: [70000.0, -1e9, 65504.0]})
    with pytest.raises(NonFiniteError, match=r"1 tensor holds Inf: .*\(2 Inf\).*65504"):
        convert_file(src, tmp_path / "out.safetensors", dtype="fp16")
    assert not (tmp_path / "out.safetensors").exists()
    done = convert_file(src, tmp_path / "ok.safetensors", dtype="bf16")  # bf16 holds them
    assert done.nonfinite == ()


def test_convert_allow_nan_writes_them_and_says_which(tmp_path: Path) -> None:
    src = _model(tmp_path / "m.safetensors", "F16", 0, {NAME: [np.nan, np.inf]})
    done = convert_file(src, tmp_path / "out.safetensors", dtype="bf16", allow_nan=True)
    assert [(f.name, f.nan, f.inf) for f in done.nonfinite] == [(NAME, 1, 1)]
    assert done.to_dict()["nonfinite"] == [{"name": NAME, "nan": 1, "inf": 1}]
    written = M.to_f32("BF16", M.read_model(done.output)[NAME][1]).reshape(-1)
    assert np.isnan(written[0]) and written[1] == np.inf and np.isfinite(written[2:]).all()


@pytest.mark.parametrize(
    ("method", "poke_b", "poke_c"),
    [
        ("weighted-sum", [np.nan], None),  # carried over from an input
        ("add-difference", [np.inf], [np.inf]),  # inf - inf: made by the arithmetic
    ],
)
def test_merge_refuses_a_nan_result_without_numpy_warnings(
    tmp_path: Path, method: str, poke_b: list[float], poke_c: list[float] | None
) -> None:
    a = _model(tmp_path / "a.safetensors", "F16", 0)
    b = _model(tmp_path / "b.safetensors", "F32", 1, {NAME: poke_b})
    c = _model(tmp_path / "c.safetensors", "F16", 2, {NAME: poke_c}) if poke_c else None
    out = tmp_path / "ab.safetensors"
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(NonFiniteError, match=rf"1 tensor holds NaN: {NAME} \(1 NaN\)"):
        merge_files(a, b, c, output=out, method=method)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_merge_allow_nan_writes_the_nan_where_it_belongs(tmp_path: Path) -> None:
    a = _model(tmp_path / "a.safetensors", "F16", 0)
    b = _model(tmp_path / "b.safetensors", "F16", 1, {NAME: [0.0, np.nan]})
    done = merge_files(
        a, b, output=tmp_path / "ab.safetensors", method="weighted-sum", allow_nan=True
    )
    assert [(f.name, f.nan, f.inf) for f in done.nonfinite] == [(NAME, 1, 0)]
    merged = M.read_model(done.output)[NAME][1].reshape(-1)
    assert np.isnan(merged[1]) and np.isfinite(merged[0]) and np.isfinite(merged[2:]).all()


def test_service_merge_and_convert_are_the_transforms(tmp_path: Path) -> None:
    a = _model(tmp_path / "a.safetensors", "F16", 0)
    b = _model(tmp_path / "b.safetensors", "F16", 1)
    events: list[Any] = []
    with Context() as ctx:
        done = transform.merge(
            ctx, a, b, output=tmp_path / "ab.safetensors", method="weighted-sum", alpha=0.25,
            on_progress=events.append,
        )  # fmt: skip
        want = M.reference(
            "weighted-sum", 0.25, "F16", M.random_tensors(M.tiny_sd15(), 0)[NAME],
            M.random_tensors(M.tiny_sd15(), 1)[NAME],
        )  # fmt: skip
        np.testing.assert_array_equal(M.read_model(done.output)[NAME][1], want)
        assert events and events[-1].stage == "verify" and events[-1].done == events[-1].total
        pickle = M.write_pickle(tmp_path / "ab.ckpt", M.random_tensors(M.tiny_sd15(), 3))
        made = transform.convert_beside(ctx, pickle)
        assert made.output == tmp_path / "ab.converted.safetensors"  # ab.safetensors is taken
        assert M.read_model(made.output).keys() == M.read_model(a).keys()


def test_service_cancel_stops_at_the_next_chunk_and_leaves_nothing(tmp_path: Path) -> None:
    a = _model(tmp_path / "a.safetensors", "F16", 0)
    b = _model(tmp_path / "b.safetensors", "F16", 1)
    before = sorted(p.name for p in tmp_path.iterdir())
    cancel = threading.Event()
    seen: list[Any] = []

    def progress(event: Any) -> None:
        seen.append(event)
        cancel.set()  # asked after the first chunk

    with Context() as ctx:
        with pytest.raises(Interrupted):
            transform.merge(
                ctx, a, b, output=tmp_path / "ab.safetensors", method="weighted-sum",
                on_progress=progress, cancel=cancel,
            )  # fmt: skip
        with pytest.raises(Interrupted):
            transform.convert(ctx, a, tmp_path / "c.safetensors", dtype="bf16", cancel=cancel)
    assert len(seen) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before
