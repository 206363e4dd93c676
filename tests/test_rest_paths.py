"""Only a source knows its REST paths (issue 15 item 2): no string in sdlib's code outside
``sdlib.sources`` (and the demo server that plays the sources, and the faces' help texts)
spells an API path such as ``/api/v1/models`` or ``/api/download/models/``. Docstrings may
name them; code may not build them."""

from __future__ import annotations

import ast
from pathlib import Path

import sdlib

ROOT = Path(sdlib.__file__).parent
#: Where REST paths belong (sources), are served (demo) or are only quoted in --help (faces).
ALLOWED = ("sources", "demo", "cli", "tui")
PATHS = ("/api/", "/resolve/", "/models-json/")


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def test_no_module_outside_the_sources_builds_an_api_path() -> None:
    found = []
    checked = 0
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in ALLOWED:
            continue
        checked += 1
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _docstrings(tree)
        for node in ast.walk(tree):
            text = node.value if isinstance(node, ast.Constant) else None
            if isinstance(text, str) and id(node) not in skip and any(p in text for p in PATHS):
                found.append(f"{rel}:{getattr(node, 'lineno', 0)}: {text!r}")
    assert checked > 50  # the walk saw the library, services, download, http...
    assert found == []
