"""Where each webUI looks for each kind of model, as data.

Facts from the front ends' own code (reference layouts.md sections 1-6 and 9): folder per
kind, accepted extensions (and whether the front end compares them case-sensitively),
whether subfolders are scanned, and how the front end keys a model (by file stem, by file
name, or by path relative to its folder), which decides whether two files with the same
name in different subfolders clash. ``detect`` recognises a root. A kind may have several
rules (A1111 lists ``*.vae.safetensors`` from the checkpoint folder as VAEs; each upscaler
family has its own folder and extensions); the first rule of a kind is where sdlib puts
new files. Folders are relative to the root, or absolute (ComfyUI's
``extra_model_paths.yaml`` adds such folders, see :mod:`sdlib.library.comfy_paths`).

Pure data and pure functions: no file is read except by ``detect``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path

from sdlib.errors import UsageError
from sdlib.taxonomy import Base, Kind


class KeyedBy(str, Enum):
    STEM = "stem"  # file name without extension: the same stem anywhere clashes
    NAME = "name"  # file name with extension
    RELPATH = "relpath"  # path relative to the kind's folder: subfolders keep names apart


PT = (".ckpt", ".pt", ".safetensors")
COMFY_PT = (".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft")
#: Every extension a model file has in the wild (what a scan looks at).
MODEL_EXTENSIONS = COMFY_PT + (".gguf",)
#: A1111 lists these from the checkpoint folder as VAEs (``modules/sd_vae.py``).
VAE_NEAR_CHECKPOINT = (".vae.ckpt", ".vae.pt", ".vae.safetensors")


@dataclass(frozen=True)
class FolderRule:
    kind: Kind
    #: Folders relative to the root; sdlib places new files in the first.
    folders: tuple[str, ...]
    extensions: tuple[str, ...]
    keyed_by: KeyedBy = KeyedBy.STEM
    recursive: bool = True
    #: The front end compares extensions case-sensitively (``X.SAFETENSORS`` is not listed).
    case_sensitive: bool = False
    #: Name endings this rule refuses although the extension matches.
    exclude: tuple[str, ...] = ()

    def accepts_name(self, name: str) -> bool:
        """Whether the front end lists a file with this name under this rule."""
        low = name.lower()
        if any(low.endswith(e) for e in self.exclude):
            return False
        test = name if self.case_sensitive else low
        return any(test.endswith(e) for e in self.extensions)


#: Kinds one front-end list holds together: a LyCORIS in the LoRA folder is where it belongs.
_SHARED_LISTS = (frozenset({Kind.LORA, Kind.LYCORIS}),)


def list_kind(kind: Kind) -> Kind:
    """The kind that names the front end's list a file of ``kind`` appears in."""
    return Kind.LORA if kind is Kind.LYCORIS else kind


def folder_within(folder: str, parent: str) -> bool:
    """Whether layout folder ``folder`` is ``parent`` or inside it (both relative to the
    same root, or absolute; either separator; case as the OS compares it)."""
    a, b = (os.path.normcase(os.path.normpath(p.replace("\\", "/"))) for p in (folder, parent))
    if a == b:
        return True
    return b not in (".", "") and a.startswith(b.rstrip(os.sep) + os.sep)


def _before(folders: tuple[str, ...], anchor: str, new: str) -> tuple[str, ...]:
    """``folders`` with ``new`` inserted just ahead of ``anchor`` (once)."""
    out: list[str] = []
    for f in folders:
        if f == anchor:
            out.append(new)
        out.append(f)
    return tuple(dict.fromkeys(out))


