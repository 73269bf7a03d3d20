"""Per-index, deterministic generation of synthetic LAMOST and Ondřejov spectra with known truth.

Spectrum ``i`` of a run depends only on ``(seed, kind, i)`` and the configuration, never on which
task makes it or in which order, so any Spark partitioning writes the same bytes:

- its own random numbers come from ``np.random.default_rng([seed, kind_code, i])``;
- its class comes from a golden-ratio (low-discrepancy) sequence over ``i``, so any few thousand
  consecutive spectra hold the configured proportions to a fraction of a per cent;
- stars live in blocks of ``block_size`` consecutive indices: the block's own generator splits
  the block's spectra of one family (absorption stars, emission stars, galaxies, quasars) into
  stars with several spectra each, and each star's parameters come from the star's generator;
- LAMOST plates and Ondřejov nights (dates, observing conditions, file names) come from
  generators of their own, keyed by the plate or night number derived from ``i``; so does the
  H II region in front of a plate, whose sky-subtraction residual each fibre scales with a
  generator keyed by ``i`` (:func:`nebular_residual`);
- a LAMOST file ``i`` is a medium-resolution (MRS) file instead of a low-resolution one with
  probability ``mrs_fraction``, drawn from a generator of its own (:func:`mrs_choice`), so the
  other files do not change with the fraction (at 0 the archive is what it was without MRS).
"""
from __future__ import annotations

import functools
import os
from typing import Any, Iterable, Iterator

import numpy as np

from ..adapt import air_to_vacuum
from ..errors import UsageError
from ..labels import CODE_TO_NAME
from . import physics as ph
from .formats import encode, plate_mid_mjd
from .mrs import MrsSynth, make_mrs, write_mrs
from .observing import (DETECTORS, RELEASES, SPECTRA_PER_NIGHT, designation, nebula_params, night_params, object_name,
                        ondrejov_stem, plate_of, plate_params)
from .types import Synth, SynthConfig

KIND_CODES = {"lamost": 1, "ondrejov": 2}
LABEL_CODES = {name: code for code, name in CODE_TO_NAME.items()}  # the Ondřejov label file's codes
LAMOST_CATEGORIES = ("absorption", "emission", "double_peak", "galaxy", "qso")
ONDREJOV_CATEGORIES = ("emission", "absorption", "unknown", "double_peak")
_GOLDEN = 0.6180339887498949




def categories(kind: str, cfg: SynthConfig) -> tuple[tuple[str, ...], np.ndarray]:
    """Category names of ``kind`` and their cumulative probabilities."""
    if kind == "lamost":
        star = 1.0 - cfg.galaxy_fraction - cfg.qso_fraction
        e, d = cfg.emission_fraction, cfg.double_peak_fraction
        weights = np.array([star * (1 - e), star * e * (1 - d), star * e * d, cfg.galaxy_fraction, cfg.qso_fraction])
        names = LAMOST_CATEGORIES
    else:
        weights = np.array(cfg.ondrejov_class_counts, dtype=float)
        names = ONDREJOV_CATEGORIES
    if (weights < 0).any():
        raise UsageError("[synth] fractions give a negative class weight")
    return names, np.cumsum(weights) / weights.sum()


def family(category: str) -> str:
    """Spectra of one family can belong to one star: a Be star shows emission, double peaks or neither."""
    return {"absorption": "a", "galaxy": "g", "qso": "q"}.get(category, "e")


@functools.lru_cache(maxsize=64)
def _offset(seed: int, kind: str) -> float:
    return float(np.random.default_rng([seed, KIND_CODES[kind], 7]).random())


def category_of(index: int, seed: int, kind: str, cfg: SynthConfig) -> str:
    """The category of spectrum ``index``: golden-ratio sequence through the cumulative weights."""
    names, cum = categories(kind, cfg)
    offset = _offset(seed, kind)
    u = (offset + index * _GOLDEN) % 1.0
    return names[min(int(np.searchsorted(cum, u, side="right")), len(names) - 1)]


