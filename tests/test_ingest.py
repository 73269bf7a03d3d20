"""Ingest on real files: outcomes per file, vectors vs an independent computation, rescans, kills."""
from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest
from astropy.io import fits

from conftest import REAL
from spectraldl.config import load_config
from spectraldl.ingest import run_ingest
from spectraldl.warehouse import Warehouse

pytestmark = pytest.mark.realdata
LAMOST = REAL / "lamost"
DEAD_FIBRE = "spec-58575-HD103621N361936B01_sp03-018.fits"
BT_CMI = "bt-cmi-lamost.fits"


@pytest.fixture(scope="module")
def config():
    return load_config("local", overrides=["ingest.paths_per_task=20"])


@pytest.fixture(scope="module")
def real_run(spark, tmp_path_factory, config):
    wh = tmp_path_factory.mktemp("wh-real")
    summary = run_ingest(spark, str(LAMOST), str(wh), config)
    w = Warehouse(str(wh))
    spectra = w.read_table(spark, "spectra").toPandas().set_index("source_path")
    rejects = w.read_table(spark, "rejects").toPandas().set_index("source_path")
    return summary, spectra, rejects


def reference_vector(path):
    """The default preprocessing written again from the CONVENTIONS text, on astropy's arrays."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(path) as hl:
            if "COADD" in hl:
                t = hl["COADD"].data
                w, f, m = (np.asarray(t[c][0], float) for c in ("WAVELENGTH", "FLUX", "ANDMASK"))
            else:
                h, d = hl[0].header, hl[0].data.astype(float)
                w = 10 ** (h["COEFF0"] + h["COEFF1"] * np.arange(d.shape[1]))
                f, m = d[0], d[3]
    sel = (w >= 6519) & (w <= 6732)
    good = sel & np.isfinite(f) & (m == 0)
    cont_px = good & ((w < 6550) | (w > 6578))
    A = np.vstack([np.ones(cont_px.sum()), w[cont_px]]).T
    coef = np.linalg.lstsq(A, f[cont_px], rcond=None)[0]
    norm = f[good] / (coef[0] + coef[1] * w[good])
    v = np.interp(np.linspace(6519, 6732, 140), w[good], norm)
    return (v - v.mean()) / v.std()


def test_every_real_file_has_its_outcome(real_run):
    summary, spectra, rejects = real_run
    files = sorted(str(p) for p in LAMOST.rglob("*.fits*"))
    assert summary["seen"] == len(files) == 136  # 132 + the 4 DR10 spectra with nebular contamination
    assert summary["seen"] == summary["skipped"] + summary["ingested"] + summary["rejected"]
    # files: 127 LRS + 6 MRS nights ingested; the dead fibre and the two cloudy MRS nights rejected
    assert (summary["ingested"], summary["rejected"]) == (133, 3)
    assert set(spectra.index) | set(rejects.index) == set(files)
    for f in files:
        name = os.path.basename(f)
        if name.startswith("med-"):
            continue  # every exposure: test_every_real_mrs_exposure_has_its_outcome
        assert not (f in spectra.index and f in rejects.index)
        if name == DEAD_FIBRE:
            assert rejects.loc[f, "reason"] == "no_signal" and "dead fibre" in rejects.loc[f, "detail"]
        else:
            assert f in spectra.index, rejects.loc[f].to_dict() if f in rejects.index else f
    # spectra: 127 LRS + 31 MRS ingested; 1 dead fibre + 16 MRS exposures / co-adds of the cloudy nights
    assert (summary["spectra"], summary["rejected_spectra"]) == (158, 17)
    assert summary["rejected_by_reason"] == {"low_signal": 16, "no_signal": 1}
    assert summary["cosmic_rays_masked"] == 54  # in the 25 good exposures (README's example line)
    assert spectra["preprocess_id"].nunique() == 1
    assert not spectra.set_index("exposure", append=True).index.duplicated().any()
    runs = json.loads(open(summary["summary_path"]).read())
    assert runs["seen"] == 136 and runs["status"] == "ok" and runs["spectra"] == 158


def test_every_real_mrs_exposure_has_its_outcome(real_run):
    """Each red-arm table of the 8 real MRS files (COADD_R and every R-<LMJM>) is one row of
    ``spectra`` or of ``rejects``; the two cloudy nights are ``low_signal`` throughout."""
    from spectraldl.io import read_spectra

    _, spectra, rejects = real_run
    meds = sorted(str(p) for p in LAMOST.rglob("med-*"))
    assert len(meds) == 8
    n = 0
    for f in meds:
        tables = [name for name, _ in read_spectra(f)[1]]
        ok = set(spectra.loc[[f]]["exposure"]) if f in spectra.index else set()
        bad = rejects.loc[[f]] if f in rejects.index else rejects.iloc[0:0]
        assert not ok & set(bad["exposure"]) and ok | set(bad["exposure"]) == set(tables), f
        assert len(ok) + len(bad) == len(tables) and tables[0] == "COADD_R"
        n += len(tables)
        if "med-58268-" in f or "med-58269-" in f:   # clouds: almost no flux, only cosmic-ray spikes
            assert not ok and set(bad["reason"]) == {"low_signal"}
            assert all("median S/N" in d for d in bad["detail"])
        else:
            assert ok == set(tables), bad[["exposure", "reason"]].to_dict("records")
            rows = spectra.loc[[f]]
            assert (rows["file_format"] == "lamost_mrs").all() and rows["mjd"].between(58000, 59000).all()
            single = rows[rows["exposure"] != "COADD_R"]
            assert (single["n_cosmic"] >= 0).all() and single["n_cosmic"].sum() > 0
            assert (rows.loc[rows["exposure"] == "COADD_R", "n_cosmic"] == 0).all()
            # the night's exposures: 20-minute cadence (med-58649 skips one: 46 min)
            t = single.sort_values("exposure")["mjd"].to_numpy() * 1440.0
            assert ((np.diff(t) > 10) & (np.diff(t) < 60)).all(), np.diff(t)
    assert n == 47


def test_vectors_match_independent_computation(real_run):
    _, spectra, _ = real_run
    spectra = spectra[spectra["exposure"] == ""]
    assert len(spectra) == 127
    worst = 0.0
    for path, row in spectra.iterrows():
        ref = reference_vector(path)
        worst = max(worst, float(np.max(np.abs(np.asarray(row["flux"]) - ref))))
    assert worst < 2e-4, worst
    dr10 = spectra[spectra.file_format == "lamost_lrs_coadd"]
    assert len(dr10) == 29 and dr10["obsid"].notna().all()
    assert set(spectra["file_format"]) == {"lamost_lrs_dr1", "lamost_lrs_image", "lamost_lrs_coadd"}
    assert spectra["n_cosmic"].isna().all() and spectra["mjd"].notna().all()


def test_bt_cmi_emission_peak_survives(real_run):
    _, spectra, _ = real_run
    path = next(p for p in spectra.index if p.endswith(BT_CMI))
    with fits.open(path) as hl:
        h, d = hl[0].header, hl[0].data
    w = 10 ** (h["COEFF0"] + h["COEFF1"] * np.arange(d.shape[1]))
    core = (w > 6555) & (w < 6575)
    peak = np.argmax(np.where(core, d[0], -np.inf))
    assert d[1][peak] == 0          # LAMOST zeroed ivar on the peak...
    v = np.asarray(spectra.loc[path, "flux"])
    grid = np.linspace(6519, 6732, 140)
    assert abs(grid[np.argmax(v)] - 6564.6) < 3 and v.max() > 4  # ...and the peak is in the vector


def test_task_written_spectra_equal_spark_written(spark, real_run, tmp_path):
    """``spectra_writer = "auto"`` (tasks write the spectra files) and ``"spark"`` (Spark's writer,
    as for HDFS or S3) give the same tables, read back with the same schema; so do batches of 7
    files (``ingest.batch_files``) and of the default 256 (a task's 20 paths in one)."""
    from pyspark_test import assert_pyspark_df_equal

    summary, _, _ = real_run
    wh = tmp_path / "wh-spark-writer"
    cfg = load_config("local", overrides=["ingest.paths_per_task=20", 'ingest.spectra_writer="spark"',
                                          "ingest.batch_files=7"])
    s = run_ingest(spark, str(LAMOST), str(wh), cfg)
    counts = ("seen", "ingested", "rejected", "spectra", "rejected_spectra", "rejected_by_reason", "cosmic_rays_masked")
    assert {k: s[k] for k in counts} == {k: summary[k] for k in counts}
    task_wh = summary["inputs"]["warehouse"]
    for table in ("spectra", "rejects"):
        a = Warehouse(task_wh).read_table(spark, table)
        b = Warehouse(str(wh)).read_table(spark, table)
        assert a.schema == b.schema, table
        assert_pyspark_df_equal(a.drop("ingest_run").orderBy("source_path", "exposure"),
                                b.drop("ingest_run").orderBy("source_path", "exposure"))
    files = [f for d in Warehouse(task_wh).table_dirs("spectra")
             for f in os.listdir(os.path.join(task_wh, "spectra", d))]
    assert files and all(f.startswith("part-") and f.endswith(".parquet") for f in files)  # no leftovers


def test_a_task_failing_mid_write_leaves_no_file(spark, tmp_path, monkeypatch):
    """A parse task that fails after writing part of its file removes it; a retry writes it whole."""
    import datetime as dt

    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyspark.sql.types import _parse_datatype_string

    from spectraldl.ingest import SPECTRA_SCHEMA
    from spectraldl.parse import (FAULT_INJECT_ENV, TASK_OUTPUT_SCHEMA, ParseOptions, SpectraSink, arrow_schema,
                                  parse_and_write_batches)

    paths = sorted(str(p) for p in (LAMOST / "ChenfaZheng_LAMOST-SBC").glob("spec-*.fits"))[:6]
    now = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)

    def batch(ps):
        return pa.RecordBatch.from_arrays([pa.array(ps), pa.array([1] * len(ps), pa.int64()),
                                           pa.array([now] * len(ps), pa.timestamp("us", tz="UTC"))],
                                          names=["source_path", "file_size", "file_mtime"])

    marker = tmp_path / "fail"
    monkeypatch.setenv(FAULT_INJECT_ENV, str(marker))

    def batches():
        yield batch(paths[:3])
        marker.write_text("fail the next batch")  # the first batch is written by now
        yield batch(paths[3:])

    sink = SpectraSink(str(tmp_path / "spectra"), arrow_schema(SPECTRA_SCHEMA), "run1",
                       _parse_datatype_string(SPECTRA_SCHEMA).json())
    opts = ParseOptions.from_config(load_config("local"))
    args = (opts, sink, arrow_schema(TASK_OUTPUT_SCHEMA))
    with pytest.raises(Exception, match="injected failure"):
        list(parse_and_write_batches(batches(), *args))
    assert os.listdir(sink.directory) == []                 # the partial file is gone
    retry = iter([batch(paths[:3]), batch(paths[3:])])
    out = pa.Table.from_batches(list(parse_and_write_batches(retry, *args)))
    assert os.listdir(sink.directory) == ["part-00000.parquet"]
    kinds = out.column("kind").to_pylist()
    rejected = [p for k, p in zip(kinds, out.column("source_path").to_pylist()) if k == "rejected"]
    assert kinds.count("file") == 1 and len(rejected) < 3
    t = pq.read_table(os.path.join(sink.directory, "part-00000.parquet"))
    assert t.num_rows == out.column("rows").to_pylist()[kinds.index("file")] == 6 - len(rejected)
    assert t.column("source_path").to_pylist() == [p for p in paths if p not in rejected]
    assert set(t.column("ingest_run").to_pylist()) == {"run1"}


