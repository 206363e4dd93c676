"""Which refresh calls a webUI offers for the kinds of model that changed (pure).

Only what the webUIs' source shows (reference/shared-store.md section 2):

* A1111, Forge, reForge: ``POST /sdapi/v1/refresh-checkpoints`` (Forge also lists
  Flux/SD3 UNets from the checkpoint folder), ``refresh-vae``, ``refresh-embeddings``
  (A1111 1.8.0 and later), ``refresh-loras`` (LoRA and LyCORIS share its list), and
  ``GET /controlnet/model_list?update=true`` when sd-webui-controlnet is installed. No call
  exists for hypernetworks or upscalers. Forge 2 rebuilds its VAE / text-encoder list only
  from its own refresh button or at start-up: no API route reaches it.
* SD.Next: ``refresh-checkpoints``, ``refresh-unets``, ``refresh-vae``, ``refresh-loras``;
  no ``refresh-embeddings`` route.
* ComfyUI: nothing to call. It re-reads a model folder whose mtime changed on the next
  request; an open browser tab shows the new files after "Refresh Node Definitions" (R).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sdlib.taxonomy import Kind

__all__ = ["A1111_FAMILY", "Call", "RefreshPlan", "kind_words", "plan_calls"]

#: The webUIs that speak A1111's API (Forge and reForge are forks of it).
A1111_FAMILY = ("a1111", "forge", "reforge")


@dataclass(frozen=True)
class Call:
    """One request that makes a webUI rescan one of its model lists."""

    method: str
    #: Below the webUI's URL, with any query string.
    path: str
    #: The list it refreshes, in words ("LoRAs").
    lists: str


_CHECKPOINTS = Call("POST", "/sdapi/v1/refresh-checkpoints", "checkpoints")
_UNETS = Call("POST", "/sdapi/v1/refresh-unets", "UNets")
_VAE = Call("POST", "/sdapi/v1/refresh-vae", "VAEs")
_EMBEDDINGS = Call("POST", "/sdapi/v1/refresh-embeddings", "embeddings")
_LORAS = Call("POST", "/sdapi/v1/refresh-loras", "LoRAs")
_CONTROLNET = Call("GET", "/controlnet/model_list?update=true", "ControlNet models")

#: Kind -> call, per API. The order of the calls made is this table's order.
_A1111_CALLS: dict[Kind, Call] = {
    Kind.CHECKPOINT: _CHECKPOINTS,
    Kind.UNET: _CHECKPOINTS,
    Kind.VAE: _VAE,
    Kind.EMBEDDING: _EMBEDDINGS,
    Kind.LORA: _LORAS,
    Kind.LYCORIS: _LORAS,
    Kind.CONTROLNET: _CONTROLNET,
    Kind.IP_ADAPTER: _CONTROLNET,
}
_SDNEXT_CALLS: dict[Kind, Call] = {
    Kind.CHECKPOINT: _CHECKPOINTS,
    Kind.UNET: _UNETS,
    Kind.VAE: _VAE,
    Kind.LORA: _LORAS,
    Kind.LYCORIS: _LORAS,
}

_WORDS = {
    Kind.CHECKPOINT: "checkpoints", Kind.UNET: "UNets", Kind.LORA: "LoRAs",
    Kind.LYCORIS: "LoRAs", Kind.EMBEDDING: "embeddings", Kind.HYPERNETWORK: "hypernetworks",
    Kind.VAE: "VAEs", Kind.CONTROLNET: "ControlNet models", Kind.UPSCALER: "upscalers",
    Kind.TEXT_ENCODER: "text encoders", Kind.IP_ADAPTER: "IP-Adapters",
    Kind.MOTION_MODULE: "motion modules", Kind.CLIP_VISION: "CLIP vision models",
}  # fmt: skip

COMFYUI_NOTE = (
    "nothing to call: ComfyUI lists new files on its next request "
    "(an open tab shows them after Refresh Node Definitions, key R)"
)


@dataclass(frozen=True)
class RefreshPlan:
    """What to ask one webUI, and what it cannot be told about."""

    ui: str
    calls: tuple[Call, ...]
    #: Phrases for the changes no call covers ("no refresh call for upscalers ...").
    caveats: tuple[str, ...] = ()


def kind_words(kinds: Iterable[Kind]) -> str:
    """``{LORA, VAE}`` -> ``"LoRAs, VAEs"`` (each list named once, in Kind order)."""
    order = list(Kind)
    words = [_WORDS[k] for k in sorted(set(kinds), key=order.index) if k in _WORDS]
    return ", ".join(dict.fromkeys(words))


def plan_calls(ui: str, kinds: Iterable[Kind | str]) -> RefreshPlan:
    """The calls that make ``ui`` (a1111, forge, reforge, sdnext, comfyui) see new files
    of ``kinds``; unknown kinds are ignored. A ComfyUI plan has no calls and one caveat."""
    changed = {k for k in map(_kind, kinds) if k is not None and k is not Kind.UNKNOWN}
    ui = ui.lower()
    if ui == "comfyui":
        return RefreshPlan(ui, (), (COMFYUI_NOTE,) if changed else ())
    table = _SDNEXT_CALLS if ui == "sdnext" else _A1111_CALLS
    calls = tuple(dict.fromkeys(c for k, c in table.items() if k in changed))
    uncovered = {k for k in changed if k not in table}
    caveats: list[str] = []
    if ui == "forge" and changed & {Kind.VAE, Kind.TEXT_ENCODER}:
        # Forge 2's VAE / text-encoder menu (modules_forge/main_entry.py) has no API refresh.
        caveats.append("Forge shows new VAEs and text encoders after its refresh button or a "
                       "restart")  # fmt: skip
        uncovered.discard(Kind.TEXT_ENCODER)
    if uncovered:
        caveats.append(f"no refresh call for {kind_words(uncovered)} (use the webUI's refresh "
                       "button)")  # fmt: skip
    return RefreshPlan(ui, calls, tuple(caveats))


def _kind(value: Kind | str) -> Kind | None:
    if isinstance(value, Kind):
        return value
    try:
        return Kind(str(value).lower())
    except ValueError:
        return None
