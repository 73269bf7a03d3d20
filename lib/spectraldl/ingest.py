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
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import CountMismatch, UsageError
from .halpha import HALPHA_COLUMNS
from .parse import (PARSED_SCHEMA, TASK_OUTPUT_SCHEMA, ParseOptions, SpectraSink, arrow_schema,
                    parse_and_write_batches, parse_batches)
from .sources import list_sources
from .lifecycle import JobRun, task_count
from .warehouse import LocalFS, Warehouse, move_dirs

log = logging.getLogger(__name__)

#: What identifies one spectrum in ``spectra``, ``rejects`` and ``scores``: the file and, for an
#: MRS file, the HDU (``COADD_R``, ``R-<LMJM>``; empty for a one-spectrum file).
SPECTRUM_KEY = ["source_path", "exposure"]
SPECTRA_COLUMNS = [
    "source_path", "exposure", "mjd", "exptime", "n_cosmic", "file_size", "file_mtime", "obsid", "designation", "ra",
    "dec", "lamost_class",
    "lamost_subclass", "z", "snr_g", "snr_r", "data_release", "date_obs", "file_format", "flux",
    "valid_fraction", "preprocess_id", "ingest_run", *HALPHA_COLUMNS,
]
REJECTS_COLUMNS = ["source_path", "exposure", "reason", "detail", "ingest_run", "file_size", "file_mtime"]
SPECTRA_SCHEMA = (
    "source_path string, exposure string, mjd double, exptime double, n_cosmic int, file_size long, "
    "file_mtime timestamp, obsid long, designation string, "
    "ra double, dec double, lamost_class string, lamost_subclass string, z double, snr_g double, "
    "snr_r double, data_release string, date_obs string, file_format string, flux array<float>, "
    "valid_fraction float, preprocess_id string, ingest_run string"
    + "".join(f", {name} {kind}" for name, kind in HALPHA_COLUMNS.items())
)
REJECTS_SCHEMA = ("source_path string, exposure string, reason string, detail string, ingest_run string, "
                  "file_size long, file_mtime timestamp")


def _known(spark, wh: Warehouse, manifest: dict[str, Any] | None = None):
    """Every file in ``spectra`` and ``rejects`` (of ``manifest``, default the newest) with its
    size, mtime and outcome: ``ok`` when it gave at least one spectrum (an MRS file whose other
    exposures were rejected included), ``rejected`` when every row of it is a reject."""
    from pyspark.sql import functions as F
    spectra = wh.read_table(spark, "spectra", SPECTRA_SCHEMA, manifest)
    rejects = wh.read_table(spark, "rejects", REJECTS_SCHEMA, manifest)
    rows = (spectra.select("source_path", "file_size", "file_mtime", F.lit("ok").alias("known_outcome"))
            .unionByName(rejects.select("source_path", "file_size", "file_mtime",
                                        F.lit("rejected").alias("known_outcome"))))
    return rows.groupBy("source_path").agg(F.first("file_size").alias("file_size"),
                                            F.first("file_mtime").alias("file_mtime"),
                                            F.min("known_outcome").alias("known_outcome"))  # "ok" < "rejected"


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


@dataclass
class ParseCounts:
    """What the parse of the new and changed files gave.

    Files: ``ingested`` gave at least one ``spectra`` row, ``rejected`` none (so ``seen ==
    skipped + ingested + rejected``). Spectra: ``spectra`` rows written and ``rejected_spectra``
    rows written to ``rejects`` (a file that cannot be read is one; an MRS file's ``low_signal``
    exposures one each), ``by_reason`` counting those rows; ``cosmic`` hits masked in the
    ingested MRS exposures; ``written`` the tables staged.
    """

    ingested: int = 0
    rejected: int = 0
    spectra: int = 0
    rejected_spectra: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    cosmic: int = 0
    written: list[str] = field(default_factory=list)


