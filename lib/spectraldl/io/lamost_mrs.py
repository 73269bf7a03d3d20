"""LAMOST medium-resolution spectra (``med-*``): the co-adds and every single exposure of a night.

An MRS file holds a primary header (``EXTNAME = 'Information'``, no data), the co-adds
``COADD_B`` / ``COADD_R`` and one table per exposure and arm, ``B-<LMJM>`` / ``R-<LMJM>``
(``LMJM``: the exposure's start in Local, i.e. Beijing, Modified Julian Minutes; 20-minute cadence,
``EXPTIME`` 600-1200 s). The red arm (about 6270-6870 Å) holds H-alpha, so the red tables are read.

Layouts, decided from the content (never from the name or ``DATA_V``):

- DR6/DR7 (the eight real ``med-*`` files in ../shared/data/real): one row per pixel, columns
  ``FLUX IVAR LOGLAM ANDMASK ORMASK`` (co-adds) or ``FLUX IVAR LOGLAM PIXMASK`` (exposures),
  all scalar (TFORM ``E``/``I``); ``wavelength = 10**LOGLAM``. The co-adds run blue to red; **every
  single exposure runs red to blue** (LOGLAM descending, on the detector's own, not log-linear,
  pixel grid: steps of 0.74-1.05e-5 dex), in all eight files, not only med-58408.
- DR9 and later: one row of array columns, ``FLUX IVAR WAVELENGTH`` plus the mask columns
  (``ANDMASK ORMASK`` or ``PIXMASK``) and ``NORMALIZATION``, like the LRS ``COADD`` table
  (TFORM ``<n>E``). No such real file is in the corpus: the layout is the LRS DR9+ one and the
  synthetic generator (:mod:`spectraldl.synth.mrs`) writes it.

Every spectrum is returned with ascending wavelengths: flux, ivar and mask are reordered alike
(a plain reversal when the table is descending, a stable sort otherwise); wavelengths that are
not strictly monotonic after that are ``bad_wavelength``. The mask (``ANDMASK`` of a co-add,
``PIXMASK`` of an exposure) is ``Spectrum.andmask``, so ``Spectrum.good`` means the same as for LRS.

Times (``meta["mjd"]``, UTC MJD, float): an exposure's mid-time,
``LMJM / 1440 - 8 / 24 + EXPTIME / 2 / 86400`` (LMJM counts minutes of Beijing time, UTC+8). For
the real files the first exposure's value equals the primary ``DATE-OBS`` ("the observation
median UTC", which is that of the first exposure) to the minute. A co-add's time is the mean of
the mid-times of the exposures its ``LMJMLIS*`` cards list (``exptime`` their sum); without them,
``DATE-OBS``.

Air or vacuum: **vacuum**, from the data, not only from ``VACUUM = T`` (which all eight primaries
carry). The night sky's [O I] 6300.304 Å (air; 6302.05 Å in vacuum) line leaves its photon noise in
every exposure's ``IVAR``: 1/IVAR divided by its 41-pixel running median peaks at 6301.70-6302.53 Å
in the first exposure of each file that reaches it (med-58408, 58625, 58644, 58646, 58649; excess
variance 0.3-9.9 times the local level), 1.4-2.2 Å from the air wavelength and within 0.35 Å (the
heliocentric correction, ``HELIO_RV`` -9 to -12 km/s, is 0.2-0.25 Å) of the vacuum one. The figure
is measured again by ``tests/test_mrs.py::test_real_mrs_is_vacuum``. Stellar lines cannot decide
it alone (air vs vacuum is a near-constant factor, 83 km/s at H-alpha, degenerate with the star's
RV): the cross-correlation of each good night's ``COADD_R`` (blurred to R 1,800) with the LRS
spectrum of the same star (vacuum) peaks at +6 to +57 km/s, the star's RV varying between nights,
where air wavelengths alone would shift it by -83 km/s.

MRS has R about 7,500, four times LAMOST LRS. The ingest (:func:`spectraldl.parse.parse_path`)
makes a row of :func:`read_all`'s every table; the pure functions that make an exposure comparable
with LRS vectors (cosmic rays, ``low_signal``, resolution matching) are in
:mod:`spectraldl.io.mrs_quality` and :func:`spectraldl.adapt.degrade_resolution`.
"""
from __future__ import annotations

