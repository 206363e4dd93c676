"""``scan`` on messy trees of every layout: statuses, explanations, incremental re-scans."""

from __future__ import annotations

import builtins
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from sdlib.hashcache import HashCache
from sdlib.library.index import Index
from sdlib.library.scan import ScanResult, load_layout, scan
from tests.support import trees


def run(root: Path, stores: tuple[Index, HashCache], ui: str = "auto", **kw: Any) -> ScanResult:
    return scan(root, load_layout(root, ui), *stores, **kw)


def statuses(result: ScanResult) -> dict[str, set[str]]:
    return {f.rel: set(f.status) for f in result.files}


def by_rel(result: ScanResult, rel: str) -> Any:
    return next(f for f in result.files if f.rel == rel)


def test_messy_a1111_every_problem_explained(
    tmp_path: Path, stores: tuple[Index, HashCache]
) -> None:
    root = tmp_path / "webui"
    expected = trees.messy_a1111(root, tmp_path / "outside")
    result = run(root, stores)
    assert result.layout.name == "a1111"
    assert statuses(result) == expected
    for f in result.files:  # every problem comes with a reason
        assert (f.status == ["ok"]) == (not f.notes), (f.rel, f.notes)
    misplaced = by_rel(result, "models/Stable-diffusion/add_detail.safetensors")
    assert misplaced.kind == "lora" and misplaced.base == "sd1"
    assert misplaced.target == str(root / "models" / "Lora")
    assert "belongs in models/Lora" in misplaced.notes[0]
    assert sorted(os.path.basename(s) for s in misplaced.sidecars) == [
        "add_detail.civitai.info", "add_detail.json", "add_detail.preview.png",
    ]  # fmt: skip
    clash = by_rel(result, "models/Lora/characters/style.safetensors")
    assert "file stem" in clash.notes[0] and "'style'" in clash.notes[0]
    dup = by_rel(result, "models/Lora/copy of style.safetensors")
    assert dup.sha256 == by_rel(result, "models/Lora/style.safetensors").sha256
    assert "models/Lora/style.safetensors" in dup.notes[0]
    preview = by_rel(result, "models/Stable-diffusion/add_detail.preview.png")
    assert preview.row.true_ext == ".jpeg" and "JPEG" in preview.notes[0]
    # A1111 reads <stem>.vae.safetensors beside a checkpoint as that checkpoint's VAE.
    ckpt = by_rel(result, "models/Stable-diffusion/sdxl_base.safetensors")
    assert [os.path.basename(s) for s in ckpt.sidecars] == ["sdxl_base.vae.safetensors"]
    assert "case-sensitively" in by_rel(result, "models/VAE/Upper.SAFETENSORS").notes[0]
    assert ".pt, .pth" in by_rel(result, "models/ESRGAN/4x.safetensors").notes[0]
    assert "does not exist" in by_rel(result, "models/Lora/dead.safetensors").notes[0]
    assert "its model may be models/LyCORIS/lost.safetensors" in " ".join(
        by_rel(result, "models/Lora/lost.preview.png").notes
    )
    assert not (tmp_path / "outside" / "PWNED").exists()  # the pickle was never run
    # The symlink loop (characters/loop -> Lora) did not list anything twice.
    assert len({f.path for f in result.files}) == len(result.files) == len(expected)
    assert "loop" not in " ".join(f.rel for f in result.files)
    s = result.summary()
    # models/Lora/linked leads outside the root: reported, and what it holds is listed.
    assert s["models"] == 18 and s["problems"] == 15


def test_rescan_reads_no_file_content(
    tmp_path: Path, stores: tuple[Index, HashCache], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "webui"
    trees.messy_a1111(root, tmp_path / "outside")
    first = run(root, stores)
    assert first.inspected == 18 and first.added == len(first.files) + 1  # + the .txt
    opened: list[str] = []
    real_open = builtins.open

    def spy(file: Any, *args: Any, **kwargs: Any) -> Any:
        if str(root) in str(file) or str(tmp_path / "outside") in str(file):
            opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy)
    again = run(root, stores)
    assert opened == []
    assert (again.inspected, again.hashed, again.added, again.moved) == (0, 0, 0, 0)
    assert statuses(again) == statuses(first)


