"""Domain adaptation of Ondřejov CCD700 spectra to look like LAMOST ones: pure numpy.

The networks are trained on Ondřejov spectra (R about 13,000, air wavelengths, 0.23-0.26 Å/px)
and applied to LAMOST spectra (R about 1,800, vacuum wavelengths, about 1.5 Å/px). Before the
shared preprocessing (:func:`spectraldl.preprocess.preprocess`, the very function the archive goes
through) an Ondřejov spectrum is

1. converted from air to vacuum wavelengths (:func:`air_to_vacuum`, about +1.8 Å at H-alpha);
2. blurred to LAMOST's resolution (:func:`match_resolution`): a Gaussian kernel whose width is
   what LAMOST's line-spread function has beyond Ondřejov's,
   ``sigma_kernel^2 = sigma_target^2 - sigma_source^2`` with ``sigma = lambda / (2.355 R)`` at
   H-alpha, converted to the spectrum's own pixels (so the 0.2567 and 0.2309 Å/px detectors get
   the same blur in Å); or a fixed width in pixels, as the 2017 thesis chose by eye (7 px).

Non-good pixels are bridged by linear interpolation before the convolution (so a NaN does not
spread over a kernel's width) and stay marked not good for the preprocessing.

All settings live in :class:`AdaptSettings` (``[adapt]`` in conf/); :meth:`AdaptSettings.fingerprint`
identifies them beside the preprocessing fingerprint.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter1d

from .errors import UsageError
from .io.errors import SpectrumError
from .preprocess import DEFAULT_SETTINGS, PreprocessSettings, preprocess

#: FWHM = 2 sqrt(2 ln 2) sigma for a Gaussian.
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
EDGE_MODES = ("nearest", "reflect", "mirror")


@dataclass(frozen=True)
class AdaptSettings:
    """Settings of :func:`adapt_ondrejov` (``[adapt]`` in conf/defaults.toml).

    Attributes
    ----------
    r_source, r_target : float
        Resolving powers R = lambda / FWHM of the source (Ondřejov) and target (LAMOST) spectra.
    reference_wavelength : float
        Where the kernel width is derived (Å): H-alpha.
    blur : bool
        Match the resolution at all (off: the "sigma 0" row of the domain-adaptation sweep).
    sigma_px : float
        A fixed kernel sigma in native pixels; 0 derives it from the resolving powers.
    air_to_vacuum : bool
        Convert air wavelengths to vacuum first (LAMOST is in vacuum).
    edge_mode : str
        How :func:`scipy.ndimage.gaussian_filter1d` extends the spectrum beyond its ends.
    truncate : float
        Kernel half-width in sigmas.
    """

    r_source: float = 13000.0
    r_target: float = 1800.0
    reference_wavelength: float = 6562.8
    blur: bool = True
    sigma_px: float = 0.0
    air_to_vacuum: bool = True
    edge_mode: str = "nearest"
    truncate: float = 4.0

    def __post_init__(self) -> None:
        if self.sigma_px < 0:
            raise UsageError("adapt: sigma_px must be >= 0 (0: derive from r_source, r_target)")
        if self.blur and self.sigma_px == 0 and not self.r_source > self.r_target > 0:
            raise UsageError("adapt: deriving the kernel needs r_source > r_target > 0")
        if self.edge_mode not in EDGE_MODES:
            raise UsageError(f"adapt: edge_mode must be one of {EDGE_MODES}, got {self.edge_mode!r}")
        if not self.truncate > 0:
            raise UsageError("adapt: truncate must be > 0")

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> "AdaptSettings":
        return cls(**{k: section[k] for k in cls.__dataclass_fields__ if k in section})

    def kernel_sigma_angstrom(self) -> float:
        """The derived kernel sigma in Å: ``sqrt(sigma_target^2 - sigma_source^2)`` at the reference."""
        lam = self.reference_wavelength
        s_t = lam / (FWHM_PER_SIGMA * self.r_target)
        s_s = lam / (FWHM_PER_SIGMA * self.r_source)
        return float(np.sqrt(s_t ** 2 - s_s ** 2))

    def kernel_sigma_px(self, dispersion: float) -> float:
        """Kernel sigma in pixels for a spectrum of ``dispersion`` Å per pixel (0: no blur)."""
        if not self.blur:
            return 0.0
        if self.sigma_px > 0:
            return float(self.sigma_px)
        return self.kernel_sigma_angstrom() / dispersion

    def fingerprint(self) -> str:
        """``adapt_id``: a short hash of every setting (and of this module's version)."""
        blob = json.dumps({"v": 1, **asdict(self)}, sort_keys=True).encode()
        return "ad1-" + hashlib.sha256(blob).hexdigest()[:12]


DEFAULT_ADAPT = AdaptSettings()


def air_to_vacuum(wavelength_air: np.ndarray | float) -> np.ndarray | float:
    """Vacuum wavelengths (Å) from air wavelengths (Å).

    Neither astropy nor the installed stack provides the conversion (specutils, which has one,
    is not a dependency), so this is the formula VALD uses for air-to-vacuum, by N. Piskunov,
    valid for dry air at 15 °C and 101 325 Pa from 2000 Å upwards::

        s = 1e4 / lambda_air
        n = 1 + 8.336624212083e-5 + 2.408926869968e-2 / (130.1065924522 - s^2)
              + 1.599740894897e-4 / (38.92568793293 - s^2)
        lambda_vac = lambda_air * n

    Source: VALD3 documentation, "Air-to-vacuum conversion"
    (https://www.astro.uu.se/valdwiki/Air-to-vacuum%20conversion), the inverse of Morton (2000,
    ApJS 130, 403) / Birch & Downs (1994). At H-alpha 6562.80 Å (air) it gives 6564.61 Å.
    The Ondřejov archive has no spectra below 2000 Å, where air wavelengths are not defined;
    they are returned unchanged, as is customary.
    """
    w = np.asarray(wavelength_air, dtype=np.float64)
    s2 = (1e4 / np.where(w > 0, w, np.nan)) ** 2
    n = 1.0 + 8.336624212083e-5 + 2.408926869968e-2 / (130.1065924522 - s2) \
        + 1.599740894897e-4 / (38.92568793293 - s2)
    out = np.where(w >= 2000.0, w * n, w)
    return float(out) if np.ndim(wavelength_air) == 0 else out


def fill_bad(flux: np.ndarray, good: np.ndarray) -> np.ndarray:
    """``flux`` with non-good pixels replaced by linear interpolation over pixel index
    (the nearest good value beyond the ends), so a convolution does not spread them."""
    f = np.asarray(flux, dtype=np.float64).copy()
    g = np.asarray(good, dtype=bool) & np.isfinite(f)
    if g.all():
        return f
    if not g.any():
        return np.full_like(f, np.nan)
    idx = np.arange(f.size)
    f[~g] = np.interp(idx[~g], idx[g], f[g])
    return f


def match_resolution(wavelength: np.ndarray, flux: np.ndarray, good: np.ndarray | None = None,
                     settings: AdaptSettings = DEFAULT_ADAPT, name: str | None = None
                     ) -> tuple[np.ndarray, float]:
    """Blur ``flux`` with the Gaussian kernel of ``settings``; returns ``(flux, sigma_px)``.

    The kernel works in native pixels; the Å-per-pixel scale is the median step of
    ``wavelength`` (Ondřejov grids are linear, so one figure suffices).
    """
    w = np.asarray(wavelength, dtype=np.float64)
    g = np.isfinite(flux) if good is None else np.asarray(good, dtype=bool)
    f = fill_bad(flux, g)
    dispersion = float(np.median(np.diff(w))) if w.size > 1 else 0.0
    if not dispersion > 0:
        raise SpectrumError("bad_wavelength", name, "wavelengths are not ascending")
    sigma = settings.kernel_sigma_px(dispersion)
    if sigma > 0 and np.isfinite(f).all():
        f = gaussian_filter1d(f, sigma, mode=settings.edge_mode, truncate=settings.truncate)
    return f, sigma


def degrade_resolution(wavelength: np.ndarray, flux: np.ndarray, good: np.ndarray | None = None,
                       r_from: float = 7500.0, r_to: float = 1800.0, reference_wavelength: float = 6562.8,
                       name: str | None = None) -> tuple[np.ndarray, float]:
    """Blur a spectrum of resolving power ``r_from`` to ``r_to`` (LAMOST MRS -> LRS); ``(flux, sigma_px)``.

    The same Gaussian kernel as :func:`match_resolution` (``sigma^2 = s_to^2 - s_from^2``, ``s = lambda /
    (2.355 R)`` at ``reference_wavelength``, in the spectrum's pixels; non-good pixels bridged first and
    left non-good for the caller). A grid whose pixel steps vary by more than 1 % (an MRS single
    exposure is on its detector's own grid: steps from 0.74 to 1.05e-5 dex) is resampled onto a
    uniform grid with its median step, blurred there and interpolated back, so the kernel has the
    same width in Å across the spectrum.

    ``wavelength`` must be ascending. Returns the blurred flux on ``wavelength`` (float64) and the
    kernel sigma in pixels of the grid it was applied on.
    """
    settings = AdaptSettings(r_source=float(r_from), r_target=float(r_to),
                             reference_wavelength=float(reference_wavelength), air_to_vacuum=False)
    w = np.asarray(wavelength, dtype=np.float64)
    steps = np.diff(w)
    if w.size < 3 or not (steps > 0).all():
        raise SpectrumError("bad_wavelength", name, "wavelengths are not ascending")
    med = float(np.median(steps))
    if np.abs(steps / med - 1.0).max() <= 0.01:
        return match_resolution(w, flux, good, settings, name)
    g = np.isfinite(flux) if good is None else np.asarray(good, dtype=bool) & np.isfinite(flux)
    f = fill_bad(flux, g)
    u = w[0] + med * np.arange(int(np.floor((w[-1] - w[0]) / med)) + 1)
    fu, sigma = match_resolution(u, np.interp(u, w, f), None, settings, name)
    return np.interp(w, u, fu), sigma


def adapt_ondrejov(spectrum, adapt_settings: AdaptSettings = DEFAULT_ADAPT,
                   preprocess_settings: PreprocessSettings = DEFAULT_SETTINGS,
                   name: str | None = None) -> tuple[np.ndarray, float]:
    """An Ondřejov spectrum as the vector a LAMOST spectrum of the same star would give.

    Parameters
    ----------
    spectrum : spectraldl.io.Spectrum
        As read (air wavelengths for Ondřejov; a ``vacuum`` spectrum is not converted again).
    adapt_settings : AdaptSettings
    preprocess_settings : PreprocessSettings
        The archive's settings: the result is comparable with ``W/spectra`` vectors only if equal.
    name : str, optional
        File name for error messages.

    Returns
    -------
    vector : ndarray of float32, shape (n_points,)
    valid_fraction : float

    Raises
    ------
    SpectrumError
        From :func:`spectraldl.preprocess.preprocess` (``window_not_covered``, ...).
    """
    good = spectrum.good
    wavelength = np.asarray(spectrum.wavelength, dtype=np.float64)
    flux, _ = match_resolution(wavelength, spectrum.flux, good, adapt_settings, name)
    if adapt_settings.air_to_vacuum and getattr(spectrum, "medium", "air") == "air":
        wavelength = air_to_vacuum(wavelength)
    return preprocess(wavelength, flux, good, preprocess_settings, name=name)
