"""``convert`` of torch archives whose storages are deflated: exact values, bounded memory.

torch.save never compresses, but other zip writers do (the real corpus has one). The storage
is inflated a chunk at a time, never past its declared size, and checked against its size
and CRC; the expected values are the numbers written here, read back with numpy.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from sdlib.errors import FormatError
from sdlib.transform.convert import convert_file
from tests.support.pickles import StateDict, Tensor, dump

MIB = 1 << 20


def _archive(tensors: dict[str, Tensor], storages: dict[str, bytes], *, level: int = 6) -> bytes:
    """A torch zip whose storage records are deflated (data.pkl and the rest stored)."""
    pkl = dump(StateDict(tensors))[0]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr(zipfile.ZipInfo("archive/data.pkl", (2020, 1, 1, 0, 0, 0)), pkl)
        zf.writestr(zipfile.ZipInfo("archive/byteorder", (2020, 1, 1, 0, 0, 0)), b"little")
        for key, data in storages.items():
            info = zipfile.ZipInfo(f"archive/data/{key}", (2020, 1, 1, 0, 0, 0))
            zf.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=level)
        zf.writestr(zipfile.ZipInfo("archive/version", (2020, 1, 1, 0, 0, 0)), b"3\n")
    return out.getvalue()


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """A minimal independent reader: header JSON, then raw little-endian arrays."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    dtypes = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8"}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        lo, hi = info["data_offsets"]
        arr = np.frombuffer(raw[8 + n + lo : 8 + n + hi], dtype=dtypes[info["dtype"]])
        out[name] = arr.reshape(info["shape"])
    return out


def test_deflated_storages_convert_exactly_views_and_casts_included(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    # 3 MiB of random float64: incompressible, so the inflater returns pieces that end
    # inside an element at the 1 MiB read boundaries.
    big = rng.standard_normal(3 * MIB // 8)
    small = np.arange(12, dtype="<f4") * 0.5
    tensors = {
        "big": Tensor(b"", "F64", (len(big),), key="0", numel=len(big)),
        "tail": Tensor(b"", "F64", (1000,), key="0", offset=len(big) - 1000, numel=len(big)),
        "small": Tensor(small.tobytes(), "F32", (3, 4), key="1"),
    }
    src = tmp_path / "m.pt"
    src.write_bytes(_archive(tensors, {"0": big.tobytes(), "1": small.tobytes()}))
    out = _read_safetensors(convert_file(src, tmp_path / "keep.safetensors").output)
    np.testing.assert_array_equal(out["big"], big)
    np.testing.assert_array_equal(out["tail"], big[-1000:])
    np.testing.assert_array_equal(out["small"], small.reshape(3, 4))
    half = _read_safetensors(convert_file(src, tmp_path / "half.safetensors", dtype="fp16").output)
    np.testing.assert_array_equal(half["tail"], big[-1000:].astype("<f2"))
    np.testing.assert_array_equal(half["small"], small.reshape(3, 4).astype("<f2"))


@pytest.mark.parametrize("damage", ["crc", "short-stream"])
def test_a_damaged_deflated_storage_is_refused_and_nothing_is_written(
    damage: str, tmp_path: Path
) -> None:
    data = (np.arange(4096, dtype="<f4")).tobytes()
    z = bytearray(_archive({"w": Tensor(data, "F32", (4096,), key="0")}, {"0": data}))
    name = b"archive/data/0"
    cd = z.find(b"PK\x01\x02")
    while z[cd + 46 : cd + 46 + len(name)] != name:
        cd = z.find(b"PK\x01\x02", cd + 1)
    lfh = z.find(b"PK\x03\x04")
    while z[lfh + 30 : lfh + 30 + len(name)] != name:
        lfh = z.find(b"PK\x03\x04", lfh + 1)
    if damage == "crc":
        for at in (lfh + 14, cd + 16):
            z[at : at + 4] = struct.pack("<I", 0xDEADBEEF)
    else:  # the deflate stream ends early: cut its compressed bytes in half
        (csize,) = struct.unpack_from("<I", z, cd + 20)
        start = lfh + 30 + len(name) + struct.unpack_from("<H", z, lfh + 28)[0]
        z[start : start + csize] = z[start : start + csize // 2] + bytes(csize - csize // 2)
    src = tmp_path / "m.pt"
    src.write_bytes(bytes(z))
    with pytest.raises(FormatError):
        convert_file(src, tmp_path / "out.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


@pytest.mark.slow  # writes a 160 MiB output
@pytest.mark.skipif(sys.platform == "win32", reason="resource is POSIX-only")
def test_a_large_deflated_storage_converts_in_bounded_memory(tmp_path: Path) -> None:
    # 160 MiB of float32 from a 4-symbol alphabet deflates about 8:1 (under the bomb ratio);
    # the previous reader inflated it whole (385 MB peak), chunks keep it under 160 MiB.
    block = np.random.default_rng(0).integers(0, 4, size=MIB).astype("<f4").tobytes()
    numel = 40 * MIB
    pkl = dump(StateDict({"w": Tensor(b"", "F32", (numel,), numel=numel)}))[0]
    src = tmp_path / "big.pt"
    with zipfile.ZipFile(src, "w") as zf:
        zf.writestr(zipfile.ZipInfo("archive/data.pkl", (2020, 1, 1, 0, 0, 0)), pkl)
        info = zipfile.ZipInfo("archive/data/0", (2020, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w") as w:
            for _ in range(40):
                w.write(block)
        zf.writestr(zipfile.ZipInfo("archive/version", (2020, 1, 1, 0, 0, 0)), b"3\n")
    out = tmp_path / "out.safetensors"
    code = (
        "import resource, subprocess, sys, json\n"
        "p = subprocess.run([sys.executable, '-m', 'sdlib', 'convert', *sys.argv[1:]],"
        " capture_output=True, text=True)\n"
        "print(json.dumps([p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN)"
        ".ru_maxrss, p.stderr]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(src), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    rc, rss, err = json.loads(done.stdout)
    rss_mib = rss * (1 if sys.platform == "darwin" else 1024) / MIB
    assert rc == 0, err
    assert rss_mib < 160, rss_mib
    with open(out, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        fh.seek(8 + n)
        for _ in range(40):
            assert fh.read(MIB * 4) == block
