"""Downloads: resumable, ranged, hashed on the fly, verified before they take their name.

The engine knows URLs, sizes and published hashes, never a source's REST paths: a
``DownloadSpec`` says what to fetch and what it must turn out to be, ``DownloadOptions``
how (connections, rate, retries, cancel), and ``download`` returns a ``DownloadResult``
with the file's hashes and what the published ones said. How a failed response becomes an
sdlib error is the caller's to say (``DownloadOptions.raise_for_status``: Civitai's mapper
for Civitai downloads); without one, ``sdlib.http.raise_for_status`` maps the bare status.

The contract (what a user's models folder can rely on):

* bytes go to ``<name>.part`` beside the target, under an OS lock on that file, so a
  second sdlib process never writes the same part file;
* the part file is always a contiguous prefix of the file (pieces fetched in parallel are
  written in order), so after a dropped connection, Ctrl-C, a crash or kill -9 the next run
  resumes from its size with ``Range`` + ``If-Range``; what it needs to resume (the
  server's validator) lives in the user cache dir, not in the models folder, in a record
  that also says what the download was (``DownloadSpec.origin``), how many bytes it keeps
  and why it stopped, until the file is complete (``list_unfinished``, ``sdlib downloads``);
* every hash Civitai publishes is computed from the bytes as they are written (no second
  read); a resumed download re-reads only the prefix it already had;
* size, hashes and container are verified before ``os.replace`` puts the file at its name
  (``sdlib.files.verification`` says which published hash decides and which only warn); on a
  mismatch the part file is deleted and nothing appears at the target, unless the caller
  knowingly accepts what the source serves (``DownloadOptions.accept_mismatch``);
* a hostile or broken server cannot keep a download alive forever (a body that trickles
  below ``min_speed`` is cut), fill the disk (a body of unknown length stops at
  ``max_unknown_size``), or send it anywhere but HTTP(S) (a ``file://`` redirect, or a
  redirect loop, ends it at once).

Progress is reported through a callback of small event dataclasses, at least every
256 KiB or 0.5 s (``progress_due``); no UI code here.

Inside: ``_engine`` (the control flow), ``_pieces``, ``_transfer``, ``_writer`` (the part
file's writes, on a thread of their own), ``_values`` (specs, options, events, results),
``_checks`` and ``_unfinished`` (the records of unfinished downloads). A part file is
held under ``sdlib._filelock``, the OS lock the library's organize journal shares (it
sits below both, so organizing never loads this package or httpx2).
"""

from __future__ import annotations

from sdlib.download._checks import DISK_MARGIN
from sdlib.download._engine import download
from sdlib.download._transfer import PROGRESS_EVERY_BYTES, PROGRESS_EVERY_SECONDS, progress_due
from sdlib.download._unfinished import (
    UnfinishedDownload,
    find_unfinished,
    forget_unfinished,
    list_unfinished,
)
from sdlib.download._values import (
    PART_SUFFIX,
    DownloadEvent,
    DownloadOptions,
    DownloadResult,
    DownloadSpec,
    EventCallback,
    Finished,
    Progress,
    Retrying,
    Started,
    Verifying,
    part_path,
)

__all__ = [
    "DISK_MARGIN",
    "PART_SUFFIX",
    "PROGRESS_EVERY_BYTES",
    "PROGRESS_EVERY_SECONDS",
    "DownloadEvent",
    "DownloadOptions",
    "DownloadResult",
    "DownloadSpec",
    "EventCallback",
    "Finished",
    "Progress",
    "Retrying",
    "Started",
    "UnfinishedDownload",
    "Verifying",
    "download",
    "find_unfinished",
    "forget_unfinished",
    "list_unfinished",
    "part_path",
    "progress_due",
]
