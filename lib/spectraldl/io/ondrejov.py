"""Ondřejov 2 m CCD700 spectra: IRAF 1-D images and the archive's (CZVO SSAP) binary tables.

Both hold air wavelengths around H-alpha (about 6250-6770 Å). The IRAF originals carry flux in
ADU with a linear CRVAL1/CDELT1/CRPIX1 solution and invalid cards (``HISTORY1``, ``COMMENT1=``,
cards without a value) that are skipped; the archive tables have columns ``spectral`` and
``flux`` (continuum-normalised), with the metadata in the table's header.
"""
from __future__ import annotations

from .errors import SpectrumError
from .fits import HDU, FitsFile
from .meta import normalise_meta
from .spectrum import Spectrum
from .wavelength import check_wavelength, linear_wavelength

FORMATS = ("ondrejov_iraf", "ondrejov_table")


def identify_iraf(ff: FitsFile) -> bool:
    h = ff.primary
    return h.get("NAXIS") == 1 and "CRVAL1" in h


def read_iraf(ff: FitsFile) -> Spectrum:
    h = ff.primary
    flux = ff.image(ff.hdus[0])
    flux = flux.astype(flux.dtype.newbyteorder("="))
    return Spectrum(
        wavelength=linear_wavelength(h, flux.size, ff.name), flux=flux, ivar=None, andmask=None,
        medium="air", format="ondrejov_iraf", meta=normalise_meta(h),
    )


def _spectral_table(ff: FitsFile) -> HDU | None:
    for hdu in ff.hdus[1:]:
        if hdu.xtension != "BINTABLE":
            continue
        h = hdu.header
        nfields = h.get("TFIELDS")
        if not isinstance(nfields, int) or isinstance(nfields, bool) or not 0 < nfields < 1000:
            continue  # a string, real or absurd TFIELDS: not a table this reader knows
        ttypes = {str(h.get(f"TTYPE{i}", "")).strip().lower() for i in range(1, nfields + 1)}
        if {"spectral", "flux"} <= ttypes:
            return hdu
    return None


def identify_table(ff: FitsFile) -> bool:
    return _spectral_table(ff) is not None


def read_table(ff: FitsFile) -> Spectrum:
    hdu = _spectral_table(ff)
    cols = ff.table(hdu, ["SPECTRAL", "FLUX"], numeric=True)
    missing = [c for c in ("SPECTRAL", "FLUX") if c not in cols]  # e.g. a zero-width column
    if missing:
        raise SpectrumError("missing_column", ff.name, f"the spectral table has no usable {' or '.join(missing)} column")
    wl, flux = cols["SPECTRAL"], cols["FLUX"]
    if wl.ndim != 1 or flux.ndim != 1:
        raise SpectrumError("bad_shape", ff.name, "spectral/flux are not one value per row")
    return Spectrum(
        wavelength=check_wavelength(wl, ff.name),
        flux=flux.astype(flux.dtype.newbyteorder("=")), ivar=None, andmask=None,
        medium="air", format="ondrejov_table", meta=normalise_meta(hdu.header, ff.primary),
    )
