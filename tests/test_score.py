"""Scoring: UDF == plain predict, incremental, re-ingested, rescore, new versions, refusal (on
synthetic files); the embedded model on the real archive."""
from __future__ import annotations

import os
import shutil
import time

import numpy as np
import pandas as pd
import pytest

from conftest import REAL
from spectraldl.artifact import ModelError, write_meta
from spectraldl.config import load_config
from spectraldl.ingest import run_ingest
from spectraldl.models import CLASSES, build_model
from spectraldl.preprocess import DEFAULT_SETTINGS
from spectraldl.score import run_score
from spectraldl.warehouse import Warehouse

STARS = ("absorption", "emission", "double_peak")


def fake_model(path, version, seed, preprocess_id=None):
    os.makedirs(path, exist_ok=True)
    m = build_model("cnn", 140, seed=seed)
    m.save(os.path.join(path, "model.keras"))
    write_meta(path, {"version": version, "arch": "cnn", "classes": list(CLASSES),
                      "grid": {"start": 6519.0, "stop": 6732.0, "n": 140},
                      "preprocess_id": preprocess_id or DEFAULT_SETTINGS.fingerprint(),
                      "thresholds": {c: 0.5 for c in CLASSES}})
    return m


@pytest.fixture(scope="module")
def files(synth_archive):
    """Six stars of the session's synthetic archive (no dead fibre), emission and every layout among them."""
    t = pd.read_csv(synth_archive / "truth.csv")
    t = t[t["class"].isin(STARS) & ~t["dead_fibre"]]
    pick = pd.concat([t[t["class"] != "absorption"].head(2), t.drop_duplicates("layout")]).drop_duplicates("file")
    pick = pd.concat([pick, t[~t.file.isin(pick.file)]]).head(6)
    assert len(pick) == 6 and set(pick.layout) == {"dr1", "dr2", "dr3_8", "dr9"}
    return list(pick.file)


