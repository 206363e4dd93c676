"""Properties of the header readers and the classifier on hostile input (hypothesis).

Whatever bytes a safetensors or GGUF header holds, the reader returns a table or raises
sdlib's ``FormatError``, quickly; whatever names, ranks, shapes, dtypes and metadata a table
holds, the classifier returns a classification (``unknown`` at worst) without falling back
on its last-resort handler. The key names are the real ones: every name of every synthetic
model in :mod:`sdlib.demo.specs` plus the decisive names of the signature tables.
Each property is bounded (max_examples, small inputs), so the file runs in seconds.
"""

from __future__ import annotations

import json
import math
import struct
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdlib.demo.specs import METADATA, SPECS
from sdlib.demo.writers import gguf_header, safetensors_header
from sdlib.errors import FormatError
from sdlib.files import _signatures as sig
from sdlib.files import gguf, safetensors
from sdlib.files.classify import INTERNAL_ERROR, classify
from sdlib.files.tensors import DTYPE_SIZES, QUANT_BLOCKS, TensorInfo, TensorTable
from sdlib.inspect import _classify_gguf
from sdlib.taxonomy import Container

pytestmark = pytest.mark.slow  # fuzz

BOUNDED = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
#: A parse or a classification of these small inputs takes milliseconds; a second means a
#: loop or a huge allocation.
SLOW = 1.0

_BUILT = {name: build() for name, build in sorted(SPECS.items())}
_DECISIVE = {
    *sig.V_PRED_MARKERS,
    *sig.SCHEDULE_BUFFERS,
    "lora_controlnet",
    "clip_l",
    "clip_g",
    "emb_params",
    "string_to_param.*",
    "scaled_fp8",
    "decoder.conv_in.weight",
    "decoder.conv_in.conv.weight",
    "encoder.conv_in.weight",
    "decoder.up.0.block.0.conv1.weight",
    "decoder.mid.block_1.mix_factor",
    "vquantizer.codebook.weight",
    "taesd_decoder.1.weight",
    "first_stage_model.decoder.conv_in.weight",
    "first_stage_model.encoder.conv_in.weight",
    "input_blocks.0.0.weight",
    "conv_in.weight",
    "time_embedding.linear_1.weight",
    "label_emb.0.0.weight",
    "img_in.weight",
    "txt_in.weight",
    "guidance_in.in_layer.weight",
    "double_blocks.0.img_attn.qkv.weight",
    "joint_blocks.0.x_block.attn.qkv.weight",
    "x_embedder.proj.weight",
    "t_block.1.weight",
    "clf.1.weight",
    "controlnet_blocks.0.weight",
    "body.0.in_conv.weight",
    "body.0.block2.weight",
    "ip_adapter.1.to_k_ip.weight",
    "image_proj.proj.weight",
    "text_model.embeddings.token_embedding.weight",
    "encoder.block.0.layer.1.DenseReluDense.wi_1.weight",
    "[0]",
    "[1]",
    "0",
    "1",
    "768.0.linear.0.weight",
    "1024.1.linear1.weight",
    "<token>",
    "pos_encoder.pe",
    "down_blocks.0.motion_modules.0.temporal_transformer.proj_in.weight",
    "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight",
    "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight",
    "lora_unet_down_blocks_0_attentions_0_proj_in.alpha",
    "lora_te_text_model_encoder_layers_0_mlp_fc1.hada_w1_b",
    "unet:0:down",
    "unet:0:up",
    "lora_unet_x.lokr_w1",
    "lora_unet_x.lokr_w2_b",
    "lora_unet_x.oft_blocks",
    "lora_unet_x.diff",
    "lora_unet_x.dora_scale",
    "lora_unet_x.on_input",
    "lora_unet_x.a1.weight",
    *(k for k, _, _ in sig.OTHER_DIFFUSION),
    *(k for k, _ in sig.IP_ADAPTER_VARIANTS),
    *(k for keys, _ in sig.UPSCALERS for k in keys),
    *(f"{w}{k}" for w in (*sig.WRAPPERS, *sig.COMMON_PREFIXES) for k in ("x.weight", "0")),
}
_NAMES = sorted({n for spec in _BUILT.values() for n in spec} | _DECISIVE)
_DTYPES = sorted({*DTYPE_SIZES, *QUANT_BLOCKS, "F8_E4M3FNUZ", "Q9_9", ""})
_DIMS = st.one_of(
    st.sampled_from([0, 1, 2, 3, 4, 8, 9, 16, 32, 64, 320, 768, 1024, 1280, 2048, 4096]),
    st.integers(0, 1 << 20),
    st.just(1 << 61),
)
_SHAPES = st.lists(_DIMS, max_size=6).map(tuple)
_TEXT = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["v", "sdxl_base_v1-0", "sd_v1", "inf", "nan", "1e999", "None", "\ud800"]),
    st.sampled_from(['{"name": "x"}', '{"a": {"b": 1}}', "{" * 1000, '{"x":' * 900 + "1",
                     '{"n": ' + "9" * 5000 + "}", '{"algo": "lokr"}', '{"f": {"t": 1e999}}']),
)  # fmt: skip
_MD_KEYS = sorted({k for md in METADATA.values() for k in md} | {"software", "ss_network_args"})
_METADATA = st.dictionaries(st.sampled_from(_MD_KEYS), _TEXT, max_size=6)


