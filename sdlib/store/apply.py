"""Carry out a link plan, and undo one, touching only what the plan names.

Doing: each action in order; if one fails, the ones already done are undone (newest first)
and the error is raised, so nothing is left half-linked. Undoing removes a link only while it
is still a link to the folder sdlib pointed it at, a hard link only while the store still has
the same file (so the last copy of a model is never deleted), a folder only when it is empty,
and a config edit only as far as the file still holds it. Nothing is ever deleted through a
link.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass

from sdlib.errors import ConfigError, LibraryError
from sdlib.store import comfy_section, sdnext_config
from sdlib.store.links import is_link, make_link, remove_link, same_target
from sdlib.store.plan import Action

__all__ = ["Undone", "do_actions", "finish_actions", "read_text", "undo_actions"]


@dataclass(frozen=True)
class Undone:
    removed: tuple[str, ...]
    #: (path, why it was left as it is)
    kept: tuple[tuple[str, str], ...]


def read_text(path: str) -> str | None:
    """A config file's text with its line endings, or None if there is none."""
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            return fh.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}", path=path) from None


def _write_text(path: str, text: str) -> None:
    tmp = f"{path}.sdlib-tmp"
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        if os.path.exists(path):
            shutil.copymode(path, tmp)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _do(action: Action) -> None:
    if action.op == "mkdir":
        os.mkdir(action.path)
    elif action.op in ("symlink", "junction"):
        make_link(action.op, action.target, action.path)
    elif action.op == "hardlink":
        os.link(action.target, action.path)
    elif action.op in ("yaml", "json"):
        if read_text(action.path) != action.before:
            raise LibraryError(f"{action.path} changed while sdlib was linking; nothing changed")
        _write_text(action.path, action.after)
    else:  # pragma: no cover - plans hold only these
        raise ValueError(action.op)


def do_actions(actions: Sequence[Action]) -> None:
    """Carry out ``actions``; on a failure undo what was done and raise LibraryError."""
    done: list[Action] = []
    for action in actions:
        try:
            _do(action)
        except OSError as exc:
            undo_actions(done)
            raise LibraryError(
                f"cannot {action.op} {action.path}: {exc.strerror or exc}; nothing was changed",
                path=action.path,
            ) from None
        except LibraryError:
            undo_actions(done)
            raise
        done.append(action)


def finish_actions(actions: Sequence[Action]) -> None:
    """Carry out those of ``actions`` not yet in place (a run killed half-way), as
    :func:`do_actions` does."""
    do_actions([a for a in actions if not _in_place(a)])


def _in_place(action: Action) -> bool:
    path = action.path
    if action.op == "mkdir":
        return os.path.isdir(path) and not is_link(path)
    if action.op in ("symlink", "junction"):
        return same_target(path, action.target)
    if action.op == "hardlink":
        try:
            return not is_link(path) and os.path.samefile(path, action.target)
        except OSError:
            return False
    return read_text(path) == action.after


def undo_actions(actions: Sequence[Action]) -> Undone:
    """Undo ``actions`` newest first, as far as each is still what sdlib made."""
    removed: list[str] = []
    kept: list[tuple[str, str]] = []
    for action in reversed(actions):
        try:
            why = _undo(action)
        except (OSError, ConfigError) as exc:
            why = f"not undone: {exc}"
        if why is None:
            removed.append(action.path)
        elif why:
            kept.append((action.path, why))
    return Undone(tuple(removed), tuple(kept))


def _undo(action: Action) -> str | None:
    """None when undone; "" when there was nothing to undo; else why it was left."""
    path = action.path
    if action.op == "mkdir":
        if not os.path.lexists(path):
            return ""
        if is_link(path) or not os.path.isdir(path):
            return "no longer the folder sdlib made"
        if os.listdir(path):
            return "not empty: files were put there since"
        os.rmdir(path)
        return None
    if action.op in ("symlink", "junction"):
        if not os.path.lexists(path):
            return ""
        if not same_target(path, action.target):
            return "no longer sdlib's link to the store"
        remove_link(path)
        return None
    if action.op == "hardlink":
        return _undo_hardlink(action)
    return _undo_config(action)


def _undo_hardlink(action: Action) -> str | None:
    path = action.path
    if not os.path.lexists(path):
        return ""
    if is_link(path):
        return "no longer sdlib's hard link"
    try:
        same = os.path.samestat(os.lstat(path), os.stat(action.target))
    except FileNotFoundError:
        same = False
    if not same:
        return "the store no longer has this file: this may be the last copy"
    os.unlink(path)
    return None


def _undo_config(action: Action) -> str | None:
    path = action.path
    current = read_text(path)
    if current is None or current == action.before:
        return ""
    if current == action.after:  # untouched since: give back the very bytes it had
        if action.before is None:
            os.unlink(path)
        else:
            _write_text(path, action.before)
        return None
    if action.op == "yaml":
        new = comfy_section.remove_section(current)
        if new == current:
            return "sdlib's section is no longer there"
        kept: list[str] = []
    else:
        new, kept = sdnext_config.restore_keys(current, action.changes)
    if action.before is None and not new.strip(" \r\n{}"):
        os.unlink(path)
    else:
        _write_text(path, new)
    if kept:
        return f"changed since, left as they are: {', '.join(kept)}"
    return None
