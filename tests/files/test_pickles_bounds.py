"""Hostile files stay bounded in time and memory (pickle-security.md section 6.2 G4, E7).

Each file is built here from bytes: a list holding itself a million times, dict keys built
from one huge shared tuple, zip members that lie about their size or inflate 1000:1, an
oversized member that may hold a pickle, and ``.npy`` headers of 60,000 characters. Time is
CPU time of the scan; memory is the peak RSS of ``sdlib`` run as a child process.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from sdlib.cli.inspect_cmd import inspect_cmd
from sdlib.errors import FormatError
from sdlib.files.pickles import open_pickle_bytes, scan_file
from sdlib.taxonomy import Verdict
from tests.support.pickles import Asm, StateDict, Tensor, call_pickle, dump, shell_touch

MIB = 1 << 20


def _cpu_seconds(data: bytes) -> tuple[float, object]:
    start = time.process_time()
    try:
        result: object = open_pickle_bytes(data)
    except FormatError as exc:
        result = exc
    return time.process_time() - start, result


@pytest.mark.slow  # about 3 s of CPU for the DUP/APPEND form
@pytest.mark.parametrize(
    ("how", "data"),
    [
        # [L] then (DUP, APPEND) a million times: L.append(L) 10**6 times, 2 MB.
        ("dup-append", b"\x80\x02]" + b"2a" * 1_000_000 + b"."),
        # [L] memoised, then (GET 0, APPEND) a million times, 3 MB.
        ("get-append", b"\x80\x02]q\x00" + b"h\x00a" * 1_000_000 + b"."),
        # MARK, GET 0 a million times, APPENDS: one append of a million self-references.
        ("get-appends", b"\x80\x02]q\x00(" + b"h\x00" * 1_000_000 + b"e."),
    ],
    ids=["dup-append", "get-append", "get-appends"],
)
def test_a_list_holding_itself_a_million_times_is_read_in_seconds(how: str, data: bytes) -> None:
    # Before the walk was made linear, 10,000 self-references took 73 s and this never ended.
    seconds, result = _cpu_seconds(data)
    assert seconds < 15, (how, seconds)
    assert not isinstance(result, FormatError)


def test_dict_keys_from_one_huge_shared_tuple_hit_the_hashing_budget() -> None:
    # A 9,000-element tuple used as the key of 100,000 entries (DUP): 9 * 10**8 hashes.
    data = b"\x80\x02}((" + b"N" * 9000 + b"t" + b"2" * 199_999 + b"u."
    seconds, result = _cpu_seconds(data)
    assert seconds < 10
    assert not isinstance(result, FormatError)
    findings = result.scan.findings  # type: ignore[attr-defined]
    assert any("hashing budget" in f.reason for f in findings)
    assert result.scan.verdict is Verdict.UNSAFE  # type: ignore[attr-defined]


def test_keys_nested_from_shared_pairs_are_refused_not_hashed() -> None:
    # t = (t, t) forty times: hashing it would take 2**40 steps.
    data = b"\x80\x02}N" + b"2\x86" * 40 + b"Ns."
    seconds, result = _cpu_seconds(data)
    assert seconds < 2
    assert result.scan.verdict is Verdict.UNSAFE  # type: ignore[attr-defined]


# --- zips that lie about sizes ---------------------------------------------------------------


def _zip_streamed(members: list[tuple[str, bytes, int, int]]) -> bytes:
    """A zip whose members are ``head`` followed by ``zeros`` zero bytes, written in chunks
    (so the test never holds the inflated data), ``method`` 0 or 8."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, head, zeros, method in members:
            info = zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0))
            info.compress_type = method
            with zf.open(info, "w", force_zip64=zeros > (1 << 31)) as w:
                w.write(head)
                chunk = bytes(4 * MIB)
                left = zeros
                while left:
                    w.write(chunk[: min(left, len(chunk))])
                    left -= min(left, len(chunk))
    return out.getvalue()


def _set_size(z: bytes, name: bytes, size: int) -> bytes:
    """Overwrite a member's declared uncompressed size in its local and central headers."""
    out = bytearray(z)
    lfh = out.find(b"PK\x03\x04")
    while out[lfh + 30 : lfh + 30 + len(name)] != name:
        lfh = out.find(b"PK\x03\x04", lfh + 1)
    cd = out.find(b"PK\x01\x02")
    while out[cd + 46 : cd + 46 + len(name)] != name:
        cd = out.find(b"PK\x01\x02", cd + 1)
    out[lfh + 22 : lfh + 26] = struct.pack("<I", size)
    out[cd + 24 : cd + 28] = struct.pack("<I", size)
    return bytes(out)


