"""The download engine's refusals: names, free space, what a server may redirect to, the
size of a body nobody announced, and whether the bytes are the container promised.

Each is a small function the engine (``sdlib.download``) calls; they hold the wording of
the one-line errors and the thresholds, not the control flow.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import httpx2

from sdlib._filelock import try_lock
from sdlib.errors import DiskFull, HashMismatch, SdlibError
from sdlib.files.sniff import looks_like_text_error, sniff_bytes
from sdlib.formatting import human_size
from sdlib.names import RESERVED_SUFFIXES
from sdlib.taxonomy import Container

if TYPE_CHECKING:
    from sdlib.files.verification import Verification

#: Free space kept in reserve beyond the file itself (at most; an eighth of a small file).
DISK_MARGIN = 64 << 20


def refuse_reserved_name(dest: Path) -> None:
    """A model named like our own part file would be adopted (and overwritten) by the
    download of the file it shadows: such a final name is refused (exit 1)."""
    if dest.name.lower().endswith(RESERVED_SUFFIXES):
        raise SdlibError(
            f"refusing to download to {dest.name}: names ending in "
            f"{', '.join(RESERVED_SUFFIXES)} are sdlib's temporary files",
            path=str(dest),
        )


def check_free_space(folder: Path, need: int, name: str) -> None:
    """Refuse before writing when ``need`` more bytes (plus a reserve) do not fit."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    # The reserve scales down with the file: a few KiB must fit where a few KiB are free.
    if free < need + min(DISK_MARGIN, need // 8):
        raise DiskFull(
            f"not enough free space for {name}: needs {human_size(need)} more, "
            f"{human_size(free)} free on that disk",
            path=str(folder),
        )


def not_http_message(name: str, url: str, exc: httpx2.UnsupportedProtocol) -> str:
    """One line for a URL, or a redirect, to something other than HTTP(S) (file://...)."""
    try:
        target = str(exc.request.url)
    except RuntimeError:  # no request attached: the URL we were given
        target = url
    if target == str(httpx2.URL(url)):
        return f"{name}: {url[:120]} is not an HTTP(S) URL"
    return (
        f"{name}: the server redirected to {target[:120]}, which is not an HTTP(S) URL; "
        "not following it"
    )


def unknown_size_error(name: str, limit: int, part: Path) -> SdlibError:
    return SdlibError(
        f"{name}: neither the source nor the server gave a size, and it went past "
        f"{human_size(limit)} (download.max_unknown_size_gib); the download was discarded",
        path=str(part),
    )


def container_problem(path: Path, size: int, want: Container | None) -> str | None:
    """Why the file at ``path`` is not a model of the promised container, or None."""
    with open(path, "rb") as fh:
        head = fh.read(64)
    if looks_like_text_error(head):
        return "the file is an HTML or JSON page, not a model"
    if want is None:
        return None
    got = sniff_bytes(head, size)
    pickles = {Container.PICKLE_ZIP, Container.PICKLE_LEGACY, Container.PICKLE}
    if got == want or (want in pickles and got in pickles):
        return None
    return f"the file is {got.value}, but the source promised {want.value}"


def discard_reason(
    verdict: Verification, part: Path, size: int, want: Container | None, accept_mismatch: bool
) -> str | None:
    """Why the downloaded bytes are thrown away (one phrase), or None to keep them.

    A mismatch with what the source published discards them unless the user knowingly
    accepts what it serves; bytes that are not the promised container are discarded always.
    """
    if verdict.status == "mismatch" and not accept_mismatch:
        return (
            f"{verdict.problem()}; the download was discarded "
            "(--accept-mismatch keeps what the source serves)"
        )
    if bad_container := container_problem(part, size, want):
        return f"{bad_container}; the download was discarded"
    return None


def open_part_locked(part: Path, wait: float, name: str) -> BinaryIO:
    """``part`` opened for appending under the OS lock, waiting up to ``wait`` seconds for
    another process that holds it; then a one-line refusal."""
    fh = open(part, "a+b")  # noqa: SIM115 - the engine closes it
    deadline = time.monotonic() + wait
    while not try_lock(fh):
        if time.monotonic() >= deadline:
            fh.close()
            raise SdlibError(
                f"another sdlib process is downloading {name} into this folder; "
                "wait for it to finish or stop it",
                path=str(part),
            )
        time.sleep(0.2)
    return fh


def size_offer_error(name: str, offered: int, published: int) -> HashMismatch:
    """The server offers another size than the source published: not the published file."""
    return HashMismatch(
        f"{name}: the server offers {offered:,} bytes but the source published "
        f"{published:,}; not downloading a different file",
        expected=str(published),
        actual=str(offered),
    )