def test_moved_file_keeps_its_id_history_and_civitai_ids(
    tmp_path: Path, stores: tuple[Index, HashCache]
) -> None:
    index, _ = stores
    root = tmp_path / "webui"
    trees.messy_a1111(root, tmp_path / "outside")
    first = run(root, stores)
    lost = by_rel(first, "models/LyCORIS/lost.safetensors")
    index.update(lost.id, civitai_version_id=8217, civitai_model_id=7371,
                 identify_state="identified")  # fmt: skip
    # Same inode: a rename into another folder.
    os.rename(lost.path, root / "models" / "Lora" / "lost.safetensors")
    moved = run(root, stores)
    assert moved.moved == 1 and moved.added == 0 and moved.removed == 0
    now = by_rel(moved, "models/Lora/lost.safetensors")
    assert now.id == lost.id and now.row.civitai_version_id == 8217
    assert now.to_dict()["civitai"]["model_id"] == 7371
    # The orphaned preview found its model.
    assert by_rel(moved, "models/Lora/lost.preview.png").status == ["ok"]
    # Copied to another drive and back by a tool that keeps the mtime (mv, shutil.move):
    # a new inode, the same size and nanosecond mtime.
    src = Path(now.path)
    shutil.copy2(src, tmp_path / "elsewhere.safetensors")
    src.unlink()
    shutil.copy2(tmp_path / "elsewhere.safetensors", root / "models" / "Lora" / "kept.safetensors")
    twin = run(root, stores)
    assert twin.moved == 1 and twin.hashed == 0
    kept = by_rel(twin, "models/Lora/kept.safetensors")
    assert kept.id == lost.id and kept.row.civitai_version_id == 8217
    # Same bytes, new inode and a new mtime: the SHA256 (known once identified) decides.
    index.update(lost.id, sha256=trees.sha256(kept.path).upper())
    shutil.copyfile(kept.path, tmp_path / "elsewhere2.safetensors")
    os.unlink(kept.path)
    shutil.copyfile(tmp_path / "elsewhere2.safetensors", root / "models" / "Lora" / "again.tmp")
    os.rename(
        root / "models" / "Lora" / "again.tmp", root / "models" / "Lora" / "again.safetensors"
    )
    again = run(root, stores)
    assert again.moved == 1 and again.hashed == 1
    back = by_rel(again, "models/Lora/again.safetensors")
    assert back.id == lost.id and back.row.civitai_version_id == 8217
    events = [e["event"] for e in index.history(lost.id)]
    assert events == ["added", "moved", "moved", "moved"]


def test_changed_file_is_read_again_and_forgets_its_identity(
    tmp_path: Path, stores: tuple[Index, HashCache]
) -> None:
    index, _ = stores
    root = trees.a1111(tmp_path / "webui")
    p = trees.st(root / "models" / "Lora" / "x.safetensors", "lora_sd15_kohya")
    first = run(root, stores)
    index.update(first.files[0].id, civitai_version_id=1, identify_state="identified")
    trees.st(p, "embedding_sd15")  # rewritten in place with other content
    again = run(root, stores)
    f = again.files[0]
    assert again.changed == 1 and again.inspected == 1
    assert f.id == first.files[0].id and f.kind == "embedding" and "misplaced" in f.status
    assert f.row.civitai_version_id is None and f.row.identify_state is None


def test_removed_files_are_remembered_as_gone(
    tmp_path: Path, stores: tuple[Index, HashCache]
) -> None:
    index, _ = stores
    root = trees.a1111(tmp_path / "webui")
    p = trees.st(root / "models" / "Lora" / "x.safetensors", "lora_sd15_kohya")
    first = run(root, stores)
    p.unlink()
    again = run(root, stores)
    assert again.removed == 1 and again.files == []
    assert index.get(first.files[0].id).present == 0  # type: ignore[union-attr]


