"""``identify``: which Civitai model version each file is, by hash; sidecars from the answer.

For each model file: SHA256 (from the index or the hash cache; read only if neither has
it). Files are taken 100 at a time and their SHA256s asked for in one request
(``POST /model-versions/by-hash``); a server without that endpoint is asked file by file
(``GET /model-versions/by-hash/{SHA256}``). Files still unknown are tried by AutoV3 and
AutoV2 (hashed differently by Civitai, or a header edited since). Answers, including "not
found", are cached in the index; requests are paced by a rate limiter and spread over a few
threads; each file's result is committed as soon as it arrives, so an interrupted run
resumes where it stopped. Files Civitai does not know are "unidentified", not errors.

Sidecars never get worse: an existing non-empty ``.civitai.info`` is kept unless
``refresh``; A1111's ``<stem>.json`` is merged (the user's keys win) and backed up before a
change; a preview is written as ``.preview.<true extension>`` only when the model has none.
A 404 or an error never touches a sidecar. SD.Next reads ``<stem>.json`` as Civitai's model
JSON, so no A1111 ``<stem>.json`` is written for it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
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
    from sdlib.library._remote import Remote
    from sdlib.library.index import FileRow, Index
    from sdlib.library.wall import Wall

__all__ = ["Identifier", "IdentifyEvent", "IdentifyOptions", "IdentifyResult"]

DAY = 86_400.0
#: SHA256s per bulk request (Civitai's limit for POST /model-versions/by-hash).
BULK = 100
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
    #: How long answers stay good: a found version, and "Civitai does not know this hash".
    found_ttl: float = 30 * DAY
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
    remote: Remote
    options: IdentifyOptions = field(default_factory=IdentifyOptions)
    on_event: Callable[[IdentifyEvent], None] = field(default=lambda _e: None)
    #: Set once the server turned the bulk request down: ask file by file from then on.
    _bulk_off: bool = field(default=False, init=False)
    #: Answers the bulk lookup stored during this run: good even with ``refresh``.
    _asked_now: set[str] = field(default_factory=set, init=False)

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
            value = known.get(row.matched_by or "SHA256") if known else None
            hit = self.remote.stale(f"by-hash:{(value or row.sha256).upper()}")
            sidecars: tuple[str, ...] = ()
            if hit and hit[0] == 200:
                sidecars = self._sidecars(row, hit[1])
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
        pending: dict[Future[tuple[str, Any]], tuple[FileRow, FileHashes]] = {}
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
                        self._bulk([h for _, h in ready])
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
                            matched_by, body = future.result()
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
                        results[row.path] = self._record(row, hashes, matched_by, body)
                    if stop is not None:
                        for future in pending:
                            future.cancel()
            finally:
                for future in pending:
                    future.cancel()

    def _fresh(self, key: str) -> tuple[int, Any, float] | None:
        """A cached answer still good for its kind (found or not found), unless refresh
        (answers fetched during this very run count even then)."""
        stale_ok = not self.options.refresh or key in self._asked_now
        hit = self.remote.index.remote_get(key, None) if stale_ok else None
        if hit is None:
            return None
        ttl = self.options.found_ttl if hit[0] == 200 else self.options.missing_ttl
        return hit if time.time() - hit[2] < ttl else None

    def _bulk(self, batch: list[FileHashes]) -> None:
        """Ask for up to 100 SHA256s in one request (``POST /model-versions/by-hash``) and
        cache every answer, found or not. Servers without it answer an error: then each
        file is asked for on its own, as before."""
        if self._bulk_off:
            return
        wanted = sorted({h.sha256.upper() for h in batch} - {
            h.sha256.upper() for h in batch if self._fresh(f"by-hash:{h.sha256.upper()}")
        })  # fmt: skip
        if len(wanted) < 2:
            return
        try:
            data = self.remote.post_json("/api/v1/model-versions/by-hash", wanted)
        except SourceError:
            self._bulk_off = True  # not supported here (or failing): ask one by one
            return
        if not isinstance(data, list):
            self._bulk_off = True
            return
        found: dict[str, dict[str, Any]] = {}
        for version in data:
            for f in version.get("files") or () if isinstance(version, dict) else ():
                hashes = f.get("hashes") if isinstance(f, dict) else None
                sha = hashes.get("SHA256") if isinstance(hashes, dict) else None
                if isinstance(sha, str) and sha.upper() in wanted:
                    found.setdefault(sha.upper(), version)  # the first, as by-hash does
        for sha in wanted:
            body = found.get(sha)
            self.remote.index.remote_put(f"by-hash:{sha}", 200 if body else 404, body)
            self._asked_now.add(f"by-hash:{sha}")

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

    def _lookup(self, hashes: FileHashes) -> tuple[str, Any]:
        """(matched_by, version JSON) or ("", None) when Civitai knows none of the hashes."""
        for name in ("SHA256", "AutoV3", "AutoV2"):
            value = (hashes.get(name) or "").upper()
            if not value:
                continue
            key = f"by-hash:{value}"
            hit = self._fresh(key)
            if hit is not None:
                self.remote.cache_hits += 1
                status, body = hit[0], hit[1]
            else:
                status, body = self.remote.fetch(key, f"/api/v1/model-versions/by-hash/{value}")
            if status == 200 and isinstance(body, dict) and _file_matching(body, hashes, name)[0]:
                return name, body
        return "", None

    # -- results ------------------------------------------------------------------------------

    def _record(
        self, row: FileRow, hashes: FileHashes, matched_by: str, body: Any
    ) -> IdentifyResult:
        now = time.time()
        assert row.id is not None
        if not matched_by:
            self.index.update(row.id, identify_state="unidentified", identified_at=now,
                              matched_by=None)  # fmt: skip
            return IdentifyResult(row.path, "unidentified", hashes.sha256)
        file = _file_matching(body, hashes, matched_by)[1] or {}
        model = body.get("model") if isinstance(body.get("model"), dict) else {}
        values = {
            "civitai_model_id": body.get("modelId"), "civitai_version_id": body.get("id"),
            "civitai_file_id": file.get("id"), "civitai_model_name": model.get("name"),
            "civitai_version_name": body.get("name"), "civitai_base_model": body.get("baseModel"),
            "identify_state": "identified", "identified_at": now, "matched_by": matched_by,
        }  # fmt: skip
        was = (row.civitai_version_id, row.identify_state)
        self.index.update(row.id, **values)
        if was != (values["civitai_version_id"], "identified"):
            self.index.event(row.id, "identified", version_id=values["civitai_version_id"],
                             matched_by=matched_by)  # fmt: skip
        row = replace(row, **values)
        sidecars = self._sidecars(row, body, file)
        return self._result(row, hashes.sha256, "identified", matched_by, sidecars=sidecars)

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
        )  # fmt: skip

    # -- sidecars -----------------------------------------------------------------------------

    def _sidecars(
        self, row: FileRow, body: Mapping[str, Any], file: Mapping[str, Any] | None = None
    ) -> tuple[str, ...]:
        """Write what is missing (or everything, with ``refresh``); never make one worse."""
        model = Path(row.path)
        written: list[Path] = []
        if self.options.wall is not None and not self.options.wall.holds(model.parent):
            return ()  # behind a link that leads outside the root: never written there
        try:
            info = model.with_name(model.stem + ".civitai.info")
            existing = read_json(info)
            keep = isinstance(existing, dict) and existing and not self.options.refresh
            if not keep and write_json(info, dict(body)):
                written.append(info)
            meta = None
            if self.options.user_metadata:
                meta = a1111_user_metadata(
                    kind=row.kind or "unknown", base=row.base,
                    description=self._description(body), trained_words=_words(body),
                    notes=_notes(self.remote.base_url, body),
                )  # fmt: skip
            preview = None
            if self.options.previews and not _has_preview(model):
                preview = self._preview(body)
            written += write_model_sidecars(model, version_json=None, user_metadata=meta,
                                            preview=preview)  # fmt: skip
            cm = model.with_name(model.stem + ".cm-info.json")
            wanted = self.options.cm_info and (self.options.refresh or read_json(cm) is None)
            if file is None:
                file = _file_with_sha256(body, row.sha256)
            if wanted and write_json(cm, self._cm_info(model, body, file)):
                written.append(cm)
        except OSError:
            return tuple(str(p) for p in written)  # a read-only folder: the index still knows
        return tuple(str(p) for p in written)

    def _model_json(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """The version's model (description, tags, creator), or {} when out of reach."""
        model_id = body.get("modelId")
        if not isinstance(model_id, int):
            return {}
        try:
            status, model = self.remote.model(model_id, DAY)
        except SourceError:
            return {}  # these are niceties: never fail a file over them
        return model if status == 200 and isinstance(model, dict) else {}

    def _description(self, body: Mapping[str, Any]) -> str | None:
        description = self._model_json(body).get("description")
        return description if isinstance(description, str) else None

    def _cm_info(
        self, model: Path, body: Mapping[str, Any], file: Mapping[str, Any]
    ) -> dict[str, Any]:
        full = self._model_json(body)
        inner: Mapping[str, Any] = body["model"] if isinstance(body.get("model"), dict) else {}
        creator = full.get("creator")
        meta = file.get("metadata")
        published = file.get("hashes")
        return stability_matrix_info(
            version_json=body,
            model_name=str(inner.get("name") or full.get("name") or model.stem),
            model_description=self._description(body),
            model_type=inner.get("type") or full.get("type"),
            nsfw=bool(inner.get("nsfw", full.get("nsfw", False))),
            tags=[t for t in full.get("tags") or () if isinstance(t, str)],
            author=creator.get("username") if isinstance(creator, dict) else None,
            file_name=str(file.get("name") or model.name),
            file_id=file.get("id") if isinstance(file.get("id"), int) else None,
            file_metadata=meta if isinstance(meta, dict) else {},
            hashes={str(k).upper(): v for k, v in published.items()}
            if isinstance(published, dict)
            else {},
            imported_at=datetime.now(timezone.utc).isoformat(),
            source_url=_notes(self.remote.base_url, body).splitlines()[0],
        )

    def _preview(self, body: Mapping[str, Any]) -> bytes | None:
        from sdlib.library._remote import image_is_nsfw
        from sdlib.library.sidecars import image_extension

        for image in body.get("images") or ():
            if not isinstance(image, dict) or image.get("type", "image") != "image":
                continue
            if image_is_nsfw(image) and not self.options.nsfw:
                continue
            url = image.get("url")
            data = self.remote.image(url) if isinstance(url, str) else None
            if data and image_extension(data[:16]):
                return data
        return None