@functools.lru_cache(maxsize=256)
def block_layout(block: int, seed: int, kind: str, cfg: SynthConfig) -> tuple[tuple[int, str, tuple[str, ...]], ...]:
    """For each slot of ``block``: (star number within the block, category, the star's categories)."""
    size = cfg.block_size
    rng = np.random.default_rng([seed, KIND_CODES[kind], 0xB10C, block])
    cats = [category_of(block * size + j, seed, kind, cfg) for j in range(size)]
    mean = cfg.lamost_spectra_per_star if kind == "lamost" else cfg.ondrejov_spectra_per_star
    star_of = [0] * size
    k = 0
    for fam in ("a", "e", "g", "q"):
        members = [j for j in range(size) if family(cats[j]) == fam]
        while members:
            m = 1 if fam in "gq" else 1 + int(rng.poisson(max(mean - 1.0, 0.0)))
            for j in members[:m]:
                star_of[j] = k
            members, k = members[m:], k + 1
    star_cats = {}
    for j in range(size):
        star_cats.setdefault(star_of[j], []).append(cats[j])
    return tuple((star_of[j], cats[j], tuple(star_cats[star_of[j]])) for j in range(size))


# -- stars ----------------------------------------------------------------------------------------
_TYPE_WEIGHTS = {  # letter weights per (kind, family); "double" for stars that show double peaks
    ("lamost", "a"): {"O": 0.002, "B": 0.02, "A": 0.1, "F": 0.28, "G": 0.3, "K": 0.2, "M": 0.098},
    ("lamost", "e"): {"O": 0.03, "B": 0.35, "A": 0.12, "F": 0.03, "G": 0.04, "K": 0.05, "M": 0.38},
    ("ondrejov", "a"): {"O": 0.02, "B": 0.35, "A": 0.3, "F": 0.12, "G": 0.1, "K": 0.08, "M": 0.03},
    ("ondrejov", "e"): {"O": 0.05, "B": 0.62, "A": 0.12, "F": 0.02, "G": 0.03, "K": 0.03, "M": 0.13},
    ("any", "double"): {"O": 0.05, "B": 0.78, "A": 0.17},
}


@functools.lru_cache(maxsize=1024)
def star_params(seed: int, kind: str, block: int, k: int, cats: tuple[str, ...]) -> dict[str, Any]:
    """Everything shared by the spectra of one star (or galaxy, or quasar)."""
    rng = np.random.default_rng([seed, KIND_CODES[kind], 0x57A2, block, k])
    fam = family(cats[0])
    s: dict[str, Any] = {"ra": float(rng.uniform(0, 360)),
                         "dec": float(np.degrees(np.arcsin(rng.uniform(-0.17 if kind == "lamost" else -0.34, 1.0)))),
                         "fam": fam, "uid": rng.integers(10**14, 9 * 10**14)}
    if fam == "g":
        s.update(z=float(rng.uniform(0.01, 0.35)), young=float(rng.uniform(0.0, 0.25)),
                 ha_ew=float(np.exp(rng.uniform(np.log(3), np.log(60)))) if rng.random() < 0.6 else 0.0,
                 sigma_v=float(rng.uniform(80, 250)), sigma_gas=float(rng.uniform(30, 100)))
        return s
    if fam == "q":
        s.update(z=float(rng.uniform(0.1, 3.5)), alpha=float(rng.normal(-1.5, 0.4)), line_scale=float(rng.uniform(0.5, 1.5)))
        return s
    key = ("any", "double") if "double_peak" in cats else (kind, fam)
    letters, w = zip(*_TYPE_WEIGHTS[key].items())
    letter = letters[int(rng.choice(len(letters), p=np.array(w) / sum(w)))]
    sub = (float(rng.integers(3, 10)) if letter == "O" else
           float(rng.choice(7, p=[0.22, 0.2, 0.18, 0.15, 0.12, 0.08, 0.05])) if letter == "M" else float(rng.integers(0, 10)))
    code = 10 * ph.LETTERS.index(letter) + sub
    lum = "V" if code >= 60 else str(rng.choice(["V", "V", "V", "IV", "III"]))
    early = code < 30
    vsini = float(rng.uniform(150, 400) if (fam == "e" and early) else rng.uniform(5, 120) if early else rng.uniform(1, 15))
    s.update(code=code, lum=lum, vsini=vsini, rv=float(rng.normal(0, 30)), ebv=float(rng.exponential(0.05)),
             metal=float(np.exp(rng.normal(0, 0.25))), pcygni=bool(early and rng.random() < 0.15),
             key=(seed, KIND_CODES[kind], block, k))
    return s


_PROFILES = ("single", "double", "pcygni", "mdwarf", "none")


@functools.lru_cache(maxsize=1024)
def _emission(key: tuple[int, ...], profile: str, code: float, vsini: float) -> tuple:
    rng = np.random.default_rng([*key[:2], 0xE1, *key[2:], _PROFILES.index(profile)])
    return tuple(ph.draw_emission(rng, profile, code, vsini).items())


