"""The default preprocessing of CONVENTIONS.md: one pure-numpy function for archive and training set.

1. good pixels: finite flux and ``andmask == 0`` where the format has one (never ``ivar > 0``:
   LAMOST zeroes ivar on strong emission peaks, the very signal sought);
2. the window 6519-6732 Å (vacuum); fewer than ``min_valid_fraction`` good pixels in it:
   ``too_few_valid_pixels``;
3. continuum: least-squares straight line through the good pixels of the window outside the
   H-alpha core 6550-6578 Å; flux divided by it; continuum <= 0 anywhere, or flux zero across
   the whole window (a dead fibre, whatever its mask says): ``no_signal``;
4. linear interpolation of the good pixels onto ``n_points`` evenly spaced wavelengths;
5. z-score (or min-max to [-1, 1]); zero variance: ``no_signal``.

Every setting lives in :class:`PreprocessSettings` (from ``[preprocess]`` in conf/), and
:meth:`PreprocessSettings.fingerprint` is the ``preprocess_id`` stored beside every vector, so a
model is never applied to vectors made another way.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import weakref
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .errors import UsageError
from .io.errors import SpectrumError


@dataclass(frozen=True)
class PreprocessSettings:
    """Settings of :func:`preprocess`; the defaults are CONVENTIONS.md's."""

    window_start: float = 6519.0
    window_stop: float = 6732.0
    n_points: int = 140
    core_start: float = 6550.0
    core_stop: float = 6578.0
    min_valid_fraction: float = 0.5
    continuum: str = "linear"
    normalisation: str = "zscore"

    def __post_init__(self) -> None:
        if not self.window_start < self.core_start < self.core_stop < self.window_stop:
            raise UsageError("preprocess: need window_start < core_start < core_stop < window_stop")
        if self.n_points < 2:
            raise UsageError("preprocess: n_points must be >= 2")
        if not 0 < self.min_valid_fraction <= 1:
            raise UsageError("preprocess: min_valid_fraction must be in (0, 1]")
        if self.continuum not in ("linear", "none"):
            raise UsageError(f"preprocess: unknown continuum {self.continuum!r}")
        if self.normalisation not in ("zscore", "minmax"):
            raise UsageError(f"preprocess: unknown normalisation {self.normalisation!r}")

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> "PreprocessSettings":
        return cls(**{k: section[k] for k in cls.__dataclass_fields__ if k in section})

    @property
    def grid(self) -> np.ndarray:
        """The output wavelengths (Å, vacuum), read-only and computed once per settings."""
        return _grid(self.window_start, self.window_stop, self.n_points)

    def fingerprint(self) -> str:
        """``preprocess_id``: a short hash of every setting (and of this function's version)."""
        return _fingerprint(self)


@functools.lru_cache(maxsize=16)
def _fingerprint(settings: PreprocessSettings) -> str:
    blob = json.dumps({"v": 1, **asdict(settings)}, sort_keys=True).encode()
    return "pp1-" + hashlib.sha256(blob).hexdigest()[:12]


@functools.lru_cache(maxsize=16)
def _grid(start: float, stop: float, n: int) -> np.ndarray:
    g = np.linspace(start, stop, n)
    g.flags.writeable = False
    return g


DEFAULT_SETTINGS = PreprocessSettings()

_sum = np.add.reduce
_min = np.minimum.reduce


def _window(w: np.ndarray, s: PreprocessSettings) -> tuple[int, int, np.ndarray, tuple | None]:
    """``(i0, i1, side, fit)``: the pixels with ``window_start <= w <= window_stop``, which of
    them lie outside the H-alpha core, and for a shared grid :func:`_side_fit`. Remembered for
    the read-only wavelength grids the LAMOST readers share between files (a dozen distinct grids
    cover a release), computed otherwise (``fit`` None)."""
    key = (id(w), id(s))  # ids, not hashes: hashing the settings costs more than the search
    hit = _WINDOWS.get(key)
    if hit is not None and hit[0]() is w and hit[1] is s:
        return hit[2], hit[3], hit[4], hit[5]
    i0 = int(w.searchsorted(s.window_start, side="left"))
    i1 = int(w.searchsorted(s.window_stop, side="right"))
    ww = w[i0:i1]
    side = (ww < s.core_start) | (ww > s.core_stop)
    fit = None
    if not w.flags.writeable:  # a shared grid: its values cannot change under the cache
        if len(_WINDOWS) > 1024:
            _WINDOWS.clear()
        side.flags.writeable = False
        fit = _side_fit(ww, side)
        _WINDOWS[key] = (weakref.ref(w), s, i0, i1, side, fit)  # holds s: its id stays its own
    return i0, i1, side, fit


def _side_fit(ww: np.ndarray, side: np.ndarray) -> tuple | None:
    """What the continuum fit of a window whose pixels are all good takes from the grid alone:
    ``(nside, xm, dx, sxx, ww - xm)``, each computed as :func:`preprocess` computes it (so the
    results are the same bits); None with fewer than 2 side pixels."""
    nside = np.count_nonzero(side)
    if nside < 2:
        return None
    x = ww[side]
    xm = _sum(x) / nside
    dx = x - xm
    dww = ww - xm
    dx.flags.writeable = dww.flags.writeable = False
    return nside, xm, dx, float(dx @ dx), dww


