"""Single MRS exposures made fit for the LRS preprocessing: cosmic rays, ``low_signal``, the blur.

Pure numpy/scipy, no Spark. The ingest (issue #17) calls, per MRS file (one night),
:func:`clean_night` on what :func:`~spectraldl.io.lamost_mrs.read_mrs_exposures` returns, rejects
the exposures it marks ``low_signal``, and turns the others into vectors with :func:`mrs_vector`.

Cosmic rays (:func:`cosmic_ray_mask`)
    A single 20-minute exposure carries cosmic-ray hits the co-add rejects: one to three pixels
    (half-maximum width) far above their neighbours. Everything the spectrograph images is at
    least as wide as its line-spread function (FWHM ``lambda / R``: 0.875 Å, about 6 pixels of
    0.14 Å at H-alpha for R 7,500), so a positive excursion above ``nsigma`` whose half-maximum
    width is below ``max_width_fwhm`` of that FWHM cannot be light from the sky: it is masked,
    together with the pixels around it still above 2 sigma and ``grow`` more on each side.
    The excursion is measured against a running median (a window of ``median_fwhm`` FWHM) and,
    when other exposures of the night are given, against their median scaled to this exposure's
    level (which also removes the star's lines, so a hit on a line core is seen): a candidate
    must stand out from the others too (``nsigma / 2``), so a narrow feature present in every
    exposure (a hot pixel at the detector's edge) is not a cosmic ray. Noise: ``1 / sqrt(ivar)``,
    or the residual's robust scatter where ivar is missing.
    The eight real files: no hit is left above 3 sigma in the blurred, preprocessed vectors.

``low_signal`` (:func:`signal_to_noise`, :func:`is_low_signal`)
    The median per-pixel S/N (``flux * sqrt(ivar)``) of the good pixels in 6500-6760 Å (DER_SNR,
    Stoehr et al. 2008, where fewer than half the pixels have an ivar). Below ``min_snr`` (3) the
    exposure holds no usable signal: med-58268 and med-58269 (clouds; the flux there is scattered
    light and cosmic rays, uncorrelated with the star) measure 0.0-0.9 per exposure and 1.0 in
    their co-adds, the good nights 4.4 (one exposure through cloud) and 22-106.

Resolution (:func:`mrs_vector`)
    :func:`spectraldl.adapt.degrade_resolution` from R 7,500 to LAMOST LRS's 1,800, after the
    cosmic rays are masked (and bridged), then :func:`spectraldl.preprocess.preprocess`
    unchanged. Wavelengths are vacuum in both surveys (see :mod:`spectraldl.io.lamost_mrs`).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from scipy.ndimage import median_filter

#: LAMOST MRS and LRS resolving powers.
R_MRS = 7500.0
R_LRS = 1800.0
#: Where :func:`signal_to_noise` looks (Å, vacuum): H-alpha and the preprocessing window.
SNR_WINDOW = (6500.0, 6760.0)
MIN_SNR = 3.0


def _good(flux: np.ndarray, good: np.ndarray | None) -> np.ndarray:
    g = np.isfinite(flux)
    if good is not None:
        g &= np.asarray(good, dtype=bool)
    return g


def _sigma(flux: np.ndarray, ivar: np.ndarray | None, resid: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Per-pixel noise: ``1/sqrt(ivar)`` where ivar > 0, else the residual's robust scatter."""
    ok = g & np.isfinite(resid)
    mad = 1.4826 * float(np.median(np.abs(resid[ok] - np.median(resid[ok])))) if ok.sum() > 10 else np.inf
    sig = np.full(flux.shape, mad if mad > 0 else np.inf)
    if ivar is not None:
        iv = np.asarray(ivar, dtype=np.float64)
        has = np.isfinite(iv) & (iv > 0)
        sig[has] = 1.0 / np.sqrt(iv[has])
    return sig


def _fill(flux: np.ndarray, g: np.ndarray) -> np.ndarray:
    f = np.asarray(flux, dtype=np.float64).copy()
    if g.all() or not g.any():
        return f if g.any() else np.zeros_like(f)
    idx = np.arange(f.size)
    f[~g] = np.interp(idx[~g], idx[g], f[g])
    return f


