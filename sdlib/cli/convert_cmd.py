"""``sdlib convert``: pickles (or safetensors) to safetensors, never running pickle code."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sdlib.cli._common import (
    console,
    echo_err,
    emit_json,
    handle_errors,
    human_size,
    json_option,
)
from sdlib.errors import UnsafeFileError

if TYPE_CHECKING:
    from sdlib.transform.convert import NonFinite


@click.command("convert")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Output file (default: <stem>[.pruned][.fp16|.bf16].safetensors beside SOURCE).",
)
@click.option(
    "--dtype",
    type=click.Choice(["keep", "fp16", "bf16"]),
    default="keep",
    show_default=True,
    help="Cast floating-point tensors (integer and bool tensors are kept).",
)
@click.option(
    "--prune",
    is_flag=True,
    help="Keep one UNet (the EMA weights when present, under model.diffusion_model.*) and drop "
    "model_ema.*, loss.* and the DDPM schedule buffers (betas, alphas_cumprod..., logvar).",
)
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists (never SOURCE).")
@click.option(
    "--allow-nan",
    is_flag=True,
    help="Write the output even if tensors in it hold NaN or Inf (a warning names them).",
)
@json_option
@handle_errors
def convert_cmd(
    source: Path,
    output: Path | None,
    dtype: str,
    prune: bool,
    overwrite: bool,
    allow_nan: bool,
    as_json: bool,
) -> None:
    """Convert a .ckpt/.pt/.pth/.bin pickle (or a .safetensors) to safetensors.

    The file is scanned first, without importing or unpickling anything: an unsafe pickle is
    refused with exit code 3 and its findings, and nothing is written. Tensor data is read
    straight from the file (no torch), streamed to a temporary file beside the output,
    verified against the source and then renamed into place. Training state outside the
    state dict (optimizer, callbacks) is never copied. Textual-inversion embeddings get the
    layout A1111 loads (emb_params, or clip_l/clip_g for SDXL); hypernetworks are refused
    because A1111 cannot load them from safetensors. An output that would hold NaN or Inf
    (from the source, or values beyond fp16's range with --dtype fp16) is refused with exit
    code 1 naming the tensors; --allow-nan writes it anyway.

    \b
    Examples:
      sdlib convert model.ckpt --dtype fp16 --prune
      sdlib convert embedding.pt -o embeddings/easy.safetensors
      sdlib convert lora.safetensors --dtype bf16 --json
    """
    from sdlib.cli._common import cli_context
    from sdlib.cli._progress import StageProgress
    from sdlib.services import transform

    progress = StageProgress("writing")
    try:
        with cli_context() as ctx:
            result = transform.convert(
                ctx,
                source,
                output,
                dtype=dtype,
                prune=prune,
                overwrite=overwrite,
                allow_nan=allow_nan,
                on_progress=None if as_json else progress.update,
            )
    except UnsafeFileError as exc:
        from sdlib.formatting import terminal_safe

        for line in exc.findings:  # names from a hostile pickle: never raw to the terminal
            click.echo(f"  {terminal_safe(line, newlines=False)}", err=True)
        if as_json:
            emit_json({"source": str(source), "verdict": "unsafe", "findings": list(exc.findings)})
        raise
    finally:
        progress.stop()
    warn_nonfinite(result.nonfinite)
    if as_json:
        emit_json(result.to_dict())
        return
    _report(result.to_dict())


def warn_nonfinite(found: Sequence[NonFinite]) -> None:
    """The one warning line --allow-nan leaves (stderr, also under --json)."""
    if found:
        from sdlib.transform.convert import describe_nonfinite

        echo_err(f"sdlib: warning: written with --allow-nan: {describe_nonfinite(found)}")


def _report(data: dict[str, Any]) -> None:
    out = console()
    out.print(f"[bold]{data['output']}[/]")
    out.print(
        f"  {data['tensors']} tensors, {human_size(data['bytes'])}, layout {data['layout']}, "
        f"dtype {data['dtype']}{', pruned' if data['prune'] else ''}"
    )
    out.print(f"  source SHA256 {data['source_sha256'].upper()}")
    if data["dropped"]:
        out.print(
            f"  dropped: {', '.join(data['dropped'][:8])}"
            + (f" (+{len(data['dropped']) - 8} more)" if len(data["dropped"]) > 8 else "")
        )
    if data["verdict"] and data["verdict"] != "safe":
        err = console(stderr=True)
        err.print(f"  scan verdict: {data['verdict']} (nothing in it was run; findings below)")
        for f in data["findings"][:20]:
            err.print(f"    {f['severity']}: {f['global'] or ''} {f['reason']}", markup=False)