_WINDOWS: dict[tuple[int, int], tuple[Any, PreprocessSettings, int, int, np.ndarray, tuple | None]] = {}


def preprocess(wavelength: np.ndarray, flux: np.ndarray, good: np.ndarray | None = None,
               settings: PreprocessSettings = DEFAULT_SETTINGS, name: str | None = None,
               andmask: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Turn one spectrum into the fixed-length vector the networks read.

    Parameters
    ----------
    wavelength : ndarray
        Ascending wavelengths in Å, vacuum (convert air first: :mod:`spectraldl.adapt`).
    flux : ndarray
        Flux on ``wavelength``.
    good : ndarray of bool, optional
        Usable pixels (``Spectrum.good``); default: finite flux.
    settings : PreprocessSettings
    name : str, optional
        File name for error messages.
    andmask : ndarray, optional
        With ``good`` None: pixels whose mask is non-zero are bad, as in ``Spectrum.good``, but
        looked at only inside the window (the ingest passes the LAMOST AND mask this way).

    Returns
    -------
    vector : ndarray of float32, shape (n_points,)
    valid_fraction : float
        Fraction of the window's pixels that were good.

    Raises
    ------
    SpectrumError
        ``window_not_covered``, ``too_few_valid_pixels`` or ``no_signal``.
    """
    # Written for small windows (~140 pixels): numpy's per-call overhead, not arithmetic, is the
    # cost, so the flux is converted only inside the window and the reductions call the ufuncs
    # directly (``x.mean()`` and ``x.std()`` go through several Python layers; the results are
    # the same bits).
    s = settings
    w = np.asarray(wavelength, dtype=np.float64)
    if w.size < 2 or w[0] > s.window_start or w[-1] < s.window_stop:
        lo, hi = (w[0], w[-1]) if w.size else (np.nan, np.nan)
        raise SpectrumError("window_not_covered", name,
                            f"{lo:.1f}-{hi:.1f} Å does not cover {s.window_start}-{s.window_stop} Å")
    i0, i1, side_w, fit = _window(w, s)
    ww = w[i0:i1]
    fw = np.asarray(flux[i0:i1], dtype=np.float64)
    finite = np.isfinite(fw)
    if not np.count_nonzero((fw != 0) & finite):  # no finite non-zero flux: a dead fibre, not a masking question
        raise SpectrumError("no_signal", name, "no finite non-zero flux across the window (dead fibre)")
    if good is not None:
        g = np.asarray(good[i0:i1], dtype=bool) & finite
    elif andmask is not None:
        g = (andmask[i0:i1] == 0) & finite
    else:
        g = finite
    ngood = np.count_nonzero(g)
    valid_fraction = ngood / g.size if g.size else 0.0
    if valid_fraction < s.min_valid_fraction:
        raise SpectrumError("too_few_valid_pixels", name,
                            f"{valid_fraction:.0%} good pixels in the window (need {s.min_valid_fraction:.0%})")
    every = ngood == g.size  # all good: the grid-only parts of the fit may come from the cache
    if s.continuum == "linear" and every and fit is not None:
        nside, xm, dx, sxx, dww = fit
        y = fw[side_w]
        ym = _sum(y) / nside
        slope = float(dx @ (y - ym)) / sxx
        cont = ym + slope * dww
        if not _min(cont) > 0:  # NaN fails too
            raise SpectrumError("no_signal", name, "continuum <= 0 in the window")
        fw = fw / cont
    elif s.continuum == "linear":
        side = g & side_w  # good pixels outside the H-alpha core
        nside = np.count_nonzero(side)
        if nside < 2:
            raise SpectrumError("too_few_valid_pixels", name, "fewer than 2 good continuum pixels")
        # least-squares straight line in closed form (np.polyfit costs 10x more per spectrum)
        x, y = ww[side], fw[side]
        xm, ym = _sum(x) / nside, _sum(y) / nside
        dx = x - xm
        slope = float(dx @ (y - ym)) / float(dx @ dx)
        cont = ym + slope * (ww - xm)
        if not _min(cont) > 0:  # NaN fails too
            raise SpectrumError("no_signal", name, "continuum <= 0 in the window")
        fw = fw / cont
    vec = np.interp(s.grid, ww, fw) if every else np.interp(s.grid, ww[g], fw[g])
    if s.normalisation == "zscore":
        mean = _sum(vec) / vec.size
        d = vec - mean
        sd = math.sqrt(_sum(d * d) / vec.size)
        if not math.isfinite(sd) or sd <= 1e-12 * max(1.0, abs(mean)):
            raise SpectrumError("no_signal", name, "flux constant in the window")
        vec = d / sd
    else:
        lo, hi = vec.min(), vec.max()
        if not hi - lo > 1e-12 * max(1.0, abs(hi)):
            raise SpectrumError("no_signal", name, "flux constant in the window")
        vec = 2 * (vec - lo) / (hi - lo) - 1
    return vec.astype(np.float32), valid_fraction
