"""Synthetic LAMOST medium-resolution (MRS) files with known truth per exposure (issue #17).

One file is one night of one fibre, as in the real archive (compare the eight ``med-*`` files in
../shared/data/real): a primary header without data (``EXTNAME = 'Information'``), the co-adds
``COADD_B`` and ``COADD_R``, then ``B-<LMJM>`` for every exposure and ``R-<LMJM>`` for every
exposure (the blue ones first, as there). Layouts:

- ``dr7`` (DR6/DR7, byte for byte the real files' structure): one row per pixel, TFORM ``E`` for
  ``FLUX IVAR LOGLAM`` and ``I`` for ``ANDMASK ORMASK`` (co-adds) or ``PIXMASK`` (exposures); the
  co-adds on a log-linear grid of 1e-5 dex, ascending; the exposures on their detector's grid
  (steps from 1.03e-5 dex at the blue end to 7.4e-6 dex at the red end), the blue arm ascending
  and **the red arm descending**, as in every real file; header cards as MWRFITS wrote them.
- ``dr9`` (DR9 and later): one row of float32 array columns ``FLUX IVAR WAVELENGTH`` + the masks
  + ``NORMALIZATION``, like the LRS ``COADD`` table; the same pixel orders. No real DR9 MRS file is
  in the corpus: this follows the LRS DR9 table and is what the reader must also take.

Truth (:class:`MrsSynth` ``.truth`` and each :class:`MrsExposure` ``.truth``): the star (type,
RV, H-alpha profile), per exposure the LMJM, the mid-exposure UTC MJD, EXPTIME, whether it is
empty (clouds: ~1 % of the light, no usable signal: ``low_signal``), the H-alpha emission EW
that exposure carries (it changes from exposure to exposure for emission stars), the true
H-alpha EW on the noiseless model (``ha_ew_true`` against the true continuum, ``ha_ew_west_true``
against the West et al. side bands, both on the exposure's float64 grid; red tables only), and
the cosmic-ray hits (pixel indices in the order the reader returns, ascending wavelength, and
their wavelengths). Co-adds have no cosmic rays (the pipeline rejects them) and average the
non-empty exposures.

Deterministic by ``(seed, index)``; nothing here changes the LRS/Ondřejov generator's output.
The synthetic LAMOST archive includes MRS files when ``synth.mrs_fraction`` > 0
(:func:`spectraldl.synth.generate.generate_indices`, truth rows from
:func:`spectraldl.synth.generate.mrs_truth_rows`); :func:`make_mrs` and :func:`write_mrs` also make
them on demand.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import physics as ph
from .fitswrite import bintable, card, commentary, hdu_bytes
from .formats import _mjd_to_date, compress
from .observing import designation

C = card
R_MRS = 7500.0
LAYOUTS = ("dr7", "dr9")
N_EXPOSURE_PIXELS = 4136
_PROFILES = ("absorption", "single", "mdwarf", "double")


@dataclass
class MrsExposure:
    """One table of an MRS file, as the reader returns it (ascending) plus how it is stored."""

    name: str                  # COADD_B, COADD_R, B-<lmjm>, R-<lmjm>
    arm: str                   # "B" or "R"
    wavelength: np.ndarray     # float64, ascending, what the reader returns
    loglam: np.ndarray         # float32 as stored (ascending order)
    flux: np.ndarray           # float32, ascending order
    ivar: np.ndarray           # float32
    mask: np.ndarray           # int16 (ANDMASK / PIXMASK)
    descending: bool           # stored red to blue
    header: dict[str, Any] = field(default_factory=dict)
    truth: dict[str, Any] = field(default_factory=dict)


@dataclass
class MrsSynth:
    """One synthetic MRS file."""

    index: int
    layout: str
    relpath: str
    primary: dict[str, Any]
    tables: list[MrsExposure]
    truth: dict[str, Any] = field(default_factory=dict)

    def table(self, name: str) -> MrsExposure:
        return next(t for t in self.tables if t.name == name)

    @property
    def red_exposures(self) -> list[MrsExposure]:
        return [t for t in self.tables if t.name.startswith("R-")]


def exposure_loglam(start: float, n: int = N_EXPOSURE_PIXELS) -> np.ndarray:
    """The detector's grid of one arm (log10 Å, ascending): steps from 1.03e-5 to 7.4e-6 dex."""
    steps = np.linspace(1.03e-5, 7.4e-6, n - 1)
    return (np.log10(start) + np.concatenate([[0.0], np.cumsum(steps)])).astype(np.float32)