def _file_matching(
    body: Mapping[str, Any], hashes: FileHashes, matched_by: str
) -> tuple[bool, dict[str, Any] | None]:
    """(is ours, the version's file with our bytes). A short-hash match whose file
    publishes another SHA256 is a collision, not ours. An archived version lists no
    files: nothing to contradict the match."""
    files = [f for f in body.get("files") or () if isinstance(f, dict)]
    ours = {k: (hashes.get(k) or "").upper() for k in ("SHA256", "AutoV3", "AutoV2", "BLAKE3")}
    for f in files:
        published = {str(k).lower(): str(v).upper() for k, v in (f.get("hashes") or {}).items()}
        sha = published.get("sha256")
        if sha and sha == ours["SHA256"]:
            return True, f
        if published.get(matched_by.lower()) == ours.get(matched_by):
            if matched_by == "AutoV2" and sha and sha != ours["SHA256"]:
                continue  # ten hex digits that happen to agree: not our file
            return True, f
    return not files, None


def _file_with_sha256(body: Mapping[str, Any], sha256: str | None) -> Mapping[str, Any]:
    for f in body.get("files") or ():
        hashes = f.get("hashes") if isinstance(f, dict) else None
        if (
            sha256
            and isinstance(hashes, dict)
            and str(hashes.get("SHA256", "")).upper() == sha256.upper()
        ):
            return f  # type: ignore[no-any-return]
    return {}


def _has_preview(model: Path) -> bool:
    stem = model.stem
    names = [stem + ext for ext in IMAGE_EXTENSIONS + VIDEO_EXTENSIONS]
    names += [f"{stem}.preview{ext}" for ext in IMAGE_EXTENSIONS + VIDEO_EXTENSIONS]
    names.append(f"{stem}.thumb.jpg")
    return any(os.path.exists(model.with_name(n)) for n in names)


def _notes(site: str, body: Mapping[str, Any]) -> str:
    from sdlib.library.sidecars import strip_html

    lines = [f"{site}/models/{body.get('modelId')}?modelVersionId={body.get('id')}"]
    if body.get("baseModel"):
        lines.append(f"Base model: {body['baseModel']}")
    if isinstance(body.get("description"), str):
        lines.append(strip_html(body["description"]))
    return "\n".join(lines)


def _words(body: Mapping[str, Any]) -> list[str]:
    return [w for w in body.get("trainedWords") or () if isinstance(w, str)]