def test_a_gone_file_that_comes_back_under_another_name_keeps_its_row(
    tmp_path: Path, stores: tuple[Index, HashCache]
) -> None:
    # A scan sees it gone (moved out of the tree), a later one finds it back elsewhere:
    # the row kept as gone is found by the file's (device, inode, size, mtime).
    root = trees.a1111(tmp_path / "webui")
    p = trees.st(root / "models" / "Lora" / "x.safetensors", "lora_sd15_kohya")
    first = run(root, stores)
    away = tmp_path / "away.safetensors"
    p.rename(away)
    assert run(root, stores).removed == 1
    back = root / "models" / "Lora" / "sub" / "y.safetensors"
    back.parent.mkdir()
    away.rename(back)
    again = run(root, stores)
    assert again.moved == 1 and again.added == 0
    assert [f.id for f in again.files] == [first.files[0].id]


def test_hash_everything_only_when_asked(tmp_path: Path, stores: tuple[Index, HashCache]) -> None:
    root = trees.a1111(tmp_path / "webui")
    trees.st(root / "models" / "Lora" / "a.safetensors", "lora_sd15_kohya")
    trees.st(root / "models" / "Lora" / "b.safetensors", "lokr_sdxl")
    lazy = run(root, stores)
    assert lazy.hashed == 0 and all(f.sha256 is None for f in lazy.files)
    full = run(root, stores, hash_all=True)
    assert full.hashed == 2 and all(f.sha256 for f in full.files)


def test_comfyui_with_extra_model_paths(tmp_path: Path, stores: tuple[Index, HashCache]) -> None:
    root = tmp_path / "ComfyUI"
    expected = trees.messy_comfyui(root, tmp_path / "webui")
    result = run(root, stores)
    assert result.layout.name == "comfyui"
    assert statuses(result) == expected
    flux = by_rel(result, "models/checkpoints/flux1-dev.safetensors")
    assert flux.target == str(root / "models" / "diffusion_models")
    same = by_rel(result, "models/unet/same.safetensors")
    assert "path in its folder" in same.notes[0]
    assert str(tmp_path / "webui" / "models" / "LyCORIS") in result.folders


@pytest.mark.parametrize(
    ("make", "files", "expected"),
    [
        ("forge", {"models/Stable-diffusion/flux.safetensors": "flux_dev",
                   "models/text_encoder/clip_l.safetensors": "lora_sd15_kohya",
                   "models/Lora/loha.safetensors": "loha_sd15",
                   "models/Stable-diffusion/ckpt.safetensors": "sd15_pruned_fp16"},
         {"models/Stable-diffusion/flux.safetensors": {"ok"},
          "models/text_encoder/clip_l.safetensors": {"misplaced"},
          "models/Lora/loha.safetensors": {"ok"},
          "models/Stable-diffusion/ckpt.safetensors": {"ok"}}),
        ("sdnext", {"models/Stable-diffusion/flux.safetensors": "flux_dev",
                    "models/UNET/flux.safetensors": "flux_dev",
                    "models/embeddings/e.safetensors": "embedding_sd15",
                    "models/Lora/loha.safetensors": "loha_sd15"},
         {"models/Stable-diffusion/flux.safetensors": {"misplaced"},
          "models/UNET/flux.safetensors": {"ok"},
          "models/embeddings/e.safetensors": {"ok"},
          "models/Lora/loha.safetensors": {"ok"}}),
        ("stabilitymatrix", {"Models/StableDiffusion/flux.safetensors": "flux_dev",
                             "Models/Lora/ckpt.safetensors": "sd15_pruned_fp16",
                             "Models/Lora/locon.safetensors": "loha_sd15",
                             "Models/Embeddings/e.safetensors": "embedding_sdxl"},
         {"Models/StableDiffusion/flux.safetensors": {"misplaced"},
          "Models/Lora/ckpt.safetensors": {"misplaced"},
          "Models/Lora/locon.safetensors": {"ok"},
          "Models/Embeddings/e.safetensors": {"ok"}}),
    ],
)  # fmt: skip
def test_other_layouts(
    tmp_path: Path, stores: tuple[Index, HashCache], make: str, files: dict[str, str],
    expected: dict[str, set[str]],
) -> None:  # fmt: skip
    root = getattr(trees, make)(tmp_path / make)
    small = {"flux_dev", "sd15_pruned_fp16"}
    for rel, spec in files.items():
        trees.st(root / rel, spec, {"p": rel}, small=spec in small)
    result = run(root, stores)
    assert result.layout.name == make
    assert statuses(result) == expected