def emission_params(star: dict[str, Any], profile: str) -> dict[str, float]:
    """The star's H-alpha emission parameters for ``profile`` (its own generator; empty if none)."""
    if profile not in _PROFILES:
        return {}
    return dict(_emission(star["key"], profile, star["code"], star["vsini"]))


def halpha_profile(category: str, star: dict[str, Any]) -> str:
    """The H-alpha profile a spectrum of ``category`` of ``star`` shows."""
    if category in ("galaxy", "qso"):
        return category
    if category == "double_peak":
        return "double"
    if category == "unknown":
        return "none"
    if category == "absorption":
        return "absorption"
    if star["code"] >= 60:
        return "mdwarf"
    return "pcygni" if star["pcygni"] else "single"


# -- the whole spectrum -------------------------------------------------------------------------------
def make_spectrum(index: int, seed: int, kind: str, cfg: SynthConfig, layout: str | None = None,
                  compression: str | None = None) -> Synth:
    """Generate spectrum ``index`` of a run (arrays, header values, truth); nothing is written.

    ``layout`` and ``compression`` override the configured draw (tests use them to cover every
    format); everything else stays as it would be. This is the LRS (or Ondřejov) spectrum of the
    index even where :func:`mrs_choice` makes the archive's file ``index`` an MRS file.
    """
    if kind not in KIND_CODES:
        raise UsageError(f"kind must be one of {sorted(KIND_CODES)}, got {kind!r}")
    block, slot = divmod(index, cfg.block_size)
    k, category, cats = block_layout(block, seed, kind, cfg)[slot]
    star = star_params(seed, kind, block, k, cats)
    rng = np.random.default_rng([seed, KIND_CODES[kind], index])
    profile = halpha_profile(category, star)
    build = _lamost if kind == "lamost" else _ondrejov
    star_id = block * cfg.block_size + k
    s = build(index, rng, star, star_id, category, profile, seed, cfg, layout, compression)
    label = LABEL_CODES.get(category, -1) if kind == "ondrejov" else -1
    s.truth.update(index=index, kind=kind, star_id=star_id, label=label, halpha_profile=profile)
    s.truth.setdefault("class", category)
    return s


def write_spectrum(out_dir: str, s: Synth, gzip_level: int = 2) -> int:
    """Write ``s`` under ``out_dir``; returns the number of bytes written."""
    data = encode(s, gzip_level)
    path = os.path.join(out_dir, s.relpath)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)
    return len(data)


TRUTH_COLUMNS = ("index", "file", "kind", "format", "layout", "data_release", "star_id", "object", "class",
                 "label", "lamost_class", "spectral_type", "halpha_profile", "strength", "snr", "z", "ra",
                 "dec", "gzip", "compression", "dead_fibre", "bytes", "ha_ew_true", "ha_ew_west_true", "nebular",
                 "nebular_ha_ew", "nebular_rv", "nebular_nii_ratio", "nebular_sii_ratio", "exposure", "mjd",
                 "exptime", "empty", "n_cosmic", "emission_scale")
"""The truth table's columns: one row per LRS or Ondřejov file, one row per red-arm table of an MRS
file (``COADD_R`` and each ``R-<LMJM>``: the ``spectra`` rows the ingest makes of it, keyed by
``(file, exposure)``); rows sorted by ``(index, exposure)``. H-alpha (Å, negative = emission,
vacuum; Ondřejov air converted), both on the noiseless model in the West et al. 2011 line band
6557.61-6571.61 Å, pixels whose centres lie in it, pixel width ``(w[i+1] - w[i-1]) / 2``:

- ``ha_ew_true``: ``sum(1 - F/Fc)`` with ``Fc`` the true continuum (the model without lines: for
  stars, ``F/Fc`` is the normalised line spectrum, TiO bands included, plus any nebular residual);
- ``ha_ew_west_true``: ``Fc`` the mean of the model in 6500-6550 and 6575-6625 Å, what a perfect
  measurement of the ``spectra`` table's ``ha_ew`` gives (it differs from ``ha_ew_true`` where
  broad wings, TiO or [N II] reach the side bands);
- ``nebular``: an H II-region sky-subtraction residual was added (LAMOST only; see
  :func:`nebular_residual`); ``nebular_ha_ew`` the part of ``ha_ew_true`` it contributes (0.0
  without one); ``nebular_rv`` (km/s), ``nebular_nii_ratio`` ([N II] 6585 / H-alpha flux) and
  ``nebular_sii_ratio`` ([S II] 6718 + 6733 / H-alpha flux): null without one.

``strength`` stays the star's own (the nebular residual left out).

Per exposure (MRS; see :func:`mrs_truth_rows`):

- ``exposure``: the table's EXTNAME (``COADD_R``, ``R-<LMJM>``); ``""`` for a one-spectrum file;
- ``mjd``: mid-exposure UTC MJD (a co-add's the mean of its exposures'); LAMOST LRS: the plate's
  ``DATE-OBS`` (:func:`~spectraldl.synth.formats.plate_mid_mjd`); Ondřejov: null;
- ``exptime`` (s; a co-add's the sum of its non-empty exposures'); LAMOST LRS: the plate's
  ``EXPTIME``; Ondřejov: null;
- ``empty``: a cloud-covered exposure (about 1 % of the light: the ingest's ``low_signal``), or
  a co-add of nothing else; such a row's ``class`` is ``unknown``, as for an LRS dead fibre over
  H-alpha; False for one-spectrum files;
- ``n_cosmic``: cosmic-ray hits in the table (1-3 pixels each; co-adds 0); null for
  one-spectrum files;
- ``emission_scale``: the star's H-alpha emission EW in this exposure over its mean (1.0 for
  absorption stars; a co-add's the mean over its exposures); null for one-spectrum files.
"""