@pytest.fixture(scope="module")
def setup(spark, tmp_path_factory, synth_archive, files):
    root = tmp_path_factory.mktemp("score")
    arc, wh = root / "archive", root / "wh"
    for f in files:
        (arc / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(synth_archive / f, arc / f)
    cfg = load_config("local", overrides=["score.arrow_batch_size=2"])
    run_ingest(spark, str(arc), str(wh), cfg)
    return arc, wh, cfg, root


def scores(spark, wh):
    return Warehouse(str(wh)).read_table(spark, "scores").toPandas()


def test_udf_equals_plain_predict_and_increments(spark, setup, files):
    arc, wh, cfg, root = setup
    m1 = fake_model(root / "m1", "v1", seed=1)
    s = run_score(spark, str(wh), cfg, str(root / "m1"))
    assert (s["spectra"], s["scored"], s["skipped"]) == (6, 6, 0)
    got = scores(spark, wh).set_index("source_path").sort_index()
    spectra = Warehouse(str(wh)).read_table(spark, "spectra").toPandas().set_index("source_path").sort_index()
    want = m1.predict(np.stack(spectra.flux.to_numpy()), verbose=0)
    p = got[["p_emission", "p_absorption", "p_double_peak"]].to_numpy()
    np.testing.assert_allclose(p, want, atol=1e-5)
    assert list(got.label) == [CLASSES[i] for i in want.argmax(1)]
    ent = -(want * np.log(np.clip(want, 1e-12, 1))).sum(1)
    np.testing.assert_allclose(got.entropy, ent, atol=1e-4)
    assert (got.ingest_run == spectra.ingest_run).all() and (got.model_version == "v1").all()

    s = run_score(spark, str(wh), cfg, str(root / "m1"))                 # nothing new
    assert (s["scored"], s["skipped"]) == (0, 6)

    changed = arc / files[0]
    os.utime(changed, (time.time() + 50, time.time() + 50))
    run_ingest(spark, str(arc), str(wh), cfg)                            # re-ingested: new ingest_run
    s = run_score(spark, str(wh), cfg, str(root / "m1"))
    assert s["scored"] == 1
    got = scores(spark, wh)
    assert len(got) == 6 and got.source_path.is_unique                   # old row of that path replaced

    s = run_score(spark, str(wh), cfg, str(root / "m1"), rescore=True)
    assert s["scored"] == 6 and len(scores(spark, wh)) == 6

    fake_model(root / "m2", "v2", seed=2)                                # a new version: all again
    s = run_score(spark, str(wh), cfg, str(root / "m2"))
    assert s["scored"] == 6
    got = scores(spark, wh)
    assert sorted(got.model_version.value_counts().items()) == [("v1", 6), ("v2", 6)]


def test_refuses_other_preprocessing(spark, setup):
    arc, wh, cfg, root = setup
    fake_model(root / "m3", "v3", seed=3, preprocess_id="pp1-000000000000")
    with pytest.raises(ModelError, match="expects vectors made with preprocess_id pp1-000000000000"):
        run_score(spark, str(wh), cfg, str(root / "m3"))
    assert not (wh / "_state" / "lock").exists()


def test_report_from_scores(spark, setup):
    from astropy.table import Table
    from spectraldl.report.build import run_report
    arc, wh, cfg, root = setup
    fake_model(root / "m4", "v4", seed=4)
    run_score(spark, str(wh), cfg, str(root / "m4"))
    s = run_report(spark, str(wh), cfg, top=3, model_version="v4")
    out = os.path.dirname(s["report"])
    html = open(s["report"]).read()
    assert "v4" in html and "http" not in html.replace("http://www.w3.org", "")   # offline: no CDN
    for name in ("catalogue.csv", "catalogue.vot", "labelling.csv", "counts.png", "probabilities.png", "sky.png"):
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    lab = pd.read_csv(os.path.join(out, "labelling.csv"))
    assert list(lab.columns) == ["source_path", "exposure", "designation", "predicted", "p_emission", "p_absorption",
                                 "p_double_peak", "entropy", "label"] and len(lab) == 6
    assert lab.entropy.is_monotonic_decreasing
    cat = pd.read_csv(os.path.join(out, "catalogue.csv"))
    vot = Table.read(os.path.join(out, "catalogue.vot"), format="votable")
    assert len(vot) == len(cat) and s["candidates_stars"] == len(cat)
    if len(vot):
        assert str(vot["ra"].unit) == "deg"
    sc = Warehouse(str(wh)).read_table(spark, "scores").filter("model_version = 'v4'").toPandas()
    sel = (sc.p_emission >= 0.5) | (sc.p_double_peak >= 0.5)                # thresholds of fake_model
    assert s["candidate_spectra_stars"] + s["candidates_extragalactic"] == int(sel.sum())


@pytest.mark.realdata
def test_known_emitters_are_candidates_in_the_real_archive(spark, tmp_path):
    """All real LAMOST files, the embedded model, the report: BT CMi and the other emission-line
    stars of the cross-matched sample (labels from their Ondřejov spectra) are in the catalogue."""
    from spectraldl.report.build import run_report
    cfg = load_config("local")
    wh = tmp_path / "wh"
    run_ingest(spark, str(REAL / "lamost"), str(wh), cfg)
    s = run_score(spark, str(wh), cfg, "default")
    assert s["scored"] == 158  # 123 + the 4 DR10 spectra with nebular contamination + 31 MRS co-adds and exposures
    rep = run_report(spark, str(wh), cfg, top=5)
    cat = pd.read_csv(os.path.join(os.path.dirname(rep["report"]), "catalogue.csv"))
    pairs = pd.read_csv(REAL / "labels/cross-matched-pairs.csv")
    lab = pd.read_csv(REAL / "labels/ondrejov-dataset.csv")
    lab["stem"] = lab["id"].str.rsplit("/", n=1).str[-1]
    pairs["stem"] = pairs["ondrejov_file"].str.rsplit("/", n=1).str[-1].str.replace(".fits", "", regex=False)
    emitters = pairs.merge(lab, on="stem").query("label in (0, 3)")["lamost_file"].tolist()
    emitters.append("lamost/podondra_bt-spectraldl/bt-cmi-lamost.fits")
    assert len(emitters) == 5
    found = {os.path.relpath(p, REAL) for p in cat["best_source_path"]}
    assert set(emitters) <= found, set(emitters) - found
    assert len(cat) <= 10          # and not a flood: the absorption stars stay out
