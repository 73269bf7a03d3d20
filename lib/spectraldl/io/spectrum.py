"""The in-memory spectrum every reader returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Metadata keys every :class:`Spectrum` carries (None where the file has no such keyword).
META_KEYS = (
    "obsid", "designation", "ra", "dec", "lamost_class", "lamost_subclass", "z",
    "snr_g", "snr_r", "data_release", "object", "date_obs",
)


@dataclass
class Spectrum:
    """One 1-D spectrum as stored in its file.

    Attributes
    ----------
    wavelength : ndarray of float64
        Wavelengths in Å, ascending, in the file's medium (vacuum for LAMOST, air for Ondřejov).
    flux : ndarray
        Observed flux (LAMOST row 0 / ``FLUX``; never LAMOST's normalised row), native byte order.
    ivar : ndarray or None
        Inverse variance where the format has it. Kept for weighting and plots only: LAMOST sets
        it to 0 on strong emission peaks, so it must not decide which pixels are good.
    andmask : ndarray or None
        LAMOST AND mask where the format has it.
    medium : str
        ``"air"`` or ``"vacuum"``.
    format : str
        Short id of the reader that read it (``lamost_lrs_dr1``, ``lamost_lrs_image``, ...).
    meta : dict
        The keys of :data:`META_KEYS`, normalised across releases, plus a few extras.
    """

    wavelength: np.ndarray
    flux: np.ndarray
    ivar: np.ndarray | None
    andmask: np.ndarray | None
    medium: str
    format: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def good(self) -> np.ndarray:
        """Boolean mask of usable pixels: finite flux and, where present, ``andmask == 0``."""
        g = np.isfinite(self.flux)
        if self.andmask is not None:
            g &= self.andmask == 0
        return g

    def __len__(self) -> int:
        return len(self.flux)
