"""H-alpha measurements in the ingest and the measured catalogue: EW against the synthetic truth,
the nebular flag against known answers, a flag (not a reject) for a spectrum without good pixels
in a band, the per-star columns of a star observed several times, and the real archive's report
(nebular stars apart, BT CMi and the K/M dwarfs not nebular)."""
from __future__ import annotations

import glob
import os

import numpy as np
import pandas as pd
import pytest

from conftest import REAL
from spectraldl.config import load_config
from spectraldl.halpha import measure_halpha
from spectraldl.ingest import run_ingest
from spectraldl.report.catalogue import CATALOGUE_COLUMNS, group_by_star, split_nebular
from spectraldl.warehouse import Warehouse


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """1,200 synthetic LAMOST spectra in memory, a third of the plates behind an H II region."""
    from spectraldl.synth import SynthConfig, make_spectrum
    cfg = SynthConfig.defaults(["synth.nebular_plate_fraction=0.3", "synth.dead_fibre_fraction=0.0"])
    rows = []
    for i in range(1200):
        s = make_spectrum(i, 5, "lamost", cfg)
        r = measure_halpha(s.wavelength, s.flux, s.ivar, s.andmask).as_row()
        rows.append({**r, **{f"true_{k}": v for k, v in s.truth.items()}})
    return pd.DataFrame(rows)


def test_ew_agrees_with_the_truth_within_its_uncertainty(synthetic):
    d = synthetic[synthetic["true_class"].isin(["absorption", "emission", "double_peak"])
                  & synthetic["ha_ew"].notna()]
    assert len(d) > 1000
    diff = d["ha_ew"] - d["true_ha_ew_west_true"]
    pull = diff / d["ha_ew_err"]
    assert abs(np.median(pull)) < 0.2 and 0.7 < np.std(pull[np.abs(pull) < 10]) < 1.5
    by_snr = d.assign(adiff=diff.abs(), bin=pd.cut(d["true_snr"], [0, 20, 50, 1e9], labels=["<20", "20-50", ">50"]))
    p95 = by_snr.groupby("bin", observed=True)["adiff"].quantile(0.95)
    assert p95["<20"] < 2.5 and p95["20-50"] < 1.0 and p95[">50"] < 0.5, p95.to_dict()
    emitters = d[d["true_ha_ew_west_true"] < -5]
    assert (emitters["ha_ew"] < 0).mean() > 0.99


def test_nebular_flag_against_synthetic_truth(synthetic):
    """Recall is limited by the forbidden lines' signal: [N II] 6585's expected S/N is its EW
    (the residual's H-alpha EW x the [N II] ratio) x the continuum S/N / 4 Å (the noise of an EW
    integrated over +-1.5 instrumental FWHM, about 7.5 pixels of 1.46 Å). Above 8 the flag finds
    the residuals on absorption stars; it never fires on spectra without one, nor on stellar
    emission."""
    d = synthetic[synthetic["true_class"].isin(["absorption", "emission", "double_peak"])]
    truth = d["true_nebular"].astype(bool)
    flag = d["nebular"].eq(True)
    assert truth.sum() >= 100
    expected = d["true_nebular_ha_ew"].abs() * d["true_nebular_nii_ratio"].fillna(0) * d["true_snr"] / 4.0
    detectable = truth & (expected >= 8) & (d["true_class"] == "absorption")
    recall = (flag & detectable).sum() / detectable.sum()
    false_alarm = (flag & ~truth).sum() / (~truth).sum()
    assert detectable.sum() >= 50 and recall >= 0.9 and false_alarm < 0.005, (recall, false_alarm)
    assert not flag[d["true_class"].isin(["emission", "double_peak"]) & ~truth].any()
    assert (flag & truth & (expected < 3)).sum() == 0                      # no luck below the noise


def test_a_band_without_good_pixels_is_a_flag_not_a_reject(tmp_path):
    from spectraldl.parse import ParseOptions, parse_file
    from spectraldl.synth import SynthConfig, make_spectrum, write_spectrum
    s = make_spectrum(3, 7, "lamost", SynthConfig.defaults(), layout="dr9", compression="none")
    side = ((s.wavelength >= 6500) & (s.wavelength < 6550)) | ((s.wavelength >= 6575) & (s.wavelength < 6625))
    s.andmask = np.where(side, 1, s.andmask).astype(s.andmask.dtype)
    write_spectrum(str(tmp_path), s)
    row = parse_file(str(tmp_path / s.relpath), ParseOptions.from_config(load_config("local")))
    assert row["outcome"] == "ok" and row["ha_flag"] == "no_good_pixels_continuum"
    assert row["ha_ew"] is None and row["ha_profile"] is None and len(row["flux"]) == 140


