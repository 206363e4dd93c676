"""``inspect``: what a model file is, from its content.

Sniffs the container, reads the tensor table (safetensors or GGUF header, or a pickle's
structure through the static scanner, which never executes it), and classifies the table.
Reads a bounded amount of the file: the header of a safetensors or GGUF file, the pickle
streams of a PyTorch archive, never the tensor data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from sdlib.errors import FormatError
from sdlib.files.opening import open_regular, os_problem
from sdlib.files.sniff import SNIFF_BYTES, looks_like_text_error, sniff_bytes
from sdlib.taxonomy import Container

if TYPE_CHECKING:
    from sdlib.files.classify import Classification
    from sdlib.files.gguf import GGUFHeader
    from sdlib.files.pickles import PickleScan

PICKLE_CONTAINERS = (Container.PICKLE_ZIP, Container.PICKLE_LEGACY, Container.PICKLE)


@dataclass(frozen=True)
class InspectReport:
    path: str
    size: int
    container: Container
    classification: Classification | None
    #: The static pickle scan, for pickle containers only.
    safety: PickleScan | None = None
    #: Why there is no classification, when there is none.
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "path": self.path,
            "size": self.size,
            "container": str(self.container),
        }
        if self.classification is not None:
            data.update(self.classification.to_dict())
        else:
            data.update(
                kind="unknown", base="unknown", variant=None, precision=None, quantization=None,
                weights="n/a", components=[], tensors=0, parameters=0, metadata={},
                evidence=[self.note] if self.note else [],
            )  # fmt: skip
        data["safety"] = self.safety.to_dict() if self.safety is not None else None
        if self.note:  # only a header-only look (inspect_header) has one
            data["note"] = self.note
        return data


def inspect_file(path: str | os.PathLike[str]) -> InspectReport:
    """Classify one file from its content. Raises FormatError for corrupt or non-model files."""
    p = Path(path)
    spath = str(p)
    try:
        if p.is_dir():
            raise FormatError("is a directory; give the model files inside it", path=spath)
        with open_regular(p) as fh:  # a FIFO or device is refused at once, never waited on
            head = fh.read(SNIFF_BYTES)
            size = os.fstat(fh.fileno()).st_size
            container = sniff_bytes(head, size)
            if container is Container.SAFETENSORS:
                from sdlib.files.safetensors import read_table_from

                fh.seek(0)
                try:
                    table = read_table_from(fh, size, spath)
                except FormatError:
                    if _hidden_pickle(p, head) is None:
                        raise
                    return _inspect_pickle(p, size, Container.PICKLE)
                hidden = _hidden_pickle(p, head)
                return InspectReport(spath, size, container, _classify(table), hidden)
            if container is Container.GGUF:
                from sdlib.files.gguf import read_header_from

                fh.seek(0)
                header = read_header_from(fh, size, spath)
                hidden = _hidden_pickle(p, head)
                return InspectReport(spath, size, container, _classify_gguf(header), hidden)
    except FileNotFoundError:
        raise FormatError("no such file", path=spath) from None
    except PermissionError:
        raise FormatError("permission denied", path=spath) from None
    except IsADirectoryError:
        raise FormatError("is a directory", path=spath) from None
    except OSError as exc:  # a link loop, a name too long, an I/O error
        raise FormatError(os_problem(exc), path=spath) from None
    if container in PICKLE_CONTAINERS:
        return _inspect_pickle(p, size, container)
    if size == 0:
        raise FormatError("empty file", path=spath)
    if looks_like_text_error(head):
        raise FormatError("an HTML or JSON error page, not a model file", path=spath)
    # No other format matched: whatever a loader would unpickle from it (a pickle starting
    # with any opcode, an object .npy, torch's old tar format) gets a verdict, not a shrug.
    try:
        return _inspect_pickle(p, size, container)
    except FormatError as exc:
        refusal = exc
    if head[8:9] == b"{" or p.suffix.lower() == ".safetensors":
        # Meant to be safetensors but the sniff refused it: let the reader say exactly why.
        from sdlib.files.safetensors import read_table

        read_table(p)
    if not refusal.message.startswith(("not a pickle", "not a readable pickle")):
        raise FormatError(refusal.message, path=spath)  # 7z, LFS pointer, plain NumPy...
    raise FormatError(
        "unrecognised format (not safetensors, a PyTorch/pickle file or GGUF)", path=spath
    )


def inspect_header(fh: BinaryIO, size: int, name: str) -> InspectReport:
    """Classify a file from its first bytes, read through ``fh`` (seekable, at 0).

    For a file that is not on disk: ``sdlib.http.RangedFile`` reads a remote one through
    Range requests. Safetensors and GGUF files get the report ``inspect_file`` gives for
    the same bytes (the same bounded header readers and classifier), and so does a pickle
    of at most ``WHOLE_PICKLE`` bytes (read whole, scanned, never run). A larger pickle
    gets its container and a note that only the whole file can be judged (its streams run
    to the end of an archive); anything else is refused with the reason.
    """
    head = fh.read(SNIFF_BYTES)
    container = sniff_bytes(head, size)
    if container is Container.SAFETENSORS or (
        container is Container.UNKNOWN and head[8:9] == b"{"  # meant to be: let it say why
    ):
        from sdlib.files.safetensors import read_table_from

        fh.seek(0)
        try:
            table = read_table_from(fh, size, name)
        except FormatError:
            from sdlib.files.sniff import pickle_prefix

            if not pickle_prefix(head):
                raise
            return _pickle_from_head(fh, size, name, Container.PICKLE)  # as inspect_file
        hidden = _hidden_pickle_in_header(fh, head, table.data_offset or 0)
        return InspectReport(name, size, Container.SAFETENSORS, _classify(table), hidden)
    if container is Container.GGUF:
        from sdlib.files.gguf import read_header_from

        fh.seek(0)
        header = read_header_from(fh, size, name)
        hidden = _hidden_pickle_in_header(fh, head, fh.tell())
        return InspectReport(name, size, container, _classify_gguf(header), hidden)
    if container in PICKLE_CONTAINERS:
        return _pickle_from_head(fh, size, name, container)
    if size == 0:
        raise FormatError("empty file", path=name)
    if looks_like_text_error(head):
        raise FormatError("an HTML or JSON error page, not a model file", path=name)
    if size <= WHOLE_PICKLE:  # inspect_file runs anything unrecognised through the scanner
        try:
            return _pickle_from_head(fh, size, name, container)
        except FormatError:
            pass
    raise FormatError(
        "unrecognised format (not safetensors, a PyTorch/pickle file or GGUF)"
        + ("" if size <= WHOLE_PICKLE else " from its first bytes; download the file and "
           "run sdlib inspect on it"),
        path=name,
    )  # fmt: skip


#: A pickle up to this size is read whole to be judged (embeddings are a few KiB).
WHOLE_PICKLE = 1 << 20


def _pickle_from_head(fh: BinaryIO, size: int, name: str, container: Container) -> InspectReport:
    if size > WHOLE_PICKLE:
        return InspectReport(name, size, container, None, note=WHOLE_FILE_NEEDED)
    from sdlib.files.pickles import open_pickle_bytes

    fh.seek(0)
    try:
        opened = open_pickle_bytes(fh.read(size))
    except FormatError as exc:
        raise FormatError(exc.message, path=name) from None
    scan = opened.scan
    return InspectReport(name, size, scan.container, _classify(opened.table), scan)


#: What a header-only look says of a pickle.
WHOLE_FILE_NEEDED = (
    "a pickle (PyTorch .ckpt/.pt/.pth/.bin): its tensors and safety are judged from the "
    "whole file only; download it and run sdlib inspect on it (it is never unpickled)"
)


def _hidden_pickle_in_header(fh: BinaryIO, head: bytes, end: int) -> PickleScan | None:
    """``_hidden_pickle`` for a file known only up to ``end`` (its header): the scan when
    the header's bytes run as a pickle naming an unsafe global. A stream that runs on past
    the header is not judged (most are a length prefix swallowing the JSON, harmless):
    ``safety`` stays unset, as it is for a safetensors file on disk."""
    from sdlib.files.sniff import pickle_prefix

    if not pickle_prefix(head):
        return None
    from sdlib.files.pickles import scan_bytes
    from sdlib.taxonomy import Verdict

    fh.seek(0)
    try:
        scan = scan_bytes(fh.read(end))
    except FormatError:
        return None
    hostile = any(f.severity is Verdict.UNSAFE and f.module for f in scan.findings)
    return scan if hostile else None


def _classify(table: Any) -> Classification:
    from sdlib.files.classify import classify

    return classify(table)


def _classify_gguf(header: GGUFHeader) -> Classification:
    """Classify a GGUF file's tensors (llama.cpp T5 names translated) and say what it is."""
    from dataclasses import replace

    from sdlib.files.gguf import classifier_names

    tensors, renamed = classifier_names(header.tensors)
    table = replace(header.table(), tensors=tensors)
    cls = _classify(table)
    ftype = header.file_type
    raw_ftype = header.metadata.get("general.file_type")
    lines = [
        f"GGUF v{header.version}: general.architecture {header.architecture or '(not set)'}, "
        + (f"general.file_type {raw_ftype} ({ftype or 'unknown'})" if raw_ftype is not None
           else "no general.file_type")
    ]  # fmt: skip
    if renamed:
        lines.append(renamed)
    quant = cls.quantization
    # The file type names the quantiser's mix (Q4_K_M: mostly Q4_K, some Q6_K); trust it
    # only when it agrees with the tensors (old ComfyUI-GGUF wrote a ggml type id there).
    if quant and ftype and ftype != quant and ftype.startswith(quant + "_"):
        lines.append(f"most weights are {quant}; general.file_type names the mix {ftype}")
        quant = ftype
    return replace(cls, quantization=quant, evidence=(*lines, *cls.evidence))