MRS_RELEASE = {"dr7": "DR7", "dr9": "DR9"}
"""``data_release`` of an MRS file by layout (its ``DATA_V`` card)."""
MRS_CLASS = {"absorption": "absorption", "single": "emission", "mdwarf": "emission", "double": "double_peak"}
"""``class`` of an MRS star by H-alpha profile (LRS truth: single, P Cygni and M dwarf emission are
``emission``, double peaks ``double_peak``)."""


def mrs_choice(index: int, seed: int, kind: str, cfg: SynthConfig) -> tuple[str, bool] | None:
    """Whether file ``index`` of a run is an MRS file, and how it is written.

    The draw uses a generator of its own, ``default_rng([seed, 1, 0x3ED, index])``: three
    uniforms for "is MRS" (< ``mrs_fraction``), the layout (``dr9`` when < ``mrs_dr9_fraction``,
    else ``dr7``) and gzip (< ``gzip_fraction``). Nothing else draws from it.

    Returns
    -------
    tuple of (str, bool) or None
        ``(layout, gzip)`` for an MRS file; None for an LRS file, for every Ondřejov file and
        whenever ``mrs_fraction`` is 0.
    """
    if kind != "lamost" or cfg.mrs_fraction <= 0.0:
        return None
    u = np.random.default_rng([seed, KIND_CODES["lamost"], 0x3ED, index]).random(3)
    if u[0] >= cfg.mrs_fraction:
        return None
    return ("dr9" if u[1] < cfg.mrs_dr9_fraction else "dr7"), bool(u[2] < cfg.gzip_fraction)


def mrs_truth_rows(m: MrsSynth, gzip: bool, nbytes: int) -> list[dict[str, Any]]:
    """The truth rows of MRS file ``m``: ``COADD_R``, then each ``R-<LMJM>`` (sorted by ``exposure``).

    Parameters
    ----------
    m : MrsSynth
        The file, from :func:`~spectraldl.synth.mrs.make_mrs`.
    gzip : bool
        Written as ``.fits.gz``.
    nbytes : int
        The bytes written (every row of the file carries them).

    Returns
    -------
    list of dict
        Every column of :data:`TRUTH_COLUMNS`. The file's columns: ``kind`` ``lamost``, ``format``
        ``lamost_mrs``, ``data_release`` from the layout (:data:`MRS_RELEASE`), ``object`` the
        designation, ``lamost_class`` ``STAR``, ``label`` -1, ``star_id`` null (each MRS file is
        a star of its own), ``z`` the star's RV / c, ``halpha_profile`` the star's profile
        (``absorption``, ``single``, ``mdwarf``, ``double``), ``dead_fibre`` and ``nebular``
        False, ``nebular_ha_ew`` 0.0, ``strength`` null. Per table: ``class`` from the profile
        (:data:`MRS_CLASS`; ``unknown`` when empty), ``snr`` (median S/N per pixel of the written
        flux in 6500-6760 Å), ``ha_ew_true``, ``ha_ew_west_true``, ``mjd``, ``exptime``,
        ``empty``, ``n_cosmic``, ``emission_scale``.
    """
    t, p = m.truth, m.primary
    common = {"index": m.index, "file": m.relpath + (".gz" if gzip else ""), "kind": "lamost",
              "format": "lamost_mrs", "layout": m.layout, "data_release": MRS_RELEASE[m.layout], "star_id": None,
              "object": p["desig"], "label": -1, "lamost_class": "STAR", "spectral_type": t["spectral_type"],
              "halpha_profile": t["profile"], "strength": None, "z": round(t["rv"] / ph.C_KMS, 8), "ra": p["ra"],
              "dec": p["dec"], "gzip": gzip, "compression": "gzip" if gzip else "none", "dead_fibre": False,
              "bytes": nbytes, "nebular": False, "nebular_ha_ew": 0.0}
    rows = []
    for tab in (m.table("COADD_R"), *m.red_exposures):
        e = tab.truth
        rows.append(dict(common, exposure=tab.name, snr=e["snr"], ha_ew_true=e["ha_ew_true"],
                         ha_ew_west_true=e["ha_ew_west_true"], mjd=float(e["mjd"]), exptime=float(e["exptime"]),
                         empty=bool(e["empty"]), n_cosmic=len(e.get("cosmic_hits", ())),
                         emission_scale=float(e["emission_scale"]),
                         **{"class": "unknown" if e["empty"] else MRS_CLASS[t["profile"]]}))
    return sorted(rows, key=lambda r: r["exposure"])