def _parse_tasks_write(wh: Warehouse, work, opts: ParseOptions, run_id: str, staging: str,
                       nparts: int, par: int, ing: dict[str, Any], summary: dict[str, Any], t_parse: float
                       ) -> ParseCounts:
    """Parse in tasks that write the spectra files themselves; Spark writes the (small) rejects.

    The files found in the staging directory must be exactly those the successful task attempts
    reported, with the rows their footers say: anything else stops the run before it commits.
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
    files, reasons, c = {}, [], ParseCounts()
    file_col = F.when(F.col("kind") == "file", F.col("source_path")).alias("file")
    for r in out.groupBy("kind", "reason", file_col).agg(
            F.count(F.lit(1)).alias("n"), F.sum("rows").alias("rows"), F.sum("paths").alias("paths"),
            F.sum("cosmic").alias("cosmic"), F.sum("failed").alias("failed")).collect():
        if r["kind"] == "file":  # one row per task; its file is null when it wrote none
            if r["file"] is not None:
                files[os.path.basename(r["file"])] = r["rows"]
            c.ingested += r["paths"]
            c.cosmic += r["cosmic"]
            c.rejected += r["failed"]
        else:
            reasons.append((r["reason"], r["n"]))
    c.spectra, c.by_reason = sum(files.values()), _by_reason(reasons)
    c.rejected_spectra = sum(c.by_reason.values())
    rejected_rows = out.filter(F.col("kind") == "rejected")
    summary["parse_seconds"] = round(time.time() - t_parse, 3)  # spectra files written by now
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
        c.written.append("spectra")
    if c.rejected_spectra:
        (rejected_rows.withColumn("ingest_run", F.lit(run_id)).select(*REJECTS_COLUMNS)
         .coalesce(output_files(c.rejected_spectra, par, nparts, ing["rows_per_file"], ing["min_rows_per_file"]))
         .write.parquet(wh.uri("_staging", run_id, "rejects")))
        c.written.append("rejects")
    out.unpersist()
    return c


def _parse_spark_writes(wh: Warehouse, work, opts: ParseOptions, run_id: str, staging: str, nparts: int,
                        par: int, ing: dict[str, Any], summary: dict[str, Any], t_parse: float) -> ParseCounts:
    """Parse in tasks that hand the rows back to Spark, which writes both tables (any Hadoop
    file system)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    out_schema = arrow_schema(PARSED_SCHEMA)
    parsed = (work.mapInArrow(lambda it: parse_batches(it, opts, out_schema), PARSED_SCHEMA)
              .withColumn("ingest_run", F.lit(run_id))
              .persist(StorageLevel.DISK_ONLY))  # parsed once, written to two tables
    c = ParseCounts()
    counts = [(r["outcome"], r["reason"], r["count"], r["cosmic"]) for r in
              parsed.groupBy("outcome", "reason").agg(F.count(F.lit(1)).alias("count"),
                                                      F.sum("n_cosmic").alias("cosmic")).collect()]
    c.spectra = sum(n for outcome, _, n, _ in counts if outcome == "ok")
    c.cosmic = int(sum(k or 0 for outcome, _, _, k in counts if outcome == "ok"))
    c.by_reason = _by_reason((reason, n) for outcome, reason, n, _ in counts if outcome != "ok")
    c.rejected_spectra = sum(c.by_reason.values())
    # files with and without a spectrum, in one job: 1 = at least one row of the file is ok
    per_file = parsed.groupBy("source_path").agg(F.max((F.col("outcome") == "ok").cast("int")).alias("ok"))
    files = {r["ok"]: r["count"] for r in per_file.groupBy("ok").count().collect()}
    c.ingested, c.rejected = files.get(1, 0), files.get(0, 0)
    summary["parse_seconds"] = round(time.time() - t_parse, 3)
    for table, outcome, cols, n in (("spectra", "ok", SPECTRA_COLUMNS, c.spectra),
                                    ("rejects", "rejected", REJECTS_COLUMNS, c.rejected_spectra)):
        if n == 0:
            continue
        (parsed.filter(F.col("outcome") == outcome).select(*cols)
         .coalesce(output_files(n, par, nparts, ing["rows_per_file"], ing["min_rows_per_file"]))
         .write.parquet(wh.uri("_staging", run_id, table)))
        c.written.append(table)
    parsed.unpersist()
    return c