@dataclass(frozen=True)
class Layout:
    name: str
    title: str
    rules: tuple[FolderRule, ...]
    #: Paths (relative to a candidate root) whose presence identifies this front end.
    markers: tuple[str, ...]
    #: Bases whose checkpoints this front end loads from the UNet/diffusion-model folder.
    dit_bases: frozenset[Base] = frozenset()
    overrides: Mapping[Kind, str] = field(default_factory=dict)
    #: A plain folder: every kind is welcome anywhere (``--to DIR``, ``identify FILE``).
    any_kind: bool = False
    #: Folders this front end no longer reads but older versions did: scanned so that what
    #: is left there is reported (as misplaced) instead of silently ignored.
    legacy: tuple[str, ...] = ()

    def rule(self, kind: Kind) -> FolderRule | None:
        for rule in self.rules:
            if rule.kind is kind:
                return rule
        return None

    def rules_for(self, kind: Kind) -> tuple[FolderRule, ...]:
        return tuple(r for r in self.rules if r.kind is kind)

    def accepted_folders(self, kind: Kind, base: Base = Base.UNKNOWN) -> tuple[str, ...]:
        """Every folder the front end loads a file of this kind and base from."""
        kinds = {kind}
        for shared in _SHARED_LISTS:
            if kind in shared:
                kinds |= shared
        if kind is Kind.CHECKPOINT and base in self.dit_bases:
            kinds.add(Kind.UNET)
        out: list[str] = []
        for rule in self.rules:
            if rule.kind in kinds:
                out += [f for f in rule.folders if f not in out]
        return tuple(out)

    def scan_folders(self) -> tuple[str, ...]:
        """Each folder any rule names, once, in rule order."""
        out: list[str] = []
        for rule in self.rules:
            out += [f for f in rule.folders if f not in out]
        return tuple(out + [f for f in self.legacy if f not in out])

    def with_extra_folders(self, extra: Mapping[Kind, tuple[str, ...]], *, first: bool) -> Layout:
        """More folders per kind (ComfyUI's extra paths); ``first`` makes them the default."""
        rules = list(self.rules)
        for kind, folders in extra.items():
            index = next((i for i, r in enumerate(rules) if r.kind is kind), None)
            if index is None:
                rules.append(FolderRule(kind, tuple(folders), COMFY_PT, KeyedBy.RELPATH))
                continue
            old = rules[index]
            new = tuple(f for f in folders if f not in old.folders)
            merged = new + old.folders if first else old.folders + new
            rules[index] = replace(old, folders=merged)
        return replace(self, rules=tuple(rules))

    def folder_for(self, kind: Kind, base: Base = Base.UNKNOWN) -> str | None:
        """The folder (relative to the root) where a file of this kind and base goes."""
        if kind in self.overrides:
            return self.overrides[kind]
        if kind is Kind.CHECKPOINT and base in self.dit_bases and self.rule(Kind.UNET):
            kind = Kind.UNET
        rule = self.rule(kind)
        return rule.folders[0] if rule else None

    def with_overrides(self, folders: Mapping[str, str]) -> Layout:
        """The config's ``[library] folders`` table: {"lora": "models/Lora/civitai", ...}.

        A download folder says where sdlib puts NEW files of a kind (``folder_for``); it
        never hides what the webUI loads. The webUI's own folders stay in every rule, so
        ``scan``, ``identify``, ``organize`` and ``export`` still see all of ``models/Lora``
        and a LoRA anywhere the webUI loads LoRAs from is where it belongs. A folder inside
        one the kind is already read from (``models/Lora/civitai``) is just a place in it;
        one elsewhere (``models/MyLoras``, ``D:/loras``) is read too, as a folder of that kind:
        sdlib put files there, and a user who sends a kind elsewhere has normally pointed
        the webUI there as well (A1111's ``--lora-dir``, ComfyUI's extra paths).
        """
        parsed: dict[Kind, str] = dict(self.overrides)
        rules = list(self.rules)
        for key, value in folders.items():
            try:
                kind = Kind(key)
            except ValueError:
                raise UsageError(f"library.folders: unknown kind {key!r}") from None
            parsed[kind] = value
            own = [r for r in rules if r.kind is kind]
            if not own:
                rules.append(FolderRule(kind, (value,), MODEL_EXTENSIONS))
                continue
            if any(folder_within(value, f) for r in own if r.recursive for f in r.folders):
                continue  # already read: the webUI lists it, nothing more to scan
            default = own[0].folders[0]
            rules = [
                replace(r, folders=_before(r.folders, default, value)) if default in r.folders
                else r
                for r in rules
            ]  # fmt: skip
        return replace(self, overrides=parsed, rules=tuple(rules))

    def model_folders(self) -> list[tuple[Kind, str]]:
        """Every (kind, folder) pair this front end scans."""
        pairs = [(r.kind, f) for r in self.rules for f in r.folders]
        pairs += [(k, f) for k, f in self.overrides.items() if (k, f) not in pairs]
        return pairs


