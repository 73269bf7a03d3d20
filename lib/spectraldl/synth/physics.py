"""Spectrum physics for the synthetic archives: continua, lines, H-alpha profiles, noise, habits.

Pure numpy and fast: one to two milliseconds per LAMOST spectrum. Continua are black bodies at a colour
temperature, with line blanketing and the Balmer jump in the blue, interstellar reddening and
TiO/CaH bands for M dwarfs, tuned on the real LAMOST files; lines are
peak-normalised pseudo-Voigt profiles whose Gaussian part is the intrinsic width added in
quadrature to the resolution, ``sigma**2 = sigma_int**2 + (lambda / (2.355 R))**2``, scaled from an
equivalent width (so a line keeps its strength at any resolution) and evaluated only within a few
widths of its centre. Line lists are in air (Å); :func:`air_to_vacuum` moves them for LAMOST.
Galaxy and quasar lines are given in vacuum, rest frame.
"""
from __future__ import annotations

import functools

import numpy as np

from ..adapt import air_to_vacuum

C_KMS = 299792.458
HALPHA_AIR = 6562.80
HALPHA_VAC = 6564.61
LAMOST_COEFF0 = 3.5682
LAMOST_COEFF1 = 0.0001
FWHM_PER_SIGMA = 2.3548200450309493
LETTERS = "OBAFGKM"


@functools.lru_cache(maxsize=256)
def lamost_wavelength(n: int) -> np.ndarray:
    """``10**(COEFF0 + i*COEFF1)``: computed exactly as the reader does, so the arrays are equal."""
    w = 10.0 ** (LAMOST_COEFF0 + np.arange(n) * LAMOST_COEFF1)
    w.flags.writeable = False
    return w


# -- spectral types ---------------------------------------------------------------------------
# A type is a number: 10 * LETTERS.index(letter) + subclass (A2 = 22, M3 = 63).
_CURVES = {  # code -> value, linearly interpolated
    # colour temperature of LAMOST's relatively flux-calibrated continua: Teff from G on (Pecaut &
    # Mamajek), hotter for B-F stars, whose real spectra are bluer than a black body at Teff
    "tcol": ((3, 44000), (9, 31500), (12, 20600), (15, 15700), (18, 13500), (20, 13000), (25, 10500),
             (30, 8300), (35, 6900), (40, 6000), (42, 5770), (45, 5660), (48, 5490), (50, 5280), (53, 4830),
             (55, 4450), (57, 4050), (60, 3850), (62, 3560), (63, 3430), (65, 3060), (67, 2800), (69, 2500)),
    "balmer_ew": ((3, 2.2), (10, 2.8), (15, 5.0), (18, 6.5), (20, 7.8), (22, 8.3), (25, 7.5), (30, 6.5),
                  (35, 4.8), (40, 3.4), (45, 3.0), (50, 2.2), (55, 1.3), (60, 0.6), (65, 0.4), (69, 0.3)),
    "balmer_gamma": ((3, 1.2), (15, 3.5), (20, 6.0), (25, 5.0), (30, 3.5), (40, 1.8), (50, 1.0), (60, 0.5)),
    "balmer_jump": ((5, 0.05), (10, 0.15), (18, 0.3), (22, 0.35), (30, 0.25), (40, 0.05), (45, 0.0)),
    "metal": ((18, 0.0), (20, 0.08), (25, 0.2), (30, 0.35), (35, 0.55), (40, 0.75), (45, 0.9),
              (50, 1.0), (55, 1.1), (60, 1.1), (69, 1.0)),
    "caii": ((15, 0.03), (20, 0.1), (25, 0.35), (30, 0.6), (40, 0.85), (50, 1.0), (69, 1.0)),
    "hei": ((3, 0.8), (10, 1.0), (12, 1.0), (15, 0.6), (18, 0.2), (20, 0.0)),
    "heii": ((3, 1.0), (8, 0.4), (10, 0.0)),
    "si": ((10, 0.1), (15, 0.5), (18, 1.0), (22, 0.8), (30, 0.3), (40, 0.0)),
    "cool": ((50, 0.05), (55, 0.3), (60, 1.0), (69, 1.6)),
    "tio": ((55, 0.0), (57, 0.15), (60, 0.5), (62, 0.75), (63, 0.9), (65, 1.1), (69, 1.4)),
    "blanket": ((30, 0.0), (40, 0.1), (50, 0.25), (60, 0.35), (69, 0.5)),
}
_CURVE_ARRAYS = {k: tuple(np.array(v, dtype=float).T) for k, v in _CURVES.items()}


def curve(name: str, code: float) -> float:
    """One spectral-type dependent quantity (``teff``, ``balmer_ew``, ``metal``, ...) at ``code``."""
    x, y = _CURVE_ARRAYS[name]
    return float(np.interp(code, x, y))


