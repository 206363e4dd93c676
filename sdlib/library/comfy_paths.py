"""ComfyUI's ``extra_model_paths.yaml``: the folders it adds, without a YAML dependency.

ComfyUI reads ``<ComfyUI>/extra_model_paths.yaml`` (reference layouts.md 4.2,
``utils/extra_config.py``). Its structure is simple and this reader takes exactly that:

    a111:                                  # a section; the name is free
        base_path: path/to/stable-diffusion-webui/
        is_default: true                   # optional: these folders come first
        checkpoints: models/Stable-diffusion
        loras: |                           # several folders: one per line
            models/Lora
            models/LyCORIS

Values are plain, single- or double-quoted scalars, or ``|`` / ``>`` block scalars; ``#``
starts a comment. ``base_path`` expands ``~`` and environment variables and, when relative,
is resolved against the YAML file's folder, as are folders of a section without a base.
Every value is split on newlines, as ComfyUI does, so each line is one folder. Anything
else (lists, anchors, flow mappings) is refused with a ``ConfigError`` naming the line.

Pure parsing (``parse_extra_paths``) is separate from the 2-line wrapper that reads a file.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sdlib.errors import ConfigError
from sdlib.library.layouts import Layout
from sdlib.taxonomy import Kind

__all__ = [
    "COMFY_KEY_KINDS",
    "ExtraFolder",
    "extend_layout",
    "parse_extra_paths",
    "parse_yaml_sections",
    "read_extra_paths",
]

FILE_NAME = "extra_model_paths.yaml"

#: ComfyUI folder keys -> the kinds sdlib files under them (legacy ``clip``/``unet`` too).
COMFY_KEY_KINDS: Mapping[str, tuple[Kind, ...]] = {
    "checkpoints": (Kind.CHECKPOINT,),
    "diffusion_models": (Kind.UNET,),
    "unet": (Kind.UNET,),
    "loras": (Kind.LORA, Kind.LYCORIS),
    "vae": (Kind.VAE,),
    "text_encoders": (Kind.TEXT_ENCODER,),
    "clip": (Kind.TEXT_ENCODER,),
    "clip_vision": (Kind.CLIP_VISION,),
    "embeddings": (Kind.EMBEDDING,),
    "hypernetworks": (Kind.HYPERNETWORK,),
    "controlnet": (Kind.CONTROLNET,),
    "t2i_adapter": (Kind.CONTROLNET,),
    "upscale_models": (Kind.UPSCALER,),
    "ipadapter": (Kind.IP_ADAPTER,),
    "animatediff_models": (Kind.MOTION_MODULE,),
}


@dataclass(frozen=True)
class ExtraFolder:
    section: str
    #: The ComfyUI folder key (``loras``, ``checkpoints``...), as written.
    key: str
    #: Absolute, normalised.
    path: str
    is_default: bool = False


_KEY = re.compile(
    r"^(?P<indent> *)(?P<key>[^\s:#'\"-][^:#]*?|\"[^\"]*\"|'[^']*')\s*:(?:\s+|$)(?P<rest>.*)$"
)


def _strip_comment(text: str) -> str:
    """Drop a ``#`` comment that is not inside quotes (``#`` must follow a space in YAML)."""
    quote: str | None = None
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\" and quote == '"':
                i += 1  # an escaped character in a double-quoted string
            elif ch == quote:
                if quote == "'" and text[i + 1 : i + 2] == "'":
                    i += 1  # '' is a quote inside a single-quoted string
                else:
                    quote = None
        elif ch in "'\"" and (i == 0 or text[i - 1] in " \t"):
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1] in " \t"):
            return text[:i].rstrip()
        i += 1
    return text.rstrip()


def _scalar(raw: str, line_no: int, source: str | None) -> str:
    raw = raw.strip()
    if raw.startswith('"'):
        if not raw.endswith('"') or len(raw) < 2:
            raise ConfigError(f"line {line_no}: unterminated double-quoted string", path=source)
        try:
            value: str = json.loads(raw)
        except ValueError:
            value = raw[1:-1]
        return value
    if raw.startswith("'"):
        if not raw.endswith("'") or len(raw) < 2:
            raise ConfigError(f"line {line_no}: unterminated single-quoted string", path=source)
        return raw[1:-1].replace("''", "'")
    if raw[:1] in ("[", "{", "&", "*", "!") or raw == "-" or raw.startswith("- "):
        raise _unsupported(line_no, source)
    return raw


def _unsupported(line_no: int, source: str | None) -> ConfigError:
    return ConfigError(
        f"line {line_no}: lists, flow mappings, anchors and tags are not supported "
        "(ComfyUI expects one folder per line in a string, e.g. 'loras: |')",
        path=source,
    )


