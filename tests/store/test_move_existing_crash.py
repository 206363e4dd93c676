"""`sdlib link --move-existing` killed at each step (the journal's crash hook: the process
exits 137 with no cleanup, as under kill -9): no byte is lost at any point, running the same
command again finishes the moves, and `sdlib unlink` instead puts the tree back exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import trees
from tests.support.cli import isolated_env, run_sdlib
from tests.support.trees import sha256, st, touch, tree_state

pytestmark = pytest.mark.slow  # a handful of killed and re-run processes


def _setup(base: Path) -> tuple[dict[str, str], Path, Path, dict[str, str]]:
    root = trees.a1111(base / "webui")
    store = base / "store"
    ckpt, lora = root / "models" / "Stable-diffusion", root / "models" / "Lora"
    made = [
        st(ckpt / "one.safetensors", "sd15_pruned_fp16", {"n": "1"}, small=True),
        touch(ckpt / "one.civitai.info", '{"id": 1}'),
        st(lora / "a" / "two.safetensors", "lora_sd15_kohya", {"n": "2"}, small=True),
        st(lora / "three.safetensors", "lora_sd15_kohya", {"n": "3"}, small=True),
        touch(lora / "three.preview.png", b"\x89PNG\r\n\x1a\n3"),
    ]
    config = base / "config.toml"
    config.write_text(f"[store]\npath = {json.dumps(str(store))}\n", encoding="utf-8")
    env = isolated_env(base, SDLIB_CONFIG=str(config), NO_COLOR="1")
    done = run_sdlib("store", "init", store, env=env)
    assert done.returncode == 0, done.stderr
    digests = {p.name: sha256(p) for p in made}
    return env, root, store, digests


def _all_there(root: Path, store: Path, digests: dict[str, str]) -> None:
    """Every file's bytes are under its name in the root or in the store (a part file may
    be left beside one); none is lost, none is changed."""
    found: dict[str, set[str]] = {}
    for top in (root, store):
        for p in top.rglob("*"):
            if p.is_file() and not p.is_symlink() and p.name in digests:
                found.setdefault(p.name, set()).add(sha256(p))
    assert found == {name: {d} for name, d in digests.items()}


@pytest.mark.parametrize("crash_after", [1, 2, 4, 6])
def test_killed_then_finished_or_unlinked(tmp_path: Path, crash_after: int) -> None:
    env, root, store, digests = _setup(tmp_path)
    before, store_before = tree_state(root), tree_state(store)

    crashed = run_sdlib("link", root, "--ui", "a1111", "--move-existing",
                        env={**env, "SDLIB_TEST_CRASH_AFTER": str(crash_after)})  # fmt: skip
    assert crashed.returncode == 137, (crashed.stdout, crashed.stderr)
    _all_there(root, store, digests)

    if crash_after % 2 == 0:  # finish it: the same command again
        again = run_sdlib("link", root, "--ui", "a1111", "--move-existing", "--json", env=env)
        assert again.returncode == 0, again.stderr
        out = json.loads(again.stdout)
        assert out["resumed"] is True and not out["moved"]["failed"]
        for rel in ("StableDiffusion/one.safetensors", "StableDiffusion/one.civitai.info",
                    "Lora/a/two.safetensors", "Lora/three.safetensors",
                    "Lora/three.preview.png"):  # fmt: skip
            assert sha256(store / rel) == digests[rel.rsplit("/", 1)[1]]
        assert not list(root.rglob("*.safetensors"))  # only the links lead to them now
        assert not list(store.rglob("*.sdlib-part"))
    undone = run_sdlib("unlink", root, env=env)
    assert undone.returncode == 0, undone.stderr
    assert "moved back" in undone.stdout
    assert tree_state(root) == before
    assert tree_state(store) == store_before