def test_ingest_writes_the_measurements(spark, tmp_path, synth_archive):
    cfg = load_config("local")
    run_ingest(spark, str(synth_archive), str(tmp_path / "wh"), cfg)
    sp = Warehouse(str(tmp_path / "wh")).read_table(spark, "spectra").toPandas()
    truth = pd.read_csv(synth_archive / "truth.csv")
    truth["source_path"] = [str(synth_archive / f) for f in truth["file"]]
    j = sp.merge(truth, on="source_path")
    assert len(j) == len(sp) > 40
    stars = j[j["class"].isin(["absorption", "emission", "double_peak"])]
    assert stars["ha_ew"].notna().all() and stars["ha_flag"].isna().all()
    assert (np.abs(stars["ha_ew"] - stars["ha_ew_west_true"]) < np.maximum(5 * stars["ha_ew_err"], 0.1)).mean() > 0.95
    assert set(sp["ha_profile"].dropna()) <= {"absorption", "none", "single", "double", "pcygni", "filled"}


def test_per_star_columns_of_a_star_with_emission_in_some_epochs():
    obs = pd.DataFrame({
        "source_path": ["a1", "a2", "a3", "b1", "b2"],
        "designation": ["LAMOST J1", "LAMOST J1", "LAMOST J1", "LAMOST J2", "LAMOST J2"],
        "obsid": [11, 12, 13, 21, 22],
        "ha_ew": [-12.0, 1.5, -3.0, -2.0, -2.2], "ha_ew_err": [0.4, 0.3, 0.5, 0.3, 0.3],
        "ha_profile": ["single", "absorption", "filled", "single", "single"],
        "nebular": [False, False, False, True, True],
    })
    cands = pd.DataFrame({
        "source_path": ["a1", "b1"], "designation": ["LAMOST J1", "LAMOST J2"], "ra": [10.0, 20.0],
        "dec": [-5.0, 5.0], "candidate_class": ["emission", "emission"], "p_candidate": [0.97, 0.9],
        "lamost_class": ["STAR", "STAR"], "lamost_subclass": ["B5", "A0"], "p_emission": [0.97, 0.9],
        "p_absorption": [0.02, 0.05], "p_double_peak": [0.01, 0.05],
    })
    stars = group_by_star(cands, obs)
    assert list(stars.columns) == CATALOGUE_COLUMNS
    a = stars.set_index("designation").loc["LAMOST J1"]
    assert (a["n_obs"], a["n_candidate_obs"], a["n_emission_obs"]) == (3, 1, 2)
    assert (a["ha_ew_median"], a["ha_ew_min"], a["ha_ew_max"]) == (-3.0, -12.0, 1.5)
    assert a["ha_variable"] and not a["nebular"] and a["obsid"] == 11 and a["ha_profile"] == "single"
    b = stars.set_index("designation").loc["LAMOST J2"]
    assert not b["ha_variable"] and b["nebular"]       # -2.0 vs -2.2: 0.5 sigma
    stellar, nebular = split_nebular(stars)
    assert list(stellar["designation"]) == ["LAMOST J1"] and list(nebular["designation"]) == ["LAMOST J2"]
    assert list(nebular["rank"]) == [1]
    assert stars["ra"].dtype == np.float64 and stars["obsid"].dtype == "Int64"


@pytest.mark.realdata
def test_real_archive_report_puts_nebular_stars_apart(spark, tmp_path):
    from spectraldl.report.build import run_report
    from spectraldl.score import run_score
    cfg = load_config("local")
    wh = tmp_path / "wh"
    run_ingest(spark, str(REAL / "lamost"), str(wh), cfg)
    sp = Warehouse(str(wh)).read_table(spark, "spectra").toPandas().set_index("source_path")
    neb_files = [p for p in sp.index if "gcbellys_lamost-manifold-dr-cluster" in p]
    assert len(neb_files) == 4 and sp.loc[neb_files, "nebular"].all()
    bt = [p for p in sp.index if p.endswith("bt-cmi-lamost.fits")][0]
    assert sp.loc[bt, "ha_ew"] < -10 and sp.loc[bt, "nebular"] == False  # noqa: E712 (numpy bool)
    km = sp[sp["lamost_class"].eq("STAR") & sp["lamost_subclass"].fillna("").str[:1].isin(["K", "M", "d"])]
    assert len(km) >= 30 and not km["nebular"].eq(True).any()
    assert not km["ha_profile"].isin(["single", "double", "pcygni"]).any()
    run_score(spark, str(wh), cfg)
    rep = run_report(spark, str(wh), cfg, top=5)
    out = os.path.dirname(rep["report"])
    cat, neb = pd.read_csv(os.path.join(out, "catalogue.csv")), pd.read_csv(os.path.join(out, "nebular.csv"))
    assert not cat["best_source_path"].isin(neb_files).any()
    assert bt in set(cat["best_source_path"]) and not cat["nebular"].any() and neb["nebular"].all()
    assert rep["nebular_stars"] == len(neb)
    dis = pd.read_csv(os.path.join(out, "disagreements.csv"))
    assert rep["disagreements"] >= len(dis)
    html = open(rep["report"]).read()
    assert "Nebular emission (not stellar)" in html and "ew-time.png" in html
    assert set(glob.glob(os.path.join(out, "*.png"))) >= {os.path.join(out, n) for n in
                                                         ("ew.png", "ew-vs-p.png", "ew-time.png", "counts.png")}
    print(f"real archive: {len(sp)} spectra, {len(neb)} nebular stars, {rep['disagreements']} disagreements "
          f"{dis.groupby('kind').size().to_dict()}")
