"""Bad input mixed into an archive of good real files: every file ends in ``spectra`` or ``rejects``
with its expected reason, the counts reconcile exactly, and no Spark task fails.

The corpus (``tests/badfiles.py``) has one kind per defect; each is checked first through
:func:`spectraldl.parse.parse_file` (no Spark: a failure names the kind), then all together
through :func:`spectraldl.ingest.run_ingest`.
"""
from __future__ import annotations

import uuid
from collections import Counter

import numpy as np
import pytest

from badfiles import (COADD, GOOD, IMAGE32, IMAGE64, KINDS, TEST_MAX_BYTES, Case, build_corpus, copy_good,
                      loglinear_window, real_bytes, sprinkled_positions)
from conftest import REAL
from spectraldl.config import load_config
from spectraldl.ingest import run_ingest
from spectraldl.io import REASONS, read_spectrum
from spectraldl.parse import ParseOptions, parse_file
from spectraldl.preprocess import PreprocessSettings, preprocess
from spectraldl.warehouse import Warehouse

pytestmark = pytest.mark.realdata
#: One row per file: MRS files give their co-add only (every exposure: tests/test_ingest.py).
OVERRIDES = [f"io.max_bytes={TEST_MAX_BYTES}", "ingest.paths_per_task=20", "mrs.exposures=false"]


@pytest.fixture(scope="module")
def config():
    return load_config("local", overrides=OVERRIDES)


@pytest.fixture(scope="module")
def opts(config):
    return ParseOptions.from_config(config)


def test_corpus_covers_every_reason():
    bad = {k.name: k.reason for k in KINDS.values() if k.reason is not None}
    assert len(bad) >= 20
    assert set(bad.values()) == set(REASONS)  # a new reason code needs a kind here
    assert sum(k.reason is None for k in KINDS.values()) >= 5


@pytest.mark.parametrize("name", sorted(KINDS))
def test_each_kind_through_parse_file(tmp_path, opts, name):
    cases = build_corpus(tmp_path, [name])
    for c in cases:
        row = parse_file(str(c.path), opts)
        if c.reason is None:
            assert row["outcome"] == "ok", row.get("detail")
            assert row["flux"].shape == (140,) and np.isfinite(row["flux"]).all()
            assert 0.5 <= row["valid_fraction"] <= 1
        else:
            assert (row["outcome"], row["reason"]) == ("rejected", c.reason), row.get("detail")
            assert str(c.path) in row["detail"]


def test_long_wavelength_grids_are_not_cached():
    """A hostile archive of files declaring millions of pixels (gzip makes them small) must not
    fill the per-worker wavelength-grid cache: only LAMOST-sized grids are kept."""
    import gzip

    from badfiles import hdu_layout, set_card
    from spectraldl.io.wavelength import _CACHED_MAX_PIXELS, _loglinear_grid

    base = real_bytes(IMAGE32)
    _, start, _ = hdu_layout(base, 0)
    n = _CACHED_MAX_PIXELS * 4
    body = bytes(5 * n * 4)
    body += bytes(-len(body) % 2880)
    read_spectrum(base, name="real.fits")
    before = _loglinear_grid.cache_info().currsize
    for i in range(3):
        hdr = set_card(set_card(base[:start], "NAXIS1", str(n)), "COEFF0", f"{3.5 + i * 1e-6:.7f}")
        s = read_spectrum(gzip.compress(hdr + body, compresslevel=1), name=f"long{i}.fits.gz")
        assert len(s) == n and s.wavelength[0] == pytest.approx(10 ** (3.5 + i * 1e-6))
    assert _loglinear_grid.cache_info().currsize == before


def _no_failed_tasks(sc, group: str) -> tuple[int, int]:
    """(jobs, tasks) run in ``group``; asserts every job succeeded with no failed task attempt."""
    tracker = sc.statusTracker()
    jobs = tracker.getJobIdsForGroup(group)
    ntasks = 0
    for j in jobs:
        info = tracker.getJobInfo(j)
        assert info is not None and info.status == "SUCCEEDED", (j, info)
        for stage_id in info.stageIds:
            st = tracker.getStageInfo(stage_id)
            if st is None:  # a stage skipped because its shuffle output existed
                continue
            assert st.numFailedTasks == 0 and st.currentAttemptId == 0, st
            ntasks += st.numCompletedTasks
    return len(jobs), ntasks


