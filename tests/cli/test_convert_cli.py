"""``sdlib convert`` run as users run it: a real subprocess, exit codes, stdout/stderr, files."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from tests.support.cli import run_sdlib
from tests.support.pickles import (
    StateDict,
    Tensor,
    call_pickle,
    hypernetwork,
    lightning_checkpoint,
    python_touch,
    ramp,
    shell_touch,
    torch_zip,
)

pytestmark = pytest.mark.slow  # subprocess: every test runs python -m sdlib


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "model.ckpt"
    path.write_bytes(
        torch_zip(
            lightning_checkpoint(
                {
                    "model.diffusion_model.w": Tensor(ramp(8), "F32", (2, 4)),
                }
            )
        )
    )
    return path


def test_help_has_an_example() -> None:
    proc = run_sdlib("convert", "--help")
    assert proc.returncode == 0
    assert "Examples:" in proc.stdout and "sdlib convert model.ckpt --dtype fp16" in proc.stdout


def test_converts_and_reports(model: Path) -> None:
    proc = run_sdlib("convert", model, "--dtype", "fp16")
    assert proc.returncode == 0, proc.stderr
    out = model.with_name("model.fp16.safetensors")
    assert out.is_file() and str(out) in proc.stdout
    assert "suspicious" in proc.stderr  # the Lightning callback is reported, never imported


def test_json_output_is_one_document(model: Path, tmp_path: Path) -> None:
    target = tmp_path / "x.safetensors"
    proc = run_sdlib("convert", model, "-o", target, "--prune", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["output"] == str(target) and data["tensors"] == 1 and data["prune"] is True
    assert data["verdict"] == "suspicious" and data["findings"]


@pytest.mark.parametrize(
    "payload",
    [
        lambda s: call_pickle("posix", "system", shell_touch(s)),
        lambda s: call_pickle("builtins", "exec", python_touch(s), proto=4),
    ],
    ids=["posix.system", "builtins.exec"],
)
def test_unsafe_file_exits_3_prints_findings_writes_nothing(
    tmp_path: Path, payload: object
) -> None:
    sentinel = tmp_path / "PWNED"
    src = tmp_path / "evil.pt"
    src.write_bytes(torch_zip(None, pickle_bytes=payload(sentinel)))  # type: ignore[operator]
    proc = run_sdlib("convert", src)
    assert proc.returncode == 3
    assert "unsafe" in proc.stderr and (
        "posix.system" in proc.stderr or "builtins.exec" in proc.stderr
    )
    assert proc.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.pt"]
    proc = run_sdlib("convert", src, "--json")
    assert proc.returncode == 3 and json.loads(proc.stdout)["verdict"] == "unsafe"
    assert not sentinel.exists()


def test_existing_output_needs_overwrite(model: Path) -> None:
    assert run_sdlib("convert", model).returncode == 0
    proc = run_sdlib("convert", model)
    assert proc.returncode == 2 and "--overwrite" in proc.stderr
    assert run_sdlib("convert", model, "--overwrite").returncode == 0


def test_never_overwrites_its_input(tmp_path: Path) -> None:
    src = tmp_path / "m.safetensors"
    src.write_bytes(b"")
    import numpy as np
    from safetensors.numpy import save_file

    save_file({"a": np.zeros(3, np.float32)}, str(src))
    proc = run_sdlib("convert", src, "-o", src, "--dtype", "fp16", "--overwrite")
    assert proc.returncode == 2 and "input" in proc.stderr


def test_hypernetwork_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "hn.pt"
    src.write_bytes(torch_zip(hypernetwork((768,), 1)))
    proc = run_sdlib("convert", src)
    assert proc.returncode == 1 and "hypernetwork" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hn.pt"]


def test_not_a_pickle_is_a_clear_error(tmp_path: Path) -> None:
    src = tmp_path / "x.pt"
    src.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    proc = run_sdlib("convert", src)
    assert proc.returncode == 1 and "not a pickle" in proc.stderr


def test_gguf_is_refused_with_the_reason(tmp_path: Path) -> None:
    from sdlib.demo.writers import write_gguf

    src = write_gguf(tmp_path / "flux-Q8_0.gguf", {"img_in.weight": ("Q8_0", (3072, 64))}, {})
    proc = run_sdlib("convert", src)
    assert proc.returncode == 2 and "GGUF" in proc.stderr and "dequantis" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flux-Q8_0.gguf"]


def test_embedding_output_loads_in_safetensors(tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    src = tmp_path / "emb.pt"
    src.write_bytes(torch_zip(StateDict({"emb_params": Tensor(ramp(768 * 2), "F32", (2, 768))})))
    assert run_sdlib("convert", src).returncode == 0
    assert load_file(str(tmp_path / "emb.safetensors"))["emb_params"].shape == (2, 768)


def test_nan_in_the_source_is_refused_and_allow_nan_writes_it(tmp_path: Path) -> None:
    values = [0.5, float("nan"), 1e6, -2.0]  # 1e6 is beyond fp16's range: Inf once cast
    src = tmp_path / "nan.ckpt"
    data = struct.pack("<4f", *values)
    src.write_bytes(torch_zip({"model.diffusion_model.w": Tensor(data, "F32", (4,))}))
    proc = run_sdlib("convert", src, "--dtype", "fp16")
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "sdlib: error: the converted file would be broken: 1 tensor holds NaN and Inf: "
        "model.diffusion_model.w (1 NaN, 1 Inf) (fp16 holds at most +-65504: --dtype bf16 "
        "or keep avoids an overflow to Inf); nothing was written (--allow-nan writes it anyway)"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan.ckpt"]

    proc = run_sdlib("convert", src, "--dtype", "fp16", "--allow-nan")
    assert proc.returncode == 0, proc.stderr
    assert "sdlib: warning: written with --allow-nan: 1 tensor holds NaN and Inf" in proc.stderr
    from safetensors.numpy import load_file

    written = load_file(str(tmp_path / "nan.fp16.safetensors"))["model.diffusion_model.w"]
    with np.errstate(over="ignore"):  # numpy's own cast is the reference: 1e6 -> inf
        want = np.array(values, np.float32).astype(np.float16)
    np.testing.assert_array_equal(written, want)