def _hidden_pickle(path: Path, head: bytes) -> PickleScan | None:
    """The scan of a file another format claims that also runs as a hostile pickle.

    A safetensors-looking length and ``{`` can open a pickle (a BINFLOAT swallows them),
    and a loader choosing ``torch.load`` by a ``.ckpt`` name runs what follows. Only a
    file whose head runs as a pickle prefix is scanned (cheap), and only a named unsafe
    global counts: a header length that reads as a huge integer is not a payload. Nor
    does a zip appended at the end (torch takes a file for a zip by its first bytes, and
    these are the other format's), so the scan does not read the file's end for one.
    """
    from sdlib.files.sniff import pickle_prefix

    if not pickle_prefix(head):
        return None
    from sdlib.files.pickles import scan_file
    from sdlib.taxonomy import Verdict

    try:
        scan = scan_file(path, polyglot=False)
    except FormatError:
        return None
    hostile = any(f.severity is Verdict.UNSAFE and f.module for f in scan.findings)
    return scan if hostile else None


def _inspect_pickle(path: Path, size: int, container: Container) -> InspectReport:
    from sdlib.files import pickles

    # One symbolic pass both judges the pickle and rebuilds its tensor table; nothing runs.
    try:
        opened = pickles.open_pickle(path)
    except FormatError as exc:
        if exc.path is not None:
            raise
        raise FormatError(exc.message, path=str(path)) from None
    scan = opened.scan
    return InspectReport(str(path), size, scan.container, _classify(opened.table), scan)
