"""``sdlib convert`` run as users run it: a real subprocess, exit codes, stdout/stderr, files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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


def sdlib(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sdlib", "convert", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


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
    proc = sdlib("--help")
    assert proc.returncode == 0
    assert "Examples:" in proc.stdout and "sdlib convert model.ckpt --dtype fp16" in proc.stdout


def test_converts_and_reports(model: Path) -> None:
    proc = sdlib(model, "--dtype", "fp16")
    assert proc.returncode == 0, proc.stderr
    out = model.with_name("model.fp16.safetensors")
    assert out.is_file() and str(out) in proc.stdout
    assert "suspicious" in proc.stderr  # the Lightning callback is reported, never imported


def test_json_output_is_one_document(model: Path, tmp_path: Path) -> None:
    target = tmp_path / "x.safetensors"
    proc = sdlib(model, "-o", target, "--prune", "--json")
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
    proc = sdlib(src)
    assert proc.returncode == 3
    assert "unsafe" in proc.stderr and (
        "posix.system" in proc.stderr or "builtins.exec" in proc.stderr
    )
    assert proc.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.pt"]
    proc = sdlib(src, "--json")
    assert proc.returncode == 3 and json.loads(proc.stdout)["verdict"] == "unsafe"
    assert not sentinel.exists()


def test_existing_output_needs_overwrite(model: Path) -> None:
    assert sdlib(model).returncode == 0
    proc = sdlib(model)
    assert proc.returncode == 2 and "--overwrite" in proc.stderr
    assert sdlib(model, "--overwrite").returncode == 0


def test_never_overwrites_its_input(tmp_path: Path) -> None:
    src = tmp_path / "m.safetensors"
    src.write_bytes(b"")
    import numpy as np
    from safetensors.numpy import save_file

    save_file({"a": np.zeros(3, np.float32)}, str(src))
    proc = sdlib(src, "-o", src, "--dtype", "fp16", "--overwrite")
    assert proc.returncode == 2 and "input" in proc.stderr


def test_hypernetwork_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "hn.pt"
    src.write_bytes(torch_zip(hypernetwork((768,), 1)))
    proc = sdlib(src)
    assert proc.returncode == 1 and "hypernetwork" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hn.pt"]


def test_not_a_pickle_is_a_clear_error(tmp_path: Path) -> None:
    src = tmp_path / "x.pt"
    src.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    proc = sdlib(src)
    assert proc.returncode == 1 and "not a pickle" in proc.stderr


def test_gguf_is_refused_with_the_reason(tmp_path: Path) -> None:
    from sdlib.demo.writers import write_gguf

    src = write_gguf(tmp_path / "flux-Q8_0.gguf", {"img_in.weight": ("Q8_0", (3072, 64))}, {})
    proc = sdlib(src)
    assert proc.returncode == 2 and "GGUF" in proc.stderr and "dequantis" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flux-Q8_0.gguf"]


def test_embedding_output_loads_in_safetensors(tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    src = tmp_path / "emb.pt"
    src.write_bytes(torch_zip(StateDict({"emb_params": Tensor(ramp(768 * 2), "F32", (2, 768))})))
    assert sdlib(src).returncode == 0
    assert load_file(str(tmp_path / "emb.safetensors"))["emb_params"].shape == (2, 768)
