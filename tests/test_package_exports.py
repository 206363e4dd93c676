"""Every package's docstring says what its layer is for; the layer packages export what they
document (every name in ``__all__`` resolves, none is listed twice, none is private); the
download engine loads no source."""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys

import pytest

PACKAGES = ["sdlib.download", "sdlib.http", "sdlib.sources", "sdlib.sources.civitai"]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_resolves_without_duplicates_or_private_names(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert module.__doc__ and module.__doc__.strip()
    assert len(exported) == len(set(exported))
    assert not [n for n in exported if n.startswith("_")]
    for attr in exported:
        assert getattr(module, attr) is not None, f"{name}.{attr}"


def test_the_download_engine_loads_no_source() -> None:
    code = (
        "import sys, sdlib.download\n"
        "print(sorted(m for m in sys.modules if m.startswith(('sdlib.sources', 'sdlib.library'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "[]"


def _packages() -> list[str]:
    import pkgutil

    import sdlib

    return sorted(m.name for m in pkgutil.walk_packages(sdlib.__path__, "sdlib.") if m.ispkg)


def test_every_package_says_what_its_layer_is_for() -> None:
    """DESIGN.md: each package's ``__init__`` docstring says what the layer is for."""
    import ast

    undocumented = []
    for name in _packages():
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None, name
        with open(spec.origin, encoding="utf-8") as fh:
            doc = ast.get_docstring(ast.parse(fh.read()))
        if not doc or not doc.strip():
            undocumented.append(name)
    assert len(_packages()) > 10  # the walk found the layers
    assert undocumented == []