import re
from typing import Any

import numpy as np

from .errors import SpectrumError
from .fits import HDU, FitsFile, Header
from .meta import date_to_mjd, normalise_meta
from .spectrum import Spectrum
from .wavelength import check_wavelength

FORMATS = ("lamost_mrs",)

#: Beijing time (the L of LMJD/LMJM) minus UTC, in days.
LOCAL_MINUS_UTC_DAYS = 8.0 / 24.0
#: ``R-<LMJM>``: a red-arm exposure's EXTNAME.
EXPOSURE_RE = re.compile(r"^R-(\d+)$")
_COLUMNS = ["FLUX", "IVAR", "LOGLAM", "WAVELENGTH", "ANDMASK", "PIXMASK"]


def identify(ff: FitsFile) -> bool:
    return ff.find("COADD_R") is not None or ff.find("COADD_B") is not None


def lmjm_to_mjd(lmjm: float) -> float:
    """UTC MJD of a Local (Beijing, UTC+8) Modified Julian Minute."""
    return float(lmjm) / 1440.0 - LOCAL_MINUS_UTC_DAYS


def _number(h: Header, key: str) -> float | None:
    v = h.get(key)
    if isinstance(v, bool) or v is None:
        return None
    try:
        return float(str(v).strip()) if not isinstance(v, (int, float)) else float(v)
    except ValueError:
        return None


def _arrays(ff: FitsFile, hdu: HDU) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, str]:
    """(wavelength, flux, ivar, mask, layout) of one MRS table, as stored (any order).

    ``layout`` is ``"rows"`` (one row per pixel, ``LOGLAM``) or ``"arrays"`` (one row of array
    columns, ``WAVELENGTH`` or ``LOGLAM``), decided by the shape of the ``FLUX`` column.
    """
    cols = ff.table(hdu, _COLUMNS, numeric=True)
    if "FLUX" not in cols:
        raise SpectrumError("missing_column", ff.name, f"{hdu.extname} has no FLUX column")
    if "WAVELENGTH" not in cols and "LOGLAM" not in cols:
        raise SpectrumError("missing_wavelength", ff.name, f"{hdu.extname} has neither LOGLAM nor WAVELENGTH")
    flux_col = cols["FLUX"]
    if flux_col.ndim == 2:
        if flux_col.shape[0] != 1:
            raise SpectrumError("bad_shape", ff.name, f"{hdu.extname}: {flux_col.shape[0]} rows of arrays, expected 1")
        layout = "arrays"

        def get(key: str) -> np.ndarray | None:
            if key not in cols:
                return None
            a = cols[key][0]
            return np.asarray(a, dtype=a.dtype.newbyteorder("="))
    elif flux_col.ndim == 1:
        layout = "rows"

        def get(key: str) -> np.ndarray | None:
            if key not in cols:
                return None
            a = cols[key]
            if a.ndim != 1:
                raise SpectrumError("bad_shape", ff.name, f"{hdu.extname}: {key} is not one value per row")
            return a.astype(a.dtype.newbyteorder("="))
    else:
        raise SpectrumError("bad_shape", ff.name, f"{hdu.extname}: FLUX has shape {flux_col.shape}")
    flux = get("FLUX")
    if flux.size == 0:
        raise SpectrumError("bad_shape", ff.name, f"{hdu.extname} is empty")
    wl = get("WAVELENGTH")
    if wl is not None:
        wavelength = wl.astype(np.float64)
    else:
        wavelength = 10.0 ** get("LOGLAM").astype(np.float64)
    ivar = get("IVAR")
    mask = get("ANDMASK")
    if mask is None:
        mask = get("PIXMASK")
    for key, arr in (("wavelength", wavelength), ("IVAR", ivar), ("mask", mask)):
        if arr is not None and arr.shape != flux.shape:
            raise SpectrumError("bad_shape", ff.name, f"{hdu.extname}: {key} has {arr.size} values, FLUX has {flux.size}")
    return wavelength, flux, ivar, mask, layout


