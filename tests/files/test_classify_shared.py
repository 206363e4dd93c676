"""A first scan classifies thousands of files from one process: LoRAs trained with one
recipe share their delta modules (names and shapes), and the classifier works them out once.
Sharing must never leak one file's metadata or shapes into another's classification, and a
header read in bulk (columns) must classify exactly as the same tensors given one by one."""

from __future__ import annotations

import json
import random

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


# --- files with the same names: what the names tell is shared, nothing else -----------------


def _redtype(spec: Spec, dtype: str) -> Spec:
    return {name: (dtype, shape) for name, (_, shape) in spec.items()}


def test_a_checkpoint_with_an_earlier_ones_names_keeps_its_own_shapes_and_dtypes() -> None:
    plain = S.sd15_checkpoint("F16")
    inpaint = S.sd15_checkpoint("F32", in_ch=9)  # the same names: conv_in 9 wide, all fp32
    assert list(plain) == list(inpaint)
    forget_names()
    first = classify(TensorTable.from_specs(plain, Container.SAFETENSORS, {}))
    second = classify(TensorTable.from_specs(inpaint, Container.SAFETENSORS, {}))
    assert (first.variant, str(first.precision)) == (None, "fp16")
    assert (second.variant, str(second.precision)) == ("inpaint", "fp32")
    assert second == _fresh(inpaint, {})


def test_a_lora_with_the_names_of_an_earlier_one_keeps_its_own_rank_and_precision() -> None:
    first_spec = S.loha_sd15(rank=8)
    second_spec = _redtype(S.loha_sd15(rank=4), "BF16")
    # The parts no rule measures (the w1_a, w2_* factors, alpha) differ too.
    second_spec = {
        name: (dtype, (1,) if name.endswith(".alpha") else shape)
        for name, (dtype, shape) in second_spec.items()
    }
    assert list(first_spec) == list(second_spec)
    forget_names()
    first = classify(TensorTable.from_specs(first_spec, Container.SAFETENSORS, {}))
    second = classify(TensorTable.from_specs(second_spec, Container.SAFETENSORS, {}))
    assert first.lora is not None and second.lora is not None
    assert (first.lora.rank, str(first.precision)) == (8, "fp16")
    assert (second.lora.rank, str(second.precision)) == (4, "bf16")
    assert second == _fresh(second_spec, {})


def test_a_subtree_of_shared_names_reads_the_file_it_belongs_to() -> None:
    # Unwrapped (state_dict.*) checkpoints: the subtree's rows are shared, the shapes not.
    sd1 = {f"state_dict.{k}": v for k, v in S.sd15_checkpoint("F16").items()}
    ip2p = {f"state_dict.{k}": v for k, v in S.sd15_checkpoint("F16", in_ch=8).items()}
    forget_names()
    classify(TensorTable.from_specs(sd1, Container.PICKLE_ZIP, {}))
    got = classify(TensorTable.from_specs(ip2p, Container.PICKLE_ZIP, {}))
    assert (got.kind, got.base, got.variant) == (Kind.CHECKPOINT, Base.SD1, "instruct-pix2pix")
    assert got == _fresh(ip2p, {})


# --- elements by dtype against a tensor-by-tensor count -------------------------------------

_SKIPPED = {"betas", "alphas_cumprod", "logvar", "scaled_fp8", "v_pred"}


def _by_hand(spec: Spec) -> dict[str, int]:
    """The precision vote's elements per dtype, one tensor at a time (classify.md 3), the
    dtypes in the order of their first counted tensor."""
    out: dict[str, int] = {}
    for name, (dtype, shape) in spec.items():
        if not shape or name in _SKIPPED or name.endswith("position_ids"):
            continue
        n = 1
        for d in shape:
            n *= d
        if n:
            out[dtype] = out.get(dtype, 0) + n
    return out


def _random_spec(rng: random.Random) -> Spec:
    names = [f"m.{i}.w" for i in range(rng.randrange(1, 40))]
    names += rng.sample([*_SKIPPED, "x.position_ids", "position_ids"], rng.randrange(0, 3))
    rng.shuffle(names)
    dtypes = rng.sample(["F16", "F32", "BF16", "I64", "U8"], rng.randrange(1, 4))
    spec: Spec = {}
    for name in names:
        shape = rng.choice([(), (0,), (1,), (3, 0), (4, 5), (7,), (2, 3, 1, 1)])
        spec[name] = (rng.choice(dtypes), shape)
    return spec


def test_elements_by_dtype_agree_with_a_tensor_by_tensor_count() -> None:
    from sdlib.files._signatures import Keys
    from sdlib.files._traits import _elements_by_dtype

    rng = random.Random(7)
    for _ in range(400):
        spec = _random_spec(rng)
        whole = Keys.of(TensorTable.from_specs(spec).tensors)
        got = _elements_by_dtype(whole)
        assert list(got.items()) == list(_by_hand(spec).items()), spec
        # A subtree (an unwrapped pickle's state_dict) holds its names in sorted order.
        wrapped = {"other.x": ("F64", (3,)), **{f"state_dict.{k}": v for k, v in spec.items()}}
        sub = Keys.of(TensorTable.from_specs(wrapped).tensors).sub("state_dict.")
        got = _elements_by_dtype(sub)
        assert list(got.items()) == list(_by_hand(dict(sorted(spec.items()))).items()), spec
