"""Shared fixtures: the real data in ../shared, and one local[2] SparkSession for the whole run."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "lib"))
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")



def _find_real_data() -> Path:
    """``$SPECTRALDL_REAL_DATA``, else ``../shared/data/real``, else (a clone made elsewhere, as in
    ``git clone . /tmp/fresh``) the ``shared/data/real`` beside the repository it was cloned from."""
    if "SPECTRALDL_REAL_DATA" in os.environ:
        return Path(os.environ["SPECTRALDL_REAL_DATA"])
    beside = ROOT.parent / "shared" / "data" / "real"
    if beside.is_dir():
        return beside
    try:
        origin = subprocess.run(["git", "-C", str(ROOT), "remote", "get-url", "origin"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        origin = ""
    if origin and os.path.isdir(origin):
        candidate = Path(origin).resolve().parent / "shared" / "data" / "real"
        if candidate.is_dir():
            return candidate
    return beside


REAL = _find_real_data()


def real_files(pattern: str = "**/*.fits*") -> list[Path]:
    return sorted(p for p in REAL.glob(pattern) if p.is_file())


@pytest.fixture(scope="session")
def real_dir() -> Path:
    if not REAL.is_dir():
        pytest.skip(f"real data not found at {REAL}")
    return REAL


@pytest.fixture(scope="session")
def spark():
    """One local[2] session shared by every Spark test (start-up costs seconds)."""
    from spectraldl.config import load_config
    from spectraldl.session import get_spark

    cfg = load_config("local", overrides=["spark.spark.sql.shuffle.partitions=4"])
    s = get_spark("spectraldl-tests", cfg, master="local[2]")
    yield s
    s.stop()
