"""The library's stores wired the way the CLI wires them, for organize and wall tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sdlib.hashcache import HashCache
from sdlib.library.index import Index
from sdlib.library.organize import (
    Journal,
    OrganizeOptions,
    Plan,
    RunReport,
    apply_journal,
    make_plan,
)
from sdlib.library.scan import ScanResult, load_layout, scan


class Lib:
    """Index + hash cache + journal folder in ``tmp``; close with :meth:`close`."""

    def __init__(self, tmp: Path) -> None:
        self.index = Index(tmp / "data" / "library.sqlite")
        self.hc = HashCache(tmp / "cache" / "hashes.sqlite")
        self.jdir = tmp / "data" / "organize"

    def scan(self, root: Path, ui: str = "auto") -> ScanResult:
        return scan(root, load_layout(root, ui), self.index, self.hc)

    def sha(self, path: str) -> str | None:
        return self.hc.get(path)[0].sha256

    def plan(self, root: Path, **options: Any) -> Plan:
        return make_plan(self.scan(root), OrganizeOptions(**options), self.sha)

    def plan_apply(self, root: Path, **options: Any) -> tuple[Plan, Journal, RunReport]:
        plan = self.plan(root, **options)
        journal = Journal.create(self.jdir, plan.header())
        return plan, journal, apply_journal(journal, self.sha)

    def apply(self, root: Path, **options: Any) -> tuple[Journal, RunReport]:
        _plan, journal, report = self.plan_apply(root, **options)
        return journal, report

    def close(self) -> None:
        self.index.close()
        self.hc.close()
