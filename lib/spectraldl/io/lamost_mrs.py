"""LAMOST medium-resolution spectra (``med-*``): ``COADD_B``/``COADD_R`` tables, one row per pixel.

The red arm (about 6300-6800 Å) holds H-alpha, so this reader returns ``COADD_R`` with
``wavelength = 10**LOGLAM``. MRS has R about 7,500, four times LAMOST LRS: the ingest job does not
mix such vectors with LRS ones and rejects them as ``unsupported_format`` unless
``ingest.accept_formats`` lists ``lamost_mrs`` (see the README).
"""
from __future__ import annotations

import numpy as np

from .errors import SpectrumError
from .fits import FitsFile
from .meta import normalise_meta
from .spectrum import Spectrum
from .wavelength import check_wavelength

FORMATS = ("lamost_mrs",)


def identify(ff: FitsFile) -> bool:
    return ff.find("COADD_R") is not None or ff.find("COADD_B") is not None


def read(ff: FitsFile) -> Spectrum:
    hdu = ff.find("COADD_R")
    if hdu is None:
        raise SpectrumError("bad_shape", ff.name, "MRS file without the red arm COADD_R (H-alpha)")
    cols = ff.table(hdu, ["FLUX", "IVAR", "LOGLAM", "ANDMASK"], numeric=True)
    if "FLUX" not in cols:
        raise SpectrumError("missing_column", ff.name, "COADD_R has no FLUX column")
    if "LOGLAM" not in cols:
        raise SpectrumError("missing_wavelength", ff.name, "COADD_R has no LOGLAM column")

    def native(key: str) -> np.ndarray | None:
        if key not in cols:
            return None
        a = cols[key]
        if a.ndim != 1:
            raise SpectrumError("bad_shape", ff.name, f"{key} is not one value per row")
        return a.astype(a.dtype.newbyteorder("="))

    return Spectrum(
        wavelength=check_wavelength(10.0 ** native("LOGLAM").astype(np.float64), ff.name),
        flux=native("FLUX"), ivar=native("IVAR"), andmask=native("ANDMASK"),
        medium="vacuum" if ff.primary.get("VACUUM", True) else "air",
        format="lamost_mrs", meta=normalise_meta(ff.primary, hdu.header),
    )
