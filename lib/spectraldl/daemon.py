"""PySpark's worker daemon, with spectraldl's worker set-up done once before workers fork.

Spark starts one ``python -m pyspark.daemon`` per executor, which forks a Python worker per
concurrent task. Each new worker then paid, before its first task ran a line of ours, a full
re-read of every zip archive on ``sys.path`` (see :mod:`spectraldl.worker`) and the imports of
numpy, pandas, pyarrow and the package (together 7-15 % of a 50,000-file ingest's worker time on
2 cores). With ``spark.python.daemon.module = "spectraldl.daemon"`` (conf/local.toml) the daemon
does both once: forked workers inherit the patched, already stamped importers and the loaded
modules (copy-on-write), then run PySpark's own worker code unchanged.

A failed preload is reported on stderr and otherwise ignored: the workers import what they need
themselves, as with the plain daemon.
"""
from __future__ import annotations

import importlib
import sys

#: Modules every spectraldl task imports; TensorFlow is left out on purpose (its import starts
#: threads, which do not survive a fork, and only the scoring tasks need it).
PRELOAD = ("numpy", "pandas", "pyarrow", "pyarrow.compute", "pyarrow.parquet",
           "spectraldl.parse", "spectraldl.sources", "spectraldl.preprocess")


def preload(modules: tuple[str, ...] = PRELOAD) -> list[str]:
    """Import ``modules``; returns those that failed (named on stderr)."""
    failed = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # pragma: no cover - depends on the cluster's environment
            failed.append(name)
            print(f"spectraldl.daemon: could not preload {name}: {exc!r}", file=sys.stderr)
    return failed


def main() -> None:
    from .worker import prepare_worker
    prepare_worker()
    preload()
    from pyspark import daemon
    daemon.manager()


if __name__ == "__main__":
    main()
