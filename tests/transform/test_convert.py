"""``convert_file``: values equal the source (checked against torch on our own fixtures), casts
round like torch, layouts A1111 loads, pruning, metadata, output rules and failure cleanup."""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
from pathlib import Path
from typing import Any

import pytest

from sdlib.errors import FormatError, SdlibError, UnsafeFileError, UsageError
from sdlib.transform._stwriter import SafetensorsWriter
from sdlib.transform.convert import ConvertProgress, convert_file, default_output
from tests.support.pickles import (
    Asm,
    StateDict,
    Tensor,
    call_pickle,
    dump,
    f32,
    hypernetwork,
    lightning_checkpoint,
    ramp,
    shell_touch,
    ti_embedding,
    torch_legacy,
    torch_zip,
)

torch = pytest.importorskip("torch")
st_torch = pytest.importorskip("safetensors.torch")


def _fixture_state() -> dict[str, object]:
    g = torch.Generator().manual_seed(1)
    base = torch.randn(8, 6, generator=g) * 1000  # large values exercise fp16 rounding/overflow
    base[0, 0] = float("nan")
    base[0, 1] = 1e6  # overflows fp16 to inf, as torch does
    return {
        "f32": base,
        "f16": base.half(),
        "bf16": base.bfloat16(),
        "f64": base.double(),
        "i64": torch.arange(7),
        "bool": torch.tensor([True, False]),
        "scalar": torch.tensor(3.25),
        "empty": torch.zeros(0, 4),
        "transposed": base.t(),
        "slice": base[2:5, 1:4],
        "strided": base[::2, ::3],
        "tied": base,
        "f8": base.clamp(-400, 400).to(torch.float8_e5m2),
    }


def _save(path: Path, obj: object, legacy: bool = False) -> Path:
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path


def _expected(value: object, dtype: str) -> object:
    if dtype == "fp16" and value.is_floating_point() and value.dtype.itemsize >= 2:  # type: ignore[attr-defined]
        return value.half()  # type: ignore[attr-defined]
    if dtype == "bf16" and value.is_floating_point() and value.dtype.itemsize >= 2:  # type: ignore[attr-defined]
        return value.bfloat16()  # type: ignore[attr-defined]
    return value


