"""Shared fixtures: the real data in ../shared, and one local[2] SparkSession for the whole run."""
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

from realdata import find_real_data  # noqa: E402  (tests/ is on sys.path under pytest)

REAL = find_real_data()


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

    java_opts = load_config("local")["spark"].get("spark.driver.extraJavaOptions", "")
    cfg = load_config("local", overrides=["spark.sql.shuffle.partitions=4",  # + a JVM option a test looks for
                                          f"spark.driver.extraJavaOptions={java_opts} -Dspectraldl.launch.probe=yes"])
    s = get_spark("spectraldl-tests", cfg, master="local[2]")
    yield s
    s.stop()
