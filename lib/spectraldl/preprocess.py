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
_max = np.maximum.reduce
#: A window whose normalised flux varies less than this (relative) is constant: ``no_signal``.
_FLAT = 1e-12


class _Plan:
    """What :func:`preprocess` takes from a wavelength grid alone, for one settings object.

    ``i0, i1``: the pixels with ``window_start <= w <= window_stop`` (``ww`` their wavelengths);
    ``side``: which of them lie outside the H-alpha core. With ``full`` (a shared grid, or a
    batch) also ``fit``, :func:`_side_fit` of the side pixels (None with fewer than 2), and
    ``interp``, :func:`_interp_plan` of the output grid on ``ww``; else both None.
    """

    __slots__ = ("i0", "i1", "ww", "side", "fit", "interp")

    def __init__(self, w: np.ndarray, s: "PreprocessSettings", full: bool) -> None:
        self.i0 = int(w.searchsorted(s.window_start, side="left"))
        self.i1 = int(w.searchsorted(s.window_stop, side="right"))
        self.ww = ww = w[self.i0:self.i1]
        self.side = (ww < s.core_start) | (ww > s.core_stop)
        self.side.flags.writeable = False
        self.fit = _side_fit(ww, self.side) if full else None
        self.interp = _interp_plan(s.grid, ww) if full else None


def _window(w: np.ndarray, s: PreprocessSettings, full: bool = False) -> _Plan:
    """The :class:`_Plan` of grid ``w``: remembered (in full) for the read-only wavelength grids
    the LAMOST readers share between files (a dozen distinct grids cover a release), computed
    otherwise (in full only when asked)."""
    key = (id(w), id(s))  # ids, not hashes: hashing the settings costs more than the search
    hit = _WINDOWS.get(key)
    if hit is not None and hit[0]() is w and hit[1] is s:
        return hit[2]
    shared = not w.flags.writeable  # its values cannot change under the cache
    plan = _Plan(w, s, full or shared)
    if shared:
        if len(_WINDOWS) > 1024:
            _WINDOWS.clear()
        _WINDOWS[key] = (weakref.ref(w), s, plan)  # holds s: its id stays its own
    return plan


def _side_fit(ww: np.ndarray, side: np.ndarray) -> tuple | None:
    """What the continuum fit of a window whose pixels are all good takes from the grid alone:
    ``(nside, xm, dx, sxx, ww - xm)``, each computed as the general path of :func:`preprocess`
    computes it (so the results are the same bits); None with fewer than 2 side pixels."""
    nside = np.count_nonzero(side)
    if nside < 2:
        return None
    x = ww[side]
    xm = _sum(x) / nside
    dx = x - xm
    dww = ww - xm
    dx.flags.writeable = dww.flags.writeable = False
    return nside, xm, dx, float(_sum(dx * dx)), dww


def _interp_plan(x: np.ndarray, xp: np.ndarray) -> tuple | None:
    """How ``numpy.interp(x, xp, fp)`` reads ``fp`` for every ``x``, which depends on ``x`` and
    ``xp`` only: ``(take, direct, at, j, j1, span, offset)``; None unless ``xp`` is strictly
    increasing. Points outside ``xp``, on its last point or exactly on one of its points
    (``direct``) take ``fp[at]``; the others (``take``) are ``(fp[j1] - fp[j]) / span * offset +
    fp[j]`` with ``j1 = j + 1``, ``span = xp[j1] - xp[j]`` and ``offset = x - xp[j]``: numpy's own
    operations in its own order, so :func:`_interp_rows` gives numpy.interp's bits for finite
    ``fp`` (tests/test_preprocess_batch.py checks it)."""
    n = xp.size
    if n < 2 or not (xp[1:] > xp[:-1]).all():
        return None
    j = xp.searchsorted(x, side="right") - 1  # numpy's binary search: xp[j] <= x < xp[j + 1]
    jc = np.clip(j, 0, n - 1)
    direct = (j < 0) | (j >= n - 1) | (xp[jc] == x)
    take = ~direct
    jt = j[take]
    plan = (take, direct, jc[direct], jt, jt + 1, xp[jt + 1] - xp[jt], x[take] - xp[jt])
    for a in plan:
        a.flags.writeable = False
    return plan


def _interp_rows(plan: tuple, fp: np.ndarray) -> np.ndarray:
    """``numpy.interp`` of every row of ``fp`` (2-D) at the points of ``plan`` (:func:`_interp_plan`)."""
    take, direct, at, j, j1, span, offset = plan
    out = np.empty((fp.shape[0], take.size))
    out[:, direct] = fp[:, at]
    lo = fp[:, j]
    out[:, take] = (fp[:, j1] - lo) / span * offset + lo
    return out


