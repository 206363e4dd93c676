"""The compiled safetensors header reader (see _stheader.c)."""

def read_entries(
    raw: bytes, start: int, after_comma: bool, data_size: int, /
) -> tuple[dict[str, int], list[str], list[tuple[int, ...]], bytes, list[int]] | None:
    """The entries from ``start`` as columns (rows, dtypes, shapes, offsets packed as native
    unsigned 64-bit begin/end pairs, element counts), or None when this reader does not
    accept them. The rows dict may be shared with earlier files of the same names."""

def configure(sizes: dict[str, float], /) -> None:
    """The dtype names to accept and their element sizes in bytes."""
