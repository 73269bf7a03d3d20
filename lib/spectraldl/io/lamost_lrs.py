"""LAMOST low-resolution spectra stored as a 5 x N primary image (DR1 to DR8).

Rows: flux, ivar, then either a *normalised flux* (DR1) or the *wavelength* (DR2-DR8), andmask,
ormask. DR1 and DR2 files lack version keywords, so the layout is told from the data: row 2 is
the wavelength when its ends agree with ``10**(COEFF0 + i*COEFF1)``. Either way the wavelength
returned is ``10**(COEFF0 + i*COEFF1)`` (log-linear, vacuum); float32 and float64 images both occur.
"""
from __future__ import annotations

import math

from .errors import SpectrumError
from .fits import FitsFile
from .meta import normalise_meta
from .spectrum import Spectrum
from .wavelength import loglinear_wavelength

FORMATS = ("lamost_lrs_dr1", "lamost_lrs_image")


def identify(ff: FitsFile) -> bool:
    """A 2-D primary image with a LAMOST telescope keyword or a log-linear COEFF0 solution."""
    h = ff.primary
    if h.get("NAXIS") != 2:
        return False
    tel = h.get("TELESCOP")
    return (isinstance(tel, str) and tel.strip().upper().startswith("LAMOST")) or "COEFF0" in h


def read(ff: FitsFile) -> Spectrum:
    h = ff.primary
    img = ff.image(ff.hdus[0])
    if img.shape[0] != 5:
        raise SpectrumError("bad_shape", ff.name, f"primary image has {img.shape[0]} rows, a LAMOST LRS image has 5")
    n = img.shape[1]
    wavelength = loglinear_wavelength(h, n, ff.name)
    is_wave = False
    if n > 1:
        first, last = float(img[2, 0]), float(img[2, -1])  # Python floats: numpy scalars cost 10x here
        is_wave = (math.isfinite(first) and math.isfinite(last)
                   and abs(first / float(wavelength[0]) - 1) < 1e-3 and abs(last / float(wavelength[-1]) - 1) < 1e-3)
    native = img.dtype.newbyteorder("=")
    return Spectrum(
        wavelength=wavelength,
        flux=img[0].astype(native),
        ivar=img[1].astype(native),
        andmask=img[3].astype(native),
        medium="vacuum" if h.get("VACUUM", True) else "air",
        format="lamost_lrs_image" if is_wave else "lamost_lrs_dr1",
        meta=normalise_meta(h),
    )