def _night_reference(w: np.ndarray, f: np.ndarray, g: np.ndarray,
                     others: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]],
                     window: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The median of the other exposures on ``w``, scaled to ``f`` by a smooth ratio; and its noise."""
    stack, var = [], []
    for wo, fo, ivo, go in others:
        wo = np.asarray(wo, dtype=np.float64)
        go = _good(np.asarray(fo, dtype=np.float64), go)
        if go.sum() < 10:
            continue
        fo_f = _fill(fo, go)
        stack.append(np.interp(w, wo, fo_f, left=np.nan, right=np.nan))
        if ivo is not None:
            iv = np.asarray(ivo, dtype=np.float64)
            v = np.where(np.isfinite(iv) & (iv > 0), 1.0 / np.where(iv > 0, iv, 1.0), np.nan)
            var.append(np.interp(w, wo, np.where(np.isfinite(v), v, np.nanmedian(v) if np.isfinite(v).any() else 0.0),
                                 left=np.nan, right=np.nan))
    if not stack:
        return None
    with warnings.catch_warnings():  # beyond the others' ends every value is NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = np.nanmedian(np.array(stack), axis=0) if len(stack) > 1 else stack[0]
        ref_var = np.nanmedian(np.array(var), axis=0) if var else np.zeros(f.shape)
    ok = g & np.isfinite(ref) & (np.abs(ref) > 0)
    if ok.sum() < 10:
        return None
    ratio = np.full(f.shape, np.nan)
    ratio[ok] = f[ok] / ref[ok]
    ratio = median_filter(_fill(ratio, ok), size=max(5 * window | 1, 51), mode="nearest")
    # the median of n values is noisier than one by ~1.25 (n >= 3); one value: its own noise
    ref_var = ref_var * (1.25 ** 2 / len(var) if len(var) > 2 else 1.0)
    return ratio * ref, ratio ** 2 * ref_var


def _half_max_width(resid: np.ndarray, i: int) -> float:
    """Width (pixels, interpolated) over which the residual around ``i`` exceeds half of ``resid[i]``."""
    half = resid[i] / 2.0
    lo = i
    while lo > 0 and resid[lo - 1] > half:
        lo -= 1
    hi = i
    while hi < resid.size - 1 and resid[hi + 1] > half:
        hi += 1
    left = float(lo) if lo == 0 else lo - (resid[lo] - half) / (resid[lo] - resid[lo - 1])
    right = float(hi) if hi == resid.size - 1 else hi + (resid[hi] - half) / (resid[hi] - resid[hi + 1])
    return max(right - left, 1.0)


def _running_z(w: np.ndarray, f: np.ndarray, ivar: np.ndarray | None, good: np.ndarray | None,
               window: int) -> np.ndarray:
    """(flux - running median) / noise of one spectrum."""
    g = _good(np.asarray(f, dtype=np.float64), good)
    ff = _fill(f, g)
    resid = ff - median_filter(ff, size=max(window, 5), mode="nearest")
    return np.where(g, resid / _sigma(ff, ivar, resid, g), 0.0)


def cosmic_ray_mask(wavelength: np.ndarray, flux: np.ndarray, ivar: np.ndarray | None = None,
                    good: np.ndarray | None = None, *, resolving_power: float = R_MRS,
                    others: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]] = (),
                    nsigma: float = 5.0, max_width_fwhm: float = 0.5, max_width_night_fwhm: float = 1.5,
                    median_fwhm: float = 2.5, grow: int = 1) -> tuple[np.ndarray, int]:
    """Pixels hit by cosmic rays in one exposure; returns ``(mask, n_hits)``.

    Parameters
    ----------
    wavelength, flux : ndarray
        One exposure, ascending wavelengths (Å).
    ivar, good : ndarray, optional
        Its inverse variance and good pixels (non-good pixels are neither tested nor used).
    resolving_power : float
        R of the spectrum: the line-spread function's FWHM is ``lambda / R``.
    others : sequence of (wavelength, flux, ivar, good)
        The other exposures of the same night (same star and fibre), any grid; may be empty.
    nsigma : float
        A hit's peak is at least this many sigma above the baseline(s).
    max_width_fwhm : float
        A hit's half-maximum width is at most this fraction of the LSF's FWHM (in pixels at it)...
    max_width_night_fwhm : float
        ... or, with ``others``, at most this many FWHM when the excursion stands ``nsigma`` above
        the night's other exposures and none of them shows anything above 3 sigma within a pixel
        of its peak (present in this exposure only: an oblique cosmic-ray track a few pixels long).
    median_fwhm : float
        Running-median window in LSF FWHMs.
    grow : int
        Extra pixels masked on each side of a hit.

    Returns
    -------
    mask : ndarray of bool
        True on the pixels to drop (hits and their wings).
    n_hits : int
        Number of separate hits found.
    """
    w = np.asarray(wavelength, dtype=np.float64)
    f = np.asarray(flux, dtype=np.float64)
    n = f.size
    mask = np.zeros(n, dtype=bool)
    g = _good(f, good)
    if n < 8 or g.sum() < 8:
        return mask, 0
    disp = np.gradient(w)
    fwhm_px = (w / float(resolving_power)) / disp
    window = int(np.ceil(median_fwhm * float(np.median(fwhm_px)))) | 1
    ff = _fill(f, g)
    base = median_filter(ff, size=max(window, 5), mode="nearest")
    resid_med = ff - base
    sig = _sigma(f, ivar, resid_med, g)
    z_med = resid_med / sig
    night = _night_reference(w, ff, g, others, window) if len(others) else None
    if night is not None:
        ref, ref_var = night
        resid_night = ff - ref
        sig_night = np.sqrt(sig ** 2 + np.nan_to_num(ref_var))
        z_night = np.nan_to_num(resid_night / sig_night, nan=0.0)
        cand = g & (((z_med > nsigma) & (z_night > nsigma / 2.0)) | ((z_night > nsigma) & (z_med > nsigma / 2.0)))
        resid = np.where(np.isfinite(resid_night), resid_night, resid_med)
        z = z_night  # the wings of a hit: the running median is raised by the hit itself
    else:
        cand = g & (z_med > nsigma)
        resid, z = resid_med, z_med
    idx = np.flatnonzero(cand)
    if idx.size == 0:
        return mask, 0
    groups = np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1)
    others_z = None
    hits = 0
    for grp in groups:
        i = int(grp[np.argmax(resid[grp])])
        width = _half_max_width(resid, i) / fwhm_px[i]
        if width > max_width_fwhm:
            if night is None or width > max_width_night_fwhm or not z_night[i] > nsigma:
                continue
            if others_z is None:  # the others' own excursions, on this grid (computed once)
                others_z = np.array([np.interp(w, np.asarray(o[0], dtype=np.float64),
                                               _running_z(np.asarray(o[0], dtype=np.float64), o[1], o[2], o[3], window),
                                               left=0.0, right=0.0) for o in others])
            if (others_z[:, max(i - 1, 0):i + 2] > 3.0).any():
                continue  # seen in another exposure: light, not a cosmic ray
        lo = i
        while lo > 0 and z[lo - 1] > 2.0:
            lo -= 1
        hi = i
        while hi < n - 1 and z[hi + 1] > 2.0:
            hi += 1
        lo, hi = min(lo, grp[0]), max(hi, grp[-1])
        mask[max(lo - grow, 0):min(hi + grow, n - 1) + 1] = True
        hits += 1
    return mask, hits


def _der_snr(f: np.ndarray) -> float:
    if f.size < 5:
        return 0.0
    noise = 1.482602 / np.sqrt(6.0) * float(np.median(np.abs(2.0 * f[2:-2] - f[:-4] - f[4:])))
    signal = float(np.median(f))
    return signal / noise if noise > 0 else (np.inf if signal > 0 else 0.0)


def signal_to_noise(wavelength: np.ndarray, flux: np.ndarray, ivar: np.ndarray | None = None,
                    good: np.ndarray | None = None, window: tuple[float, float] = SNR_WINDOW) -> float:
    """Median per-pixel S/N of the good pixels in ``window`` (``flux * sqrt(ivar)``; DER_SNR where
    fewer than half of them have an ivar). 0.0 when the window holds no good pixel."""
    w = np.asarray(wavelength, dtype=np.float64)
    f = np.asarray(flux, dtype=np.float64)
    sel = _good(f, good) & (w >= window[0]) & (w <= window[1])
    if not sel.any():
        return 0.0
    if ivar is not None:
        iv = np.asarray(ivar, dtype=np.float64)[sel]
        has = np.isfinite(iv) & (iv > 0)
        if has.sum() >= 0.5 * sel.sum():
            return float(np.median(f[sel][has] * np.sqrt(iv[has])))
    return float(_der_snr(f[sel]))


def is_low_signal(wavelength: np.ndarray, flux: np.ndarray, ivar: np.ndarray | None = None,
                  good: np.ndarray | None = None, min_snr: float = MIN_SNR) -> bool:
    """True when the exposure holds no usable signal (reject reason ``low_signal``)."""
    return not signal_to_noise(wavelength, flux, ivar, good) >= min_snr


@dataclass
class CleanExposure:
    """One exposure (or co-add) of an MRS file after :func:`clean_night`.

    ``good`` is the spectrum's own good pixels less the cosmic-ray ``cr_mask``; ``low_signal``
    exposures are to be rejected with that reason and never scored.
    """

    exposure: str
    spectrum: Any
    good: np.ndarray
    cr_mask: np.ndarray
    n_cosmic: int
    snr: float
    low_signal: bool
    info: dict[str, Any] = field(default_factory=dict)


def clean_night(exposures: Sequence[tuple[str, Any]], min_snr: float = MIN_SNR,
                resolving_power: float = R_MRS, **cr_options: Any) -> list[CleanExposure]:
    """Cosmic-ray masks and ``low_signal`` flags for the spectra of one MRS file (one night).

    ``exposures`` is what :func:`~spectraldl.io.lamost_mrs.read_mrs_exposures` returns. Single
    exposures (``R-*``) are compared with the night's other exposures that have signal; co-adds
    (``COADD_*``, where the pipeline has rejected cosmic rays already) are only flagged for
    ``low_signal`` and get an empty mask. Pixels whose flux is exactly 0 are not good (no data: the
    med-58649 ``COADD_R`` has five such pixels at 6583.5-6584.2 Å with ``ANDMASK`` 0, where its
    exposures' ``PIXMASK`` is set).
    """
    goods = {name: s.good & (s.flux != 0) for name, s in exposures}
    snr = {name: signal_to_noise(s.wavelength, s.flux, s.ivar, goods[name]) for name, s in exposures}
    usable = [(name, s) for name, s in exposures if not name.startswith("COADD") and snr[name] >= min_snr]
    out = []
    for name, s in exposures:
        g = goods[name]
        low = not snr[name] >= min_snr
        if name.startswith("COADD") or low:
            cr, nhit = np.zeros(len(s), dtype=bool), 0
        else:
            others = [(o.wavelength, o.flux, o.ivar, goods[k]) for k, o in usable if k != name]
            cr, nhit = cosmic_ray_mask(s.wavelength, s.flux, s.ivar, g, resolving_power=resolving_power,
                                       others=others, **cr_options)
        out.append(CleanExposure(name, s, g & ~cr, cr, nhit, snr[name], low))
    return out


def mrs_vector(wavelength: np.ndarray, flux: np.ndarray, good: np.ndarray, r_from: float = R_MRS,
               r_to: float = R_LRS, settings: Any = None, name: str | None = None) -> tuple[np.ndarray, float]:
    """The network's vector of a (cleaned) MRS spectrum: blurred to ``r_to``, then preprocessed.

    Non-good pixels (cosmic rays included) are bridged for the blur and stay non-good for
    :func:`~spectraldl.preprocess.preprocess`. Raises its ``SpectrumError`` s.
    """
    from ..adapt import degrade_resolution
    from ..preprocess import DEFAULT_SETTINGS, preprocess

    blurred, _ = degrade_resolution(wavelength, flux, good, r_from=r_from, r_to=r_to, name=name)
    return preprocess(wavelength, blurred, good, settings or DEFAULT_SETTINGS, name=name)