def _same(a: Any, b: Any) -> bool:
    """Bit-identical, except that any NaN equals any NaN (torch's own fp32->bf16 NaN bits
    differ between its vectorised and scalar paths; we write the canonical 0x7FC0)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    a, b = a.reshape(-1), b.reshape(-1)
    if a.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        nan = torch.isnan(a)
        if not torch.equal(nan, torch.isnan(b)):
            return False
        a, b = a[~nan], b[~nan]
    return bool(torch.equal(a.view(torch.uint8), b.view(torch.uint8)))


@pytest.mark.parametrize("dtype", ["keep", "fp16", "bf16"])
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_values_match_torch_bit_for_bit(tmp_path: Path, dtype: str, legacy: bool) -> None:
    state = _fixture_state()
    if legacy:
        state.pop("f8")
    src = _save(tmp_path / "model.pt", state, legacy)
    reference = torch.load(src, weights_only=True)  # our own benign fixture
    result = convert_file(src, dtype=dtype, allow_nan=True)  # NaN and Inf on purpose
    out = st_torch.load_file(str(result.output))
    assert list(out) == list(reference)
    for name, value in reference.items():
        assert _same(out[name], _expected(value, dtype)), name
    # Every tensor torch says holds NaN or Inf is reported, with torch's counts.
    expected = {}
    for name, value in reference.items():
        want = _expected(value, dtype)
        if want.is_floating_point() and want.dtype.itemsize >= 2:  # type: ignore[attr-defined]
            wide = want.double()  # type: ignore[attr-defined]
            nan, inf = int(wide.isnan().sum()), int(wide.isinf().sum())
            if nan or inf:
                expected[name] = (nan, inf)
    assert {f.name: (f.nan, f.inf) for f in result.nonfinite} == expected
    assert "f32" in expected and "empty" not in expected


def test_lightning_checkpoint_converts_its_state_dict(tmp_path: Path) -> None:
    state = {
        "model.diffusion_model.a.weight": Tensor(ramp(6), "F32", (2, 3)),
        "cond_stage_model.b": Tensor(ramp(3, 1.0), "F32", (3,)),
    }
    src = tmp_path / "sd.ckpt"
    src.write_bytes(torch_zip(lightning_checkpoint(state)))
    result = convert_file(src)
    assert result.scan is not None and str(result.scan.verdict) == "suspicious"
    out = st_torch.load_file(str(result.output))
    assert list(out) == list(state)
    assert out["model.diffusion_model.a.weight"].flatten().tolist() == [i * 0.25 for i in range(6)]
    assert result.metadata["global_step"] == "470000" and result.metadata["epoch"] == "6"
    assert "optimizer_states" in result.dropped and "callbacks" in result.dropped


def _ema_checkpoint() -> dict[str, object]:
    state: dict[str, Tensor] = {
        "model.diffusion_model.input_blocks.0.0.weight": Tensor(f32([1, 2]), "F32", (2,)),
        "model.diffusion_model.out.2.bias": Tensor(f32([3]), "F32", (1,)),
        "model_ema.diffusion_modelinput_blocks00weight": Tensor(f32([10, 20]), "F32", (2,)),
        "model_ema.diffusion_modelout2bias": Tensor(f32([30]), "F32", (1,)),
        "model_ema.decay": Tensor(f32([0.9999]), "F32", ()),
        "model_ema.num_updates": Tensor(struct.pack("<q", 5), "I64", ()),
        "first_stage_model.decoder.conv.weight": Tensor(f32([7]), "F32", (1,)),
        "betas": Tensor(f32([0.1, 0.2]), "F32", (2,)),
        "alphas_cumprod": Tensor(f32([0.9, 0.8]), "F32", (2,)),
        "logvar": Tensor(f32([0, 0]), "F32", (2,)),
    }
    return {"state_dict": StateDict(state), "global_step": 1}


def test_prune_keeps_the_ema_unet_and_drops_training_state(tmp_path: Path) -> None:
    src = tmp_path / "full.ckpt"
    src.write_bytes(torch_zip(_ema_checkpoint()))
    result = convert_file(src, dtype="fp16", prune=True)
    assert result.output.name == "full.pruned.fp16.safetensors"
    out = st_torch.load_file(str(result.output))
    assert sorted(out) == [
        "first_stage_model.decoder.conv.weight",
        "model.diffusion_model.input_blocks.0.0.weight",
        "model.diffusion_model.out.2.bias",
    ]
    assert out["model.diffusion_model.input_blocks.0.0.weight"].tolist() == [10, 20]
    assert out["model.diffusion_model.out.2.bias"].dtype == torch.float16
    assert {"betas", "alphas_cumprod", "logvar", "model_ema.decay"} <= set(result.dropped)


def test_without_prune_everything_in_the_state_dict_is_kept(tmp_path: Path) -> None:
    src = tmp_path / "full.ckpt"
    src.write_bytes(torch_zip(_ema_checkpoint()))
    out = st_torch.load_file(str(convert_file(src).output))
    assert len(out) == 10 and out["model.diffusion_model.out.2.bias"].tolist() == [3]


@pytest.mark.parametrize("parameter_dict", [False, True])
def test_a1111_embedding_becomes_emb_params(tmp_path: Path, parameter_dict: bool) -> None:
    src = tmp_path / "bad-thing.pt"
    src.write_bytes(torch_zip(ti_embedding(3, 768, parameter_dict=parameter_dict)))
    result = convert_file(src)
    assert result.layout == "embedding"
    with open(result.output, "rb") as fh:
        header = json.loads(fh.read(struct.unpack("<Q", fh.read(8))[0]))
    out = st_torch.load_file(str(result.output))
    assert list(out) == ["emb_params"] and tuple(out["emb_params"].shape) == (3, 768)
    meta = header["__metadata__"]
    assert meta["name"] == "bad-thing" and meta["step"] == "1875"
    assert meta["string_to_token"] == '{"*": 265}'


def test_sdxl_embedding_keeps_clip_l_and_clip_g(tmp_path: Path) -> None:
    src = tmp_path / "pony.pt"
    src.write_bytes(
        torch_zip(
            {
                "clip_g": Tensor(ramp(2 * 1280), "F32", (2, 1280)),
                "clip_l": Tensor(ramp(2 * 768), "F32", (2, 768)),
            }
        )
    )
    result = convert_file(src)
    assert result.layout == "embedding"
    assert set(st_torch.load_file(str(result.output))) == {"clip_g", "clip_l"}


def test_hypernetwork_is_refused_with_a_clear_reason(tmp_path: Path) -> None:
    src = tmp_path / "anime.pt"
    src.write_bytes(torch_zip(hypernetwork((768,), 1)))
    with pytest.raises(FormatError, match="hypernetwork"):
        convert_file(src)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["anime.pt"]


def test_unsafe_input_writes_nothing(tmp_path: Path) -> None:
    sentinel = tmp_path / "PWNED"
    src = tmp_path / "evil.ckpt"
    src.write_bytes(
        torch_zip(None, pickle_bytes=call_pickle("posix", "system", shell_touch(sentinel)))
    )
    with pytest.raises(UnsafeFileError) as info:
        convert_file(src)
    assert info.value.exit_code == 3 and any("posix.system" in f for f in info.value.findings)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.ckpt"]


def test_metadata_records_source_hash_and_options(tmp_path: Path) -> None:
    src = _save(tmp_path / "m.pt", {"w": torch.ones(3)})
    result = convert_file(src, dtype="bf16")
    with open(result.output, "rb") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
        meta = json.loads(fh.read(n))["__metadata__"]
    assert meta["sdlib.source"] == "m.pt"
    assert meta["sdlib.source_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert json.loads(meta["sdlib.convert"])["dtype"] == "bf16" and meta["format"] == "pt"
    assert result.source_sha256 == meta["sdlib.source_sha256"]


def test_safetensors_input_for_dtype_and_prune(tmp_path: Path) -> None:
    src = tmp_path / "m.safetensors"
    st_torch.save_file(
        {"a": torch.randn(4, 4), "betas": torch.ones(2), "i": torch.arange(3)},
        str(src),
        metadata={"ss_network_dim": "4"},
    )
    result = convert_file(src, dtype="fp16", prune=True)
    out = st_torch.load_file(str(result.output))
    assert (
        set(out) == {"a", "i"} and out["a"].dtype == torch.float16 and out["i"].dtype == torch.int64
    )
    assert torch.equal(out["a"], st_torch.load_file(str(src))["a"].half())
    assert result.metadata["ss_network_dim"] == "4"
    with pytest.raises(UsageError, match="already safetensors"):
        convert_file(src)


def test_output_rules(tmp_path: Path) -> None:
    src = _save(tmp_path / "model.ckpt", {"w": torch.ones(2)})
    assert default_output(src) == tmp_path / "model.safetensors"
    assert default_output(src, "fp16") == tmp_path / "model.fp16.safetensors"
    first = convert_file(src)
    with pytest.raises(UsageError, match="overwrite"):
        convert_file(src)
    assert convert_file(src, overwrite=True).output == first.output
    with pytest.raises(UsageError, match="replace the input"):
        convert_file(first.output, first.output, dtype="fp16", overwrite=True)
    link = tmp_path / "link.safetensors"
    os.link(first.output, link)
    with pytest.raises(UsageError, match="replace the input"):
        convert_file(link, first.output, dtype="fp16", overwrite=True)
    with pytest.raises(UsageError):
        convert_file(src, tmp_path / "out.bin")


def test_failed_verification_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _save(tmp_path / "m.pt", {"w": torch.arange(16, dtype=torch.float32)})
    original = SafetensorsWriter.write

    def corrupt(self: object, data: memoryview) -> None:
        original(self, bytes(reversed(bytes(data))))  # type: ignore[arg-type]

    monkeypatch.setattr(SafetensorsWriter, "write", corrupt)
    with pytest.raises(SdlibError, match="verification failed"):
        convert_file(src)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


def test_interrupt_removes_the_temporary_file(tmp_path: Path) -> None:
    src = _save(tmp_path / "m.pt", {"w": torch.zeros(1 << 20)})

    def stop(event: ConvertProgress) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        convert_file(src, progress=stop)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


def test_progress_reports_write_and_verify(tmp_path: Path) -> None:
    src = _save(tmp_path / "m.pt", {"a": torch.zeros(100), "b": torch.ones(50)})
    events: list[ConvertProgress] = []
    convert_file(src, progress=events.append)
    assert {e.stage for e in events} == {"write", "verify"}
    assert events[-1].done == events[-1].total == 600


def test_big_endian_and_legacy_hand_written_sources(tmp_path: Path) -> None:
    be = tmp_path / "be.pt"
    be.write_bytes(
        torch_zip(
            StateDict({"w": Tensor(f32([1.5, -2]), "F32", (2,))}),
            byteorder="big",
            storages={"0": struct.pack(">2f", 1.5, -2)},
        )
    )
    assert st_torch.load_file(str(convert_file(be).output))["w"].tolist() == [1.5, -2]
    legacy = tmp_path / "legacy.pt"
    legacy.write_bytes(
        torch_legacy({"state_dict": StateDict({"w": Tensor(f32([4, 5]), "F32", (2,))})})
    )
    assert torch.load(io.BytesIO(legacy.read_bytes()), weights_only=True)["state_dict"][
        "w"
    ].tolist() == [4, 5]
    assert st_torch.load_file(str(convert_file(legacy).output))["w"].tolist() == [4, 5]


def test_quantized_and_conj_tensors_are_refused(tmp_path: Path) -> None:
    src = _save(tmp_path / "c.pt", {"c": torch.randn(3, dtype=torch.complex64).conj()})
    with pytest.raises(FormatError):
        convert_file(src)


@pytest.mark.parametrize("shape", ["shared", "cyclic"])
def test_shared_or_cyclic_containers_are_refused(tmp_path: Path, shape: str) -> None:
    inner = dump({"w": Tensor(f32([1]), "F32", (1,))})[0][2:-1]  # leaves the dict on the stack
    a = Asm().proto(2).op("EMPTY_DICT").op("MARK").str_("a").raw(inner).op("BINPUT", 250)
    if shape == "shared":
        a.str_("b").op("BINGET", 250)
    else:
        a.str_("loop").op("EMPTY_LIST").op("BINPUT", 251).op("MARK").op("BINGET", 251).op("APPENDS")
    src = tmp_path / "m.pt"
    src.write_bytes(torch_zip(None, pickle_bytes=a.op("SETITEMS").stop(), storages={"0": f32([1])}))
    with pytest.raises(FormatError, match="reached twice"):
        convert_file(src)


def test_corrupt_storage_crc_is_refused(tmp_path: Path) -> None:
    data = bytearray(torch_zip(StateDict({"w": Tensor(f32([1, 2]), "F32", (2,))})))
    at = data.index(f32([1, 2]))
    data[at] ^= 1  # the bytes change, the recorded CRC does not
    src = tmp_path / "m.pt"
    src.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="CRC"):
        convert_file(src)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


def test_reserved_tensor_name_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "m.pt"
    src.write_bytes(torch_zip(StateDict({"__metadata__": Tensor(f32([1]), "F32", (1,))})))
    with pytest.raises(FormatError, match="__metadata__"):
        convert_file(src)
