"""A minimal, fast FITS writer: header cards, primary images and binary tables, byte for byte.

Why not astropy? ``astropy.io.fits`` spends about a millisecond building ``Card`` objects for one
LAMOST header, which alone would blow the generator's budget of a few milliseconds per file, and
it refuses to write what the real archives contain (stale ``NAXISn`` cards on an empty primary,
``HISTORY1``, cards without a value). Here a card is an 80-character string formatted the way the
archives' own writers (MWRFITS, IRAF, astropy) formatted it: numbers right-justified to column 30,
strings quoted and left-justified with at least 8 characters inside the quotes, `` / comment``.
A header is padded with blanks and a data unit with zeros to whole 2880-byte blocks.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

BLOCK = 2880
CARD = 80
END_CARD = "END".ljust(CARD)

#: Marker for a card whose value field is left empty (``KEY     =                      / text``).
NO_VALUE = object()


class Raw(str):
    """A value written verbatim, right-justified like a number (``5000.``, ``0528``, ``1.``)."""


def format_value(value: Any, fmt: str | None = None) -> str:
    """The value field of a card (columns 11 onwards), without the comment.

    Parameters
    ----------
    value : bool, int, float, str, Raw, None or NO_VALUE
        ``bool`` -> ``T``/``F``; numbers right-justified to column 30 (``fmt`` is a format spec
        such as ``".6f"``; the default is Python's shortest ``repr``, with an upper-case exponent,
        or as many significant digits as fit in 20 columns);
        ``str`` -> quoted, at least 8 characters inside the quotes, quotes doubled, left-justified
        in 20 columns; ``None``/``NO_VALUE`` -> an empty 20-column field.
    """
    if value is None or value is NO_VALUE:
        return " " * 20
    if isinstance(value, Raw):
        return f"{str(value):>20}"
    if isinstance(value, (bool, np.bool_)):
        return f"{'T' if value else 'F':>20}"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):>20d}"
    if isinstance(value, (float, np.floating)):
        text = (format(float(value), fmt) if fmt is not None else repr(float(value))).replace("e", "E")
        digits = 16
        while len(text) > 20 and fmt is None and digits > 1:  # shortest repr too long: fewer digits
            text = format(float(value), f".{digits}G")
            text = text if ("." in text or "E" in text) else text + "."
            digits -= 1
        if len(text) > 20:
            raise ValueError(f"number {text!r} does not fit the 20-column value field")
        return f"{text:>20}"
    if isinstance(value, str):
        inner = value.replace("'", "''")
        return f"{chr(39) + inner.ljust(8) + chr(39):<20}"
    raise TypeError(f"cannot write a {type(value).__name__} in a FITS card")


def card(key: str, value: Any = NO_VALUE, comment: str | None = None, fmt: str | None = None,
         tight: bool = False) -> str:
    """One valued card: ``KEYWORD = value / comment``, exactly 80 characters.

    ``comment=None`` writes no slash; ``comment=""`` writes a bare `` /`` as MWRFITS does;
    ``tight=True`` writes ``/comment`` without the space (MWRFITS's first card). A comment that
    does not fit is cut at column 80; a value that does not fit raises ``ValueError``.
    """
    if len(key) > 8:
        raise ValueError(f"keyword {key!r} longer than 8 characters")
    text = f"{key:<8}= {format_value(value, fmt)}"
    if comment is not None:
        text += " /" + ("" if tight or not comment else " ") + comment
    if len(text) > CARD:
        if len(text.split(" /", 1)[0]) > CARD:
            raise ValueError(f"card {key} value does not fit in 80 characters")
        text = text[:CARD]
    return text.ljust(CARD)


def commentary(key: str, text: str = "") -> str:
    """A ``COMMENT``/``HISTORY``/blank-keyword card (columns 9-80 are free text)."""
    return f"{key:<8}{text}"[:CARD].ljust(CARD)


def raw_card(text: str) -> str:
    """Any 80-column card verbatim, valid or not (``HISTORY1``, ``COMMENT1=``)."""
    if len(text) > CARD:
        raise ValueError(f"card longer than {CARD} characters: {text!r}")
    return text.ljust(CARD)


def header_bytes(cards: Iterable[str]) -> bytes:
    """Cards + ``END``, padded with blanks to whole 2880-byte blocks, as ASCII bytes."""
    text = "".join(cards) + END_CARD
    if len(text) % CARD:
        raise ValueError("a card is not 80 characters long")
    text += " " * (-len(text) % BLOCK)
    return text.encode("ascii")


def pad_data(data: bytes) -> bytes:
    """A data unit padded with zero bytes to whole 2880-byte blocks."""
    return data + b"\0" * (-len(data) % BLOCK)


_BITPIX = {np.dtype("uint8"): 8, np.dtype("int16"): 16, np.dtype("int32"): 32,
           np.dtype("int64"): 64, np.dtype("float32"): -32, np.dtype("float64"): -64}


def bitpix(dtype: np.dtype) -> int:
    """The FITS BITPIX of a numpy dtype (byte order ignored)."""
    return _BITPIX[np.dtype(dtype).newbyteorder("=")]


def image_data(array: np.ndarray) -> bytes:
    """The big-endian bytes of an image, padded to whole blocks."""
    a = np.asarray(array)
    return pad_data(a.astype(a.dtype.newbyteorder(">"), copy=False).tobytes())


_TFORM = {np.dtype("float32"): "E", np.dtype("float64"): "D", np.dtype("int16"): "I",
          np.dtype("int32"): "J", np.dtype("int64"): "K", np.dtype("uint8"): "B"}


def bintable(columns: Sequence[tuple[str, np.ndarray]], nrows: int) -> tuple[list[tuple[str, str, int]], bytes]:
    """Row-major bytes of a binary table whose columns are numeric arrays.

    Parameters
    ----------
    columns : sequence of (name, array)
        Each array has ``nrows`` rows: shape ``(nrows,)`` for one value per row, or
        ``(nrows, repeat)`` for an array column (``TFORM = '<repeat>E'``).
    nrows : int
        Number of rows.

    Returns
    -------
    fields : list of (TTYPE, TFORM, bytes per row)
    data : bytes
        The padded data unit.
    """
    fields, parts = [], []
    for name, arr in columns:
        a = np.asarray(arr)
        base = a.dtype.newbyteorder("=")
        repeat = 1 if a.ndim == 1 else a.shape[1]
        if a.shape[0] != nrows:
            raise ValueError(f"column {name} has {a.shape[0]} rows, expected {nrows}")
        code = _TFORM[base]
        fields.append((name, f"{repeat}{code}" if a.ndim > 1 else code, base.itemsize * repeat))
        parts.append(a.reshape(nrows, -1).astype(base.newbyteorder(">"), copy=False))
    if nrows == 1:
        data = b"".join(p.tobytes() for p in parts)
    else:
        rec = np.empty(nrows, dtype=[(f"c{i}", p.dtype, (p.shape[1],)) for i, p in enumerate(parts)])
        for i, p in enumerate(parts):
            rec[f"c{i}"] = p
        data = rec.tobytes()
    return fields, pad_data(data)


def hdu_bytes(cards: Iterable[str], data: bytes = b"") -> bytes:
    """One header-data unit: the header blocks followed by the (already padded) data."""
    return header_bytes(cards) + data
