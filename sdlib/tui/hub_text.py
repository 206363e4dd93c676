"""The words Browse shows about a Hugging Face repo, built from the Hub's records.

Pure (records in, strings out; no Textual, no IO) so the wording is tested without an app,
and the same facts ``sdlib show hf:...`` prints read the same here: what is a single-file
model a webUI loads (with its size, sha256 and, once read, what its header says), what
is a diffusers folder (summarised: webUIs do not load those file by file), and whether
downloads need access.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from sdlib.formatting import count, date, human_size

if TYPE_CHECKING:
    from sdlib.services.remote import Peek
    from sdlib.sources.hf import FileGuess, HubFile, HubModel, HubRepo

__all__ = [
    "folders_lines",
    "gated_line",
    "model_meta",
    "other_files_line",
    "single_file_lines",
    "single_files",
]

#: Other files listed by name before "and N more".
_OTHERS = 20


def model_meta(model: HubModel) -> str:
    """``1.5M downloads · 11k likes · license: other · base: flux · text-to-image``."""
    facts = [f"{count(model.downloads)} downloads", f"{count(model.likes)} likes",
             f"license: {model.license or '?'}"]  # fmt: skip
    if model.base.value != "unknown":
        facts.append(f"base: {model.base.value}")
    if model.pipeline_tag:
        facts.append(model.pipeline_tag)
    if model.last_modified:
        facts.append(f"updated {date(model.last_modified)}")
    return " · ".join(facts)


def gated_line(model: HubModel, page_url: str) -> str | None:
    """What a gated repo asks of a downloader (None for an open repo)."""
    if not model.gated:
        return None
    return (f"Gated ({model.gated}): downloads need a logged-in account that was granted "
            f"access at {page_url}")  # fmt: skip


def single_files(repo: HubRepo) -> list[tuple[HubFile, FileGuess]]:
    """The files a webUI loads on their own (what ``d`` offers), in the repo's order."""
    return [(f, g) for f, g in repo.guesses() if g.layout == "single-file"]


def single_file_lines(repo: HubRepo, peeks: Mapping[str, Peek] | None) -> list[str]:
    """Per single-file model: name, size and guessed kind; its sha256; and what its header
    says (``reading the header…`` while ``peeks`` is None)."""
    lines: list[str] = []
    for f, g in single_files(repo):
        lines.append(f"{f.path}  {human_size(f.size)}  {g.kind.value} (guess: {g.reason})")
        # Uppercase, as every SHA256 sdlib shows (the Hub's own pages use lowercase).
        lines.append(f"    SHA256 {f.sha256.upper() if f.sha256 else '? (not an LFS file)'}")
        if peeks is None:
            lines.append("    content: reading the header…")
        elif f.path in peeks:
            lines.append(f"    content: {peeks[f.path].summary()}")
    return lines


def folders_lines(repo: HubRepo) -> list[str]:
    """``unet/  2 files, 836.3 KiB`` per diffusers folder."""
    guesses = repo.guesses()
    lines = []
    for folder in repo.diffusers_folders():
        parts = [f for f, g in guesses if g.component == folder]
        size = sum(f.size or 0 for f in parts)
        files = f"{len(parts)} file" + ("s" if len(parts) != 1 else "")
        lines.append(f"{folder}/  {files}, {human_size(size)}")
    return lines


def other_files_line(repo: HubRepo) -> str | None:
    """Configs, cards, images and weights a webUI does not load, by name."""
    others = [f.path for f, g in repo.guesses() if g.layout == "other"]
    if not others:
        return None
    more = f" and {len(others) - _OTHERS} more" if len(others) > _OTHERS else ""
    return ", ".join(others[:_OTHERS]) + more
