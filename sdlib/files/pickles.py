"""Pickle-based model files (``.ckpt/.pt/.pth/.bin``): a static safety scan and the tensor table.

Nothing here imports, unpickles or ``torch.load``s anything. One symbolic pass over every
pickle stream in the file (``_pickle_vm``) both judges it and rebuilds its structure, so the
scan that decides is the parse that reads (no check-then-load gap).

Verdicts:

- **safe**: every global is on the allowlist of what SD checkpoints, LoRAs, embeddings and
  hypernetworks need, and the container is what ``torch.save`` writes.
- **suspicious**: harmless-looking but not plainly safe: known training objects (Lightning
  callbacks, ``argparse.Namespace``), unknown classes that are only instantiated, odd records
  or trailing bytes. sdlib still reads the weights (nothing is executed); ``torch.load`` with
  ``weights_only=False`` would import those packages.
- **unsafe**: a denylisted global, any call of a callable outside the allowlist, dotted names,
  module objects, the copyreg extension registry, malformed storage references or views,
  writes into non-containers, resource-limit breaches, zip tricks that make readers
  disagree, TorchScript archives, or a stream that breaks off after importing something.

Files that hold no pickle at all (PNG, safetensors, LFS pointers, 7z, plain NumPy arrays)
raise ``FormatError``: refused, not judged.

    scan = scan_file("model.ckpt")       # PickleScan(container, verdict, findings, entries)
    table = read_table("model.ckpt")     # TensorTable (names, dtypes, shapes; no tensor data)
    both = open_pickle("model.ckpt")     # one pass: .scan, .table, .root, .storages
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sdlib.errors import FormatError, UnsafeFileError
from sdlib.files._pickle_graph import flatten, scalar_metadata, state_dict_root
from sdlib.files._pickle_rules import Finding
from sdlib.files._pickle_scan import ScanState, StorageData, scan_buffer
from sdlib.files._pickle_values import TensorRef
from sdlib.files._pickle_vm import Buffer
from sdlib.files.tensors import TensorInfo, TensorTable
from sdlib.taxonomy import Container, Verdict

__all__ = [
    "Finding",
    "PickleFile",
    "PickleScan",
    "StorageData",
    "open_pickle",
    "open_pickle_bytes",
    "read_table",
    "scan_bytes",
    "scan_file",
    "unsafe_error",
]

_RANK = {Verdict.SAFE: 0, Verdict.SUSPICIOUS: 1, Verdict.UNSAFE: 2}


@dataclass(frozen=True)
class PickleScan:
    """The verdict on one file. ``entries`` are the pickle streams that were run: archive
    entry names (zip) or stream labels (``magic``, ``main``... for legacy torch files,
    ``pickle`` and ``pickle+<offset>`` for plain pickles). ``globals`` lists every global
    named, sorted. Finding offsets count from the start of their archive entry (zip) or of
    the file (other containers)."""

    container: Container
    verdict: Verdict
    findings: tuple[Finding, ...]
    entries: tuple[str, ...]
    globals: tuple[str, ...] = ()

    @property
    def unsafe(self) -> bool:
        return self.verdict is Verdict.UNSAFE

    def to_dict(self) -> dict[str, object]:
        return {
            "container": str(self.container),
            "verdict": str(self.verdict),
            "findings": [f.to_dict() for f in self.findings],
            "entries": list(self.entries),
            "globals": list(self.globals),
        }


@dataclass(frozen=True)
class PickleFile:
    """One parse of a pickle file: its scan, tensor table and what a converter needs.

    ``table`` unwraps ``state_dict`` like every webUI loader; ``root`` is the inert object graph
    (for embedding and hypernetwork layouts); ``storages`` maps ``TensorInfo.storage_key`` to
    where its bytes are; ``refs`` maps tensor names to the validated views.
    """

    path: Path | None
    scan: PickleScan
    table: TensorTable
    root: object
    storages: Mapping[str, StorageData] = field(default_factory=dict)
    refs: Mapping[str, TensorRef] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def scan_bytes(data: bytes) -> PickleScan:
    """Scan a whole file's bytes. Raises FormatError when no pickle stream is in them."""
    return _scan_result(scan_buffer(data))


