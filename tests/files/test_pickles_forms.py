"""Every form in which a loader accepts a pickle gets a verdict from ``inspect``, ``scan`` and
``convert``, built here from bytes (nothing is ever unpickled).

The forms are the ones ``pickle.load``, ``torch.load`` and ``numpy.load(allow_pickle=True)``
run: protocols 0-5 with or without PROTO (any opcode may open a stream), concatenated
streams, ``.npy``/``.npz`` object arrays, torch 0.1's tar format, pickles in zips under any
member name and zips inside zips. A hostile form must make ``sdlib inspect`` exit 3, be listed
as ``unsafe-pickle`` by a library scan and be refused by ``sdlib convert`` (exit 3, nothing
written); the benign twin of each form must never exit 3.
"""

from __future__ import annotations

import io
import pickletools
import struct
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from sdlib.cli.convert_cmd import convert_cmd
from sdlib.cli.inspect_cmd import inspect_cmd
from sdlib.files.pickles import scan_file
from sdlib.files.sniff import sniff_bytes
from sdlib.hashcache import HashCache
from sdlib.library.index import Index
from sdlib.library.scan import load_layout, scan
from sdlib.taxonomy import Container, Verdict
from tests.support.pickles import Asm, call_pickle, dump, shell_touch, torch_zip, zip_bytes

Build = Callable[[bytes], bytes]  # payload pickle -> file bytes


def _npy(payload: bytes, version: int = 1) -> bytes:
    """An object-dtype ``.npy`` as numpy writes it: magic, version, header, pickled body."""
    header = b"{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    width = 2 if version == 1 else 4
    header += b" " * (-(len(header) + 7 + width) % 64) + b"\n"
    size = struct.pack("<H" if width == 2 else "<I", len(header))
    return b"\x93NUMPY" + bytes([version, 0]) + size + header + payload


