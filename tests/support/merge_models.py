"""Tiny checkpoints with real key names (so the classifier places them) and random data.

Shared by the merge, convert and merge-CLI tests."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from sdlib.demo.specs import Spec, clip_l_hf, clip_open, ldm_unet
from sdlib.demo.writers import safetensors_header

#: dtype name -> numpy dtype of its stored bits (bf16 as uint16).
BITS = {"F32": "<f4", "F16": "<f2", "BF16": "<u2", "F64": "<f8", "I64": "<i8", "I32": "<i4"}
CONV_IN = "model.diffusion_model.input_blocks.0.0.weight"


def tiny_vae(prefix: str = "first_stage_model.", dtype: str = "F32", z: int = 4) -> Spec:
    """The VAE names the classifier and --bake-vae look at, at a toy width."""
    s: Spec = {}
    for part, shape in (
        ("encoder.conv_in", (8, 3, 3, 3)),
        ("encoder.down.0.block.0.conv1", (8, 8, 3, 3)),
        ("encoder.conv_out", (2 * z, 8, 3, 3)),
        ("decoder.conv_in", (8, z, 3, 3)),
        ("decoder.up.0.block.0.conv1", (8, 8, 3, 3)),
        ("decoder.conv_out", (3, 8, 3, 3)),
        ("quant_conv", (2 * z, 2 * z, 1, 1)),
        ("post_quant_conv", (z, z, 1, 1)),
    ):
        s[f"{prefix}{part}.weight"] = (dtype, shape)
        s[f"{prefix}{part}.bias"] = (dtype, (shape[0],))
    return s


def tiny_sd15(dtype: str = "F16", *, in_ch: int = 4) -> Spec:
    """SD1-shaped (context 768, CLIP-L names) at channel width 8: ~0.5 M parameters."""
    s: Spec = {"alphas_cumprod": ("F32", (1000,))}
    s.update(
        ldm_unet("model.diffusion_model.", dtype, ch=8, mult=(1, 2), depth=(1, 0), in_ch=in_ch)
    )
    s.update(tiny_vae("first_stage_model.", dtype))
    s.update(clip_l_hf("cond_stage_model.transformer.text_model.", dtype, width=8, layers=1))
    return s


def tiny_sdxl(dtype: str = "F16") -> Spec:
    s: Spec = {}
    s.update(
        ldm_unet(
            "model.diffusion_model.", dtype, ch=8, mult=(1, 2), depth=(0, 2), mid_depth=1,
            ctx=2048, linear=True, adm=2816,
        )
    )  # fmt: skip
    s.update(tiny_vae("first_stage_model.", dtype))
    s.update(clip_l_hf("conditioner.embedders.0.transformer.text_model.", dtype, width=8, layers=1))
    s.update(clip_open("conditioner.embedders.1.model.", dtype, width=8, layers=1))
    return s


def random_tensors(spec: Spec, seed: int) -> dict[str, tuple[str, np.ndarray]]:
    """name -> (dtype, array of stored bits); floats are N(0, 1), ints a ramp."""
    rng = np.random.default_rng(seed)
    out: dict[str, tuple[str, np.ndarray]] = {}
    for name, (dtype, shape) in spec.items():
        n = math.prod(shape)
        if dtype in ("I64", "I32"):
            arr = np.arange(n, dtype=BITS[dtype]).reshape(shape)
        else:
            values = rng.standard_normal(n, dtype=np.float32).reshape(shape)
            arr = from_f32(values, dtype)
        out[name] = (dtype, arr)
    return out


def from_f32(values: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "BF16":  # exact: these values are made bf16-representable by truncation
        return (values.astype("<f4").view("<u4") >> 16).astype("<u2")
    return values.astype(BITS[dtype])


def to_f32(dtype: str, bits: np.ndarray) -> np.ndarray:
    if dtype == "BF16":
        return (bits.astype("<u4") << 16).view("<f4")
    return bits.astype("<f4")


def write_model(
    path: Path,
    tensors: Mapping[str, tuple[str, np.ndarray]],
    metadata: Mapping[str, str] | None = None,
) -> Path:
    spec = {name: (dtype, arr.shape) for name, (dtype, arr) in tensors.items()}
    with open(path, "wb") as fh:
        fh.write(safetensors_header(spec, metadata))
        for _, arr in tensors.values():
            fh.write(np.ascontiguousarray(arr).tobytes())
    return path


def read_model(path: Path) -> dict[str, tuple[str, np.ndarray]]:
    """Every tensor as (dtype, stored bits), read with the reference safetensors reader."""
    from safetensors import safe_open

    out: dict[str, tuple[str, np.ndarray]] = {}
    with safe_open(str(path), framework="numpy") as f:
        for name in f.keys():  # noqa: SIM118 - safe_open is not a dict
            view = f.get_slice(name)
            dtype = view.get_dtype()
            if dtype == "BF16":
                continue  # numpy cannot hold bf16: read those by hand below
            out[name] = (dtype, f.get_tensor(name))
    return out | _bf16(path, set(out))


def _bf16(path: Path, have: set[str]) -> dict[str, tuple[str, np.ndarray]]:
    import json
    import struct

    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    header.pop("__metadata__", None)
    out = {}
    for name, entry in header.items():
        if name in have:
            continue
        start, end = entry["data_offsets"]
        data = np.frombuffer(raw[8 + n + start : 8 + n + end], "<u2").reshape(entry["shape"])
        out[name] = ("BF16", data)
    return out


def write_pickle(path: Path, tensors: Mapping[str, tuple[str, np.ndarray]]) -> Path:
    """A torch-zip ``.ckpt`` (``{"state_dict": ...}``), written without torch."""
    from tests.support.pickles import StateDict, Tensor, torch_zip

    state = StateDict(
        {name: Tensor(arr.tobytes(), dtype, arr.shape) for name, (dtype, arr) in tensors.items()}
    )
    path.write_bytes(torch_zip({"state_dict": state, "global_step": 1}))
    return path


def cast(values: np.ndarray, dtype: str) -> np.ndarray:
    """float32 -> stored bits of ``dtype`` (bf16 rounded by torch, the reference)."""
    if dtype == "BF16":
        import torch

        return (
            torch.from_numpy(values.copy()).to(torch.bfloat16).view(torch.int16).numpy().view("<u2")
        )
    return values.astype(BITS[dtype])


def reference(
    method: str,
    alpha: float,
    dtype: str,
    a: tuple[str, np.ndarray],
    b: tuple[str, np.ndarray],
    c: tuple[str, np.ndarray] | None = None,
) -> np.ndarray:
    """The merge in plain numpy: float32 math, then one cast to the output dtype."""
    fa, fb = to_f32(*a), to_f32(*b)
    if method == "weighted-sum":
        merged = fa * np.float32(1 - alpha) + fb * np.float32(alpha)
    else:
        assert c is not None
        merged = fa + (fb - to_f32(*c)) * np.float32(alpha)
    return cast(merged, dtype)