def coadd_loglam(start_log: float, n: int) -> np.ndarray:
    """The co-add's log-linear grid (1e-5 dex) starting at a round ``start_log`` (``3.7975``)."""
    return (start_log + 1e-5 * np.arange(n)).astype(np.float32)


def _star(rng: np.random.Generator, profile: str | None) -> dict[str, Any]:
    profile = profile or str(rng.choice(_PROFILES, p=[0.4, 0.3, 0.2, 0.1]))
    code = {"absorption": rng.uniform(30, 55), "single": rng.uniform(10, 25), "mdwarf": rng.uniform(60, 65),
            "double": rng.uniform(10, 22)}[profile]
    vsini = float(rng.uniform(150, 300) if profile in ("single", "double") else rng.uniform(2, 15))
    p = ph.draw_emission(rng, profile, float(code), vsini) if profile != "absorption" else {}
    return {"profile": profile, "code": float(code), "vsini": vsini, "rv": float(rng.normal(0, 30)),
            "metal": float(np.exp(rng.normal(0, 0.2))), "emission": p, "teff": ph.curve("tcol", float(code)),
            "ra": float(rng.uniform(0, 360)), "dec": float(np.degrees(np.arcsin(rng.uniform(-0.17, 1.0))))}


def _model(w: np.ndarray, star: dict[str, Any], ew_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(F/Fc, continuum shape) of the star on ``w`` (vacuum) at R 7,500, emission scaled by ``ew_scale``."""
    norm = ph.absorption(w, ph.stellar_lines(star["code"], "vacuum", R_MRS, star["rv"], star["vsini"], star["metal"]))
    if star["emission"]:
        p = dict(star["emission"], ew=star["emission"]["ew"] * ew_scale)
        norm = norm + ph.emission_lines(w, star["profile"], p, "vacuum", star["rv"], R_MRS)
    cont = ph.blackbody(w, star["teff"])
    return norm, cont / np.median(cont)


def make_mrs(index: int, seed: int, layout: str = "dr7", *, n_exposures: int | None = None,
             empty: tuple[int, ...] | None = None, profile: str | None = None,
             cosmic_rate: float = 3.0) -> MrsSynth:
    """Generate MRS file ``index`` of a run (nothing written).

    ``n_exposures`` (default 3-7), ``empty`` (indices of cloud-covered exposures; default: each
    with probability 0.15), ``profile`` (``absorption``, ``single``, ``mdwarf``, ``double``) and
    ``cosmic_rate`` (mean hits per exposure per arm) override the draws.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    rng = np.random.default_rng([seed, 3, index])
    star = _star(rng, profile)
    nexp = int(n_exposures if n_exposures is not None else rng.integers(3, 8))
    if empty is None:
        empty = tuple(int(i) for i in np.flatnonzero(rng.random(nexp) < 0.15))
    exptime = int(rng.choice([600, 900, 1200], p=[0.15, 0.15, 0.7]))
    lmjd = int(58250 + rng.integers(0, 1500))
    lmjm0 = lmjd * 1440 + int(rng.integers(60, 300))  # local minutes after local midnight
    lmjms = [lmjm0 + k * (exptime // 60 + int(rng.integers(3, 6))) for k in range(nexp)]
    mids = [m / 1440.0 - 8.0 / 24.0 + exptime / 2.0 / 86400.0 for m in lmjms]
    level = float(np.exp(rng.uniform(np.log(800.0), np.log(8000.0))))
    transparency = np.clip(rng.normal(1.0, 0.15, nexp), 0.5, 1.2)
    for k in empty:
        transparency[k] = rng.uniform(0.003, 0.01)
    if star["emission"]:  # emission that changes from exposure to exposure
        ew_scale = np.clip(1.0 + np.cumsum(rng.normal(0, 0.15, nexp)), 0.3, 2.0)
    else:
        ew_scale = np.ones(nexp)
    red_start = float(rng.uniform(6268.0, 6310.0))
    blue_start = float(rng.uniform(4895.0, 4910.0))
    tables: list[MrsExposure] = []
    exp_tables: dict[str, list[MrsExposure]] = {"B": [], "R": []}
    sky = 0.02 * level  # sky + read noise floor, in flux units
    for arm, start in (("B", blue_start), ("R", red_start)):
        loglam = exposure_loglam(start)
        w = 10.0 ** loglam.astype(np.float64)
        for k in range(nexp):
            norm, shape = _model(w, star, float(ew_scale[k]))
            cont = level * transparency[k] * shape * (0.5 if arm == "B" else 1.0)
            model = cont * norm
            sigma = np.sqrt(np.clip(model, 0, None) * 1.0 + sky ** 2 * (0.5 + 0.5 * rng.random()))
            flux = model + rng.standard_normal(w.size) * sigma
            hits, hit_w = [], []
            for _ in range(int(rng.poisson(cosmic_rate))):
                i = int(rng.integers(5, w.size - 6))
                width = int(rng.choice([1, 2, 3], p=[0.5, 0.35, 0.15]))
                amp = float(rng.uniform(15, 80)) * float(np.median(sigma))
                prof = amp * np.array([1.0, 0.6, 0.3][:width])
                flux[i:i + width] += prof
                hits.append([i + j for j in range(width)])
                hit_w.append(round(float(w[i]), 3))
            if arm == "R" and rng.random() < 0.3 and k not in empty:  # a hit on H-alpha itself
                i = int(np.searchsorted(w, ph.HALPHA_VAC * (1 + star["rv"] / ph.C_KMS) + rng.uniform(-1.5, 1.5)))
                flux[i] += float(rng.uniform(20, 60)) * float(sigma[i])
                hits.append([i])
                hit_w.append(round(float(w[i]), 3))
            ivar = (1.0 / sigma ** 2).astype(np.float32)
            mask = np.zeros(w.size, dtype=np.int16)
            lmjm = lmjms[k]
            good_cont = (w > 6500) & (w < 6760) if arm == "R" else slice(None)
            snr = float(np.median((flux * np.sqrt(ivar))[good_cont]))
            ha = ph.halpha_ew(w, norm) if arm == "R" else None
            ha_west = ph.halpha_ew(w, model / ph.west_continuum(w, model)) if arm == "R" else None
            t = MrsExposure(f"{arm}-{lmjm}", arm, w, loglam, flux.astype(np.float32), ivar, mask,
                            descending=arm == "R",
                            header={"lmjm": lmjm, "exptime": exptime, "snr": round(max(snr, 0.0), 2)},
                            truth={"lmjm": lmjm, "mjd": mids[k], "exptime": exptime, "empty": k in empty,
                                   "cosmic_pixels": sorted(i for h in hits for i in h),
                                   "cosmic_hits": [sorted(h) for h in hits], "cosmic_wavelengths": hit_w,
                                   "emission_scale": round(float(ew_scale[k]), 4),
                                   "ha_ew_true": None if ha is None else round(float(ha), 4),
                                   "ha_ew_west_true": None if ha_west is None else round(float(ha_west), 4),
                                   "snr": round(snr, 2)})
            exp_tables[arm].append(t)
    used = [k for k in range(nexp) if k not in empty] or list(range(nexp))
    coadds = []
    for arm, start_log, n in (("B", round(np.log10(blue_start) + 0.0005, 4), int(rng.integers(4100, 4157))),
                              ("R", round(np.log10(red_start) + 0.0005, 4), int(rng.integers(3690, 3825)))):
        loglam = coadd_loglam(start_log, n)
        w = 10.0 ** loglam.astype(np.float64)
        norm, shape = _model(w, star, float(np.mean(ew_scale[used])))
        cont = level * float(np.sum(transparency[used])) * shape * (0.5 if arm == "B" else 1.0)
        model = cont * norm
        sigma = np.sqrt(np.clip(model, 0, None) + len(used) * sky ** 2 * 0.75)
        flux = model + rng.standard_normal(n) * sigma
        ivar = (1.0 / sigma ** 2).astype(np.float32)
        ivar[-int(rng.integers(3, 11)):] = 0.0  # the co-adds' last pixels carry no ivar, as in the real files
        good_cont = (w > 6500) & (w < 6760) if arm == "R" else slice(None)
        snr = float(np.median((flux * np.sqrt(np.maximum(ivar, 0)))[good_cont]))
        coadds.append(MrsExposure(f"COADD_{arm}", arm, w, loglam, flux.astype(np.float32), ivar,
                                  np.zeros(n, dtype=np.int16), descending=False,
                                  header={"lmjms": [lmjms[k] for k in used], "snr": round(max(snr, 0.0), 2)},
                                  truth={"mjd": float(np.mean([mids[k] for k in used])),
                                         "exptime": float(exptime * len(used)),
                                         "emission_scale": round(float(np.mean(ew_scale[used])), 4),
                                         "empty": all(k in empty for k in range(nexp)),
                                         "ha_ew_true": round(float(ph.halpha_ew(w, norm)), 4) if arm == "R" else None,
                                         "ha_ew_west_true": round(float(ph.halpha_ew(w, model / ph.west_continuum(w, model))), 4)
                                         if arm == "R" else None,
                                         "cosmic_pixels": [], "snr": round(snr, 2)}))
    tables = coadds + exp_tables["B"] + exp_tables["R"]
    if layout == "dr9":  # WAVELENGTH is stored as float32: that is what the reader returns
        for t in tables:
            t.wavelength = t.wavelength.astype(np.float32).astype(np.float64)
    ra, dec = round(star["ra"], 6), round(star["dec"], 6)
    spid, fibre = int(rng.integers(1, 17)), int(rng.integers(1, 251))
    planid = f"TD{int(ra / 15):02d}{int(ra * 4) % 60:02d}{int(ra * 240) % 60:02d}N{abs(int(dec)):02d}{int(abs(dec) * 60) % 60:02d}00K01"
    stem = f"med-{lmjd}-{planid}_sp{spid:02d}-{fibre:03d}"
    primary = {"filename": stem + ".fits", "obsid": int(600000000 + index * 1000 + fibre), "lmjd": lmjd,
               "planid": planid, "ra": ra, "dec": dec, "desig": designation(ra, dec), "fiberid": fibre, "spid": spid,
               "objname": str(int(rng.integers(10 ** 17, 10 ** 18))), "nexp": nexp, "mids": mids, "exptime": exptime,
               "helio_rv": round(float(rng.uniform(-30, 30)), 5), "lmjms": lmjms,
               "cosmetic": [round(float(x), 2) for x in rng.uniform([0.8, 0, -10, -20, 5, 0, 0], [4, 29.5, 30, 10, 90, 360, 8])]}
    truth = {"index": index, "layout": layout, "file": stem + ".fits", "profile": star["profile"],
             "spectral_type": ph.type_name(star["code"]), "rv": round(star["rv"], 3), "n_exposures": nexp,
             "empty": sorted(int(k) for k in empty), "designation": primary["desig"]}
    return MrsSynth(index, layout, f"{lmjd}/{planid}/{stem}.fits", primary, tables, truth)


# -- writing -------------------------------------------------------------------------------------------
def _primary_cards(m: MrsSynth) -> list[str]:
    p = m.primary
    seeing, moon, tair, dew, hum, windd, winds = p["cosmetic"]
    mid0 = p["mids"][0]
    beg_local = p["lmjms"][0] / 1440.0
    end_local = p["lmjms"][-1] / 1440.0 + p["exptime"] / 86400.0
    return [
        C("SIMPLE", True, "Primary Header created by MWRFITS v1.11b", tight=True), C("BITPIX", 16, ""),
        C("NAXIS", 0, ""), C("EXTEND", True, "Extensions may be present"), commentary(""),
        commentary("COMMENT", "--------FILE INFORMATION"), C("FILENAME", p["filename"], ""),
        C("OBSID", p["obsid"], "Unique number ID of this spectrum"), C("AUTHOR", "LAMOST Pipeline", "Who compiled the information"),
        C("DATA_V", "LAMOST DR7" if m.layout == "dr7" else "LAMOST DR9", "Data release version"),
        C("N_EXTEN", len(m.tables), "The extension number"), C("EXTNAME", "Information", "The extension name"),
        C("ORIGIN", "NAOC-LAMOST", "Organization responsible for creating this file"),
        C("DATE", _mjd_to_date(p["lmjd"] + 240.4)[:19], "Time when this HDU is created (UTC)"),
        commentary("COMMENT", "--------TELESCOPE PARAMETERS"), C("TELESCOP", "LAMOST", "GuoShouJing Telescope"),
        C("LONGITUD", 117.58, "[deg] Longitude of site"), C("LATITUDE", 40.39, "[deg] Latitude of site"),
        C("FOCUS", 19964, "[mm] Telescope focus"), C("CAMPRO", "NEWCAM", "Camera program name"),
        C("CAMVER", "v2.0", "Camera program version"), commentary("COMMENT", "--------OBSERVATION PARAMETERS"),
        C("DATE-OBS", _mjd_to_date(mid0)[:19], "The observation median UTC"),
        C("DATE-BEG", _mjd_to_date(beg_local)[:21], "The observation start local time"),
        C("DATE-END", _mjd_to_date(end_local)[:21], "The observation end local time"),
        C("LMJD", p["lmjd"], "Local Modified Julian Day"), C("MJD", p["lmjd"] - 1, "Modified Julian Day"),
        C("PLANID", p["planid"], "Plan ID in use"), C("RA", p["ra"], "[deg] Right ascension of object"),
        C("DEC", p["dec"], "[deg] Declination of object"), C("RA_OBS", p["ra"], "[deg] Right ascension during observing"),
        C("DEC_OBS", p["dec"], "[deg] Declination during observing"),
        C("OFFSET", False, "Whether there's a offset during observing"),
        C("OFFSET_V", 0.0, "Offset value in arcsecond", ".2f"),
        C("GL", round((p["ra"] * 0.7 + 33.0) % 360, 6), "[deg] Galactic longitude of object"),
        C("GB", round(p["dec"] * 0.5, 6), "[deg] Galactic latitude of object"),
        C("DESIG", p["desig"], "Designation of LAMOST target"), C("FIBERID", p["fiberid"], "Fiber ID of Object"),
        C("CELL_ID", f"G{p['spid']:02d}{p['fiberid'] % 100:02d}", "Fiber Unit ID on the focal plane"),
        C("X_VALUE", round(-393.954 + p["fiberid"], 3), "[mm] X coordinate of object on the focal plane", ".3f"),
        C("Y_VALUE", round(-487.334 + p["spid"], 3), "[mm] Y coordinate of object on the focal plane", ".3f"),
        C("OBJNAME", p["objname"], "Name of object"), C("OBJTYPE", "STAR", "Object type from input catalog"),
        C("TSOURCE", "LAMOST", "Name of input catalog"), C("TCOMMENT", "", "Target information"),
        C("TFROM", "", "Target catalog"), C("FIBERTYP", "Obj", "Fiber type of object"),
        C("FIBERMAS", 0, "Bitmask of warning values, 0 means all is well"), C("MAGTYPE", "Kp", "Magnitude type of object"),
        *[C(f"MAG{i}", 11.80 if i == 1 else 99.0, f"[mag] Mag{i} of object", ".2f") for i in range(1, 8)],
        C("OBS_TYPE", "OBJ", "The type of target (OBJ, FLAT, ARC or BIAS)"), C("OBSCOMM", "Science", "Science or Test"),
        C("RADECSYS", "FK5", "Equatorial coordinate system"), C("EQUINOX", 2000.0, "Equinox in years", ".2f"),
        C("SKYLIST", "skylines.dat", "Sky emission line list"),
        C("NEXP_B", p["nexp"], "Number of valid blue exposures"),
        C("COMBIN_B", True, "Whether the combined data of B band exists"),
        C("NEXP_R", p["nexp"], "Number of valid red exposures"),
        C("COMBIN_R", True, "Whether the combined data of R band exists"),
        C("SCAMEAN", 33.32, "[ADU] Mean level of scatter light", ".2f"),
        commentary("COMMENT", "--------SPECTROGRAPH PARAMETERS"), C("SPID", p["spid"], "Spectrograph ID"),
        C("SPRA", round(p["ra"] + 0.24, 7), "[deg] Average RA of this spectrograph"),
        C("SPDEC", round(p["dec"] + 0.21, 7), "[deg] Average DEC of this spectrograph"),
        C("SLIT_MOD", "x2/3", "Slit mode, x1, x2/3 or x1/2"), commentary("COMMENT", "--------WEATHER CONDITION"),
        C("SEEING", seeing, "[arcsec] Seeing during exposure", ".2f"),
        C("MOONPHA", moon, "[day] Moon phase for a 29.53 days period", ".2f"),
        C("TEMP_AIR", tair, "[deg] Temperature outside dome", ".2f"),
        C("TEMP_FP", 0.0, "[degree celsius] Temprature of the focalplane", ".2f"),
        C("DEWPOINT", dew, "[deg]", ".2f"), C("DUST", "", "Reservation"), C("HUMIDITY", hum, "", ".2f"),
        C("WINDD", windd, "[deg] Wind direction", ".2f"), C("WINDS", winds, "[m/s] Wind speed", ".2f"),
        C("SKYLEVEL", "", "Reservation"), commentary("COMMENT", "--------DATA REDUCTION PARAMETERS"),
        C("EXTRACT", "aperture", "Extraction method"), C("SFLATTEN", True, "Super flat has been applied"),
        C("PCASKYSB", True, "PCA sky-subtraction has been applied"), C("NSKIES", 20, "Sky fiber number"),
        C("SKYCHI2", 2.5, "Mean chi^2 of sky-subtraction", ".1f"), C("HELIO", True, "Heliocentric correction"),
        C("HELIO_RV", p["helio_rv"], "[km/s] Heliocentric correction"),
        C("VACUUM", True, "Wavelengths are in vacuum"),
    ]


def _table_bytes(m: MrsSynth, t: MrsExposure) -> bytes:
    order = slice(None, None, -1) if t.descending else slice(None)
    coadd = t.name.startswith("COADD")
    masks = [("ANDMASK", t.mask), ("ORMASK", t.mask)] if coadd else [("PIXMASK", t.mask)]
    if m.layout == "dr7":
        cols = [("FLUX", t.flux), ("IVAR", t.ivar), ("LOGLAM", t.loglam)] + masks
        cols = [(k, np.asarray(a)[order]) for k, a in cols]
        fields, data = bintable(cols, len(t.flux))
    else:
        f4 = np.float32
        with np.errstate(divide="ignore", invalid="ignore"):
            normalised = t.flux / np.median(t.flux[t.flux > 0]) if (t.flux > 0).any() else t.flux
        cols = [("FLUX", t.flux), ("IVAR", t.ivar), ("WAVELENGTH", t.wavelength)] + masks + [("NORMALIZATION", normalised)]
        cols = [(k, np.asarray(a, dtype=f4)[order][None, :]) for k, a in cols]
        fields, data = bintable(cols, 1)
    head = [C("XTENSION", "BINTABLE", "Binary table written by MWRFITS v1.11b", tight=True),
            C("BITPIX", 8, "Required value", tight=True), C("NAXIS", 2, "Required value", tight=True),
            C("NAXIS1", sum(f[2] for f in fields), "Number of bytes per row", tight=True),
            C("NAXIS2", 1 if m.layout == "dr9" else len(t.flux), "Number of rows", tight=True),
            C("PCOUNT", 0, "Normally 0 (no varying arrays)", tight=True), C("GCOUNT", 1, "Required value", tight=True),
            C("TFIELDS", len(fields), "Number of columns in table", tight=True), commentary("COMMENT"),
            commentary("COMMENT", " *** End of mandatory fields ***"), commentary("COMMENT"),
            C("EXTNAME", t.name, "The extension name")]
    if coadd:
        lm = t.header["lmjms"]
        for i in range(0, len(lm), 3):
            C_key = f"LMJMLIS{i // 3}"
            head.append(C(C_key, "-".join(str(x) for x in lm[i:i + 3]), "Local Modified Julian Minute list"))
    else:
        head += [C("LMJM", str(t.header["lmjm"]), "Local Modified Julian Minute"),
                 C("EXPTIME", t.header["exptime"], "[s] Exposure duration time")]
    head += [C("SNR", t.header["snr"], "Signal to noise ratio", ".2f"),
             C("LAMPLIST", "lampsc_med.dat", "Arc lamp emission line list"), commentary("COMMENT"),
             commentary("COMMENT", " *** Column names ***"), commentary("COMMENT")]
    head += [C(f"TTYPE{i + 1}", f[0], "") for i, f in enumerate(fields)]
    head += [commentary("COMMENT"), commentary("COMMENT", " *** Column formats ***"), commentary("COMMENT")]
    head += [C(f"TFORM{i + 1}", f[1], "") for i, f in enumerate(fields)]
    return hdu_bytes(head, data)


def mrs_bytes(m: MrsSynth) -> bytes:
    """The file's bytes: the primary, then every table in file order."""
    return hdu_bytes(_primary_cards(m)) + b"".join(_table_bytes(m, t) for t in m.tables)


def write_mrs(out_dir: str, m: MrsSynth, gzip: bool = False, gzip_level: int = 2) -> int:
    """Write ``m`` under ``out_dir`` (``.fits``, or ``.fits.gz`` with ``gzip``); returns the bytes written."""
    data = mrs_bytes(m)
    path = os.path.join(out_dir, m.relpath + (".gz" if gzip else ""))
    if gzip:
        data = compress(data, gzip_level)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)
    return len(data)
