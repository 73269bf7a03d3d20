"""Shared fixtures: the real data in ../shared, a small synthetic archive, and one local[2]
SparkSession for the whole run.

Tests that need the real files carry the ``realdata`` marker (or use the ``real_dir`` fixture).
Without the data they are skipped and the run ends with one line saying how many, why and how to
get the data (``scripts/fetch_real_data.py``); with ``CI=true`` missing real data stops the run
with an error, so CI cannot pass by skipping them.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "lib"))
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from realdata import find_real_data, have_real_data, manifest_spectra  # noqa: E402  (tests/ is on sys.path)

REAL = find_real_data()
HAVE_REAL = have_real_data(REAL)
NO_REAL_REASON = f"no real data at {REAL}"
HOW_TO_GET = "get it with python scripts/fetch_real_data.py (or set SPECTRALDL_REAL_DATA)"
#: The real spectra, from the committed list: the same test ids whether the files are here or not.
REAL_SPECTRA = [REAL / rel for rel in manifest_spectra()]


def real_files(pattern: str = "**/*.fits*") -> list[Path]:
    """The real files matching ``pattern`` that are here (none without the data)."""
    return sorted(p for p in REAL.glob(pattern) if p.is_file())


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def pytest_configure(config):
    config.addinivalue_line("markers", "realdata: needs the real files (scripts/fetch_real_data.py); "
                                       "skipped without them, an error with CI=true")


def pytest_sessionstart(session):
    if _ci() and not HAVE_REAL:
        pytest.exit(f"spectraldl: CI=true and {NO_REAL_REASON}: the real-data tests must run in CI; "
                    f"{HOW_TO_GET}", returncode=pytest.ExitCode.USAGE_ERROR)


def pytest_collection_modifyitems(config, items):
    if HAVE_REAL:
        return
    skip = pytest.mark.skip(reason=NO_REAL_REASON)
    for item in items:
        if item.get_closest_marker("realdata") or "real_dir" in getattr(item, "fixturenames", ()):
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    if HAVE_REAL:
        return
    n = sum(1 for r in terminalreporter.stats.get("skipped", [])
            if isinstance(r.longrepr, tuple) and NO_REAL_REASON in str(r.longrepr[2]))
    if n:
        terminalreporter.write_line(f"spectraldl: {n} real-data tests skipped: {NO_REAL_REASON}; {HOW_TO_GET}")


@pytest.fixture(scope="session")
def real_dir() -> Path:
    if not HAVE_REAL:
        pytest.skip(NO_REAL_REASON)
    return REAL


@pytest.fixture(scope="session")
def synth_archive(tmp_path_factory) -> Path:
    """A small synthetic LAMOST archive (48 files, every layout, some gzipped, a dead fibre or two)
    made once per session by the project's generator, with ``truth.csv``; for tests that need LAMOST
    files but not real ones."""
    import pandas as pd

    from spectraldl.synth import SynthConfig, generate_indices

    out = tmp_path_factory.mktemp("synth-lamost")
    rows = list(generate_indices(str(out), range(48), 11, "lamost", SynthConfig.defaults()))
    pd.DataFrame(rows).to_csv(out / "truth.csv", index=False)
    return out


@pytest.fixture(scope="session")
def synth_samples(tmp_path_factory) -> dict[str, Path]:
    """One plain (not gzipped) synthetic file per layout: ``dr1`` (float32 image, normalised row),
    ``dr2`` (float64 image), ``dr9`` (COADD table), ``table`` (Ondřejov table), ``iraf``."""
    from spectraldl.synth import SynthConfig, make_spectrum, write_spectrum

    out, cfg = tmp_path_factory.mktemp("synth-samples"), SynthConfig.defaults()
    paths = {}
    for kind, layout in (("lamost", "dr1"), ("lamost", "dr2"), ("lamost", "dr9"), ("ondrejov", "table"),
                         ("ondrejov", "iraf")):
        s = make_spectrum(0, 5, kind, cfg, layout=layout, compression="none")
        write_spectrum(str(out / layout), s)  # one folder each: the same index gives the same name
        paths[layout] = out / layout / s.relpath
    return paths


@pytest.fixture(scope="session")
def spark():
    """One local[2] session shared by every Spark test (start-up costs seconds)."""
    from spectraldl.config import load_config
    from spectraldl.session import get_spark

    java_opts = load_config("local")["spark"].get("spark.driver.extraJavaOptions", "")
    cfg = load_config("local", overrides=["spark.sql.shuffle.partitions=4",  # + a JVM option a test looks for
                                          f"spark.driver.extraJavaOptions={java_opts} -Dspectraldl.launch.probe=yes"])
    s = get_spark("spectraldl-tests", cfg, master="local[2]")
    yield s
    s.stop()
