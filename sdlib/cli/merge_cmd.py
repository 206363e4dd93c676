"""``sdlib merge``: weighted-sum and add-difference checkpoint merges, streamed tensor by tensor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from sdlib.cli._common import (
    console,
    echo_err,
    emit_json,
    handle_errors,
    human_size,
    json_option,
)
from sdlib.cli.convert_cmd import warn_nonfinite
from sdlib.errors import UnsafeFileError, UsageError

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
_COMPONENTS = ("unet", "text-encoder", "vae")  # sdlib.services.transform.COMPONENTS


@click.command("merge")
@click.argument("a", type=_FILE)
@click.argument("b", type=_FILE)
@click.argument("c", type=_FILE, required=False)
@click.option(
    "--method",
    type=click.Choice(["weighted-sum", "add-difference"]),
    required=True,
    help="weighted-sum: A*(1-M) + B*M.  add-difference: A + (B-C)*M (needs C).",
)
@click.option(
    "--alpha",
    "-M",
    "alpha",
    type=float,
    help="The multiplier M (default 0.5 for weighted-sum, 1.0 for add-difference).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The merged .safetensors file to write.",
)
@click.option(
    "--dtype",
    type=click.Choice(["keep", "fp16", "bf16"]),
    default="keep",
    show_default=True,
    help="Output precision of floating-point tensors; keep = A's dtype, tensor by tensor.",
)
@click.option(
    "--bake-vae",
    type=_FILE,
    help="Replace the VAE (first_stage_model.*) with this VAE file's weights.",
)
@click.option(
    "--components",
    default=",".join(_COMPONENTS),
    show_default=True,
    help="Comma-separated parts to merge; the others are copied from A.",
)
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists (never an input).")
@click.option(
    "--allow-nan",
    is_flag=True,
    help="Write the output even if tensors in it hold NaN or Inf (a warning names them).",
)
@json_option
@handle_errors
def merge_cmd(
    a: Path,
    b: Path,
    c: Path | None,
    method: str,
    alpha: float | None,
    output: Path,
    dtype: str,
    bake_vae: Path | None,
    components: str,
    overwrite: bool,
    allow_nan: bool,
    as_json: bool,
) -> None:
    """Merge checkpoints A and B (and C) into one safetensors file.

    Inputs are safetensors or pickles (.ckpt/.pt), which are scanned first and read without
    unpickling; an unsafe pickle is refused with exit code 3 and nothing is written. Before
    any work the inputs must share an architecture (an SD1 and an SDXL model are refused)
    and tensor shapes. A1111's inpainting rule applies: when A is an inpainting (9-channel)
    or instruct-pix2pix (8-channel) model and B (and C) are normal, only the first 4 input
    channels of the first convolution are merged and A keeps its extra ones. Tensors that B
    or C lack, integer tensors and CLIP position ids are copied from A. The math runs in
    float32, chunk by chunk, so memory stays at a few tens of MiB; the output carries the
    recipe and the inputs' SHA-256 in its metadata and is verified before it is renamed
    into place. An output that would hold NaN or Inf weights (from an input, or overflowing
    --dtype fp16) is refused with exit code 1 naming the tensors, as A1111's merger does;
    --allow-nan writes it anyway.

    \b
    Examples:
      sdlib merge a.safetensors b.safetensors --method weighted-sum --alpha 0.3 -o ab.safetensors
      sdlib merge sd15-inpainting.ckpt mine.safetensors v1-5-pruned.ckpt \\
          --method add-difference -o mine-inpainting.safetensors --dtype fp16
      sdlib merge a.safetensors b.safetensors --method weighted-sum --components unet \\
          --bake-vae vae-ft-mse-840000.safetensors -o ab.safetensors --json
    """
    from sdlib.cli._common import cli_context
    from sdlib.cli._progress import StageProgress
    from sdlib.services import transform

    parts = tuple(p.strip() for p in components.split(",") if p.strip())
    bad = [p for p in parts if p not in _COMPONENTS]
    if bad or not parts:
        raise UsageError(f"--components takes some of {', '.join(_COMPONENTS)} (got {components})")
    progress = StageProgress("merge")
    try:
        with cli_context() as ctx:
            result = transform.merge(
                ctx,
                a,
                b,
                c,
                output=output,
                method=method,
                alpha=alpha,
                dtype=dtype,
                bake_vae=bake_vae,
                components=parts,
                overwrite=overwrite,
                allow_nan=allow_nan,
                on_progress=None if as_json else progress.update,
            )
    except UnsafeFileError as exc:
        for line in exc.findings:
            echo_err(f"  {line}")  # names from a hostile pickle
        if as_json:
            emit_json({"path": exc.path, "verdict": "unsafe", "findings": list(exc.findings)})
        raise
    finally:
        progress.stop()
    warn_nonfinite(result.nonfinite)
    if as_json:
        emit_json(result.to_dict())
        return
    _report(result.to_dict())


def _report(data: dict[str, Any]) -> None:
    out = console()
    out.print(f"[bold]{data['output']}[/]", markup=True)
    out.print(
        f"  {data['method']}, alpha {data['alpha']:g}: {data['merged']} of {data['tensors']} "
        f"tensors merged, dtype {data['dtype']}, {human_size(data['bytes'])}",
        markup=False,
    )
    for i in data["inputs"]:
        verdict = f" ({i['verdict']} pickle)" if i["verdict"] else ""
        out.print(
            f"  {i['role']:3} {i['path']}{verdict}  SHA256 {i['sha256'].upper()}", markup=False
        )
    if data["first_conv"]:
        out.print(
            f"  A is an {data['first_conv']} model: only the first 4 input channels of its "
            "first convolution were merged; its extra channels are A's",
            markup=False,
        )
    if data["vae_tensors"]:
        out.print(f"  VAE baked in: {data['vae_tensors']} tensors", markup=False)
    for reason, names in data["copied"].items():
        shown = ", ".join(names[:4]) + (f" (+{len(names) - 4} more)" if len(names) > 4 else "")
        out.print(f"  copied from A ({reason}): {len(names)}: {shown}", markup=False)
    if data["not_in_a"]:
        names = data["not_in_a"]
        shown = ", ".join(names[:4]) + (f" (+{len(names) - 4} more)" if len(names) > 4 else "")
        out.print(f"  not in A, left out: {len(names)}: {shown}", markup=False)
    err = console(stderr=True)
    for note in data["notes"]:
        err.print(f"  note: {note}", markup=False)
    for i in data["inputs"]:
        if i["verdict"] == "suspicious":
            err.print(
                f"  {i['role']} is a suspicious pickle (read without running anything): "
                f"{len(i['findings'])} finding(s), e.g. {i['findings'][0]}",
                markup=False,
            )
