"""Wavelength solutions shared by the readers."""
from __future__ import annotations

import functools

import numpy as np

from .errors import SpectrumError
from .fits import Header


def _number(h: Header, key: str) -> float | None:
    v = h.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def loglinear_wavelength(h: Header, n: int, name: str | None) -> np.ndarray:
    """``10**(COEFF0 + i*COEFF1)`` for i in 0..n-1 (LAMOST's log-linear grid), validated."""
    c0, c1 = _number(h, "COEFF0"), _number(h, "COEFF1")
    if c0 is None or c1 is None:
        raise SpectrumError("missing_wavelength", name, "no numeric COEFF0/COEFF1")
    try:
        if n <= _CACHED_MAX_PIXELS:
            return _loglinear_grid(c0, c1, n)
        return _loglinear_grid.__wrapped__(c0, c1, n)
    except SpectrumError as exc:
        raise exc.with_name(name) from None


#: Grids longer than this are not cached: 256 cached grids of a hostile file's 3-million-pixel
#: length would keep 6 GB in a worker (a few hundred 64 kB gzip files can declare such lengths).
_CACHED_MAX_PIXELS = 16384


@functools.lru_cache(maxsize=256)
def _loglinear_grid(c0: float, c1: float, n: int) -> np.ndarray:
    # Nearly every LAMOST file shares COEFF0/COEFF1 and one of ~100 lengths: compute each grid once.
    w = check_wavelength(10.0 ** (c0 + np.arange(n) * c1), None)
    w.flags.writeable = False
    return w


def column_wavelength(row: np.ndarray, name: str | None) -> np.ndarray:
    """:func:`check_wavelength` of a table's wavelength row (any float dtype and byte order),
    as one shared read-only array per distinct grid.

    The files of a release store one of a few grids (3 among the 29 real DR9+ COADD files), so
    the checked float64 grid is remembered by the row's bytes: a file with the same bytes gets
    the same array, which the preprocessing and the H-alpha measurements recognise by identity.
    The lookup key is the dtype, the size and the first and last 64 bytes; a hit is confirmed on
    all the bytes, so a different grid is never returned. Rows longer than
    :data:`_CACHED_MAX_PIXELS` and other shapes are checked and returned unshared.
    """
    if row.ndim != 1 or not 0 < row.size <= _CACHED_MAX_PIXELS or row.dtype.kind != "f":
        return check_wavelength(np.asarray(row, dtype=row.dtype.newbyteorder("=")), name)
    raw = row.tobytes()
    key = (row.dtype.str, len(raw), raw[:64], raw[-64:])
    hit = _COLUMN_GRIDS.get(key)
    if hit is not None and hit[0] == raw:
        return hit[1]
    w = check_wavelength(np.array(row, dtype=np.float64), name)  # a copy: never a view of the file
    w.flags.writeable = False
    if len(_COLUMN_GRIDS) >= 64:
        _COLUMN_GRIDS.clear()
    _COLUMN_GRIDS[key] = (raw, w)
    return w


#: (dtype, size, first and last 64 bytes) -> (the row's bytes, its checked read-only grid).
_COLUMN_GRIDS: dict[tuple[str, int, bytes, bytes], tuple[bytes, np.ndarray]] = {}


def linear_wavelength(h: Header, n: int, name: str | None) -> np.ndarray:
    """The IRAF linear (or log-linear with ``DC-FLAG = 1``) solution CRVAL1/CDELT1/CRPIX1."""
    crval = _number(h, "CRVAL1")
    cdelt = _number(h, "CDELT1")
    if cdelt is None:
        cdelt = _number(h, "CD1_1")
    crpix = _number(h, "CRPIX1")
    if crval is None or cdelt is None:
        raise SpectrumError("missing_wavelength", name, "no numeric CRVAL1 and CDELT1/CD1_1")
    w = crval + (np.arange(1, n + 1) - (1.0 if crpix is None else crpix)) * cdelt
    if h.get("DC-FLAG") == 1:
        w = 10.0 ** w
    return check_wavelength(w, name)


def check_wavelength(w: np.ndarray, name: str | None) -> np.ndarray:
    """Return ``w`` as float64 if finite, positive and strictly increasing, else ``bad_wavelength``."""
    w = np.asarray(w, dtype=np.float64)
    if w.size == 0:
        raise SpectrumError("bad_shape", name, "empty spectrum")
    if not np.isfinite(w).all() or w[0] <= 0:
        raise SpectrumError("bad_wavelength", name, "wavelengths not finite and positive")
    if w.size > 1 and not (np.diff(w) > 0).all():
        raise SpectrumError("bad_wavelength", name, "wavelengths not strictly increasing")
    return w
