"""Candidate catalogue: emission and double-peak spectra above the model's thresholds, ranked.

One row per star (repeat observations grouped by LAMOST designation, across the low- and the
medium-resolution survey), stars apart from galaxies and QSOs (whose redshifted lines are not
stellar H-alpha). An MRS night counts by its single exposures; its co-add ``COADD_R`` averages
them and counts as an observation only where none of them was ingested. Written as CSV and as a VOTable with
units and UCDs so TOPCAT and Aladin open it, with the data acknowledgements in its metadata.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..models import CLASSES

ACKNOWLEDGEMENT = (
    "Guoshoujing Telescope (the Large Sky Area Multi-Object Fiber Spectroscopic Telescope, LAMOST) is a "
    "National Major Scientific Project built by the Chinese Academy of Sciences; LAMOST data are public "
    "after their proprietary period. Training spectra: Ondrejov 2 m (Perek) telescope, CCD700, Astronomical "
    "Institute of the Czech Academy of Sciences, free for science and teaching with citation. Method after "
    "Podsztavek (2017) and Skoda, Podsztavek & Tvrdik, A&A 643, A122 (2020)."
)
CANDIDATE_CLASSES = ("emission", "double_peak")
#: The columns of ``catalogue.csv`` (and ``nebular.csv``), in order.
CATALOGUE_COLUMNS = ["rank", "designation", "ra", "dec", "obsid", "candidate_class", "p_best", "p_mean",
                     "n_candidate_obs", "n_obs", "n_emission_obs", "ha_ew_median", "ha_ew_min", "ha_ew_max",
                     "ha_variable", "ha_profile", "ha_ew", "ha_ew_err", "nebular", "lamost_class", "lamost_subclass",
                     "p_emission", "p_absorption", "p_double_peak", "surveys", "mjd_first", "mjd_last",
                     "best_source_path", "best_exposure"]
#: Measured H-alpha profiles that are emission (spectraldl.halpha.PROFILES).
EMISSION_PROFILES = ("single", "double", "pcygni", "filled")
#: Significance of an equivalent-width change between two epochs that makes a star variable.
VARIABILITY_SIGMA = 3.0
#: Systematic error (Å) added in quadrature to each epoch's ``ha_ew_err`` (``report.ew_floor``):
#: the pixel noise alone misses what changes between nights and exposures (telluric water lines
#: with the airmass, continuum placement). The real F5 star of the MRS files, constant, scatters
#: by 0.067 Å over 18 single exposures against a median error of 0.038 Å (chi2/dof 3.1), its 19
#: epochs (with the LRS spectrum) spanning 2.96-3.23 Å: with this floor it is not variable.
EW_FLOOR = 0.1
#: Units and UCDs of the catalogue's columns (VOTable).
UNITS = {"ra": "deg", "dec": "deg", "mjd_first": "d", "mjd_last": "d",
         **{c: "0.1nm" for c in ("ha_ew_median", "ha_ew_min", "ha_ew_max", "ha_ew",
                                 "ha_ew_err")}}  # Å, as the VOUnit standard writes it
UCDS = {"designation": "meta.id;meta.main", "ra": "pos.eq.ra;meta.main", "dec": "pos.eq.dec;meta.main",
        "obsid": "meta.id", "p_best": "stat.probability", "p_mean": "stat.probability",
        "p_emission": "stat.probability", "p_absorption": "stat.probability", "p_double_peak": "stat.probability",
        "candidate_class": "meta.code.class", "lamost_class": "src.class", "lamost_subclass": "src.spType",
        "n_obs": "meta.number", "n_candidate_obs": "meta.number", "n_emission_obs": "meta.number",
        "ha_ew_median": "spect.line.eqWidth;stat.median", "ha_ew_min": "spect.line.eqWidth;stat.min",
        "ha_ew_max": "spect.line.eqWidth;stat.max", "ha_ew": "spect.line.eqWidth",
        "ha_ew_err": "stat.error;spect.line.eqWidth", "ha_variable": "meta.code;src.var",
        "ha_profile": "meta.code.class;spect.line", "nebular": "meta.code;spect.line", "surveys": "meta.dataset",
        "rank": "meta.record", "best_source_path": "meta.ref.url", "best_exposure": "meta.id;obs.exposure",
        "mjd_first": "time.start;obs", "mjd_last": "time.end;obs"}


def select_candidates(scores: pd.DataFrame, thresholds: dict[str, float]) -> pd.DataFrame:
    """Per-spectrum candidates: ``p_<class> >= threshold`` for emission or double_peak.

    Adds ``candidate_class`` (the passing class with the higher probability) and ``p_candidate``.
    """
    passing = {c: scores[f"p_{c}"] >= thresholds.get(c, 0.5) for c in CANDIDATE_CLASSES}
    any_pass = passing["emission"] | passing["double_peak"]
    out = scores[any_pass].copy()
    pe, pd_ = out["p_emission"].where(passing["emission"][any_pass], -1), out["p_double_peak"].where(passing["double_peak"][any_pass], -1)
    out["candidate_class"] = np.where(pe >= pd_, "emission", "double_peak")
    out["p_candidate"] = np.maximum(pe, pd_).astype(float)
    return out.sort_values("p_candidate", ascending=False)


def star_key(df: pd.DataFrame) -> pd.Series:
    """The key observations of one star share: ``star`` where :func:`assign_stars` set it, else
    the LAMOST designation, else the file."""
    key = df["designation"].fillna(df["source_path"])
    return df["star"].fillna(key) if "star" in df else key


#: Observations of one star closer than this (arcsec) are grouped: LAMOST designations of one star
#: differ between surveys and releases (the real MRS and LRS files of one F5 star: J192814.09+435531.0
#: and J192814.09+435530.8, 0.2" apart).
MATCH_ARCSEC = 3.0


def unit_vectors(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """Cartesian unit vectors of (ra, dec) in degrees."""
    r, d = np.radians(ra), np.radians(dec)
    return np.column_stack([np.cos(d) * np.cos(r), np.cos(d) * np.sin(r), np.sin(d)])


def assign_stars(cands: pd.DataFrame, radius_arcsec: float = MATCH_ARCSEC) -> pd.DataFrame:
    """``cands`` (best first) with ``star``: candidate spectra within ``radius_arcsec`` of each
    other (friends of friends) are one star, keyed by its best spectrum's designation (its file
    when it has none); spectra without coordinates keep their own key.

    >>> df = pd.DataFrame({"designation": ["A", "B", "C"], "source_path": ["a", "b", "c"],
    ...                    "ra": [10.0, 10.0 + 1 / 3600, 50.0], "dec": [20.0, 20.0, 20.0]})
    >>> assign_stars(df)["star"].tolist()
    ['A', 'A', 'C']
    """
    from scipy.sparse.csgraph import connected_components
    from scipy.sparse import coo_matrix
    from scipy.spatial import cKDTree

    out = cands.copy()
    own = cands["designation"].fillna(cands["source_path"]).to_numpy(object)
    ra, dec = (pd.to_numeric(cands[c], errors="coerce").to_numpy(float) for c in ("ra", "dec"))
    ok = np.flatnonzero(np.isfinite(ra) & np.isfinite(dec))
    star = own.copy()
    if len(ok) > 1:
        chord = 2.0 * np.sin(np.radians(radius_arcsec / 3600.0) / 2.0)
        pairs = cKDTree(unit_vectors(ra[ok], dec[ok])).query_pairs(chord, output_type="ndarray")
        graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(ok), len(ok)))
        _, label = connected_components(graph, directed=False)
        first = pd.Series(np.arange(len(ok))).groupby(label).transform("min").to_numpy()  # best first
        star[ok] = own[ok][first]
    out["star"] = star
    return out


def exposure_of(df: pd.DataFrame) -> pd.Series:
    """The ``exposure`` column, empty where a frame (or an older table) has none."""
    return df["exposure"].fillna("") if "exposure" in df else pd.Series("", index=df.index)


def survey_of(df: pd.DataFrame) -> pd.Series:
    """``MRS`` for rows of LAMOST medium-resolution files, ``LRS`` for the others."""
    fmt = df["file_format"] if "file_format" in df else pd.Series("", index=df.index)
    return pd.Series(np.where(fmt.eq("lamost_mrs") | exposure_of(df).ne(""), "MRS", "LRS"), index=df.index)


def epochs(observations: pd.DataFrame) -> pd.DataFrame:
    """The observations that are epochs of their star: every LRS spectrum and MRS single exposure,
    and an MRS co-add only where no exposure of its file is among the observations (it is their
    average, not another epoch)."""
    exp = exposure_of(observations)
    coadd = exp.str.startswith("COADD")
    with_exposures = set(observations.loc[exp.ne("") & ~coadd, "source_path"])
    return observations[~(coadd & observations["source_path"].isin(with_exposures))]


def ew_variable(ew: np.ndarray, err: np.ndarray, sigma: float = VARIABILITY_SIGMA, floor: float = 0.0) -> bool:
    """Whether two epochs' equivalent widths differ by more than ``sigma`` times their combined
    error, each epoch's error with ``floor`` (Å, systematic) added in quadrature.

    Examples
    --------
    >>> ew_variable(np.array([-10.0, -2.0]), np.array([0.5, 0.5]))
    True
    >>> ew_variable(np.array([-10.0, -9.5, np.nan]), np.array([0.5, 0.5, 0.4]))
    False
    >>> ew_variable(np.array([2.96, 3.23]), np.array([0.04, 0.04])), ew_variable(np.array([2.96, 3.23]), np.array([0.04, 0.04]), floor=0.1)
    (True, False)
    """
    ok = np.isfinite(ew) & np.isfinite(err)
    ew, err = ew[ok], err[ok]
    if len(ew) < 2:
        return False
    diff = np.abs(ew[:, None] - ew[None, :])
    return bool((diff > sigma * np.sqrt(err[:, None] ** 2 + err[None, :] ** 2 + 2.0 * floor ** 2)).any())


def group_by_star(cands: pd.DataFrame, observations: pd.DataFrame, ew_floor: float = EW_FLOOR) -> pd.DataFrame:
    """One row per candidate star (:data:`CATALOGUE_COLUMNS`), ranked by the best probability.

    Parameters
    ----------
    cands : DataFrame
        Candidate spectra (:func:`select_candidates`), best first.
    observations : DataFrame
        Every observation of those stars (candidates or not): ``source_path``, ``exposure``,
        ``designation`` and, where measured, ``obsid``, ``mjd``, ``file_format``, ``ha_ew``,
        ``ha_ew_err``, ``ha_profile``, ``nebular``.

    Returns
    -------
    DataFrame
        Per star: the best spectrum's probabilities, obsid, profile and EW; ``n_obs``,
        ``n_candidate_obs`` (epochs above the thresholds; at least 1: an MRS co-add whose
        exposures stay below counts as one), ``n_emission_obs`` (observations whose measured profile is
        emission); the median, minimum and maximum EW over the observations; ``ha_variable``
        (:func:`ew_variable` over the observations, with ``ew_floor``); ``nebular`` (every observation in emission,
        by the measurement or above the network's thresholds, is nebular); ``surveys`` (``LRS``,
        ``MRS`` or ``LRS,MRS``), ``mjd_first`` / ``mjd_last``. The observations are the star's
        :func:`epochs`. Stars without finite coordinates are left out.
    """
    if "star" not in cands:
        cands = assign_stars(cands)
    obs = observations.assign(k=star_key(observations), exposure=exposure_of(observations))
    obs = epochs(obs.drop_duplicates(["source_path", "exposure"]))
    for col in ("obsid", "ha_ew", "ha_ew_err", "ha_profile", "nebular", "mjd"):
        if col not in obs:
            obs[col] = None
    obs = obs.assign(survey=survey_of(obs), spectrum=obs["source_path"] + "\0" + obs["exposure"])
    by_star = dict(tuple(obs.groupby("k", sort=False)))
    rows = []
    cands = cands.assign(k=star_key(cands), exposure=exposure_of(cands))
    cands = cands.assign(spectrum=cands["source_path"] + "\0" + cands["exposure"])
    for k, g in cands.groupby("k", sort=False):
        best = g.iloc[0]
        o = by_star.get(k)
        if o is None:
            o = epochs(g).assign(survey=survey_of(g))
        g_epochs = g[g["spectrum"].isin(o["spectrum"])]  # a co-add beside its exposures is no epoch
        ew = pd.to_numeric(o["ha_ew"], errors="coerce").to_numpy(float)
        err = pd.to_numeric(o["ha_ew_err"], errors="coerce").to_numpy(float)
        emitting = o["ha_profile"].isin(EMISSION_PROFILES).to_numpy()
        # emission by the measurement or by the network: all of it nebular makes the star nebular
        either = emitting | o["spectrum"].isin(g["spectrum"]).to_numpy()
        neb = o["nebular"].eq(True).to_numpy()  # None (not measured) is not nebular
        mine = o[o["spectrum"] == best["spectrum"]]
        mjd = pd.to_numeric(o["mjd"], errors="coerce").to_numpy(float)
        b = mine.iloc[0] if len(mine) else best
        ra, dec = float(g["ra"].mean()), float(g["dec"].mean())
        if not (np.isfinite(ra) and np.isfinite(dec)):
            continue
        finite = np.isfinite(ew)
        rows.append({
            "designation": best["designation"], "ra": ra, "dec": dec,
            "obsid": b.get("obsid"), "candidate_class": best["candidate_class"],
            "p_best": float(best["p_candidate"]), "p_mean": float(g["p_candidate"].mean()),
            "n_candidate_obs": max(int(len(g_epochs)), 1), "n_obs": int(len(o)), "n_emission_obs": int(emitting.sum()),
            "ha_ew_median": float(np.median(ew[finite])) if finite.any() else np.nan,
            "ha_ew_min": float(ew[finite].min()) if finite.any() else np.nan,
            "ha_ew_max": float(ew[finite].max()) if finite.any() else np.nan,
            "ha_variable": ew_variable(ew, err, floor=ew_floor), "ha_profile": b.get("ha_profile"),
            "ha_ew": b.get("ha_ew"), "ha_ew_err": b.get("ha_ew_err"),
            "nebular": bool(either.any() and neb[either].all()),
            "lamost_class": best["lamost_class"], "lamost_subclass": best["lamost_subclass"],
            "p_emission": float(best["p_emission"]), "p_absorption": float(best["p_absorption"]),
            "p_double_peak": float(best["p_double_peak"]), "surveys": ",".join(sorted(set(o["survey"]))),
            "mjd_first": float(np.nanmin(mjd)) if np.isfinite(mjd).any() else np.nan,
            "mjd_last": float(np.nanmax(mjd)) if np.isfinite(mjd).any() else np.nan,
            "best_source_path": best["source_path"], "best_exposure": best["exposure"],
        })
    if not rows:
        return pd.DataFrame(columns=CATALOGUE_COLUMNS)
    df = pd.DataFrame(rows)
    df["obsid"] = pd.to_numeric(df["obsid"], errors="coerce").astype("Int64")
    for col in ("ha_ew", "ha_ew_err"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    df["ha_profile"] = df["ha_profile"].fillna("").astype(str)
    df = df.sort_values(["p_best", "n_candidate_obs"], ascending=False).reset_index(drop=True)
    df.insert(0, "rank", np.arange(1, len(df) + 1))
    return df[CATALOGUE_COLUMNS]


def split_nebular(stars: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(stellar, nebular)``: stars whose emission is only nebular leave the catalogue (each
    part ranked anew)."""
    neb = stars["nebular"].eq(True)
    out = []
    for part in (stars[~neb], stars[neb]):
        part = part.reset_index(drop=True).copy()
        part["rank"] = np.arange(1, len(part) + 1)
        out.append(part)
    return out[0], out[1]


