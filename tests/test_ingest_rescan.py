"""Rescans, changed files, retried rejects, gone files, kills: the warehouse converges and never duplicates.

On files of the session's synthetic archive (conftest's ``synth_archive``): what is tested is the
warehouse's bookkeeping, which any LAMOST files exercise, so it runs without the real data."""
from __future__ import annotations

import os
import shutil
import time

import pandas as pd
import pytest
from pyspark_test import assert_pyspark_df_equal

from spectraldl.config import load_config
from spectraldl.ingest import run_ingest
from spectraldl.warehouse import LockedError, Warehouse

#: Archive path -> (layout, compression, dead fibre) of the synthetic file copied there.
ROLES = {"image/dr1.fits": ("dr1", "none", False),
         "image/dr2.fits": ("dr2", "none", False),
         "coadd/a.fits": ("dr9", "none", False),
         "coadd/b.fits": ("dr9", "none", False),
         "image/misnamed-gzip.fits": ("dr2", "gzip_misnamed", False),
         "image/dead-fibre.fits": ("dr3_8", "none", True),
         "new/dr3.fits.gz": ("dr3_8", "gzip", False),
         "new/dr1.fits.gz": ("dr1", "gzip", False)}
PICK = list(ROLES)[:6]   # 5 spectra and a dead fibre
EXTRA = list(ROLES)[6:]
DEAD_FIBRE_REASONS = {"no_signal", "too_few_valid_pixels"}


@pytest.fixture(scope="module")
def config():
    return load_config("local")


@pytest.fixture(scope="module")
def source(synth_archive):
    """Archive path -> the synthetic file with its role (each file used once)."""
    truth = pd.read_csv(synth_archive / "truth.csv")
    out, used = {}, set()
    for name, (layout, compression, dead) in ROLES.items():
        ok = truth[(truth.layout == layout) & (truth.compression == compression) & (truth.dead_fibre == dead)
                   & ~truth.file.isin(used)]
        assert len(ok), (name, layout, compression, dead)
        used.add(ok.file.iloc[0])
        out[name] = synth_archive / ok.file.iloc[0]
    return out


def make_archive(root, names, source):
    for n in names:
        dst = root / n
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source[n], dst)


def tables(spark, wh):
    w = Warehouse(str(wh))
    return (w.read_table(spark, "spectra").orderBy("source_path"),
            w.read_table(spark, "rejects").orderBy("source_path"))


def test_rescan_change_retry_gone(spark, tmp_path, config, source):
    arc, wh = tmp_path / "archive", tmp_path / "wh"
    make_archive(arc, PICK, source)
    s1 = run_ingest(spark, str(arc), str(wh), config)
    assert (s1["seen"], s1["ingested"], s1["rejected"], s1["skipped"]) == (6, 5, 1, 0)
    sp1, rj1 = (t.toPandas() for t in tables(spark, wh))

    s2 = run_ingest(spark, str(arc), str(wh), config)  # nothing new: nothing done
    assert (s2["seen"], s2["skipped"], s2["ingested"], s2["rejected"]) == (6, 6, 0, 0)
    sp2, rj2 = (t.toPandas() for t in tables(spark, wh))
    assert sp2.equals(sp1) and rj2.equals(rj1)

    make_archive(arc, EXTRA, source)                               # two new files
    changed = arc / PICK[1]
    os.utime(changed, (time.time() + 100, time.time() + 100))  # one changed file
    (arc / PICK[4]).unlink()                               # one gone
    s3 = run_ingest(spark, str(arc), str(wh), config)
    assert (s3["seen"], s3["new"], s3["changed"], s3["gone"], s3["ingested"], s3["skipped"]) == (7, 2, 1, 1, 3, 4)
    sp3 = tables(spark, wh)[0].toPandas()
    assert sp3["source_path"].is_unique and len(sp3) == 5 + 2   # the gone file's row is kept
    runs = dict(zip(sp3.source_path, sp3.ingest_run))
    assert runs[str(changed)] == s3["run_id"] and runs[str(arc / PICK[0])] == s1["run_id"]
    assert runs[str(arc / EXTRA[0])] == s3["run_id"]

    s4 = run_ingest(spark, str(arc), str(wh), config, retry_rejects=True)  # the dead fibre again
    assert (s4["skipped"], s4["rejected"], s4["replaced"]) == (6, 1, 1)
    rj4 = tables(spark, wh)[1].toPandas()
    assert len(rj4) == 1 and rj4.ingest_run.iloc[0] == s4["run_id"] and rj4.reason.iloc[0] in DEAD_FIBRE_REASONS
    assert rj4.reason.iloc[0] == rj1.reason.iloc[0] and rj4.source_path.iloc[0] == str(arc / PICK[5])