_CN_EXT = (".pt", ".pth", ".ckpt", ".safetensors", ".bin")


def _upscalers(
    names: tuple[str, ...], ext: tuple[str, ...], root: str = "models"
) -> tuple[FolderRule, ...]:
    return tuple(FolderRule(Kind.UPSCALER, (f"{root}/{n}",), ext) for n in names)


def _a1111_rules(embeddings: str = "embeddings", lycoris: bool = True) -> tuple[FolderRule, ...]:
    """A1111 1.10 (layouts.md 1.2); Forge and reForge start from it."""
    lora_folders = ("models/Lora", "models/LyCORIS") if lycoris else ("models/Lora",)
    return (
        FolderRule(Kind.CHECKPOINT, ("models/Stable-diffusion",), (".ckpt", ".safetensors"),
                   KeyedBy.RELPATH, exclude=VAE_NEAR_CHECKPOINT),
        FolderRule(Kind.LORA, lora_folders, PT),
        FolderRule(Kind.LYCORIS, lora_folders[::-1] if lycoris else lora_folders, PT),
        FolderRule(Kind.EMBEDDING, (embeddings,), (".pt", ".bin", ".safetensors")),
        # glob("**/*.pt"): case-sensitive on Linux.
        FolderRule(Kind.HYPERNETWORK, ("models/hypernetworks",), (".pt",), case_sensitive=True),
        # Keyed by basename; listed with a case-sensitive glob.
        FolderRule(Kind.VAE, ("models/VAE",), PT, KeyedBy.NAME, case_sensitive=True),
        FolderRule(Kind.VAE, ("models/Stable-diffusion",), VAE_NEAR_CHECKPOINT, KeyedBy.NAME,
                   case_sensitive=True),
        # sd-webui-controlnet: lower-cased stem as key, case-sensitive extension test.
        FolderRule(Kind.CONTROLNET, ("models/ControlNet",), _CN_EXT, case_sensitive=True),
        FolderRule(Kind.IP_ADAPTER, ("models/ControlNet",), _CN_EXT, case_sensitive=True),
        # 1.10 upscalers take no .safetensors except DAT.
        *_upscalers(("ESRGAN", "SwinIR"), (".pt", ".pth")),
        *_upscalers(("RealESRGAN", "ScuNET"), (".pth",)),
        *_upscalers(("DAT",), (".pt", ".pth", ".safetensors")),
        FolderRule(Kind.MOTION_MODULE, ("extensions/sd-webui-animatediff/model",),
                   (".ckpt", ".safetensors")),
    )  # fmt: skip


def _with_upscaler_ext(
    rules: tuple[FolderRule, ...], ext: tuple[str, ...]
) -> tuple[FolderRule, ...]:
    return tuple(replace(r, extensions=ext) if r.kind is Kind.UPSCALER else r for r in rules)


_FORGE_CLIP_VISION = FolderRule(
    Kind.CLIP_VISION, ("models/ControlNetPreprocessor/clip_vision",),
    (".pth", ".safetensors", ".bin"),
)  # fmt: skip

