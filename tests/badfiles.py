"""A corpus of bad (and awkward but valid) spectrum files, each with the outcome it must get.

Every kind is built by mutating a *copy* of a real file from ``../shared/data/real`` (never the
file itself): byte edits of header cards and data located with astropy (an implementation
independent of the readers under test), so that everything but the intended defect stays
byte-identical to a file the archive really holds. Each :class:`Kind` names the reject reason
(:data:`spectraldl.io.errors.REASONS`) the ingest job must give, or ``None`` for a file that must
be ingested.

Used by ``tests/test_badinput.py`` (per-file outcomes through ``parse_file`` and through the
Spark ingest) and by ``bench/badinput.py`` (the same corpus at volume).

Two kinds depend on the limit ``io.max_bytes``: the gzip bomb inflates to :data:`BOMB_BYTES`
and the oversize file has :data:`OVERSIZE_BYTES`; run them with ``io.max_bytes`` =
:data:`TEST_MAX_BYTES` (``--set io.max_bytes=4194304``) so that the bomb stays small.

>>> cases = build_corpus(Path("/tmp/corpus"))          # doctest: +SKIP
>>> {c.kind: c.reason for c in cases}["gzip_bomb"]     # doctest: +SKIP
'too_large'
"""
from __future__ import annotations

import gzip
import io
import math
import os
import random
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from realdata import find_real_data

REAL = find_real_data()
LAMOST = REAL / "lamost"

#: The limit (``io.max_bytes``) the corpus is meant to run under.
TEST_MAX_BYTES = 4 << 20
#: What the gzip bomb inflates to (twice the limit, from about 8 kB on disk).
BOMB_BYTES = 8 << 20
#: Size of the sparse oversize file (over the limit, but no disk blocks written).
OVERSIZE_BYTES = 5 << 20

#: Real source files (relative to ``REAL``).
IMAGE64 = "lamost/podondra_spectraml/spec-55916-B5591606_sp01-001.fits"   # DR2, 5 x 3909 float64
IMAGE32 = "lamost/podondra_bt-spectraldl/bt-cmi-lamost.fits"              # DR1, 5 x 3899 float32
COADD = "lamost/LiangJunC_PyLASP/3703110.fits"                            # DR10 COADD table
MRS = "lamost/hypergravity_laspec/med-58408-TD230151N343645T01_sp01-015.fits"
MRS_CLOUDY = "lamost/hypergravity_laspec/med-58268-HIP95119KP01_sp12-076.fits.gz"
ONDREJOV_TABLE = "ondrejov/podondra_bt-spectraldl/td240024.fits"
ONDREJOV_IRAF = "ondrejov/podondra_bt-spectraldl/samples_bt-cmi-ondrejov.fits"

#: Good real LAMOST files (every one is ingested with the default settings), relative to ``REAL``.
GOOD = (
    IMAGE32,
    IMAGE64,
    COADD,
    "lamost/LiangJunC_PyLASP/3706009.fits",
    "lamost/ChenfaZheng_LAMOST-SBC/101008.fits",                              # gzip under a .fits name
    "lamost/hypergravity_bopy/spec-55939-GAC_061N46_V3_sp07-078.fits",
    "lamost/hypergravity_laspec/spec-57287-KP193637N444141V03_sp10-161.fits.gz",
)

CARD = 80
BLOCK = 2880
END_CARD = b"END" + b" " * 77


# -- byte-level helpers --------------------------------------------------------------------------
def real_bytes(rel: str) -> bytes:
    """The bytes of a real file, gunzipped when they are gzip (whatever the name says)."""
    data = (REAL / rel).read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def card(text: str) -> bytes:
    """One 80-byte header card."""
    return text.ljust(CARD).encode("ascii")


def _hdulist(data: bytes):
    from astropy.io import fits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fits.open(io.BytesIO(data), memmap=False, lazy_load_hdus=False)


def hdu_layout(data: bytes, hdu: int | str = 0) -> tuple[int, int, int]:
    """``(header_start, data_start, data_span)`` in bytes of one HDU (index or EXTNAME), by astropy."""
    hl = _hdulist(data)
    index = hdu if isinstance(hdu, int) else hl.index_of(hdu)
    info = hl.fileinfo(index)
    return info["hdrLoc"], info["datLoc"], info["datSpan"]