def test_forge_reports_the_lycoris_folder_it_no_longer_reads(
    tmp_path: Path, stores: tuple[Index, HashCache]
) -> None:
    root = trees.forge(tmp_path / "forge")
    trees.st(root / "models" / "LyCORIS" / "x.safetensors", "loha_sd15")
    result = run(root, stores)
    f = by_rel(result, "models/LyCORIS/x.safetensors")
    assert f.status == ["misplaced"] and f.target == str(root / "models" / "Lora")


def test_scan_of_selected_files_only(tmp_path: Path, stores: tuple[Index, HashCache]) -> None:
    folder = tmp_path / "downloads"
    a = trees.st(folder / "a.safetensors", "lora_sd15_kohya")
    trees.touch(folder / "a.civitai.info", "{}")
    trees.st(folder / "b.safetensors", "embedding_sd15")
    result = scan(folder, load_layout(folder, "folder"), *stores, only=[a])
    assert [f.rel for f in result.files] == ["a.safetensors", "a.civitai.info"]
    assert result.files[0].status == ["ok"]  # a plain folder takes every kind


def test_many_new_files_are_read_in_worker_processes(
    tmp_path: Path, stores: tuple[Index, HashCache], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sdlib.library import scan as scan_module

    root = tmp_path / "webui"
    expected = trees.messy_a1111(root, tmp_path / "outside")
    monkeypatch.setattr(scan_module, "PARALLEL_FROM", 2)
    events: list[Any] = []
    layout = load_layout(root, "auto")
    result = scan(root, layout, *stores, on_progress=events.append, workers=2)
    assert statuses(result) == expected and result.inspected == 18
    assert [e.done for e in events if e.stage == "inspect"] == list(range(1, 19))
    # Previews sniffed and sidecars read while the helper parsed (trees.messy_a1111 wrote
    # JPEG bytes as add_detail.preview.png, and version 62833 into its .civitai.info).
    by_rel = {f.rel: f for f in result.files}
    assert by_rel["models/Stable-diffusion/add_detail.preview.png"].row.true_ext in (
        ".jpg",
        ".jpeg",
    )
    model = by_rel["models/Stable-diffusion/add_detail.safetensors"].row
    assert (model.civitai_version_id, model.matched_by) == (62833, "sidecar")


def test_hugging_face_configs_are_not_orphan_sidecars(
    tmp_path: Path, stores: tuple[Index, HashCache]
) -> None:
    root = trees.comfyui(tmp_path / "ComfyUI")
    te = root / "models" / "text_encoders" / "t5"
    trees.st(te / "model.safetensors", "lokr_sdxl")
    for name in ("config.json", "tokenizer_config.json", "model.safetensors.index.json"):
        trees.touch(te / name, "{}")
    trees.touch(te / "gone.civitai.info", "{}")
    result = run(root, stores)
    assert statuses(result) == {
        "models/text_encoders/t5/model.safetensors": {"misplaced"},
        "models/text_encoders/t5/gone.civitai.info": {"orphan-sidecar"},
    }


def test_gguf_files_get_statuses_like_any_model(
    tmp_path: Path, stores: tuple[Index, HashCache]
) -> None:
    from sdlib.demo.specs import flux_transformer
    from sdlib.demo.writers import quantize_specs, write_gguf

    root = trees.comfyui(tmp_path / "ComfyUI")
    flux = quantize_specs(flux_transformer("", "BF16"), "Q4_K")
    schnell = quantize_specs(flux_transformer("", "BF16", guidance=False), "Q4_K")
    llm = {
        "token_embd.weight": ("Q4_K", (32000, 4096)),
        "blk.0.attn_q.weight": ("Q4_K", (4096, 4096)),
    }
    files = {
        "models/diffusion_models/flux1-dev-Q4_K_S.gguf": flux,
        "models/loras/flux1-schnell-Q4_K_S.gguf": schnell,
        "models/diffusion_models/llama.gguf": llm,
    }
    for rel, specs in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        write_gguf(root / rel, specs, {"general.file_type": 14})
    result = run(root, stores)
    assert statuses(result) == {
        "models/diffusion_models/flux1-dev-Q4_K_S.gguf": {"ok"},
        "models/loras/flux1-schnell-Q4_K_S.gguf": {"misplaced"},
        "models/diffusion_models/llama.gguf": {"unknown"},
    }
    ok = by_rel(result, "models/diffusion_models/flux1-dev-Q4_K_S.gguf")
    assert (ok.kind, ok.base) == ("unet", "flux")
    assert ok.to_dict()["quantization"] == "Q4_K_S" and ok.to_dict()["precision"] is None
    moved = by_rel(result, "models/loras/flux1-schnell-Q4_K_S.gguf")
    assert moved.target == str(root / "models" / "diffusion_models")
    assert "GGUF" not in " ".join(by_rel(result, "models/diffusion_models/llama.gguf").notes)


def test_files_classified_by_an_older_sdlib_are_read_again_once(
    tmp_path: Path, stores: tuple[Index, HashCache]
) -> None:
    root = trees.comfyui(tmp_path / "comfy")
    cv = trees.st(root / "models" / "clip_vision" / "clip_h.safetensors", "clip_vision_h")
    trees.st(root / "models" / "loras" / "detail.safetensors", "lora_sd15_kohya")
    first = run(root, stores)
    assert by_rel(first, "models/clip_vision/clip_h.safetensors").kind == "clip-vision"
    index = stores[0]
    # What an index written by sdlib 1 holds: CLIP vision was "unknown" then, no version,
    # and the file was already identified.
    rows = {r.path: r for r in index.files_under([str(root)])}
    old = rows[str(cv)]
    assert old.id is not None and old.classified_by == 2
    index.update(old.id, kind="unknown", variant=None, classified_by=None, sha256="AB" * 32,
                 civitai_version_id=42, identify_state="identified")  # fmt: skip
    again = run(root, stores)
    assert again.inspected == 1  # only the outdated row is read; the LoRA is not opened
    row = next(r for r in index.files_under([str(root)]) if r.path == str(cv))
    assert (row.kind, row.variant, row.classified_by) == ("clip-vision", "clip-vision-h", 2)
    assert (row.sha256, row.civitai_version_id, row.identify_state) == (
        "AB" * 32, 42, "identified"
    )  # fmt: skip
    assert by_rel(again, "models/clip_vision/clip_h.safetensors").status == ["ok"]
    assert run(root, stores).inspected == 0


@pytest.mark.skipif(os.name == "nt", reason="POSIX file names are bytes")
def test_names_that_are_not_utf8_are_indexed_moved_and_rescanned(
    tmp_path: Path, stores: tuple[Index, HashCache]
) -> None:
    """Bytes 0xff 0xfe in a name reach Python as lone surrogates, which SQLite refuses; the
    index must still store, find and move such a file (and hash it) like any other."""
    root = trees.a1111(tmp_path / "webui")
    lora = root / "models" / "Lora"
    lora.mkdir(parents=True)
    raw = os.fsencode(lora) + b"/caf\xff\xfe.safetensors"
    name = os.fsdecode(raw)
    trees.st(Path(name), "lora_sd15_kohya")
    shutil.copyfile(name, lora / "twin.safetensors")  # same size: both get hashed
    first = run(root, stores)
    rep = next(f for f in first.files if f.path == name)
    assert rep.id is not None and rep.kind == "lora" and rep.sha256
    assert "illegal-or-too-long-name" in rep.status and "duplicate" in rep.status
    again = run(root, stores)
    assert (again.inspected, again.added) == (0, 0)
    assert next(f for f in again.files if f.path == name).id == rep.id
    index, _ = stores
    assert index.file_at(name) is not None and index.file_at(name).path == name  # type: ignore[union-attr]
    moved = os.fsdecode(os.fsencode(lora) + b"/\xe9t\xe9.safetensors")
    os.rename(name, moved)
    third = run(root, stores)
    assert third.moved == 1 and next(f for f in third.files if f.path == moved).id == rep.id
    assert [h["event"] for h in index.history(rep.id)] == ["added", "moved"]
    # Other text (a Civitai name from JSON "\ud800") with a lone surrogate is stored too.
    index.update(rep.id, civitai_model_name="Model \ud800")
    assert index.get(rep.id).civitai_model_name == "Model \ufffd"  # type: ignore[union-attr]