def _tar(members: list[tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _torch_tar(payload: bytes) -> bytes:
    """torch 0.1's format: a tar of sys_info, pickle, storages and tensors members."""
    sys_info = dump({"protocol_version": 1001, "little_endian": True})[0]
    return _tar([("sys_info", sys_info), ("pickle", payload), ("storages", dump([])[0])])


def _safetensors_prefix(payload: bytes) -> bytes:
    """A pickle whose first 9 bytes read as a safetensors length (0x1047) and ``{``: the
    BINFLOAT opcode ``G`` swallows them and POP drops the float; torch.load runs the rest."""
    data = b"G\x10\x00\x00\x00\x00\x00\x00{0" + payload
    return data + b" " * max(0, 8 + 0x1047 - len(data)) + bytes(16)


# Each form: (id, file name, build). The build wraps a payload pickle into the form.
FORMS: list[tuple[str, str, Build]] = [
    ("plain", "m.pt", lambda p: p),
    ("behind-a-safetensors-looking-prefix", "m.ckpt", _safetensors_prefix),
    ("concatenated-after-a-benign-stream", "m.pt", lambda p: dump([1, 2])[0] + p),
    ("npy-object-array-v1", "a.npy", lambda p: _npy(p)),
    ("npy-object-array-v2", "a.npy", lambda p: _npy(p, version=2)),
    ("npz-stored", "a.npz", lambda p: zip_bytes([("x.npy", _npy(p))])),
    ("npz-deflated", "a.npz", lambda p: zip_bytes([("x.npy", _npy(p))], compress=["x.npy"])),
    ("torch-0.1-tar", "m.pt", _torch_tar),
    ("torch-zip-data.pkl", "m.pt", lambda p: torch_zip(None, pickle_bytes=p)),
    ("zip-member-data.txt", "m.pt", lambda p: zip_bytes([("data.txt", p)])),
    ("zip-member-deep-name", "m.zip", lambda p: zip_bytes([("a/b/c/weights", p)])),
    ("zip-member-deflated", "m.pt", lambda p: zip_bytes([("w.bin", p)], compress=["w.bin"])),
    ("zip-in-zip", "m.zip", lambda p: zip_bytes([("in.zip", zip_bytes([("x", p)]))])),
    (
        "zip-in-zip-in-zip",
        "m.zip",
        lambda p: zip_bytes([("a.zip", zip_bytes([("b.zip", zip_bytes([("x.pkl", p)]))]))]),
    ),
    ("npz-in-zip", "m.zip", lambda p: zip_bytes([("in.npz", zip_bytes([("x.npy", _npy(p))]))])),
]


def _hostile_streams(sentinel: Path) -> dict[str, bytes]:
    """``posix.system('touch <sentinel>')`` in every protocol and opening opcode."""
    cmd = shell_touch(sentinel)
    return {
        # Protocol 0: GLOBAL first; protocol-0 UNICODE (V) and STRING (S) first, as in
        # picklescan's malicious11/malicious23, then STACK_GLOBAL (any opcode is accepted
        # whatever the protocol).
        "p0-GLOBAL": call_pickle("posix", "system", cmd, proto=0),
        "p0-V-first": Asm()
        .unicode0("posix")
        .unicode0("system")
        .stack_global()
        .op("MARK")
        .unicode0(cmd)
        .op("TUPLE")
        .op("REDUCE")
        .stop(),
        "p0-S-first": Asm()
        .text_str("posix")
        .text_str("system")
        .stack_global()
        .text_str(cmd)
        .op("TUPLE1")
        .op("REDUCE")
        .stop(),
        "p0-MARK-INST": Asm().op("MARK").text_str(cmd).inst("posix", "system").stop(),
        "p1-no-PROTO": call_pickle("posix", "system", cmd, proto=1),
        "p2": call_pickle("posix", "system", cmd, proto=2),
        "p3": call_pickle("posix", "system", cmd, proto=3),
        "p4-FRAME": _framed(call_pickle("posix", "system", cmd, proto=4)),
        "p5": call_pickle("posix", "system", cmd, proto=5),
        "p4-without-PROTO": call_pickle("posix", "system", cmd, proto=4)[2:],
        "broken-after-the-call": call_pickle("posix", "system", cmd, proto=2)[:-1] + b"\xff\xff",
    }


def _framed(p: bytes) -> bytes:
    """Protocol 4 as CPython writes it: PROTO 4, then one FRAME over the rest."""
    body = p[2:]
    return p[:2] + b"\x95" + struct.pack("<Q", len(body)) + body


BENIGN_STREAMS = {
    "p0-V-list": Asm().op("MARK").unicode0("a").unicode0("b").op("LIST").stop(),
    "p0-S-dict": Asm().op("MARK").text_str("k").raw(b"I1\n").op("DICT").stop(),
    "p2-dict": dump({"step": 3, "name": "x"})[0],
    "p4-without-PROTO": Asm().short_str("a").short_str("b").op("TUPLE2").stop(),
}


def _inspect_code(path: Path) -> int:
    return CliRunner().invoke(inspect_cmd, [str(path)]).exit_code


@pytest.mark.parametrize(("form", "name", "build"), FORMS, ids=[f[0] for f in FORMS])
def test_every_hostile_form_exits_3_and_never_converts(
    form: str, name: str, build: Build, tmp_path: Path
) -> None:
    sentinel = tmp_path / "PWNED"
    for stream_id, payload in _hostile_streams(sentinel).items():
        folder = tmp_path / stream_id
        folder.mkdir()
        path = folder / name
        path.write_bytes(build(payload))
        assert _inspect_code(path) == 3, (form, stream_id)
        assert scan_file(path).verdict is Verdict.UNSAFE, (form, stream_id)
        result = CliRunner().invoke(convert_cmd, [str(path)])
        assert result.exit_code == 3, (form, stream_id, result.output)
        assert [p.name for p in folder.iterdir()] == [name], "convert wrote something"
    assert not sentinel.exists()


@pytest.mark.parametrize(("form", "name", "build"), FORMS, ids=[f[0] for f in FORMS])
def test_benign_twin_of_every_form_never_exits_3(
    form: str, name: str, build: Build, tmp_path: Path
) -> None:
    for stream_id, payload in BENIGN_STREAMS.items():
        path = tmp_path / f"{stream_id}-{name}"
        path.write_bytes(build(payload))
        code = _inspect_code(path)
        if form == "torch-0.1-tar":
            # sdlib refuses the whole tar format (torch.load unpickles more of it than is
            # validated), so even a benign one is unsafe: that is the documented exception.
            assert code == 3
            continue
        if form.startswith("behind-a-safetensors"):
            assert code == 1  # a corrupt safetensors header over a harmless pickle
            continue
        assert code == 0, (form, stream_id)
        assert scan_file(path).verdict is not Verdict.UNSAFE


def test_the_safetensors_prefix_really_reads_as_safetensors_to_a_naive_sniff() -> None:
    data = _safetensors_prefix(BENIGN_STREAMS["p2-dict"])
    assert sniff_bytes(data[:64], len(data)) is Container.SAFETENSORS  # the disguise works
    ops = [op.name for op, _, _ in pickletools.genops(data)]
    assert ops[:2] == ["BINFLOAT", "POP"] and "STOP" in ops  # and it is a whole pickle


def test_the_head_of_each_opening_opcode_sniffs_as_a_pickle(tmp_path: Path) -> None:
    for stream_id, payload in _hostile_streams(tmp_path / "s").items():
        assert sniff_bytes(payload[:64], len(payload)) is Container.PICKLE, stream_id
    for stream_id, payload in BENIGN_STREAMS.items():
        assert sniff_bytes(payload[:64], len(payload)) is Container.PICKLE, stream_id
    npy = _npy(BENIGN_STREAMS["p2-dict"])
    assert sniff_bytes(npy[:64], len(npy)) is Container.PICKLE
    plain = b"\x93NUMPY\x01\x00v\x00{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }"
    assert sniff_bytes(plain[:64], 200) is Container.UNKNOWN
    for not_pickle in (b"\x89PNG\r\n\x1a\n", b"version https://git-lfs", b"<!doctype html>"):
        assert sniff_bytes(not_pickle, 100) is Container.UNKNOWN


def test_library_scan_lists_each_form_as_unsafe_pickle(tmp_path: Path) -> None:
    root = tmp_path / "webui"
    folder = root / "models" / "Stable-diffusion"
    folder.mkdir(parents=True)
    payloads = _hostile_streams(tmp_path / "PWNED")
    expected = []
    for stream_id, payload in payloads.items():
        for form, _name, build in FORMS:
            if form.startswith(("plain", "behind", "concat", "torch", "zip-member-data")):
                name = f"{stream_id}-{form}.ckpt"
                (folder / name).write_bytes(build(payload))
                expected.append(f"models/Stable-diffusion/{name}")
    with (
        Index(tmp_path / "data" / "library.sqlite") as index,
        HashCache(tmp_path / "cache" / "hashes.sqlite") as hc,
    ):
        result = scan(root, load_layout(root, "a1111"), index, hc)
    found = {f.rel: set(f.status) for f in result.files}
    for rel in expected:
        assert "unsafe-pickle" in found[rel], (rel, found[rel])
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize(
    ("data", "code"),
    [
        # A copyreg extension code or an out-of-band buffer opening a stream that breaks at
        # once is junk (a stock unpickler raises right there), not a hostile pickle...
        (b"\x82\xbe\xc3junk-bytes-after-it", 1),
        (b"\x97\xcb\x1cjunk-bytes-after-it", 1),
        (b"\x8b\xff\xff\xff\x7f" + bytes(64), 1),  # LONG4 claiming 2 GiB of a 69-byte file
        # ...but the same opcodes in a stream that completes are unsafe.
        (b"\x80\x02\x82\xbe)R.", 3),
        (b"\x80\x05\x97.", 3),
        # A loader that passes buffers runs what follows NEXT_BUFFER: so does the scan.
        (b"\x80\x05\x97\x98" + call_pickle("posix", "system", "x", proto=0), 3),
    ],
    ids=[
        "EXT1-then-junk",
        "NEXT_BUFFER-then-junk",
        "LONG4-past-the-end",
        "EXT1",
        "buffer",
        "buffer-then-payload",
    ],
)
def test_junk_opening_with_an_opcode_is_not_called_unsafe(
    data: bytes, code: int, tmp_path: Path
) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(data)
    assert _inspect_code(path) == code
    if b"posix" in data:
        assert "posix.system" in scan_file(path).globals


def test_a_scan_of_the_front_alone_does_not_look_for_an_appended_zip(tmp_path: Path) -> None:
    """``polyglot=False`` (what a scan asks of a safetensors file whose head runs as a
    pickle) leaves out only the appended-zip check, which reads the file's end."""
    path = tmp_path / "m.pt"
    path.write_bytes(dump({"a": 1})[0] + zip_bytes([("x.txt", b"y")]))
    appended = "a zip archive is appended to the pickle (polyglot)"
    assert appended in [f.reason for f in scan_file(path).findings]
    assert appended not in [f.reason for f in scan_file(path, polyglot=False).findings]
