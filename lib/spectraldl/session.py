"""The one SparkSession builder and the one logging set-up of every job."""
from __future__ import annotations

import logging
import os
import sys
from typing import Any

_LOGGING_DONE = False


def _quiet_third_party(record: logging.LogRecord) -> bool:
    """Drop INFO chatter that libraries send to the root logger (Horovod's rendezvous server,
    py4j's reconnects)."""
    return (record.levelno >= logging.WARNING or record.name != "root"
            or "site-packages" not in record.pathname)


def setup_logging(level: str = "INFO") -> None:
    """Configure the root logger once (timestamps in UTC, one line per record, to stderr)."""
    global _LOGGING_DONE
    if _LOGGING_DONE:
        logging.getLogger().setLevel(level)
        return
    handler = logging.StreamHandler(sys.stderr)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%SZ")
    import time
    fmt.converter = time.gmtime
    handler.setFormatter(fmt)
    handler._spectraldl = True  # type: ignore[attr-defined]
    handler.addFilter(_quiet_third_party)
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not getattr(h, "_spectraldl", False)] + [handler]
    root.setLevel(level)
    for noisy in ("py4j", "matplotlib", "PIL", "tensorflow", "h5py"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _LOGGING_DONE = True


def get_spark(app_name: str, config: dict[str, Any] | None = None, master: str | None = None):
    """Return the active SparkSession or build one.

    Settings come from the config's ``[spark]`` section; a master given by ``spark-submit``
    (``spark.master`` in the launch configuration) wins over ``master``, which defaults to
    ``local[*]`` when neither is set. ``PYSPARK_PYTHON`` defaults to this interpreter so that
    workers run the same virtual environment.
    """
    from pyspark import SparkConf, SparkContext
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    settings = (config or {}).get("spark", {})
    if SparkContext._gateway is None and "PYSPARK_GATEWAY_PORT" not in os.environ:
        # This process starts the JVM (plain python, not spark-submit): launch-time settings such
        # as spark.driver.memory and spark.driver.extraJavaOptions only take effect when they are
        # given to the launcher now; set later, on the builder, they are silently ignored.
        boot = SparkConf(loadDefaults=False)
        for key, value in settings.items():
            boot.set(key, value)
        SparkContext._ensure_initialized(conf=boot)
    # Start (or join) the JVM first: only then does SparkConf() see what spark-submit was given
    # (--master, --conf); a conf made before the gateway exists is empty.
    SparkContext._ensure_initialized()
    launch = SparkConf()
    builder = SparkSession.builder.appName(app_name)
    if not launch.contains("spark.master"):
        builder = builder.master(master or "local[*]")
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    for key, value in (config or {}).get("spark", {}).items():
        if not launch.contains(key):  # a --conf given to spark-submit wins over the config files
            builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