def generate_indices(out_dir: str, indices: Iterable[int], seed: int, kind: str, cfg: SynthConfig) -> Iterator[dict[str, Any]]:
    """Generate and write the files ``indices``; yield their truth rows.

    File ``i`` is an MRS file where :func:`mrs_choice` says so (:func:`~spectraldl.synth.mrs.make_mrs`
    with the run's seed, written as the real archive names it, ``<lmjd>/<planid>/med-...fits[.gz]``),
    otherwise :func:`make_spectrum`'s.

    Yields
    ------
    dict
        The columns of :data:`TRUTH_COLUMNS`: one row per LRS or Ondřejov file, one per red-arm
        table of an MRS file (:func:`mrs_truth_rows`), in ``(index, exposure)`` order.
    """
    for i in indices:
        i = int(i)
        choice = mrs_choice(i, seed, kind, cfg)
        if choice is not None:
            layout, gz = choice
            m = make_mrs(i, seed, layout)
            nbytes = write_mrs(out_dir, m, gzip=gz, gzip_level=cfg.gzip_level)
            for row in mrs_truth_rows(m, gz, nbytes):
                yield {c: row.get(c) for c in TRUTH_COLUMNS}
            continue
        s = make_spectrum(i, seed, kind, cfg)
        nbytes = write_spectrum(out_dir, s, cfg.gzip_level)
        row = dict(s.truth, file=s.relpath, layout=s.layout, compression=s.compression,
                   gzip=s.compression != "none", bytes=nbytes, exposure="", empty=False)
        yield {c: row.get(c) for c in TRUTH_COLUMNS}


# -- LAMOST -------------------------------------------------------------------------------------------
NEBULAR_FIBRE_SCATTER = 0.5  # lognormal sigma of the residual's strength from fibre to fibre


def nebular_residual(index: int, plate: int, seed: int, cfg: SynthConfig) -> dict[str, float] | None:
    """The H II-region residual in spectrum ``index`` on ``plate``, or None (no nebula on the plate).

    The plate's nebula (:func:`~spectraldl.synth.observing.nebula_params`) sets the level; each
    fibre, with a generator of its own keyed by the index (so the spectrum's other random numbers
    are those it has without a nebula), scales the H-alpha EW by a lognormal factor
    (``NEBULAR_FIBRE_SCATTER``), the line ratios by +-10 % and moves the velocity by ~3 km/s.
    """
    neb = nebula_params(plate, seed, cfg)
    if neb is None:
        return None
    rng = np.random.default_rng([seed, KIND_CODES["lamost"], 0x4EB2, index])
    f = rng.lognormal(0.0, [NEBULAR_FIBRE_SCATTER, 0.1, 0.1])
    return {"ha_ew": neb["ha_ew"] * float(f[0]), "nii": neb["nii"] * float(f[1]), "sii": neb["sii"] * float(f[2]),
            "sii_ratio": neb["sii_ratio"], "rv": neb["rv"] + float(rng.normal(0.0, 3.0))}