_FORGE_EXTRA = (
    # Forge 2 loads Flux/SD3/GGUF diffusion models from the checkpoint folder.
    FolderRule(Kind.UNET, ("models/Stable-diffusion",), (".safetensors", ".gguf"),
               KeyedBy.RELPATH, exclude=VAE_NEAR_CHECKPOINT),
    # The VAE / Text Encoder module list: basename keys, case-sensitive suffix test.
    FolderRule(Kind.TEXT_ENCODER, ("models/text_encoder",),
               (".ckpt", ".pt", ".bin", ".safetensors", ".gguf"), KeyedBy.NAME,
               case_sensitive=True),
    *_upscalers(("HAT",), (".pt", ".pth")),
    # The IP-Adapter preprocessors' image encoders (clip_h.pth, clip_g.pth...).
    _FORGE_CLIP_VISION,
)  # fmt: skip


def _forge_rules() -> tuple[FolderRule, ...]:
    rules = []
    for r in _a1111_rules(lycoris=False):
        if r.kind is Kind.CHECKPOINT:
            r = replace(r, extensions=(".ckpt", ".safetensors", ".gguf"))
        elif r.kind is Kind.VAE and r.folders == ("models/VAE",):
            r = replace(r, extensions=(".ckpt", ".pt", ".bin", ".safetensors", ".gguf"))
        elif r.kind in (Kind.CONTROLNET, Kind.IP_ADAPTER):
            r = replace(r, extensions=(*_CN_EXT, ".patch"))
        elif r.kind is Kind.UPSCALER and r.folders[0] in ("models/ESRGAN", "models/DAT"):
            r = replace(r, extensions=(".pt", ".pth", ".safetensors"))
        rules.append(r)
    return (*rules, *_FORGE_EXTRA)


A1111 = Layout(
    "a1111",
    "AUTOMATIC1111 stable-diffusion-webui",
    _a1111_rules(),
    markers=("webui.py", "modules/sd_models.py"),
)

FORGE = Layout(
    "forge",
    "Stable Diffusion WebUI Forge",
    _forge_rules(),
    markers=("webui.py", "modules_forge", "backend"),
    legacy=("models/LyCORIS",),  # Forge 2 reads LoRA and LyCORIS files from models/Lora only
)

_REFORGE_UPSCALERS = ("COMPACT", "GRL", "HAT", "OmniSR", "PLKSR", "RCAN", "SPAN", "SRFormer")

REFORGE = Layout(
    "reforge",
    "Stable Diffusion WebUI reForge",
    _with_upscaler_ext(
        _a1111_rules() + _upscalers(_REFORGE_UPSCALERS, ()), (".pt", ".pth", ".safetensors")
    )
    + (
        # reForge main: plural folder, titles "TE: <subdir>/<stem>".
        FolderRule(Kind.TEXT_ENCODER, ("models/text_encoders",),
                   (".safetensors", ".ckpt", ".pth", ".bin"), KeyedBy.RELPATH),
        _FORGE_CLIP_VISION,
    ),
    markers=("webui.py", "modules_forge", "ldm_patched"),
)  # fmt: skip

SDNEXT = Layout(
    "sdnext",
    "SD.Next",
    (
        FolderRule(Kind.CHECKPOINT, ("models/Stable-diffusion",), (".safetensors",),
                   KeyedBy.RELPATH, exclude=VAE_NEAR_CHECKPOINT),
        FolderRule(Kind.UNET, ("models/UNET",), (".safetensors", ".gguf", ".pth")),
        FolderRule(Kind.LORA, ("models/Lora",), PT),
        FolderRule(Kind.LYCORIS, ("models/Lora",), PT),
        FolderRule(Kind.EMBEDDING, ("models/embeddings",), (".pt", ".safetensors")),
        FolderRule(Kind.HYPERNETWORK, ("models/hypernetworks",), (".pt",)),
        FolderRule(Kind.VAE, ("models/VAE",), PT, KeyedBy.NAME),
        FolderRule(Kind.CONTROLNET, ("models/control/controlnet", "models/control/adapter"),
                   (".safetensors", ".pth", ".bin")),
        *_upscalers(("ESRGAN", "RealESRGAN", "SwinIR", "SCUNet"), (".pt", ".pth", ".safetensors")),
        FolderRule(Kind.TEXT_ENCODER, ("models/Text-encoder",), (".safetensors", ".gguf")),
        FolderRule(Kind.MOTION_MODULE, ("models/motion",), (".safetensors", ".ckpt", ".pth")),
    ),
    markers=("launch.py", "installer.py", "modules/sd_models.py"),
    dit_bases=frozenset({Base.SD3, Base.FLUX, Base.FLUX2, Base.PIXART}),
    legacy=("models/LyCORIS",),
)  # fmt: skip

