"""llama.cpp tensor names -> the names :mod:`sdlib.files.classify` already knows.

ComfyUI-GGUF (city96) stores diffusion models under their original state-dict names
(``double_blocks.0.img_attn.qkv.weight``, ``joint_blocks.…``, ``input_blocks.…``), which
the classifier reads as they are. Text encoders converted with llama.cpp are renamed: T5
becomes ``enc.blk.N.attn_q.weight``, ``token_embd.weight``, ``enc.output_norm.weight``
(classify.md 7.6). ComfyUI-GGUF's loader maps those back to Hugging Face T5 names
(loader.py ``T5_SD_MAP``); so do we, so one T5 signature serves both containers.

Only T5 is translated. llama.cpp's decoder-only names (``blk.N.attn_q.weight``: Llama,
Qwen, Gemma LLMs) are left alone: sdlib has no signature for LLMs and must not guess one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace

from sdlib.files.tensors import TensorInfo

__all__ = ["classifier_names"]

_T5_BLOCK = re.compile(r"^enc\.blk\.(\d+)\.(\w+)\.(weight|bias)$")
#: llama.cpp T5 block part -> Hugging Face ``encoder.block.N.`` suffix.
_T5_PARTS = {
    "attn_q": "layer.0.SelfAttention.q",
    "attn_k": "layer.0.SelfAttention.k",
    "attn_v": "layer.0.SelfAttention.v",
    "attn_o": "layer.0.SelfAttention.o",
    "attn_rel_b": "layer.0.SelfAttention.relative_attention_bias",
    "attn_norm": "layer.0.layer_norm",
    "ffn_gate": "layer.1.DenseReluDense.wi_0",
    "ffn_up": "layer.1.DenseReluDense.wi_1",  # plain ``wi`` in an ungated (v1.0) T5
    "ffn_down": "layer.1.DenseReluDense.wo",
    "ffn_norm": "layer.1.layer_norm",
}
_T5_TOP = {
    "token_embd.weight": "shared.weight",
    "enc.output_norm.weight": "encoder.final_layer_norm.weight",
}


def classifier_names(
    tensors: Mapping[str, TensorInfo],
) -> tuple[dict[str, TensorInfo], str | None]:
    """``tensors`` under names the classifier knows, and a line of evidence if renamed."""
    matches = {n: m for n in tensors if (m := _T5_BLOCK.match(n)) and m.group(2) in _T5_PARTS}
    if not matches:
        return dict(tensors), None
    gated = {m.group(1) for m in matches.values() if m.group(2) == "ffn_gate"}
    out: dict[str, TensorInfo] = {}
    for name, info in tensors.items():
        m = matches.get(name)
        if m is not None:
            block, part, leaf = m.groups()
            suffix = _T5_PARTS[part]
            if part == "ffn_up" and block not in gated:
                suffix = "layer.1.DenseReluDense.wi"
            new = f"encoder.block.{block}.{suffix}.{leaf}"
        else:
            new = _T5_TOP.get(name, name)
        out[new] = replace(info, name=new) if new != name else info
    line = (
        f"llama.cpp T5 names ({len(matches):,} enc.blk.N.* tensors) read as Hugging Face "
        "T5 names (encoder.block.N.*), as ComfyUI-GGUF loads them"
    )
    return out, line
