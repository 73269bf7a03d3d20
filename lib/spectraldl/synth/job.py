"""The Spark plan of ``spark-submit.sh synth``: spectra written in the tasks, truth on the driver.

``range(n)`` is split into partitions; each task generates and writes its files (see
:mod:`spectraldl.synth.generate`, whose output depends only on the index) and returns their
truth rows (one per file, one per red-arm table of an MRS file); the driver sorts the rows by
``(index, exposure)`` and writes ``truth.parquet``, ``truth.csv`` and,
for Ondřejov, ``labels.csv`` in the format of the real label file. The output directory must be
one that every executor can write: a local path in local mode, a shared file system on a cluster.
"""
from __future__ import annotations

import logging
import os
import time
from collections import Counter
from typing import Any

from ..errors import UsageError
from ..lifecycle import task_count
from ..worker import prepare_worker
from .generate import LABEL_CODES, TRUTH_COLUMNS, SynthConfig, generate_indices

log = logging.getLogger(__name__)

ONDREJOV_ID_PREFIX = "ivo://asu.cas.cz/stel/ccd700/"
_TYPES = {"index": "int64", "star_id": "int64", "label": "int64", "bytes": "int64", "strength": "float64",
          "snr": "float64", "z": "float64", "ra": "float64", "dec": "float64", "gzip": "bool", "dead_fibre": "bool",
          "ha_ew_true": "float64", "ha_ew_west_true": "float64", "nebular": "bool", "nebular_ha_ew": "float64",
          "nebular_rv": "float64", "nebular_nii_ratio": "float64", "nebular_sii_ratio": "float64",
          "mjd": "float64", "exptime": "float64", "empty": "bool", "n_cosmic": "int64", "emission_scale": "float64"}


def _schema():
    import pyarrow as pa

    return pa.schema([(c, pa.type_for_alias(_TYPES.get(c, "string"))) for c in TRUTH_COLUMNS])


def local_dir(out: str) -> str:
    """``out`` as a local path (``file:`` URIs accepted); other schemes are refused."""
    if out.startswith("file://"):
        out = out[len("file://"):]
    elif out.startswith("file:"):
        out = out[len("file:"):]
    elif "://" in out:
        raise UsageError(f"--out must be a local or shared directory path, not {out!r}")
    return os.path.abspath(out)


def write_truth(out: str, rows: list[dict[str, Any]], kind: str) -> None:
    """``truth.parquet``, ``truth.csv`` and (Ondřejov) ``labels.csv`` under ``out``; rows sorted by
    ``(index, exposure)``."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = sorted(rows, key=lambda r: (r["index"], r["exposure"]))
    table = pa.Table.from_pylist(rows, schema=_schema())
    pq.write_table(table, os.path.join(out, "truth.parquet"))
    df = pd.DataFrame(rows, columns=list(TRUTH_COLUMNS))
    df.to_csv(os.path.join(out, "truth.csv"), index=False)
    if kind == "ondrejov":
        stems = df["file"].map(lambda f: os.path.splitext(os.path.basename(f))[0])
        labels = pd.DataFrame({"id": ONDREJOV_ID_PREFIX + stems, "label": df["label"].astype(int)})
        labels.to_csv(os.path.join(out, "labels.csv"), index=False)


def run_synth(spark, out: str, n: int, seed: int, kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """Generate ``n`` spectra of ``kind`` with ``seed`` under ``out``; return a summary.

    Parameters
    ----------
    spark : SparkSession
    out : str
        Output directory (created; existing files of the same names are overwritten).
    n : int
        Number of files (indices ``0 .. n-1``; a fraction ``synth.mrs_fraction`` of LAMOST ones are
        MRS files with several truth rows each).
    seed : int
        The run's seed: the same seed gives byte-identical files whatever the partitioning.
    kind : {"lamost", "ondrejov"}
    config : dict
        The layered configuration; its ``[synth]`` section is read.

    Returns
    -------
    dict
        ``files`` (files written), ``mrs_files`` (of them MRS), ``spectra`` (truth rows), ``bytes``
        (of the files), ``gzip`` (files gzipped), ``classes`` (truth rows per class), ``formats``
        (files per format), ``partitions``, ``seconds``, ``files_per_second``, ``out``, ``kind``,
        ``seed``; Ondřejov also ``labels`` (files per label name).
    """
    if n < 1:
        raise UsageError(f"--n must be >= 1, got {n}")
    if kind not in ("lamost", "ondrejov"):
        raise UsageError(f"--kind must be lamost or ondrejov, got {kind!r}")
    cfg = SynthConfig.from_config(config)
    out = local_dir(out)
    os.makedirs(out, exist_ok=True)
    sc = spark.sparkContext
    parts = cfg.partitions or task_count(n, 1, sc.defaultParallelism, max_waves=4)
    log.info("synth: %d %s spectra, seed %d, %d partitions -> %s", n, kind, seed, parts, out)
    t0 = time.time()

    def task(it):
        prepare_worker()
        return generate_indices(out, it, seed, kind, cfg)

    rows = sc.parallelize(range(n), parts).mapPartitions(task).collect()
    write_truth(out, rows, kind)
    seconds = time.time() - t0
    files: dict[int, dict[str, Any]] = {}
    for r in rows:  # an MRS file's rows share the file's columns
        files.setdefault(r["index"], r)
    summary = {
        "out": out, "kind": kind, "seed": seed, "files": len(files), "partitions": parts,
        "bytes": int(sum(r["bytes"] for r in files.values())), "seconds": round(seconds, 2),
        "files_per_second": round(len(files) / seconds, 1) if seconds > 0 else None,
        "classes": dict(sorted(Counter(r["class"] for r in rows).items())),
        "formats": dict(sorted(Counter(r["format"] for r in files.values()).items())),
        "gzip": sum(1 for r in files.values() if r["gzip"]),
        "mrs_files": sum(1 for r in files.values() if r["format"] == "lamost_mrs"), "spectra": len(rows),
    }
    if kind == "ondrejov":
        summary["labels"] = {name: summary["classes"].get(name, 0) for name in LABEL_CODES}
    return summary