#: :func:`_rows` outcomes: a vector, or the ``no_signal`` cause of :func:`_no_signal`.
_OK, _CONT_NOT_POSITIVE, _CONSTANT = 0, 1, 2


def _no_signal(status: int, name: str | None) -> SpectrumError:
    what = "continuum <= 0 in the window" if status == _CONT_NOT_POSITIVE else "flux constant in the window"
    return SpectrumError("no_signal", name, what)


def _rows(fw: np.ndarray, plan: _Plan, s: PreprocessSettings) -> tuple[np.ndarray, np.ndarray]:
    """Steps 3-5 for spectra whose window pixels are all good, one row each of ``fw`` (float64,
    the window's flux): ``(vectors as float32, status per row)``, status :data:`_OK` or a
    ``no_signal`` cause. Row by row the same operations as on one spectrum (elementwise, and
    sums along a row), so a spectrum's vector does not depend on the others in the batch."""
    if s.continuum == "linear":
        nside, _, dx, sxx, dww = plan.fit
        y = fw[:, plan.side]
        ym = _sum(y, axis=1) / nside
        slope = _sum(dx * (y - ym[:, None]), axis=1) / sxx
        cont = ym[:, None] + slope[:, None] * dww
        status = np.where(_min(cont, axis=1) > 0, _OK, _CONT_NOT_POSITIVE)  # NaN fails too
        fw = fw / cont
    else:
        status = np.full(fw.shape[0], _OK)
    vec = _interp_rows(plan.interp, fw)
    odd = ~np.isfinite(vec).all(axis=1)
    for k in np.flatnonzero(odd & (status == _OK)):  # non-finite slopes: numpy's own fallbacks
        vec[k] = np.interp(s.grid, plan.ww, fw[k])
    vec, constant = _normalise(vec, s)
    status = np.where((status == _OK) & constant, _CONSTANT, status)
    return vec.astype(np.float32), status


def _normalise(vec: np.ndarray, s: PreprocessSettings) -> tuple[np.ndarray, np.ndarray]:
    """Step 5 on every row of ``vec`` (2-D): ``(normalised rows, rows that are constant)``, the
    operations of :func:`preprocess`'s last step row by row."""
    n = vec.shape[1]
    if s.normalisation == "zscore":
        mean = _sum(vec, axis=1) / n
        d = vec - mean[:, None]
        sd = np.sqrt(_sum(d * d, axis=1) / n)
        constant = ~(np.isfinite(sd) & (sd > _FLAT * np.maximum(1.0, np.abs(mean))))  # NaN is constant
        return d / np.where(constant, 1.0, sd)[:, None], constant
    lo, hi = _min(vec, axis=1), _max(vec, axis=1)
    constant = ~(hi - lo > _FLAT * np.maximum(1.0, np.abs(hi)))
    return 2 * (vec - lo[:, None]) / np.where(constant, 1.0, hi - lo)[:, None] - 1, constant


_WINDOWS: dict[tuple[int, int], tuple[Any, PreprocessSettings, _Plan]] = {}


def _covers(w: np.ndarray, s: PreprocessSettings) -> bool:
    return not (w.size < 2 or w[0] > s.window_start or w[-1] < s.window_stop)


def _covered(w: np.ndarray, s: PreprocessSettings, name: str | None) -> None:
    if not _covers(w, s):
        lo, hi = (w[0], w[-1]) if w.size else (np.nan, np.nan)
        raise SpectrumError("window_not_covered", name,
                            f"{lo:.1f}-{hi:.1f} Å does not cover {s.window_start}-{s.window_stop} Å")