def type_name(code: float, lum: str = "") -> str:
    """``22.0, 'V'`` -> ``'A2V'``."""
    letter = LETTERS[min(int(code // 10), 6)]
    return f"{letter}{int(round(code % 10)) % 10}{lum}"


# -- line lists (air, Å) --------------------------------------------------------------------
# (wavelength, equivalent width at strength 1, Lorentz HWHM, group)
BALMER = np.array([  # wavelength, EW relative to H-alpha, gamma relative to H-alpha's
    (6562.80, 1.0, 1.0), (4861.33, 1.15, 1.0), (4340.47, 1.15, 1.0), (4101.74, 1.1, 0.95),
    (3970.07, 1.0, 0.85), (3889.05, 0.85, 0.75), (3835.39, 0.7, 0.65), (3797.90, 0.55, 0.55),
    (3770.63, 0.45, 0.5), (3750.15, 0.35, 0.45), (3734.37, 0.3, 0.4), (3721.94, 0.25, 0.35),
    (9014.91, 0.2, 0.4), (8862.79, 0.18, 0.35), (8750.47, 0.15, 0.3), (8665.02, 0.12, 0.3), (8598.39, 0.1, 0.3),
])
_METAL_LINES = [
    (4045.81, 1.2, 0.1, "metal"), (4063.59, 0.8, 0.1, "metal"), (4071.74, 0.7, 0.1, "metal"),
    (4143.87, 0.6, 0.1, "metal"), (4226.73, 1.5, 0.2, "metal"), (4271.76, 0.9, 0.1, "metal"),
    (4325.76, 0.8, 0.1, "metal"), (4383.55, 1.2, 0.1, "metal"), (4404.75, 0.9, 0.1, "metal"),
    (4528.61, 0.5, 0.1, "metal"), (4702.99, 0.5, 0.1, "metal"), (4957.60, 0.6, 0.1, "metal"),
    (5167.32, 1.4, 0.3, "metal"), (5172.68, 1.8, 0.3, "metal"), (5183.60, 2.2, 0.3, "metal"),
    (5269.54, 1.2, 0.1, "metal"), (5328.04, 1.0, 0.1, "metal"), (5371.49, 0.6, 0.1, "metal"),
    (5405.77, 0.6, 0.1, "metal"), (5446.92, 0.6, 0.1, "metal"), (5528.41, 0.5, 0.1, "metal"),
    (5889.95, 2.4, 0.4, "metal"), (5895.92, 2.0, 0.4, "metal"), (6102.72, 0.4, 0.1, "metal"),
    (6122.22, 0.6, 0.1, "metal"), (6162.17, 0.7, 0.1, "metal"), (6252.56, 0.14, 0.02, "metal"),
    (6301.50, 0.14, 0.02, "metal"), (6335.33, 0.10, 0.02, "metal"), (6393.60, 0.14, 0.02, "metal"),
    (6400.00, 0.14, 0.02, "metal"), (6411.65, 0.12, 0.02, "metal"), (6421.35, 0.10, 0.02, "metal"),
    (6430.85, 0.11, 0.02, "metal"), (6439.08, 0.17, 0.02, "metal"), (6462.57, 0.16, 0.02, "metal"),
    (6493.78, 0.14, 0.02, "metal"), (6494.98, 0.15, 0.02, "metal"), (6496.90, 0.12, 0.02, "metal"),
    (6546.24, 0.10, 0.02, "metal"), (6592.91, 0.10, 0.02, "metal"), (6677.99, 0.12, 0.02, "metal"),
    (6717.69, 0.14, 0.02, "metal"), (6750.15, 0.07, 0.02, "metal"),
    # the other lines of the solar spectrum (EW > 40 mÅ) in the network's window, 6500-6760 Å,
    # where the random forest below is left out (bench/realism.py: its made-up lines at 6614.6,
    # 6685.7 and 6691.4 Å were what told synthetic F-G-K spectra from real ones)
    (6569.22, 0.06, 0.02, "metal"), (6575.04, 0.06, 0.02, "metal"), (6593.87, 0.08, 0.02, "metal"),
    (6597.56, 0.045, 0.02, "metal"), (6609.12, 0.065, 0.02, "metal"), (6643.64, 0.095, 0.02, "metal"),
    (6663.44, 0.055, 0.02, "metal"), (6705.10, 0.047, 0.02, "metal"), (6726.67, 0.047, 0.02, "metal"), (8498.02, 1.2, 0.5, "metal"),
    (8542.09, 3.0, 0.8, "metal"), (8662.14, 2.5, 0.7, "metal"),
    (3933.66, 14.0, 1.5, "caii"), (3968.47, 11.0, 1.5, "caii"),
    (4026.19, 0.9, 0.2, "hei"), (4471.48, 1.1, 0.2, "hei"), (4921.93, 0.6, 0.2, "hei"),
    (5015.68, 0.4, 0.2, "hei"), (5875.62, 0.9, 0.2, "hei"), (6678.15, 0.6, 0.2, "hei"), (7065.19, 0.4, 0.2, "hei"),
    (4541.59, 0.4, 0.2, "heii"), (4685.70, 0.6, 0.2, "heii"), (5411.52, 0.5, 0.2, "heii"),
    (4128.07, 0.3, 0.05, "si"), (4130.89, 0.3, 0.05, "si"), (6347.11, 0.35, 0.05, "si"),
    (6371.37, 0.25, 0.05, "si"), (6578.05, 0.12, 0.05, "si"), (6582.88, 0.08, 0.05, "si"),
    (6572.78, 0.3, 0.05, "cool"), (7664.90, 2.5, 0.8, "cool"), (7698.96, 2.0, 0.8, "cool"),
    (8183.26, 2.0, 0.5, "cool"), (8194.82, 2.5, 0.5, "cool"),
]
_GROUPS = ("metal", "caii", "hei", "heii", "si", "cool")
_FOREST_RNG = np.random.default_rng(20170613)  # a fixed weak-line forest, shared by all stars
_FOREST = np.sort(3700.0 * (1 - _FOREST_RNG.random(300) * (1 - 3700.0 / 9100.0)) ** -1.0)
_FOREST_EW = 0.03 + 0.25 * _FOREST_RNG.random(300) ** 2
_REAL_LIST = (_FOREST < 6500.0) | (_FOREST > 6760.0)   # the window has real lines only (above)
_FOREST, _FOREST_EW = _FOREST[_REAL_LIST], _FOREST_EW[_REAL_LIST]
#: Broad bands (centre, EW at strength 1, sigma): the G band (CH) and MgH.
BANDS = np.array([(4305.0, 4.5, 5.0), (5110.0, 3.0, 40.0)])
#: TiO / CaH bands (air): head, depth at TiO strength 1, decay of the head drop, valley position (Å).
TIO_HEADS = np.array([(4761, 0.3, 80, 40), (4954, 0.35, 100, 60), (5167, 0.4, 100, 60), (5448, 0.35, 120, 80),
                      (5847, 0.4, 120, 90), (6159, 0.45, 150, 100), (6382, 0.2, 80, 50), (6651, 0.45, 150, 200),
                      (6750, 0.15, 100, 60), (7054, 0.55, 150, 100), (7589, 0.15, 150, 100), (8432, 0.1, 150, 100),
                      (8859, 0.08, 150, 100)], dtype=float)
#: Telluric absorption near H-alpha and the O2 bands (air): wavelength, EW at airmass 1.
TELLURIC = np.array([(6277.8 + 2.05 * k, 0.03 - 0.0015 * k) for k in range(16)]
                    + [(w, e) for w, e in ((6470.0, 0.012), (6489.3, 0.01), (6516.6, 0.015),
                                           (6532.4, 0.012), (6543.9, 0.02), (6547.7, 0.015),
                                           (6552.6, 0.018), (6557.2, 0.015), (6564.2, 0.02),
                                           (6568.8, 0.01), (6572.1, 0.015), (6574.9, 0.02),
                                           (6586.6, 0.01), (6599.3, 0.012))])
#: Broad telluric bands at low resolution (centre air, EW, sigma): O2 B, H2O, O2 A, H2O, H2O.
TELLURIC_BANDS = np.array([(6885.0, 4.0, 12.0), (7250.0, 6.0, 50.0), (7620.0, 14.0, 18.0),
                           (8230.0, 5.0, 60.0), (9000.0, 8.0, 50.0)])
#: Night-sky emission lines (air) and relative strength.
SKY_LINES = np.array([(5577.34, 1.0), (5889.95, 0.4), (5895.92, 0.3), (6300.30, 0.5), (6363.78, 0.2),
                      (6863.96, 0.2), (7276.41, 0.15), (7316.28, 0.2), (7340.89, 0.2), (7369.25, 0.15),
                      (7750.64, 0.2), (7794.11, 0.2), (7821.50, 0.15), (7913.71, 0.25), (7993.33, 0.3),
                      (8344.60, 0.4), (8399.17, 0.3), (8430.17, 0.3), (8465.36, 0.3), (8827.10, 0.4),
                      (8885.85, 0.4), (8919.63, 0.3), (8943.40, 0.35), (8988.38, 0.4)])
#: Galaxy emission lines (vacuum, rest): wavelength, flux relative to H-alpha (star-forming).
GALAXY_LINES = np.array([(3727.09, 0.5), (3729.88, 0.7), (4102.89, 0.07), (4341.68, 0.13),
                         (4862.68, 0.3), (4960.30, 0.1), (5008.24, 0.3), (6549.86, 0.1),
                         (6564.61, 1.0), (6585.27, 0.3), (6718.29, 0.2), (6732.67, 0.15)])
#: Quasar lines (vacuum, rest): wavelength, rest EW (Å), FWHM (km/s).
QSO_LINES = np.array([(1215.67, 60, 4000), (1240.14, 10, 4000), (1397.61, 8, 4000), (1549.06, 30, 4500),
                      (1908.73, 20, 4500), (2799.12, 30, 4000), (4102.89, 5, 4000), (4341.68, 12, 4000),
                      (4862.68, 45, 4000), (5008.24, 10, 500), (6564.61, 150, 3500)])


@functools.lru_cache(maxsize=4)
def _stellar_list(medium: str) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Line centres in ``medium`` per strength group, plus the Balmer series and the forest."""
    conv = air_to_vacuum if medium == "vacuum" else (lambda w: np.asarray(w, dtype=float))
    out = {}
    for g in _GROUPS:
        rows = np.array([r[:3] for r in _METAL_LINES if r[3] == g])
        out[g] = (conv(rows[:, 0]), rows[:, 1], rows[:, 2])
    out["balmer"] = (conv(BALMER[:, 0]), BALMER[:, 1], BALMER[:, 2])
    out["forest"] = (conv(_FOREST), _FOREST_EW, np.full(_FOREST.size, 0.02))
    out["bands"] = (conv(BANDS[:, 0]), BANDS[:, 1], BANDS[:, 2])
    out["tio"] = (conv(TIO_HEADS[:, 0]), TIO_HEADS[:, 1], TIO_HEADS[:, 2], TIO_HEADS[:, 3])
    out["telluric"] = (conv(TELLURIC[:, 0]), TELLURIC[:, 1], np.zeros(len(TELLURIC)))
    out["telluric_bands"] = (conv(TELLURIC_BANDS[:, 0]), TELLURIC_BANDS[:, 1], TELLURIC_BANDS[:, 2])
    out["sky"] = (conv(SKY_LINES[:, 0]), SKY_LINES[:, 1], np.zeros(len(SKY_LINES)))
    return out


def lines(medium: str, group: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(centres, EW or strength, width parameter) of one line group in ``medium``."""
    return _stellar_list(medium)[group]


# -- profiles ---------------------------------------------------------------------------------
def voigt_shape(sigma: np.ndarray, gamma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FWHM and Lorentz fraction of the pseudo-Voigt approximating a Voigt (Thompson et al. 1987)."""
    fg = FWHM_PER_SIGMA * sigma
    fl = 2.0 * gamma
    f = (fg**5 + 2.69269 * fg**4 * fl + 2.42843 * fg**3 * fl**2 + 4.47163 * fg**2 * fl**3
         + 0.07842 * fg * fl**4 + fl**5) ** 0.2
    r = fl / f
    return f, 1.36603 * r - 0.47719 * r**2 + 0.11116 * r**3


def instrumental_sigma(centres: np.ndarray, resolution: float) -> np.ndarray:
    """``lambda / (2.355 R)``: the Gaussian sigma of the instrument's line spread function."""
    return np.asarray(centres, float) / (FWHM_PER_SIGMA * resolution)


def line_sum(w: np.ndarray, centres: np.ndarray, strengths: np.ndarray, sigma: np.ndarray,
             gamma: np.ndarray | float = 0.0, peak: bool = False, n_fwhm: float = 1.6,
             n_gamma: float = 20.0) -> np.ndarray:
    """Sum of pseudo-Voigt lines on the grid ``w``, each evaluated near its centre only.

    Parameters
    ----------
    strengths : array
        Equivalent widths (Å; the profile's area), or peak heights when ``peak`` is true.
    sigma, gamma : array or float
        Total Gaussian sigma (intrinsic and instrumental in quadrature) and Lorentz HWHM (Å).

    A line is computed on the pixels within ``n_fwhm * FWHM + n_gamma * gamma`` of its centre:
    lines are binned by window size and each bin is one vectorised pass over a lines x window
    matrix, accumulated with ``bincount``. Lines whose window misses the grid are skipped.
    """
    n = w.size
    out = np.zeros(n)
    centres = np.atleast_1d(np.asarray(centres, float))
    shape = centres.shape
    strengths = np.asarray(strengths, float) * np.ones(shape)
    sigma = np.asarray(sigma, float) * np.ones(shape)
    gamma = np.asarray(gamma, float) * np.ones(shape)
    f, eta = voigt_shape(sigma, gamma)
    amps = strengths if peak else strengths / (f * (eta * (np.pi / 2) + (1 - eta) * 1.0644670194312262))
    reach = n_fwhm * f + n_gamma * gamma
    keep = (centres + reach > w[0]) & (centres - reach < w[-1]) & (amps != 0)
    if not keep.any():
        return out
    centres, amps, f, eta, reach = centres[keep], amps[keep], f[keep], eta[keep], reach[keep]
    idx0 = np.searchsorted(w, centres).clip(1, n - 1)
    half = np.ceil(reach / (w[idx0] - w[idx0 - 1])).astype(int) + 1
    for lo, hi in ((0, 24), (24, 80), (80, 1 << 30)):
        sel = (half > lo) & (half <= hi)
        if not sel.any():
            continue
        c, i0, ff, et, re = centres[sel], idx0[sel], f[sel], eta[sel], reach[sel]
        h = int(half[sel].max())
        idx = i0[:, None] + np.arange(-h, h + 1)
        valid = (idx >= 0) & (idx < n)
        idx = idx.clip(0, n - 1)
        dx = w[idx] - c[:, None]
        valid &= np.abs(dx) <= re[:, None]
        x2 = (dx / ff[:, None]) ** 2
        et = et[:, None]
        prof = np.exp(-2.772588722239781 * x2) if not et.any() else et / (1 + 4 * x2) + (1 - et) * np.exp(-2.772588722239781 * x2)
        vals = np.where(valid, amps[sel][:, None] * prof, 0.0)
        out += np.bincount(idx.ravel(), weights=vals.ravel(), minlength=n)
    return out


# -- continua -----------------------------------------------------------------------------------
def blackbody(w: np.ndarray, teff: float) -> np.ndarray:
    """Planck F_lambda shape at ``teff`` (arbitrary scale, peak near 1)."""
    x = 1.4387769e8 / (w * teff)
    lam_peak = 2.8977719e7 / teff
    xp = 1.4387769e8 / (lam_peak * teff)
    return (lam_peak / w) ** 5 * np.expm1(xp) / np.expm1(np.minimum(x, 700.0))


def blanketing(w: np.ndarray, code: float) -> np.ndarray:
    """Blue flux deficit: metal-line blanketing and the 4000 Å break of cool stars, the crowding
    of the higher Balmer lines towards the Balmer jump of hot ones."""
    b, j = curve("blanket", code), curve("balmer_jump", code)
    out = np.ones_like(w)
    if b > 0:
        t = np.clip((4400.0 - w) / 900.0, 0.0, None)
        out *= np.exp(-b * (t**1.4 + 0.35 / (1.0 + np.exp((w - 4000.0) / 25.0))))
    if j > 0:
        out *= 1.0 - j / (1.0 + np.exp((w - 3860.0) / 35.0))
    return out


def reddening(w: np.ndarray, ebv: float) -> np.ndarray:
    """Interstellar extinction ``10**(-0.4 A_lambda)``, ``A_lambda = 3.1 E(B-V) (5500/lambda)**1.3``."""
    return 10.0 ** (-0.4 * 3.1 * ebv * (5500.0 / w) ** 1.3)


def tio_absorption(w: np.ndarray, strength: float, sigma: float, medium: str) -> np.ndarray:
    """Multiplicative TiO/CaH bands: at each head a sharp drop (40 % of the depth, decaying to the
    red) and a smooth valley whose bottom lies ``m`` Å redward, as M-dwarf spectra show them."""
    out = np.ones_like(w)
    if strength <= 0:
        return out
    heads, depth, length, valley = lines(medium, "tio")
    for h, d, L, m in zip(heads, depth, length, valley):
        if h > w[-1] or h + 5 * max(L, m) < w[0]:
            continue
        sl = slice(max(np.searchsorted(w, h - 6 * sigma) - 1, 0), np.searchsorted(w, h + 5 * max(L, m)))
        x = w[sl] - h
        u = np.clip(x, 0, None) / m
        step = 1.0 / (1.0 + np.exp(-1.702 * x / sigma))
        shape = 0.4 * np.exp(-np.clip(x, 0, None) / L) + 0.6 * u * u * np.exp(2 * (1 - u))
        out[sl] *= 1.0 - min(0.9, strength * d) * step * np.minimum(shape, 1.0)
    return out


def smooth_wiggle(w: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
    """A slowly varying factor ``exp(sum c_k P_k(x))`` on x in [-1, 1] (calibration errors)."""
    x = (w - w[0]) / (w[-1] - w[0]) * 2 - 1
    return np.exp(np.polynomial.legendre.legval(x, np.r_[0.0, coeffs]))


def lamost_throughput(w: np.ndarray) -> np.ndarray:
    """Relative LAMOST efficiency (peak 1): a blue arm that dies below 4000 Å, the dichroic near
    5800 Å, a red arm best around 7800 Å (tuned so band S/N ratios match the real headers)."""
    blue = 0.35 / (1.0 + np.exp(-(w - 4250.0) / 160.0)) / (1.0 + np.exp((w - 5800.0) / 40.0))
    red = ((0.5 + 0.5 * np.exp(-(((w - 7900.0) / 1200.0) ** 2))) / (1.0 + np.exp(-(w - 5820.0) / 40.0))
           / (1.0 + np.exp((w - 9150.0) / 100.0)))
    return np.maximum(blue + red, 0.005)


# -- stellar line absorption --------------------------------------------------------------------
LineArrays = tuple  # (centres, EW, sigma, gamma), each an array


def stellar_lines(code: float, medium: str, resolution: float, rv: float, vsini: float,
                  metal_scale: float = 1.0, balmer_scale: float = 1.0) -> LineArrays:
    """The absorption lines of a star of type ``code`` as (centres, EW, sigma, gamma) arrays.

    Balmer lines scale with :func:`curve` ``balmer_ew`` and carry Lorentz wings; metal, Ca II,
    He I/II, Si II and cool-star lines scale with their own curves; a fixed forest of weak lines
    adds texture; the G band and MgH are broad features. Lines are Doppler shifted by ``rv``
    (km/s) and rotationally broadened by ``vsini`` (km/s, as a Gaussian).
    """
    dop = 1.0 + rv / C_KMS
    rot = 0.6 * vsini / C_KMS
    m = curve("metal", code) * metal_scale
    bc, bew, bgam = lines(medium, "balmer")
    parts = [(bc, bew * curve("balmer_ew", code) * balmer_scale, bgam * curve("balmer_gamma", code), 0.1)]
    for group, scale in (("metal", m), ("caii", curve("caii", code) * metal_scale), ("hei", curve("hei", code)),
                         ("heii", curve("heii", code)), ("si", curve("si", code)), ("cool", curve("cool", code)),
                         ("forest", m)):
        if scale > 0:
            lc, lew, lgam = lines(medium, group)
            parts.append((lc, lew * scale, lgam, 0.03))
    if m > 0.2:
        bcen, bew2, bsig = lines(medium, "bands")
        parts.append((bcen, bew2 * np.array([m, curve("cool", code)]), np.zeros(2), bsig))
    c = np.concatenate([p[0] for p in parts]) * dop
    sig_int = np.concatenate([np.broadcast_to(p[3], p[0].shape) for p in parts])
    sig = np.hypot(instrumental_sigma(c, resolution), np.hypot(c * rot, sig_int))
    return c, np.concatenate([p[1] for p in parts]), sig, np.concatenate([p[2] for p in parts])


def telluric_lines(medium: str, resolution: float, strength: float) -> LineArrays:
    """Telluric O2 and H2O absorption (lines and broad bands) scaled by ``strength`` (airmass x humidity)."""
    tc, tew, _ = lines(medium, "telluric")
    bc, bew, bsig = lines(medium, "telluric_bands")
    c = np.concatenate([tc, bc])
    sig = np.hypot(instrumental_sigma(c, resolution), np.concatenate([np.zeros(tc.size), bsig]))
    return c, np.concatenate([tew, bew]) * strength, sig, np.zeros(c.size)


def absorption(w: np.ndarray, *line_sets: LineArrays) -> np.ndarray:
    """``exp(-sum of the lines)``: the normalised spectrum of absorbers (continuum = 1)."""
    c, ew, sig, gam = (np.concatenate(x) for x in zip(*line_sets))
    return np.exp(-line_sum(w, c, ew, sig, gam))


def gaussian_lines(w: np.ndarray, centres: np.ndarray, ews: np.ndarray, sigma_int: np.ndarray,
                   resolution: float) -> np.ndarray:
    """Gaussian lines of given equivalent widths (positive = emission), in continuum units."""
    centres = np.asarray(centres, float)
    sig = np.hypot(instrumental_sigma(centres, resolution), sigma_int)
    return line_sum(w, centres, ews, sig)


# -- H-alpha emission ----------------------------------------------------------------------------
#: Balmer decrement of each profile: EW of H-beta and H-gamma relative to H-alpha's.
DECREMENT = {"single": (0.25, 0.1), "double": (0.25, 0.1), "pcygni": (0.3, 0.12), "mdwarf": (0.8, 0.6),
             "none": (0.0, 0.0)}


def emission_components(profile: str, p: dict) -> tuple[list[float], list[float], list[float]]:
    """Gaussian components (offset from line centre Å, EW Å, sigma Å) of an H-alpha profile.

    ``single``: one peak (Be star seen pole-on, Herbig Ae/Be, T Tauri); ``double``: two peaks at
    +-``sep`` with violet/red ratio ``vr`` and a central shell dip (a Be star's disc seen at an
    angle); ``pcygni``: red-shifted emission with blue-shifted absorption (a wind); ``mdwarf``:
    one narrow chromospheric peak; ``none``: emission that fills the photospheric line in (the
    "unknown" class). Negative EW is absorption.
    """
    ew, sig, shift = p["ew"], p["sig"], p.get("shift", 0.0)
    if profile == "double":
        sep, vr, shell = p["sep"], p["vr"], p["shell"]
        ev, er = ew * vr / (1 + vr), ew / (1 + vr)
        return [shift - sep, shift + sep, shift], [ev, er, -shell * ew], [sig, sig, 0.45 * sep]
    if profile == "pcygni":
        return [shift, -p["abs_shift"]], [ew, -p["abs_ew"]], [sig, p["abs_sig"]]
    return [shift], [ew], [sig]


def emission_lines(w: np.ndarray, profile: str, p: dict, medium: str, rv: float, resolution: float) -> np.ndarray:
    """H-alpha (and H-beta, H-gamma by the profile's decrement) emission in continuum units."""
    if profile not in DECREMENT:
        return np.zeros_like(w)
    offs, ews, sigs = emission_components(profile, p)
    bc = lines(medium, "balmer")[0][:3] * (1.0 + rv / C_KMS)
    dec = (1.0,) + DECREMENT[profile]
    cen, ew_all, sig_all = [], [], []
    for c, d in zip(bc, dec):
        if d <= 0:
            continue
        scale = c / bc[0]
        cen += [c + o * scale for o in offs]
        ew_all += [e * d * scale for e in ews]
        sig_all += [s * scale for s in sigs]
    return gaussian_lines(w, np.array(cen), np.array(ew_all), np.array(sig_all), resolution)


def draw_emission(rng: np.random.Generator, profile: str, code: float, vsini: float) -> dict:
    """Star-level emission parameters for ``profile`` (EW in Å on top of the photospheric line)."""
    cool = code >= 60
    base = curve("balmer_ew", code)
    p = {"ew": base + float(np.exp(rng.uniform(np.log(1.5 if cool else 3.0), np.log(12.0 if cool else 45.0)))),
         "sig": float(rng.uniform(0.3, 0.8) if cool else rng.uniform(1.2, 3.5) if code < 30 else rng.uniform(0.8, 2.0)),
         "shift": float(rng.normal(0, 0.3))}
    if profile == "double":
        p["sep"] = float(rng.uniform(0.55, 0.9) * HALPHA_AIR * max(vsini, 120.0) / C_KMS)
        p["sig"] = float(min(p["sig"], 0.55 * p["sep"]))
        p["vr"] = float(rng.uniform(0.75, 1.33))
        p["shell"] = float(rng.uniform(0.0, 0.25))
    elif profile == "pcygni":
        p["shift"] = float(rng.uniform(0.5, 2.0))
        p["abs_shift"] = float(rng.uniform(3.0, 7.0))
        p["abs_ew"] = float(rng.uniform(0.8, 4.0))
        p["abs_sig"] = float(rng.uniform(1.0, 2.5))
    elif profile == "none":  # emission about as wide as the photospheric line fills it in: ambiguous
        fwhm = 2 * curve("balmer_gamma", code) + FWHM_PER_SIGMA * 0.6 * vsini / C_KMS * HALPHA_AIR
        p["ew"] = base * float(rng.uniform(0.6, 1.05))
        p["sig"] = float(rng.uniform(0.6, 1.1) * fwhm / FWHM_PER_SIGMA)
        p["shift"] = float(rng.normal(0, 1.0))
    return p


# -- H II-region sky-subtraction residuals ---------------------------------------------------------
#: Nebular lines (vacuum, rest): H-alpha, [N II] 6549.86 / 6585.27 (1:3), [S II] 6718.29 / 6732.67.
NEBULAR_LINES = (6564.61, 6549.86, 6585.27, 6718.29, 6732.67)


def nebular_lines(w: np.ndarray, ha_ew: float, nii: float, sii: float, sii_ratio: float, rv: float,
                  resolution: float) -> np.ndarray:
    """An H II region's lines left by the sky subtraction, in units of the star's continuum at H-alpha.

    Unresolved lines (the instrumental width) at the nebula's velocity ``rv`` (km/s): H-alpha with
    equivalent width ``ha_ew`` (Å, positive) against that continuum, [N II] 6585 with ``nii`` times
    H-alpha's flux and 6549 a third of it, [S II] 6718 + 6733 with ``sii`` times H-alpha's flux,
    split 6718 / 6733 = ``sii_ratio`` (about 1.4 at low density). Multiply by the continuum at
    H-alpha to get flux: the residual is added flux, not a change of the star's normalised spectrum.
    """
    centres = np.array(NEBULAR_LINES) * (1.0 + rv / C_KMS)
    s1 = sii * sii_ratio / (1.0 + sii_ratio)
    ews = ha_ew * np.array([1.0, nii / 3.0, nii, s1, sii - s1])
    return gaussian_lines(w, centres, ews, np.zeros(centres.size), resolution)


# -- H-alpha equivalent width (the measurement's definition, CONVENTIONS.md) -----------------------
#: West et al. 2011, vacuum Å: the line band and the two continuum side bands; a band takes the
#: pixels whose centres lie in [start, stop).
HA_LINE_BAND = (6557.61, 6571.61)
HA_SIDE_BANDS = ((6500.0, 6550.0), (6575.0, 6625.0))


def _band(w: np.ndarray, lo: float, hi: float) -> slice:
    return slice(int(np.searchsorted(w, lo)), int(np.searchsorted(w, hi)))


def halpha_ew(w: np.ndarray, ratio: np.ndarray) -> float:
    """``sum((1 - ratio) * dlam)`` over the line band (Å, negative = emission); ``ratio`` is F/Fc.

    ``dlam`` is the pixel width ``(w[i+1] - w[i-1]) / 2``. NaN when the band is not on the grid.
    """
    b = _band(w, *HA_LINE_BAND)
    if b.stop - b.start < 1 or b.start < 1 or b.stop >= w.size:
        return float("nan")
    dlam = (w[b.start + 1:b.stop + 1] - w[b.start - 1:b.stop - 1]) * 0.5
    return float(np.sum((1.0 - ratio[b]) * dlam))


def west_continuum(w: np.ndarray, flux: np.ndarray) -> float:
    """The West et al. continuum: mean of ``flux`` over the pixels of both side bands (NaN if none)."""
    vals = np.concatenate([flux[_band(w, lo, hi)] for lo, hi in HA_SIDE_BANDS])
    return float(vals.mean()) if vals.size else float("nan")


# -- galaxies and quasars ------------------------------------------------------------------------
def galaxy_spectrum(w: np.ndarray, z: float, young: float, ha_ew: float, sigma_v: float, sigma_gas: float,
                    resolution: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(continuum, normalised spectrum) of a galaxy at redshift ``z`` (vacuum wavelengths).

    The continuum mixes an old population (a 4600 K black body with M-star blanketing and the
    4000 Å break) with a young one (10,000 K; ``young`` = its fraction at 5500 Å); absorption lines are
    a K0 star's at velocity dispersion ``sigma_v``; star-forming galaxies (``ha_ew > 0``) get
    H-alpha, [N II], [S II], H-beta, [O III] and [O II] with random ratios, gas dispersion ``sigma_gas``.
    """
    rest = w / (1 + z)
    old = blackbody(rest, 4600.0) * blanketing(rest, 60.0)
    new = blackbody(rest, 10000.0)
    norm5500 = lambda a: a / np.interp(5500.0, rest, a) if rest[0] < 5500 < rest[-1] else a / np.median(a)  # noqa: E731
    cont = (1 - young) * norm5500(old) + young * norm5500(new)
    absn = absorption(w, stellar_lines(50.0, "vacuum", resolution, z * C_KMS, sigma_v / 0.6, metal_scale=0.8,
                                       balmer_scale=0.6 + young))
    em = np.zeros_like(w)
    if ha_ew > 0:
        rel = GALAXY_LINES[:, 1].copy()
        rel[[5, 6]] *= rng.uniform(0.3, 4.0)   # [O III]
        rel[[7, 9]] *= rng.uniform(0.3, 2.0)   # [N II]
        c = GALAXY_LINES[:, 0] * (1 + z)
        ratio_cont = np.interp(GALAXY_LINES[:, 0], rest, cont) / np.interp(6564.61, rest, cont, left=1, right=1)
        ews = ha_ew * (1 + z) * rel / np.maximum(ratio_cont, 0.05)
        em = gaussian_lines(w, c, ews, c * sigma_gas / C_KMS, resolution)
    return cont, absn + em


def qso_spectrum(w: np.ndarray, z: float, alpha: float, line_scale: float, resolution: float) -> tuple[np.ndarray, np.ndarray]:
    """(continuum, normalised spectrum) of a quasar: a power law ``lambda**alpha`` with broad lines."""
    cont = (w / 5500.0) ** alpha
    c = QSO_LINES[:, 0] * (1 + z)
    sig = c * QSO_LINES[:, 2] / C_KMS / FWHM_PER_SIGMA
    return cont, 1.0 + gaussian_lines(w, c, QSO_LINES[:, 1] * (1 + z) * line_scale, sig, resolution)


# -- noise and archive habits ----------------------------------------------------------------------
BANDS_SNR = {"u": (3700.0, 4000.0), "g": (4000.0, 5500.0), "r": (5600.0, 6900.0),
             "i": (6900.0, 8400.0), "z": (8400.0, 9100.0)}


def lamost_sigma(w: np.ndarray, model: np.ndarray, snr_r: float, sky: float) -> np.ndarray:
    """Per-pixel noise of a LAMOST spectrum whose median r-band S/N is ``snr_r``.

    Photon noise of the object and the sky (``sky`` in units of the object's r-band level) in a
    flux-calibrated spectrum: ``sigma = sqrt((F + S) / T)`` with ``T`` the throughput, so the
    blue end is noisy, as in the archive.
    """
    r = (w > BANDS_SNR["r"][0]) & (w < BANDS_SNR["r"][1])
    level = np.median(model[r]) if r.any() else np.median(model)
    shape = np.sqrt((np.clip(model / level, 0.0, None) + sky) / lamost_throughput(w))
    snr_shape = np.median(model[r] / shape[r]) if r.any() else np.median(model / shape)
    return shape * (snr_shape / snr_r)


def band_snr(w: np.ndarray, model: np.ndarray, sigma: np.ndarray) -> dict[str, float]:
    """Median S/N per pixel in the u, g, r, i, z ranges, rounded as LAMOST writes them."""
    out = {}
    for b, (lo, hi) in BANDS_SNR.items():
        m = (w > lo) & (w < hi)
        out[b] = round(float(np.median(model[m] / sigma[m])), 2) if m.sum() > 10 else 0.0
    return out


def sky_residuals(w: np.ndarray, sigma: np.ndarray, medium: str, resolution: float,
                  rng: np.random.Generator, amplitude: float) -> np.ndarray:
    """Imperfect sky subtraction: each night-sky line leaves a +- residual of a few sigma."""
    c, strength, _ = lines(medium, "sky")
    amp = rng.normal(0.0, amplitude, c.size) * strength * np.interp(c, w, sigma)
    return line_sum(w, c, amp, instrumental_sigma(c, resolution), peak=True, n_fwhm=3.0)


def lamost_habits(rng: np.random.Generator, w: np.ndarray, model: np.ndarray, sigma: np.ndarray,
                  emission: np.ndarray, release: int, p_zero_peak: float, peak_threshold: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where the LAMOST pipeline zeroes ``ivar`` and sets ``andmask`` (dead fibres aside).

    - strong emission peaks: ivar 0 where the emission exceeds a quarter of its maximum, with
      probability ``p_zero_peak`` when the peak is above ``peak_threshold`` (BT CMi in DR1);
    - DR1/DR2: the telluric A band (7581-7679 Å) and a blue run where the S/N drops below ~1;
    - a red tail of 1-100 pixels with flux and ivar 0; a few bad-column runs of 5-10 pixels,
      some with andmask.

    Returns
    -------
    zero : bool array (ivar set to 0), andmask : int array, tail : bool array (flux set to 0)
    """
    n = w.size
    zero = np.zeros(n, dtype=bool)
    andmask = np.zeros(n, dtype=np.int32)
    if emission.max(initial=0.0) > peak_threshold and rng.random() < p_zero_peak:
        near = np.abs(w - HALPHA_VAC) < 15.0
        zero |= near & (emission > 0.25 * emission[near].max())
    if release <= 2:
        if rng.random() < 0.85:
            zero |= (w > 7581.0) & (w < 7680.0)
        low = model / sigma < rng.uniform(0.5, 1.5)
        if low[0] and rng.random() < 0.7:
            zero[: int(np.argmin(low))] = True
    tail = np.zeros(n, dtype=bool)
    if rng.random() < (0.6 if release <= 2 else 0.05):
        tail[n - int(rng.integers(1, 100)):] = True
        zero |= tail
    k = rng.poisson(0.8 if release >= 3 else 0.4)
    if k:
        bad = np.zeros(n, dtype=bool)
        for start, length in zip(rng.integers(0, n - 10, k), rng.integers(5, 11, k)):
            bad[start:start + length] = True
        zero |= bad
        if rng.random() < 0.4:
            andmask[bad] = 1
    return zero, andmask, tail


def dead_fibre(rng: np.random.Generator, w: np.ndarray) -> np.ndarray:
    """The pixels of a dead fibre or camera: mostly the whole red arm (> ~5900 Å), sometimes part."""
    u = rng.random()
    if u < 0.6:
        return w > rng.uniform(5900.0, 5960.0)
    if u < 0.9:
        lo = rng.uniform(5950.0, 8000.0)
        return (w > lo) & (w < lo + rng.uniform(400.0, 2500.0))
    return w < rng.uniform(5700.0, 5900.0)
