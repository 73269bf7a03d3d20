"""LAMOST low-resolution spectra of DR9 and later: an empty primary and a ``COADD`` binary table.

The primary keeps stale ``NAXIS1``/``NAXIS2`` cards while ``NAXIS = 0`` (astropy's verification
complains; the cards are simply ignored here). The table has one row of array columns ``FLUX``,
``IVAR``, ``WAVELENGTH``, ``ANDMASK``, ``ORMASK``, ``NORMALIZATION``; the metadata live in the primary.
"""
from __future__ import annotations

import numpy as np

from .errors import SpectrumError
from .fits import FitsFile
from .meta import normalise_meta
from .spectrum import Spectrum
from .wavelength import column_wavelength, loglinear_wavelength

FORMATS = ("lamost_lrs_coadd",)


def identify(ff: FitsFile) -> bool:
    hdu = ff.find("COADD")
    return hdu is not None and hdu.xtension == "BINTABLE"


def _row(cols: dict[str, np.ndarray], key: str) -> np.ndarray | None:
    if key not in cols:
        return None
    a = cols[key][0]
    return np.asarray(a, dtype=a.dtype.newbyteorder("="))


def read(ff: FitsFile) -> Spectrum:
    hdu = ff.find("COADD")
    cols = ff.table(hdu, ["FLUX", "IVAR", "WAVELENGTH", "ANDMASK"], numeric=True)
    if "FLUX" not in cols:
        raise SpectrumError("missing_column", ff.name, "COADD table has no FLUX column")
    nrows = len(cols["FLUX"])
    if nrows != 1:
        raise SpectrumError("bad_shape", ff.name, f"COADD table has {nrows} rows, expected 1")
    flux = _row(cols, "FLUX")
    if flux.ndim != 1 or flux.size == 0:
        raise SpectrumError("bad_shape", ff.name, "FLUX is not a 1-D array")
    n = flux.size
    wavelength = (column_wavelength(cols["WAVELENGTH"][0], ff.name) if "WAVELENGTH" in cols
                  else loglinear_wavelength(ff.primary, n, ff.name))
    ivar, andmask = _row(cols, "IVAR"), _row(cols, "ANDMASK")
    for key, arr in (("WAVELENGTH", wavelength), ("IVAR", ivar), ("ANDMASK", andmask)):
        if arr is not None and arr.shape != (n,):
            raise SpectrumError("bad_shape", ff.name, f"{key} has {arr.size} values, FLUX has {n}")
    return Spectrum(
        wavelength=wavelength, flux=flux, ivar=ivar, andmask=andmask,
        medium="vacuum" if ff.primary.get("VACUUM", True) else "air",
        format="lamost_lrs_coadd", meta=normalise_meta(ff.primary, hdu.header),
    )