def _table(specs: dict[str, tuple[str, tuple[int, ...]]], metadata: dict[str, str]) -> TensorTable:
    return TensorTable({n: TensorInfo(n, d, s) for n, (d, s) in specs.items()},
                       Container.SAFETENSORS, metadata)  # fmt: skip


def _classifies(table: TensorTable) -> None:
    started = time.perf_counter()
    cls = classify(table)
    assert time.perf_counter() - started < SLOW
    assert not cls.evidence or not cls.evidence[0].startswith(INTERNAL_ERROR), cls.evidence
    assert cls.tensors == len(table.tensors)
    json.dumps(cls.to_dict(), allow_nan=False)  # what --json prints: always valid JSON


# --- the classifier ----------------------------------------------------------------------------


@BOUNDED
@given(
    st.dictionaries(st.sampled_from(_NAMES), st.tuples(st.sampled_from(_DTYPES), _SHAPES),
                    min_size=1, max_size=24),
    _METADATA,
)  # fmt: skip
def test_classifier_never_raises_on_real_names(
    specs: dict[str, tuple[str, tuple[int, ...]]], metadata: dict[str, str]
) -> None:
    _classifies(_table(specs, metadata))


@BOUNDED
@given(
    st.sampled_from(sorted(_BUILT)),
    st.lists(st.tuples(st.integers(0, 1 << 16), st.sampled_from(_DTYPES), _SHAPES), max_size=12),
    st.integers(0, 8),
    _METADATA,
)
def test_classifier_never_raises_on_mutated_real_models(
    name: str,
    mutations: list[tuple[int, str, tuple[int, ...]]],
    keep_every: int,
    metadata: dict[str, str],
) -> None:
    """A whole real key set (so the deep rules run) with some tensors given another rank,
    shape or dtype, and sometimes only every n-th tensor kept."""
    items = list(_BUILT[name].items())
    if keep_every > 1:
        items = items[::keep_every]
    for index, dtype, shape in mutations:
        key = items[index % len(items)][0]
        items[index % len(items)] = (key, (dtype, shape))
    _classifies(_table(dict(items), {**METADATA.get(name, {}), **metadata}))


@pytest.mark.parametrize(
    ("specs", "why"),
    [
        ({"decoder.conv_in.weight": ("F32", (512,)), "encoder.conv_in.weight": ("F32", (128,))},
         "1-D VAE conv_in"),
        ({"lora_unet_a_proj.lora_down.weight": ("F16", ()),
          "lora_unet_a_proj.lora_up.weight": ("F16", (320, 4))}, "scalar lora_down"),
        ({"lora_unet_a_proj.lora_down.weight": ("F16", (0, 320)),
          "lora_unet_a_proj.lora_up.weight": ("F16", (320, 0))}, "zero-rank LoRA"),
        ({"input_blocks.0.0.weight": ("F16", (0, 4, 3, 3)), "out.2.weight": ("F16", (4, 0))},
         "every float tensor empty"),
        ({"model.diffusion_model.input_blocks.0.0.weight": ("Q8_0", (0, 32))} |
         {f"model.diffusion_model.x{i}.weight": ("Q4_K", (0, 256)) for i in range(6)},
         "every quantised tensor empty"),
    ],
)  # fmt: skip
def test_known_triggers_classify_as_something(
    specs: dict[str, tuple[str, tuple[int, ...]]], why: str
) -> None:
    _classifies(_table(specs, {"ss_network_alpha": "nan", "software": "{" * 1000}))


# --- the safetensors header reader -------------------------------------------------------------

_SMALL = {name: _BUILT["lora_sd15_kohya"][name] for name in list(_BUILT["lora_sd15_kohya"])[:6]}
_VALID_ST = safetensors_header(_SMALL, {"ss_network_dim": "32", "ss_network_alpha": "16"})
_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=12,
)  # fmt: skip


