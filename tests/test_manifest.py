"""Manifest and lock parsing: pure, and every error names its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdlib.errors import ManifestError
from sdlib.manifest import (
    LockEntry,
    dump_lock,
    dump_manifest,
    parse_lock,
    parse_manifest,
    resolve_folder,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "models.toml"


def test_the_documented_example_parses() -> None:
    manifest = parse_manifest(EXAMPLE.read_text(), str(EXAMPLE))
    assert len(manifest.entries) == 12
    assert manifest.target.ui == "a1111"
    forms = {e.ref.split(":")[0] for e in manifest.entries}
    assert {"https", "urn", "sha256"} <= forms
    ckpt = manifest.entries[-1]
    assert (ckpt.format, ckpt.convert, ckpt.fp) == ("PickleTensor", "safetensors", "fp16")
    assert ckpt.defaulted == ("fp",)
    assert manifest.entries[-2].sha256 is not None


BAD = [
    ('[[model]]\nref = "1"\ncolour = "red"\n', 3, "no key 'colour'"),
    ('[[model]]\nref = "1"\n\n[[model]]\nref = "not a ref at all"\n', 5, "bad ref"),
    ('[[model]]\nref = "1"\nsize = "medium"\n', 3, "pruned"),
    ('[[model]]\nref = "1@2"\nversion = 3\n', 3, "version 2"),
    ('[[model]]\nref = "1"\nfile_id = 5\nfp = "fp16"\n', 3, "file_id picks one exact file"),
    ('[[model]]\nref = "1"\nname = "../x.pt"\n', 3, "file name"),
    ('[[model]]\nref = "sha256:abc"\n', 2, "64 hex"),
    ('[target]\nroot = "x"\nflavour = 1\n[[model]]\nref = "1"\n', 3, "no setting 'flavour'"),
    ('[defaults]\nname = "x"\n[[model]]\nref = "1"\n', 2, "cannot set 'name'"),
    ('[target]\nroot = "x"\n', 1, "no [[model]]"),
    ('[[model]]\nref = "1"\nversion = "two"\n', 3, "must be a number"),
    ('[[model]\nref = "1"\n', 1, "not valid TOML"),
    ('[[model]]\nref = "1"\nconvert = "gguf"\n', 3, "convert"),
    # A folder never leaves the target root, whatever the spelling and the OS.
    ('[[model]]\nref = "1"\nfolder = "../../elsewhere"\n', 3, "no '..'"),
    ('[[model]]\nref = "1"\nfolder = "models/../../x"\n', 3, "no '..'"),
    ("[[model]]\nref = \"1\"\nfolder = 'models\\..\\..\\x'\n", 3, "no '..'"),
    ('[[model]]\nref = "1"\nfolder = "/etc"\n', 3, "relative to the target root"),
    ("[[model]]\nref = \"1\"\nfolder = '\\\\server\\share'\n", 3, "relative"),
    ('[[model]]\nref = "1"\nfolder = "C:/Windows"\n', 3, "drive letter"),
    ('[[model]]\nref = "1"\nfolder = "C:x"\n', 3, "drive letter"),
    ('[[model]]\nref = "1"\nfolder = "~/x"\n', 3, "relative"),
    ('[[model]]\nref = "1"\nfolder = ""\n', 3, "empty"),
    (
        '[target]\nroot = "x"\n[target.folders]\nlora = "../up"\n[[model]]\nref = "1"\n',
        4,
        "[target.folders] lora",
    ),
]


@pytest.mark.parametrize(("text", "line", "message"), BAD)
def test_errors_name_the_line(text: str, line: int, message: str) -> None:
    with pytest.raises(ManifestError, match=r"models\.toml") as info:
        parse_manifest(text, "models.toml")
    assert message in str(info.value)
    assert info.value.line == line
    assert info.value.exit_code == 2


def test_entry_key_changes_with_what_it_asks_for() -> None:
    a = parse_manifest('[[model]]\nref = "1"\n').entries[0]
    b = parse_manifest('\n\n[[model]]\nref = "1"\n').entries[0]
    c = parse_manifest('[[model]]\nref = "1"\nfp = "fp32"\n').entries[0]
    assert a.key() == b.key() != c.key()


def test_lock_round_trip() -> None:
    entries = [
        LockEntry("4384@128713", "k1", 4384, 128713, 1, "a \"b\".safetensors", 10, "AB" * 32,
                  "http://x/api/download/models/128713?fileId=1", "models/a.safetensors",
                  blake3="CD" * 32),
        LockEntry("7", "k2", None, 8, 2, "é.pt", 3, "EF" * 32, "u", "/abs/é.safetensors",
                  converted_sha256="01" * 32),
    ]  # fmt: skip
    assert list(parse_lock(dump_lock(entries)).values()) == entries


def test_dumped_manifest_parses_back() -> None:
    manifest = parse_manifest(EXAMPLE.read_text())
    again = parse_manifest(dump_manifest(manifest.target, manifest.entries, "exported"))
    assert [e.key() for e in again.entries] == [e.key() for e in manifest.entries]


def test_damaged_lock_is_an_error() -> None:
    with pytest.raises(ManifestError, match="lock version"):
        parse_lock("version = 9\n")
    with pytest.raises(ManifestError, match="damaged"):
        parse_lock('version = 1\n[[model]]\nref = "x"\n')


def test_folders_inside_the_root_resolve_and_links_out_are_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "webui", tmp_path / "elsewhere"
    (root / "models").mkdir(parents=True)
    outside.mkdir()
    assert resolve_folder(root, "models/Lora") == root / "models" / "Lora"
    assert resolve_folder(root, "a/./b") == root / "a" / "b"
    try:
        (root / "ext").symlink_to(outside, target_is_directory=True)
        (root / "models" / "inner").symlink_to(root / "models", target_is_directory=True)
    except OSError:
        pytest.skip("no symlinks here")
    assert resolve_folder(root, "models/inner/x") == root / "models" / "inner" / "x"
    for folder in ("ext", "ext/sub", "ext/../models"):
        with pytest.raises(ManifestError) as info:
            resolve_folder(root, folder)
        assert info.value.exit_code == 2
        assert "outside the target root" in info.value.message or "'..'" in info.value.message