def scan_file(path: str | os.PathLike[str], *, polyglot: bool = True) -> PickleScan:
    """Scan a file through a read-only map (only the pickles and headers are touched).
    ``polyglot=False``: not the end of the file for an appended zip (``scan_buffer``)."""
    with _mapped(path) as buf:
        return _scan_result(scan_buffer(buf, polyglot=polyglot))


def read_table(path: str | os.PathLike[str]) -> TensorTable:
    """The tensor table (names, dtypes, shapes, storage views) without reading tensor data.

    Built by the same symbolic pass as the scan, so it is returned even for an unsafe file
    (nothing was imported or run to get it; ``scan_file`` says whether the file is safe).
    Raises FormatError when the file is not a readable pickle.
    """
    return open_pickle(path).table


def open_pickle(path: str | os.PathLike[str]) -> PickleFile:
    """Scan and read in one pass; the caller decides what an unsafe verdict means."""
    with _mapped(path) as buf:
        state = scan_buffer(buf)
    return _pickle_file(state, Path(path))


def open_pickle_bytes(data: bytes) -> PickleFile:
    return _pickle_file(scan_buffer(data), None)


def unsafe_error(scan: PickleScan, path: str | None = None) -> UnsafeFileError:
    bad = [str(f) for f in scan.findings if f.severity is Verdict.UNSAFE]
    return UnsafeFileError(
        f"unsafe pickle refused: {len(bad)} finding(s), first: {bad[0] if bad else '?'}",
        path=path,
        findings=bad,
    )


# --- internals -------------------------------------------------------------------------------


class _mapped:
    """A read-only mmap of a file, or its bytes when it is empty or cannot be mapped."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path
        self.map: mmap.mmap | None = None

    def __enter__(self) -> Buffer:
        try:
            with open(self.path, "rb") as fh:
                if os.fstat(fh.fileno()).st_size == 0:
                    return b""
                self.map = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
                return self.map
        except IsADirectoryError as exc:
            raise FormatError("a folder, not a pickle file", path=str(self.path)) from exc
        except OSError as exc:
            raise FormatError(f"cannot read file ({exc.strerror})", path=str(self.path)) from exc

    def __exit__(self, *exc: object) -> None:
        if self.map is not None:
            self.map.close()


def _scan_result(state: ScanState) -> PickleScan:
    seen: set[tuple[str, str, str, str, str]] = set()
    findings: list[Finding] = []
    for f in state.findings:
        key = (f.entry, f.module, f.name, f.opcode, f.reason)
        if key not in seen:
            seen.add(key)
            findings.append(f)
    findings.sort(key=lambda f: -_RANK[f.severity])
    verdict = max((f.severity for f in findings), key=_RANK.__getitem__, default=Verdict.SAFE)
    return PickleScan(
        state.container,
        verdict,
        tuple(findings),
        tuple(state.entries),
        tuple(sorted(state.globals_seen)),
    )


def _pickle_file(state: ScanState, path: Path | None) -> PickleFile:
    scan = _scan_result(state)
    root = state.root if state.has_root else None
    inner, unwrapped = state_dict_root(root)
    flat = flatten(inner)
    zip_names = _storage_names(state, scan.container)
    infos: dict[str, TensorInfo] = {}
    storages: dict[str, StorageData] = {}
    for name, ref in flat.tensors.items():
        key = zip_names.get(ref.storage.key, ref.storage.key)
        infos[name] = TensorInfo(
            name=name,
            dtype=ref.dtype or ref.storage.storage_type.removesuffix("Storage").lower(),
            shape=ref.shape,
            storage_key=key,
            storage_offset=ref.offset,
            stride=ref.stride,
        )
        if ref.storage.key in state.data:
            storages[key] = state.data[ref.storage.key]
    metadata = scalar_metadata(inner, root) if inner is not root else scalar_metadata(root)
    if unwrapped:
        metadata.setdefault("sdlib.unwrapped", unwrapped)
    table = TensorTable(infos, scan.container, metadata)
    return PickleFile(path, scan, table, root, storages, flat.tensors, tuple(flat.notes))


def _storage_names(state: ScanState, container: Container) -> dict[str, str]:
    """Storage key -> the archive entry holding it (``<root>/data/<key>``) for zip files."""
    if container is not Container.PICKLE_ZIP:
        return {}
    roots = {e.rsplit("/data.pkl", 1)[0] for e in state.entries if e.endswith("/data.pkl")}
    root = next(iter(roots), "archive")
    return {key: f"{root}/data/{key}" for key in state.storages}
