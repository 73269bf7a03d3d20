"""The trainset job on the real Ondřejov files and label file; grouped splits; extra LAMOST labels."""
from __future__ import annotations

import csv
import gzip
import importlib.util
import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest

from conftest import REAL, ROOT
from spectraldl.adapt import AdaptSettings, adapt_ondrejov
from spectraldl.cli import run
from spectraldl.config import load_config
from spectraldl.ingest import run_ingest
from spectraldl.io import read_bytes_from_path, read_spectrum
from spectraldl.preprocess import PreprocessSettings
from spectraldl.splits import grouped_stratified_split
from spectraldl.labels import file_stem, group_key
from spectraldl.trainset import run_trainset
from spectraldl.warehouse import Warehouse

ONDREJOV = REAL / "ondrejov"
LABELS = REAL / "labels" / "ondrejov-dataset.csv"
CODES = {0: "emission", 1: "absorption", 2: "unknown", 3: "double_peak"}
NOT_LABELLED = {"alpha-lyr-absorption", "bt-cmi-ondrejov", "gamma-cas-emission", "samples_alpha-lyr-absorption",
                "samples_bt-cmi-ondrejov", "samples_gamma-cas-emission"}
LAMOST_FEW = ["spec-56326-GAC101N53V1_sp05-238.fits", "spec-55967-GAC_073N44_V4_sp08-133.fits",
              "spec-56317-GAC083N57V3_sp06-125.fits", "spec-56096-kepler08B56096_2_sp06-060.fits"]


