"""The download engine: one ``_Download`` per file, from the part file's lock to its name.

The guarantees it keeps are the package's (``sdlib.download``'s docstring). The control
flow lives here (lock, resume state, requests, retries, verification, placing); the
policy-free parts live beside it: ``_streaming`` (reading a body, one stream or pieces),
``_ramp`` (how many connections), ``_pieces`` (parallel ranged pieces in order),
``_transfer`` (pacing, buffers, flushing), ``_writer`` (the part file's writes, on a
thread of their own) and ``_checks`` (refusals and their wording).
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
from typing import BinaryIO

import httpx2

from sdlib._filelock import unlock
from sdlib.download._checks import (
    check_free_space,
    discard_reason,
    not_http_message,
    open_part_locked,
    refuse_reserved_name,
    size_offer_error,
)
from sdlib.download._ramp import Ramp
from sdlib.download._streaming import BodyReading, Transient
from sdlib.download._transfer import (
    PROGRESS_RESETS_RETRIES,
    BackgroundFlush,
    CancelWatch,
    ReadDeadline,
    Throttle,
    content_range_start,
    content_range_total,
    describe_transport,
    feed_prefix,
    parse_int,
)
from sdlib.download._unfinished import ResumeRecord
from sdlib.download._values import (
    DownloadOptions,
    DownloadResult,
    DownloadSpec,
    EventCallback,
    Finished,
    Retrying,
    Verifying,
    part_path,
)
from sdlib.download._writer import FileWriter
from sdlib.errors import (
    DiskFull,
    DownloadError,
    HashMismatch,
    Interrupted,
    SourceError,
)
from sdlib.files.verification import Verification, check
from sdlib.formatting import human_size
from sdlib.hashing import FileHashes, Hasher
from sdlib.http import FAST_BODY, raise_for_status

__all__ = ["download"]


# --- the engine -------------------------------------------------------------------------------


class _Restart(Exception):
    """The server cannot continue from our offset: start the file again from zero."""


def download(
    client: httpx2.Client,
    spec: DownloadSpec,
    options: DownloadOptions | None = None,
    on_event: EventCallback | None = None,
) -> DownloadResult:
    """Fetch ``spec.url`` to ``spec.dest`` (see the module docstring for guarantees)."""
    return _Download(client, spec, options or DownloadOptions(), on_event).run()


class _Download(BodyReading):
    def __init__(
        self,
        client: httpx2.Client,
        spec: DownloadSpec,
        options: DownloadOptions,
        on_event: EventCallback | None,
    ) -> None:
        self.client = client
        self.spec = spec
        self.opt = options
        self.emit: EventCallback = on_event or (lambda _e: None)
        self.name = spec.dest.name
        self.part = part_path(spec.dest)
        self.url = spec.url
        self.total: int | None = spec.size
        self.validator: str | None = None
        self.connections = 1
        # One connection, more while they pay; or exactly the user's --connections N.
        self.ramp = (
            Ramp(options.connections) if options.adaptive else Ramp.fixed(options.connections)
        )
        self.fh: BinaryIO | None = None
        self.hasher = Hasher(spec.size, threads=True)
        self.offset = 0
        self.resumed_from = 0
        self.throttle = Throttle(options.limit_rate, options.sleep)
        self.flush: BackgroundFlush | None = None
        self.writer = FileWriter(None)  # none until the part file is open
        self.record = ResumeRecord(
            options.state_dir, self.part, spec.size, spec.hashes,
            target=spec.dest, url=spec.url, origin=spec.origin,
        )  # fmt: skip
        self.watch: CancelWatch | None = None
        self.deadline: ReadDeadline | None = None
        self._last_emit = 0.0
        self._last_done = 0

    # -- top level ---------------------------------------------------------------------------
    def run(self) -> DownloadResult:
        dest = self.spec.dest
        refuse_reserved_name(dest)
        if dest.exists():
            raise DownloadError(f"{dest} already exists; not overwriting it", path=str(dest))
        dest.parent.mkdir(parents=True, exist_ok=True)
        fh = open_part_locked(self.part, self.opt.lock_wait, self.name)
        # Ours now: whatever ends this download, its record says so (``sdlib downloads``).
        try:
            return self._run_locked(fh)
        except BaseException as exc:
            self.record.stopped(self.offset, exc)
            raise

    def _run_locked(self, fh: BinaryIO) -> DownloadResult:
        dest = self.spec.dest
        self.fh = fh
        self.flush = BackgroundFlush.start(fh.fileno())
        self.writer = FileWriter(fh.fileno(), self.flush)
        if self.opt.cancel is not None:
            self.watch = CancelWatch(self.opt.cancel)
        self.deadline = ReadDeadline(self.opt.stall_timeout)
        ok = False
        try:
            try:
                self._load_state()
                self.record.begin(self.validator, self.offset)
                self._check_disk_space()
                self._fetch_with_retries()
            finally:
                # Whatever ended the fetching, what was handed to the writer is written
                # before anything counts it as kept; a write that failed (a full disk) is
                # the error to report, and its bytes are not counted.
                self._finish_writes()
            hashes = self._finish_hashing()
            verification = self._verify(hashes)
            ok = True
        except KeyboardInterrupt:
            if not self.offset:
                raise Interrupted("interrupted before any bytes arrived") from None
            raise Interrupted(
                f"interrupted; {human_size(self.offset)} kept in {self.part.name}; "
                f"{self._resume_hint()}"
            ) from None
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
                raise DiskFull(
                    f"disk full while writing {self.part.name}; free some space, then "
                    f"{self._resume_hint()}",
                    path=str(self.part),
                ) from None
            raise DownloadError(f"cannot write {self.part}: {exc.strerror or exc}") from None
        finally:
            self._close(fh, keep=not ok)
        self._place()
        self.emit(Finished(self.name, str(dest), hashes.size))
        return DownloadResult(dest, hashes, self.resumed_from, self.connections, verification)

    def _finish_writes(self) -> None:
        self.offset -= self.writer.close()
        self.writer.check()

    def _close(self, fh: BinaryIO, keep: bool) -> None:
        self.writer.close()  # stopped already (``_finish_writes``); never closing fh under it
        self._stop_flush()
        if self.watch is not None:
            self.watch.stop()
        if self.deadline is not None:
            self.deadline.stop()
        if keep:
            self.hasher.close()  # stop its threads; a later run re-hashes what was kept
        with contextlib.suppress(OSError):
            fh.flush()
            if keep:
                os.fsync(fh.fileno())
        size = self.offset
        with contextlib.suppress(OSError):
            unlock(fh)
        fh.close()
        if keep and size == 0:
            # Nothing worth resuming: leave the folder exactly as it was.
            with contextlib.suppress(OSError):
                self.part.unlink()
            self.record.drop()

    def _place(self) -> None:
        if self.spec.dest.exists():  # appeared while we downloaded
            self.part.unlink(missing_ok=True)
            self.offset = 0  # nothing left to resume
            raise DownloadError(f"{self.spec.dest} appeared meanwhile; not overwriting it")
        os.replace(self.part, self.spec.dest)
        self.record.drop()

    def _resume_hint(self) -> str:
        if self.opt.state_dir is None:  # no record: only the same call resumes
            return "run the same command again to resume"
        return f"resume with: sdlib downloads --resume {self.record.id}"

    # -- resume state ------------------------------------------------------------------------
    def _load_state(self) -> None:
        assert self.fh is not None
        have = os.fstat(self.fh.fileno()).st_size
        trusted, validator = self.record.load()
        if have and trusted and (self.total is None or have <= self.total):
            self.validator = validator
            feed_prefix(self.fh, have, self.hasher)  # the only re-read
            self.offset = self.resumed_from = have
        elif have:
            self._truncate()

    def _truncate(self) -> None:
        assert self.fh is not None
        self.writer.wait_done(self.writer.fed)  # nothing queued may land after the cut
        self.fh.truncate(0)
        self.fh.seek(0)
        self.offset = 0
        self.resumed_from = 0
        self.hasher.close()
        self.hasher = Hasher(self.spec.size, threads=True)

    def _check_disk_space(self) -> None:
        if self.total is None:
            return
        check_free_space(self.part.parent, max(0, self.total - self.offset), self.name)

    # -- fetching ----------------------------------------------------------------------------
    def _fetch_with_retries(self) -> None:
        attempt = 0
        progress = self.offset
        while True:
            try:
                self._fetch_once()
                if self.total is None or self.offset >= self.total:
                    return
                continue  # pieces gave way to a single stream: request the rest
            except _Restart:
                self._truncate()
                self.validator = None
            except Transient as exc:
                self.writer.check()  # a piece failed because the disk did: not a network error
                self._check_cancel()  # a cancel broke the connection: stop, do not retry
                if self.offset - progress >= PROGRESS_RESETS_RETRIES:
                    # A flaky link that keeps delivering: only failures in a row count.
                    attempt, progress = 0, self.offset
                if attempt >= self.opt.retries:
                    tries = f"{attempt + 1} attempt{'s' if attempt else ''}"
                    raise DownloadError(
                        f"{self.name}: {exc} (gave up after {tries}; "
                        f"{human_size(self.offset)} kept; {self._resume_hint()})"
                    ) from None
                delay = min(self.opt.backoff_max, 2.0**attempt) * random.uniform(0.5, 1.0)
                attempt += 1
                self.emit(Retrying(self.name, attempt, str(exc), delay))
                self.opt.wait(delay)
                self._check_cancel()

    def _timeout(self) -> httpx2.Timeout:
        return httpx2.Timeout(self.opt.stall_timeout, connect=self.opt.connect_timeout)

    def _fetch_once(self) -> None:
        if self.deadline is not None:
            self.deadline.fired = False  # a new request: an old read's deadline says nothing
        headers = {"Accept-Encoding": "identity"}
        if self.offset:
            headers["Range"] = f"bytes={self.offset}-"
            if self.validator:
                headers["If-Range"] = self.validator
        try:
            request = self.client.build_request(
                "GET",
                self.url,
                headers=headers,
                timeout=self._timeout(),
                extensions={FAST_BODY: True},
            )
            response = self.client.send(request, stream=True, follow_redirects=True)
        except httpx2.UnsupportedProtocol as exc:
            # A redirect to file://, ftp://...: never followed, and no retry changes that.
            raise DownloadError(not_http_message(self.name, self.url, exc)) from None
        except httpx2.TooManyRedirects:
            raise DownloadError(
                f"{self.name}: the server redirects in a loop (more than "
                f"{self.client.max_redirects} redirects); giving up"
            ) from None
        except httpx2.TransportError as exc:
            raise Transient(describe_transport(exc)) from None
        try:
            done = self._handle_first_response(response)
            if done:
                return
            self._read_body(response)
        finally:
            response.close()

    def _handle_first_response(self, response: httpx2.Response) -> bool:
        """Check status and headers; True if the file turns out to be complete already."""
        status = response.status_code
        if status == 416 and self.offset:
            total = content_range_total(response.headers.get("Content-Range"))
            if total is not None and total == self.offset:
                self.total = total
                return True
            raise _Restart()
        if status >= 400:
            self._raise_status(response)
        if status == 200 and self.offset:
            raise _Restart()  # the server ignored our Range (or If-Range said "changed")
        if status == 206:
            start = content_range_start(response.headers.get("Content-Range"))
            if start != self.offset:
                raise _Restart()
            total = content_range_total(response.headers.get("Content-Range"))
        else:
            total = parse_int(response.headers.get("Content-Length"))
        if total is not None:
            if self.spec.size not in (None, total) and not self.opt.accept_mismatch:
                raise size_offer_error(self.name, total, self.spec.size)
            self.total = total
        self.validator = response.headers.get("ETag") or response.headers.get("Last-Modified")
        self.record.save(self.validator)
        self._check_disk_space()
        return False

    def _raise_status(self, response: httpx2.Response) -> None:
        status = response.status_code
        redirected = bool(response.history)
        if redirected and status in (401, 403, 410) and self.spec.refresh is not None:
            # A signed storage URL that expired: ask the API for a new one.
            self.url = self.spec.refresh()
            raise Transient(f"storage link expired (HTTP {status}); fetched a new one")
        if status in (500, 502, 503, 504, 408):
            raise Transient(f"server error HTTP {status}")
        mapper = self.opt.raise_for_status or raise_for_status
        try:
            mapper(response)
        except SourceError as exc:
            if exc.status == 429:
                raise Transient("rate limited (HTTP 429)") from None
            raise
        raise DownloadError(f"{self.name}: HTTP {status}")

    # -- verification ------------------------------------------------------------------------
    def _finish_hashing(self) -> FileHashes:
        assert self.fh is not None
        self.fh.flush()
        self._stop_flush()
        os.fsync(self.fh.fileno())
        # What was hashed went to the file, and nothing else did (the writer's thread
        # reports every failure; this holds it to that before anything takes a name).
        on_disk = os.fstat(self.fh.fileno()).st_size
        if on_disk != self.offset:
            problem = DownloadError(
                f"{self.name}: the part file holds {on_disk:,} bytes but {self.offset:,} "
                "were received; the download was discarded"
            )
            self.offset = 0  # not a prefix anyone can trust: _close deletes it
            raise problem
        return self.hasher.result()

    def _stop_flush(self) -> None:
        if self.flush is not None:
            self.flush.stop()
            self.flush = None

    def _verify(self, hashes: FileHashes) -> Verification:
        self.emit(Verifying(self.name))
        verdict = check(hashes, self.spec.hashes, self.spec.size)
        problem = discard_reason(
            verdict, self.part, hashes.size, self.spec.container, self.opt.accept_mismatch
        )
        if problem is None:
            return verdict.accept() if self.opt.accept_mismatch else verdict
        self.offset = 0  # the record keeps why (``sdlib downloads``); the bytes go
        with contextlib.suppress(OSError):
            self.part.unlink()
        bad = verdict.disagreements[0] if verdict.disagreements else None
        raise HashMismatch(
            f"{self.name}: {problem}",
            expected=bad.published if bad else None,
            actual=bad.actual if bad else None,
        )