def is_star(df: pd.DataFrame) -> pd.Series:
    """Rows of stars: LAMOST CLASS ``STAR``, and MRS spectra without a class (the
    medium-resolution survey observes stars; its files carry no CLASS)."""
    cls = df["lamost_class"].fillna("").str.upper().str.strip()
    return (cls == "STAR") | ((cls == "") & survey_of(df).eq("MRS"))


def write_votable(df: pd.DataFrame, path: str, meta: dict[str, Any]) -> None:
    """A VOTable with RA/DEC in degrees and UCDs, acknowledgements and provenance as INFO."""
    from astropy.io.votable import from_table
    from astropy.io.votable.tree import Info
    from astropy.table import Table

    df = df.reset_index(drop=True).copy()
    for col in df.select_dtypes(include="object").columns:  # text columns: a VOTable char field cannot hold None
        df[col] = df[col].fillna("").astype(str)
    t = Table.from_pandas(df)
    for name, ucd in UCDS.items():
        if name in t.colnames:
            t[name].meta["ucd"] = ucd
    for name, unit in UNITS.items():
        if name in t.colnames:
            t[name].unit = unit
    t.meta["description"] = "spectraldl H-alpha emission-line candidates. " + ACKNOWLEDGEMENT
    vot = from_table(t)
    for k, v in meta.items():
        vot.resources[0].infos.append(Info(name=k, value=str(v)))
    vot.resources[0].infos.append(Info(name="acknowledgement", value=ACKNOWLEDGEMENT))
    vot.to_xml(path)


def labelling_export(scores: pd.DataFrame, n: int) -> pd.DataFrame:
    """The ``n`` most uncertain spectra (highest entropy) for a human to label (active learning).

    Filled in (``label`` = emission / absorption / double_peak), the file is what
    ``trainset --extra-labels`` takes.
    """
    top = scores.sort_values("entropy", ascending=False).head(n)
    pred = top[[f"p_{c}" for c in CLASSES]].to_numpy().argmax(1) if len(top) else []
    return pd.DataFrame({
        "source_path": top["source_path"].to_numpy(), "exposure": exposure_of(top).to_numpy(),
        "designation": top["designation"].to_numpy(),
        "predicted": [CLASSES[i] for i in pred], "p_emission": top["p_emission"].round(4).to_numpy(),
        "p_absorption": top["p_absorption"].round(4).to_numpy(), "p_double_peak": top["p_double_peak"].round(4).to_numpy(),
        "entropy": top["entropy"].round(4).to_numpy(), "label": "",
    })
