"""``updates``: newer Civitai versions of the models ``identify`` recognised.

Models are asked for in batches (``/api/v1/models?ids=...``, 50 ids a request: a long
``ids=`` list is what makes Civitai answer 400), and each model's summary is cached in the
index for ``ttl`` seconds (a day by default). Ids a batch did not return (archived, or
filtered) are asked one by one. A failed request costs only its own models: they are
reported with the error, or with the last cached answer marked stale, and every other
result is kept.

A version counts as newer when it was published after the file's version (the order of
``sdlib.sources.versions.newest_first``, never Civitai's list order, which the creator sets
and can pin an old version to the top of) and none of its files has the file's SHA256 (the
same bytes under two version ids are not an update).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sdlib.errors import SourceError
from sdlib.sources.paging import MAX_EMPTY_PAGES, PageGuard, normalise_cursor
from sdlib.sources.versions import newest_first, raw_dates
from sdlib.taxonomy import base_from_civitai

if TYPE_CHECKING:
    from sdlib.library._remote import Remote
    from sdlib.library.index import FileRow

__all__ = ["BATCH", "UpdateResult", "UpdatesReport", "check_updates"]

BATCH = 50
DAY = 86_400.0


@dataclass(frozen=True)
class UpdateResult:
    path: str
    model_id: int
    version_id: int | None
    model_name: str | None
    version_name: str | None
    base_model: str | None
    #: update-available | up-to-date | version-gone | model-gone | error
    status: str
    newer: tuple[dict[str, Any], ...] = ()
    #: The answer is older than the TTL because a fresh request failed.
    stale: bool = False
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        data["newer"] = [dict(n) for n in self.newer]
        return data


@dataclass
class UpdatesReport:
    files: list[UpdateResult]
    requests: int = 0
    cache_hits: int = 0
    errors: list[str] = field(default_factory=list)
    #: Things worth a line that are not failures (a cursor walk the paging guard ended).
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for r in self.files:
            counts[r.status] = counts.get(r.status, 0) + 1
        return {
            "files": len(self.files), "models": len({r.model_id for r in self.files}),
            **dict(sorted(counts.items())), "stale": sum(r.stale for r in self.files),
            "requests": self.requests, "cache_hits": self.cache_hits, "errors": self.errors,
            "notes": self.notes,
        }  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {"files": [r.to_dict() for r in self.files], "summary": self.summary()}


def check_updates(
    rows: Iterable[FileRow],
    remote: Remote,
    *,
    ttl: float = DAY,
    refresh: bool = False,
    batch: int = BATCH,
    on_progress: Callable[[int, int], None] | None = None,
) -> UpdatesReport:
    """Updates for the identified ``rows``; never raises for a failed request."""
    rows = [r for r in rows if r.civitai_model_id is not None and r.present]
    ids = sorted({int(r.civitai_model_id) for r in rows if r.civitai_model_id is not None})
    before = (remote.requests, remote.cache_hits)
    models: dict[int, tuple[int, dict[str, Any] | None, bool]] = {}
    errors: dict[int, str] = {}
    missing = []
    for model_id in ids:
        hit = None if refresh else remote.index.remote_get(f"model:{model_id}", ttl)
        if hit is not None:
            remote.cache_hits += 1
            models[model_id] = (hit[0], hit[1], False)
        else:
            missing.append(model_id)
    done = len(ids) - len(missing)
    notes: list[str] = []
    for start in range(0, len(missing), batch):
        chunk = missing[start : start + batch]
        failed: str | None = None
        try:
            for raw in _batch(remote, chunk, notes.append):
                stored = remote.store_model(raw)
                if stored["id"] in chunk:
                    models[stored["id"]] = (200, stored, False)
        except SourceError as exc:
            failed = exc.message
        for model_id in chunk:
            if model_id in models:
                continue
            if failed is not None and errors:
                errors[model_id] = failed  # the site is failing: do not hammer it id by id
                continue
            try:  # not in the list (archived, hidden), or the batch failed: ask for it alone
                status, compact = remote.model(model_id, 0.0)
                models[model_id] = (status, compact, False)
            except SourceError as exc:
                errors[model_id] = exc.message
                failed = failed or exc.message
        done += len(chunk)
        if on_progress:
            on_progress(done, len(ids))
    for model_id in errors:
        old = remote.stale(f"model:{model_id}")
        if old is not None:
            models[model_id] = (old[0], old[1], True)
    report = UpdatesReport([_result(r, models, errors) for r in rows])
    report.requests = remote.requests - before[0]
    report.cache_hits = remote.cache_hits - before[1]
    report.errors = sorted({f"model {m}: {e}" for m, e in errors.items()})
    report.notes = [f"update check {n}; missing models were asked for one by one" for n in notes]
    return report


def _batch(remote: Remote, ids: Sequence[int], on_stop: Callable[[str], None]) -> Iterable[Any]:
    """Every item ``/models?ids=`` returns for ``ids``, across cursor pages (``PageGuard``
    ends a walk that repeats cursors or goes on with empty pages; ``on_stop`` hears why)."""
    params = [("ids", ",".join(str(i) for i in ids)), ("limit", "100"), ("nsfw", "true")]
    # Never more pages than the ids could fill, plus room for Civitai's empty pages.
    guard = PageGuard(max_pages=len(ids) // 100 + 1 + MAX_EMPTY_PAGES)
    cursor: str | None = None
    while True:
        page = remote.get_json("/api/v1/models", params + ([("cursor", cursor)] if cursor else []))
        raw = page.get("items") if isinstance(page, dict) else None
        items = [i for i in raw or () if isinstance(i, dict)] if isinstance(raw, list) else []
        yield from items
        meta = page.get("metadata") if isinstance(page, dict) else None
        offered = normalise_cursor(meta.get("nextCursor")) if isinstance(meta, dict) else None
        cursor = guard.follow(offered, len(items), sent=cursor)
        if cursor is None:
            if guard.stopped:
                on_stop(guard.stopped)
            return


def _result(
    row: FileRow, models: dict[int, tuple[int, dict[str, Any] | None, bool]], errors: dict[int, str]
) -> UpdateResult:
    model_id = int(row.civitai_model_id or 0)
    common: dict[str, Any] = {
        "path": row.path, "model_id": model_id, "version_id": row.civitai_version_id,
        "model_name": row.civitai_model_name, "version_name": row.civitai_version_name,
        "base_model": row.civitai_base_model,
    }  # fmt: skip
    if model_id not in models:
        return UpdateResult(**common, status="error", error=errors.get(model_id))
    status, model, stale = models[model_id]
    if status != 200 or model is None:
        return UpdateResult(**common, status="model-gone", stale=stale)
    versions = newest_first(
        [v for v in model.get("versions") or () if isinstance(v, dict)], raw_dates
    )
    common["model_name"] = model.get("name") or row.civitai_model_name
    ours = next((i for i, v in enumerate(versions) if v.get("id") == row.civitai_version_id), None)
    family = base_from_civitai(row.civitai_base_model)
    candidates = versions if ours is None else versions[:ours]
    newer = tuple(
        _version(v, family)
        for v in candidates
        if not any(f.get("sha256") and f.get("sha256") == row.sha256 for f in v.get("files", ()))
    )
    if ours is None:
        return UpdateResult(**common, status="version-gone", newer=newer[:1], stale=stale)
    state = "update-available" if newer else "up-to-date"
    return UpdateResult(**common, status=state, newer=newer, stale=stale)


def _version(v: dict[str, Any], family: object) -> dict[str, Any]:
    return {
        "version_id": v.get("id"), "name": v.get("name"), "base_model": v.get("baseModel"),
        "published_at": v.get("publishedAt"),
        "same_base": base_from_civitai(v.get("baseModel")) is family,
    }  # fmt: skip
