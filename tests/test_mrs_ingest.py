"""LAMOST medium-resolution (MRS) files through ingest, score and report, against synthetic truth
and on the real star observed by both surveys."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest

from conftest import REAL
from spectraldl.config import load_config
from spectraldl.ingest import run_ingest
from spectraldl.report.build import run_report
from spectraldl.score import run_score
from spectraldl.synth.job import run_synth
from spectraldl.warehouse import Warehouse

KEY = ["source_path", "exposure"]


@pytest.fixture(scope="module")
def mrs_run(spark, tmp_path_factory):
    """A synthetic LAMOST archive, half of its 40 files MRS (both layouts), ingested, scored by
    the embedded model and reported."""
    root = tmp_path_factory.mktemp("mrs")
    cfg = load_config("local", overrides=["synth.mrs_fraction=0.5", "ingest.paths_per_task=10"])
    synth = run_synth(spark, str(root / "arc"), 40, 11, "lamost", cfg)
    s = run_ingest(spark, str(root / "arc"), str(root / "wh"), cfg)
    run_score(spark, str(root / "wh"), cfg)
    rep = run_report(spark, str(root / "wh"), cfg)
    w = Warehouse(str(root / "wh"))
    spectra, rejects, scores = (w.read_table(spark, t).toPandas() for t in ("spectra", "rejects", "scores"))
    truth = pd.read_parquet(root / "arc" / "truth.parquet")
    truth["source_path"] = str(root / "arc") + "/" + truth["file"]
    cat = pd.read_csv(os.path.join(os.path.dirname(rep["report"]), "catalogue.csv"))
    return synth, s, truth, spectra, rejects, scores, cat, rep


def test_every_synthetic_exposure_has_its_outcome(mrs_run):
    synth, s, truth, spectra, rejects, _, _, _ = mrs_run
    mrs = truth[truth["format"] == "lamost_mrs"]
    assert synth["mrs_files"] == mrs["file"].nunique() >= 12 and set(mrs["layout"]) == {"dr7", "dr9"}
    assert s["seen"] == 40 == s["skipped"] + s["ingested"] + s["rejected"]
    assert s["spectra"] + s["rejected_spectra"] == len(truth)  # one row per truth row, LRS and MRS
    got = pd.concat([spectra[KEY].assign(outcome="ok"), rejects[KEY + ["reason"]].rename(columns={"reason": "outcome"})])
    assert not got.duplicated(KEY).any()
    m = mrs.merge(got, on=KEY, how="left")
    assert m["outcome"].notna().all()
    # clouded exposures (and co-adds of all-clouded nights) and nothing else are low_signal
    assert (m.loc[m["empty"], "outcome"] == "low_signal").all() and m["empty"].sum() >= 5
    assert (m.loc[~m["empty"], "outcome"] == "ok").all(), m.loc[~m["empty"] & (m["outcome"] != "ok")]


def test_synthetic_mrs_truth_recovered(mrs_run):
    """Network classes, equivalent widths, cosmic rays and times of the MRS spectra against truth."""
    _, s, truth, spectra, _, scores, _, _ = mrs_run
    mrs = truth[(truth["format"] == "lamost_mrs") & ~truth["empty"]]
    m = mrs.merge(spectra, on=KEY, suffixes=("_true", "")).merge(scores[KEY + ["label"]], on=KEY,
                                                                 suffixes=("_true", "_net"))
    assert len(m) == len(mrs)
    # the one model, trained on LRS-resolution spectra, on MRS spectra blurred to R 1,800
    assert (m["label_net"] == m["class"]).mean() >= 0.95, pd.crosstab(m["class"], m["label_net"])
    assert set(m.loc[m["class"] == "emission", "label_net"]) <= {"emission", "double_peak"}
    # EW at R 7,500 on the cleaned pixels against the noiseless model's (Å)
    d = (m["ha_ew"] - m["ha_ew_west_true"]).abs()
    assert d.median() < 0.1 and d.quantile(0.95) < 0.5, (d.median(), d.quantile(0.95))
    # cosmic rays: counted in the single exposures, none in co-adds (the pipeline removed them)
    single = m["exposure"].str.startswith("R-")
    found, true = m.loc[single, "n_cosmic_true"].sum(), m.loc[single, "n_cosmic"].sum()
    assert 0.85 * found <= true <= 1.05 * found and (m.loc[~single, "n_cosmic"] == 0).all()
    assert s["cosmic_rays_masked"] == int(spectra["n_cosmic"].fillna(0).sum())
    assert np.allclose(m["mjd"], m["mjd_true"], atol=1e-6)


def test_synthetic_mrs_variability_in_the_catalogue(mrs_run):
    """Emission that changes from exposure to exposure makes the star ``ha_variable``; its
    observations are its exposures (the co-add is their average, not an epoch)."""
    _, _, truth, _, _, _, cat, rep = mrs_run
    mrs = truth[(truth["format"] == "lamost_mrs") & ~truth["empty"] & truth["exposure"].str.startswith("R-")]
    per_star = mrs.groupby("object").agg(cls=("class", "first"), lo=("ha_ew_true", "min"), hi=("ha_ew_true", "max"),
                                         n=("exposure", "size"))
    varying = per_star[per_star["cls"].isin(["emission", "double_peak"]) & (per_star["hi"] - per_star["lo"] > 1.0)]
    assert len(varying) >= 5
    c = cat.set_index("designation")
    assert set(varying.index) <= set(c.index)
    assert c.loc[varying.index, "ha_variable"].all()
    assert (c.loc[varying.index, "surveys"] == "MRS").all()
    assert (c.loc[varying.index, "n_obs"] == varying["n"]).all()
    assert (c.loc[varying.index, "mjd_last"] - c.loc[varying.index, "mjd_first"] > 0.01).all()
    absorbing = per_star[per_star["cls"] == "absorption"].index
    assert not set(absorbing) & set(c.index)
    assert rep["variable_stars"] >= len(varying)
    assert os.path.getsize(os.path.join(os.path.dirname(rep["report"]), "ew-time.png")) > 0


@pytest.mark.realdata
def test_real_star_grouped_across_surveys(spark, tmp_path):
    """The F5 star of the real MRS files has another designation in the LRS (0.2" away): with a
    model that makes every spectrum a candidate, the catalogue has it once, from both surveys,
    its epochs the LRS spectrum and the good nights' single exposures."""
    from spectraldl.artifact import default_model_dir

    lamost = REAL / "lamost"
    arc = tmp_path / "arc"
    arc.mkdir()
    for p in list(lamost.rglob("med-*")) + list(lamost.rglob("spec-57287-KP193637N444141V03_sp10-161*")):
        os.symlink(p, arc / p.name)
    wh = tmp_path / "wh"
    model = wh / "models" / "all-candidates"  # where the report finds a version's thresholds
    shutil.copytree(default_model_dir(), model)
    meta = json.loads((model / "model.json").read_text())
    meta.update(version="all-candidates", thresholds={"emission": 0.0, "absorption": 1.0, "double_peak": 0.0})
    (model / "model.json").write_text(json.dumps(meta))
    cfg = load_config("local")
    run_ingest(spark, str(arc), str(wh), cfg)
    run_score(spark, str(wh), cfg, str(model))
    rep = run_report(spark, str(wh), cfg, model_version="all-candidates")
    cat = pd.read_csv(os.path.join(os.path.dirname(rep["report"]), "catalogue.csv"))
    star = cat[cat["surveys"] == "LRS,MRS"]
    assert len(star) == 1, cat[["designation", "surveys", "n_obs"]]
    # 1 LRS spectrum + the single exposures of 58270, 58625, 58644, 58646, 58649 (4 + 3 + 4 + 3 + 4)
    assert int(star["n_obs"].iloc[0]) == 19
    assert star["mjd_first"].iloc[0] < 57300 < 58600 < star["mjd_last"].iloc[0]
    # a constant F5 star: its epochs' EWs (2.96-3.23 Å) differ by less than 3 sigma once each
    # error carries the systematic floor (report.ew_floor); by the pixel noise alone they would not
    assert not star["ha_variable"].iloc[0] and star["ha_ew_max"].iloc[0] - star["ha_ew_min"].iloc[0] > 0.2
    assert len(cat) == 2  # and the other MRS star (med-58408), on its own


def test_mrs_rescan_follows_the_file(spark, mrs_run):
    """A rescan skips unchanged MRS files; a changed one has all its rows (every exposure, its
    rejects too) replaced, and its spectra scored again, keyed by (source_path, exposure)."""
    _, s, truth, spectra, rejects, _, _, _ = mrs_run
    wh = s["inputs"]["warehouse"]
    cfg = load_config("local", overrides=["ingest.paths_per_task=10"])
    again = run_ingest(spark, s["inputs"]["input"], wh, cfg)
    assert (again["seen"], again["skipped"], again["spectra"]) == (40, 40, 0)
    night = truth[(truth["format"] == "lamost_mrs") & truth["empty"]]["source_path"].iloc[0]  # a file with rejects
    st = os.stat(night)
    os.utime(night, (st.st_atime, st.st_mtime + 60))
    third = run_ingest(spark, s["inputs"]["input"], wh, cfg)
    rows = truth[truth["source_path"] == night]
    assert (third["changed"], third["replaced"], third["ingested"]) == (1, 1, 1)
    assert third["spectra"] + third["rejected_spectra"] == len(rows) > 2
    w = Warehouse(wh)
    sp2, rj2 = w.read_table(spark, "spectra").toPandas(), w.read_table(spark, "rejects").toPandas()
    assert len(sp2) == len(spectra) and len(rj2) == len(rejects)
    assert set(sp2.loc[sp2["source_path"] == night, "ingest_run"]) == {third["run_id"]}
    assert set(rj2.loc[rj2["source_path"] == night, "ingest_run"]) == {third["run_id"]}
    sc = run_score(spark, wh, cfg)
    assert sc["scored"] == int((sp2["source_path"] == night).sum()) and sc["skipped"] == len(sp2) - sc["scored"]


def test_mrs_file_without_coadd(tmp_path):
    """An MRS file whose red co-add is missing: its exposures are still rows; with
    ``mrs.exposures = false`` it is one ``bad_shape`` reject, so no file goes uncounted."""
    from spectraldl.parse import ParseOptions, parse_path
    from spectraldl.synth.mrs import make_mrs, mrs_bytes

    m = make_mrs(3, 7, "dr9", n_exposures=3, empty=())
    m.tables = [t for t in m.tables if t.name != "COADD_R"]
    path = tmp_path / "med-no-coadd.fits"
    path.write_bytes(mrs_bytes(m))
    rows = parse_path(str(path), ParseOptions.from_config(load_config("local")))
    assert [r["exposure"] for r in rows] == [t.name for t in m.red_exposures]
    assert all(r["outcome"] == "ok" for r in rows)
    only_coadd = ParseOptions.from_config(load_config("local", overrides=["mrs.exposures=false"]))
    (r,) = parse_path(str(path), only_coadd)
    assert (r["outcome"], r["reason"], r["exposure"]) == ("rejected", "bad_shape", "")
    assert str(path) in r["detail"] and "COADD_R" in r["detail"]
