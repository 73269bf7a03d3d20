"""Candidate catalogue: emission and double-peak spectra above the model's thresholds, ranked.

One row per star (repeat observations grouped by LAMOST designation), stars apart from galaxies
and QSOs (whose redshifted lines are not stellar H-alpha). Written as CSV and as a VOTable with
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
#: The columns of ``catalogue.csv``, in order.
CATALOGUE_COLUMNS = ["rank", "designation", "ra", "dec", "candidate_class", "p_best", "p_mean", "n_candidate_obs",
                     "n_obs", "lamost_class", "lamost_subclass", "p_emission", "p_absorption", "p_double_peak",
                     "best_source_path"]


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


def group_by_star(cands: pd.DataFrame, all_scores: pd.DataFrame) -> pd.DataFrame:
    """One row per designation: best spectrum, how many observations and how many are candidates."""
    key = cands["designation"].fillna(cands["source_path"])
    n_obs = all_scores.assign(k=all_scores["designation"].fillna(all_scores["source_path"])).groupby("k").size()
    rows = []
    for k, g in cands.assign(k=key).groupby("k", sort=False):
        best = g.iloc[0]
        rows.append({
            "designation": best["designation"], "ra": float(g["ra"].mean()), "dec": float(g["dec"].mean()),
            "candidate_class": best["candidate_class"], "p_best": float(best["p_candidate"]),
            "p_mean": float(g["p_candidate"].mean()), "n_candidate_obs": int(len(g)), "n_obs": int(n_obs.get(k, len(g))),
            "lamost_class": best["lamost_class"], "lamost_subclass": best["lamost_subclass"],
            "p_emission": float(best["p_emission"]), "p_absorption": float(best["p_absorption"]),
            "p_double_peak": float(best["p_double_peak"]), "best_source_path": best["source_path"],
        })
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=CATALOGUE_COLUMNS)
    df = df.sort_values(["p_best", "n_candidate_obs"], ascending=False).reset_index(drop=True)
    df.insert(0, "rank", np.arange(1, len(df) + 1))
    return df


def is_star(lamost_class: pd.Series) -> pd.Series:
    return lamost_class.fillna("").str.upper().str.strip() == "STAR"


def write_votable(df: pd.DataFrame, path: str, meta: dict[str, Any]) -> None:
    """A VOTable with RA/DEC in degrees and UCDs, acknowledgements and provenance as INFO."""
    from astropy.io.votable import from_table
    from astropy.io.votable.tree import Info
    from astropy.table import Table

    t = Table.from_pandas(df.reset_index(drop=True))
    ucds = {"designation": "meta.id;meta.main", "ra": "pos.eq.ra;meta.main", "dec": "pos.eq.dec;meta.main",
            "p_best": "stat.probability", "p_mean": "stat.probability", "p_emission": "stat.probability",
            "p_absorption": "stat.probability", "p_double_peak": "stat.probability",
            "candidate_class": "meta.code.class", "lamost_class": "src.class", "lamost_subclass": "src.spType",
            "n_obs": "meta.number", "n_candidate_obs": "meta.number", "rank": "meta.record"}
    for name, ucd in ucds.items():
        if name in t.colnames:
            t[name].meta["ucd"] = ucd
    for name in ("ra", "dec"):
        if name in t.colnames:
            t[name].unit = "deg"
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
        "source_path": top["source_path"].to_numpy(), "designation": top["designation"].to_numpy(),
        "predicted": [CLASSES[i] for i in pred], "p_emission": top["p_emission"].round(4).to_numpy(),
        "p_absorption": top["p_absorption"].round(4).to_numpy(), "p_double_peak": top["p_double_peak"].round(4).to_numpy(),
        "entropy": top["entropy"].round(4).to_numpy(), "label": "",
    })