def _job():
    spec = importlib.util.spec_from_file_location("job_trainset", ROOT / "jobs" / "trainset.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# -- pure parts ---------------------------------------------------------------------------------
def test_file_stem_and_group_key():
    assert file_stem("/a/b/ud090015.fits") == "ud090015"
    assert file_stem("hdfs://nn/x/UD090015.FITS.GZ") == "ud090015"
    assert file_stem("x/a2014.fit") == "a2014"
    assert group_key("  hd   31894 ", 1.0, 2.0, "s") == "HD31894"
    assert {group_key(n, None, None, "s") for n in ("HD31894", "HD 31894", "hd 31894")} == {"HD31894"}
    assert group_key("V* BT CMi", 1.0, 2.0, "s") == group_key("BT CMi", 3.0, 4.0, "t") == "BTCMI"
    assert group_key("* alf Lyr", 1.0, 2.0, "s") == "ALFLYR" and group_key("V*X", 1, 2, "s") == "V*X"
    assert group_key(None, 75.392499, 43.435722, "s") == "RADEC 75.39 +43.44"
    assert group_key("  ", 75.39, -3.0, "s") == "RADEC 75.39 -3.00"
    assert group_key(None, None, None, "ud090015") == "FILE ud090015"


def test_grouped_split_is_stratified_grouped_and_deterministic():
    rng = np.random.default_rng(0)
    groups, labels = [], []
    for g in range(3000):  # stars with 1..30 spectra, mostly of one class
        cls = rng.choice([0, 1, 3], p=[0.4, 0.48, 0.12])
        for _ in range(min(int(rng.zipf(2.0)), 30)):
            groups.append(f"star{g}")
            labels.append(cls if rng.random() > 0.1 else 3)
    s = grouped_stratified_split(groups, labels, [0.7, 0.15, 0.15], seed=7)
    df = pd.DataFrame({"g": groups, "y": labels, "s": s})
    assert df.groupby("g")["s"].nunique().max() == 1
    share = pd.crosstab(df["y"], df["s"], normalize="index")
    np.testing.assert_allclose(share[["train", "val", "test"]].to_numpy(), [[0.7, 0.15, 0.15]] * 3, atol=0.01)
    perm = rng.permutation(len(groups))  # the input order does not matter
    s2 = grouped_stratified_split(np.array(groups)[perm], np.array(labels)[perm], [0.7, 0.15, 0.15], seed=7)
    assert list(s2) == list(s[perm])
    assert list(grouped_stratified_split(groups, labels, [0.7, 0.15, 0.15], seed=8)) != list(s)
    with pytest.raises(ValueError):
        grouped_stratified_split(groups, labels, [0.7, 0.2, 0.2], seed=7)


# -- the job on the real files ------------------------------------------------------------------
real = pytest.mark.realdata


@pytest.fixture(scope="module")
def warehouse(spark, tmp_path_factory):
    """A warehouse holding a few real LAMOST spectra (for --extra-labels) and the real training set."""
    wh = tmp_path_factory.mktemp("wh-trainset")
    lst = wh.parent / "lamost-few.txt"
    lst.write_text("\n".join(str(REAL / "lamost" / "podondra_bt-spectraldl" / f) for f in LAMOST_FEW) + "\n")
    s = run_ingest(spark, str(lst), str(wh), load_config("local"))
    assert s["ingested"] == 4
    return wh


@pytest.fixture(scope="module")
def real_run(spark, warehouse):
    cfg = load_config("local", overrides=["trainset.paths_per_task=8", "trainset.max_listed=50"])
    summary = run_trainset(spark, str(ONDREJOV), str(LABELS), str(warehouse), cfg)
    table = Warehouse(str(warehouse)).read_table(spark, "trainset").toPandas().set_index("source_path")
    return summary, table


@real
def test_labels_join_the_real_files(real_run):
    summary, table = real_run
    files = sorted(str(p) for p in ONDREJOV.rglob("*.fits"))
    labels = pd.read_csv(LABELS)
    by_stem = dict(zip(labels["id"].str.rsplit("/", n=1).str[-1], labels["label"]))
    labelled = {f: by_stem[os.path.basename(f)[:-5]] for f in files if os.path.basename(f)[:-5] in by_stem}
    assert len(files) == 29 and len(labelled) == 23 and len(labels) == 13334
    assert summary["seen"] == 29 and summary["in_table"] == summary["ondrejov_in_table"] == 23
    assert summary["unlabelled"] == 6 and summary["rejected"] == 0
    assert summary["dropped_unknown"] == 0 and summary["duplicates"] == 0  # no label 2 among these 29
    assert {os.path.basename(f)[:-5] for f in summary["unlabelled_files"]} == NOT_LABELLED
    assert summary["labels_total"] == 13334 and summary["labels_without_file"] == 13334 - 23
    assert len(summary["labels_without_file_listed"]) == 50  # max_listed; the rest in a CSV beside it
    listed = pd.read_csv(summary["labels_without_file_csv"])
    assert len(listed) == 13311 and not set(listed["id"]) & set(table["id"])
    assert set(table.index) == set(labelled)
    for f, code in labelled.items():
        assert table.loc[f, "label"] == code and table.loc[f, "label_name"] == CODES[code]
        assert table.loc[f, "id"] == f"ivo://asu.cas.cz/stel/ccd700/{os.path.basename(f)[:-5]}"
    assert table["label_name"].value_counts().to_dict() == {"absorption": 19, "emission": 3, "double_peak": 1}
    on_disk = json.load(open(summary["summary_path"]))
    assert on_disk["status"] == "ok" and on_disk["seen"] == 29


@real
def test_counts_reconcile_and_splits_group_stars(real_run):
    s, table = real_run
    assert s["seen"] == s["ondrejov_in_table"] + s["dropped_unknown"] + s["unlabelled"] + s["rejected"] + s["duplicates"]
    assert len(table) == s["in_table"] and table["id"].is_unique
    assert table.groupby("group")["split"].nunique().max() == 1
    assert set(table["split"]) == {"train", "val", "test"}
    assert (table["split"] == "train").sum() == sum(s["by_split"]["train"].values()) >= 14
    assert s["groups"] == table["group"].nunique() == 23  # 23 different stars
    for f, row in table.iterrows():
        assert row["group"] == group_key(row["object"], None, None, "") == "".join(row["object"].upper().split())


@real
def test_vectors_equal_adapt_ondrejov(real_run):
    _, table = real_run
    a, p = AdaptSettings(), PreprocessSettings()
    assert set(table["preprocess_id"]) == {p.fingerprint()} and set(table["adapt_id"]) == {a.fingerprint()}
    for f, row in table.iterrows():
        spec = read_spectrum(read_bytes_from_path(f), name=f)
        vec, _ = adapt_ondrejov(spec, a, p, name=f)
        assert np.array_equal(np.asarray(row["flux"], dtype=np.float32), vec), f
        assert row["object"] == spec.meta["object"]


@real
def test_unknown_duplicate_rejected_and_missing(spark, tmp_path):
    """Built from copies: one file per outcome, through the job's entry point."""
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "b").mkdir()
    base = ONDREJOV / "podondra_bt-spectraldl"
    shutil.copy(base / "ud090015.fits", src / "a" / "ud090015.fits")       # labelled unknown
    shutil.copy(base / "rd270018.fits", src / "a" / "rd270018.fits")       # kept
    (src / "b" / "RD270018.fits.gz").write_bytes(gzip.compress((base / "rd270018.fits").read_bytes()))  # same stem
    data = (base / "td240024.fits").read_bytes()
    (src / "b" / "td240024.fits").write_bytes(data[: len(data) // 2])      # truncated
    (src / "b" / "vl070030.fits").write_bytes(b"\x1f\x8b" + b"garbage")   # gzip_error
    labels = tmp_path / "labels.csv"
    labels.write_text("id,label\nivo://x/ud090015,2\nivo://x/rd270018,1\nivo://x/td240024,0\n"
                      "ivo://x/vl070030,3\nivo://x/zz000001,0\n")
    wh = tmp_path / "wh"
    job = _job()
    argv = ["--input", str(src), "--labels", str(labels), "--warehouse", str(wh)]
    try:
        assert run("trainset", job.__doc__, job.add_arguments, job.main, argv) == 0
        runs = [p for p in (wh / "runs").iterdir() if p.suffix == ".json"]
        s = json.loads(runs[0].read_text())
        assert (s["seen"], s["ondrejov_in_table"], s["dropped_unknown"], s["duplicates"], s["rejected"]) == (5, 1, 1, 1, 2)
        assert s["rejected_by_reason"] == {"gzip_error": 1, "truncated": 1}
        assert s["duplicate_files"] == [str(src / "b" / "RD270018.fits.gz")]
        assert s["labels_without_file"] == 1 and s["labels_without_file_listed"] == ["ivo://x/zz000001"]
        t = Warehouse(str(wh)).read_table(spark, "trainset").toPandas()
        assert t["source_path"].tolist() == [str(src / "a" / "rd270018.fits")] and t["split"].tolist() == ["train"]
        # keeping "unknown" is a setting
        assert run("trainset", job.__doc__, job.add_arguments, job.main, argv + ["--set", "trainset.drop_unknown=false"]) == 0
        t = Warehouse(str(wh)).read_table(spark, "trainset").toPandas().set_index("id")
        assert len(t) == 2 and t.loc["ivo://x/ud090015", "label_name"] == "unknown"  # the rerun replaced the table
        # bad label files are bad arguments (exit 2), and leave no lock behind
        bad = tmp_path / "bad.csv"
        bad.write_text("id,label\nivo://x/rd270018,7\n")
        assert run("trainset", None, job.add_arguments, job.main, argv[:2] + ["--labels", str(bad)] + argv[4:]) == 2
        assert run("trainset", None, job.add_arguments, job.main, argv[:2] + ["--labels", str(tmp_path / "none.csv")] + argv[4:]) == 2
        assert not (wh / "_state" / "lock").exists()
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", "4")  # the job's config re-applied local.toml's


@real
def test_extra_labels_add_lamost_rows(spark, warehouse, real_run, tmp_path):
    lam = Warehouse(str(warehouse)).read_table(spark, "spectra").toPandas().set_index("source_path")
    paths = sorted(lam.index)
    extra = tmp_path / "extra.csv"
    with open(extra, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["source_path", "label"])
        w.writerows([(paths[0], "emission"), (paths[1], "Double_Peak"), (paths[2], "absorption"),
                     (paths[3], "unknown"), ("/nowhere/spec-1.fits", "emission")])
    cfg = load_config("local", overrides=["trainset.paths_per_task=8"])
    s = run_trainset(spark, str(ONDREJOV), str(LABELS), str(warehouse), cfg, extra_labels=str(extra))
    e = s["extra"]
    assert (e["rows"], e["in_table"], e["dropped_unknown"], e["not_in_spectra"]) == (5, 3, 1, 1)
    assert e["not_in_spectra_listed"] == ["/nowhere/spec-1.fits"] and e["preprocess_mismatch"] == 0
    t = Warehouse(str(warehouse)).read_table(spark, "trainset").toPandas().set_index("id")
    assert len(t) == 23 + 3 and s["in_table"] == 26  # replaced, not appended
    for p, name in zip(paths[:3], ["emission", "double_peak", "absorption"]):
        row = t.loc[p]
        assert row["label_name"] == name and row["label"] == {"emission": 0, "absorption": 1, "double_peak": 3}[name]
        assert np.array_equal(row["flux"], lam.loc[p, "flux"]) and pd.isna(row["adapt_id"])
        assert row["group"] == lam.loc[p, "designation"].upper().replace(" ", "") and row["object"] == lam.loc[p, "designation"]
    assert t.groupby("group")["split"].nunique().max() == 1
    bad = tmp_path / "bad-extra.csv"
    bad.write_text(f"source_path,label\n{paths[0]},emision\n")
    with pytest.raises(ValueError, match="emision"):
        run_trainset(spark, str(ONDREJOV), str(LABELS), str(warehouse), cfg, extra_labels=str(bad))


@real
def test_holdout_keeps_named_stars_out_of_every_split(spark, tmp_path):
    """trainset.holdout: the 22 cross-matched stars (by Ondřejov file stem) and BT CMi (by object
    name; its files have no label) get the split 'holdout', every spectrum of their groups, and
    the summary says what was held out and what the file named but the table lacks."""
    pairs = pd.read_csv(REAL / "labels" / "cross-matched-pairs.csv")
    stems = [file_stem(p) for p in pairs["ondrejov_file"]]
    ho = tmp_path / "holdout.txt"
    ho.write_text("# external test\n" + "\n".join(stems[:-1]) + f"\n{stems[-1]}.fits  # with suffix\nV* BT CMi\n")
    cfg = load_config("local", overrides=["trainset.paths_per_task=8", f"trainset.holdout={ho}"])
    s = run_trainset(spark, str(ONDREJOV), str(LABELS), str(tmp_path / "wh"), cfg)
    table = Warehouse(str(tmp_path / "wh")).read_table(spark, "trainset").toPandas()
    held = table[table["split"] == "holdout"]
    assert sorted(held["id"].map(file_stem)) == sorted(stems) and len(held) == 22
    assert held["label_name"].value_counts().to_dict() == {"absorption": 18, "emission": 3, "double_peak": 1}
    rest = table[table["split"] != "holdout"]
    assert list(rest["object"]) == ["HD 208905"] and not set(rest["group"]) & set(held["group"])
    h = s["holdout"]
    assert (h["entries"], h["matched"], h["rows"], h["not_in_table"]) == (23, 22, 22, ["V* BT CMi"])
    assert sorted(h["groups"]) == sorted(held["group"]) and s["by_split"]["holdout"] == h["by_label"]
    bad = load_config("local", overrides=[f"trainset.holdout={tmp_path / 'missing.txt'}"])
    with pytest.raises(ValueError, match="no such file"):
        run_trainset(spark, str(ONDREJOV), str(LABELS), str(tmp_path / "wh2"), bad)
