"""Single MRS exposures made fit for the LRS preprocessing: cosmic rays, ``low_signal``, the blur.

Pure numpy/scipy, no Spark. The ingest (issue #17) calls, per MRS file (one night),
:func:`clean_night` on what :func:`~spectraldl.io.lamost_mrs.read_mrs_exposures` returns, rejects
the exposures it marks ``low_signal``, and turns the others into vectors with :func:`mrs_vector`.

Cosmic rays (:func:`cosmic_ray_mask`)
    A single 20-minute exposure carries cosmic-ray hits the co-add rejects: one to three pixels
    (half-maximum width) far above their neighbours, sometimes an oblique track of up to ~9. All
    light the spectrograph images is at least as wide as its line-spread function (FWHM
    ``lambda / R``: 0.875 Å, about 6 pixels of 0.14 Å at H-alpha for R 7,500). Alone, an exposure's
    excursions above ``nsigma`` (6) over a running median (``median_fwhm`` = 2.5 FWHM) whose
    half-maximum width is below ``max_width_fwhm`` (0.5) FWHM are hits. With the night's other
    exposures (``others``; :func:`clean_night` passes them) the test is against their median,
    scaled to this exposure by a smooth ratio (clouds), which also removes the star's lines so a
    hit on a line core is seen: the excursion must exceed ``nsigma`` over that reference and over
    the reference's own running median (the night's smooth changes, e.g. emission that varies
    from exposure to exposure, are not hits), ``nsigma / 2`` over its own neighbours, be at most
    ``max_width_night_fwhm`` (1.5) FWHM wide, and no other exposure may show an excursion above 4
    sigma within a pixel of it (then it is light: an emission line, a hot pixel at the detector's
    edge). A hit is masked with its wings (above 2 sigma and 15 % of its peak, within 1.5 FWHM)
    and ``grow`` pixels more. What it costs: a hit on top of an emission line present in the
    other exposures is left (the line's own EW barely changes), and a line narrower than 1.5 FWHM
    that appears in one exposure only would be taken for a hit.
    On the real files: 0-5 hits per exposure (R-84420171 of med-58625 one in the H-alpha core);
    after masking no vector of the F5 star keeps a spike above 3 sigma where a hit was (without
    masking up to 78 sigma). Synthetic files (tests/test_mrs.py): recall 0.99 (the misses: hits on
    emission lines), no false hit.

``low_signal`` (:func:`signal_to_noise`, :func:`is_low_signal`)
    The median per-pixel S/N (``flux * sqrt(ivar)``) of the good pixels in 6500-6760 Å (DER_SNR,
    Stoehr et al. 2008, where fewer than half the pixels have an ivar). Below ``min_snr`` (3) the
    exposure holds no usable signal: the exposures of med-58268 and med-58269 (clouds; their flux
    is scattered light and cosmic rays, uncorrelated with the star: r -0.2 to 0.5 with its LRS
    vector) measure -0.05 to 1.1 and their co-adds 1.4; the good nights 4.7 (R-84420195 of
    med-58625, through cloud, still r 0.85 after cleaning) and 25-288.

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


@dataclass(frozen=True)
class MrsSettings:
    """The ``[mrs]`` settings: what the ingest does with a medium-resolution file.

    Attributes
    ----------
    exposures : bool
        A ``spectra`` row per red-arm exposure ``R-<LMJM>`` besides ``COADD_R`` (False: the co-add only).
    resolving_power, target_resolving_power : float
        R of the MRS red arm (the line measurements and the cosmic-ray widths use it) and the R the
        vector is blurred to before the default preprocessing (LAMOST LRS).
    min_snr : float
        Median S/N per pixel in :data:`SNR_WINDOW` below which a spectrum is ``low_signal``.
    cosmic_nsigma : float
        :func:`cosmic_ray_mask`'s ``nsigma``.
    """

    exposures: bool = True
    resolving_power: float = R_MRS
    target_resolving_power: float = R_LRS
    min_snr: float = MIN_SNR
    cosmic_nsigma: float = 6.0

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> "MrsSettings":
        return cls(bool(section["exposures"]), float(section["resolving_power"]),
                   float(section["target_resolving_power"]), float(section["min_snr"]),
                   float(section["cosmic_nsigma"]))


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
        ref = _nanmedian0(np.array(stack)) if len(stack) > 1 else stack[0]
        ref_var = _nanmedian0(np.array(var)) if var else np.zeros(f.shape)
    ok = g & np.isfinite(ref) & (np.abs(ref) > 0)
    if ok.sum() < 10:
        return None
    ratio = np.full(f.shape, np.nan)
    ratio[ok] = f[ok] / ref[ok]
    ratio = _smooth_median(_fill(ratio, ok), max(5 * window | 1, 51), window)
    # the median of n values is noisier than one by ~1.25 (n >= 3); one value: its own noise
    ref_var = ref_var * (1.25 ** 2 / len(var) if len(var) > 2 else 1.0)
    return ratio * ref, ratio ** 2 * ref_var


def _nanmedian0(a: np.ndarray) -> np.ndarray:
    """``np.nanmedian(a, axis=0)`` of a few rows (a night's exposures), without its masked-array
    path: sorted, NaN last, the middle of each column's finite values; NaN where there are none.

    >>> _nanmedian0(np.array([[1.0, np.nan, 5.0], [3.0, np.nan, np.nan], [2.0, 4.0, 6.0]])).tolist()
    [2.0, 4.0, 5.5]
    """
    srt = np.sort(a, axis=0)
    c = np.isfinite(a).sum(axis=0)
    cols = np.arange(a.shape[1])
    lo, hi = srt[np.maximum(c - 1, 0) // 2, cols], srt[np.minimum(c // 2, a.shape[0] - 1), cols]
    return np.where(c > 0, (lo + hi) / 2.0, np.nan)


def _smooth_median(x: np.ndarray, size: int, step: int) -> np.ndarray:
    """Running median of width ``size`` of a smooth curve (the cloud/seeing ratio), taken on every
    ``step``-th pixel and interpolated back: ``step**2`` times cheaper than on every pixel."""
    step = max(1, min(step, size // 5))
    if step == 1 or x.size < 4 * step:
        return median_filter(x, size=size, mode="nearest")
    idx = np.arange(0, x.size, step)
    coarse = median_filter(x[idx], size=max(size // step, 3) | 1, mode="nearest")
    return np.interp(np.arange(x.size), idx, coarse)


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


def _cached_running_z(other: tuple, window: int, cache: dict | None) -> np.ndarray:
    """:func:`_running_z` of one of the night's other exposures, once per exposure and window
    (``cache``: shared by the calls of one night; None: no cache)."""
    key = (id(other[1]), window)
    if cache is not None and key in cache:
        return cache[key]
    z = _running_z(np.asarray(other[0], dtype=np.float64), other[1], other[2], other[3], window)
    if cache is not None:
        cache[key] = z
    return z


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
                    nsigma: float = 6.0, max_width_fwhm: float = 0.5, max_width_night_fwhm: float = 1.5,
                    median_fwhm: float = 2.5, grow: int = 1, z_cache: dict | None = None) -> tuple[np.ndarray, int]:
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
        A hit's peak is at least this many sigma above the baseline: the running median alone;
        with ``others``, their scaled median and its running median (and ``nsigma / 2`` above
        the exposure's own running median).
    max_width_fwhm : float
        Alone: a hit's half-maximum width is at most this fraction of the LSF's FWHM (in pixels
        at the hit).
    max_width_night_fwhm : float
        With ``others``: at most this many FWHM, and none of the others shows an excursion above
        4 sigma within a pixel of the peak (present in this exposure only: a hit, or an oblique
        cosmic-ray track a few pixels long). Also how far a hit's wings are masked.
    median_fwhm : float
        Running-median window in LSF FWHMs.
    grow : int
        Extra pixels masked on each side of a hit.
    z_cache : dict, optional
        Shared by the calls for the exposures of one night (:func:`clean_night`), so that each
        exposure's running excursions are computed once, not once per other exposure; its keys
        are the ids of the ``others``' flux arrays, which must stay alive while it is used.

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
        resid_night = np.nan_to_num(ff - ref, nan=0.0)
        sig_night = np.sqrt(sig ** 2 + np.nan_to_num(ref_var))
        z_night = resid_night / sig_night
        # what is left after the night's smooth differences (emission that changes from exposure
        # to exposure, seeing) are taken out by a running median as well
        resid = resid_night - median_filter(resid_night, size=max(window, 5), mode="nearest")
        z = resid / sig_night
        # it must stand out from the other exposures (a bright line of the star stands out from
        # the running median only), from the night's smooth changes and, less so, from its
        # neighbours (a hit on a line core is below their median)
        cand = g & (z > nsigma) & (z_night > nsigma) & (z_med > nsigma / 2.0)
        wing, z_wing = resid_night, z_night  # a track's tail raises the running median: grown on these
    else:
        cand = g & (z_med > nsigma)
        resid, z = resid_med, z_med
        wing, z_wing = resid, z
    idx = np.flatnonzero(cand)
    if idx.size == 0:
        return mask, 0
    groups = np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1)
    others_z = None
    hits = 0
    for grp in groups:
        i = int(grp[np.argmax(resid[grp])])
        width = _half_max_width(resid, i) / fwhm_px[i]
        if width > (max_width_fwhm if night is None else max_width_night_fwhm):
            continue
        if night is not None:
            if others_z is None:  # the others' own excursions, on this grid (computed once)
                others_z = np.array([np.interp(w, np.asarray(o[0], dtype=np.float64),
                                               _cached_running_z(o, window, z_cache), left=0.0, right=0.0)
                                     for o in others])
            if (others_z[:, max(i - 1, 0):i + 2] > 4.0).any():
                continue  # seen in another exposure: light (an emission line), not a cosmic ray
        # the hit's wings: still above 2 sigma and 15 % of its peak, within its allowed width
        reach = int(np.ceil(max_width_night_fwhm * fwhm_px[i]))
        floor = 0.15 * wing[i]
        lo = i
        while lo > max(i - reach, 0) and z_wing[lo - 1] > 2.0 and wing[lo - 1] > floor:
            lo -= 1
        hi = i
        while hi < min(i + reach, n - 1) and z_wing[hi + 1] > 2.0 and wing[hi + 1] > floor:
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
    out, z_cache = [], {}
    for name, s in exposures:
        g = goods[name]
        low = not snr[name] >= min_snr
        if name.startswith("COADD") or low:
            cr, nhit = np.zeros(len(s), dtype=bool), 0
        else:
            others = [(o.wavelength, o.flux, o.ivar, goods[k]) for k, o in usable if k != name]
            cr, nhit = cosmic_ray_mask(s.wavelength, s.flux, s.ivar, g, resolving_power=resolving_power,
                                       others=others, z_cache=z_cache, **cr_options)
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