def test_output_files_use_every_core_only_for_big_tables():
    from spectraldl.ingest import output_files

    assert output_files(50_000, 2, 10, 200_000, 10_000) == 2      # one file per core
    assert output_files(5_000, 2, 2, 200_000, 10_000) == 1        # too few rows to split
    assert output_files(1_000_000, 2, 200, 200_000, 10_000) == 5  # rows_per_file caps a file
    assert output_files(30_000, 8, 2, 200_000, 10_000) == 2       # never more than the partitions
    assert output_files(0, 2, 2, 200_000, 10_000) == 1


def test_real_mrs_exposures_ingested_like_the_star_lrs_spectrum(spark, real_run, config):
    """The one star of the real MRS files (F5, LAMOST J192814.09+435530.8) was also observed by
    the LRS: each good night's ingested vector (exposures and co-adds, blurred from R 7,500 to
    1,800) correlates with that LRS vector at r >= 0.85 (median), and the default model scores no
    MRS spectrum as emission, cosmic-ray hits (one on the H-alpha core of med-58625's R-84420171)
    included."""
    from spectraldl.score import run_score

    summary, spectra, _ = real_run
    lrs = np.asarray(spectra.loc[next(p for p in spectra.index if "spec-57287-KP193637N444141V03" in p), "flux"])
    star = spectra[(spectra["file_format"] == "lamost_mrs") & ~spectra.index.str.contains("med-58408-")]
    assert len(star) == 23  # 58270, 58625, 58644, 58646, 58649: 5 co-adds + 18 exposures
    r = np.array([np.corrcoef(np.asarray(v), lrs)[0, 1] for v in star["flux"]])
    assert np.median(r) >= 0.85 and r.min() >= 0.8, sorted(np.round(r, 3))
    assert star.loc[star["exposure"] != "COADD_R", "n_cosmic"].sum() >= 40
    # the constant star's single exposures scatter beyond their pixel-noise errors (README, ha_variable)
    single = star[star["exposure"] != "COADD_R"]
    assert len(single) == 18 and round(single["ha_ew"].std(), 3) == 0.067
    assert round(single["ha_ew_err"].median(), 3) == 0.038
    s = run_score(spark, summary["inputs"]["warehouse"], config)
    assert s["scored"] == 158
    scores = Warehouse(summary["inputs"]["warehouse"]).read_table(spark, "scores").toPandas()
    mrs = scores[scores["exposure"] != ""]
    assert len(mrs) == 31 and (mrs["label"] == "absorption").all() and mrs["p_emission"].max() < 0.01
    assert "R-84420171" in set(mrs["exposure"])
