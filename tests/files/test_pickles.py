"""Legitimate pickle files: verdicts, tensor tables, and that nothing named is ever imported."""

from __future__ import annotations

import io
import struct
import sys
from pathlib import Path

import pytest

from sdlib.errors import FormatError
from sdlib.files.pickles import (
    PickleScan,
    open_pickle,
    open_pickle_bytes,
    read_table,
    scan_bytes,
    scan_file,
)
from sdlib.taxonomy import Container, Verdict
from tests.support.pickles import (
    Asm,
    Call,
    Global,
    Obj,
    StateDict,
    Tensor,
    dump,
    f32,
    hypernetwork,
    lightning_checkpoint,
    ramp,
    ti_embedding,
    torch_legacy,
    torch_zip,
    zip_bytes,
)

torch = pytest.importorskip("torch")


def _write(tmp_path: Path, data: bytes, name: str = "model.pt") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _torch_save(obj: object, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, **kwargs)
    return buf.getvalue()


# --- torch.save output (H1, H3, H8, H9, H10) -------------------------------------------------


def _all_dtypes() -> dict[str, object]:
    g = torch.Generator().manual_seed(0)
    base = torch.randn(3, 4, generator=g)
    return {
        "f32": base,
        "f16": base.half(),
        "bf16": base.bfloat16(),
        "f64": base.double(),
        "i64": torch.arange(5),
        "i8": torch.arange(-3, 3, dtype=torch.int8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 3),
        "transposed": base.t(),
        "slice": base[1:, 2:],
        "tied": base,
        "f8": base.to(torch.float8_e4m3fn),
    }


EXPECTED_DTYPES = {
    "f32": "F32",
    "f16": "F16",
    "bf16": "BF16",
    "f64": "F64",
    "i64": "I64",
    "i8": "I8",
    "bool": "BOOL",
    "scalar": "F32",
    "f8": "F8_E4M3",
}


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_torch_save_state_dict_is_safe_and_its_table_matches(tmp_path: Path, legacy: bool) -> None:
    tensors = _all_dtypes()
    if legacy:
        tensors.pop("f8")  # the legacy format predates float8
    module = torch.nn.Linear(4, 3)
    sd = module.state_dict()  # an OrderedDict with torch's _metadata BUILD
    sd.update(tensors)
    path = _write(tmp_path, _torch_save(sd, _use_new_zipfile_serialization=not legacy))
    scan = scan_file(path)
    assert scan.verdict is Verdict.SAFE, scan.findings
    assert scan.container is (Container.PICKLE_LEGACY if legacy else Container.PICKLE_ZIP)
    table = read_table(path)
    for name, value in sd.items():
        info = table.get(name)
        assert info is not None, name
        assert info.shape == tuple(value.shape)
        assert info.stride == tuple(value.stride())
        assert info.storage_offset == value.storage_offset()
        if name in EXPECTED_DTYPES:
            assert info.dtype == EXPECTED_DTYPES[name]
    assert table.get("tied").storage_key == table.get("f32").storage_key  # type: ignore[union-attr]


def test_root_named_after_the_file_without_byteorder(tmp_path: Path) -> None:
    data = torch_zip(StateDict({"w": Tensor(ramp(4), "F32", (4,))}), root="mymodel", byteorder=None)
    loaded = open_pickle(_write(tmp_path, data))
    assert loaded.scan.verdict is Verdict.SAFE
    assert loaded.table.get("w").storage_key == "mymodel/data/0"  # type: ignore[union-attr]


def test_big_endian_archive_is_read(tmp_path: Path) -> None:
    data = torch_zip(
        StateDict({"w": Tensor(f32([1, 2]), "F32", (2,))}),
        byteorder="big",
        storages={"0": struct.pack(">2f", 1, 2)},
    )
    loaded = open_pickle(_write(tmp_path, data))
    assert loaded.scan.verdict is Verdict.SAFE
    assert loaded.storages["archive/data/0"].big_endian


# --- SD-shaped files (H4-H7) -----------------------------------------------------------------


def test_lightning_checkpoint_is_suspicious_and_nothing_is_imported(tmp_path: Path) -> None:
    ckpt = lightning_checkpoint(
        {"model.diffusion_model.out.weight": Tensor(ramp(4), "F32", (2, 2))}
    )
    before = set(sys.modules)
    loaded = open_pickle(_write(tmp_path, torch_zip(ckpt), "sd.ckpt"))
    assert loaded.scan.verdict is Verdict.SUSPICIOUS
    flagged = {f.qualname for f in loaded.scan.findings}
    assert flagged == {
        "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint",
        "argparse.Namespace",
    }
    assert "numpy.core.multiarray.scalar" in loaded.scan.globals
    assert "_codecs.encode" in loaded.scan.globals
    assert not any(m.startswith(("pytorch_lightning", "numpy")) for m in set(sys.modules) - before)
    # The table is the unwrapped state dict; training state stays out of it.
    assert list(loaded.table.tensors) == ["model.diffusion_model.out.weight"]
    assert loaded.table.metadata["global_step"] == "470000"


def test_a_class_with_import_side_effects_is_never_imported(tmp_path: Path) -> None:
    sentinel = tmp_path / "IMPORTED"
    (tmp_path / "sdlib_side_effect_mod.py").write_text(
        f"open({str(sentinel)!r}, 'w').close()\nclass Thing:\n    pass\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        obj = {
            "cfg": Obj(Global("sdlib_side_effect_mod", "Thing"), {"a": 1}),
            "w": Tensor(ramp(2), "F32", (2,)),
        }
        scan = scan_file(_write(tmp_path, torch_zip(obj)))
    finally:
        sys.path.remove(str(tmp_path))
    assert scan.verdict is Verdict.SUSPICIOUS  # instantiated unknown class: reported, not run
    assert not sentinel.exists() and "sdlib_side_effect_mod" not in sys.modules


