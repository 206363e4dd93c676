"""``identify``: which model version each file is, by hash; sidecars from the answer.

For each model file: its hashes (from the index or the hash cache; read only if neither
has them). Files are taken 100 at a time; the source is asked for their SHA256s at once
where it can (``Lookup.prefetch``), then each file is matched (``Lookup.match``: SHA256,
then AutoV3 and AutoV2, hashed differently by Civitai or a header edited since). The
source caches and paces its own requests (``sdlib.lookup``; Civitai's in
``sdlib.sources.civitai``); lookups are spread over a few threads and each file's result
is committed as soon as it arrives, so an interrupted run resumes where it stopped. Files
the source does not know are "unidentified", not errors.

Sidecars never get worse: an existing non-empty ``.civitai.info`` is kept unless
``refresh``; A1111's ``<stem>.json`` is merged (the user's keys win) and backed up before a
change; a preview is written as ``.preview.<true extension>`` only when the model has none.
A 404 or an error never touches a sidecar. SD.Next reads ``<stem>.json`` as Civitai's model
JSON, so no A1111 ``<stem>.json`` is written for it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdlib.errors import RateLimited, SdlibError, SourceError
from sdlib.library.sidecars import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    a1111_user_metadata,
    read_json,
    stability_matrix_info,
    write_json,
    write_model_sidecars,
)

if TYPE_CHECKING:
    from sdlib.hashcache import HashCache
    from sdlib.hashing import FileHashes
    from sdlib.library.index import FileRow, Index
    from sdlib.library.wall import Wall
    from sdlib.lookup import Lookup, Match, ModelFacts

__all__ = ["Identifier", "IdentifyEvent", "IdentifyOptions", "IdentifyResult"]

DAY = 86_400.0
#: Files hashed before their SHA256s are asked for at once (Civitai's bulk limit).
BULK = 100
#: The hashes a lookup is given (those the hash cache computes and sources match on).
_MATCHED = ("SHA256", "AutoV3", "AutoV2", "BLAKE3")
#: Layouts whose front end reads A1111's ``<stem>.json``... or at least is not confused by it.
_NO_USER_METADATA = frozenset({"sdnext"})


@dataclass(frozen=True)
class IdentifyOptions:
    #: Ask Civitai again even for files already identified, and rewrite their sidecars.
    refresh: bool = False
    previews: bool = True
    nsfw: bool = False
    #: Write A1111's ``<stem>.json`` (not for SD.Next, whose ``<stem>.json`` differs).
    user_metadata: bool = True
    #: Write Stability Matrix's ``<stem>.cm-info.json`` (its Models folder).
    cm_info: bool = False
    jobs: int = 4
    #: How long "the source does not know this file" stands before the file is asked again.
    missing_ttl: float = 7 * DAY
    #: Give up after this many failures in a row (the site is down, not the files wrong).
    max_failures: int = 3
    #: Where sidecars may be written (the scanned root): a model reached through a link that
    #: leads outside it is identified, but nothing is written beside it. None: anywhere
    #: (files the user named one by one).
    wall: Wall | None = None

    @classmethod
    def for_layout(cls, layout_name: str, **kwargs: Any) -> IdentifyOptions:
        return cls(
            user_metadata=layout_name not in _NO_USER_METADATA,
            cm_info=layout_name == "stabilitymatrix",
            **kwargs,
        )


@dataclass(frozen=True)
class IdentifyResult:
    path: str
    #: identified | unidentified | error | skipped
    state: str
    sha256: str | None = None
    #: No request was made: the index (or its cache) already knew.
    cached: bool = False
    matched_by: str | None = None
    model_id: int | None = None
    version_id: int | None = None
    file_id: int | None = None
    model_name: str | None = None
    version_name: str | None = None
    base_model: str | None = None
    sidecars: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    error: str | None = None
    exit_code: int = 0
    #: The source that identified the file (``civitai``, ``civarchive``).
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        data["sidecars"] = list(self.sidecars)
        data["notes"] = list(self.notes)
        return data


@dataclass(frozen=True)
class IdentifyEvent:
    """Progress: ``stage`` is hash or lookup."""

    stage: str
    done: int
    total: int
    path: str


@dataclass
class Identifier:
    index: Index
    hashes: HashCache
    lookup: Lookup
    options: IdentifyOptions = field(default_factory=IdentifyOptions)
    on_event: Callable[[IdentifyEvent], None] = field(default=lambda _e: None)
    _memo: dict[str, Future[Match | None]] = field(default_factory=dict, init=False)
    _memo_lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def run(self, rows: Iterable[FileRow]) -> list[IdentifyResult]:
        """Identify ``rows`` (model rows of the index); results in the order given."""
        rows = [r for r in rows if r.role == "model" and r.present]
        results: dict[str, IdentifyResult] = {}
        todo: list[FileRow] = []
        for row in rows:
            early = self._without_asking(row)
            if early is not None:
                results[row.path] = early
            else:
                todo.append(row)
        self._lookup_all(todo, results)
        return [results[r.path] for r in rows if r.path in results]

    # -- answers that need no request ---------------------------------------------------------

    def _without_asking(self, row: FileRow) -> IdentifyResult | None:
        if row.problem:
            return IdentifyResult(row.path, "skipped", notes=(f"not readable: {row.problem}",))
        if self.options.refresh:
            return None
        if row.identify_state == "identified" and row.sha256:
            known = self.hashes.lookup(row.path)
            hashes = _hash_map(known) if known else {"SHA256": row.sha256}
            match = self.lookup.cached_match(hashes, row.matched_by or "SHA256")
            sidecars = self._sidecars(row, match) if match is not None else ()
            return self._result(row, row.sha256, "identified", row.matched_by, cached=True,
                                sidecars=sidecars)  # fmt: skip
        fresh = row.identified_at and time.time() - row.identified_at < self.options.missing_ttl
        if row.identify_state == "unidentified" and fresh:
            return IdentifyResult(row.path, "unidentified", row.sha256, cached=True)
        return None

    # -- lookups ------------------------------------------------------------------------------

    def _lookup_all(self, rows: list[FileRow], results: dict[str, IdentifyResult]) -> None:
        """Hash a batch in this thread and ask for its SHA256s in one bulk request; look up
        what is left in a small pool; record each answer as it arrives. Stops asking after
        a rate limit or repeated failures."""
        total = len(rows)
        failures = 0
        stop: str | None = None
        done = 0
        pending: dict[Future[Match | None], tuple[FileRow, FileHashes]] = {}
        queue = list(rows)
        ready: list[tuple[FileRow, FileHashes]] = []
        with ThreadPoolExecutor(max_workers=max(1, self.options.jobs)) as pool:
            try:
                while queue or ready or pending:
                    if not ready and queue and stop is None:
                        for row in queue[:BULK]:
                            self.on_event(IdentifyEvent("hash", done, total, row.path))
                            hashes = self._hashes(row)
                            if hashes is None:
                                done += 1
                                results[row.path] = IdentifyResult(
                                    row.path, "skipped", notes=("could not read the file",)
                                )
                            else:
                                ready.append((row, hashes))
                        del queue[:BULK]
                        self.lookup.prefetch(
                            [h.sha256 for _, h in ready], refresh=self.options.refresh
                        )
                    while ready and stop is None and len(pending) < self.options.jobs * 2:
                        row, hashes = ready.pop(0)
                        pending[pool.submit(self._lookup, hashes)] = (row, hashes)
                    if stop is not None:
                        for row in queue + [r for r, _ in ready]:
                            results[row.path] = self._not_tried(row, stop)
                        queue.clear()
                        ready.clear()
                    if not pending:
                        continue
                    finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in finished:
                        row, hashes = pending.pop(future)
                        done += 1
                        self.on_event(IdentifyEvent("lookup", done, total, row.path))
                        if future.cancelled():
                            results[row.path] = self._not_tried(row, stop or "a failure")
                            continue
                        try:
                            match = future.result()
                        except SourceError as exc:
                            failures += 1
                            results[row.path] = IdentifyResult(
                                row.path, "error", hashes.sha256, error=exc.message,
                                exit_code=exc.exit_code,
                            )  # fmt: skip
                            limited = isinstance(exc, RateLimited)
                            if limited or failures >= self.options.max_failures:
                                stop = stop or exc.message
                            continue
                        failures = 0
                        results[row.path] = self._record(row, hashes, match)
                    if stop is not None:
                        for future in pending:
                            future.cancel()
            finally:
                for future in pending:
                    future.cancel()

    def _not_tried(self, row: FileRow, why: str) -> IdentifyResult:
        return IdentifyResult(
            row.path, "skipped", row.sha256, error=f"not looked up: stopped after {why}",
            exit_code=7,
        )  # fmt: skip

    def _hashes(self, row: FileRow) -> FileHashes | None:
        try:
            hashes, _ = self.hashes.get(row.path)
        except (OSError, SdlibError):
            return None
        if row.sha256 != hashes.sha256 and row.id is not None:
            self.index.update(row.id, sha256=hashes.sha256)
        return hashes

    def _lookup(self, hashes: FileHashes) -> Match | None:
        """The source's match for these bytes, or None when it knows none of the hashes.

        Copies of the same bytes are asked once: the first lookup of a SHA256 answers every
        later one (so identical copies also get identical sidecars). The pool runs tasks in
        order, so a later copy's task only waits on one that is running or done."""
        with self._memo_lock:
            shared = self._memo.get(hashes.sha256)
            if shared is None:
                shared = self._memo[hashes.sha256] = Future()
                mine = True
            else:
                mine = False
        if not mine:
            return shared.result()
        try:
            match = self.lookup.match(_hash_map(hashes), refresh=self.options.refresh)
        except BaseException as exc:
            shared.set_exception(exc)
            raise
        shared.set_result(match)
        return match

    # -- results ------------------------------------------------------------------------------

    def _record(self, row: FileRow, hashes: FileHashes, match: Match | None) -> IdentifyResult:
        now = time.time()
        assert row.id is not None
        if match is None:
            self.index.update(row.id, identify_state="unidentified", identified_at=now,
                              matched_by=None, identified_source=None)  # fmt: skip
            return IdentifyResult(row.path, "unidentified", hashes.sha256)
        values: dict[str, Any] = {
            "civitai_model_id": match.model_id, "civitai_version_id": match.version_id,
            "civitai_file_id": match.file.id if match.file else None,
            "civitai_model_name": match.model_name, "civitai_version_name": match.version_name,
            "civitai_base_model": match.base_model, "identify_state": "identified",
            "identified_at": now, "matched_by": match.matched_by,
            "identified_source": None if match.source == "civitai" else match.source,
        }  # fmt: skip
        was = (row.civitai_version_id, row.identify_state)
        self.index.update(row.id, **values)
        if was != (values["civitai_version_id"], "identified"):
            self.index.event(row.id, "identified", version_id=values["civitai_version_id"],
                             matched_by=match.matched_by)  # fmt: skip
        row = replace(row, **values)
        sidecars = self._sidecars(row, match)
        return self._result(row, hashes.sha256, "identified", match.matched_by, sidecars=sidecars)

    def _result(
        self, row: FileRow, sha256: str | None, state: str, matched_by: str | None,
        *, cached: bool = False, sidecars: tuple[str, ...] = (),
    ) -> IdentifyResult:  # fmt: skip
        return IdentifyResult(
            row.path, state, sha256, cached=cached, matched_by=matched_by,
            model_id=row.civitai_model_id, version_id=row.civitai_version_id,
            file_id=row.civitai_file_id, model_name=row.civitai_model_name,
            version_name=row.civitai_version_name, base_model=row.civitai_base_model,
            sidecars=sidecars,
            source=(row.identified_source or "civitai") if state == "identified" else None,
        )  # fmt: skip

    # -- sidecars -----------------------------------------------------------------------------

    def _sidecars(self, row: FileRow, match: Match) -> tuple[str, ...]:
        """Write what is missing (or everything, with ``refresh``); never make one worse."""
        model = Path(row.path)
        written: list[Path] = []
        if self.options.wall is not None and not self.options.wall.holds(model.parent):
            return ()  # behind a link that leads outside the root: never written there
        try:
            info = model.with_name(model.stem + ".civitai.info")
            existing = read_json(info)
            keep = isinstance(existing, dict) and existing and not self.options.refresh
            if match.source == "civitai" and not keep and write_json(info, dict(match.record)):
                written.append(info)
            meta = None
            if self.options.user_metadata:
                meta = a1111_user_metadata(
                    kind=row.kind or "unknown", base=row.base,
                    description=self._model(match).description, trained_words=match.trained_words,
                    notes=_notes(match),
                )  # fmt: skip
            preview = None
            if self.options.previews and not _has_preview(model):
                preview = self._preview(match)
            written += write_model_sidecars(model, version_json=None, user_metadata=meta,
                                            preview=preview)  # fmt: skip
            cm = model.with_name(model.stem + ".cm-info.json")
            wanted = self.options.cm_info and (self.options.refresh or read_json(cm) is None)
            if wanted and write_json(cm, self._cm_info(model, match)):
                written.append(cm)
        except OSError:
            return tuple(str(p) for p in written)  # a read-only folder: the index still knows
        return tuple(str(p) for p in written)

    def _model(self, match: Match) -> ModelFacts | _NoModel:
        """The version's model (description, tags, creator), or nothing when out of reach."""
        if match.model_id is None:
            return _NO_MODEL
        try:
            model = self.lookup.model(match.model_id, DAY)
        except SourceError:
            return _NO_MODEL  # these are niceties: never fail a file over them
        return model if model is not None else _NO_MODEL

    def _cm_info(self, model: Path, match: Match) -> dict[str, Any]:
        full = self._model(match)
        file = match.file
        return stability_matrix_info(
            version_json=match.record,
            model_name=match.model_name or full.name or model.stem,
            model_description=full.description,
            model_type=match.model_type or full.type,
            nsfw=match.model_nsfw if match.model_nsfw is not None else full.nsfw,
            tags=list(full.tags),
            author=full.creator,
            file_name=(file.name if file else None) or model.name,
            file_id=file.id if file else None,
            file_metadata=dict(file.metadata) if file else {},
            hashes={k.upper(): v for k, v in file.hashes.items()} if file else {},
            # The answer's time, not now: identical copies get identical sidecars (a
            # per-copy timestamp made organize --dedupe see them as different).
            imported_at=datetime.fromtimestamp(
                match.answered_at if match.answered_at is not None else time.time(), timezone.utc
            ).isoformat(),
            source_url=match.page_url,
        )

    def _preview(self, match: Match) -> bytes | None:
        from sdlib.library.sidecars import image_extension

        for image in match.previews:
            if image.nsfw and not self.options.nsfw:
                continue
            data = self.lookup.preview(image.url)
            if data and image_extension(data[:16]):
                return data
        return None


@dataclass(frozen=True)
class _NoModel:
    """Stands in for a model the source could not give: every fact absent."""

    name: None = None
    type: None = None
    nsfw: bool = False
    description: None = None
    tags: tuple[str, ...] = ()
    creator: None = None


_NO_MODEL = _NoModel()


def _hash_map(hashes: FileHashes) -> dict[str, str]:
    return {name: value for name in _MATCHED if (value := hashes.get(name) or "")}


def _has_preview(model: Path) -> bool:
    stem = model.stem
    names = [stem + ext for ext in IMAGE_EXTENSIONS + VIDEO_EXTENSIONS]
    names += [f"{stem}.preview{ext}" for ext in IMAGE_EXTENSIONS + VIDEO_EXTENSIONS]
    names.append(f"{stem}.thumb.jpg")
    return any(os.path.exists(model.with_name(n)) for n in names)


def _notes(match: Match) -> str:
    from sdlib.library.sidecars import strip_html

    lines = [match.page_url]
    if match.base_model:
        lines.append(f"Base model: {match.base_model}")
    if match.description:
        lines.append(strip_html(match.description))
    return "\n".join(lines)
