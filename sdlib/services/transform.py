"""Writing new model files: convert to safetensors and merge checkpoints.

The one implementation ``sdlib convert``, ``sdlib merge``, the TUI's convert action and
scripts call. Each takes the :class:`~sdlib.services.Context` first and returns a typed
result (:class:`ConvertResult`, :class:`MergeResult`); progress is a callback of small
events, cancellation a ``threading.Event`` checked at every chunk (the temporary output is
removed and :class:`~sdlib.errors.Interrupted` raised). An output that would hold NaN or
Inf weights raises :class:`~sdlib.errors.NonFiniteError` naming the tensors, with nothing
written, unless ``allow_nan=True`` (the result's ``nonfinite`` then lists them).

    from sdlib.services import Context, transform

    with Context() as ctx:
        done = transform.merge(ctx, "a.safetensors", "b.safetensors",
                               output="ab.safetensors", method="weighted-sum", alpha=0.3)
        print(done.output, done.merged, "tensors merged")
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from sdlib.services._context import Context
    from sdlib.transform.convert import ConvertProgress, ConvertResult
    from sdlib.transform.merge import MergeProgress, MergeResult

__all__ = ["COMPONENTS", "METHODS", "convert", "convert_beside", "merge"]

#: What ``merge`` can merge (the rest is copied from A), and how.
COMPONENTS = ("unet", "text-encoder", "vae")
METHODS = ("weighted-sum", "add-difference")

_E = TypeVar("_E")
PathLike = str | os.PathLike[str]


def convert(
    ctx: Context | None,
    source: PathLike,
    output: PathLike | None = None,
    *,
    dtype: str = "keep",
    prune: bool = False,
    overwrite: bool = False,
    allow_nan: bool = False,
    on_progress: Callable[[ConvertProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> ConvertResult:
    """A safetensors copy of ``source`` (a pickle, never executed, or a safetensors file to
    cast or prune); ``output`` defaults to ``<stem>[.pruned][.fp16|.bf16].safetensors``.

    ``dtype`` is keep, fp16 or bf16. An unsafe pickle raises ``UnsafeFileError`` before
    anything is created. Converting needs nothing the context holds: ``ctx`` may be None.
    """
    from sdlib.transform.convert import convert_file

    del ctx  # taken so that every operation is called alike
    return convert_file(
        source,
        output,
        dtype=dtype,
        prune=prune,
        overwrite=overwrite,
        allow_nan=allow_nan,
        progress=_watched(on_progress, cancel),
    )


def convert_beside(
    ctx: Context | None,
    source: PathLike,
    *,
    allow_nan: bool = False,
    on_progress: Callable[[ConvertProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> ConvertResult:
    """A safetensors copy of a pickle checkpoint beside it, under a free name.

    The output is ``<stem>.safetensors``, or ``<stem>.converted[-N].safetensors`` when that
    name is taken (often by the safetensors file the same model was published as).
    """
    from sdlib.transform.convert import default_output

    path = Path(source)
    output = default_output(path)
    n = 1
    while output.exists():
        suffix = ".converted" if n == 1 else f".converted-{n}"
        output = path.with_name(f"{path.stem}{suffix}.safetensors")
        n += 1
    return convert(ctx, path, output, allow_nan=allow_nan, on_progress=on_progress, cancel=cancel)


def merge(
    ctx: Context,
    a: PathLike,
    b: PathLike,
    c: PathLike | None = None,
    *,
    output: PathLike,
    method: str,
    alpha: float | None = None,
    dtype: str = "keep",
    bake_vae: PathLike | None = None,
    components: Sequence[str] = COMPONENTS,
    overwrite: bool = False,
    allow_nan: bool = False,
    on_progress: Callable[[MergeProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> MergeResult:
    """Merge A with B (weighted-sum: ``A*(1-M) + B*M``) or with B and C (add-difference:
    ``A + (B-C)*M``) into ``output``, streamed tensor by tensor.

    ``alpha`` is M (default 0.5 for weighted-sum, 1.0 for add-difference); ``components``
    are merged and the rest copied from A; ``bake_vae`` replaces A's VAE. The inputs'
    SHA-256 come from the context's hash cache (and are remembered there).
    """
    from sdlib.transform.merge import merge_files

    return merge_files(
        a,
        b,
        c,
        output=output,
        method=method,
        alpha=alpha,
        dtype=dtype,
        bake_vae=bake_vae,
        components=components,
        overwrite=overwrite,
        hashes=ctx.hashes,
        allow_nan=allow_nan,
        progress=_watched(on_progress, cancel),
    )


def _watched(
    on_progress: Callable[[_E], None] | None, cancel: threading.Event | None
) -> Callable[[_E], None] | None:
    """The transforms report progress at every chunk: that is where a cancel is noticed."""
    if cancel is None:
        return on_progress

    def progress(event: _E) -> None:
        if cancel.is_set():
            from sdlib.errors import Interrupted

            raise Interrupted("cancelled; nothing was written")
        if on_progress is not None:
            on_progress(event)

    return progress
