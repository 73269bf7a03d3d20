"""The ingest job's Spark plan: LAMOST files -> ``W/spectra`` and ``W/rejects``, incrementally.

Paths (not file contents) travel through Spark; tasks read and preprocess the files in Python
(:mod:`spectraldl.parse`). On a warehouse every task can write with file operations (a local or
shared POSIX path) the tasks write the ``spectra`` Parquet files themselves and hand back only
their rejects and file counts (:func:`_parse_tasks_write`); elsewhere they hand back the
140-value vectors and metadata for Spark to write (:func:`_parse_spark_writes`). Each run:

1. lists the input (:mod:`spectraldl.sources`) and compares it with what the warehouse holds:
   new files and files whose size or mtime changed are processed; unchanged files are skipped
   (an unchanged file rejected before too, unless ``retry_rejects``); files gone from the
   archive are counted and their rows kept;
2. parses the work in tasks and writes it aside under ``W/_staging/<run_id>``;
3. rewrites the table directories that hold superseded rows (changed files, retried rejects),
   moves the new directories in and publishes them all with one manifest
   (:class:`spectraldl.warehouse.Warehouse.commit`): a run killed anywhere leaves no partial
   rows visible and the next run completes the work.

``seen == skipped + ingested + rejected`` is checked before the commit; the summary says so.
"""
from __future__ import annotations

import logging
import math
import os
import time
from typing import Any

from .errors import UsageError
from .parse import (PARSED_SCHEMA, TASK_OUTPUT_SCHEMA, ParseOptions, SpectraSink, arrow_schema,
                    parse_and_write_batches, parse_batches)
from .sources import list_sources
from .warehouse import LocalFS, Warehouse, move_dirs, new_run_id, utc_now

log = logging.getLogger(__name__)

SPECTRA_COLUMNS = [
    "source_path", "file_size", "file_mtime", "obsid", "designation", "ra", "dec", "lamost_class",
    "lamost_subclass", "z", "snr_g", "snr_r", "data_release", "date_obs", "file_format", "flux",
    "valid_fraction", "preprocess_id", "ingest_run",
]
REJECTS_COLUMNS = ["source_path", "reason", "detail", "ingest_run", "file_size", "file_mtime"]
SPECTRA_SCHEMA = (
    "source_path string, file_size long, file_mtime timestamp, obsid long, designation string, "
    "ra double, dec double, lamost_class string, lamost_subclass string, z double, snr_g double, "
    "snr_r double, data_release string, date_obs string, file_format string, flux array<float>, "
    "valid_fraction float, preprocess_id string, ingest_run string"
)
REJECTS_SCHEMA = ("source_path string, reason string, detail string, ingest_run string, "
                  "file_size long, file_mtime timestamp")


class CountMismatch(RuntimeError):
    """seen != skipped + ingested + rejected: nothing is committed."""


def _known(spark, wh: Warehouse):
    from pyspark.sql import functions as F
    spectra = wh.read_table(spark, "spectra", SPECTRA_SCHEMA)
    rejects = wh.read_table(spark, "rejects", REJECTS_SCHEMA)
    return (spectra.select("source_path", "file_size", "file_mtime", F.lit("ok").alias("known_outcome"))
            .unionByName(rejects.select("source_path", "file_size", "file_mtime",
                                        F.lit("rejected").alias("known_outcome"))))


def classify(listing, known):
    """Every path of the listing or the warehouse with its ``status``: ``new``, ``changed`` (size
    or mtime differ), ``unchanged`` (ingested before), ``unchanged_rejected`` or ``gone`` (in the
    warehouse, no longer listed). One full outer join, so one job counts them all."""
    from pyspark.sql import functions as F
    listed = listing.select("source_path", "file_size", "file_mtime", F.lit(True).alias("listed"))
    j = listed.alias("l").join(known.alias("k"), "source_path", "full_outer")
    same = (F.col("l.file_size").eqNullSafe(F.col("k.file_size"))
            & F.col("l.file_mtime").eqNullSafe(F.col("k.file_mtime")))
    status = (F.when(F.col("l.listed").isNull(), "gone")
              .when(F.col("known_outcome").isNull(), "new")
              .when(~same, "changed")
              .when(F.col("known_outcome") == "ok", "unchanged")
              .otherwise("unchanged_rejected"))
    return j.select("source_path", F.col("l.file_size").alias("file_size"),
                    F.col("l.file_mtime").alias("file_mtime"), status.alias("status"))