def _peak_rss_mib(*args: str) -> tuple[int, float, str]:
    """Run ``sdlib ARGS`` as a grandchild and return its exit code and peak RSS in MiB."""
    code = (
        "import resource, subprocess, sys, json\n"
        "p = subprocess.run([sys.executable, '-m', 'sdlib', *sys.argv[1:]],"
        " capture_output=True, text=True)\n"
        "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "print(json.dumps([p.returncode, rss, p.stderr]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300
    )
    rc, rss, err = json.loads(done.stdout)
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return rc, rss * scale / MIB, err


BOMB = 200 * MIB  # under the old 256 MiB cap, which inflated it whole


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bombs")
    pkl = dump({"w": 1})[0]
    numel = BOMB // 4
    tensor_pkl = dump(StateDict({"w": Tensor(b"", "F32", (numel,), numel=numel)}))[0]
    files = {
        # data.pkl inflating to 200 MiB from ~200 KB (1000:1), declared honestly.
        "honest-bomb": _zip_streamed([("archive/data.pkl", pkl, BOMB, 8)]),
        # The same, declaring 1,000 bytes: a reader trusting the stream inflates it all.
        "size-lie": _set_size(
            _zip_streamed([("archive/data.pkl", pkl, BOMB, 8)]), b"archive/data.pkl", 1000
        ),
        # An npz member that is a pickle and a bomb.
        "npz-member": _zip_streamed([("x.npy", pkl, BOMB, 8)]),
        # A torch archive whose one storage record inflates to 200 MiB (convert's case).
        "storage-bomb": _zip_streamed(
            [
                ("archive/data.pkl", tensor_pkl, 0, 0),
                ("archive/byteorder", b"little", 0, 0),
                ("archive/data/0", b"", BOMB, 8),
                ("archive/version", b"3\n", 0, 0),
            ]
        ),
    }
    out = {}
    for name, data in files.items():
        assert len(data) < 2 * MIB  # the files themselves are small
        out[name] = folder / f"{name}.pt"
        out[name].write_bytes(data)
    return out


@pytest.mark.slow  # the fixture deflates 4 x 200 MiB of zeros
@pytest.mark.skipif(sys.platform == "win32", reason="resource is POSIX-only")
@pytest.mark.parametrize("which", ["honest-bomb", "size-lie", "npz-member", "storage-bomb"])
@pytest.mark.parametrize("command", ["inspect", "convert"])
def test_zip_bombs_stay_small_in_memory(
    bombs: dict[str, Path], which: str, command: str, tmp_path: Path
) -> None:
    args = [command, str(bombs[which])]
    if command == "convert":
        args += ["-o", str(tmp_path / "out.safetensors")]
    rc, rss, err = _peak_rss_mib(*args)
    # Before: 548 MB (inspect) and 650 MB (convert). 160 MiB is python + numpy + headroom.
    assert rss < 160, (which, command, rss, err)
    assert rc in (1, 3), err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 20
    assert not (tmp_path / "out.safetensors").exists()


@pytest.mark.slow
def test_a_bomb_data_pkl_is_unsafe_and_a_lying_one_never_safe(bombs: dict[str, Path]) -> None:
    assert scan_file(bombs["honest-bomb"]).verdict is Verdict.UNSAFE
    assert scan_file(bombs["storage-bomb"]).verdict is Verdict.UNSAFE
    try:
        verdict = scan_file(bombs["size-lie"]).verdict
    except FormatError:
        return  # refused as corrupt: also never safe
    assert verdict is not Verdict.SAFE


def test_an_oversized_member_that_may_hold_a_pickle_is_never_safe(tmp_path: Path) -> None:
    # 65 MiB after a pickle opening and 400 KB of incompressible bytes: under the bomb
    # ratio, over the 64 MiB read cap, so sdlib does not read it and must not call it safe.
    import random

    noise = random.Random(1).randbytes(400_000)
    head = call_pickle("posix", "system", shell_touch(tmp_path / "PWNED")) + noise
    z = _zip_streamed([("extra.bin", head, 65 * MIB, 8)])
    path = tmp_path / "m.pt"
    path.write_bytes(z)
    scan = scan_file(path)
    assert scan.verdict is not Verdict.SAFE
    assert any("not scanned" in f.reason for f in scan.findings)
    # The same member named data.pkl inside a torch root is what torch unpickles: unsafe.
    z = _zip_streamed([("archive/data.pkl", head, 65 * MIB, 8)])
    path.write_bytes(z)
    assert scan_file(path).verdict is Verdict.UNSAFE
    assert not (tmp_path / "PWNED").exists()


# --- .npy headers ----------------------------------------------------------------------------


def _npy_with_header(header: bytes, body: bytes) -> bytes:
    return b"\x93NUMPY\x02\x00" + struct.pack("<I", len(header)) + header + body


LONG_HEADERS = {
    "nested-parens": b"{'descr': '|O', 'shape': " + b"(" * 30_000 + b")" * 30_000 + b"}\n",
    "long-list": b"{'descr': '|O', 'shape': (" + b"1," * 30_000 + b")}\n",
}


@pytest.mark.parametrize("header", list(LONG_HEADERS), ids=list(LONG_HEADERS))
@pytest.mark.parametrize("container", ["npy", "npz"])
def test_a_60000_character_npy_header_is_not_parsed(
    header: str, container: str, tmp_path: Path
) -> None:
    sentinel = tmp_path / "PWNED"
    hostile = _npy_with_header(LONG_HEADERS[header], call_pickle("posix", "system", "x"))
    benign = _npy_with_header(LONG_HEADERS[header], b"\x00" * 64)
    assert len(LONG_HEADERS[header]) >= 60_000
    for data, expected in ((hostile, {3}), (benign, {1})):
        if container == "npz":
            out = io.BytesIO()
            with zipfile.ZipFile(out, "w") as zf:
                zf.writestr("x.npy", data)
            data = out.getvalue()
        path = tmp_path / f"a.{container}"
        path.write_bytes(data)
        result = CliRunner().invoke(inspect_cmd, [str(path)])
        assert result.exit_code in expected, result.output
        assert "Traceback" not in result.output
    assert not sentinel.exists()


def test_asm_helpers_build_what_the_bounds_tests_expect() -> None:
    # The GET/APPEND bytes above are what the assembler writes for the same opcodes.
    built = Asm().proto(2).op("EMPTY_LIST").op("BINPUT", 0).op("BINGET", 0).raw(b"a").stop()
    assert built == b"\x80\x02]q\x00h\x00a."


def test_a_scan_out_of_cpu_time_is_unsafe_not_endless() -> None:
    from sdlib.files._pickle_state import ScanState

    state = ScanState(deadline=0.0)  # as if the file's CPU budget were already spent
    data = b"\x80\x02" + b"N0" * 70_000 + b"N."  # 140,000 opcodes: the clock is read twice
    assert state.run(data, 0, "pickle", "plain") is None
    assert any("s of CPU" in f.reason for f in state.findings)
    assert state.unsafe_count() and state.parsed == 1
    fresh = ScanState()
    assert fresh.run(data, 0, "pickle", "plain") is not None  # the same stream, in budget


def test_a_big_plain_npz_member_is_judged_from_its_header_alone(tmp_path: Path) -> None:
    # 70 MiB of float32 (over the 64 MiB read cap) beside an object array: the plain member
    # is never read (its header says '<f4'), so it neither costs memory nor blurs the verdict.
    plain = b"{'descr': '<f4', 'fortran_order': False, 'shape': (18350080,), }\n"
    objects = b"{'descr': '|O', 'fortran_order': False, 'shape': (1,), }\n"
    out = tmp_path / "a.npz"
    with zipfile.ZipFile(out, "w") as zf:
        with zf.open(zipfile.ZipInfo("big.npy", (2020, 1, 1, 0, 0, 0)), "w") as w:
            w.write(_npy_with_header(plain, b""))
            for _ in range(70):
                w.write(bytes(MIB))
        zf.writestr("obj.npy", _npy_with_header(objects, dump([1, 2])[0]))
    start = time.process_time()
    scan = scan_file(out)
    assert time.process_time() - start < 2
    assert scan.verdict is not Verdict.UNSAFE, scan.findings
    assert not any("not scanned" in f.reason for f in scan.findings)
    assert [e.split("+")[0] for e in scan.entries] == ["obj.npy"]