def _reads_safetensors(blob: bytes, file_size: int) -> None:
    import io

    started = time.perf_counter()
    try:
        table = safetensors.read_table_from(io.BytesIO(blob), file_size, "fuzz.safetensors")
    except FormatError:
        pass
    else:
        _classifies(table)
    assert time.perf_counter() - started < SLOW


@BOUNDED
@given(st.lists(st.tuples(st.integers(0, len(_VALID_ST) - 1), st.integers(0, 255)), max_size=8),
       st.integers(0, len(_VALID_ST)), st.integers(0, 1 << 12))  # fmt: skip
def test_safetensors_reader_on_mutated_bytes(
    flips: list[tuple[int, int]], cut: int, extra: int
) -> None:
    blob = bytearray(_VALID_ST)
    for at, value in flips:
        blob[at] = value
    data = bytes(blob[: max(cut, 8)])
    _reads_safetensors(data, len(_VALID_ST) + extra)


@BOUNDED
@given(st.sampled_from(list(_SMALL) + ["__metadata__", "new"]),
       st.sampled_from(["dtype", "shape", "data_offsets", None]), _JSON)  # fmt: skip
def test_safetensors_reader_on_mutated_json(name: str, field: str | None, value: Any) -> None:
    header = json.loads(_VALID_ST[8:])
    entry = header.get(name)
    if field is None or not isinstance(entry, dict):
        header[name] = value
    else:
        entry[field] = value
    raw = json.dumps(header).encode()
    _reads_safetensors(struct.pack("<Q", len(raw)) + raw, 8 + len(raw) + (1 << 16))


@BOUNDED
@given(st.binary(max_size=256))
def test_safetensors_reader_on_random_headers(raw: bytes) -> None:
    _reads_safetensors(struct.pack("<Q", len(raw)) + raw, 8 + len(raw) + 4096)


# --- the GGUF header reader --------------------------------------------------------------------

_GGUF_SPECS = {
    "double_blocks.0.img_attn.qkv.weight": ("Q8_0", (96, 64)),
    "img_in.weight": ("F16", (32, 64)),
    "final_layer.linear.bias": ("F32", (16,)),
}
_GGUF_SPECS |= {
    "enc.blk.0.attn_q.weight": ("F16", (64, 64)),
    "token_embd.weight": ("Q8_0", (8, 64)),
}
_VALID_GGUF, _GGUF_DATA = gguf_header(
    _GGUF_SPECS, {"general.architecture": "flux", "general.file_type": 7,
                  "tokens": ["a", "b", "c"], "general.alignment": 32}
)  # fmt: skip


@BOUNDED
@given(
    st.lists(st.tuples(st.integers(0, len(_VALID_GGUF) - 1), st.integers(0, 255)), max_size=8),
    st.lists(st.tuples(st.integers(0, len(_VALID_GGUF) - 8),
                       st.sampled_from([0, 1, 2, 5, 9, 13, 1 << 31, 1 << 62, (1 << 64) - 1])),
             max_size=3),
    st.integers(0, len(_VALID_GGUF)),
)  # fmt: skip
def test_gguf_reader_on_mutated_headers(
    flips: list[tuple[int, int]], words: list[tuple[int, int]], cut: int
) -> None:
    """Byte flips, u64 fields overwritten with edge values (counts, lengths, dims, offsets),
    truncation: a header or one FormatError, never anything else and never slow."""
    blob = bytearray(_VALID_GGUF)
    for at, value in flips:
        blob[at] = value
    for at, value in words:
        blob[at : at + 8] = struct.pack("<Q", value)
    data = bytes(blob[: max(cut, 4)])
    started = time.perf_counter()
    try:
        header = gguf.parse_header(data, len(_VALID_GGUF) + _GGUF_DATA, "fuzz.gguf")
    except FormatError:
        pass
    else:
        _classifies(header.table())
        cls = _classify_gguf(header)  # what inspect does: llama.cpp names translated first
        assert not cls.evidence or INTERNAL_ERROR not in " ".join(cls.evidence)
    assert time.perf_counter() - started < SLOW


def test_gguf_reader_zero_element_floats_classify() -> None:
    specs = {"double_blocks.0.img_attn.qkv.weight": ("F16", (0, 64)),
             "img_in.weight": ("F32", (0, 64))}  # fmt: skip
    head, size = gguf_header(specs)
    header = gguf.parse_header(head + bytes(size))
    assert [t.numel for t in header.tensors.values()] == [0, 0]
    cls = classify(header.table())
    assert cls.precision is None and math.isfinite(cls.parameters)
    _classifies(header.table())