def status_counts(classified) -> dict[str, int]:
    """``{status: count}`` of :func:`classify`'s output (one Spark job)."""
    return {r["status"]: r["count"] for r in classified.groupBy("status").count().collect()}


def output_files(n: int, cores: int, nparts: int, rows_per_file: int, min_rows_per_file: int) -> int:
    """How many Parquet files a table of ``n`` new rows is written as: at most ``rows_per_file``
    rows each, and one per core (written in parallel) while each still gets ``min_rows_per_file``;
    never more than the ``nparts`` parse partitions.

    >>> output_files(50_000, 2, 26, 200_000, 10_000), output_files(5_000, 2, 2, 200_000, 10_000)
    (2, 1)
    """
    files = max(math.ceil(n / rows_per_file), min(cores, n // max(1, min_rows_per_file)))
    return max(1, min(nparts, files))


def tasks_write_spectra(wh: Warehouse, ing: dict[str, Any]) -> bool:
    """Whether parse tasks write the ``spectra`` Parquet files themselves (``ingest.spectra_writer``:
    ``"auto"`` does so for a warehouse on a local or shared POSIX file system, which every task can
    write with plain file operations; other file systems go through Spark's writer)."""
    mode = ing.get("spectra_writer", "auto")
    if mode not in ("auto", "spark"):
        raise UsageError(f"ingest.spectra_writer = {mode!r}: expected \"auto\" or \"spark\"")
    return mode == "auto" and isinstance(wh.fs, LocalFS)


def _by_reason(pairs) -> dict[str, int]:
    """``{reason: count}`` from ``(reason, count)`` pairs of rejected files."""
    out: dict[str, int] = {}
    for reason, n in pairs:
        out[reason] = out.get(reason, 0) + n
    return out


def _parse_tasks_write(wh: Warehouse, work, opts: ParseOptions, run_id: str, staging: str,
                       nparts: int, par: int, ing: dict[str, Any], summary: dict[str, Any], t_parse: float):
    """Parse in tasks that write the spectra files themselves; Spark writes the (small) rejects.

    Returns ``(ingested, rejected, by_reason, tables written)``. The files found in the staging
    directory must be exactly those the successful task attempts reported, with the rows their
    footers say: anything else stops the run before it commits.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F
    from pyspark.sql.types import _parse_datatype_string
    import pyarrow.parquet as pq

    sink = SpectraSink(f"{staging}/spectra", arrow_schema(SPECTRA_SCHEMA), run_id,
                       _parse_datatype_string(SPECTRA_SCHEMA).json())
    out_schema = arrow_schema(TASK_OUTPUT_SCHEMA)
    out = (work.mapInArrow(lambda it: parse_and_write_batches(it, opts, sink, out_schema),
                           TASK_OUTPUT_SCHEMA)
           .persist(StorageLevel.MEMORY_AND_DISK))
    files, reasons = {}, []
    file_col = F.when(F.col("kind") == "file", F.col("source_path")).alias("file")
    for r in out.groupBy("kind", "reason", file_col).agg(F.count(F.lit(1)).alias("n"),
                                                         F.sum("rows").alias("rows")).collect():
        if r["kind"] == "file":
            files[os.path.basename(r["file"])] = r["rows"]
        else:
            reasons.append((r["reason"], r["n"]))
    ingested, by_reason = sum(files.values()), _by_reason(reasons)
    rejected = sum(by_reason.values())
    summary["parse_seconds"] = round(time.time() - t_parse, 3)  # spectra files written by now
    written = []
    if files:
        found = set(os.listdir(sink.directory))
        for name in found - set(files):  # hidden leftovers of failed attempts
            os.remove(os.path.join(sink.directory, name))
        missing = [n for n in files if n not in found]
        wrong = {n: pq.read_metadata(os.path.join(sink.directory, n)).num_rows for n in files if n in found}
        wrong = {n: (k, files[n]) for n, k in wrong.items() if k != files[n]}
        if missing or wrong:
            raise CountMismatch(f"staged spectra files disagree with the tasks: missing {missing}, "
                                f"(rows in file, rows reported) {wrong}")
        written.append("spectra")
    if rejected:
        (out.filter(F.col("kind") == "rejected").withColumn("ingest_run", F.lit(run_id)).select(*REJECTS_COLUMNS)
         .coalesce(output_files(rejected, par, nparts, ing["rows_per_file"], ing["min_rows_per_file"]))
         .write.parquet(wh.uri("_staging", run_id, "rejects")))
        written.append("rejects")
    out.unpersist()
    return ingested, rejected, by_reason, written


def _parse_spark_writes(wh: Warehouse, work, opts: ParseOptions, run_id: str, staging: str, nparts: int,
                        par: int, ing: dict[str, Any], summary: dict[str, Any], t_parse: float):
    """Parse in tasks that hand the rows back to Spark, which writes both tables (any Hadoop
    file system). Returns ``(ingested, rejected, by_reason, tables written)``."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    out_schema = arrow_schema(PARSED_SCHEMA)
    parsed = (work.mapInArrow(lambda it: parse_batches(it, opts, out_schema), PARSED_SCHEMA)
              .withColumn("ingest_run", F.lit(run_id))
              .persist(StorageLevel.DISK_ONLY))  # parsed once, written to two tables
    counts = [(r["outcome"], r["reason"], r["count"]) for r in parsed.groupBy("outcome", "reason").count().collect()]
    ingested = sum(n for outcome, _, n in counts if outcome == "ok")
    by_reason = _by_reason((reason, n) for outcome, reason, n in counts if outcome != "ok")
    rejected = sum(by_reason.values())
    summary["parse_seconds"] = round(time.time() - t_parse, 3)
    written = []
    for table, outcome, cols, n in (("spectra", "ok", SPECTRA_COLUMNS, ingested),
                                    ("rejects", "rejected", REJECTS_COLUMNS, rejected)):
        if n == 0:
            continue
        (parsed.filter(F.col("outcome") == outcome).select(*cols)
         .coalesce(output_files(n, par, nparts, ing["rows_per_file"], ing["min_rows_per_file"]))
         .write.parquet(wh.uri("_staging", run_id, table)))
        written.append(table)
    parsed.unpersist()
    return ingested, rejected, by_reason, written


def run_ingest(spark, src: str, warehouse: str, config: dict[str, Any], retry_rejects: bool = False,
               break_lock: bool = False, fail_after: str | None = None, take_lock: bool = True) -> dict[str, Any]:
    """Ingest ``src`` into ``warehouse``; returns the run summary (also written to ``W/runs``).

    ``take_lock=False`` when the caller (the pipeline job) already holds the warehouse lock.

    ``fail_after`` (tests only) stops the run at a named step to prove a killed run leaves
    nothing visible: ``"staged"`` or ``"moved"``.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    t0 = time.time()
    run_id = new_run_id()
    wh = Warehouse(warehouse, spark, force_hadoop=config["warehouse"]["filesystem"] == "hadoop")
    opts = ParseOptions.from_config(config)
    ing = config["ingest"]
    summary: dict[str, Any] = {"job": "ingest", "run_id": run_id, "started": utc_now(), "status": "running",
                               "inputs": {"input": src, "warehouse": wh.root, "retry_rejects": retry_rejects},
                               "preprocess_id": opts.settings.fingerprint()}
    sc = spark.sparkContext
    with wh.locked(run_id, "ingest", break_lock, take=take_lock):
        wh.garbage_collect()
        sc.setJobDescription(f"ingest {run_id}: list {src}")
        listing = list_sources(spark, src, tuple(ing["file_suffixes"])).dropDuplicates(["source_path"])
        j = classify(listing, _known(spark, wh))
        j = j.persist(StorageLevel.MEMORY_AND_DISK)
        by_status = status_counts(j)
        gone = by_status.pop("gone", 0)
        seen = sum(by_status.values())
        todo_status = ["new", "changed"] + (["unchanged_rejected"] if retry_rejects else [])
        todo = j.filter(F.col("status").isin(todo_status))
        n_todo = sum(by_status.get(s, 0) for s in todo_status)
        skipped = seen - n_todo
        summary["list_seconds"] = round(time.time() - t0, 3)
        log.info("ingest %s: seen %d (new %d, changed %d, unchanged %d, unchanged rejected %d), gone %d",
                 run_id, seen, by_status.get("new", 0), by_status.get("changed", 0),
                 by_status.get("unchanged", 0), by_status.get("unchanged_rejected", 0), gone)

        staging = wh.path("_staging", run_id)
        ingested = rejected = 0
        by_reason: dict[str, int] = {}
        moves: list[tuple[str, str]] = []
        new_dirs: dict[str, list[str]] = {}
        if n_todo:
            # whole waves of tasks: a multiple of the cores, each with about paths_per_task paths
            par = sc.defaultParallelism
            nparts = par * max(1, math.ceil(n_todo / (ing["paths_per_task"] * par)))
            sc.setJobDescription(f"ingest {run_id}: parse {n_todo} files in {nparts} tasks")
            t_parse = time.time()
            work = todo.select("source_path", "file_size", "file_mtime").repartition(nparts)
            if tasks_write_spectra(wh, ing):
                res = _parse_tasks_write(wh, work, opts, run_id, staging, nparts, par, ing, summary, t_parse)
            else:
                res = _parse_spark_writes(wh, work, opts, run_id, staging, nparts, par, ing, summary, t_parse)
            ingested, rejected, by_reason, written = res
            for table in written:
                moves.append((f"{staging}/{table}", wh.path(table, f"run-{run_id}")))
                new_dirs[table] = [f"run-{run_id}"]
            summary["write_seconds"] = round(time.time() - t_parse - summary["parse_seconds"], 3)
            log.info("ingest %s: parsed and wrote %d files in %.1f s (%.0f files/s): ingested %d, rejected %d",
                     run_id, n_todo, time.time() - t_parse, n_todo / max(time.time() - t_parse, 1e-9),
                     ingested, rejected)
        if seen != skipped + ingested + rejected:
            raise CountMismatch(f"seen {seen} != skipped {skipped} + ingested {ingested} + rejected {rejected}")
        if fail_after == "staged":
            raise RuntimeError("fail_after=staged (test)")

        # rows superseded by this run (changed files, retried rejects) leave their old tables
        tables = {t: wh.table_dirs(t) for t in ("spectra", "rejects")}
        superseded = j.filter(F.col("status").isin(["changed", "unchanged_rejected"] if retry_rejects else ["changed"]))
        n_superseded = by_status.get("changed", 0) + (by_status.get("unchanged_rejected", 0) if retry_rejects else 0)
        if n_superseded:
            sc.setJobDescription(f"ingest {run_id}: replace {n_superseded} superseded rows")
            keys = superseded.select("source_path")
            for table, schema in (("spectra", SPECTRA_SCHEMA), ("rejects", REJECTS_SCHEMA)):
                if not tables[table]:
                    continue
                old = wh.read_table(spark, table, schema)
                kept = old.join(F.broadcast(keys) if n_superseded < 100_000 else keys, "source_path", "left_anti")
                kept.write.parquet(wh.uri("_staging", run_id, f"{table}-compact"))
                moves.append((f"{staging}/{table}-compact", wh.path(table, f"compact-{run_id}")))
                tables[table] = [f"compact-{run_id}"]
        for t, dirs in new_dirs.items():
            tables[t] = tables[t] + dirs
        move_dirs(wh, moves)
        if fail_after == "moved":
            raise RuntimeError("fail_after=moved (test)")
        summary.update(status="ok", finished=utc_now(), seen=seen, skipped=skipped, ingested=ingested,
                       rejected=rejected, rejected_by_reason=dict(sorted(by_reason.items())), gone=gone,
                       replaced=n_superseded, new=by_status.get("new", 0), changed=by_status.get("changed", 0),
                       seconds=round(time.time() - t0, 3))
        if moves:
            wh.commit(tables, {"job": "ingest", "run_id": run_id})
        wh.fs.delete(staging)
        wh.garbage_collect()
        j.unpersist()
        summary["summary_path"] = wh.write_summary(summary)
        return summary


def summary_line(s: dict[str, Any]) -> str:
    """The job's last log line."""
    reasons = ", ".join(f"{k} {v}" for k, v in s.get("rejected_by_reason", {}).items()) or "none"
    rate = s["seen"] / s["seconds"] if s.get("seconds") else 0.0
    return (f"ingest {s['run_id']}: seen {s['seen']} = skipped {s['skipped']} + ingested {s['ingested']} + "
            f"rejected {s['rejected']} ({reasons}); replaced {s['replaced']}, gone {s['gone']}; "
            f"{s['seconds']:.1f} s, {rate:.0f} files/s")