def _fast(plan: _Plan, s: PreprocessSettings) -> bool:
    """Whether a batch's spectra whose window pixels are all good go through :func:`_rows`."""
    return plan.interp is not None and (s.continuum != "linear" or plan.fit is not None)


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

    Notes
    -----
    :func:`preprocess_batch` does steps 3-5 of many spectra whose window pixels are all good as
    one 2-D array (:func:`_rows`), with the operations below row by row: the same bits, which
    tests/test_preprocess_batch.py checks on every real and synthetic file.
    """
    # Written for small windows (~140 pixels): numpy's per-call overhead, not arithmetic, is the
    # cost, so the flux is converted only inside the window and the reductions call the ufuncs
    # directly (``x.mean()`` and ``x.std()`` go through several Python layers; the results are
    # the same bits).
    s = settings
    w = np.asarray(wavelength, dtype=np.float64)
    _covered(w, s, name)
    plan = _window(w, s)
    i0, i1, ww = plan.i0, plan.i1, plan.ww
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
    every = ngood == g.size
    if s.continuum == "linear" and every and plan.fit is not None:
        nside, xm, dx, sxx, dww = plan.fit  # the grid-only parts of the fit
        y = fw[plan.side]
        ym = _sum(y) / nside
        slope = _sum(dx * (y - ym)) / sxx
        cont = ym + slope * dww
        if not _min(cont) > 0:  # NaN fails too
            raise _no_signal(_CONT_NOT_POSITIVE, name)
        fw = fw / cont
    elif s.continuum == "linear":
        side = g & plan.side  # good pixels outside the H-alpha core
        nside = np.count_nonzero(side)
        if nside < 2:
            raise SpectrumError("too_few_valid_pixels", name, "fewer than 2 good continuum pixels")
        # least-squares straight line in closed form (np.polyfit costs 10x more per spectrum)
        x, y = ww[side], fw[side]
        xm, ym = _sum(x) / nside, _sum(y) / nside
        dx = x - xm
        slope = _sum(dx * (y - ym)) / _sum(dx * dx)
        cont = ym + slope * (ww - xm)
        if not _min(cont) > 0:  # NaN fails too
            raise _no_signal(_CONT_NOT_POSITIVE, name)
        fw = fw / cont
    vec = np.interp(s.grid, ww, fw) if every else np.interp(s.grid, ww[g], fw[g])
    if s.normalisation == "zscore":
        mean = _sum(vec) / vec.size
        d = vec - mean
        sd = math.sqrt(_sum(d * d) / vec.size)
        if not math.isfinite(sd) or sd <= _FLAT * max(1.0, abs(mean)):
            raise _no_signal(_CONSTANT, name)
        vec = d / sd
    else:
        lo, hi = _min(vec), _max(vec)
        if not hi - lo > _FLAT * max(1.0, abs(hi)):
            raise _no_signal(_CONSTANT, name)
        vec = 2 * (vec - lo) / (hi - lo) - 1
    return vec.astype(np.float32), valid_fraction


def preprocess_batch(wavelength: np.ndarray, fluxes: list[np.ndarray], andmasks: list[np.ndarray | None],
                     settings: PreprocessSettings = DEFAULT_SETTINGS, names: list[str | None] | None = None
                     ) -> list[tuple[np.ndarray, float] | SpectrumError]:
    """:func:`preprocess` of many spectra on one wavelength grid (``andmask`` as there, ``good``
    None): per spectrum its ``(vector, valid_fraction)`` or the :class:`SpectrumError` it raises,
    with the same bits as one call each.

    The spectra whose window pixels are all good (nearly every LAMOST spectrum) are processed as
    one 2-D array, which spares numpy's per-call overhead (the cost of a 140-pixel window); the
    others are handed to :func:`preprocess` one by one.
    """
    s = settings
    names = names if names is not None else [None] * len(fluxes)
    out: list[Any] = [None] * len(fluxes)
    w = np.asarray(wavelength, dtype=np.float64)
    plan = _window(w, s, full=True) if _covers(w, s) else None
    rows: list[int] = []
    if plan is not None and _fast(plan, s) and len(fluxes) > 1:
        i0, i1 = plan.i0, plan.i1
        fw = np.empty((len(fluxes), i1 - i0))
        bad = np.zeros(fw.shape, dtype=bool)
        for k, (f, m) in enumerate(zip(fluxes, andmasks)):
            fw[k] = f[i0:i1]
            if m is not None:
                bad[k] = m[i0:i1]  # non-zero mask -> True
        bad |= ~np.isfinite(fw)
        every = ~bad.any(axis=1) & (fw != 0).any(axis=1)  # the others: preprocess decides
        rows = np.flatnonzero(every).tolist()
        if rows:
            vec, status = _rows(fw[rows], plan, s)
            for r, k in enumerate(rows):
                out[k] = (vec[r], 1.0) if status[r] == _OK else _no_signal(int(status[r]), names[k])
    for k in range(len(fluxes)):
        if out[k] is None:
            try:
                out[k] = preprocess(w, fluxes[k], None, s, name=names[k], andmask=andmasks[k])
            except SpectrumError as exc:
                out[k] = exc
    return out
