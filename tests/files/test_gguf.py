"""GGUF: the bounded header reader, classification through the usual rules, hostile files."""

from __future__ import annotations

import io
import re
import struct
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from sdlib.demo.specs import flux_transformer, ldm_unet, sd3_checkpoint, t5_xxl
from sdlib.demo.writers import GGUFMeta, gguf_header, quantize_specs, write_gguf
from sdlib.errors import FormatError
from sdlib.files import gguf
from sdlib.files._gguf_names import classifier_names
from sdlib.files.tensors import TensorTable
from sdlib.inspect import inspect_file
from sdlib.taxonomy import Container

#: ComfyUI-GGUF's metadata for a Flux quant (llama-quantize sets the file type).
FLUX_MD: dict[str, GGUFMeta] = {"general.architecture": "flux", "general.quantization_version": 2}


def report(path: Path) -> dict[str, Any]:
    return inspect_file(path).to_dict()


# --- the reader --------------------------------------------------------------------------------


def test_reads_version_metadata_and_tensor_infos(tmp_path: Path) -> None:
    specs = {
        "a.weight": ("Q8_0", (64, 96)),
        "b.weight": ("Q4_K", (3, 512)),
        "norm": ("F32", (7,)),
        "conv": ("F16", (2, 3, 5, 5)),
        "ids": ("I32", (4,)),
    }
    md: dict[str, GGUFMeta] = {
        "general.architecture": "flux", "general.file_type": 7, "general.name": "Flux Q8",
        "shape": [1, 2, 3], "names": ["x", "y"], "scale": 0.5, "flag": True,
    }  # fmt: skip
    header = gguf.read_header(write_gguf(tmp_path / "m.gguf", specs, md))
    assert (header.version, header.byte_order, header.alignment) == (3, "little", 32)
    assert header.architecture == "flux" and header.file_type == "Q8_0"
    assert header.metadata["shape"] == (1, 2, 3) and header.metadata["names"] == ("x", "y")
    assert header.metadata["scale"] == 0.5 and header.metadata["flag"] is True
    # Shapes come back in PyTorch order (GGUF stores them innermost first).
    assert {n: (t.dtype, t.shape) for n, t in header.tensors.items()} == specs
    a, b = header.tensors["a.weight"], header.tensors["b.weight"]
    assert a.offsets == (0, 64 * 96 // 32 * 34)  # Q8_0: 34 bytes per 32 elements
    assert b.offsets is not None and b.offsets[0] % 32 == 0  # aligned to general.alignment
    assert b.offsets[1] - b.offsets[0] == 3 * 2 * 144  # Q4_K: 144 bytes per 256
    assert header.data_offset % 32 == 0
    table = header.table()
    assert table.container is Container.GGUF and table.data_offset == header.data_offset
    assert table.metadata["general.file_type"] == "7" and table.metadata["flag"] == "true"
    assert table.metadata["shape"] == "[1, 2, 3]"


def test_custom_alignment_version_2_and_big_endian(tmp_path: Path) -> None:
    specs = {"w": ("Q4_0", (8, 64)), "v": ("BF16", (3,))}
    for kw in ({"version": 2}, {"big_endian": True}):
        path = write_gguf(tmp_path / "m.gguf", specs, {"general.alignment": 64}, **kw)
        header = gguf.read_header(path)
        assert header.alignment == 64 and header.data_offset % 64 == 0
        # w is 8 rows of 2 Q4_0 blocks (18 bytes each): 288 bytes, padded to 320.
        assert header.tensors["v"].offsets == (320, 326)
        assert header.version == kw.get("version", 3)
        assert header.byte_order == ("big" if kw.get("big_endian") else "little")


def test_every_ggml_type_has_a_size(tmp_path: Path) -> None:
    specs = {f"t.{name}": (name, (2, 256)) for name in gguf.GGML_TYPES.values()}
    header = gguf.read_header(write_gguf(tmp_path / "all.gguf", specs))
    for name, t in header.tensors.items():
        assert t.offsets is not None and t.offsets[1] - t.offsets[0] == t.nbytes > 0, name


def test_five_dim_tensors_get_their_comfyui_shape_back(tmp_path: Path) -> None:
    # ComfyUI-GGUF flattens Wan's 5-D patch embedding and records the real shape.
    md = {"comfy.gguf.orig_shape.patch_embedding.weight": [5120, 16, 1, 2, 2]}
    path = write_gguf(tmp_path / "wan.gguf", {"patch_embedding.weight": ("F16", (5120, 64))}, md)
    assert gguf.read_table(path).tensors["patch_embedding.weight"].shape == (5120, 16, 1, 2, 2)


def test_long_arrays_are_summarised_in_the_text_metadata(tmp_path: Path) -> None:
    md = {"tokenizer.ggml.tokens": [f"tok{i}" for i in range(32_128)]}
    path = write_gguf(tmp_path / "t.gguf", {"w": ("F32", (4,))}, md)
    header = gguf.read_header(path)
    assert len(header.metadata["tokenizer.ggml.tokens"]) == 32_128  # type: ignore[arg-type]
    assert header.table().metadata["tokenizer.ggml.tokens"] == "[32,128 values]"


def test_parse_header_from_bytes() -> None:
    head, size = gguf_header({"w": ("F16", (2, 2))}, {"general.architecture": "sd1"})
    header = gguf.parse_header(head + bytes(size))
    assert header.architecture == "sd1" and header.tensors["w"].offsets == (0, 8)


# --- classification ----------------------------------------------------------------------------


def test_flux_dev_q8_0(tmp_path: Path) -> None:
    specs = quantize_specs(flux_transformer("", "BF16"), "Q8_0")
    assert specs["double_blocks.0.img_attn.qkv.weight"] == ("Q8_0", (9216, 3072))
    assert specs["img_in.weight"][0] == "F32"  # embedders stay unquantised, as city96 does
    path = write_gguf(tmp_path / "flux1-dev-Q8_0.gguf", specs, {**FLUX_MD, "general.file_type": 7})
    assert path.stat().st_size > 12_000_000_000  # sparse: costs no disk (real: 12.7 GB)
    r = report(path)
    assert (r["container"], r["kind"], r["base"], r["variant"]) == ("gguf", "unet", "flux", "dev")
    assert r["precision"] is None and r["quantization"] == "Q8_0"
    assert r["components"] == ["unet"] and r["metadata"]["architecture"] == "flux"
    assert r["parameters"] == 11_901_408_320
    assert r["evidence"][0] == "GGUF v3: general.architecture flux, general.file_type 7 (Q8_0)"
    assert any(re.search(r"Q8_0 99\.\d%, fp32 0\.\d% -> quantised Q8_0", e) for e in r["evidence"])


def test_flux_schnell_q4_k_m_is_named_by_its_file_type(tmp_path: Path) -> None:
    specs = quantize_specs(flux_transformer("", "BF16", guidance=False), "Q4_K")
    for i in range(19):  # Q4_K_M keeps some layers in Q6_K
        specs[f"double_blocks.{i}.img_mlp.2.weight"] = ("Q6_K", (3072, 12288))
    path = write_gguf(tmp_path / "s.gguf", specs, {**FLUX_MD, "general.file_type": 15})
    r = report(path)
    assert (r["kind"], r["base"], r["variant"]) == ("unet", "flux", "schnell")
    assert r["quantization"] == "Q4_K_M"
    assert "most weights are Q4_K; general.file_type names the mix Q4_K_M" in r["evidence"]


def test_a_file_type_that_disagrees_with_the_tensors_is_not_trusted(tmp_path: Path) -> None:
    # Early ComfyUI-GGUF wrote the ggml type id (Q8_0 = 8) where llama.cpp means Q5_0.
    specs = quantize_specs(flux_transformer("", "BF16"), "Q8_0")
    path = write_gguf(tmp_path / "old.gguf", specs, {**FLUX_MD, "general.file_type": 8})
    assert report(path)["quantization"] == "Q8_0"


def test_sdxl_unet_only_q4_0(tmp_path: Path) -> None:
    unet = ldm_unet(
        "", "F16", mult=(1, 2, 4), depth=(0, 2, 10), mid_depth=10, ctx=2048, linear=True,
        adm=2816,
    )  # fmt: skip
    specs = quantize_specs(unet, "Q4_0", fallback="F16")
    assert specs["input_blocks.0.0.weight"][0] == "F16"  # 3x3 convs are never quantised
    r = report(write_gguf(tmp_path / "sdxl.gguf", specs, {"general.architecture": "sdxl"}))
    assert (r["kind"], r["base"], r["variant"]) == ("unet", "sdxl", None)
    assert (r["precision"], r["quantization"]) == (None, "Q4_0")
    assert r["weights"] == "ema-only-or-pruned"


def test_sd35_large_transformer_q5_k(tmp_path: Path) -> None:
    prefix = "model.diffusion_model."
    mmdit = {k[len(prefix) :]: v for k, v in sd3_checkpoint().items() if k.startswith(prefix)}
    for i in range(24):  # SD3.5 adds qk-norm to the joint attention
        for part in ("x_block", "context_block"):
            for ln in ("ln_q", "ln_k"):
                mmdit[f"joint_blocks.{i}.{part}.attn.{ln}.weight"] = ("F16", (64,))
    specs = quantize_specs(mmdit, "Q5_K", fallback="F16")
    r = report(write_gguf(tmp_path / "sd35.gguf", specs, {"general.architecture": "sd3"}))
    assert (r["kind"], r["base"], r["variant"]) == ("unet", "sd3", "3.5-large")
    assert r["quantization"] == "Q5_K"


#: Hugging Face T5 suffix -> llama.cpp name part (the reverse of ComfyUI-GGUF's T5_SD_MAP).
_HF_TO_LLAMA = {
    "layer.0.SelfAttention.q": "attn_q", "layer.0.SelfAttention.k": "attn_k",
    "layer.0.SelfAttention.v": "attn_v", "layer.0.SelfAttention.o": "attn_o",
    "layer.0.SelfAttention.relative_attention_bias": "attn_rel_b",
    "layer.0.layer_norm": "attn_norm", "layer.1.DenseReluDense.wi_0": "ffn_gate",
    "layer.1.DenseReluDense.wi_1": "ffn_up", "layer.1.DenseReluDense.wi": "ffn_up",
    "layer.1.DenseReluDense.wo": "ffn_down", "layer.1.layer_norm": "ffn_norm",
}  # fmt: skip


def llama_cpp_t5(hf: dict[str, tuple[str, tuple[int, ...]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in hf.items():
        if name == "shared.weight":
            out["token_embd.weight"] = value
        elif name == "encoder.final_layer_norm.weight":
            out["enc.output_norm.weight"] = value
        else:
            m = re.fullmatch(r"encoder\.block\.(\d+)\.(.+)\.weight", name)
            assert m is not None, name
            out[f"enc.blk.{m[1]}.{_HF_TO_LLAMA[m[2]]}.weight"] = value
    return out


def test_t5_xxl_encoder_with_llama_cpp_names(tmp_path: Path) -> None:
    specs = quantize_specs(llama_cpp_t5(t5_xxl("", "F16")), "Q8_0", fallback="F16")
    assert specs["enc.blk.0.ffn_up.weight"] == ("Q8_0", (10240, 4096))
    md: dict[str, GGUFMeta] = {"general.architecture": "t5encoder", "general.file_type": 7,
          "tokenizer.ggml.tokens": [f"t{i}" for i in range(32_128)]}  # fmt: skip
    r = report(write_gguf(tmp_path / "t5-v1_1-xxl-encoder-Q8_0.gguf", specs, md))
    assert (r["kind"], r["base"], r["variant"]) == ("text-encoder", "unknown", "t5-xxl")
    assert r["components"] == ["t5"] and r["quantization"] == "Q8_0"
    assert any("llama.cpp T5 names" in e for e in r["evidence"])


def test_ungated_t5_ffn_up_becomes_wi() -> None:
    table = TensorTable.from_specs(
        {"enc.blk.0.attn_q.weight": ("F16", (512, 512)),
         "enc.blk.0.ffn_up.weight": ("F16", (2048, 512))}
    )  # fmt: skip
    names, line = classifier_names(table.tensors)
    assert set(names) == {
        "encoder.block.0.layer.0.SelfAttention.q.weight",
        "encoder.block.0.layer.1.DenseReluDense.wi.weight",
    }
    assert names["encoder.block.0.layer.1.DenseReluDense.wi.weight"].shape == (2048, 512)
    assert line is not None


def test_llama_llm_stays_unknown_with_evidence(tmp_path: Path) -> None:
    specs: dict[str, Any] = {"token_embd.weight": ("Q4_K", (32000, 4096)),
                             "output_norm.weight": ("F32", (4096,)),
                             "output.weight": ("Q6_K", (32000, 4096))}  # fmt: skip
    for i in range(4):
        for part, shape in (("attn_q", (4096, 4096)), ("attn_k", (4096, 4096)),
                            ("attn_v", (4096, 4096)), ("attn_output", (4096, 4096)),
                            ("ffn_gate", (11008, 4096)), ("ffn_up", (11008, 4096))):  # fmt: skip
            specs[f"blk.{i}.{part}.weight"] = ("Q4_K", shape)
        specs[f"blk.{i}.ffn_down.weight"] = ("Q4_K", (4096, 11008))
        specs[f"blk.{i}.attn_norm.weight"] = ("F32", (4096,))
    md: dict[str, GGUFMeta] = {
        "general.architecture": "llama",
        "general.name": "Llama 2 7B",
        "general.file_type": 15,
    }
    r = report(write_gguf(tmp_path / "llama-2-7b.Q4_K_M.gguf", specs, md))
    assert (r["container"], r["kind"], r["base"]) == ("gguf", "unknown", "unknown")
    assert r["metadata"] == {"title": "Llama 2 7B", "architecture": "llama"}
    assert r["evidence"][0].startswith("GGUF v3: general.architecture llama")
    assert any("no signature matched" in e and "blk (32)" in e for e in r["evidence"])


def test_gguf_without_tensors_is_unknown(tmp_path: Path) -> None:
    r = report(write_gguf(tmp_path / "vocab.gguf", {}, {"general.architecture": "llama"}))
    assert r["kind"] == "unknown" and r["tensors"] == 0


# --- hostile and broken files ------------------------------------------------------------------


def _u64s(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}Q", *values)


def _string(text: str) -> bytes:
    return _u64s(len(text)) + text.encode()


def _file(tmp_path: Path, data: bytes, pad: int = 4096) -> Path:
    path = tmp_path / "h.gguf"
    path.write_bytes(data + bytes(pad))
    return path


def _info(name: str, dims: list[int], ggml_type: int, offset: int) -> bytes:
    return _string(name) + struct.pack(f"<I{len(dims)}QIQ", len(dims), *dims, ggml_type, offset)


V3 = b"GGUF" + struct.pack("<I", 3)

HOSTILE: dict[str, tuple[bytes, str]] = {
    "bad magic": (b"GGUG" + V3[4:] + _u64s(0, 0), "no GGUF magic"),
    "version 1": (b"GGUF" + struct.pack("<I", 1) + _u64s(0, 0), "version 1"),
    "version 99": (b"GGUF" + struct.pack("<I", 99) + _u64s(0, 0), "unsupported GGUF version 99"),
    "absurd tensor count": (V3 + _u64s(1 << 60, 0), "claims"),
    "tensor count past the file": (V3 + _u64s(10_000, 0), "more than a"),
    "absurd key count": (V3 + _u64s(0, 1 << 40), "claims"),
    "absurd string length": (V3 + _u64s(0, 1) + _u64s(1 << 62), "does not fit"),
    "absurd array length": (
        V3 + _u64s(0, 1) + _string("a") + struct.pack("<II", 9, 4) + _u64s(1 << 40),
        "does not fit",
    ),
    "unknown value type": (V3 + _u64s(0, 1) + _string("a") + struct.pack("<I", 13), "value type"),
    "nested too deep": (
        V3 + _u64s(0, 1) + _string("a") + struct.pack("<I", 9)
        + (struct.pack("<I", 9) + _u64s(1)) * 6,
        "nested",
    ),
    "duplicate key": (
        V3 + _u64s(0, 2) + (_string("k") + struct.pack("<IB", 0, 1)) * 2, "duplicate",
    ),
    "bad alignment": (
        V3 + _u64s(0, 1) + _string("general.alignment") + struct.pack("<II", 4, 24),
        "power of two",
    ),
    "too many dims": (V3 + _u64s(1, 0) + _info("w", [1] * 5, 0, 0), "5 dimensions"),
    "unknown ggml type": (V3 + _u64s(1, 0) + _info("w", [4], 4, 0), "unknown ggml type 4"),
    "partial block": (V3 + _u64s(1, 0) + _info("w", [33, 2], 8, 0), "whole Q8_0 blocks"),
    "huge dims": (V3 + _u64s(1, 0) + _info("w", [1 << 40, 1 << 40], 0, 0), "impossible"),
    "unaligned offset": (V3 + _u64s(1, 0) + _info("w", [4], 0, 3), "not 32-aligned"),
    "duplicate tensor": (V3 + _u64s(2, 0) + _info("w", [4], 0, 0) * 2, "duplicate"),
    "overlap": (
        V3 + _u64s(2, 0) + _info("a", [64], 0, 0) + _info("b", [64], 0, 128), "overlap",
    ),
    "data past the end": (V3 + _u64s(1, 0) + _info("w", [1 << 20], 0, 0), "truncated"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_headers_raise_one_line_format_errors(tmp_path: Path, case: str) -> None:
    data, message = HOSTILE[case]
    path = _file(tmp_path, data)
    with pytest.raises(FormatError, match=message) as err:
        gguf.read_header(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize("cut", [3, 8, 20, 40, 200])
def test_truncated_headers(tmp_path: Path, cut: int) -> None:
    head, _ = gguf_header(flux_transformer(), FLUX_MD)
    path = tmp_path / "cut.gguf"
    path.write_bytes(head[:cut])
    with pytest.raises(FormatError, match=r"truncated|no GGUF magic|more than a"):
        gguf.read_header(path)


class _Counting:
    """A file object that counts the bytes read through it."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh, self.read_bytes = fh, 0

    def read(self, n: int = -1) -> bytes:
        chunk = self.fh.read(n)
        self.read_bytes += len(chunk)
        return chunk


@pytest.mark.parametrize("case", ["absurd string length", "absurd array length"])
def test_absurd_lengths_read_nothing_more(case: str) -> None:
    # The file claims to be 100 GB; the header is refused from its first few bytes.
    fh = _Counting(io.BytesIO(HOSTILE[case][0] + bytes(1 << 20)))
    with pytest.raises(FormatError):
        gguf.read_header_from(fh, 100 << 30)  # type: ignore[arg-type]
    assert fh.read_bytes <= 1 << 16


def test_a_twelve_gigabyte_gguf_is_judged_from_its_header(tmp_path: Path) -> None:
    specs = quantize_specs(flux_transformer("", "BF16"), "Q8_0")
    path = write_gguf(tmp_path / "flux.gguf", specs, FLUX_MD)
    with open(path, "rb") as raw:
        fh = _Counting(raw)
        header = gguf.read_header_from(fh, path.stat().st_size)  # type: ignore[arg-type]
    assert len(header.tensors) == 780 and fh.read_bytes <= 1 << 17


def test_inspect_reports_a_corrupt_gguf_as_format_error(tmp_path: Path) -> None:
    path = _file(tmp_path, V3 + _u64s(1 << 60, 0))
    with pytest.raises(FormatError, match="claims"):
        inspect_file(path)
