"""Strings a pickle can hold but UTF-8 cannot (lone surrogates) never crash a write.

Python's unpickler decodes BINUNICODE with ``surrogatepass``, so a ``.ckpt`` can name a
tensor ``"x\\ud800"``; a safetensors header is UTF-8 JSON and cannot hold that name.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from sdlib.errors import FormatError
from sdlib.transform._stwriter import OutTensor, header_bytes
from tests.support.cli import run_sdlib
from tests.support.pickles import Tensor, dump, ramp, torch_zip

# U+D800 and U+DCFF as pickle writes them with surrogatepass: three bytes each.
_D800 = b"\xed\xa0\x80"
_DCFF = b"\xed\xb3\xbf"


def _ckpt_with(placeholder: str, raw: bytes, obj: dict[str, object]) -> bytes:
    """A torch zip whose pickle has ``raw`` where the 3-character ``placeholder`` was."""
    data, _ = dump(obj)
    assert data.count(placeholder.encode()) == 1
    return torch_zip(obj, pickle_bytes=data.replace(placeholder.encode(), raw))


@pytest.mark.slow  # runs python -m sdlib in a subprocess
def test_tensor_name_with_a_lone_surrogate_is_refused_in_one_line(tmp_path: Path) -> None:
    src = tmp_path / "model.ckpt"
    obj = {"state_dict": {"model.xQQQ": Tensor(ramp(4), "F32", (4,))}}
    src.write_bytes(_ckpt_with("QQQ", _D800, obj))
    out = tmp_path / "model.safetensors"
    done = run_sdlib("convert", src, "-o", out)
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "not valid Unicode" in done.stderr and "\\ud800" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.ckpt"]  # nothing half-written


def test_metadata_with_a_lone_surrogate_is_kept_as_a_replacement_character() -> None:
    raw = header_bytes([OutTensor("w", "F32", (2,))], {"title": "bad\udcff", "k\ud800": "v"})
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length].decode("utf-8"))  # strict UTF-8: must decode
    assert header["__metadata__"] == {"title": "bad\ufffd", "k\ufffd": "v"}
    assert header["w"] == {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


def test_header_bytes_refuses_a_surrogate_tensor_name_with_format_error() -> None:
    with pytest.raises(FormatError, match="not valid Unicode"):
        header_bytes([OutTensor("a\udcffb", "F32", (1,))], {})


@pytest.mark.slow  # runs python -m sdlib in a subprocess
def test_a_surrogate_in_a_pickled_string_value_still_converts(tmp_path: Path) -> None:
    src = tmp_path / "model.ckpt"
    obj = {"state_dict": {"model.x": Tensor(ramp(4), "F32", (4,))}, "name": "badRRR"}
    src.write_bytes(_ckpt_with("RRR", _DCFF, obj))
    out = tmp_path / "model.safetensors"
    done = run_sdlib("convert", src, "-o", out)
    assert done.returncode == 0, done.stderr
    (length,) = struct.unpack("<Q", out.read_bytes()[:8])
    header = json.loads(out.read_bytes()[8 : 8 + length].decode("utf-8"))
    assert header["model.x"]["shape"] == [4]