def run_ingest(spark, src: str, warehouse: str, config: dict[str, Any], retry_rejects: bool = False,
               break_lock: bool = False, fail_after: str | None = None, parent: JobRun | None = None) -> dict[str, Any]:
    """Ingest ``src`` into ``warehouse``; returns the run summary (also written to ``W/runs``).

    ``parent``: the run this ingest is a stage of (the pipeline), whose lock covers it.
    ``fail_after`` (tests only) stops the run at a named step to prove a killed run leaves
    nothing visible: ``"staged"`` or ``"moved"``.
    """
    from pyspark.sql import functions as F
    opts = ParseOptions.from_config(config)
    inputs = {"input": src, "retry_rejects": retry_rejects}
    with JobRun(spark, "ingest", warehouse, config, inputs=inputs, writes=True, break_lock=break_lock,
                parent=parent) as run:
        run.summary["preprocess_id"] = opts.settings.fingerprint()
        j, by_status, gone, todo_status = _classify_input(run, src, retry_rejects)
        n_todo = sum(by_status.get(s, 0) for s in todo_status)
        seen = sum(by_status.values())
        c = ParseCounts()
        if n_todo:
            work = j.filter(F.col("status").isin(todo_status)).select("source_path", "file_size", "file_mtime")
            c = _parse(run, work, n_todo, opts)
        else:
            run.nothing_to_do(f"no new or changed files among {seen} seen")
        skipped = seen - n_todo
        run.summary.update(seen=seen, skipped=skipped, ingested=c.ingested, rejected=c.rejected,
                           spectra=c.spectra, rejected_spectra=c.rejected_spectra, cosmic_rays_masked=c.cosmic,
                           rejected_by_reason=dict(sorted(c.by_reason.items())), gone=gone,
                           new=by_status.get("new", 0), changed=by_status.get("changed", 0))
        if seen != skipped + c.ingested + c.rejected:
            raise CountMismatch(f"seen {seen} != skipped {skipped} + ingested {c.ingested} + rejected {c.rejected}")
        if c.rejected_spectra < c.rejected:
            raise CountMismatch(f"{c.rejected} files rejected but {c.rejected_spectra} reject rows")
        if fail_after == "staged":
            raise RuntimeError("fail_after=staged (test)")
        superseded = ["changed", "unchanged_rejected"] if retry_rejects else ["changed"]
        n_superseded = sum(by_status.get(s, 0) for s in superseded)
        tables, moves = _replace_superseded(run, j.filter(F.col("status").isin(superseded)), n_superseded)
        for table in c.written:
            moves.append((f"{run.staging}/{table}", run.wh.path(table, f"run-{run.run_id}")))
            tables[table] = tables[table] + [f"run-{run.run_id}"]
        run.summary["replaced"] = n_superseded
        if fail_after == "moved":
            move_dirs(run.wh, moves)
            raise RuntimeError("fail_after=moved (test)")
        if moves:
            run.commit(tables, moves, {opts.settings.fingerprint(): asdict(opts.settings)})
        j.unpersist()
        return run.summary


def _classify_input(run: JobRun, src: str, retry_rejects: bool):
    """List ``src`` and compare it with the pinned warehouse state: ``(classified rows,
    {status: count} of the listed files, files gone from the listing, the statuses to parse)``."""
    from pyspark import StorageLevel
    t0 = time.time()
    ing = run.config["ingest"]
    run.describe(f"list {src}")
    from pyspark.sql import functions as F
    listing = list_sources(run.spark, src, tuple(ing["file_suffixes"]))
    if run.table_dirs("spectra") or run.table_dirs("rejects"):
        j = classify(listing, _known(run.spark, run.wh, run.manifest))
    else:  # an empty warehouse: every file is new, nothing to compare with
        j = listing.select("source_path", "file_size", "file_mtime", F.lit("new").alias("status"))
    j = j.persist(StorageLevel.MEMORY_AND_DISK)
    by_status = status_counts(j)
    gone = by_status.pop("gone", 0)
    run.summary["list_seconds"] = round(time.time() - t0, 3)
    log.info("ingest %s: seen %d (new %d, changed %d, unchanged %d, unchanged rejected %d), gone %d",
             run.run_id, sum(by_status.values()), by_status.get("new", 0), by_status.get("changed", 0),
             by_status.get("unchanged", 0), by_status.get("unchanged_rejected", 0), gone)
    todo = ["new", "changed"] + (["unchanged_rejected"] if retry_rejects else [])
    return j, by_status, gone, todo


