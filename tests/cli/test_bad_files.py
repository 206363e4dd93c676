"""One bad file never stops a batch: a library of good files with every known trigger mixed
in. ``scan --json`` reports each good file as usual and each bad one as a problem record;
``inspect`` and ``hash`` give every bad file one line and the right exit code; nothing
prints a traceback.

The bad files are built by hand here (bytes, not sdlib's writers, where the point is a
malformed header); what the good files are comes from ``sdlib.demo.specs.EXPECTED``,
the hand-written facts the classifier tests use.
"""

from __future__ import annotations

import json
import os
import struct
import sys
from pathlib import Path
from typing import Any

import pytest

from sdlib.demo.specs import EXPECTED
from sdlib.demo.writers import gguf_header, write_safetensors
from tests.support import trees

pytestmark = pytest.mark.slow  # subprocess: every test runs python -m sdlib

POSIX = sys.platform != "win32"
_ONE = {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}


def _raw_st(path: Path, header: bytes, body: bytes = b"\0" * 4) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(header)) + header + body)
    return path


#: rel path -> (the statuses it must have, kind or None)
Expected = dict[str, tuple[set[str], str | None]]


def _library(root: Path) -> Expected:
    """An A1111 tree: good files in their folders, plus one file per known trigger."""
    trees.a1111(root)
    lora, vae, sd = (
        root / "models" / "Lora",
        root / "models" / "VAE",
        root / "models" / "Stable-diffusion",
    )
    trees.st(lora / "good_lora.safetensors", "lora_sd15_kohya")
    trees.st(vae / "good_vae.safetensors", "vae_sd", small=True)
    trees.st(sd / "good_ckpt.safetensors", "sd15_pruned_fp16", small=True)
    trees.st(root / "embeddings" / "good_emb.safetensors", "embedding_sd15")
    expected: Expected = {
        "models/Lora/good_lora.safetensors": ({"ok"}, "lora"),
        "models/VAE/good_vae.safetensors": ({"ok"}, "vae"),
        "models/Stable-diffusion/good_ckpt.safetensors": ({"ok"}, "checkpoint"),
        "embeddings/good_emb.safetensors": ({"ok"}, "embedding"),
    }
    # Header-valid files whose shapes used to crash the classifier: now "unknown" or a kind.
    write_safetensors(vae / "vae_1d.safetensors", {
        "decoder.conv_in.weight": ("F32", (512,)), "encoder.conv_in.weight": ("F32", (128,)),
    })  # fmt: skip
    write_safetensors(lora / "scalar_down.safetensors", {
        "lora_unet_a_proj_in.lora_down.weight": ("F16", ()),
        "lora_unet_a_proj_in.lora_up.weight": ("F16", (320, 4)),
    })  # fmt: skip
    write_safetensors(lora / "zero_rank.safetensors", {
        "lora_unet_a_proj_in.lora_down.weight": ("F16", (0, 320)),
        "lora_unet_a_proj_in.lora_up.weight": ("F16", (320, 0)),
    })  # fmt: skip
    write_safetensors(sd / "empty_floats.safetensors", {
        "model.diffusion_model.input_blocks.0.0.weight": ("F16", (0, 4, 3, 3)),
        **{f"model.diffusion_model.out.{i}.weight": ("F16", (0,)) for i in range(6)},
    })  # fmt: skip
    meta = b'{"__metadata__": {"ss_output_name": "x\\ud800"}, "w": %s}' % json.dumps(_ONE).encode()
    _raw_st(lora / "lone_surrogate_meta.safetensors", meta)
    head, size = gguf_header({"img_in.weight": ("F32", (0, 64)), "x.weight": ("F16", (0, 32))})
    trees.touch(root / "models" / "Stable-diffusion" / "empty.gguf", head + bytes(size))
    expected["models/VAE/vae_1d.safetensors"] = ({"unknown"}, "unknown")  # not a conv: no VAE
    for rel in ("Lora/scalar_down.safetensors", "Lora/zero_rank.safetensors",
                "Stable-diffusion/empty_floats.safetensors", "Lora/lone_surrogate_meta.safetensors",
                "Stable-diffusion/empty.gguf"):  # fmt: skip
        expected[f"models/{rel}"] = (set(), None)  # readable: reported, never corrupt
    # Malformed headers: corrupt, each with its reason.
    one, huge = json.dumps(_ONE).encode(), b"9" * 5000
    corrupt = {
        "dtype_list": json.dumps({"w": {**_ONE, "dtype": ["F32"]}}).encode(),
        "huge_int": b'{"w": {"dtype": "F32", "shape": [%s], "data_offsets": [0, 4]}}' % huge,
        "deep_json": b'{"w": ' + b"[" * 1000 + b"]" * 1000 + b"}",
        "dup_names": b'{"w": %s, "w": %s}' % (one, one),
    }  # fmt: skip
    for name, header in corrupt.items():
        _raw_st(lora / f"{name}.safetensors", header)
        expected[f"models/Lora/{name}.safetensors"] = ({"corrupt"}, None)
    trees.touch(root / "models" / "Stable-diffusion" / "truncated.gguf", head[: len(head) // 2])
    expected["models/Stable-diffusion/truncated.gguf"] = ({"corrupt"}, None)
    if POSIX:
        # The walk lists regular files only; a FIFO must not make the scan wait on it.
        os.mkfifo(lora / "pipe.safetensors")
        # A good file whose name is not UTF-8 (bytes 0xff 0xfe): reported, name escaped.
        bad_name = os.fsencode(lora) + b"/caf\xff\xfe.safetensors"
        write_safetensors(os.fsdecode(bad_name), {"emb_params": ("F32", (2, 768))})
        expected["models/Lora/caf\\udcff\\udcfe.safetensors"] = (
            {"illegal-or-too-long-name"},
            "embedding",
        )
    return expected


def test_scan_reports_every_good_file_and_each_bad_one(run_cli: Any, tmp_path: Path) -> None:
    root = tmp_path / "webui"
    expected = _library(root)
    out = run_cli("scan", str(root), "--json", timeout=60)
    assert out.returncode == 1, out.stderr  # some files could not be read
    assert "Traceback" not in out.stderr and "internal error" not in out.stderr
    data = json.loads(out.stdout)
    files = {f["rel"].encode("utf-8", "backslashreplace").decode(): f for f in data["files"]}
    for rel, (statuses, kind) in expected.items():
        assert rel in files, (rel, sorted(files))
        got = files[rel]
        assert statuses <= set(got["status"]), (rel, got["status"], got["notes"])
        if kind is not None:
            assert got["kind"] == kind, (rel, got)
        if {"corrupt", "unreadable"} & statuses:
            assert got["notes"] and all("\n" not in n for n in got["notes"]), got
    assert files["models/Lora/dup_names.safetensors"]["notes"] == [
        "invalid safetensors header: the name 'w' appears twice"
    ]
    pipe = files.get("models/Lora/pipe.safetensors")
    assert pipe is None or pipe["status"] == ["unreadable"]
    good = [r for r, (s, _) in expected.items() if s == {"ok"}]
    assert all(files[r]["status"] == ["ok"] for r in good)
    lora = files["models/Lora/good_lora.safetensors"]
    facts = EXPECTED["lora_sd15_kohya"]
    assert (lora["base"], lora["precision"]) == (facts["base"], facts["precision"])
    for rel, (statuses, _) in expected.items():
        if not statuses:
            assert not {"corrupt", "unreadable"} & set(files[rel]["status"]), files[rel]
    # The table says the same, and a second (incremental) scan too.
    table = run_cli("scan", str(root), timeout=60)
    assert table.returncode == 1 and "corrupt" in table.stdout and "Traceback" not in table.stderr


def test_inspect_each_bad_file_is_one_line_and_the_rest_are_reported(
    run_cli: Any, tmp_path: Path
) -> None:
    root = tmp_path / "webui"
    expected = _library(root)
    bad = sorted(r for r, (s, _) in expected.items() if {"corrupt", "unreadable"} & s)
    good = sorted(r for r, (s, _) in expected.items() if s == {"ok"})
    out = run_cli("inspect", *(str(root / r) for r in bad + good), "--json", timeout=60)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == len(bad) and all(line.startswith("sdlib: error: ") for line in lines)
    reports = json.loads(out.stdout)
    assert [("error" in r) for r in reports] == [True] * len(bad) + [False] * len(good)
    assert [r["kind"] for r in reports[len(bad) :]] == [expected[r][1] for r in good]
    for rel in bad[:2]:
        one = run_cli("inspect", str(root / rel))
        assert one.returncode == 1 and len(one.stderr.strip().splitlines()) == 1
        assert not one.stdout.strip()


@pytest.mark.skipif(not POSIX, reason="FIFOs, symlink loops and non-UTF-8 names are POSIX")
def test_special_files_are_refused_at_once(run_cli: Any, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    (tmp_path / "a.safetensors").symlink_to(tmp_path / "b.safetensors")
    (tmp_path / "b.safetensors").symlink_to(tmp_path / "a.safetensors")
    for command in ("inspect", "hash"):
        out = run_cli(command, str(fifo), str(tmp_path / "a.safetensors"), timeout=20)
        assert out.returncode == 1, out.stderr
        first, second = out.stderr.strip().splitlines()
        assert "not a regular file (a FIFO (named pipe))" in first
        assert "loop of symbolic links" in second
        assert "Traceback" not in out.stderr
    out = run_cli("identify", str(fifo), timeout=20)  # named explicitly: reported, not waited on
    assert out.returncode == 1
    assert out.stderr.strip() == f"sdlib: error: {fifo}: not a regular file (a FIFO (named pipe))"


@pytest.mark.skipif(not POSIX, reason="non-UTF-8 names are POSIX")
def test_hash_prints_a_non_utf8_name_escaped(run_cli: Any, tmp_path: Path) -> None:
    name = os.fsencode(tmp_path) + b"/caf\xe9.bin"
    with open(name, "wb") as fh:
        fh.write(b"abc")
    out = run_cli("hash", os.fsdecode(name), "--json")
    assert out.returncode == 0, out.stderr
    (entry,) = json.loads(out.stdout)
    assert entry["path"].endswith("caf\udce9.bin")  # the JSON escape \udce9 of byte 0xe9
    # SHA256("abc"), FIPS 180-2 appendix B.1
    assert entry["sha256"] == "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"
    text = run_cli("hash", os.fsdecode(name))
    assert text.returncode == 0 and "caf\\udce9.bin" in text.stdout


def test_identify_skips_bad_files_and_looks_up_the_rest(run_cli: Any, tmp_path: Path) -> None:
    root = tmp_path / "webui"
    expected = _library(root)
    out = run_cli("identify", str(root), "--json", "--no-preview", timeout=60)
    assert out.returncode == 1, out.stderr  # files that could not be read
    assert "Traceback" not in out.stderr and "internal error" not in out.stderr
    data = json.loads(out.stdout)
    state = {os.path.basename(f["path"]): f["state"] for f in data["files"]}
    for rel, (statuses, _) in expected.items():
        name = os.path.basename(rel).encode("utf-8").decode("unicode_escape")
        if "corrupt" in statuses:
            assert state[name] == "skipped", (name, state)
        elif statuses == {"ok"}:  # the demo catalogue does not know these synthetic files
            assert state[name] == "unidentified", (name, state)


def test_organize_moves_the_good_files_and_leaves_the_bad_ones_alone(
    run_cli: Any, tmp_path: Path
) -> None:
    """A misplaced good LoRA among the bad files: the plan moves it and says why each bad
    file stays; --apply and then --undo (ROOT only) touch no byte of the bad files."""
    root = tmp_path / "webui"
    expected = _library(root)
    # Other bytes than good_lora (else it is a duplicate already in place, not a move).
    stray = trees.st(root / "models" / "Stable-diffusion" / "stray.safetensors",
                     "lora_sd15_kohya", {"ss_output_name": "stray"})  # fmt: skip
    bad = {r for r, (s, _) in expected.items() if "corrupt" in s}
    before = {r: (root / r).read_bytes() for r in bad}
    plan = run_cli("organize", str(root), "--json", timeout=60)
    assert plan.returncode == 0, plan.stderr
    assert "Traceback" not in plan.stderr and "internal error" not in plan.stderr
    data = json.loads(plan.stdout)
    moves = {a["path_rel"]: a["dst_rel"] for a in data["actions"] if a["action"] == "move"}
    assert moves["models/Stable-diffusion/stray.safetensors"] == "models/Lora/stray.safetensors"
    assert not bad & set(moves)
    for rel in bad:
        assert any(n.startswith(f"{rel}: left in place") for n in data["notes"]), rel
    applied = run_cli("organize", str(root), "--apply", "--json", timeout=60)
    assert applied.returncode == 0, applied.stderr
    assert (root / "models" / "Lora" / "stray.safetensors").is_file() and not stray.exists()
    assert {r: (root / r).read_bytes() for r in bad} == before
    undone = run_cli("organize", str(root), "--undo", "--json", timeout=60)
    assert undone.returncode == 0, undone.stderr
    assert stray.is_file() and not (root / "models" / "Lora" / "stray.safetensors").exists()
    assert {r: (root / r).read_bytes() for r in bad} == before


@pytest.mark.skipif(not POSIX, reason="FIFOs and symlink loops are POSIX")
def test_the_python_api_refuses_special_files_too(tmp_path: Path) -> None:
    import subprocess

    os.mkfifo(tmp_path / "pipe.ckpt")
    (tmp_path / "a.pt").symlink_to(tmp_path / "b.pt")
    (tmp_path / "b.pt").symlink_to(tmp_path / "a.pt")
    code = (
        "import sys\nfrom sdlib.errors import FormatError\nfrom sdlib.inspect import inspect_file\n"
        "for p in sys.argv[1:]:\n    try:\n        inspect_file(p)\n"
        "    except FormatError as e:\n        print(e.message)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "pipe.ckpt"), str(tmp_path / "a.pt")],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.stdout.splitlines() == [
        "not a regular file (a FIFO (named pipe))",
        "cannot read: a loop of symbolic links",
    ], out.stderr


@pytest.mark.skipif(not POSIX, reason="a folder name ending in '[' and one starting with ']'")
def test_brackets_in_a_path_are_printed_not_read_as_markup(run_cli: Any, tmp_path: Path) -> None:
    model = trees.st(tmp_path / "a[" / "]b" / "m.safetensors", "embedding_sd15")
    assert "[/]" in str(model)  # rich would read it as a closing tag
    for command in ("inspect", "hash"):
        out = run_cli(command, str(model))
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith(str(model) + "  ")