def test_calling_an_unknown_callable_is_unsafe(tmp_path: Path) -> None:
    obj = {"cfg": Call(Global("somepkg.config", "make"), ("x",))}
    scan = scan_bytes(torch_zip(obj))
    assert scan.verdict is Verdict.UNSAFE
    assert any(f.opcode == "REDUCE" and f.qualname == "somepkg.config.make" for f in scan.findings)


@pytest.mark.parametrize("parameter_dict", [False, True], ids=["dict", "ParameterDict"])
def test_textual_inversion_layouts(parameter_dict: bool) -> None:
    loaded = open_pickle_bytes(torch_zip(ti_embedding(2, 768, parameter_dict=parameter_dict)))
    assert loaded.scan.verdict is Verdict.SAFE
    info = loaded.table.get("string_to_param.*")
    assert info is not None and info.shape == (2, 768) and info.dtype == "F32"
    assert loaded.table.metadata["name"] == "bad-thing"
    assert loaded.table.metadata["string_to_token"] == '{"*": 265}'


def test_hypernetwork_table_uses_int_keys_and_pair_indices() -> None:
    loaded = open_pickle_bytes(torch_zip(hypernetwork((768, 1024, 320), 2)))
    assert loaded.scan.verdict is Verdict.SAFE
    names = set(loaded.table.tensors)
    assert {
        "768.0.linear.0.weight",
        "768.1.linear.1.bias",
        "1024.0.linear.0.weight",
        "320.1.linear.1.weight",
    } <= names
    assert loaded.table.tensors["768.0.linear.0.weight"].shape == (1536, 768)
    assert loaded.table.metadata["layer_structure"] == "[1, 2, 1]"


def test_lora_flat_dict_and_parameter_list() -> None:
    flat = StateDict(
        {
            "lora_unet_down.lora_down.weight": Tensor(ramp(8)[:16], "BF16", (4, 2)),
            "lora_unet_down.alpha": Tensor(f32([4.0]), "F32", ()),
        }
    )
    loaded = open_pickle_bytes(torch_zip(flat))
    assert [(i.name, i.dtype, i.shape) for i in loaded.table] == [
        ("lora_unet_down.lora_down.weight", "BF16", (4, 2)),
        ("lora_unet_down.alpha", "F32", ()),
    ]
    params = [
        Tensor(ramp(6), "F32", (3, 2), param=True),
        Tensor(ramp(6), "F32", (2, 3), param=True),
    ]
    listed = open_pickle_bytes(torch_zip(params))
    assert [(i.name, i.shape) for i in listed.table] == [("0", (3, 2)), ("1", (2, 3))]


def test_numpy_only_plain_pickle_is_safe() -> None:
    arr = Call(
        Global("numpy.core.multiarray", "_reconstruct"), (Global("numpy", "ndarray"), (0,), b"b")
    )
    data, _ = dump({"words": ["a", "b"], "arr": arr})
    scan = scan_bytes(data)
    assert scan.verdict is Verdict.SAFE and scan.container is Container.PICKLE


def test_legacy_file_written_by_hand(tmp_path: Path) -> None:
    data = torch_legacy({"state_dict": StateDict({"w": Tensor(ramp(4), "F32", (2, 2))})})
    loaded = open_pickle(_write(tmp_path, data))
    assert loaded.scan.container is Container.PICKLE_LEGACY
    assert loaded.scan.entries == ("magic", "protocol", "sys_info", "main", "storage_keys")
    storage = loaded.storages["0"]
    assert data[storage.offset : storage.offset + storage.nbytes] == ramp(4)


# --- refusals that are not about code ----------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x89PNG\r\n\x1a\n",
        b"version https://git-lfs.github.com/spec/v1\n",
        b"cmod\n\xf8\n",
        b"\x80\x02]q\x00(K\x01",
    ],
    ids=["empty", "png", "lfs-pointer", "bad-utf8-global", "truncated"],
)
def test_not_a_pickle_is_a_format_error(data: bytes) -> None:
    with pytest.raises(FormatError):
        scan_bytes(data)


def test_zip_without_pickles_is_a_format_error() -> None:
    with pytest.raises(FormatError):
        scan_bytes(zip_bytes([("readme.txt", b"hello")]))


def test_scan_to_dict_is_json_ready() -> None:
    scan = scan_bytes(
        Asm().proto(2).global_("posix", "system").str_("id").op("TUPLE1").op("REDUCE").stop()
    )
    data = scan.to_dict()
    assert data["verdict"] == "unsafe" and data["container"] == "pickle"
    findings = data["findings"]
    assert isinstance(findings, list) and findings[0]["global"] == "posix.system"
    assert isinstance(scan, PickleScan) and scan.unsafe


def test_table_of_an_unsafe_file_is_still_readable(tmp_path: Path) -> None:
    """inspect shows what an unsafe file holds: reading the table runs nothing."""
    evil = Call(Global("posix", "system"), ("true",))
    path = _write(tmp_path, torch_zip({"w": Tensor(ramp(2), "F32", (2,)), "x": evil}))
    assert scan_file(path).verdict is Verdict.UNSAFE
    assert list(read_table(path).tensors) == ["w"]
