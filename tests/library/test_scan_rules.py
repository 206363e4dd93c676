"""The per-scan shortcuts of the report stage give the answers of the long way: the layout
rules remembered by name ending (``_rules.Rules``) and the plain-name check of
``name_problem``. Expected values by hand from reference/layouts.md (A1111 lists VAEs with
case-sensitive extensions, excludes ``.vae.*`` from checkpoints) and Windows' name rules."""

from __future__ import annotations

import random

import pytest

from sdlib.library._rules import Rules
from sdlib.library._status import name_problem
from sdlib.library._walk import rules_listing
from sdlib.library.layouts import A1111, COMFYUI, PLAIN, STABILITYMATRIX, Layout
from sdlib.taxonomy import Base, Kind


def test_a1111_answers_by_hand() -> None:
    rules = Rules(A1111)
    ckpt = "models/Stable-diffusion"
    for _ in range(2):  # the second round comes from what the first remembered
        assert [r.kind for r in rules.listing(ckpt, "dream_00012.safetensors")] == [Kind.CHECKPOINT]
        # A1111's per-checkpoint VAE: listed beside the checkpoints as a VAE, not as one.
        vae = rules.listing(ckpt, "dream_00012.vae.safetensors")
        assert [r.kind for r in vae] == [Kind.VAE]
        assert rules.listing(ckpt, "notes.txt") == [] and rules.listing(ckpt, "README") == []
        assert rules.accepts("models/VAE", Kind.VAE, Base.SD1, "kl-f8.pt")
        assert not rules.accepts("models/VAE", Kind.VAE, Base.SD1, "kl-f8.PT")  # case-sensitive
        assert rules.accepts("models/Lora", Kind.LORA, Base.SD1, "detail.SafeTensors")
        assert not rules.accepts("models/Lora", Kind.LORA, Base.SD1, "detail.gguf")
        lycoris = rules.here("models/Lora", Kind.LYCORIS, Base.SD1)
        assert {r.kind for r in lycoris} == {Kind.LORA, Kind.LYCORIS}


@pytest.mark.parametrize("layout", [A1111, COMFYUI, STABILITYMATRIX, PLAIN], ids=lambda x: x.name)
def test_remembered_answers_equal_the_long_way(layout: Layout) -> None:
    rng = random.Random(7)
    parts = ["a", "B", "vae", "VAE", "safetensors", "SafeTensors", "pt", "PT", "ckpt", "gguf",
             "ı", "İ", "", "sft", "bin", "0001"]  # fmt: skip
    folders = sorted({f for r in layout.rules for f in r.folders}) + ["elsewhere"]
    rules = Rules(layout)
    for _ in range(3000):
        name = ".".join(rng.choice(parts) for _ in range(rng.randint(1, 4)))
        folder = rng.choice(folders)
        assert rules.listing(folder, name) == rules_listing(layout, folder, name), name
        for kind in (Kind.CHECKPOINT, Kind.LORA, Kind.VAE, Kind.EMBEDDING, Kind.UNET):
            base = rng.choice([Base.SD1, Base.SDXL, Base.FLUX, Base.UNKNOWN])
            slow = any(r.accepts_name(name) for r in rules.here(folder, kind, base))
            assert rules.accepts(folder, kind, base, name) is slow, (folder, kind, name)


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("lora_sd15_kohya_00001.safetensors", False),
        ("Detail Tweaker (v1.0) [SD1.5].safetensors", False),
        ("x.safetensors.part", True),  # sdlib's own temporary ending
        ("CON.safetensors", True),
        ("com1.pt", True),
        ("ends with a dot.", True),
        ("trailing space ", True),
        (".hidden.safetensors", True),
        ("a:b.safetensors", True),
        ("a" * 196 + ".pt", False),  # 199 bytes
        ("a" * 197 + ".pt", False),  # 200 bytes: still room
        ("a" * 198 + ".pt", True),  # 201 bytes: no room for sidecar suffixes
        ("_", True),
        ("é.safetensors", False),  # not ASCII: the long way, still fine
        ("e\u0301.safetensors", False),  # not ASCII either: the long way
        ("a\u202eexe.pt", True),  # a bidi override disguises the extension
    ],
)
def test_name_problem_shortcut(name: str, bad: bool) -> None:
    assert (name_problem(name) is not None) is bad, name_problem(name)