def parse_yaml_sections(text: str, source: str | None = None) -> dict[str, dict[str, str]]:
    """``{section: {key: value}}`` from the two-level YAML ComfyUI's file uses."""
    lines = text.splitlines()
    out: dict[str, dict[str, str]] = {}
    section: str | None = None
    section_indent: int | None = None
    i = 0
    while i < len(lines):
        line_no = i + 1
        raw = lines[i].replace("\ufeff", "") if i == 0 else lines[i]
        i += 1
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise ConfigError(f"line {line_no}: tabs cannot indent YAML", path=source)
        body = _strip_comment(raw)
        if not body.strip() or body.strip() in ("---", "..."):
            continue
        m = _KEY.match(body)
        if m is None and body.strip().startswith("-"):
            raise _unsupported(line_no, source)
        if m is None:
            raise ConfigError(f"line {line_no}: expected 'key: value'", path=source)
        indent = len(m.group("indent"))
        key = _scalar(m.group("key"), line_no, source)
        rest = m.group("rest").strip()
        if indent == 0:
            if rest not in ("", "~", "null"):
                raise ConfigError(
                    f"line {line_no}: section {key!r} must hold 'key: folder' lines", path=source
                )
            section, section_indent = key, None
            out.setdefault(section, {})
            continue
        if section is None:
            raise ConfigError(f"line {line_no}: indented key outside a section", path=source)
        if section_indent is None:
            section_indent = indent
        elif indent != section_indent:
            raise ConfigError(f"line {line_no}: inconsistent indentation", path=source)
        if rest[:1] in ("|", ">"):
            block, i = _block(lines, i, indent)
            if rest[0] == ">":
                block = [" ".join(part.split("\n")) for part in "\n".join(block).split("\n\n")]
            out[section][key] = "\n".join(block)
            continue
        value = _scalar(rest, line_no, source) if rest else ""
        # A plain scalar may continue on more-indented lines (YAML folds them with spaces).
        while rest and not rest.startswith(("'", '"')) and i < len(lines):
            nxt = _strip_comment(lines[i])
            if not nxt.strip() or len(nxt) - len(nxt.lstrip()) <= indent or _KEY.match(nxt):
                break
            value += " " + nxt.strip()
            i += 1
        out[section][key] = value
    return out


def _block(lines: list[str], i: int, key_indent: int) -> tuple[list[str], int]:
    """The lines of a block scalar starting at ``lines[i]``, de-indented; and the next index."""
    block: list[str] = []
    indent: int | None = None
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            block.append("")
            i += 1
            continue
        this = len(line) - len(line.lstrip(" "))
        if this <= key_indent:
            break
        if indent is None:
            indent = this
        if this < indent:
            break
        block.append(line[indent:].rstrip())
        i += 1
    while block and not block[-1]:
        block.pop()
    return block, i


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("true", "yes", "on", "y", "1")


def parse_extra_paths(
    text: str, yaml_dir: str | os.PathLike[str], source: str | None = None
) -> list[ExtraFolder]:
    """Every folder the file adds, in file order, resolved as ComfyUI resolves them."""
    folders: list[ExtraFolder] = []
    base_dir = os.path.abspath(yaml_dir)
    for section, conf in parse_yaml_sections(text, source).items():
        values = dict(conf)
        base: str | None = None
        if "base_path" in values:
            base = os.path.expandvars(os.path.expanduser(values.pop("base_path").strip()))
            if not os.path.isabs(base):
                base = os.path.abspath(os.path.join(base_dir, base))
        is_default = _truthy(values.pop("is_default", "false"))
        for key, value in values.items():
            for line in value.split("\n"):
                folder = line.strip()
                if not folder:
                    continue
                if base:
                    full = os.path.join(base, folder)
                elif not os.path.isabs(folder):
                    full = os.path.join(base_dir, folder)
                else:
                    full = folder
                folders.append(ExtraFolder(section, key, os.path.normpath(full), is_default))
    return folders


def read_extra_paths(root: str | os.PathLike[str]) -> list[ExtraFolder]:
    """The folders ``<root>/extra_model_paths.yaml`` adds (none if there is no such file)."""
    path = Path(root) / FILE_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {FILE_NAME}: {exc}", path=str(path)) from None
    return parse_extra_paths(text, path.parent, str(path))


def extend_layout(layout: Layout, folders: list[ExtraFolder]) -> Layout:
    """``layout`` (a ComfyUI Layout) with the extra folders under the kinds sdlib knows.

    ``is_default`` sections' folders go first, so new files land there, as ComfyUI-Manager
    does. Keys sdlib has no kind for (``configs``, ``gligen``...) are skipped.
    """
    for first in (False, True):
        extra: dict[Kind, tuple[str, ...]] = {}
        for folder in folders:
            if folder.is_default is not first:
                continue
            for kind in COMFY_KEY_KINDS.get(folder.key, ()):
                extra[kind] = (*extra.get(kind, ()), folder.path)
        if extra:
            layout = layout.with_extra_folders(extra, first=first)
    return layout
