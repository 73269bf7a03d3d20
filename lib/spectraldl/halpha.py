"""H-alpha measurements on a spectrum in its own sampling (issue #16): pure numpy, ~tens of µs.

:func:`measure_halpha` returns the ``ha_*``, ``nii_snr``, ``sii_snr`` and ``nebular`` columns of the
``spectra`` table (CONVENTIONS.md) for one spectrum, as a :class:`HalphaResult` whose
:meth:`~HalphaResult.as_row` gives plain Python values (``None`` for nulls). Every threshold and
band is a field of :class:`HalphaSettings` (``[measure]`` in conf/ via
:meth:`HalphaSettings.from_config`). A bad spectrum never raises: the measurements that cannot be
made are ``None`` and ``ha_flag`` says why.

Definitions (wavelengths in Å, vacuum, ascending)
-------------------------------------------------
Good pixels
    finite flux and, where given, ``andmask == 0``; never dropped for ``ivar == 0`` (LAMOST zeroes
    ivar on the peaks of strong emission lines, the very signal measured).
Continuum ``Fc``
    mean flux of the good pixels in 6500-6550 and 6575-6625 Å (West et al. 2011). Its error is
    the scatter of those pixels about a least-squares straight line (so a sloped continuum is not
    counted as noise) divided by sqrt(n): the error of the mean.
``ha_ew``
    ``sum((1 - F/Fc) * dlam)`` over the pixels whose centres lie in 6557.61-6571.61 Å;
    **negative = emission**. ``dlam`` is the pixel width from the wavelength grid, the distance
    between the midpoints to the neighbouring pixels, ``(w[i+1] - w[i-1]) / 2`` (numpy.gradient's
    interior formula). Bad pixels inside the line band are linearly interpolated from the good
    ones (in flux and variance); fewer than ``min_line_fraction`` good pixels there: null.
``ha_ew_err``
    linear error propagation, ``var = sum(dlam^2 sigma_i^2) / Fc^2 + (sum(F_i dlam) / Fc^2)^2
    sigma_Fc^2``, with the pixel noise ``sigma_i = 1/sqrt(ivar_i)``.
Noise of a pixel without ivar (``ivar <= 0`` or not finite, flux good)
    the mean variance of the nearest pixel with a usable ivar on each side, looked for within
    ``ivar_fill_pixels`` pixels (one side is enough), scaled up for photon noise by
    ``max(1, F_i / F_nb)`` where ``F_nb`` is the mean flux of those neighbours (never scaled down:
    sky and read noise stay). No neighbour within reach: the continuum scatter ``rms`` (above)
    scaled the same way, ``rms^2 * max(1, F_i / Fc)``. A format without ivar (``ivar=None``) takes
    that last rule for every pixel.
``ha_peak``
    max of ``F/Fc`` over the line band.
``ha_snr``
    continuum S/N: ``Fc / sqrt(mean sigma^2)`` over the good side-band pixels with a usable ivar
    (``Fc / rms`` when fewer than half of them have one, or without ivar).
``ha_fwhm``
    full width at half maximum of the emission component, half-maximum crossings linearly
    interpolated, searched outwards from the highest line-band pixel within
    ``ha_center +- fwhm_halfwidth``; the half level is half-way between the peak and the
    continuum, or, for a ``filled`` profile, between the peak and the higher of the two trough
    minima. Both peaks of a ``double``: the outermost crossings. None when there is no emission
    component (flag ``fwhm_unbounded`` when the profile does not come back below half maximum).
``ha_profile``
    see :func:`classify_profile` (rules and thresholds in units of the noise).
``nii_snr``, ``sii_snr``
    integrated flux over its error of [N II] 6585.27 Å and of the stronger of [S II] 6718.29 /
    6732.67 Å (vacuum) above a local straight-line continuum; see :func:`measure_halpha`.
``nebular``
    ``max(nii_snr, sii_snr) >= nebular_snr`` and no H-alpha emission wider than the instrument:
    either an emission component no wider than ``nebular_fwhm_factor * ha_center / R``, or no
    emission profile at all (a residual too weak to rise out of the star's absorption line).

How the nebular thresholds were chosen (tests/test_halpha.py, bench/halpha_check.py)
    ``nebular_fwhm_factor = 1.5``: unresolved (instrumental-width) H-alpha cores measure at most
    1.27 x the instrumental FWHM in 883 synthetic LRS spectra at S/N 20-150 (median 1.0), lines of
    intrinsic FWHM = 1 instrumental FWHM (~170 km/s) at least 1.39 x; the 4 real nebular DR10
    spectra measure 1.01-1.24 x, BT CMi 2.56 x. ``nebular_snr = 5`` with ``line_sys_floor = 0.01``:
    on the 127 real LRS spectra, the largest forbidden-line S/N of any non-nebular spectrum is 4.0
    ([N II] of a K7 dwarf: the straight continuum under the H-alpha and Ca I 6574.6 wings), the
    smallest of the 4 nebular ones 7.3; without the floor, percent-level continuum structure of
    bright spectra (S/N > 200) reached 5.4. On 300 randomised synthetic H II-region cases (LRS,
    S/N 30-150, [N II]/H-alpha 0.25-0.6) 97.7 % are flagged, and none of 300 stars with broad
    (3-8 x instrumental) or narrow H-alpha emission and no forbidden line.

Speed: spectra whose pixels from 6500 Å to the [S II] windows are all good take a fast path (all
wavelength-only work done once per grid, the sums as three matrix products): about 35 µs per
LAMOST LRS spectrum on the development machine (bench/halpha_check.py); the general path
(masked or non-finite pixels, flux exactly 0) about 140 µs.

``ha_flag`` codes (comma-separated when several; None when all is fine): ``band_not_covered``,
``bad_wavelength``, ``bad_shape`` (flux/ivar/andmask not the wavelength's length),
``bad_resolving_power``, ``no_good_pixels_continuum`` (fewer than ``min_continuum_pixels``),
``continuum_not_positive``, ``no_good_pixels_line``, ``too_few_good_pixels_line``,
``too_few_pixels_profile``, ``fwhm_unbounded``, ``nii_not_measured``, ``sii_not_measured``,
``internal_error:<Exception>`` (a bug; never expected).
"""
from __future__ import annotations

import math
import weakref
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from .errors import UsageError

#: Speed of light, km/s.
C_KMS = 299792.458
#: Vacuum rest wavelengths (Å): H-alpha, [N II] 6585 (6583.45 air), [S II] 6718/6733 (6716.44/6730.82 air).
HA_VAC = 6564.61
NII_VAC = 6585.27
SII_VAC = (6718.29, 6732.67)

#: The columns :meth:`HalphaResult.as_row` returns, with their Spark SQL types.
HALPHA_COLUMNS: dict[str, str] = {
    "ha_ew": "double", "ha_ew_err": "double", "ha_peak": "double", "ha_fwhm": "double",
    "ha_snr": "double", "ha_profile": "string", "ha_sep_kms": "double", "ha_pcyg_kms": "double",
    "nii_snr": "double", "sii_snr": "double", "nebular": "boolean", "ha_flag": "string",
}

#: The values ``ha_profile`` takes (None when it cannot be decided).
PROFILES = ("absorption", "none", "single", "double", "pcygni", "filled")