def _ascending(w: np.ndarray, *arrays: np.ndarray | None, name: str | None = None) -> tuple:
    """``w`` sorted ascending and ``arrays`` reordered alike (a view when reversing suffices)."""
    if w.size > 1 and not (w[1:] > w[:-1]).all():
        if np.isfinite(w).all() and (w[1:] < w[:-1]).all():
            order = slice(None, None, -1)
        else:
            order = np.argsort(w, kind="stable")
        w = w[order]
        arrays = tuple(None if a is None else np.ascontiguousarray(a[order]) for a in arrays)
        w = np.ascontiguousarray(w)
    return (check_wavelength(w, name), *arrays)


def _lmjm_list(h: Header) -> list[int]:
    """The exposures (LMJM) a co-add combines: ``LMJMLIST`` or ``LMJMLIS0``, ``LMJMLIS1``, ..."""
    texts = [h.get("LMJMLIST")] + [h.get(f"LMJMLIS{i}") for i in range(10)]
    out = []
    for t in texts:
        if isinstance(t, str):
            out += [int(x) for x in re.findall(r"\d+", t)]
        elif isinstance(t, int) and not isinstance(t, bool):
            out.append(t)
    return out


def _exposure_time(hdu: HDU) -> tuple[int | None, float | None, float | None]:
    """(LMJM, mid-exposure UTC MJD, EXPTIME) of an exposure table from its header (its EXTNAME
    when ``LMJM`` is missing)."""
    h = hdu.header
    lmjm = _number(h, "LMJM")
    if lmjm is None:
        m = EXPOSURE_RE.match(hdu.extname) or re.match(r"^B-(\d+)$", hdu.extname)
        lmjm = float(m.group(1)) if m else None
    exptime = _number(h, "EXPTIME")
    if lmjm is None:
        return None, None, exptime
    return int(lmjm), lmjm_to_mjd(lmjm) + (exptime or 0.0) / 2.0 / 86400.0, exptime


def _spectrum(ff: FitsFile, hdu: HDU, base_meta: dict[str, Any],
              times: dict[int, tuple[float, float | None]]) -> Spectrum:
    w, flux, ivar, mask, layout = _arrays(ff, hdu)
    w, flux, ivar, mask = _ascending(w, flux, ivar, mask, name=ff.name)
    h = hdu.header
    meta = dict(base_meta)
    snr = _number(h, "SNR")
    if snr is not None:
        meta["snr_r"] = None if snr == -9999.0 else snr
    meta.update(exposure=hdu.extname, mrs_layout=layout)
    if hdu.extname.startswith("COADD"):
        # a co-add's time: the mean mid-time of the exposures it combines (LMJMLIS*), their total time
        used = [times[m] for m in _lmjm_list(h) if m in times]
        meta["lmjm"] = None
        meta["exptime"] = None
        if used:
            meta["mjd"] = float(np.mean([t[0] for t in used]))
            if all(t[1] is not None for t in used):
                meta["exptime"] = float(sum(t[1] for t in used))
    else:
        lmjm, mjd, exptime = _exposure_time(hdu)
        meta.update(lmjm=lmjm, exptime=exptime)
        if mjd is not None:
            meta["mjd"] = mjd
    return Spectrum(
        wavelength=w, flux=flux, ivar=ivar, andmask=mask,
        medium="vacuum" if ff.primary.get("VACUUM", True) else "air",
        format="lamost_mrs", meta=meta,
    )


