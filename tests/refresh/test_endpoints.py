"""Which refresh calls each webUI gets for the kinds that changed. The expected routes are
the ones reference/shared-store.md section 2 lists from each webUI's source."""

from __future__ import annotations

import pytest

from sdlib.refresh import plan_calls
from sdlib.taxonomy import Kind

CKPT = "POST /sdapi/v1/refresh-checkpoints"
VAE = "POST /sdapi/v1/refresh-vae"
EMB = "POST /sdapi/v1/refresh-embeddings"
LORAS = "POST /sdapi/v1/refresh-loras"
UNETS = "POST /sdapi/v1/refresh-unets"
CONTROLNET = "GET /controlnet/model_list?update=true"


def calls(ui: str, *kinds: Kind | str) -> list[str]:
    return [f"{c.method} {c.path}" for c in plan_calls(ui, kinds).calls]


@pytest.mark.parametrize("ui", ["a1111", "forge", "reforge"])
def test_a1111_family_gets_one_call_per_list_that_changed(ui: str) -> None:
    assert calls(ui, Kind.LORA) == [LORAS]
    assert calls(ui, "lycoris") == [LORAS]  # LyCORIS files are in the LoRA list
    assert calls(ui, Kind.LORA, Kind.LYCORIS) == [LORAS]  # once
    assert calls(ui, Kind.CHECKPOINT) == [CKPT]
    assert calls(ui, Kind.EMBEDDING) == [EMB]
    assert calls(ui, Kind.CONTROLNET) == [CONTROLNET]
    assert calls(ui, Kind.LORA, Kind.VAE, Kind.CHECKPOINT, Kind.EMBEDDING) == [
        CKPT,
        VAE,
        EMB,
        LORAS,
    ]


def test_kinds_without_a_list_or_a_call_make_no_call() -> None:
    assert calls("a1111") == []
    assert calls("a1111", Kind.UNKNOWN, "not-a-kind") == []
    plan = plan_calls("a1111", [Kind.HYPERNETWORK, Kind.UPSCALER])
    assert plan.calls == ()
    [caveat] = plan.caveats
    assert "hypernetworks" in caveat and "upscalers" in caveat and "refresh button" in caveat


def test_forge_says_its_vae_and_text_encoder_menu_needs_its_own_button() -> None:
    plan = plan_calls("forge", [Kind.VAE, Kind.TEXT_ENCODER])
    assert [c.path for c in plan.calls] == ["/sdapi/v1/refresh-vae"]
    assert len(plan.caveats) == 1 and "Forge" in plan.caveats[0]
    assert plan_calls("a1111", [Kind.VAE]).caveats == ()


def test_sdnext_has_unets_and_no_embeddings_route() -> None:
    assert calls("sdnext", Kind.UNET, Kind.CHECKPOINT) == [CKPT, UNETS]
    assert calls("sdnext", Kind.LORA) == [LORAS]
    plan = plan_calls("sdnext", [Kind.EMBEDDING])
    assert plan.calls == () and "embeddings" in plan.caveats[0]
    assert calls("a1111", Kind.UNET) == [CKPT]  # A1111 has no refresh-unets


def test_comfyui_has_nothing_to_call_and_says_so_once() -> None:
    plan = plan_calls("comfyui", [Kind.LORA, Kind.CHECKPOINT, Kind.VAE])
    assert plan.calls == ()
    [note] = plan.caveats
    assert "nothing to call" in note
    assert plan_calls("comfyui", []).caveats == ()  # nothing changed: nothing to say
