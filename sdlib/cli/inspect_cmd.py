"""``sdlib inspect``: what a model file is, from its content, with the evidence."""

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


@click.command("inspect")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--explain", is_flag=True, help="Show the evidence behind each verdict.")
@json_option
@handle_errors
def inspect_cmd(files: tuple[Path, ...], explain: bool, as_json: bool) -> None:
    """Classify model FILES from their content, not their names.

    Prints the container, kind (checkpoint, lora, embedding, vae...), base architecture
    (sd1, sd2, sdxl, flux...), variant, precision (or GGUF quantization such as Q8_0),
    full-vs-pruned weights and components. Safetensors and GGUF files are judged from their
    header alone; pickles (.ckpt/.pt/.pth/.bin) are scanned statically and never executed;
    a pickle that would run code is reported as unsafe and makes the exit code 3. A file
    that cannot be read (corrupt, truncated, a FIFO, no permission) gets one error line
    and the others are still reported; the exit code is then 1 (3 if one is unsafe).

    \b
    Examples:
      sdlib inspect model.safetensors
      sdlib inspect --explain mystery_file.ckpt
      sdlib inspect flux1-dev-Q8_0.gguf
      sdlib inspect models/Lora/* --json
    """
    from sdlib.errors import SdlibError
    from sdlib.files.opening import printable
    from sdlib.services.files import inspect_path

    reports: list[dict[str, Any]] = []
    codes: list[int] = []
    for path in files:
        # Every file gets its report or one error line; one bad file never stops the rest.
        try:
            reports.append(inspect_path(path).to_dict())  # a FIFO is refused, never read
        except SdlibError as exc:
            codes.append(exc.exit_code)
            echo_err(f"sdlib: error: {exc}")
            if as_json:
                reports.append({"path": printable(path), "error": exc.message})
        except OSError as exc:
            from sdlib.files.opening import os_problem

            codes.append(1)
            echo_err(f"sdlib: error: {printable(path)}: {os_problem(exc)}")
            if as_json:
                reports.append({"path": printable(path), "error": os_problem(exc)})
        except Exception as exc:
            from sdlib.cli._crash import report_crash

            codes.append(1)
            line = report_crash(exc).replace("sdlib: ", f"sdlib: {printable(path)}: ", 1)
            echo_err(line)
            if as_json:
                reports.append({"path": printable(path), "error": line})
    if as_json:
        emit_json(reports)
    else:
        _print(reports, explain)
    if any((r.get("safety") or {}).get("verdict") == "unsafe" for r in reports):
        codes.append(3)  # so `sdlib inspect f && load f` never loads a hostile pickle
    if codes:
        raise SystemExit(max(codes))


def _print(reports: list[dict[str, Any]], explain: bool) -> None:
    from rich.markup import escape  # a path may hold [brackets]

    out = console()
    for i, r in enumerate(reports):
        if "error" in r:
            continue
        if i:
            out.print()
        out.print(f"[bold]{escape(r['path'])}[/bold]  {human_size(r['size'])}, {r['container']}")
        rows: list[tuple[str, Any]] = [
            ("kind", r["kind"]),
            ("base", r["base"]),
            ("variant", r.get("variant")),
            ("precision", r.get("precision")),
            ("quantization", r.get("quantization")),
            ("weights", r.get("weights") if r.get("weights") != "n/a" else None),
            ("components", ", ".join(r.get("components") or []) or None),
            ("vectors", r.get("vectors")),
        ]
        lora = r.get("lora")
        if lora:
            rank = f", rank {lora['rank']}" if lora.get("rank") else ""
            alpha = f", alpha {lora['alpha']:g}" if lora.get("alpha") is not None else ""
            rows.append(("adapter", f"{lora['algo']}{rank}{alpha}"))
            if lora.get("targets"):
                rows.append(("targets", ", ".join(lora["targets"])))
        rows.append(("tensors", f"{r['tensors']:,} ({r['parameters']:,} parameters)"))
        safety = r.get("safety")
        if safety:
            colour = {"safe": "green", "suspicious": "yellow", "unsafe": "red"}[safety["verdict"]]
            rows.append(("safety", f"[{colour}]{safety['verdict']}[/{colour}]"))
        for key, value in (r.get("metadata") or {}).items():
            rows.append((key, value))
        rows = [(label, value) for label, value in rows if value not in (None, "")]
        width = max(11, *(len(label) for label, _ in rows))
        for label, value in rows:
            out.print(f"  {label:<{width}} {value}", markup=label == "safety")
        if safety and safety.get("findings"):
            for f in safety["findings"]:
                where = f" in {f['entry']}" if f.get("entry") else ""
                out.print(
                    f"    - {f['severity']}: {f.get('global') or '(container)'} ({f['opcode']} at "
                    f"offset {f['offset']}{where}){': ' + f['reason'] if f.get('reason') else ''}",
                    markup=False,
                )
        if explain:
            out.print("  evidence:")
            for line in r.get("evidence") or []:
                out.print(f"    - {line}", markup=False)
