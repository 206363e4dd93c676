"""The compiled safetensors header reader (see _stheader.c)."""

def read_entries(
    raw: bytes, start: int, after_comma: bool, data_size: int, /
) -> (
    tuple[dict[str, int], list[str], list[tuple[int, ...]], list[int], list[int], list[int]] | None
):
    """The entries from ``start`` as columns, or None when this reader does not accept them."""

def configure(sizes: dict[str, float], /) -> None:
    """The dtype names to accept and their element sizes in bytes."""