def _base_meta(ff: FitsFile) -> dict[str, Any]:
    meta = normalise_meta(ff.primary)
    meta["mjd"] = date_to_mjd(ff.primary.get("DATE-OBS"))  # replaced per exposure / co-add
    return meta


def _times(ff: FitsFile) -> dict[int, tuple[float, float | None]]:
    """LMJM -> (mid-exposure UTC MJD, EXPTIME) of the red-arm exposures, from their headers."""
    out = {}
    for hdu in exposure_hdus(ff):
        lmjm, mjd, exptime = _exposure_time(hdu)
        if lmjm is not None:
            out[lmjm] = (mjd, exptime)
    return out


def exposure_hdus(ff: FitsFile) -> list[HDU]:
    """The red-arm single-exposure tables ``R-<LMJM>``, in file order."""
    return [h for h in ff.hdus if EXPOSURE_RE.match(h.extname) and h.xtension == "BINTABLE"]


def read_mrs_exposures(ff: FitsFile, coadd: bool = True) -> list[tuple[str, Spectrum]]:
    """``COADD_R`` (first, when ``coadd``) and every ``R-<LMJM>`` exposure as ``(exposure, Spectrum)``.

    ``exposure`` is the HDU's EXTNAME (``COADD_R``, ``R-83906016``): with the file's path it keys a
    ``spectra`` row (CONVENTIONS.md). Each spectrum has ascending wavelengths and ``meta`` with
    ``mjd`` (UTC, mid-exposure; a co-add's the mean of its exposures'), ``exptime`` (s; a co-add's
    their sum), ``lmjm`` (None for a co-add), ``snr_r`` (the HDU's ``SNR``), ``exposure`` and
    ``mrs_layout`` (``rows`` or ``arrays``) besides the usual keys.

    Raises
    ------
    SpectrumError
        As :func:`read` does, for the first table that cannot be read.
    """
    base, times = _base_meta(ff), _times(ff)
    out = [(hdu.extname, _spectrum(ff, hdu, base, times)) for hdu in exposure_hdus(ff)]
    if coadd:
        out.insert(0, ("COADD_R", read(ff, base, times)))
    return out


def read_all(ff: FitsFile) -> list[tuple[str, Spectrum | SpectrumError]]:
    """What the ingest makes rows of: ``COADD_R`` (where present) and every ``R-<LMJM>`` exposure,
    each as ``(exposure, Spectrum)`` or, for a table that cannot be read, ``(exposure,
    SpectrumError)``, so one bad table costs its own row, not the night's.

    Raises
    ------
    SpectrumError
        ``bad_shape`` when the file holds no red-arm table at all (nothing to measure H-alpha on).
    """
    base, times = _base_meta(ff), _times(ff)
    hdus = ([ff.find("COADD_R")] if ff.find("COADD_R") is not None else []) + exposure_hdus(ff)
    if not hdus:
        raise SpectrumError("bad_shape", ff.name, "MRS file without red-arm tables (COADD_R, R-<LMJM>)")
    out: list[tuple[str, Spectrum | SpectrumError]] = []
    for hdu in hdus:
        try:
            out.append((hdu.extname, _spectrum(ff, hdu, base, times)))
        except SpectrumError as exc:
            out.append((hdu.extname, exc.with_name(ff.name)))
    return out


def read(ff: FitsFile, _base: dict[str, Any] | None = None,
         _times_: dict[int, tuple[float, float | None]] | None = None) -> Spectrum:
    """The red-arm co-add ``COADD_R`` (the registry's one spectrum per file)."""
    hdu = ff.find("COADD_R")
    if hdu is None:
        raise SpectrumError("bad_shape", ff.name, "MRS file without the red arm COADD_R (H-alpha)")
    return _spectrum(ff, hdu, _base if _base is not None else _base_meta(ff),
                     _times_ if _times_ is not None else _times(ff))
