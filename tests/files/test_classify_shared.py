"""A first scan classifies thousands of files from one process: LoRAs trained with one
recipe share their delta modules (names and shapes), and the classifier works them out once.
Sharing must never leak one file's metadata or shapes into another's classification, and a
header read in bulk (columns) must classify exactly as the same tensors given one by one."""

from __future__ import annotations

import json

import pytest

from sdlib.demo import specs as S
from sdlib.files import safetensors
from sdlib.files._keys import forget_names
from sdlib.files.classify import Classification, classify
from sdlib.files.tensors import TensorColumns, TensorInfo, TensorTable
from sdlib.taxonomy import Base, Container, Kind

Spec = dict[str, tuple[str, tuple[int, ...]]]


def _fresh(spec: Spec, metadata: dict[str, str]) -> Classification:
    """The classification with nothing remembered from earlier files."""
    forget_names()
    return classify(TensorTable.from_specs(spec, Container.SAFETENSORS, metadata))


def _header(spec: Spec, metadata: dict[str, str]) -> bytes:
    sizes = {"F16": 2, "F32": 4, "BF16": 2, "U8": 1, "I64": 8, "I32": 4, "F64": 8}
    header: dict[str, object] = {"__metadata__": metadata}
    offset = 0
    for name, (dtype, shape) in spec.items():
        n = sizes[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    return json.dumps(header, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({}, {"ss_base_model_version": "sd_v2"}),
        ({"ss_base_model_version": "sdxl_base_v1-0"}, {}),
        ({"ss_network_module": "lycoris.kohya"}, {"software": '{"name": "OneTrainer"}'}),
        ({"ss_network_alpha": "16"}, {"ss_network_alpha": "1"}),
    ],
)
def test_a_second_lora_with_the_same_modules_keeps_its_own_metadata(
    first: dict[str, str], second: dict[str, str]
) -> None:
    spec = S.lora_sd15_kohya()
    want = _fresh(spec, second)
    forget_names()
    classify(TensorTable.from_specs(spec, Container.SAFETENSORS, first))
    got = classify(TensorTable.from_specs(spec, Container.SAFETENSORS, second))
    assert got == want


def test_same_names_other_shapes_are_not_taken_for_the_same_lora() -> None:
    spec = S.lora_sd15_kohya()
    # The same names at another rank, and with 1024-wide cross-attention (an SD2 LoRA).
    other: Spec = {}
    for name, (dtype, shape) in spec.items():
        if len(shape) == 2 and "lora_down" in name:
            width = 1024 if shape[1] == 768 else shape[1]
            shape = (8, width)
        elif len(shape) == 2 and "lora_up" in name:
            shape = (shape[0], 8)
        elif len(shape) == 4 and "lora_down" in name:
            shape = (8, shape[1], *shape[2:])
        elif len(shape) == 4 and "lora_up" in name:
            shape = (shape[0], 8, *shape[2:])
        other[name] = (dtype, shape)
    want = _fresh(other, {})
    assert want.lora is not None and want.lora.rank == 8 and want.base is Base.SD2
    forget_names()
    first = classify(TensorTable.from_specs(spec, Container.SAFETENSORS, {}))
    got = classify(TensorTable.from_specs(other, Container.SAFETENSORS, {}))
    assert first.lora is not None and first.lora.rank != 8 and first.base is Base.SD1
    assert got == want


@pytest.mark.parametrize(
    "name", ["lora_sd15_kohya", "loha_sd15", "sd15_pruned_fp16", "vae_sd", "embedding_sd15"]
)
def test_a_header_read_in_bulk_classifies_as_its_tensors_one_by_one(name: str) -> None:
    spec = S.SPECS[name]()
    metadata = {"ss_base_model_version": "sd_v1"}
    raw = _header(spec, metadata)
    table = safetensors.parse_header(raw, 8 + len(raw) + (1 << 40))
    assert isinstance(table.tensors, TensorColumns)
    one_by_one = TensorTable(dict(table.tensors.items()), Container.SAFETENSORS, metadata)
    assert not isinstance(one_by_one.tensors, TensorColumns)
    assert classify(table) == classify(one_by_one)
    assert classify(table).kind is not Kind.UNKNOWN


def test_columns_give_the_tensor_infos_a_dict_would() -> None:
    infos = [TensorInfo("a", "F16", (2, 3), (0, 12)), TensorInfo("b", "F32", (), (12, 16))]
    columns = TensorColumns({"a": 0, "b": 1}, ["F16", "F32"], [(2, 3), ()], [0, 12], [12, 16])
    assert columns["b"] == infos[1] and "a" in columns and "c" not in columns
    assert list(columns) == ["a", "b"] and len(columns) == 2
    assert list(columns.values()) == infos
    assert columns == {i.name: i for i in infos} and {i.name: i for i in infos} == columns
    assert columns.get("c") is None


def test_names_ending_with_a_suffix_come_in_order_even_when_a_name_holds_a_newline() -> None:
    from sdlib.files._signatures import Keys

    names = ["a.attn2.to_k.weight", "b.attn2.to_k.weight.bias", "attn2.to_k.weight", "x"]
    keys = Keys({n: i for i, n in enumerate(names)}, [(1,)] * 4, ["F16"] * 4, [1] * 4)
    assert keys.ending("attn2.to_k.weight") == ["a.attn2.to_k.weight", "attn2.to_k.weight"]
    assert keys.ending(".attn2.to_k.weight") == ["a.attn2.to_k.weight"]
    odd = Keys({"p\nq.position_ids": 0, "position_ids": 1}, [(1,)] * 2, ["F16"] * 2, [1] * 2)
    assert odd.ending("position_ids") == ["p\nq.position_ids", "position_ids"]
