"""``sdlib inspect``: what a model file is, from its content, with the evidence."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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
# Plain strings: a URL is not a path (pathlib would fold its "//").
@click.argument("files", nargs=-1, required=True)
@click.option("--explain", is_flag=True, help="Show the evidence behind each verdict.")
@json_option
@handle_errors
def inspect_cmd(files: tuple[str, ...], explain: bool, as_json: bool) -> None:
    """Classify model FILES from their content, not their names.

    Prints the container, kind (checkpoint, lora, embedding, vae...), base architecture
    (sd1, sd2, sdxl, flux...), variant, precision (or GGUF quantization such as Q8_0),
    full-vs-pruned weights and components. Safetensors and GGUF files are judged from their
    header alone; pickles (.ckpt/.pt/.pth/.bin) are scanned statically and never executed;
    a pickle that would run code is reported as unsafe and makes the exit code 3. A file
    that cannot be read (corrupt, truncated, a FIFO, no permission) gets one error line
    and the others are still reported; the exit code is then 1 (3 if one is unsafe).

    A Civitai reference (4384, 4384@128713, a civitai.com URL), a Hugging Face one
    (hf:ORG/REPO/FILE, a Hub link) or an http(s):// file URL that is not a local path is
    looked into before any download: only its header is read, through HTTP Range requests
    (a few KiB of a 7 GB checkpoint), and the report is the one the downloaded file would
    get. A remote pickle over 1 MiB is named, not judged (that needs the whole file); a
    server that ignores Range requests is an error (exit 1).

    \b
    Examples:
      sdlib inspect model.safetensors
      sdlib inspect --explain mystery_file.ckpt
      sdlib inspect flux1-dev-Q8_0.gguf
      sdlib inspect models/Lora/* --json
      sdlib inspect 4384@128713
      sdlib inspect hf:stabilityai/sdxl-vae/sdxl_vae.safetensors
      sdlib inspect https://example.com/files/model.safetensors --json
    """
    from sdlib.errors import SdlibError
    from sdlib.files.opening import printable
    from sdlib.services.files import inspect_path

    reports: list[dict[str, Any]] = []
    codes: list[int] = []
    remote = _Remote()
    for text in files:
        path, far = Path(text), remote.wanted(text)
        shown = printable(text if far else path)
        # Every file gets its report or one error line; one bad file never stops the rest.
        try:
            if far:
                reports.append(remote.inspect(text))
            else:
                reports.append(inspect_path(path).to_dict())  # a FIFO is refused, never read
        except SdlibError as exc:
            codes.append(exc.exit_code)
            echo_err(f"sdlib: error: {exc}")
            if as_json:
                reports.append({"path": shown, "error": exc.message})
        except OSError as exc:
            from sdlib.files.opening import os_problem

            codes.append(1)
            echo_err(f"sdlib: error: {shown}: {os_problem(exc)}")
            if as_json:
                reports.append({"path": shown, "error": os_problem(exc)})
        except Exception as exc:
            from sdlib.cli._crash import report_crash

            codes.append(1)
            line = report_crash(exc).replace("sdlib: ", f"sdlib: {shown}: ", 1)
            echo_err(line)
            if as_json:
                reports.append({"path": shown, "error": line})
    remote.close()
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
        if r["tensors"] or "bytes_read" not in r:  # a remote pickle's table is not read
            rows.append(("tensors", f"{r['tensors']:,} ({r['parameters']:,} parameters)"))
        if "bytes_read" in r:  # a remote file, looked into through Range requests
            rows.insert(0, ("file", r.get("file_name")))
            if r.get("source") == "civarchive":  # gone from Civitai: say whose bytes these are
                rows.insert(1, ("source", f"CivArchive mirror ({urlsplit(r['url']).netloc})"))
            requests = f"{r['requests']} request{'s' if r['requests'] != 1 else ''}"
            rows.append(("read", f"{human_size(r['bytes_read'])} in {requests}"))
        if r.get("note"):
            rows.append(("note", r["note"]))
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


class _Remote:
    """Remote references for one command: one service context, built on first use."""

    def __init__(self) -> None:
        self._ctx: Any = None

    def wanted(self, text: str) -> bool:
        from sdlib.services.peek import is_remote

        if not is_remote(text):
            return False
        # A local file wins (a file named 4384); the test is cheap and never opens it.
        try:
            return not Path(text).exists()
        except OSError:  # a name the OS cannot hold (a URL's "://" on some systems)
            return True

    def inspect(self, text: str) -> dict[str, Any]:
        from sdlib.cli._common import cli_context
        from sdlib.services.peek import inspect_remote

        if self._ctx is None:
            self._ctx = cli_context()
        status = _Status()
        try:
            return inspect_remote(self._ctx, text, on_step=status.update).to_dict()
        finally:
            status.stop()

    def close(self) -> None:
        if self._ctx is not None:
            self._ctx.close()


class _Status:
    """A transient spinner on stderr while a remote file is resolved and read (a terminal
    only: nothing through a pipe)."""

    def __init__(self) -> None:
        self._live: Any = None

    def update(self, text: str) -> None:
        if self._live is None:
            err = console(stderr=True)
            if not err.is_terminal:
                return
            self._live = err.status(text)
            self._live.start()
        else:
            self._live.update(text)

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