COMFYUI = Layout(
    "comfyui",
    "ComfyUI",
    (
        FolderRule(Kind.CHECKPOINT, ("models/checkpoints",), COMFY_PT, KeyedBy.RELPATH),
        FolderRule(Kind.UNET, ("models/diffusion_models", "models/unet"), COMFY_PT + (".gguf",),
                   KeyedBy.RELPATH),
        FolderRule(Kind.LORA, ("models/loras",), COMFY_PT, KeyedBy.RELPATH),
        FolderRule(Kind.LYCORIS, ("models/loras",), COMFY_PT, KeyedBy.RELPATH),
        FolderRule(Kind.EMBEDDING, ("models/embeddings",), COMFY_PT, KeyedBy.RELPATH),
        FolderRule(Kind.HYPERNETWORK, ("models/hypernetworks",), COMFY_PT, KeyedBy.RELPATH),
        FolderRule(Kind.VAE, ("models/vae",), COMFY_PT, KeyedBy.RELPATH),
        FolderRule(Kind.CONTROLNET, ("models/controlnet", "models/t2i_adapter"), COMFY_PT,
                   KeyedBy.RELPATH),
        FolderRule(Kind.UPSCALER, ("models/upscale_models",), COMFY_PT, KeyedBy.RELPATH),
        FolderRule(Kind.TEXT_ENCODER, ("models/text_encoders", "models/clip"),
                   COMFY_PT + (".gguf",), KeyedBy.RELPATH),
        FolderRule(Kind.IP_ADAPTER, ("models/ipadapter",), COMFY_PT, KeyedBy.RELPATH),
        FolderRule(Kind.CLIP_VISION, ("models/clip_vision",), COMFY_PT, KeyedBy.RELPATH),
        FolderRule(Kind.MOTION_MODULE, ("models/animatediff_models",), COMFY_PT,
                   KeyedBy.RELPATH),
    ),
    markers=("comfy", "folder_paths.py"),
)  # fmt: skip

_SM_EXT = (".safetensors", ".pt", ".ckpt", ".pth", ".bin", ".sft", ".gguf")

STABILITYMATRIX = Layout(
    "stabilitymatrix",
    "Stability Matrix shared Models folder",
    (
        FolderRule(Kind.CHECKPOINT, ("Models/StableDiffusion",), PT + (".gguf",),
                   KeyedBy.RELPATH),
        FolderRule(Kind.UNET, ("Models/DiffusionModels", "Models/Unet"), PT + (".gguf",),
                   KeyedBy.RELPATH),
        # Linked into A1111's models/Lora and models/LyCORIS: keyed by stem there.
        FolderRule(Kind.LORA, ("Models/Lora",), PT),
        FolderRule(Kind.LYCORIS, ("Models/LyCORIS",), PT),
        FolderRule(Kind.EMBEDDING, ("Models/Embeddings", "Models/TextualInversion"),
                   (".pt", ".bin", ".safetensors")),
        FolderRule(Kind.HYPERNETWORK, ("Models/Hypernetwork",), (".pt",)),
        FolderRule(Kind.VAE, ("Models/VAE",), PT, KeyedBy.NAME),
        FolderRule(Kind.CONTROLNET, ("Models/ControlNet", "Models/T2IAdapter"),
                   PT + (".pth", ".bin")),
        *_upscalers(("ESRGAN", "RealESRGAN", "SwinIR", "ScuNET"), (".pt", ".pth", ".safetensors"),
                    root="Models"),
        FolderRule(Kind.TEXT_ENCODER, ("Models/TextEncoders", "Models/CLIP"),
                   (".safetensors", ".gguf")),
        FolderRule(Kind.IP_ADAPTER, ("Models/IpAdapter", "Models/IpAdapters15",
                                     "Models/IpAdaptersXl"), _SM_EXT),
        FolderRule(Kind.CLIP_VISION, ("Models/ClipVision",), _SM_EXT),
    ),
    markers=("Models/StableDiffusion",),
    dit_bases=frozenset({Base.FLUX, Base.FLUX2}),
)  # fmt: skip

