"""Reading model files for ``scan``: the content columns of one file from its header, and
the same for a batch (one task of a worker process).

A worker process imports this small module and what it reads with; nothing of the index.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from typing import Any

from sdlib.errors import FormatError
from sdlib.files import CLASSIFIER_VERSION
from sdlib.files.opening import check_regular, os_problem

__all__ = ["BATCH", "inspect_batch", "inspect_columns", "no_gc"]

#: Files a worker process inspects per task (fewer round trips; progress still moves).
BATCH = 16


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """The cycle collector off while headers are parsed: a header makes thousands of
    acyclic objects (freed by reference counting), and the collections they trigger cost
    ~30% of a first scan. Back to how it was afterwards."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def inspect_batch(paths: list[str]) -> list[dict[str, Any]]:
    """``inspect_columns`` for several files (one worker-process task)."""
    with no_gc():
        return [inspect_columns(p) for p in paths]


def inspect_columns(path: str) -> dict[str, Any]:
    """Content columns for a model file, from a bounded read of it."""
    from sdlib.inspect import inspect_file

    out: dict[str, Any] = {"container": "unknown", "kind": "unknown", "base": "unknown",
                           "classified_by": CLASSIFIER_VERSION}  # fmt: skip
    try:
        check_regular(path)  # a FIFO or device is refused here, never opened and waited on
        report = inspect_file(path)
    except FormatError as exc:
        return {**out, "problem": exc.message}
    except OSError as exc:
        return {**out, "problem": os_problem(exc)}
    except Exception as exc:  # a reader's bug: this file is reported and the scan goes on
        why = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        return {**out, "problem": f"cannot read: sdlib failed on this file ({why})"}
    out["container"] = str(report.container)
    cls = report.classification
    if cls is not None:
        out.update(
            kind=str(cls.kind),
            base=str(cls.base),
            variant=cls.variant,
            precision=str(cls.precision) if cls.precision else None,
            quantization=cls.quantization,
        )
    if report.safety is not None:
        out["safety"] = str(report.safety.verdict)
    return out