@dataclass(frozen=True)
class HalphaSettings:
    """Bands and thresholds of :func:`measure_halpha` (``[measure]`` in conf/).

    Bands are vacuum Å. Thresholds named ``k_*`` are in units of the noise ``s`` of a pixel
    relative to the continuum, ``s_i = sqrt(sigma_i^2 / Fc^2 + (sigma_Fc / Fc)^2 + sys_floor^2)``
    (so a noisy flat spectrum is ``none``, and at very high S/N percent-level continuum wiggles are
    not taken for lines).

    Attributes
    ----------
    line_start, line_stop : float
        West et al. 2011 H-alpha band, 6557.61-6571.61 Å. It is also the region where the profile
        is classified (peaks, troughs): wide enough for Be-disc peaks and P Cygni troughs to about
        +-300 km/s, narrow enough to keep out Ca I 6574.6 Å, which would fake a trough in K/M stars.
    blue_start, blue_stop, red_start, red_stop : float
        Continuum side bands, 6500-6550 and 6575-6625 Å.
    ha_center : float
        H-alpha rest wavelength, 6564.61 Å: zero of the velocities.
    fwhm_halfwidth : float
        The FWHM's half-maximum crossings are looked for within ``ha_center +- fwhm_halfwidth``.
    min_line_fraction : float
        Good pixels needed in the line band (the others are interpolated), else null.
    min_continuum_pixels : int
        Good pixels needed in the two side bands together, else null.
    ivar_fill_pixels : int
        How far (pixels) a pixel without ivar looks for a neighbour with one.
    sys_floor : float
        Noise floor relative to the continuum added in quadrature for the profile decisions
        (not for ``ha_ew_err``).
    k_emission : float
        A pixel at least this many sigma above the continuum is emission.
    k_absorption : float
        A pixel at least this many sigma below the continuum is absorption.
    k_dip : float
        Significance of the dip between two peaks (``double``) or of an emission core above the
        floor of its trough (``filled``), in the combined noise of the two pixels.
    k_ew : float
        ``|ha_ew| / ha_ew_err`` at which the integrated line alone counts as emission/absorption.
    double_min_sep_fwhm : float
        Two peaks closer than this many instrumental FWHM are not a ``double``.
    filled_max_offset_kms : float
        The emission core of a ``filled`` profile without emission above the continuum must lie
        within this velocity of ``ha_center``.
    nebular_band_fwhm : float
        Forbidden-line band: line centre +- this many instrumental FWHM (at the given R).
    nebular_cont_fwhm : float
        Width of each continuum window beside the forbidden-line band(s), in instrumental FWHM.
    nebular_snr : float
        [N II] or [S II] S/N at which a forbidden line is clearly in emission.
    nebular_fwhm_factor : float
        ``nebular`` needs the H-alpha emission FWHM, where there is emission, <= this x
        ``ha_center / R``.
    line_sys_floor : float
        Continuum structure relative to the continuum, counted fully correlated over a
        forbidden-line band in its flux error (``floor * continuum * band width``).
    """

    line_start: float = 6557.61
    line_stop: float = 6571.61
    blue_start: float = 6500.0
    blue_stop: float = 6550.0
    red_start: float = 6575.0
    red_stop: float = 6625.0
    ha_center: float = HA_VAC
    fwhm_halfwidth: float = 25.0
    min_line_fraction: float = 0.5
    min_continuum_pixels: int = 5
    ivar_fill_pixels: int = 10
    sys_floor: float = 0.01
    k_emission: float = 4.0
    k_absorption: float = 4.0
    k_dip: float = 3.0
    k_ew: float = 4.0
    double_min_sep_fwhm: float = 1.0
    filled_max_offset_kms: float = 250.0
    nebular_band_fwhm: float = 1.5
    nebular_cont_fwhm: float = 2.0
    nebular_snr: float = 5.0
    nebular_fwhm_factor: float = 1.5
    line_sys_floor: float = 0.01

    def __post_init__(self) -> None:
        if not (self.blue_start < self.blue_stop <= self.line_start < self.ha_center
                < self.line_stop <= self.red_start < self.red_stop):
            raise UsageError("measure: need blue_start < blue_stop <= line_start < ha_center < "
                             "line_stop <= red_start < red_stop")
        if not 0 < self.min_line_fraction <= 1:
            raise UsageError("measure: min_line_fraction must be in (0, 1]")
        if self.min_continuum_pixels < 3:
            raise UsageError("measure: min_continuum_pixels must be >= 3")
        if self.ivar_fill_pixels < 1:
            raise UsageError("measure: ivar_fill_pixels must be >= 1")
        for name in ("sys_floor", "fwhm_halfwidth", "k_emission", "k_absorption", "k_dip", "k_ew",
                     "double_min_sep_fwhm", "filled_max_offset_kms", "nebular_band_fwhm",
                     "nebular_cont_fwhm", "nebular_snr", "nebular_fwhm_factor", "line_sys_floor"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise UsageError(f"measure: {name} must be a finite number >= 0")
        if not (self.blue_start <= self.ha_center - self.fwhm_halfwidth
                and self.ha_center + self.fwhm_halfwidth <= self.red_stop
                and self.fwhm_halfwidth >= max(self.ha_center - self.line_start, self.line_stop - self.ha_center)):
            raise UsageError("measure: fwhm_halfwidth must reach past the line band and stay within the side bands")

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> "HalphaSettings":
        """Settings from a ``[measure]`` config section (keys not named here are ignored).

        Parameters
        ----------
        section : dict
            Key -> value; ints are accepted for float fields.

        Returns
        -------
        HalphaSettings

        Raises
        ------
        UsageError
            A value of the wrong type or out of range.
        """
        kw: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in section:
                continue
            v = section[f.name]
            want = int if f.type in ("int", int) else float
            if isinstance(v, bool) or not isinstance(v, (int, float)) or (want is int and not isinstance(v, int)):
                raise UsageError(f"measure.{f.name}: expected {want.__name__}, got {v!r}")
            kw[f.name] = want(v)
        return cls(**kw)

    def as_dict(self) -> dict[str, Any]:
        """Every setting by name (for run summaries)."""
        return asdict(self)


DEFAULT_SETTINGS = HalphaSettings()


@dataclass(frozen=True)
class HalphaResult:
    """The H-alpha columns of one spectrum; ``None`` where not measured (``ha_flag`` says why).

    Attributes
    ----------
    ha_ew, ha_ew_err : float or None
        Equivalent width and its error, Å; negative = emission.
    ha_peak : float or None
        Max of F/Fc in the line band.
    ha_fwhm : float or None
        FWHM of the emission component, Å; None without emission.
    ha_snr : float or None
        Continuum S/N in the side bands.
    ha_profile : str or None
        One of :data:`PROFILES`.
    ha_sep_kms : float or None
        Peak separation of a ``double``, km/s.
    ha_pcyg_kms : float or None
        Velocity of the absorption trough of a ``pcygni`` relative to ``ha_center``, km/s,
        negative = blueshifted (positive: an inverse P Cygni).
    nii_snr, sii_snr : float or None
        S/N of [N II] 6585 and of the stronger [S II] line above the local continuum.
    nebular : bool or None
        Narrow H-alpha emission with a forbidden line in emission: H II-region light.
    ha_flag : str or None
        Comma-separated reasons for nulls; None when all is fine.
    """

    ha_ew: float | None = None
    ha_ew_err: float | None = None
    ha_peak: float | None = None
    ha_fwhm: float | None = None
    ha_snr: float | None = None
    ha_profile: str | None = None
    ha_sep_kms: float | None = None
    ha_pcyg_kms: float | None = None
    nii_snr: float | None = None
    sii_snr: float | None = None
    nebular: bool | None = None
    ha_flag: str | None = None

    def as_row(self) -> dict[str, Any]:
        """The columns of :data:`HALPHA_COLUMNS` as plain Python values (None for nulls)."""
        return {"ha_ew": self.ha_ew, "ha_ew_err": self.ha_ew_err, "ha_peak": self.ha_peak,
                "ha_fwhm": self.ha_fwhm, "ha_snr": self.ha_snr, "ha_profile": self.ha_profile,
                "ha_sep_kms": self.ha_sep_kms, "ha_pcyg_kms": self.ha_pcyg_kms,
                "nii_snr": self.nii_snr, "sii_snr": self.sii_snr, "nebular": self.nebular,
                "ha_flag": self.ha_flag}


# ---------------------------------------------------------------------------------------------
# Band edges per (settings, resolving power); the wavelength-only work per grid ("geometry")

_isfinite = np.isfinite
# ufunc reductions called directly: ``x.min()``, ``x.any()`` ... go through Python wrappers
# (numpy.core._methods) that cost more than the reduction of a few hundred pixels
_min = np.minimum.reduce
_max = np.maximum.reduce
_all = np.logical_and.reduce
_INF = float("inf")
_SQRT2 = math.sqrt(2.0)


class _Plan:
    """Band edges for one (settings, R), searched in one call, and the geometries of the grids."""

    __slots__ = ("settings", "R", "edges", "outer", "fwhm_inst_ha", "fwhm_max", "near_dlam", "nii_ok",
                 "sii_lo_edge", "sii_hi_edge", "geoms", "shared")

    def __init__(self, s: HalphaSettings, R: float) -> None:
        self.settings = s
        self.R = R
        bw, cw = s.nebular_band_fwhm, s.nebular_cont_fwhm
        n0 = NII_VAC
        s1, s2 = SII_VAC
        nb, nc = bw * n0 / R, cw * n0 / R
        b1, c1 = bw * s1 / R, cw * s1 / R
        b2, c2 = bw * s2 / R, cw * s2 / R
        # index: 0 blue_start 1 blue_stop 2 line_start 3 line_stop 4 red_start 5 red_stop
        #        6, 7 FWHM window
        #        8, 9 [N II] blue continuum; 10, 11 [N II] band; 12, 13 [N II] red continuum
        #        14, 15 [S II] blue continuum; 16, 17 6718 band; 18, 19 6733 band; 20, 21 red continuum
        # One searchsorted (side 'left'): a band [lo, hi) takes the pixels with lo <= centre < hi.
        self.edges = np.array([
            s.blue_start, s.blue_stop, s.line_start, s.line_stop, s.red_start, s.red_stop,
            s.ha_center - s.fwhm_halfwidth, s.ha_center + s.fwhm_halfwidth,
            n0 - nb - nc, n0 - nb, n0 - nb, n0 + nb, n0 + nb, n0 + nb + nc,
            s1 - b1 - c1, s1 - b1, s1 - b1, s1 + b1, s2 - b2, s2 + b2, s2 + b2, s2 + b2 + c2])
        # at a very low R the [N II] windows would reach into the H-alpha band: not measured
        self.nii_ok = bool(self.edges[8] >= s.line_stop)
        self.sii_lo_edge = float(self.edges[14])
        self.sii_hi_edge = float(self.edges[21])
        self.outer = np.array([s.blue_start, s.red_stop, self.sii_hi_edge])
        self.fwhm_inst_ha = s.ha_center / R
        self.fwhm_max = s.nebular_fwhm_factor * s.ha_center / R
        self.near_dlam = s.filled_max_offset_kms / C_KMS * s.ha_center
        self.geoms: dict[tuple[bool, bool, bytes], Any] = {}
        #: id of a shared read-only grid -> (weak reference, a, b, geometry): see :func:`_grid_geometry`
        self.shared: dict[int, tuple[Any, int, int, Any]] = {}


_PLANS: dict[tuple[int, float], _Plan] = {}


def _plan(s: HalphaSettings, R: float) -> _Plan:
    key = (id(s), R)
    p = _PLANS.get(key)
    if p is None or p.settings is not s:
        if len(_PLANS) > 64:
            _PLANS.clear()
        p = _PLANS[key] = _Plan(s, R)  # holds s, so its id stays its own
    return p


class _Fit:
    """Least-squares straight line through the pixels of a mask: what only the grid decides."""

    __slots__ = ("n", "xm", "sxx", "mean_w", "slope_w")

    def __init__(self, x: np.ndarray, mask: np.ndarray) -> None:
        self.n = int(np.count_nonzero(mask))
        self.xm = float(x[mask].mean()) if self.n else 0.0
        dx = np.where(mask, x - self.xm, 0.0)
        self.sxx = float(dx @ dx)
        self.mean_w = mask / max(self.n, 1)
        self.slope_w = dx / self.sxx if self.sxx > 0 else dx * 0.0


class _Band:
    """A forbidden-line band: widths (zero outside), their sum, squares, and weighted position."""

    __slots__ = ("d", "d2", "sd", "sd2", "xb")

    def __init__(self, x: np.ndarray, widths: np.ndarray, lo: int, hi: int, xm: float) -> None:
        d = np.zeros(x.size)
        d[lo:hi] = widths[lo:hi]
        self.d = d
        self.d2 = d * d
        self.sd = float(d.sum())
        self.sd2 = float(self.d2.sum())
        self.xb = float((x - xm) @ d) / self.sd if self.sd > 0 else 0.0


class _Geom:
    """Everything about one grid that does not depend on the flux, relative to the outer slice
    ``[a, b)`` (6500 Å to the end of the [S II] windows, or to 6625 Å without them)."""

    __slots__ = ("e", "ns", "side", "side_mask", "sum_dl", "l0", "l1", "lam_line", "binning", "h0", "h1", "lam_fwhm",
                 "nii", "nii_fit", "sii", "sii_fit", "W", "Q", "V")


def _geometry(w: np.ndarray, a: int, b: int, p: _Plan) -> _Geom | None:
    """The fast path's matrices for ``w[a:b]``; None where the general path must decide."""
    s = p.settings
    x = w[a:b]
    if x.size < 3 or not _isfinite(x).all() or not (np.diff(x) > 0).all():
        return None
    e = (w.searchsorted(p.edges) - a).tolist()
    m = b - a
    widths = _widths(w, a, b)
    g = _Geom()
    g.e = e
    side = np.zeros(m, dtype=bool)
    side[e[0]:e[1]] = True
    side[e[4]:e[5]] = True
    sf = _Fit(x, side)
    g.ns = sf.n
    g.side = sf
    g.side_mask = side
    l0, l1 = e[2], e[3]
    if sf.n < max(s.min_continuum_pixels, 3) or not sf.sxx > 0 or l1 - l0 < 3:
        return None
    g.l0, g.l1 = l0, l1
    dl = np.zeros(m)
    dl[l0:l1] = widths[l0:l1]
    g.sum_dl = float(dl.sum())
    g.lam_line = x[l0:l1].copy()
    g.binning = bin_pixels(g.lam_line, p.fwhm_inst_ha)
    g.h0, g.h1 = e[6], e[7]
    g.lam_fwhm = x[e[6]:e[7]].copy()
    cols_w = [sf.mean_w, sf.slope_w, dl]
    cols_q = [side.astype(np.float64)]
    cols_v = [dl * dl, sf.mean_w]
    zero = np.zeros(m)
    g.nii = g.nii_fit = g.sii = g.sii_fit = None
    if p.nii_ok and 0 <= e[8] and e[13] <= m:
        cm = np.zeros(m, dtype=bool)
        cm[e[8]:e[9]] = True
        cm[e[12]:e[13]] = True
        fit = _Fit(x, cm)
        if fit.n >= 4 and fit.sxx > 0 and e[11] > e[10]:
            g.nii_fit = fit
            g.nii = _Band(x, widths, e[10], e[11], fit.xm)
    if g.nii is not None:
        cols_w += [g.nii_fit.mean_w, g.nii_fit.slope_w, g.nii.d]
        cols_q += [g.nii_fit.mean_w * g.nii_fit.n]
        cols_v += [g.nii.d2]
    else:
        cols_w += [zero, zero, zero]
        cols_q += [zero]
        cols_v += [zero]
    if 0 <= e[14] and e[21] <= m and w[-1] >= p.sii_hi_edge:
        cm = np.zeros(m, dtype=bool)
        cm[e[14]:e[15]] = True
        cm[e[20]:e[21]] = True
        fit = _Fit(x, cm)
        if fit.n >= 4 and fit.sxx > 0 and e[17] > e[16] and e[19] > e[18]:
            g.sii_fit = fit
            g.sii = (_Band(x, widths, e[16], e[17], fit.xm), _Band(x, widths, e[18], e[19], fit.xm))
    if g.sii is not None:
        cols_w += [g.sii_fit.mean_w, g.sii_fit.slope_w, g.sii[0].d, g.sii[1].d]
        cols_q += [g.sii_fit.mean_w * g.sii_fit.n]
        cols_v += [g.sii[0].d2, g.sii[1].d2]
    else:
        cols_w += [zero, zero, zero, zero]
        cols_q += [zero]
        cols_v += [zero, zero]
    g.W = np.ascontiguousarray(np.column_stack(cols_w))
    g.Q = np.ascontiguousarray(np.column_stack(cols_q))
    g.V = np.ascontiguousarray(np.column_stack(cols_v))
    return g


_NO_GEOMETRY = object()


# ---------------------------------------------------------------------------------------------
# Helpers on small arrays (no Python loops over pixels)

def _widths(w: np.ndarray, a: int, b: int) -> np.ndarray:
    """Pixel widths ``(w[i+1] - w[i-1]) / 2`` for ``a <= i < b`` (one-sided at the array ends)."""
    n = w.size
    if a > 0 and b < n:
        return (w[a + 1:b + 1] - w[a - 1:b - 1]) * 0.5
    return np.gradient(w)[a:b] if n > 1 else np.ones(b - a)


def _fill_variance(f: np.ndarray, var: np.ndarray, ok: np.ndarray, need: np.ndarray,
                   reach: int, fallback_var: float, fc: float) -> np.ndarray:
    """Variance of pixels without ivar from their nearest neighbours with one (module docstring)."""
    n = f.size
    idx = np.arange(n)
    left = np.maximum.accumulate(np.where(ok, idx, -1))
    right = np.minimum.accumulate(np.where(ok, idx, n)[::-1])[::-1]
    has_l = (left >= 0) & (idx - left <= reach)
    has_r = (right < n) & (right - idx <= reach)
    li = np.where(has_l, left, 0)
    ri = np.where(has_r, right, 0)
    cnt = has_l.astype(np.float64) + has_r
    with np.errstate(invalid="ignore", divide="ignore"):
        vnb = (np.where(has_l, var[li], 0.0) + np.where(has_r, var[ri], 0.0)) / cnt
        fnb = (np.where(has_l, f[li], 0.0) + np.where(has_r, f[ri], 0.0)) / cnt
        scale = np.where(fnb > 0, np.maximum(1.0, f / fnb), 1.0)
        fb = fallback_var * (np.maximum(1.0, f / fc) if fc > 0 else 1.0)
    filled = np.where(cnt > 0, vnb * scale, fb)
    return np.where(need, filled, var)


def _parabola(x: np.ndarray, y: np.ndarray, i: int) -> float:
    """Vertex abscissa of the parabola through pixels i-1, i, i+1 (x[i] at an end or flat)."""
    if 0 < i < x.size - 1:
        y0, y1, y2 = float(y[i - 1]), float(y[i]), float(y[i + 1])
        den = y0 - 2 * y1 + y2
        if den != 0:
            t = 0.5 * (y0 - y2) / den  # in pixels, within +-0.5 for a true extremum
            if -1 < t < 1:
                x0, x1, x2 = float(x[i - 1]), float(x[i]), float(x[i + 1])
                return x1 + t * ((x2 - x0) * 0.5)
    return float(x[i])


def _crossing(x: np.ndarray, y: np.ndarray, i_in: int, i_out: int, level: float) -> float:
    """Linear-interpolated abscissa where y falls to ``level`` between two adjacent pixels."""
    y_in, y_out = float(y[i_in]), float(y[i_out])
    t = (y_in - level) / (y_in - y_out) if y_in != y_out else 0.5
    return float(x[i_in]) + t * (float(x[i_out]) - float(x[i_in]))


def _snr_from_var(var: np.ndarray, ok_side: np.ndarray, ns: int, fc: float) -> float | None:
    """``Fc / sqrt(mean variance)`` over the side-band pixels with a usable ivar, when they are at
    least half of the good side-band pixels (else None: the caller takes ``Fc / rms``)."""
    nso = int(np.count_nonzero(ok_side))
    if 2 * nso < ns or nso == 0:
        return None
    mv = float(var[ok_side].mean())
    return fc / math.sqrt(mv) if mv > 0 else None


def _forbidden_snr(flux_sum: float, band_sd: float, band_xb: float, pix_var: float, ym: float,
                   slope: float, rms2: float, nc: int, sxx: float, floor: float) -> float | None:
    """S/N of a line above a straight continuum (both paths use this formula).

    ``flux_sum = sum(F d)``, ``band_sd = sum(d)``, ``band_xb = sum((x - xm) d) / sum(d)``,
    ``pix_var = sum(sigma^2 d^2)``; the continuum ``ym + slope (x - xm)`` fitted to ``nc``
    pixels with scatter ``rms2`` and ``sxx = sum((x - xm)^2)``. The error adds the pixel noise,
    the fitted line's error at the band and ``floor`` x continuum x band width (fully correlated).
    """
    if not band_sd > 0:
        return None
    cb = ym + slope * band_xb
    flux = flux_sum - band_sd * cb
    var = pix_var + rms2 * (1.0 / nc + band_xb * band_xb / sxx) * band_sd * band_sd \
        + (floor * cb * band_sd) ** 2
    if not var > 0:
        return None
    return flux / math.sqrt(var)


def _line_snr(w: np.ndarray, f: np.ndarray, good: np.ndarray, var: np.ndarray | None,
              dw: np.ndarray, cont: tuple[tuple[int, int], tuple[int, int]],
              bands: tuple[tuple[int, int], ...], floor: float) -> float | None:
    """General path: max over ``bands`` of the S/N above a straight line through ``cont``.

    ``var`` None: the pixel noise is the continuum windows' scatter about the line. Bad pixels
    (``good`` False) are left out of fit and bands.
    """
    (a0, a1), (b0, b1) = cont
    cm = np.zeros(f.size, dtype=bool)
    cm[a0:a1] = True
    cm[b0:b1] = True
    cm &= good
    nc = int(np.count_nonzero(cm))
    if nc < 4:
        return None
    x, y = w[cm], f[cm]
    xm, ym = float(x.mean()), float(y.mean())
    dx = x - xm
    sxx = float(dx @ dx)
    if not sxx > 0:
        return None
    slope = float(dx @ (y - ym)) / sxx
    res = y - ym - slope * dx
    rms2 = float(res @ res) / (nc - 2)
    best = None
    for l0, l1 in bands:
        g = good[l0:l1]
        if not g.any():
            continue
        d = dw[l0:l1][g]
        sd = float(d.sum())
        xb = float((w[l0:l1][g] - xm) @ d) / sd
        if var is None:
            pv = rms2 * float(d @ d)
        else:
            pv = float(var[l0:l1][g] @ (d * d))
        snr = _forbidden_snr(float(f[l0:l1][g] @ d), sd, xb, pv, ym, slope, rms2, nc, sxx, floor)
        if snr is not None and (best is None or snr > best):
            best = snr
    return best


# ---------------------------------------------------------------------------------------------

def bin_pixels(lam: np.ndarray, fwhm_inst: float) -> int:
    """Pixels per profile bin: about half an instrumental FWHM (1 for LAMOST LRS, 3 for MRS)."""
    n = lam.size
    if n < 2:
        return 1
    per_fwhm = fwhm_inst * (n - 1) / (float(lam[-1]) - float(lam[0]))
    return max(1, int(round(per_fwhm / 2.0)))


def classify_profile(lam: np.ndarray, r: np.ndarray, sig: np.ndarray, ew_sig: float | None,
                     settings: HalphaSettings = DEFAULT_SETTINGS,
                     fwhm_inst: float = HA_VAC / 1800.0, binning: int = 1) -> tuple[str, int, dict[str, Any]]:
    """Classify the H-alpha profile from the line band's good pixels.

    Parameters
    ----------
    lam : ndarray
        Wavelengths (Å, vacuum, ascending) of the good pixels of the line band (at least 3).
    r : ndarray
        ``F/Fc - 1`` on ``lam`` (positive = above the continuum).
    sig : ndarray
        Noise of ``r`` in continuum units, with the continuum's error and ``sys_floor`` added in
        quadrature.
    ew_sig : float or None
        ``ha_ew / ha_ew_err``.
    settings : HalphaSettings
    fwhm_inst : float
        Instrumental FWHM at H-alpha, Å (``ha_center / R``).
    binning : int
        Pixels averaged per bin before the rules apply (:func:`bin_pixels`; 1: none).

    Returns
    -------
    profile : str
        One of :data:`PROFILES`.
    peak : int
        Index into ``r`` of the emission peak (the highest pixel of the bin of the argmax; for a
        ``filled`` profile without emission above the continuum, of its core).
    info : dict
        ``sep_kms`` and ``peaks`` (indices into ``r``) for a ``double``, ``pcyg_kms`` for a
        ``pcygni``, ``base`` (the trough level) for a ``filled`` profile.

    Notes
    -----
    A well-sampled spectrum (MRS: ~6 pixels per instrumental FWHM) is first averaged in bins of
    about half a FWHM, so that the rules, written in units of the noise, see independent
    resolution elements as at LAMOST LRS (~2.4 pixels per FWHM, no binning): without it, a
    single-pixel noise spike between two noise minima of a broad absorption trough passed for a
    ``filled`` core in a third of synthetic MRS spectra at S/N 10-20 (6 % with it; 0 at S/N 50).
    A bin's noise is the pixels' averaged down plus ``sys_floor`` in full: the floor stands for
    continuum structure (telluric water lines, blends), which binning does not average away; with
    it averaged too, 3 of the real F5 star's 23 good MRS spectra at S/N 22-144 had a ``filled``
    core (1 without).

    With ``z = r / sig`` and ``ip = argmax(r)``:

    1. an emission component exists when ``z[ip] >= k_emission``, or when ``ew_sig <= -k_ew``
       and ``r[ip] > 0`` (broad, low emission);
    2. ``double``: emission, and two interior local maxima with ``z >= k_emission``, at least
       ``double_min_sep_fwhm`` instrumental FWHM apart, the lower one rising above the lowest
       pixel between them by ``k_dip`` (in the two pixels' combined noise). ``sep_kms`` is the
       difference of the parabola-refined peak positions;
    3. else, with emission: the lowest pixel on the blue side and on the red side of ``ip`` is a
       trough when its ``z <= -k_absorption``: troughs on both sides -> ``filled``, on one side
       -> ``pcygni`` (``pcyg_kms``: parabola-refined trough, negative = blueshifted; positive is
       an inverse P Cygni), none -> ``single``;
    4. without emission: ``filled`` when some pixel within ``filled_max_offset_kms`` of
       ``ha_center`` rises by ``k_dip * sqrt(2) * sig`` above the higher of the minima on its two
       sides, both of which are troughs (``<= -k_absorption * sig``, ``sig`` of that pixel):
       a core partly filling an absorption line. Else ``absorption`` when ``ew_sig >= k_ew`` or
       some pixel has ``z <= -k_absorption``; else ``none``.

    A noisy flat spectrum is ``none`` unless a pixel deviates by 4 sigma or the EW by 4 errors
    (none in 800 synthetic LRS spectra at S/N 5-500; 2 in 800 MRS ones).
    """
    k = int(binning)
    nb = r.size // k
    if k <= 1 or nb < 3:
        return _classify(lam, r, sig, ew_sig, settings, fwhm_inst)
    m = nb * k
    lb = lam[:m].reshape(nb, k).mean(axis=1)
    rb = r[:m].reshape(nb, k).mean(axis=1)
    # the pixel noise averages down in a bin, the systematic floor (continuum structure) does not
    floor2 = settings.sys_floor ** 2
    sb = np.sqrt((sig[:m] * sig[:m]).reshape(nb, k).mean(axis=1) / k + floor2 * (1.0 - 1.0 / k))
    profile, ib, info = _classify(lb, rb, sb, ew_sig, settings, fwhm_inst)

    def raw(i: int) -> int:
        return i * k + int(r[i * k:(i + 1) * k].argmax())

    if "peaks" in info:
        info["peaks"] = (raw(info["peaks"][0]), raw(info["peaks"][1]))
    return profile, raw(ib), info


def _classify(lam: np.ndarray, r: np.ndarray, sig: np.ndarray, ew_sig: float | None,
              settings: HalphaSettings = DEFAULT_SETTINGS,
              fwhm_inst: float = HA_VAC / 1800.0) -> tuple[str, int, dict[str, Any]]:
    """:func:`classify_profile` on (binned) arrays: the rules of its Notes."""
    s = settings
    n = r.size
    z = r / sig
    ip = int(r.argmax())
    zmax = float(z[ip])
    info: dict[str, Any] = {}
    em = zmax >= s.k_emission or (ew_sig is not None and ew_sig <= -s.k_ew and r[ip] > 0)
    if em:
        inner = r[1:-1]
        lm = np.flatnonzero((inner > r[:-2]) & (inner >= r[2:]) & (z[1:-1] >= s.k_emission)) + 1
        if lm.size >= 2:
            top = lm[np.argsort(r[lm])[-2:]]
            a, b = int(top.min()), int(top.max())
            if lam[b] - lam[a] >= s.double_min_sep_fwhm * fwhm_inst:
                j = a + int(r[a:b + 1].argmin())
                lo = a if r[a] <= r[b] else b
                if (r[lo] - r[j]) / math.hypot(sig[lo], sig[j]) >= s.k_dip:
                    la, lb = _parabola(lam, r, a), _parabola(lam, r, b)
                    info["sep_kms"] = (lb - la) / s.ha_center * C_KMS
                    info["peaks"] = (a, b)
                    return "double", ip, info
        left_abs = right_abs = False
        il = ir = -1
        if ip > 0:
            il = int(r[:ip].argmin())
            left_abs = z[il] <= -s.k_absorption
        if ip < n - 1:
            ir = ip + 1 + int(r[ip + 1:].argmin())
            right_abs = z[ir] <= -s.k_absorption
        if left_abs and right_abs:
            info["base"] = float(max(r[il], r[ir]))
            return "filled", ip, info
        if left_abs or right_abs:
            it = il if left_abs else ir
            info["pcyg_kms"] = (_parabola(lam, -r, it) - s.ha_center) / s.ha_center * C_KMS
            return "pcygni", ip, info
        return "single", ip, info
    zmin = float(_min(z))
    if zmin <= -s.k_absorption:  # a filled core needs troughs
        left = np.minimum.accumulate(r)[:-2]            # min of r[:i] for i = 1..n-2
        right = np.minimum.accumulate(r[::-1])[-3::-1]  # min of r[i+1:]
        base = np.maximum(left, right)
        si = sig[1:-1]
        cand = ((r[1:-1] - base) >= (s.k_dip * _SQRT2) * si) & (base <= (-s.k_absorption) * si)
        if cand.any():
            cand &= np.abs(lam[1:-1] - s.ha_center) <= s.filled_max_offset_kms / C_KMS * s.ha_center
            if cand.any():
                k = int(np.argmax(np.where(cand, (r[1:-1] - base) / si, -_INF)))
                info["base"] = float(base[k])
                return "filled", k + 1, info
    if (ew_sig is not None and ew_sig >= s.k_ew) or zmin <= -s.k_absorption:
        return "absorption", ip, info
    return "none", ip, info


def _fwhm(x: np.ndarray, y: np.ndarray, lam: np.ndarray, rp: np.ndarray, profile: str, ipk: int,
          info: dict[str, Any]) -> float | None:
    """FWHM (Å) of the emission component; ``x, y``: wavelength and ``F/Fc - 1`` of the good
    pixels of the FWHM window (which contains ``lam``)."""
    base = info.get("base", 0.0) if profile == "filled" else 0.0
    top = float(rp[ipk])
    if not top > base:
        return None
    half = base + 0.5 * (top - base)
    ia = ib = int(np.searchsorted(x, lam[ipk]))
    if profile == "double":  # the outermost crossings: start from each peak above half maximum
        a, b = info["peaks"]
        if rp[a] > half:
            ia = int(np.searchsorted(x, lam[a]))
        if rp[b] > half:
            ib = int(np.searchsorted(x, lam[b]))
    below = np.flatnonzero(y < half)
    k = int(np.searchsorted(below, ia))  # below[k - 1] < ia
    if k == 0:
        return None
    jl = int(below[k - 1])
    k2 = int(np.searchsorted(below, ib, side="right"))  # below[k2] > ib
    if k2 >= below.size:
        return None
    jr = int(below[k2])
    return _crossing(x, y, jr - 1, jr, half) - _crossing(x, y, jl + 1, jl, half)


def _null(flag: str, **extra: Any) -> HalphaResult:
    return HalphaResult(ha_flag=flag, **extra)


def measure_halpha(wavelength: np.ndarray, flux: np.ndarray, ivar: np.ndarray | None = None,
                   andmask: np.ndarray | None = None, *, resolving_power: float = 1800.0,
                   settings: HalphaSettings | None = None) -> HalphaResult:
    """Measure H-alpha (EW, profile, nebular lines) on one spectrum in its own sampling.

    Parameters
    ----------
    wavelength : ndarray
        Ascending wavelengths, Å, **vacuum** (convert air first, e.g.
        :func:`spectraldl.adapt.air_to_vacuum`).
    flux : ndarray
        Flux on ``wavelength`` (any units, not normalised; any float dtype or byte order).
    ivar : ndarray, optional
        Inverse variance of ``flux``; ``ivar <= 0`` or non-finite marks a pixel without a noise
        estimate, not a bad pixel (its noise: module docstring). None: noise from the continuum
        scatter.
    andmask : ndarray, optional
        LAMOST AND mask; pixels with a non-zero mask are bad.
    resolving_power : float
        R of the spectrum (LAMOST LRS ~1800, MRS ~7500): sets the forbidden-line bands, the
        narrowness test of ``nebular`` and the minimum separation of a ``double``.
    settings : HalphaSettings, optional
        Defaults: :data:`DEFAULT_SETTINGS`.

    Returns
    -------
    HalphaResult
        ``.as_row()`` gives the table columns. Never raises for a bad spectrum: nulls and
        ``ha_flag`` instead.

    Notes
    -----
    [N II] 6585.27 Å is integrated over its centre +- ``nebular_band_fwhm`` instrumental FWHM
    (``lambda / R``) above a least-squares straight line through two windows of
    ``nebular_cont_fwhm`` FWHM beside the band; [S II] 6718.29 and 6732.67 Å likewise, with one
    line through the window blue of 6718 and the one red of 6733; ``sii_snr`` is the larger S/N
    of the two. The error adds the pixel noise (ivar, filled as for H-alpha; without ivar the
    windows' scatter), the fitted line's error at the band, and ``line_sys_floor`` x continuum x
    band width (fully correlated: continuum structure, not noise, limits bright spectra). Bad
    pixels in a band are left out (the flux is then underestimated), and so are pixels whose flux
    is exactly 0 there (no data written: seen beyond 6732 Å in a real DR1 file, where it faked
    a 9-sigma [S II] line).

    Spectra whose pixels from 6500 Å to the [S II] windows are all good (finite, non-zero flux,
    AND mask 0) take a fast path: everything that depends on the wavelengths only is computed once per grid
    (keyed by the grid's values there) and the sums become one matrix product. Others take the
    general path; both give the same numbers.
    """
    s = settings if settings is not None else DEFAULT_SETTINGS
    try:
        w = np.asarray(wavelength, dtype=np.float64)
        R = float(resolving_power)
        n = w.size
        if w.ndim == 1 and n >= 3 and w[0] <= s.blue_start and w[-1] >= s.red_stop \
                and R > 0 and R < _INF:
            res = _measure_fast(w, flux, ivar, andmask, _plan(s, R))
            if res is not None:
                return res
        return _measure_general(w, flux, ivar, andmask, R, s)
    except Exception as exc:  # a bug must not kill an ingest task; the flag names it
        return _null(f"internal_error:{type(exc).__name__}")


def _measure_fast(w: np.ndarray, flux: Any, ivar: Any, andmask: Any, p: _Plan) -> HalphaResult | None:
    """The common case; None hands the spectrum to :func:`_measure_general`."""
    s = p.settings
    n = w.size
    if flux.shape != (n,) or (ivar is not None and ivar.shape != (n,)) \
            or (andmask is not None and andmask.shape != (n,)):
        return None
    a, b, g = _grid_geometry(w, n, p)
    if g is _NO_GEOMETRY:
        return None
    if andmask is not None and np.count_nonzero(andmask[a:b]):
        return None
    f = np.asarray(flux[a:b], dtype=np.float64)
    iv = None
    if ivar is not None:
        iv = np.asarray(ivar[a:b], dtype=np.float64)
    # flux exactly 0 (no data written) or not finite somewhere: general path
    if np.count_nonzero(f) != f.size or not _all(_isfinite(f)):
        return None
    lin = (f @ g.W).tolist()
    fc = lin[0]
    if not fc > 0:
        return None
    quad = (f * f) @ g.Q
    side = g.side
    ns = side.n
    slope = lin[1]
    rms2 = max(float(quad[0]) - ns * fc * fc - slope * slope * side.sxx, 0.0) / (ns - 2)
    if not rms2 < _INF:  # squares overflowed (flux ~1e154): the general path's residuals do not
        return None
    snr = None
    if iv is None:
        var = np.maximum(f * (1.0 / fc), 1.0) * rms2
        vs = (var @ g.V).tolist()
    elif _min(iv) > 0 and _max(iv) < _INF:
        var = 1.0 / iv
        vs = (var @ g.V).tolist()
        snr = fc / math.sqrt(vs[1]) if vs[1] > 0 else None  # column 1: mean over the side bands
    else:  # pixels without ivar: from their neighbours (module docstring)
        ok = (iv > 0) & (iv < _INF)
        var = _fill_variance(f, 1.0 / np.where(ok, iv, 1.0), ok, ~ok, s.ivar_fill_pixels, rms2, fc)
        vs = (var @ g.V).tolist()
        snr = _snr_from_var(var, ok & g.side_mask, ns, fc)
    if snr is None:
        snr = fc / math.sqrt(rms2) if rms2 > 0 else None
    # equivalent width
    fc2 = fc * fc
    A = lin[2] / fc
    ew = g.sum_dl - A
    fc_err2 = rms2 / ns
    ew_var = vs[0] / fc2 + A * A * fc_err2 / fc2
    ew_err = math.sqrt(ew_var)
    ew_sig = ew / ew_err if ew_err > 0 else None
    l0, l1 = g.l0, g.l1
    rp = f[l0:l1] * (1.0 / fc) - 1.0
    peak = float(_max(rp)) + 1.0
    sp = np.sqrt(var[l0:l1] * (1.0 / fc2) + (fc_err2 / fc2 + s.sys_floor ** 2))
    lam = g.lam_line
    profile, ipk, info = classify_profile(lam, rp, sp, ew_sig, s, p.fwhm_inst_ha, g.binning)
    flags = []
    fwhm = None
    if profile in _EMISSION:
        fwhm = _fwhm(g.lam_fwhm, f[g.h0:g.h1] * (1.0 / fc) - 1.0, lam, rp, profile, ipk, info)
        if fwhm is None:
            flags.append("fwhm_unbounded")
    floor = s.line_sys_floor
    nii = sii = None
    if g.nii is not None:
        ft, bd = g.nii_fit, g.nii
        ym, sl = lin[3], lin[4]
        r2 = max(float(quad[1]) - ft.n * ym * ym - sl * sl * ft.sxx, 0.0) / (ft.n - 2)
        pv = vs[2] if iv is not None else r2 * bd.sd2
        nii = _forbidden_snr(lin[5], bd.sd, bd.xb, pv, ym, sl, r2, ft.n, ft.sxx, floor)
    if nii is None:
        flags.append("nii_not_measured")
    if g.sii is not None:
        ft = g.sii_fit
        ym, sl = lin[6], lin[7]
        r2 = max(float(quad[2]) - ft.n * ym * ym - sl * sl * ft.sxx, 0.0) / (ft.n - 2)
        for k, bd in enumerate(g.sii):
            pv = vs[3 + k] if iv is not None else r2 * bd.sd2
            x = _forbidden_snr(lin[8 + k], bd.sd, bd.xb, pv, ym, sl, r2, ft.n, ft.sxx, floor)
            if x is not None and (sii is None or x > sii):
                sii = x
    if sii is None:
        flags.append("sii_not_measured")
    return _result(ew, ew_err, peak, fwhm, snr, profile, info, nii, sii, flags, p)


_EMISSION = frozenset(("single", "double", "pcygni", "filled"))


def _grid_geometry(w: np.ndarray, n: int, p: _Plan) -> tuple[int, int, Any]:
    """``(a, b, geometry)`` of the fast path for grid ``w``: the outer slice ``[a, b)`` and its
    :class:`_Geom` (or :data:`_NO_GEOMETRY`), remembered by the grid's values there.

    A read-only grid that owns its memory (the LAMOST readers share one such array per
    wavelength solution between files) is also remembered by identity, which spares the search
    and the key; its values cannot change while it is alive, and the weak reference tells when it
    is gone and its id may be reused.
    """
    shared = not w.flags.writeable and w.base is None
    if shared:
        hit = p.shared.get(id(w))
        if hit is not None and hit[0]() is w:
            return hit[1], hit[2], hit[3]
    o = w.searchsorted(p.outer).tolist()
    a = o[0]
    b = o[2] if w[-1] >= p.sii_hi_edge else o[1]
    key = (a > 0, b < n, w[a - 1 if a else 0:b + 1].tobytes())
    g = p.geoms.get(key)
    if g is None:
        g = _geometry(w, a, b, p) or _NO_GEOMETRY
        if len(p.geoms) > 256:
            p.geoms.clear()
        p.geoms[key] = g
    if shared:
        if len(p.shared) > 256:
            p.shared.clear()
        p.shared[id(w)] = (weakref.ref(w), a, b, g)
    return a, b, g


def _result(ew: float, ew_err: float, peak: float, fwhm: float | None, snr: float | None,
            profile: str | None, info: dict[str, Any], nii: float | None, sii: float | None,
            flags: list[str], p: _Plan) -> HalphaResult:
    forb = nii if sii is None else sii if nii is None else max(nii, sii)
    # forbidden lines in emission, and no H-alpha emission broader than the instrument's profile
    # (a narrow residual, or one too weak to rise out of the star's absorption)
    nebular = forb is not None and forb >= p.settings.nebular_snr and (
        fwhm <= p.fwhm_max if fwhm is not None else profile not in _EMISSION)
    # the frozen dataclass filled without its __init__ (twelve object.__setattr__ calls)
    r = _new_result(HalphaResult)
    r.__dict__.update(ha_ew=ew, ha_ew_err=ew_err, ha_peak=peak, ha_fwhm=fwhm, ha_snr=snr,
                      ha_profile=profile, ha_sep_kms=info.get("sep_kms"),
                      ha_pcyg_kms=info.get("pcyg_kms"), nii_snr=nii, sii_snr=sii,
                      nebular=nebular, ha_flag=",".join(flags) if flags else None)
    return r


_new_result = object.__new__


def _measure_general(w: np.ndarray, flux: Any, ivar: Any, andmask: Any, R: float,
                     s: HalphaSettings) -> HalphaResult:
    """Any spectrum: masks, pixels without ivar, odd grids. Same formulas as the fast path."""
    n = w.size
    if w.ndim != 1 or n < 3:
        return _null("bad_wavelength")
    if np.shape(flux) != (n,) or (ivar is not None and np.shape(ivar) != (n,)) \
            or (andmask is not None and np.shape(andmask) != (n,)):
        return _null("bad_shape")
    if not (w[0] <= s.blue_start and w[-1] >= s.red_stop):  # NaN ends fail too
        return _null("band_not_covered")
    if not (R > 0 and math.isfinite(R)):
        return _null("bad_resolving_power")
    p = _plan(s, R)
    e = w.searchsorted(p.edges).tolist()
    r0, r1 = e[0], e[5]
    sii_ok = bool(w[0] <= p.sii_lo_edge and w[-1] >= p.sii_hi_edge and e[14] >= r0)
    rz = max(e[21], r1) if sii_ok else r1  # the region: 6500 Å to the end of the [S II] windows
    wa = w[r0:rz]
    if not (np.diff(wa) > 0).all() or not _isfinite(wa[0]) or not _isfinite(wa[-1]):
        return _null("bad_wavelength")
    fa = np.asarray(flux[r0:rz], dtype=np.float64)
    gooda = _isfinite(fa)
    if andmask is not None:
        gooda &= np.asarray(andmask[r0:rz]) == 0
    nr = r1 - r0
    ww, f, good = wa[:nr], fa[:nr], gooda[:nr]
    flags: list[str] = []

    # continuum: the two side bands
    b1, c0 = e[1] - r0, e[4] - r0
    l0, l1 = e[2] - r0, e[3] - r0
    side = good.copy()
    side[b1:c0] = False
    ns = int(np.count_nonzero(side))
    if ns < max(s.min_continuum_pixels, 3):
        return _null("no_good_pixels_continuum")
    xs, ys = ww[side], f[side]
    fc = float(ys.mean())
    if not fc > 0:
        return _null("continuum_not_positive")
    xm = float(xs.mean())
    dx = xs - xm
    sxx = float(dx @ dx)
    slope = float(dx @ (ys - fc)) / sxx if sxx > 0 else 0.0
    res = ys - fc - slope * dx
    rms2 = float(res @ res) / (ns - 2)
    fc2 = fc * fc
    fc_err2 = rms2 / ns

    # pixel variances over the whole region
    snr = None
    vara = None
    if ivar is not None:
        iva = np.asarray(ivar[r0:rz], dtype=np.float64)
        oka = (iva > 0) & (iva < _INF) & gooda
        vara = 1.0 / np.where(oka, iva, 1.0)  # placeholder 1 where no ivar: filled below if good
        need = gooda & ~oka
        if need.any():
            vara = _fill_variance(fa, vara, oka, need, s.ivar_fill_pixels, rms2, fc)
        var = vara[:nr]
        snr = _snr_from_var(var, oka[:nr] & side, ns, fc)
    else:
        var = np.maximum(f * (1.0 / fc), 1.0) * rms2
    if snr is None:
        snr = fc / math.sqrt(rms2) if rms2 > 0 else None

    # equivalent width over the line band
    gl = good[l0:l1]
    nl = l1 - l0
    ngl = int(np.count_nonzero(gl))
    if nl <= 0 or ngl == 0:
        return _null("no_good_pixels_line", ha_snr=snr)
    if ngl < s.min_line_fraction * nl:
        return _null("too_few_good_pixels_line", ha_snr=snr)
    fl = f[l0:l1]
    vl = var[l0:l1]
    wl = ww[l0:l1]
    if ngl < nl:
        fl = np.interp(wl, wl[gl], fl[gl])
        vl = np.interp(wl, wl[gl], vl[gl])
    dl = _widths(w, r0 + l0, r0 + l1)
    A = float(fl @ dl) / fc
    ew = float(dl.sum()) - A
    ew_var = float(vl @ (dl * dl)) / fc2 + A * A * fc_err2 / fc2
    ew_err = math.sqrt(ew_var)
    ew_sig = ew / ew_err if ew_err > 0 else None
    peak = float(fl.max()) / fc

    # profile on the good pixels of the line band
    lam = wl[gl]
    rp = f[l0:l1][gl] * (1.0 / fc) - 1.0
    sp = np.sqrt(var[l0:l1][gl] * (1.0 / fc2) + (fc_err2 / fc2 + s.sys_floor ** 2))
    profile = None
    info: dict[str, Any] = {}
    fwhm = None
    if rp.size >= 3 and _isfinite(sp).all():
        profile, ipk, info = classify_profile(lam, rp, sp, ew_sig, s, p.fwhm_inst_ha,
                                              bin_pixels(wl, p.fwhm_inst_ha))
        if profile in _EMISSION:
            h0, h1 = e[6] - r0, e[7] - r0
            gh = good[h0:h1]
            fwhm = _fwhm(ww[h0:h1][gh], f[h0:h1][gh] * (1.0 / fc) - 1.0, lam, rp, profile, ipk, info)
            if fwhm is None:
                flags.append("fwhm_unbounded")
    else:
        flags.append("too_few_pixels_profile")

    # forbidden lines (pixels with flux exactly 0 left out), slices of the region
    floor = s.line_sys_floor
    nii = sii = None
    if p.nii_ok and e[13] <= r1 and e[8] >= r0:
        a0, a1 = e[8] - r0, e[13] - r0
        gn = good[a0:a1] & (f[a0:a1] != 0)
        nii = _line_snr(ww[a0:a1], f[a0:a1], gn, vara[a0:a1] if vara is not None else None,
                        _widths(w, e[8], e[13]), ((0, e[9] - e[8]), (e[12] - e[8], e[13] - e[8])),
                        ((e[10] - e[8], e[11] - e[8]),), floor)
    if nii is None:
        flags.append("nii_not_measured")
    if sii_ok:
        q0, q1 = e[14] - r0, e[21] - r0
        fq = fa[q0:q1]
        sii = _line_snr(wa[q0:q1], fq, gooda[q0:q1] & (fq != 0),
                        vara[q0:q1] if vara is not None else None, _widths(w, e[14], e[21]),
                        ((0, e[15] - e[14]), (e[20] - e[14], q1 - q0)),
                        ((e[16] - e[14], e[17] - e[14]), (e[18] - e[14], e[19] - e[14])), floor)
    if sii is None:
        flags.append("sii_not_measured")
    return _result(ew, ew_err, peak, fwhm, snr, profile, info, nii, sii, flags, p)


def measure_spectrum(spectrum: Any, resolving_power: float | None = None,
                     settings: HalphaSettings | None = None) -> HalphaResult:
    """:func:`measure_halpha` on a :class:`~spectraldl.io.spectrum.Spectrum`.

    Parameters
    ----------
    spectrum : Spectrum
        Air wavelengths (Ondřejov) are converted to vacuum first.
    resolving_power : float, optional
        Default: 7500 for ``lamost_mrs``, 13000 for Ondřejov formats, else 1800.
    settings : HalphaSettings, optional

    Returns
    -------
    HalphaResult
    """
    fmt = getattr(spectrum, "format", "") or ""
    if resolving_power is None:
        resolving_power = 7500.0 if fmt == "lamost_mrs" else 13000.0 if fmt.startswith("ondrejov") else 1800.0
    w = spectrum.wavelength
    if getattr(spectrum, "medium", "vacuum") == "air":
        from .adapt import air_to_vacuum
        w = air_to_vacuum(np.asarray(w, dtype=np.float64))
    return measure_halpha(w, spectrum.flux, spectrum.ivar, spectrum.andmask,
                          resolving_power=resolving_power, settings=settings)


__all__ = ["HalphaSettings", "HalphaResult", "DEFAULT_SETTINGS", "HALPHA_COLUMNS", "PROFILES",
           "measure_halpha", "measure_spectrum", "classify_profile", "HA_VAC", "NII_VAC", "SII_VAC",
           "C_KMS"]
