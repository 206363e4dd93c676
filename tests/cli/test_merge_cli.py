"""``sdlib merge`` run as users run it: a real subprocess, exit codes, stdout/stderr, files."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support import merge_models as M
from tests.support.cli import run_sdlib
from tests.support.pickles import StateDict, Tensor, call_pickle, shell_touch, torch_zip

pytestmark = pytest.mark.slow  # subprocess: every test runs python -m sdlib


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A private hash cache and data dir, no colour, wide lines."""
    drop = ("SDLIB_CONFIG", "CIVITAI_TOKEN")
    out = {k: v for k, v in os.environ.items() if k not in drop}
    out.update(
        SDLIB_CACHE_DIR=str(tmp_path / "cache"),
        SDLIB_DATA_DIR=str(tmp_path / "data"),
        SDLIB_CONFIG=str(tmp_path / "none.toml"),
        NO_COLOR="1",
        COLUMNS="200",
    )
    return out


@pytest.fixture
def models(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "models"
    folder.mkdir()
    return {
        name: M.write_model(folder / f"{name}.safetensors", M.random_tensors(spec, seed))
        for seed, (name, spec) in enumerate(
            [
                ("a", M.tiny_sd15()),
                ("b", M.tiny_sd15("F32")),
                ("c", M.tiny_sd15()),
                ("inpaint", M.tiny_sd15(in_ch=9)),
                ("sdxl", M.tiny_sdxl()),
                ("vae", M.tiny_vae("", "F32")),
            ]
        )
    }


def test_help_has_examples(env: dict[str, str]) -> None:
    proc = run_sdlib("merge", "--help", env=env)
    assert proc.returncode == 0
    assert "Examples:" in proc.stdout and "--method add-difference" in proc.stdout


def test_cli_components_match_the_library() -> None:
    from sdlib.cli import merge_cmd
    from sdlib.services import transform
    from sdlib.transform import _merge_plan

    assert merge_cmd._COMPONENTS == _merge_plan.COMPONENTS == transform.COMPONENTS
    assert transform.METHODS == _merge_plan.METHODS


def test_weighted_sum_reports_and_writes(
    env: dict[str, str], models: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "ab.safetensors"
    proc = run_sdlib(
        "merge",
        models["a"],
        models["b"],
        "--method",
        "weighted-sum",
        "-M",
        "0.3",
        "-o",
        out,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert str(out) in proc.stdout and "weighted-sum, alpha 0.3" in proc.stdout
    assert "copied from A (not model weights): 2: alphas_cumprod" in proc.stdout
    sha_a = hashlib.sha256(models["a"].read_bytes()).hexdigest().upper()  # as printed
    assert sha_a in proc.stdout
    a = M.random_tensors(M.tiny_sd15(), 0)
    b = M.random_tensors(M.tiny_sd15("F32"), 1)
    name = "model.diffusion_model.input_blocks.1.0.in_layers.2.weight"
    want = M.reference("weighted-sum", 0.3, "F16", a[name], b[name])
    np.testing.assert_array_equal(M.read_model(out)[name][1], want)
    assert (tmp_path / "cache" / "hashes.sqlite").is_file()  # the inputs' hashes are cached


def test_add_difference_json_with_options(
    env: dict[str, str], models: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "inpaint-mix.safetensors"
    proc = run_sdlib(
        "merge", models["inpaint"], models["b"], models["c"], "--method", "add-difference",
        "-o", out, "--dtype", "bf16", "--components", "unet, text-encoder",
        "--bake-vae", models["vae"], "--json", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["output"] == str(out) and data["method"] == "add-difference"
    assert data["alpha"] == 1.0 and data["dtype"] == "bf16"
    assert data["components"] == ["unet", "text-encoder"] and data["first_conv"] == "inpaint"
    assert data["vae_tensors"] == 16
    assert [i["role"] for i in data["inputs"]] == ["A", "B", "C", "VAE"]
    for i in data["inputs"]:
        assert i["sha256"] == hashlib.sha256(Path(i["path"]).read_bytes()).hexdigest()
    assert M.read_model(out)["model.diffusion_model.out.2.weight"][0] == "BF16"


def test_usage_errors_exit_2(env: dict[str, str], models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "x.safetensors"
    ab = (models["a"], models["b"])
    cases = [
        ((*ab, "--method", "add-difference", "-o", out), "third model C"),
        ((*ab, "--method", "weighted-sum", "-o", out, "--components", "unet,lora"), "--components"),
        ((*ab, "-o", out), "--method"),
        ((*ab, "--method", "weighted-sum", "-o", models["b"]), "replace"),
    ]
    for args, message in cases:
        proc = run_sdlib("merge", *args, env=env)
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in proc.stderr
    assert not out.exists()


def test_sd1_with_sdxl_is_refused(
    env: dict[str, str], models: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "x.safetensors"
    proc = run_sdlib(
        "merge", models["a"], models["sdxl"], "--method", "weighted-sum", "-o", out, env=env
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "sd1 checkpoint" in proc.stderr
    assert "sdxl checkpoint" in proc.stderr and proc.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache") == ["models"]


def test_existing_output_needs_overwrite(
    env: dict[str, str], models: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "x.safetensors"
    out.write_bytes(b"keep me")
    args = (models["a"], models["b"], "--method", "weighted-sum", "-o", out)
    proc = run_sdlib("merge", *args, env=env)
    assert proc.returncode == 2 and "--overwrite" in proc.stderr
    assert out.read_bytes() == b"keep me"
    assert run_sdlib("merge", *args, "--overwrite", env=env).returncode == 0
    assert out.read_bytes() != b"keep me"


def test_unsafe_pickle_exits_3_and_writes_nothing(
    env: dict[str, str], models: dict[str, Path], tmp_path: Path
) -> None:
    sentinel = tmp_path / "pwned"
    evil = tmp_path / "models" / "evil.ckpt"
    evil.write_bytes(
        torch_zip(
            {"state_dict": StateDict({"w": Tensor(b"\0" * 16, "F32", (4,))})},
            pickle_bytes=call_pickle("posix", "system", shell_touch(sentinel)),
        )
    )
    out = tmp_path / "x.safetensors"
    proc = run_sdlib(
        "merge", models["a"], evil, "--method", "weighted-sum", "-o", out, "--json", env=env
    )
    assert proc.returncode == 3
    assert "unsafe pickle refused" in proc.stderr and "posix" in proc.stderr
    assert json.loads(proc.stdout)["verdict"] == "unsafe"
    assert not out.exists() and not sentinel.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def _with_values(path: Path, spec: Any, seed: int, name: str, values: list[float]) -> Path:
    tensors = M.random_tensors(spec, seed)
    dtype, bits = tensors[name]
    f32 = M.to_f32(dtype, bits).copy().reshape(-1)
    f32[: len(values)] = values
    tensors[name] = (dtype, M.from_f32(f32, dtype).reshape(bits.shape))
    return M.write_model(path, tensors)


def test_nan_result_is_refused_with_one_line_and_nothing_written(
    env: dict[str, str], tmp_path: Path
) -> None:
    """Issue 16 item 5: A + B - C with an Inf in B and C made NaN weights, printed numpy's
    RuntimeWarning and exited 0 with the broken model written."""
    name = "model.diffusion_model.input_blocks.1.0.in_layers.2.weight"
    folder = tmp_path / "in"
    folder.mkdir()
    a = M.write_model(folder / "a.safetensors", M.random_tensors(M.tiny_sd15(), 0))
    b = _with_values(folder / "b.safetensors", M.tiny_sd15(), 1, name, [np.inf, -np.inf])
    c = _with_values(folder / "c.safetensors", M.tiny_sd15(), 2, name, [np.inf, -np.inf])
    out = folder / "abc.safetensors"
    args = ("merge", a, b, c, "--method", "add-difference", "-o", out)
    proc = run_sdlib(*args, env=env)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("sdlib: error: "), proc.stderr
    assert f"1 tensor holds NaN: {name} (2 NaN)" in lines[0] and "--allow-nan" in lines[0]
    assert "Warning" not in proc.stderr and proc.stdout == ""
    assert sorted(p.name for p in folder.iterdir()) == [
        "a.safetensors",
        "b.safetensors",
        "c.safetensors",
    ]

    proc = run_sdlib(*args, "--allow-nan", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["nonfinite"] == [{"name": name, "nan": 2, "inf": 0}]
    assert proc.stderr.splitlines() == [
        f"sdlib: warning: written with --allow-nan: 1 tensor holds NaN: {name} (2 NaN)"
    ]
    merged = M.read_model(out)[name][1].reshape(-1)
    assert np.isnan(merged[:2]).all() and np.isfinite(merged[2:]).all()


def test_fp16_overflow_is_refused(env: dict[str, str], tmp_path: Path) -> None:
    name = "first_stage_model.decoder.conv_out.weight"
    a = _with_values(tmp_path / "a.safetensors", M.tiny_sd15("F32"), 0, name, [1e6])
    b = _with_values(tmp_path / "b.safetensors", M.tiny_sd15("F32"), 1, name, [1e6])
    out = tmp_path / "ab.safetensors"
    proc = run_sdlib(
        "merge", a, b, "--method", "weighted-sum", "--dtype", "fp16", "-o", out, env=env
    )
    assert proc.returncode == 1 and not out.exists()
    assert f"1 tensor holds Inf: {name} (1 Inf)" in proc.stderr and "65504" in proc.stderr
