"""The download queue: jobs, their states, speed and ETA, and the thread that runs one.

The model (``DownloadQueue``, ``DownloadJob``) lives on the UI thread and changes only in
message handlers; ``run_job`` (``sdlib.tui.download_worker``) runs in a worker thread
and only posts messages. A job is one
``Installer.install`` call, the same resolve -> download -> verify -> place -> sidecars path
``sdlib download`` takes.

Pause and cancel set the job's ``threading.Event``: the downloader stops at its next write
(``DownloadOptions.cancel``) and keeps its ``.part`` file. Resume runs the same install
again, which continues from that file (Range + If-Range). Cancel deletes the part file and
forgets the download.

Downloads an earlier session (or ``sdlib download``) left unfinished come back as paused
jobs (``DownloadQueue.restore``, from ``sdlib.services.downloads``); resuming one finishes
it to the same target through ``resume_download``.

    queued -> resolving -> downloading <-> retrying -> verifying -> done
                   |            |                          |
                   +------------+--> pausing -> paused ----+--> (resume) queued
                   +------------+--> cancelling -> cancelled
                   +------------+--> failed (reason: login needed, early access...)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from sdlib.formatting import human_size
from sdlib.tui.messages import (
    DownloadDone,
    DownloadFailed,
    DownloadPhase,
    DownloadProgress,
    DownloadStopped,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from textual.message import Message

    from sdlib.download import UnfinishedDownload
    from sdlib.install import FileChoice, InstallResult

__all__ = ["FINISHED", "DownloadJob", "DownloadQueue", "JobState"]


class JobState(str, Enum):
    QUEUED = "queued"
    RESOLVING = "resolving"
    DOWNLOADING = "downloading"
    RETRYING = "retrying"
    VERIFYING = "verifying"
    PAUSING = "pausing"
    PAUSED = "paused"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    FAILED = "failed"
    DONE = "done"


RUNNING = frozenset(
    {
        JobState.RESOLVING,
        JobState.DOWNLOADING,
        JobState.RETRYING,
        JobState.VERIFYING,
        JobState.PAUSING,
        JobState.CANCELLING,
    }
)
FINISHED = frozenset({JobState.DONE, JobState.CANCELLED, JobState.FAILED})


@dataclass(eq=False)
class DownloadJob:
    """One file to install, and what the UI shows about it."""

    id: int
    #: ``model@version`` as ``Installer.install`` takes it.
    ref: str
    choice: FileChoice
    #: "DreamShaper 8": model and version name.
    title: str
    file_name: str
    size: int | None
    state: JobState = JobState.QUEUED
    done: int = 0
    total: int | None = None
    #: Bytes per second, smoothed.
    speed: float = 0.0
    #: What is happening now ("retry 1: the connection stalled"), or the placed path.
    note: str | None = None
    #: Why it failed, short ("login needed") and in full.
    reason: str | None = None
    message: str | None = None
    result: InstallResult | None = None
    #: The kept part file after a pause.
    part: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    #: "pause" or "cancel" while stopping.
    stop: str | None = None
    #: The ID of the unfinished download an earlier session left (``sdlib downloads``), and
    #: why it stopped then; resuming finishes it to its recorded target.
    entry_id: str | None = None
    earlier: str | None = None
    #: Keep bytes that differ from the published hashes (marked unverified): set only by
    #: the user, after a download was discarded for a hash mismatch (``--accept-mismatch``).
    accept_mismatch: bool = False
    #: What the install said on the way, as the CLI prints it ("picked ...", "from a
    #: CivArchive mirror ...", "could not write sidecars ...").
    notes: list[str] = field(default_factory=list)
    _sample: tuple[float, int] | None = None

    @property
    def eta(self) -> float | None:
        if self.state is not JobState.DOWNLOADING or not self.speed or not self.total:
            return None
        return max(0.0, (self.total - self.done) / self.speed)

    @property
    def running(self) -> bool:
        return self.state in RUNNING

    def progress(self, done: int, total: int | None, at: float) -> None:
        """Record bytes written at monotonic time ``at``; update the smoothed speed."""
        if total is not None:
            self.total = total
        if self._sample is None or done < self._sample[1]:
            self._sample = (at, done)
        else:
            then, before = self._sample
            elapsed = at - then
            if elapsed >= 0.2:
                now_speed = (done - before) / elapsed
                self.speed = now_speed if not self.speed else 0.6 * self.speed + 0.4 * now_speed
                self._sample = (at, done)
        self.done = done


class DownloadQueue:
    """Jobs in the order they were added; at most ``parallel`` run at once.

    ``start(job)`` must run ``run_job`` for the job in a worker thread; ``discard(path)``
    deletes a part file in a worker thread (a cancelled paused job).
    """

    def __init__(
        self,
        *,
        start: Callable[[DownloadJob], None],
        discard: Callable[[str], None],
        parallel: int = 2,
    ) -> None:
        self._start = start
        self._discard = discard
        self.parallel = max(1, parallel)
        self._jobs: dict[int, DownloadJob] = {}
        self._next_id = 1

    def __iter__(self) -> Iterator[DownloadJob]:
        return iter(list(self._jobs.values()))

    def __len__(self) -> int:
        return len(self._jobs)

    def get(self, job_id: int) -> DownloadJob | None:
        return self._jobs.get(job_id)

    @property
    def active(self) -> int:
        return sum(1 for j in self._jobs.values() if j.running)

    @property
    def waiting(self) -> int:
        return sum(1 for j in self._jobs.values() if j.state is JobState.QUEUED)

    def find(self, ref: str, file_id: int | None) -> DownloadJob | None:
        """An unfinished job for the same file, if one is queued or running."""
        for job in self._jobs.values():
            if job.ref == ref and job.choice.file_id == file_id and job.state not in FINISHED:
                return job
        return None

    def restore(self, entries: Iterable[UnfinishedDownload]) -> list[DownloadJob]:
        """Add the unfinished downloads of earlier sessions as paused jobs (not those the
        queue already has, nor those another process is downloading now)."""
        from sdlib.install import FileChoice

        added: list[DownloadJob] = []
        for entry in entries:
            file_id = entry.origin.get("file_id")
            file_id = file_id if isinstance(file_id, int) else None
            if entry.running or any(
                j.entry_id == entry.id or (j.ref == entry.ref and j.choice.file_id == file_id)
                or (j.part is not None and Path(j.part) == entry.part)
                for j in self._jobs.values()
            ):  # fmt: skip
                continue
            title = entry.origin.get("title")
            job = DownloadJob(
                self._next_id, entry.ref, FileChoice(file_id=file_id),
                title if isinstance(title, str) and title else entry.file_name,
                entry.file_name, entry.size, state=JobState.PAUSED, done=entry.kept,
                total=entry.size, part=str(entry.part),
                entry_id=entry.id, earlier=_earlier(entry),
            )  # fmt: skip
            self._next_id += 1
            self._jobs[job.id] = job
            added.append(job)
        return added

    def add(
        self, ref: str, choice: FileChoice, *, title: str, file_name: str, size: int | None
    ) -> DownloadJob:
        job = DownloadJob(self._next_id, ref, choice, title, file_name, size, total=size)
        self._next_id += 1
        self._jobs[job.id] = job
        self._pump()
        return job

    # -- user actions (UI thread) -----------------------------------------------------------
    def pause(self, job_id: int) -> bool:
        job = self._jobs.get(job_id)
        if job is None:
            return False
        if job.state is JobState.QUEUED:
            job.state = JobState.PAUSED
            return True
        if job.running and job.stop is None:
            job.stop = "pause"
            job.state = JobState.PAUSING
            job.cancel.set()
            return True
        return False

    def resume(self, job_id: int) -> bool:
        """Queue a paused, cancelled or failed job again (it resumes from its part file)."""
        job = self._jobs.get(job_id)
        if job is None or job.state not in (JobState.PAUSED, JobState.FAILED, JobState.CANCELLED):
            return False
        job.state = JobState.QUEUED
        job.cancel = threading.Event()
        job.stop = None
        job.reason = job.message = job.note = None
        job.notes = []
        job.speed = 0.0
        job._sample = None
        self._pump()
        return True

    def keep_anyway(self, job_id: int) -> bool:
        """Run a job discarded for a hash mismatch again, keeping what the source serves
        (marked unverified), as ``sdlib download --accept-mismatch`` does."""
        job = self._jobs.get(job_id)
        if job is None or job.state is not JobState.FAILED or job.reason != "hash mismatch":
            return False
        job.accept_mismatch = True
        return self.resume(job_id)

    def cancel(self, job_id: int) -> bool:
        job = self._jobs.get(job_id)
        if job is None or job.state in FINISHED:
            return False
        if job.running:
            if job.state is not JobState.CANCELLING:
                job.stop = "cancel"
                job.state = JobState.CANCELLING
                job.cancel.set()
            return True
        if job.state is JobState.PAUSED and job.part:
            self._discard(job.part)
        job.state = JobState.CANCELLED
        job.part = None
        job.done = 0
        return True

    def remove(self, job_id: int) -> bool:
        """Forget a finished job (running ones must be cancelled first)."""
        job = self._jobs.get(job_id)
        if job is None or job.running or job.state in (JobState.QUEUED, JobState.PAUSED):
            return False
        del self._jobs[job_id]
        return True

    def clear_finished(self) -> int:
        done = [j.id for j in self._jobs.values() if j.state in FINISHED]
        for job_id in done:
            del self._jobs[job_id]
        return len(done)

    # -- worker messages (UI thread) --------------------------------------------------------
    def apply(self, message: Message) -> DownloadJob | None:
        """Update the job a worker message is about; start queued jobs if a slot freed."""
        job = self._jobs.get(getattr(message, "job_id", -1))
        if job is None:
            return None
        if isinstance(message, DownloadProgress):
            if job.state in (JobState.DOWNLOADING, JobState.RETRYING):
                job.state = JobState.DOWNLOADING
            job.progress(message.done, message.total, message.at)
            job.note = None
        elif isinstance(message, DownloadPhase):
            self._phase(job, message)
        elif isinstance(message, DownloadDone):
            job.state = JobState.DONE
            job.result = message.result
            job.done = job.total = message.result.size
            job.note = str(message.result.path)
            job.part = None
        elif isinstance(message, DownloadStopped):
            if job.stop == "cancel":
                job.state = JobState.CANCELLED
                job.done = 0
                job.part = None
            else:
                job.state = JobState.PAUSED
                job.part = message.part
            job.speed = 0.0
            job.stop = None
        elif isinstance(message, DownloadFailed):
            job.state = JobState.FAILED
            job.reason = message.reason
            job.message = message.message
            job.speed = 0.0
            job.stop = None
        self._pump()
        return job

    def _phase(self, job: DownloadJob, message: DownloadPhase) -> None:
        if message.phase == "note" and message.detail:
            job.notes.append(message.detail)
            return
        if job.stop is not None:  # pausing/cancelling: keep saying so
            return
        if message.phase == "resolving":
            job.state = JobState.RESOLVING
        elif message.phase == "downloading":
            job.state = JobState.DOWNLOADING
            if message.total is not None:
                job.total = message.total
            job.done = message.resumed_from
            job._sample = None
            if message.file_name:
                job.file_name = message.file_name
            job.note = (
                f"resumed at {human_size(message.resumed_from)}" if message.resumed_from else None
            )
        elif message.phase == "retrying":
            job.state = JobState.RETRYING
            job.note = message.detail
        elif message.phase == "verifying":
            job.state = JobState.VERIFYING
            job.note = None

    def _pump(self) -> None:
        for job in list(self._jobs.values()):
            if self.active >= self.parallel:
                return
            if job.state is JobState.QUEUED:
                job.state = JobState.RESOLVING
                self._start(job)


def _earlier(entry: UnfinishedDownload) -> str:
    """Why an earlier session's download stopped, for the detail line."""
    kept = (f"{human_size(entry.kept)} kept" if entry.part_exists
            else "its part file is gone: resuming starts again")  # fmt: skip
    why = f"{entry.stopped_by}: {entry.reason}" if entry.reason else entry.stopped_by
    return f"unfinished from an earlier session ({why}); {kept}"