@pytest.mark.parametrize("step", ["staged", "moved"])
def test_killed_run_leaves_nothing_and_rerun_converges(spark, tmp_path, config, step, source):
    arc = tmp_path / "archive"
    make_archive(arc, PICK, source)
    ref_wh, wh = tmp_path / "ref", tmp_path / "wh"
    run_ingest(spark, str(arc), str(ref_wh), config)
    with pytest.raises(RuntimeError, match="fail_after"):
        run_ingest(spark, str(arc), str(wh), config, fail_after=step)
    w = Warehouse(str(wh))
    assert w.table_dirs("spectra") == [] and w.manifest()["seq"] == 0   # nothing visible
    assert not (wh / "_state" / "lock").exists()                         # lock released
    s = run_ingest(spark, str(arc), str(wh), config)
    assert (s["ingested"], s["rejected"]) == (5, 1)
    assert sorted(os.listdir(wh / "spectra")) == w.table_dirs("spectra")   # leftovers removed
    for got, want in zip(tables(spark, wh), tables(spark, ref_wh)):
        assert_pyspark_df_equal(got.drop("ingest_run"), want.drop("ingest_run"))


def test_lock_refuses_second_run(spark, tmp_path, config, source):
    arc, wh = tmp_path / "archive", tmp_path / "wh"
    make_archive(arc, PICK[:1], source)
    w = Warehouse(str(wh))
    w.acquire_lock("other-run", "ingest")
    with pytest.raises(LockedError, match="locked by ingest run other-run"):
        run_ingest(spark, str(arc), str(wh), config)
    s = run_ingest(spark, str(arc), str(wh), config, break_lock=True)
    assert s["ingested"] == 1 and not (wh / "_state" / "lock").exists()


def test_list_file_glob_and_hadoop_code_path(spark, tmp_path, config, source):
    arc = tmp_path / "archive"
    make_archive(arc, PICK, source)
    listing = tmp_path / "paths.txt"
    paths = [str(arc / p) for p in PICK]
    listing.write_text("# my selection\n" + "\n".join(paths + paths[:2]) + "\n\n")  # duplicates listed
    s = run_ingest(spark, str(listing), str(tmp_path / "wh1"), config)
    assert (s["seen"], s["ingested"], s["rejected"]) == (6, 5, 1)
    s = run_ingest(spark, str(arc / "coadd" / "*.fits"), str(tmp_path / "wh2"), config)
    assert (s["seen"], s["ingested"]) == (2, 2)
    got = Warehouse(str(tmp_path / "wh2")).read_table(spark, "spectra").toPandas()
    assert sorted(got.source_path) == sorted(str(arc / p) for p in PICK[2:4])  # plain paths, as given
    # the warehouse through the JVM's Hadoop FileSystem (the hdfs:// / s3a:// code path) on file://
    uri = f"file://{tmp_path / 'wh3'}"
    hconf = load_config("local", overrides=['warehouse.filesystem="hadoop"'])
    s = run_ingest(spark, str(arc), uri, hconf)
    w = Warehouse(uri, spark, force_hadoop=True)
    assert w.manifest()["seq"] == 1 and w.read_table(spark, "spectra").count() == 5
    s = run_ingest(spark, str(arc), uri, hconf)
    assert s["skipped"] == 6


def test_rows_from_before_the_exposure_key(spark, tmp_path, source, config):
    """A warehouse whose spectra and rejects were written before ``exposure`` existed: its rows
    read with an empty ``exposure`` (never null), a rescan skips them, and scoring keys them
    ``(source_path, "")``."""
    import pyarrow.parquet as pq
    from spectraldl.ingest import REJECTS_SCHEMA, SPECTRA_SCHEMA
    from spectraldl.score import run_score

    arc, wh = tmp_path / "archive", tmp_path / "wh"
    make_archive(arc, PICK, source)
    first = run_ingest(spark, str(arc), str(wh), config)
    for table in ("spectra", "rejects"):  # as an older version wrote them
        for f in (wh / table).rglob("*.parquet"):
            t = pq.read_table(f)
            pq.write_table(t.drop(["exposure"] + (["mjd", "exptime", "n_cosmic"] if table == "spectra" else [])), f)
            (f.parent / f".{f.name}.crc").unlink(missing_ok=True)  # Hadoop's checksum of the old bytes
    w = Warehouse(str(wh))
    for table, schema in (("spectra", SPECTRA_SCHEMA), ("rejects", REJECTS_SCHEMA)):
        df = w.read_table(spark, table, schema).toPandas()
        assert len(df) and (df["exposure"] == "").all(), table
    again = run_ingest(spark, str(arc), str(wh), config)
    assert (again["seen"], again["skipped"], again["ingested"]) == (first["seen"], first["seen"], 0)
    s = run_score(spark, str(wh), config)
    assert s["scored"] == first["spectra"]
    scores = w.read_table(spark, "scores").toPandas()
    assert (scores["exposure"] == "").all() and len(scores) == first["spectra"]