def test_mixed_archive_every_file_accounted_for(spark, tmp_path, config):
    arc, wh = tmp_path / "archive", tmp_path / "wh"
    cases: list[Case] = copy_good(arc / "good") + build_corpus(arc / "bad")
    expected = {str(c.path): c.reason for c in cases}
    kind_of = {str(c.path): c.kind for c in cases}
    assert len(expected) == len(cases) >= len(GOOD) + len(KINDS)

    sc = spark.sparkContext
    group = f"badinput-{uuid.uuid4().hex[:8]}"
    sc.setJobGroup(group, "bad-input ingest test")
    try:
        s = run_ingest(spark, str(arc), str(wh), config)
        print(f"ingest: {s['seconds']} s (parse {s.get('parse_seconds')} s), {s['seen']} files")
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
    njobs, ntasks = _no_failed_tasks(sc, group)
    assert njobs > 0 and ntasks > 0

    # counts reconcile exactly
    want_ok = sorted(p for p, r in expected.items() if r is None)
    want_rej = Counter(r for r in expected.values() if r is not None)
    assert s["seen"] == len(expected) == s["skipped"] + s["ingested"] + s["rejected"]
    assert (s["skipped"], s["ingested"], s["rejected"]) == (0, len(want_ok), sum(want_rej.values()))
    assert s["rejected_by_reason"] == dict(sorted(want_rej.items()))

    # every file in exactly one table, with its expected reason
    w = Warehouse(str(wh))
    spectra = w.read_table(spark, "spectra").toPandas().set_index("source_path")
    rejects = w.read_table(spark, "rejects").toPandas().set_index("source_path")
    assert spectra.index.is_unique and rejects.index.is_unique
    assert not set(spectra.index) & set(rejects.index)
    assert set(spectra.index) | set(rejects.index) == set(expected)
    got = {**{p: None for p in spectra.index}, **rejects["reason"].to_dict()}
    wrong = {kind_of[p]: (expected[p], got[p]) for p in expected if got[p] != expected[p]}
    assert wrong == {}
    for p, detail in rejects["detail"].items():
        assert p in detail and rejects.loc[p, "ingest_run"] == s["run_id"]

    # what was ingested is right, not merely present
    flux = {p: np.asarray(v) for p, v in spectra["flux"].items()}
    for p, v in flux.items():
        assert v.shape == (140,) and np.isfinite(v).all(), kind_of[p]
        assert abs(v.mean()) < 1e-5 and abs(v.std() - 1) < 1e-4, kind_of[p]

    def path(kind: str, suffix: str = "") -> str:
        return next(p for p in expected if kind_of[p] == kind and p.endswith(suffix))

    good = {rel: str(arc / "good" / rel) for rel in GOOD}
    same_as = {path("long_header"): good[IMAGE32], path("symlink_to_good"): good[IMAGE32],
               path("gzip_multimember"): good[IMAGE32], path("plain_named_gz"): good[IMAGE64],
               path("hard_link_twin", "-twin.fits"): good[COADD], path("upper_case_name"): good[COADD],
               path("obsid_overflow"): good[COADD]}
    same_as[path("hard_link_twin", "_twin.fits")] = good[COADD]
    for p, ref in same_as.items():
        np.testing.assert_array_equal(flux[p], flux[ref], err_msg=kind_of[p])
        assert spectra.loc[p, "valid_fraction"] == spectra.loc[ref, "valid_fraction"] == 1.0
    assert spectra.loc[path("obsid_overflow"), "obsid"] is None or np.isnan(spectra.loc[path("obsid_overflow"), "obsid"])
    assert spectra.loc[good[COADD], "obsid"] == 3703110
    sprinkled = path("nan_inf_sprinkled")
    assert spectra.loc[sprinkled, "valid_fraction"] == pytest.approx(125 / 140, abs=1e-6)
    # NaN/Inf pixels are exactly like masked pixels: the vector of the original file with them masked
    orig = read_spectrum(REAL / IMAGE64)
    bad = np.concatenate(list(sprinkled_positions(loglinear_window(real_bytes(IMAGE64))).values()))
    masked = orig.good.copy()
    masked[bad] = False
    want, frac = preprocess(orig.wavelength, orig.flux, masked, PreprocessSettings.from_config(config["preprocess"]))
    assert frac == pytest.approx(125 / 140)
    np.testing.assert_allclose(flux[sprinkled], want, rtol=0, atol=1e-6)
    assert not np.allclose(flux[sprinkled], flux[good[IMAGE64]], atol=1e-3)

    # a rescan remembers every outcome, odd paths (broken link, directory) included
    s2 = run_ingest(spark, str(arc), str(wh), config)
    print(f"rescan: {s2['seconds']} s")
    assert (s2["seen"], s2["skipped"], s2["ingested"], s2["rejected"]) == (len(expected), len(expected), 0, 0)