#: sdlib's model store (``sdlib store init``, ``sdlib link``): Stability Matrix's shared
#: kind folders at its top, so ``--root STORE`` downloads into it and ``scan STORE`` reads it.
STORE = Layout(
    "store",
    "sdlib model store",
    tuple(
        replace(r, folders=tuple(f.removeprefix("Models/") for f in r.folders))
        for r in STABILITYMATRIX.rules
    ),
    markers=("StableDiffusion", "Lora"),
    dit_bases=STABILITYMATRIX.dit_bases,
)

#: A plain folder that takes every kind (``--to DIR``, ``identify`` on loose files).
PLAIN = Layout(
    "folder",
    "plain folder",
    (FolderRule(Kind.UNKNOWN, (".",), MODEL_EXTENSIONS, KeyedBy.RELPATH),),
    markers=(),
    any_kind=True,
)

LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (A1111, FORGE, REFORGE, SDNEXT, COMFYUI, STABILITYMATRIX, STORE)
}
#: Order matters: the most specific markers first (Forge has A1111's files too).
_DETECT_ORDER = ("comfyui", "forge", "reforge", "sdnext", "a1111", "stabilitymatrix", "store")


def get_layout(name: str) -> Layout:
    try:
        return LAYOUTS[name.lower()]
    except KeyError:
        raise UsageError(
            f"unknown webUI {name!r}; choose one of: {', '.join(LAYOUTS)} (or auto)"
        ) from None


def detect(root: str | os.PathLike[str]) -> Layout | None:
    """Which front end lives at ``root``: from its own files, else from its model folders
    (a folder ``sdlib download --root DIR --ui NAME`` made, or a webUI's models kept apart
    from its code); None if neither tells."""
    root = Path(root)
    for name in _DETECT_ORDER:
        layout = LAYOUTS[name]
        if all((root / m).exists() for m in layout.markers):
            return layout
    return _detect_by_folders(root)


def _detect_by_folders(root: Path) -> Layout | None:
    """A1111's layout (which Forge, reForge and SD.Next share) or ComfyUI's, from the
    ``models/`` folders only one of the two has; None when neither, or both, are there.
    Only ``models/*`` counts: a lone ``embeddings`` folder says too little, and callers walk
    up from a file through folders (a home folder) that are no webUI."""
    found = []
    family = (A1111, FORGE, REFORGE, SDNEXT)
    for layout, others in ((A1111, (COMFYUI,)), (COMFYUI, family)):
        # Case-blind: models/VAE and models/vae are one folder on Windows and macOS.
        theirs = {f.lower() for other in others for f in other.scan_folders()}
        signs = [
            f for f in layout.scan_folders() if f.startswith("models/") and f.lower() not in theirs
        ]
        if any((root / f).is_dir() for f in signs):
            found.append(layout)
    return found[0] if len(found) == 1 else None


def resolve_layout(ui: str, root: str | os.PathLike[str]) -> Layout:
    """``--ui auto|NAME`` for ``root``: auto detects, and says clearly when it cannot."""
    if ui.lower() != "auto":
        return get_layout(ui)
    layout = detect(root)
    if layout is None:
        raise UsageError(
            f"cannot tell which webUI lives in {root}; pass --ui ({', '.join(LAYOUTS)})"
        )
    return layout