def find_card(data: bytes, key: str, hdu: int | str = 0) -> int:
    """Byte offset of the first ``key`` card in the header of ``hdu``."""
    start, stop, _ = hdu_layout(data, hdu)
    for i in range(start, stop, CARD):
        if data[i:i + 8] == f"{key:<8}".encode():
            return i
    raise KeyError(f"{key} not in HDU {hdu}")


def set_card(data: bytes, key: str, value: str, hdu: int | str = 0) -> bytes:
    """Replace the value of the first ``key`` card of ``hdu`` (the card keeps its place)."""
    i = find_card(data, key, hdu)
    return data[:i] + card(f"{key:<8}= {value:>20}") + data[i + CARD:]


def blank_card(data: bytes, key: str, hdu: int | str = 0) -> bytes:
    """Remove ``key`` from ``hdu`` by overwriting its card with blanks (a valid commentary card)."""
    i = find_card(data, key, hdu)
    return data[:i] + b" " * CARD + data[i + CARD:]


def add_card(data: bytes, text: str, hdu: int | str = 0) -> bytes:
    """Insert one card before END of ``hdu``, using a blank card of the last header block."""
    start, stop, _ = hdu_layout(data, hdu)
    end = data.index(END_CARD, start)
    assert end + 2 * CARD <= stop and data[end + CARD:end + 2 * CARD].strip() == b"", "no room for a card"
    return data[:end] + card(text) + END_CARD + data[end + 2 * CARD:]


def edit_image_row(data: bytes, row: int, fn: Callable[[np.ndarray], np.ndarray]) -> bytes:
    """Rewrite one row of the primary image in place: ``fn(row values) -> new values``."""
    hl = _hdulist(data)
    img = hl[0].data
    _, start, _ = hdu_layout(data, 0)
    dtype = img.dtype.newbyteorder(">")
    n = img.shape[1]
    new = np.asarray(fn(np.array(img[row], dtype=np.float64)), dtype=dtype)
    assert new.shape == (n,)
    pos = start + row * n * dtype.itemsize
    return data[:pos] + new.tobytes() + data[pos + n * dtype.itemsize:]


def edit_column(data: bytes, extname: str, column: str, fn: Callable[[np.ndarray], np.ndarray],
                row: int = 0) -> bytes:
    """Rewrite one cell (an array column) of a binary table in place."""
    hl = _hdulist(data)
    rec = hl[extname].data
    field_dtype, field_offset = rec.dtype.fields[column][:2]
    base = field_dtype.base.newbyteorder(">")
    _, start, _ = hdu_layout(data, extname)
    new = np.asarray(fn(np.array(rec[column][row], dtype=np.float64)), dtype=base)
    assert new.nbytes == field_dtype.itemsize
    pos = start + row * rec.dtype.itemsize + field_offset
    return data[:pos] + new.tobytes() + data[pos + new.nbytes:]


def loglinear_window(data: bytes, start: float = 6519.0, stop: float = 6732.0) -> np.ndarray:
    """Boolean mask of the primary image's pixels in [start, stop] Å (COEFF0/COEFF1, by astropy)."""
    h = _hdulist(data)[0].header
    w = 10 ** (h["COEFF0"] + h["COEFF1"] * np.arange(h["NAXIS1"]))
    return (w >= start) & (w <= stop)


# -- the kinds -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Kind:
    """One kind of input and the outcome it must get.

    Attributes
    ----------
    name : str
        Short id, also the file's stem in the corpus.
    reason : str or None
        The reject reason, or None when the file must be ingested.
    build : callable
        ``build(path)`` writes the file (or link, or directory) at ``path``; it may return more
        paths that hold the same content and must get the same outcome.
    suffix : str
        File name suffix (the ingest lists ``.fits``, ``.fits.gz``, ...).
    doc : str
        What the file is.
    """

    name: str
    reason: str | None
    build: Callable[[Path], Iterable[Path] | None]
    suffix: str = ".fits"
    doc: str = ""


@dataclass(frozen=True)
class Case:
    """One file of a built corpus."""

    kind: str
    path: Path
    reason: str | None


KINDS: dict[str, Kind] = {}