def _parse(run: JobRun, work, n_todo: int, opts: ParseOptions) -> ParseCounts:
    """Parse ``n_todo`` files in tasks and stage their rows."""
    ing = run.config["ingest"]
    par = run.spark.sparkContext.defaultParallelism
    nparts = task_count(n_todo, ing["paths_per_task"], par)
    run.describe(f"parse {n_todo} files in {nparts} tasks")
    t_parse = time.time()
    work = work.repartition(nparts)
    writer = _parse_tasks_write if tasks_write_spectra(run.wh, ing) else _parse_spark_writes
    c = writer(run.wh, work, opts, run.run_id, run.staging, nparts, par, ing, run.summary, t_parse)
    elapsed = time.time() - t_parse
    run.summary["write_seconds"] = round(elapsed - run.summary["parse_seconds"], 3)
    log.info("ingest %s: parsed and wrote %d files in %.1f s (%.0f files/s): ingested %d, rejected %d; "
             "%d spectra, %d rejected", run.run_id, n_todo, elapsed, n_todo / max(elapsed, 1e-9), c.ingested,
             c.rejected, c.spectra, c.rejected_spectra)
    return c


def _replace_superseded(run: JobRun, superseded, n: int):
    """Tables without the rows of ``superseded`` paths (changed files, retried rejects), rewritten
    aside: ``({table: dirs}, moves)``; the tables' current directories when ``n`` is 0."""
    from pyspark.sql import functions as F
    tables = {t: run.table_dirs(t) for t in ("spectra", "rejects")}
    moves: list[tuple[str, str]] = []
    if not n:
        return tables, moves
    run.describe(f"replace {n} superseded rows")
    keys = superseded.select("source_path")
    for table, schema in (("spectra", SPECTRA_SCHEMA), ("rejects", REJECTS_SCHEMA)):
        if not tables[table]:
            continue
        old = run.read_table(table, schema)
        kept = old.join(F.broadcast(keys) if n < 100_000 else keys, "source_path", "left_anti")
        kept.write.parquet(run.staging_uri(f"{table}-compact"))
        moves.append((f"{run.staging}/{table}-compact", run.wh.path(table, f"compact-{run.run_id}")))
        tables[table] = [f"compact-{run.run_id}"]
    return tables, moves


def summary_line(s: dict[str, Any]) -> str:
    """The job's last log line: the files' and the spectra's counts, each adding up."""
    reasons = ", ".join(f"{k} {v}" for k, v in s.get("rejected_by_reason", {}).items()) or "none"
    rate = s["seen"] / s["seconds"] if s.get("seconds") else 0.0
    spectra = ""
    if s.get("spectra") is not None:
        spectra = (f"spectra {s['spectra'] + s['rejected_spectra']} = ingested {s['spectra']} + rejected "
                   f"{s['rejected_spectra']} ({reasons})"
                   + (f", {s['cosmic_rays_masked']} cosmic-ray hits masked" if s.get("cosmic_rays_masked") else "")
                   + "; ")
    return (f"ingest {s['run_id']}: files seen {s['seen']} = skipped {s['skipped']} + ingested {s['ingested']} + "
            f"rejected {s['rejected']}; {spectra}replaced {s['replaced']}, gone {s['gone']}; "
            + (f"nothing to do ({s['nothing_to_do']}); " if s.get("nothing_to_do") else "")
            + f"{s['seconds']:.1f} s, {rate:.0f} files/s")