def halpha_truth(w: np.ndarray, model: np.ndarray, cont: np.ndarray, nebular: np.ndarray | None = None
                 ) -> dict[str, float]:
    """``ha_ew_true``, ``ha_ew_west_true`` and ``nebular_ha_ew`` on the vacuum grid ``w`` (see TRUTH_COLUMNS)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = model / cont
    out = {"ha_ew_true": ph.halpha_ew(w, ratio),
           "ha_ew_west_true": ph.halpha_ew(w, model / ph.west_continuum(w, model)),
           "nebular_ha_ew": 0.0 if nebular is None else ph.halpha_ew(w, 1.0 + nebular / cont)}
    return {k: round(v, 6) for k, v in out.items()}


def _strength(w: np.ndarray, norm: np.ndarray, centre: float) -> float:
    """The signed largest departure from the continuum within +-10 Å of ``centre`` (0 if off the grid)."""
    m = np.abs(w - centre) <= 10.0
    if not m.any():
        return 0.0
    hi, lo = norm[m].max() - 1.0, norm[m].min() - 1.0
    return round(float(hi if hi >= -lo else lo), 4)


def _lamost(index: int, rng: np.random.Generator, star: dict, star_id: int, category: str, profile: str,
            seed: int, cfg: SynthConfig, layout: str | None, compression: str | None) -> Synth:
    plate, spid, fibre = plate_of(index)
    pp = plate_params(plate, seed, cfg)
    layout = layout or pp["layout"]
    release = pp["release"] if layout == pp["layout"] else RELEASES[layout][0]
    n = 3909 if rng.random() < 0.6 else int(rng.integers(3820, 3909))
    w = ph.lamost_wavelength(n)
    R = cfg.lamost_resolution
    fam = star["fam"]
    if fam == "g":
        cont, norm = ph.galaxy_spectrum(w, star["z"], star["young"], star["ha_ew"], star["sigma_v"], star["sigma_gas"], R, rng)
        z, snr, lclass, sub, stype = star["z"], rng.lognormal(np.log(8.0), 0.6), "GALAXY", "Non", ""
        emission = np.zeros(n)
    elif fam == "q":
        cont, norm = ph.qso_spectrum(w, star["z"], star["alpha"], star["line_scale"], R)
        z, snr, lclass, sub, stype = star["z"], rng.lognormal(np.log(6.0), 0.6), "QSO", "Non", ""
        emission = np.zeros(n)
    else:
        code = star["code"]
        rv = star["rv"] + float(rng.normal(0, 3))
        z, snr, lclass = rv / ph.C_KMS, rng.lognormal(np.log(38.0), 0.9), "STAR"
        norm = ph.absorption(w, ph.stellar_lines(code, "vacuum", R, rv, star["vsini"], star["metal"]),
                             ph.telluric_lines("vacuum", R, float(rng.uniform(0.0, 0.3))))
        norm *= ph.tio_absorption(w, ph.curve("tio", code), 1.6, "vacuum")
        p = emission_params(star, profile)
        if p:
            p["ew"] *= float(np.exp(rng.normal(0, 0.2)))
        emission = ph.emission_lines(w, profile, p, "vacuum", rv, R)
        norm = norm + emission
        cont = (ph.blackbody(w, ph.curve("tcol", code)) * ph.blanketing(w, code) * ph.reddening(w, star["ebv"]))
        stype = ph.type_name(code, star["lum"] if code < 60 else "")
        sub = (stype if release <= 2 and code < 30 else ("dM" + stype[1] if code >= 60 else stype[:2]))
    # relative flux calibration errors: mostly mild, sometimes large (the real slopes have long tails)
    cont = cont * ph.smooth_wiggle(w, rng.normal(0, [0.12, 0.05, 0.03]) * (3.0 if rng.random() < 0.1 else 1.0))
    snr = float(np.clip(snr, 1.5, 600.0))
    r = (w > 5600) & (w < 6900)
    level = snr * {1: 60.0, 2: 15.0}.get(release, 8.0 if release < 9 else 18.0) * float(rng.lognormal(0, 0.5))
    cont *= level / np.median(cont[r])
    model = cont * norm
    neb = nebular_residual(index, plate, seed, cfg)
    neb_flux = None
    if neb is not None:
        neb_flux = float(np.interp(ph.HALPHA_VAC, w, cont)) * ph.nebular_lines(
            w, neb["ha_ew"], neb["nii"], neb["sii"], neb["sii_ratio"], neb["rv"], R)
        model = model + neb_flux
    sigma = ph.lamost_sigma(w, model, snr, float(rng.uniform(0.05, 0.6)))
    flux = model + rng.standard_normal(n) * sigma
    flux += ph.sky_residuals(w, sigma, "vacuum", R, rng, 2.5)
    zero, andmask, tail = ph.lamost_habits(rng, w, model, sigma, emission, release, cfg.ivar_zero_on_emission,
                                           cfg.ivar_zero_peak)
    ivar = np.where(zero, 0.0, 1.0 / sigma**2)
    flux[tail] = 0.0
    snrs = ph.band_snr(w, model, sigma)
    dead = rng.random() < cfg.dead_fibre_fraction
    if dead:
        d = ph.dead_fibre(rng, w)
        flux[d] = 0.0 if release <= 2 else rng.normal(0, 0.2, int(d.sum()))
        ivar[d], andmask[d] = 0.0, 1
        if r.mean() and d[r].mean() > 0.5:
            snrs["r"] = -9999.0 if release >= 3 else snrs["r"]
    dtype = np.float64 if layout == "dr2" else np.float32
    flux, ivar = flux.astype(dtype), ivar.astype(dtype)
    ormask = andmask | np.where(rng.random(n) < 0.002, 2, 0).astype(np.int32)
    with np.errstate(divide="ignore", invalid="ignore"):
        normalised = np.where(cont > 0, flux / cont, 0.0).astype(dtype)
    compression = compression or ("gzip_misnamed" if rng.random() < cfg.gzip_misnamed_fraction
                                  else "gzip" if rng.random() < cfg.gzip_fraction else "none")
    obsid = pp["plate"] * 100000 + 100000000 + spid * 1000 + fibre if release >= 3 else None
    stem = f"spec-{pp['lmjd']}-{pp['planid']}_sp{spid:02d}-{fibre:03d}"
    name = (f"{obsid}.fits" if obsid and compression == "gzip_misnamed" else
            stem + (".fits.gz" if compression == "gzip" else ".fits"))
    ra, dec = round(star["ra"], 6), round(star["dec"], 6)
    desig = designation(ra, dec)
    z = round(z, 8)
    header = dict(plate=pp, release=release, filename=stem + ".fits", obsid=obsid, spid=spid, fiberid=fibre,
                  ra=ra, dec=dec, desig=desig, objname=str(star["uid"]), lamost_class=lclass, subclass=sub,
                  z=z, snr=snrs, n=n, cosmetic_seed=int(rng.integers(2**62)), objtype=lclass.capitalize())
    wl = w.astype(np.float32).astype(np.float64) if layout == "dr9" else w
    strength = _strength(w, norm, ph.HALPHA_VAC * (1 + (z if fam != "e" and fam != "a" else 0.0)))
    snr_written = snrs["r"]
    cls = category if not (dead and (np.abs(w - ph.HALPHA_VAC) < 60)[d].any()) or fam in "gq" else "unknown"
    truth = {"format": {"dr1": "lamost_lrs_dr1", "dr9": "lamost_lrs_coadd"}.get(layout, "lamost_lrs_image"),
             "data_release": f"DR{release}", "object": desig, "class": cls, "lamost_class": lclass,
             "spectral_type": stype, "strength": strength, "snr": round(snr, 2), "z": z, "ra": ra, "dec": dec,
             "dead_fibre": bool(dead), "nebular": neb is not None, "mjd": plate_mid_mjd(pp["seed"], pp["lmjd"]),
             "exptime": pp["exptime"], **halpha_truth(wl, model, cont, neb_flux)}
    if neb is not None:
        truth.update(nebular_rv=round(neb["rv"], 3), nebular_nii_ratio=round(neb["nii"], 4),
                     nebular_sii_ratio=round(neb["sii"], 4))
    meta = {"designation": desig, "ra": ra, "dec": dec, "lamost_class": lclass, "snr_r": snr_written,
            "lamost_subclass": sub, "z": z, "obsid": obsid, "object": str(star["uid"])}
    return Synth(index, "lamost", layout, f"{pp['lmjd']}/{pp['planid']}/{name}", compression, wl, flux, ivar,
                 andmask, ormask, normalised, model, header, meta, truth, continuum=cont)


# -- Ondřejov -----------------------------------------------------------------------------------------
def _ondrejov(index: int, rng: np.random.Generator, star: dict, star_id: int, category: str, profile: str,
              seed: int, cfg: SynthConfig, layout: str | None, compression: str | None) -> Synth:
    night_no, k = divmod(index, SPECTRA_PER_NIGHT)
    night = night_params(night_no, seed, cfg)
    det = night["detector"]
    _, _, npix, disp, start, table_rows = DETECTORS[det]
    layout = layout or ("iraf" if rng.random() < cfg.ondrejov_iraf_fraction else "table")
    cdelt = round(disp * float(rng.uniform(0.9996, 1.0004)), 14)
    if layout == "iraf":
        n, crval = npix, round(float(rng.uniform(*start)), 11)
    else:
        n, crval = int(rng.choice(table_rows)), round(float(rng.uniform(6282.0, 6282.3)), 11)
    w = crval + (np.arange(1, n + 1) - 1.0) * cdelt
    R, code = cfg.ondrejov_resolution, star["code"]
    rv = star["rv"] + float(rng.normal(0, 3))
    norm = ph.absorption(w, ph.stellar_lines(code, "air", R, rv, star["vsini"], star["metal"]),
                         ph.telluric_lines("air", R, night["telluric"] * float(rng.uniform(0.7, 1.5))))
    norm *= ph.tio_absorption(w, ph.curve("tio", code), 0.3, "air")
    p = emission_params(star, profile)
    if p:
        p["ew"] *= float(np.exp(rng.normal(0, 0.2)))
    norm = norm + ph.emission_lines(w, profile, p, "air", rv, R)
    snr = float(np.clip(np.exp(rng.normal(np.log(110.0), 0.7)), 15.0, 600.0))
    gain, ron = 1.07, 7.0
    level = snr**2 / gain
    cont = level * (w / 6500.0) ** float(-rng.uniform(5.0, 9.0)) * ph.smooth_wiggle(w, rng.normal(0, [0.02, 0.01]))
    model = cont * norm
    sigma = np.sqrt(np.clip(model, 0, None) * gain + ron**2) / gain
    flux = model + rng.standard_normal(n) * sigma
    if rng.random() < 0.15:  # cosmic-ray hits the reduction missed
        hits = rng.integers(0, n, int(rng.integers(1, 3)))
        flux[hits] += level * rng.uniform(0.1, 1.0, hits.size)
    if layout == "iraf":
        flux = flux.astype(np.float32)
    else:
        flux = flux / (cont * ph.smooth_wiggle(w, rng.normal(0, [0.004, 0.003, 0.002])))
    seq = k + 1 + SPECTRA_PER_NIGHT * night["fold"]
    stem = ondrejov_stem(night["date"], seq, det)
    obj = object_name(star_id, int(star["uid"]))
    ra, dec = star["ra"], star["dec"]
    header = dict(night=night, stem=stem, object=obj, crval=crval, cdelt=cdelt, n=n, detector=det,
                  cosmetic_seed=int(rng.integers(2**62)), exptime=float(rng.uniform(120, 3600)))
    if layout == "iraf":
        hh = ra / 15.0
        h, m = int(hh), int(hh * 60) % 60
        s = round((hh * 3600) % 60, 3)
        if s >= 60.0:
            s = 59.999
        dd = abs(dec)
        dg, dm = int(dd), int(dd * 60) % 60
        ds = round((dd * 3600) % 60, 2)
        if ds >= 60.0:
            ds = 59.99
        header["ra_text"] = f"{h:02d}:{m:02d}:{s:06.3f}"
        header["dec_text"] = f"{'-' if dec < 0 else '+'}{dg:02d}:{dm:02d}:{ds:05.2f}"
        ra = (h + m / 60 + s / 3600) * 15.0
        dec = (-1 if dec < 0 else 1) * (dg + dm / 60 + ds / 3600)
    else:  # degrees with ~16 significant digits, as the archive writes them
        ra, dec = round(ra, 12), round(dec, 12)
    header.update(ra=ra, dec=dec)
    stype = ph.type_name(code, star["lum"] if code < 60 else "V")
    truth = {"format": "ondrejov_iraf" if layout == "iraf" else "ondrejov_table", "data_release": "",
             "object": obj, "lamost_class": "", "spectral_type": stype,
             "strength": _strength(w, norm, ph.HALPHA_AIR), "snr": round(snr, 2), "z": round(rv / ph.C_KMS, 8),
             "ra": ra, "dec": dec, "dead_fibre": False, "nebular": False,
             **halpha_truth(air_to_vacuum(w), model, cont)}
    meta = {"designation": None, "ra": ra, "dec": dec, "lamost_class": None, "snr_r": None, "object": obj}
    return Synth(index, "ondrejov", layout, f"ccd700/{stem}.fits", "none", w, flux, None, None, None, None,
                 model, header, meta, truth, continuum=cont)