def kind(name: str, reason: str | None, suffix: str = ".fits") -> Callable:
    """Register the decorated builder as :class:`Kind` ``name``; its docstring is the description."""
    def deco(fn: Callable[[Path], Iterable[Path] | None]) -> Callable:
        assert name not in KINDS, name
        KINDS[name] = Kind(name, reason, fn, suffix, (fn.__doc__ or "").strip())
        return fn
    return deco


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


# empty, truncated, not FITS --------------------------------------------------------------------
@kind("empty", "empty_file")
def _empty(p: Path) -> None:
    """Zero bytes."""
    _write(p, b"")


@kind("truncated_header", "truncated")
def _truncated_header(p: Path) -> None:
    """A DR2 file cut 1000 bytes in, inside the primary header."""
    _write(p, real_bytes(IMAGE64)[:1000])


@kind("truncated_data", "truncated")
def _truncated_data(p: Path) -> None:
    """A DR2 file cut inside its image (the header is whole)."""
    data = real_bytes(IMAGE64)
    _, start, span = hdu_layout(data, 0)
    _write(p, data[:start + span // 2])


@kind("truncated_table", "truncated")
def _truncated_table(p: Path) -> None:
    """A DR10 COADD file cut inside the table's data, on a block boundary."""
    data = real_bytes(COADD)
    _, start, span = hdu_layout(data, "COADD")
    _write(p, data[:start + (span // 2) // BLOCK * BLOCK])


@kind("random_bytes", "not_fits")
def _random_bytes(p: Path) -> None:
    """20,000 pseudo-random bytes (seeded)."""
    data = random.Random(20240101).randbytes(20000)
    assert data[:2] != b"\x1f\x8b" and not data.startswith(b"SIMPLE")
    _write(p, data)


@kind("html_page", "not_fits")
def _html(p: Path) -> None:
    """An HTTP error page saved under a .fits name (a failed download)."""
    _write(p, b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n"
              b"<body><h1>Not Found</h1><p>The requested URL was not found.</p></body></html>\n")


@kind("gzip_of_text", "not_fits", ".fits.gz")
def _gzip_text(p: Path) -> None:
    """A valid gzip stream whose content is not FITS."""
    _write(p, gzip.compress(b"This is not a FITS file.\n" * 100))


# gzip ------------------------------------------------------------------------------------------
@kind("truncated_gzip", "gzip_error", ".fits.gz")
def _truncated_gzip(p: Path) -> None:
    """A gzipped DR1 file cut in the middle of the deflate stream."""
    z = gzip.compress(real_bytes(IMAGE32), mtime=0)
    _write(p, z[: len(z) // 2])


@kind("corrupt_gzip", "gzip_error", ".fits.gz")
def _corrupt_gzip(p: Path) -> None:
    """A gzipped DR1 file whose CRC-32 trailer is wrong."""
    z = bytearray(gzip.compress(real_bytes(IMAGE32), mtime=0))
    z[-8] ^= 0xFF
    _write(p, bytes(z))


@kind("gzip_bomb", "too_large", ".fits.gz")
def _gzip_bomb(p: Path) -> None:
    """A real primary header followed by zeros up to BOMB_BYTES, gzipped: a few kB on disk that
    inflate past the limit (TEST_MAX_BYTES)."""
    data = real_bytes(IMAGE32)
    _, start, _ = hdu_layout(data, 0)
    z = gzip.compress(data[:start] + b"\0" * (BOMB_BYTES - start), compresslevel=9, mtime=0)
    assert len(z) < 20_000, len(z)
    _write(p, z)


# sizes -----------------------------------------------------------------------------------------
@kind("oversize_file", "too_large")
def _oversize(p: Path) -> None:
    """A sparse file of OVERSIZE_BYTES (a real file, then a hole): refused before it is read."""
    with open(p, "wb") as fh:
        fh.write(real_bytes(IMAGE32))
        fh.truncate(OVERSIZE_BYTES)


@kind("naxis1_huge", "too_large")
def _naxis1_huge(p: Path) -> None:
    """A DR2 image declaring NAXIS1 = 500,000,000 (20 GB of float64)."""
    _write(p, set_card(real_bytes(IMAGE64), "NAXIS1", "500000000"))


@kind("naxis2_huge", "too_large")
def _naxis2_huge(p: Path) -> None:
    """A COADD table declaring NAXIS2 = 1,000,000,000 rows."""
    _write(p, set_card(real_bytes(COADD), "NAXIS2", "1000000000", hdu="COADD"))


# headers ---------------------------------------------------------------------------------------
@kind("table_row_huge", "too_large")
def _row_huge(p: Path) -> None:
    """A COADD table of 0 rows of 399,999,999,996 bytes (TFORM1 = 99999999999E): the declared data
    size is 0, so only the row size shows the absurdity, which must be refused before numpy's
    dtype constructor sees it (there it would escape as ValueError, ``unreadable``)."""
    data = set_card(real_bytes(COADD), "TFORM1", "'99999999999E'", hdu="COADD")
    data = set_card(data, "NAXIS1", "399999999996", hdu="COADD")
    _write(p, set_card(data, "NAXIS2", "0", hdu="COADD"))


@kind("bitpix_24", "bad_header")
def _bitpix(p: Path) -> None:
    """BITPIX = 24 (not a FITS data type)."""
    _write(p, set_card(real_bytes(IMAGE64), "BITPIX", "24"))


@kind("bitpix_real", "bad_header")
def _bitpix_real(p: Path) -> None:
    """BITPIX = -64.0 (a real, equal to a valid code; found by fuzzing): taken as is, it makes the
    data size a float (TypeError, ``unreadable``)."""
    _write(p, set_card(real_bytes(IMAGE64), "BITPIX", "-64.0"))


@kind("naxis_not_integer", "bad_header")
def _naxis_text(p: Path) -> None:
    """NAXIS = 'two'."""
    _write(p, set_card(real_bytes(IMAGE64), "NAXIS", "'two'"))


@kind("no_end_card", "bad_header")
def _no_end(p: Path) -> None:
    """A whole number of header blocks and no END card anywhere."""
    data = real_bytes(IMAGE64)
    _, start, _ = hdu_layout(data, 0)
    header = data[:start]
    assert header.count(END_CARD) == 1
    _write(p, header.replace(END_CARD, card("COMMENT END card removed")))


@kind("non_ascii_header", "bad_header")
def _non_ascii(p: Path) -> None:
    """A Latin-1 byte (é) inside a header card."""
    data = real_bytes(IMAGE64)
    i = find_card(data, "OBJNAME") if b"OBJNAME " in data[:11520] else find_card(data, "DATE-OBS")
    _write(p, data[:i + 60] + "é".encode("latin-1") + data[i + 61:])


# shapes and columns ----------------------------------------------------------------------------
@kind("five_rows_declare_four", "bad_shape")
def _four_rows(p: Path) -> None:
    """A 5-row LAMOST image whose header declares NAXIS2 = 4."""
    _write(p, set_card(real_bytes(IMAGE64), "NAXIS2", "4"))


@kind("tform_row_mismatch", "bad_shape")
def _tform(p: Path) -> None:
    """A COADD table whose TFORM1 no longer sums to NAXIS1 (3909E -> 3908E)."""
    data = real_bytes(COADD)
    tform = _hdulist(data)["COADD"].header["TFORM1"]
    assert tform == "3909E", tform
    _write(p, set_card(data, "TFORM1", "'3908E   '", hdu="COADD"))


@kind("coadd_without_flux", "missing_column")
def _no_flux(p: Path) -> None:
    """A COADD table whose FLUX column is renamed (TTYPE1 = 'FLUQ')."""
    data = real_bytes(COADD)
    assert _hdulist(data)["COADD"].header["TTYPE1"] == "FLUX"
    _write(p, set_card(data, "TTYPE1", "'FLUQ    '", hdu="COADD"))


@kind("table_naxis_1", "bad_header")
def _table_naxis1(p: Path) -> None:
    """A COADD table header with NAXIS = 1 (its data size then ignores NAXIS2; found by fuzzing):
    taken as is, a view would reach past the data unit (ValueError, ``unreadable``)."""
    _write(p, set_card(real_bytes(COADD), "NAXIS", "1", hdu="COADD"))


@kind("bscale_text", "bad_header")
def _bscale(p: Path) -> None:
    """A DR2 image with BSCALE = 'abc' (a bad card, not a ValueError escaping as ``unreadable``)."""
    _write(p, add_card(real_bytes(IMAGE64), "BSCALE  = 'abc'"))


@kind("wavelength_column_text", "bad_column_type")
def _wl_text(p: Path) -> None:
    """A COADD table whose WAVELENGTH column is declared text (3909E -> 15636A, same width): a
    type error, not a ValueError escaping as ``unreadable``."""
    _write(p, set_card(real_bytes(COADD), "TFORM3", "'15636A  '", hdu="COADD"))


@kind("flux_column_complex", "bad_column_type")
def _flux_complex(p: Path) -> None:
    """A COADD table whose FLUX column is complex (3909E -> 1954C + NAXIS1 fixed): refused, not
    read as its real part."""
    data = set_card(real_bytes(COADD), "TFORM1", "'1954C   '", hdu="COADD")
    _write(p, set_card(data, "NAXIS1", str(_hdulist(data)["COADD"].header["NAXIS1"] - 4), hdu="COADD"))


@kind("ondrejov_zero_width_column", "missing_column")
def _ondrejov_zero(p: Path) -> None:
    """An Ondřejov table whose ``spectral`` column has TFORM 0D (zero width): a missing column, not
    a KeyError escaping as ``unreadable``. The read fails before the format check, hence not
    unsupported_format."""
    data = set_card(real_bytes(ONDREJOV_TABLE), "TFORM1", "'0D      '", hdu=1)
    _write(p, set_card(data, "NAXIS1", "8", hdu=1))


@kind("tfields_text", "unknown_format")
def _tfields_text(p: Path) -> None:
    """An Ondřejov table with TFIELDS = 'two' (a string; found by fuzzing): no reader recognises
    it, and the Ondřejov identify step must not raise TypeError (``unreadable``)."""
    _write(p, set_card(real_bytes(ONDREJOV_TABLE), "TFIELDS", "'two'", hdu=1))


# wavelength ------------------------------------------------------------------------------------
@kind("missing_coeff", "missing_wavelength")
def _no_coeff(p: Path) -> None:
    """A DR2 image without COEFF0 and COEFF1."""
    _write(p, blank_card(blank_card(real_bytes(IMAGE64), "COEFF0"), "COEFF1"))


@kind("coeff1_negative", "bad_wavelength")
def _coeff1_neg(p: Path) -> None:
    """COEFF1 < 0: wavelengths decrease."""
    _write(p, set_card(real_bytes(IMAGE64), "COEFF1", "-0.0001"))


@kind("shuffled_wavelength", "bad_wavelength")
def _shuffled(p: Path) -> None:
    """A COADD file whose WAVELENGTH column is shuffled (seeded)."""
    rng = np.random.default_rng(7)
    _write(p, edit_column(real_bytes(COADD), "COADD", "WAVELENGTH", rng.permutation))


@kind("window_not_covered", "window_not_covered")
def _shifted(p: Path) -> None:
    """COEFF0 = log10(7000): the spectrum starts at 7000 Å, red of the 6519-6732 Å window."""
    _write(p, set_card(real_bytes(IMAGE64), "COEFF0", f"{math.log10(7000.0):.6f}"))


# flux values -----------------------------------------------------------------------------------
def _flux_in_window(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> bytes:
    data = real_bytes(IMAGE64)
    win = loglinear_window(data)
    assert win.sum() == 140
    return edit_image_row(data, 0, lambda f: fn(f, win))


def _set(f: np.ndarray, mask: np.ndarray, value) -> np.ndarray:
    f = f.copy()
    f[mask] = value
    return f


@kind("nan_window", "no_signal")
def _nan_window(p: Path) -> None:
    """Flux NaN on every pixel of the window: nothing finite there, treated as a dead fibre
    (preprocess step 3, ``no_signal``), not as too few valid pixels."""
    _write(p, _flux_in_window(lambda f, w: _set(f, w, np.nan)))


@kind("nan_most", "too_few_valid_pixels")
def _nan_most(p: Path) -> None:
    """Flux NaN on 7 of every 10 window pixels: 30 % good (< 50 %)."""
    def fn(f, w):
        idx = np.flatnonzero(w)
        return _set(f, idx[np.arange(idx.size) % 10 < 7], np.nan)
    _write(p, _flux_in_window(fn))


@kind("inf_most", "too_few_valid_pixels")
def _inf_most(p: Path) -> None:
    """Flux +Inf and -Inf on 60 % of the window's pixels (Inf is not a good pixel)."""
    def fn(f, w):
        idx = np.flatnonzero(w)
        f = _set(f, idx[np.arange(idx.size) % 5 < 2], np.inf)
        return _set(f, idx[np.arange(idx.size) % 5 == 2], -np.inf)
    _write(p, _flux_in_window(fn))


@kind("andmask_window", "too_few_valid_pixels")
def _andmask(p: Path) -> None:
    """ANDMASK (row 3) non-zero on the whole window; flux untouched."""
    data = real_bytes(IMAGE64)
    win = loglinear_window(data)
    _write(p, edit_image_row(data, 3, lambda m: _set(m, win, 8.0)))


@kind("flux_all_zero", "no_signal")
def _zero(p: Path) -> None:
    """Flux 0 everywhere (a dead fibre)."""
    _write(p, edit_image_row(real_bytes(IMAGE64), 0, np.zeros_like))


@kind("flux_constant", "no_signal")
def _constant(p: Path) -> None:
    """Flux 5.0 everywhere: zero variance after continuum division."""
    _write(p, edit_image_row(real_bytes(IMAGE64), 0, lambda f: np.full_like(f, 5.0)))


@kind("flux_negative", "no_signal")
def _negative(p: Path) -> None:
    """Flux negated: the continuum is <= 0."""
    _write(p, edit_image_row(real_bytes(IMAGE64), 0, lambda f: -np.abs(f) - 1.0))


# paths -----------------------------------------------------------------------------------------
@kind("broken_symlink", "unreadable")
def _broken_link(p: Path) -> None:
    """A symbolic link to a file that does not exist."""
    os.symlink(p.parent / "no-such-target.fits", p)


@kind("directory", "unreadable")
def _directory(p: Path) -> None:
    """A directory named like a spectrum file."""
    p.mkdir()


# formats ---------------------------------------------------------------------------------------
@kind("ondrejov_table", "unsupported_format")
def _ondrejov_table(p: Path) -> None:
    """An Ondřejov archive table (CZVO SSAP download) in the LAMOST archive."""
    _write(p, real_bytes(ONDREJOV_TABLE))


@kind("ondrejov_iraf", "unsupported_format")
def _ondrejov_iraf(p: Path) -> None:
    """An Ondřejov IRAF 1-D original in the LAMOST archive."""
    _write(p, real_bytes(ONDREJOV_IRAF))


@kind("mrs_cloudy", "low_signal")
def _mrs_cloudy(p: Path) -> None:
    """A LAMOST medium-resolution night through clouds: its co-add holds no usable flux (the
    corpus runs with ``mrs.exposures = false``, one row per file)."""
    _write(p, real_bytes(MRS_CLOUDY))


@kind("empty_primary", "unknown_format")
def _unknown(p: Path) -> None:
    """A valid FITS file with an empty primary only: no reader recognises it."""
    hdr = card("SIMPLE  =                    T") + card("BITPIX  =                    8") + \
        card("NAXIS   =                    0") + card("END")
    _write(p, hdr.ljust(BLOCK, b" "))


# valid edge cases: must be ingested ------------------------------------------------------------
@kind("obsid_overflow", None)
def _obsid(p: Path) -> None:
    """OBSID = 99999999999999999999 (does not fit a long): ingested with obsid null. It used to
    reach the Arrow write as a Python int and fail the whole Spark task."""
    _write(p, set_card(real_bytes(COADD), "OBSID", "99999999999999999999"))



@kind("long_header", None)
def _long_header(p: Path) -> None:
    """A DR1 file with 10,000 extra valued cards (800 kB of header): read, not rejected."""
    data = real_bytes(IMAGE32)
    _, start, _ = hdu_layout(data, 0)
    end = data.index(END_CARD)
    extra = b"".join(card(f"X{i:07d}= {i:20d} / padding card") for i in range(10000))
    header = data[:end] + extra + END_CARD
    header += b" " * (-len(header) % BLOCK)
    _write(p, header + data[start:])


@kind("hard_link_twin", None)
def _twin(p: Path) -> list[Path]:
    """The same file under two names (a hard link): ingested under both."""
    _write(p, real_bytes(COADD))
    twin = p.with_name(p.name.replace(".fits", "-twin.fits"))
    os.link(p, twin)
    return [twin]


@kind("symlink_to_good", None)
def _good_link(p: Path) -> None:
    """A symbolic link to a good file outside the archive."""
    os.symlink(REAL / IMAGE32, p)


@kind("mrs", None)
def _mrs(p: Path) -> None:
    """A LAMOST medium-resolution (MRS) night: its red co-add is ingested, blurred to R 1,800."""
    _write(p, real_bytes(MRS))


@kind("nan_inf_sprinkled", None)
def _sprinkled(p: Path) -> None:
    """5 NaN, 5 +Inf, 5 -Inf among the window's 140 pixels: valid_fraction 125/140, still ingested."""
    def fn(f, w):
        for value, pos in sprinkled_positions(w).items():
            f = _set(f, pos, value)
        return f
    _write(p, _flux_in_window(fn))


def sprinkled_positions(window: np.ndarray) -> dict[float, np.ndarray]:
    """Pixel indices that ``nan_inf_sprinkled`` sets to NaN, +Inf and -Inf (5 each)."""
    idx = np.flatnonzero(window)
    return {np.nan: idx[3:50:10], np.inf: idx[5:52:10], -np.inf: idx[7:54:10]}


@kind("plain_named_gz", None, ".fits.gz")
def _plain_gz(p: Path) -> None:
    """An uncompressed FITS file under a .fits.gz name (content decides, not the name)."""
    _write(p, real_bytes(IMAGE64))


@kind("gzip_multimember", None, ".fits.gz")
def _multimember(p: Path) -> None:
    """A gzip file of two members (as ``cat a.gz b.gz`` makes) that together hold one FITS file."""
    data = real_bytes(IMAGE32)
    half = len(data) // 2
    _write(p, gzip.compress(data[:half], mtime=0) + gzip.compress(data[half:], mtime=0))


@kind("upper_case_name", None, ".FITS")
def _upper(p: Path) -> None:
    """A good file named ``*.FITS``."""
    _write(p, real_bytes(COADD))


# -- the corpus ----------------------------------------------------------------------------------
def build_corpus(root: Path, kinds: Iterable[str] | None = None, prefix: str = "") -> list[Case]:
    """Write every kind (or the named ones) under ``root``; returns one :class:`Case` per path.

    Parameters
    ----------
    root : Path
        Directory to write into (created).
    kinds : iterable of str, optional
        Kind names; default all of :data:`KINDS`.
    prefix : str
        Prefix of every file name (to build the corpus more than once in one directory).
    """
    root.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []
    for name in (kinds if kinds is not None else KINDS):
        k = KINDS[name]
        path = root / f"{prefix}{k.name}{k.suffix}"
        extra = k.build(path) or []
        cases += [Case(k.name, q, k.reason) for q in [path, *extra]]
    return cases


def copy_good(root: Path, files: Iterable[str] = GOOD) -> list[Case]:
    """Copy good real files (relative to ``REAL``) under ``root``; they must all be ingested."""
    cases = []
    for rel in files:
        dst = root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes((REAL / rel).read_bytes())
        cases.append(Case("good:" + Path(rel).name, dst, None))
    return cases


def replicate(cases: Iterable[Case], root: Path, copy: int) -> list[Case]:
    """Make one more name for each case under ``root/copy-<n>/`` without copying bytes.

    Files become hard links, symbolic links are recreated with the same target, directories are
    made again; the outcome expected of each name is the original's.
    """
    out = []
    base = root / f"copy-{copy:04d}"
    base.mkdir(parents=True, exist_ok=True)
    for c in cases:
        dst = base / f"{c.path.parent.name}--{c.path.name}"
        if c.path.is_symlink():
            os.symlink(os.readlink(c.path), dst)
        elif c.path.is_dir():
            dst.mkdir()
        else:
            os.link(c.path, dst)
        out.append(Case(c.kind, dst, c.reason))
    return out


if __name__ == "__main__":  # print the corpus and what the parser makes of each file, no Spark
    import sys
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))
    from spectraldl.config import load_config
    from spectraldl.parse import ParseOptions, parse_file

    opts = ParseOptions.from_config(load_config("local", overrides=[f"io.max_bytes={TEST_MAX_BYTES}"]))
    with tempfile.TemporaryDirectory() as tmp:
        for c in build_corpus(Path(tmp)):
            r = parse_file(str(c.path), opts)
            got = r.get("reason") if r["outcome"] == "rejected" else None
            flag = "ok " if got == c.reason else "BAD"
            print(f"{flag} {c.kind:24s} want {c.reason!s:22s} got {got!s:22s} {r.get('detail') or ''}"[:220])
