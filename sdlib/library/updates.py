"""``updates``: newer versions of the models ``identify`` recognised.

The source answers for each model (``Lookup.models``: batched, cached for ``ttl`` seconds,
a day by default); a failed request costs only its own models, which are reported with the
error or with the last cached answer marked stale, and every other result is kept.

A version counts as newer when it was published after the file's version (the source
lists versions newest first by publication date, never in the order a creator pinned them)
and none of its files has the file's SHA256 (the same bytes under two version ids are not
an update).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sdlib.taxonomy import base_from_civitai

if TYPE_CHECKING:
    from sdlib.library.index import FileRow
    from sdlib.lookup import Lookup, ModelsReport, VersionFacts

__all__ = ["UpdateResult", "UpdatesReport", "check_updates"]

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
    lookup: Lookup,
    *,
    ttl: float = DAY,
    refresh: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> UpdatesReport:
    """Updates for the identified ``rows``; never raises for a failed request."""
    rows = [r for r in rows if r.civitai_model_id is not None and r.present]
    ids = sorted({int(r.civitai_model_id) for r in rows if r.civitai_model_id is not None})
    before = (lookup.requests, lookup.cache_hits)
    answers = lookup.models(ids, ttl=ttl, refresh=refresh, on_progress=on_progress)
    report = UpdatesReport([_result(r, answers) for r in rows])
    report.requests = lookup.requests - before[0]
    report.cache_hits = lookup.cache_hits - before[1]
    report.errors = sorted({f"model {m}: {e}" for m, e in answers.errors.items()})
    report.notes = list(answers.notes)
    return report


def _result(row: FileRow, answers: ModelsReport) -> UpdateResult:
    model_id = int(row.civitai_model_id or 0)
    common: dict[str, Any] = {
        "path": row.path, "model_id": model_id, "version_id": row.civitai_version_id,
        "model_name": row.civitai_model_name, "version_name": row.civitai_version_name,
        "base_model": row.civitai_base_model,
    }  # fmt: skip
    answer = answers.answers.get(model_id)
    if answer is None:
        return UpdateResult(**common, status="error", error=answers.errors.get(model_id))
    model, stale = answer.model, answer.stale
    if model is None:
        return UpdateResult(**common, status="model-gone", stale=stale)
    versions = model.versions
    common["model_name"] = model.name or row.civitai_model_name
    ours = next((i for i, v in enumerate(versions) if v.id == row.civitai_version_id), None)
    family = base_from_civitai(row.civitai_base_model)
    candidates = versions if ours is None else versions[:ours]
    sha = (row.sha256 or "").upper()
    newer = tuple(_version(v, family) for v in candidates if not (sha and sha in v.sha256s))
    if ours is None:
        return UpdateResult(**common, status="version-gone", newer=newer[:1], stale=stale)
    state = "update-available" if newer else "up-to-date"
    return UpdateResult(**common, status=state, newer=newer, stale=stale)


def _version(v: VersionFacts, family: object) -> dict[str, Any]:
    return {
        "version_id": v.id, "name": v.name, "base_model": v.base_model,
        "published_at": v.published_at,
        "same_base": base_from_civitai(v.base_model) is family,
    }  # fmt: skip
