"""A file sdlib downloaded goes into the library index at once, with its identity.

The install knows what no scan can find out cheaply: the model, version and file ids, the
SHA256 (hashed while the bytes streamed), and what checking the bytes against the published
size and hashes found (:mod:`sdlib.files.verification`), including a secondary hash that
disagreed while the deciding one matched. :func:`record_download` writes all of it, with
the content classified as a scan would (a bounded header read), so ``updates`` knows the
file straight away and the next ``scan`` finds a current row and opens nothing.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from sdlib.library.adopt import from_civitai_info
from sdlib.library.index import FileRow, Index
from sdlib.library.scan import inspect_columns
from sdlib.library.sidecars import read_json

__all__ = ["record_download"]


def record_download(
    index: Index,
    path: str | os.PathLike[str],
    *,
    ref: str,
    model_id: int | None,
    version_id: int | None,
    file_id: int | None,
    sha256: str,
    verification: Mapping[str, Any] | None = None,
) -> int:
    """Record the downloaded (or already present) file at ``path``; returns its row id.

    Names and the base model come from the ``.civitai.info`` the install wrote beside it
    when that describes these bytes. ``verification``: ``Verification.to_dict()``, None
    when nothing was downloaded (an identical file was there: its SHA256 is the published
    one; an earlier outcome is kept). A row already at ``path`` is updated, keeping its id
    and history. ``version_id`` None: a file with no Civitai identity (from the Hugging
    Face Hub): recorded with its content, SHA256 and verification, and left for
    ``identify`` to look up by hash.
    """
    path_s = os.path.abspath(os.fspath(path))
    st = os.stat(path_s)
    now = time.time()
    model = Path(path_s)
    info = read_json(model.with_name(model.stem + ".civitai.info"))
    found = from_civitai_info(info, name=model.name, size=st.st_size, sha256=sha256).identity
    names: dict[str, Any] = {}
    if found is not None and found.version_id == version_id:
        names = {"civitai_model_name": found.model_name,
                 "civitai_version_name": found.version_name,
                 "civitai_base_model": found.base_model}  # fmt: skip
    kept = _kept(verification)
    identity: dict[str, Any] = {}
    if version_id is not None:
        identity = {"civitai_model_id": model_id, "civitai_version_id": version_id,
                    "civitai_file_id": file_id, **names, "identify_state": "identified",
                    "identified_at": now, "matched_by": "download"}  # fmt: skip
    values: dict[str, Any] = {
        **inspect_columns(path_s),
        "role": "model", "present": 1, "dev": st.st_dev, "ino": st.st_ino,
        "size": st.st_size, "mtime_ns": st.st_mtime_ns, "last_seen": now,
        "sha256": sha256.upper(), **identity,
    }  # fmt: skip
    if kept is not None:  # already present (nothing downloaded): what was found stays
        values["verification"] = json.dumps(kept)
    with index.transaction():
        row = index.file_at(path_s)
        if row is None:
            row_id = index.insert(replace(FileRow(path=path_s, role="model"), **values,
                                          first_seen=now))  # fmt: skip
            index.event(row_id, "added", path=path_s)
        else:
            assert row.id is not None
            row_id = row.id
            index.update(row_id, **values)
        ids = {"version_id": version_id, "civitai_file_id": file_id} if identity else {}
        index.event(row_id, "downloaded", ref=ref, **ids,
                    **({"verification": kept} if kept is not None else {}))  # fmt: skip
    return row_id


def _kept(verification: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What of a verification is worth keeping per file: its status, the deciding hash and
    every published value that disagreed."""
    if verification is None:
        return None
    keys = ("status", "decided_by", "disagreements", "accepted_mismatch", "size_matches")
    return {k: verification[k] for k in keys if k in verification}
