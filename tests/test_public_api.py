"""The top-level API is small, sorted, and every name in it resolves (lazily)."""

from __future__ import annotations

import sdlib


def test_all_is_sorted_and_resolves() -> None:
    assert sdlib.__all__ == sorted(sdlib.__all__)
    for name in sdlib.__all__:
        assert getattr(sdlib, name) is not None, name


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        sdlib.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_install_stays_the_function_after_its_namesake_module_loads() -> None:
    """``sdlib/install.py`` is also a submodule: importing it (the first install does) made
    the import system rebind ``sdlib.install`` to the module, so a second
    ``sdlib.install(ctx, ...)`` in one script raised "'module' object is not callable"."""
    import importlib
    import sys

    from sdlib.services.remote import install

    module = importlib.import_module("sdlib.install")
    assert sys.modules["sdlib.install"] is module  # the module itself is still importable
    assert sdlib.install is install
    from sdlib import install as imported

    assert imported is install
    assert module.FileChoice is sdlib.FileChoice


def test_the_whole_api_loads_no_ui_library_and_no_torch() -> None:
    """README: importing sdlib loads neither torch nor textual; every public name resolved
    (the operations' modules loaded) loads no UI library either: a script draws nothing."""
    import subprocess
    import sys

    code = (
        "import sys, sdlib\n"
        "for name in sdlib.__all__: getattr(sdlib, name)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules}"
        " & {'torch', 'textual', 'rich', 'click'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"
