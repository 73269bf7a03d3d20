"""The trainset job's Spark plan: labelled Ondřejov files (+ labelled LAMOST rows) -> ``W/trainset``.

1. The input is listed like the ingest's (:func:`spectraldl.sources.list_sources`) and joined, by
   file stem, with the label file (``id,label``; ``ivo://asu.cas.cz/stel/ccd700/ud090015`` labels
   ``ud090015.fits``). Every file ends in exactly one of: ``unlabelled`` (no label),
   ``duplicate`` (another file with the same stem was taken: the first path), ``dropped_unknown``
   (label 2, by default), ``rejected`` (unreadable or unusable, with its reason) or the table.
   Labels without a file are counted too, and the summary lists them all (the first
   ``max_listed`` in the JSON, the complete lists as CSV beside it).
2. Tasks read, adapt (:func:`spectraldl.adapt.adapt_ondrejov`: air -> vacuum, resolution
   matching, then the archive's own preprocessing) and return the vectors; paths, not file
   contents, travel through Spark.
3. ``--extra-labels`` (``source_path,label`` with class names) adds LAMOST rows from
   ``W/spectra`` as they are (already preprocessed; no adaptation); group: the designation.
4. Splits (:mod:`spectraldl.splits`) are assigned on the driver from the small
   ``(id, group, label)`` table, then joined back; the table is written aside and published by
   one manifest commit, replacing the previous training set whole.
"""
from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import pandas as pd

from .adapt import AdaptSettings, adapt_ondrejov
from .io import Limits, SpectrumError, read_spectrum
from .preprocess import PreprocessSettings
from .sources import list_sources, read_source_bytes
from .splits import grouped_stratified_split
from .warehouse import Warehouse, is_local, local_path, move_dirs, new_run_id, utc_now

log = logging.getLogger(__name__)

#: Label codes of the Ondřejov label file (CONVENTIONS.md) and the class names used everywhere.
CODE_TO_NAME = {0: "emission", 1: "absorption", 2: "unknown", 3: "double_peak"}
NAME_TO_CODE = {v: k for k, v in CODE_TO_NAME.items()}
UNKNOWN = 2

TRAINSET_COLUMNS = ["id", "source_path", "object", "group", "label", "label_name", "flux", "split",
                    "preprocess_id", "adapt_id"]
TRAINSET_SCHEMA = ("id string, source_path string, object string, group string, label int, "
                   "label_name string, flux array<float>, split string, preprocess_id string, adapt_id string")
PARSED_SCHEMA = ("outcome string, id string, source_path string, object string, group string, label int, "
                 "flux array<float>, valid_fraction float, file_format string, reason string, detail string")
_STEM_SUFFIX = r"(?i)(\.fits?)?(\.gz|\.fz)?$"


class CountMismatch(RuntimeError):
    """The per-file outcomes do not add up to the files seen: nothing is committed."""


class EmptyTrainset(RuntimeError):
    """No labelled spectrum survived: nothing is committed."""


@dataclass(frozen=True)
class TrainsetOptions:
    """What a task needs to turn a labelled path into a row."""

    adapt: AdaptSettings
    preprocess: PreprocessSettings
    accept_formats: tuple[str, ...]
    limits: Limits
    coord_decimals: int

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "TrainsetOptions":
        io, ts = config["io"], config["trainset"]
        return cls(AdaptSettings.from_config(config["adapt"]),
                   PreprocessSettings.from_config(config["preprocess"]),
                   tuple(ts["accept_formats"]), Limits(io["max_bytes"], io["max_header_cards"], io["max_hdus"]),
                   int(ts["coord_decimals"]))


def file_stem(path: str) -> str:
    """``/a/b/UD090015.fits.gz`` -> ``ud090015`` (the key the label file uses)."""
    base = path.rstrip("/").rsplit("/", 1)[-1]
    low = base.lower()
    for suf in (".gz", ".fz"):
        if low.endswith(suf):
            base, low = base[:-len(suf)], low[:-len(suf)]
            break
    for suf in (".fits", ".fit"):
        if low.endswith(suf):
            return low[:-len(suf)]
    return low


def group_key(obj: str | None, ra: float | None, dec: float | None, stem: str, decimals: int = 2) -> str:
    """The star a spectrum belongs to: the OBJECT name uppercased with spaces collapsed; else the
    coordinates rounded to ``decimals`` degrees; else the file stem (a group of its own)."""
    if obj is not None and " ".join(str(obj).upper().split()):
        return " ".join(str(obj).upper().split())
    if ra is not None and dec is not None and np.isfinite(ra) and np.isfinite(dec):
        return f"RADEC {ra:.{decimals}f} {dec:+.{decimals}f}"
    return f"FILE {stem}"


def parse_labelled(path: str, opts: TrainsetOptions) -> dict[str, Any]:
    """Read, check and adapt one Ondřejov file; a failure becomes a ``rejected`` row."""
    try:
        spec = read_spectrum(read_source_bytes(path, opts.limits), name=path, limits=opts.limits)
        if spec.format not in opts.accept_formats:
            raise SpectrumError("unsupported_format", path,
                                f"{spec.format} is not a training format; trainset.accept_formats = "
                                f"{list(opts.accept_formats)}")
        vec, frac = adapt_ondrejov(spec, opts.adapt, opts.preprocess, name=path)
    except SpectrumError as exc:
        return {"outcome": "rejected", "reason": exc.reason, "detail": str(exc)}
    m = spec.meta
    return {"outcome": "ok", "object": m.get("object"), "file_format": spec.format, "flux": vec,
            "valid_fraction": np.float32(frac),
            "group": group_key(m.get("object"), m.get("ra"), m.get("dec"), file_stem(path), opts.coord_decimals)}


def parse_batches(batches: Iterator[pd.DataFrame], opts: TrainsetOptions) -> Iterator[pd.DataFrame]:
    """``mapInPandas`` body: ``(source_path, id, label)`` in, :data:`PARSED_SCHEMA` rows out."""
    columns = [c.split()[0] for c in PARSED_SCHEMA.split(", ")]
    for pdf in batches:
        rows = []
        for path, id_, label in zip(pdf["source_path"], pdf["id"], pdf["label"]):
            r = parse_labelled(path, opts)
            r.update(source_path=path, id=id_, label=int(label))
            rows.append(r)
        yield pd.DataFrame({c: pd.Series([r.get(c) for r in rows], dtype=object) for c in columns})


def _spark_uri(p: str) -> str:
    return f"file://{os.path.abspath(local_path(p))}" if is_local(p) else p


def _check_local(p: str, what: str) -> None:
    if is_local(p) and not os.path.isfile(local_path(p)):
        raise ValueError(f"{what} {p}: no such file")


def read_labels(spark, path: str, drop_unknown: bool):
    """The Ondřejov label file as ``(id, stem, label)``, one row per stem; checks codes and conflicts."""
    from pyspark.sql import functions as F
    _check_local(path, "--labels")
    raw = spark.read.csv(_spark_uri(path), header=True, schema="id string, label string")
    df = raw.select(F.trim("id").alias("id"), F.trim("label").alias("label_raw"))
    df = df.withColumn("label", F.col("label_raw").cast("int"))
    bad = df.filter(F.col("id").isNull() | F.col("label").isNull() | ~F.col("label").isin(list(CODE_TO_NAME)))
    bad_rows = bad.limit(5).collect()
    if bad_rows:
        raise ValueError(f"--labels {path}: {bad.count()} rows without an id or with a label not in "
                         f"{sorted(CODE_TO_NAME)}, e.g. {[tuple(r)[:2] for r in bad_rows]}")
    df = df.withColumn("stem", F.lower(F.regexp_extract("id", r"([^/]+)$", 1))).select("id", "stem", "label")
    conflicts = df.groupBy("stem").agg(F.countDistinct("label").alias("n")).filter("n > 1")
    c = conflicts.limit(5).collect()
    if c:
        raise ValueError(f"--labels {path}: {conflicts.count()} stems with conflicting labels, e.g. {[r['stem'] for r in c]}")
    return df.dropDuplicates(["stem"])


def read_extra_labels(spark, path: str):
    """``source_path,label`` (class names) as ``(source_path, label int)``; unknown names are errors."""
    from pyspark.sql import functions as F
    _check_local(path, "--extra-labels")
    raw = spark.read.csv(_spark_uri(path), header=True, schema="source_path string, label string")
    df = raw.select(F.trim("source_path").alias("source_path"), F.lower(F.trim("label")).alias("name"))
    bad = df.filter(F.col("source_path").isNull() | ~F.col("name").isin(list(NAME_TO_CODE)))
    bad_rows = bad.limit(5).collect()
    if bad_rows:
        raise ValueError(f"--extra-labels {path}: {bad.count()} rows with no path or a label not in "
                         f"{list(NAME_TO_CODE)}, e.g. {[tuple(r) for r in bad_rows]}")
    code = F.create_map(*[x for k, v in NAME_TO_CODE.items() for x in (F.lit(k), F.lit(v))])
    df = df.select("source_path", code[F.col("name")].alias("label")).distinct()
    dup = df.groupBy("source_path").count().filter("count > 1").limit(5).collect()
    if dup:
        raise ValueError(f"--extra-labels {path}: conflicting labels for {[r['source_path'] for r in dup]}")
    return df


def _listed(df, col: str, n: int) -> list:
    return [r[0] if len(r) == 1 else r.asDict() for r in df.orderBy(col).limit(n).collect()]


def run_trainset(spark, src: str, labels: str, warehouse: str, config: dict[str, Any],
                 extra_labels: str | None = None, break_lock: bool = False) -> dict[str, Any]:
    """Build ``W/trainset`` from ``src`` and ``labels``; returns the run summary (also in ``W/runs``)."""
    from pyspark import StorageLevel
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    t0 = time.time()
    run_id = new_run_id()
    wh = Warehouse(warehouse, spark, force_hadoop=config["warehouse"]["filesystem"] == "hadoop")
    ts = config["trainset"]
    opts = TrainsetOptions.from_config(config)
    drop_unknown, max_listed = bool(ts["drop_unknown"]), int(ts["max_listed"])
    pp_id, ad_id = opts.preprocess.fingerprint(), opts.adapt.fingerprint()
    summary: dict[str, Any] = {"job": "trainset", "run_id": run_id, "started": utc_now(), "status": "running",
                               "inputs": {"input": src, "labels": labels, "extra_labels": extra_labels,
                                          "warehouse": wh.root},
                               "preprocess_id": pp_id, "adapt_id": ad_id, "seed": ts["seed"],
                               "fractions": list(ts["fractions"]), "drop_unknown": drop_unknown}
    lists_dir = wh.path("runs", f"trainset-{run_id}")
    sc = spark.sparkContext
    lab = read_labels(spark, labels, drop_unknown).persist(StorageLevel.MEMORY_AND_DISK)
    extra = read_extra_labels(spark, extra_labels) if extra_labels else None
    wh.acquire_lock(run_id, "trainset", break_lock)
    try:
        wh.garbage_collect()
        sc.setJobDescription(f"trainset {run_id}: list {src}")
        listing = list_sources(spark, src, tuple(ts["file_suffixes"])).dropDuplicates(["source_path"])
        base = F.regexp_extract("source_path", r"([^/]+)$", 1)
        listing = listing.withColumn("stem", F.lower(F.regexp_replace(base, _STEM_SUFFIX, "")))
        j = listing.join(lab, "stem", "left")
        rank = F.row_number().over(Window.partitionBy("stem").orderBy("source_path"))
        status = (F.when(F.col("label").isNull(), "unlabelled").when(F.col("rank") > 1, "duplicate")
                  .when((F.col("label") == UNKNOWN) & F.lit(drop_unknown), "dropped_unknown").otherwise("todo"))
        j = j.withColumn("rank", rank).withColumn("status", status).drop("rank")
        j = j.persist(StorageLevel.MEMORY_AND_DISK)
        by_status = {r["status"]: r["count"] for r in j.groupBy("status").count().collect()}
        seen = sum(by_status.values())
        orphans = lab.join(listing.select("stem"), "stem", "left_anti").select("id")
        n_orphans = orphans.count()
        n_todo = by_status.get("todo", 0)
        log.info("trainset %s: seen %d files: %s; %d labels without a file", run_id, seen, by_status, n_orphans)

        staging = wh.path("_staging", run_id)
        kept = accepted = rejected = 0
        by_reason: dict[str, int] = {}
        parts = []
        if n_todo:
            nparts = max(sc.defaultParallelism, math.ceil(n_todo / ts["paths_per_task"]))
            sc.setJobDescription(f"trainset {run_id}: read and adapt {n_todo} files in {nparts} tasks")
            t_parse = time.time()
            (j.filter(F.col("status") == "todo").select("source_path", "id", "label").repartition(nparts)
             .mapInPandas(lambda it: parse_batches(it, opts), PARSED_SCHEMA)
             .write.parquet(wh.uri("_staging", run_id, "parsed")))
            summary["parse_seconds"] = round(time.time() - t_parse, 3)
            parsed = spark.read.parquet(wh.uri("_staging", run_id, "parsed"))
            for r in parsed.groupBy("outcome", "reason").count().collect():
                if r["outcome"] == "ok":
                    accepted += r["count"]
                else:
                    rejected += r["count"]
                    by_reason[r["reason"]] = by_reason.get(r["reason"], 0) + r["count"]
            parts.append(parsed.filter("outcome = 'ok'").select(
                "id", "source_path", "object", "group", "label", "flux", F.lit(ad_id).alias("adapt_id")))
            summary["rejected_files"] = _listed(parsed.filter("outcome = 'rejected'")
                                                .select("source_path", "reason", "detail"), "source_path", max_listed)
        if seen != accepted + rejected + sum(by_status.get(s, 0) for s in ("unlabelled", "duplicate", "dropped_unknown")):
            raise CountMismatch(f"seen {seen} != in table {accepted} + rejected {rejected} + {by_status}")
        if extra is not None:
            parts.append(_extra_rows(spark, wh, extra, pp_id, drop_unknown, opts.coord_decimals, summary, max_listed))
            kept = summary["extra"]["in_table"]
        kept += accepted
        if kept == 0:
            raise EmptyTrainset("no labelled spectrum left for the training set")

        rows = parts[0] if len(parts) == 1 else parts[0].unionByName(parts[1])
        small = rows.select("id", "group", "label").toPandas()
        if small["id"].duplicated().any():
            raise CountMismatch(f"duplicate ids in the training set: {small['id'][small['id'].duplicated()].tolist()[:5]}")
        small["split"] = grouped_stratified_split(small["group"], small["label"], ts["fractions"], int(ts["seed"]))
        splits = spark.createDataFrame(small[["id", "split"]])
        name = F.create_map(*[x for k, v in CODE_TO_NAME.items() for x in (F.lit(k), F.lit(v))])
        out = (rows.join(F.broadcast(splits) if kept < 1_000_000 else splits, "id")
               .withColumn("label_name", name[F.col("label")]).withColumn("preprocess_id", F.lit(pp_id))
               .withColumn("label", F.col("label").cast("int")).select(*TRAINSET_COLUMNS))
        sc.setJobDescription(f"trainset {run_id}: write {kept} rows")
        out.write.parquet(wh.uri("_staging", run_id, "trainset"))
        move_dirs(wh, [(f"{staging}/trainset", wh.path("trainset", f"run-{run_id}"))])
        wh.commit({"trainset": [f"run-{run_id}"]}, {"job": "trainset", "run_id": run_id})
        # lists for the summary: the first max_listed in the JSON, complete lists beside it
        summary["unlabelled_files"] = _listed(j.filter("status = 'unlabelled'").select("source_path"), "source_path", max_listed)
        summary["duplicate_files"] = _listed(j.filter("status = 'duplicate'").select("source_path"), "source_path", max_listed)
        summary["labels_without_file"] = _listed(orphans, "id", max_listed)
        for nm, df in (("unlabelled_files", j.filter("status = 'unlabelled'").select("source_path")),
                       ("labels_without_file", orphans)):
            if df.limit(1).count():
                df.coalesce(1).write.csv(_spark_uri(f"{lists_dir}/{nm}") if is_local(lists_dir) else f"{lists_dir}/{nm}", header=True)
        counts = pd.crosstab(small["split"], small["label"].map(CODE_TO_NAME))
        summary.update(
            status="ok", finished=utc_now(), seen=seen, in_table=kept, ondrejov_in_table=accepted,
            rejected=rejected, rejected_by_reason=dict(sorted(by_reason.items())),
            unlabelled=by_status.get("unlabelled", 0), duplicates=by_status.get("duplicate", 0),
            dropped_unknown=by_status.get("dropped_unknown", 0), labels_total=lab.count(),
            labels_without_file=n_orphans, labels_without_file_listed=summary.pop("labels_without_file"),
            groups=int(small["group"].nunique()),
            by_split={s: {c: int(v) for c, v in row.items()} for s, row in counts.iterrows()},
            lists_dir=lists_dir, seconds=round(time.time() - t0, 3))
        wh.fs.delete(staging)
        wh.garbage_collect()
        summary["summary_path"] = wh.write_summary(summary)
        return summary
    except Exception as exc:
        summary.update(status="failed", finished=utc_now(), error=f"{type(exc).__name__}: {exc}")
        try:
            summary["summary_path"] = wh.write_summary(summary)
        except Exception:  # noqa: BLE001 - the original error matters more
            log.exception("could not write the run summary")
        raise
    finally:
        sc.setJobDescription(None)
        lab.unpersist()
        wh.release_lock(run_id)


def _extra_rows(spark, wh: Warehouse, extra, pp_id: str, drop_unknown: bool, decimals: int,
                summary: dict[str, Any], max_listed: int):
    """Labelled LAMOST rows of ``W/spectra`` in trainset columns; counts go to ``summary['extra']``."""
    from pyspark.sql import functions as F
    from .ingest import SPECTRA_SCHEMA
    spectra = wh.read_table(spark, "spectra", SPECTRA_SCHEMA)
    j = extra.join(spectra.select("source_path", "designation", "ra", "dec", "flux", "preprocess_id"),
                   "source_path", "left")
    status = (F.when(F.col("flux").isNull(), "not_in_spectra")
              .when((F.col("label") == UNKNOWN) & F.lit(drop_unknown), "dropped_unknown")
              .when(F.col("preprocess_id") != pp_id, "preprocess_mismatch").otherwise("ok"))
    j = j.withColumn("status", status).cache()
    n = {r["status"]: r["count"] for r in j.groupBy("status").count().collect()}
    summary["extra"] = {"rows": sum(n.values()), "in_table": n.get("ok", 0),
                        "not_in_spectra": n.get("not_in_spectra", 0),
                        "dropped_unknown": n.get("dropped_unknown", 0),
                        "preprocess_mismatch": n.get("preprocess_mismatch", 0),
                        "not_in_spectra_listed": _listed(j.filter("status = 'not_in_spectra'").select("source_path"),
                                                         "source_path", max_listed),
                        "preprocess_mismatch_listed": _listed(j.filter("status = 'preprocess_mismatch'")
                                                              .select("source_path"), "source_path", max_listed)}
    log.info("extra labels: %s", {k: v for k, v in summary["extra"].items() if not k.endswith("_listed")})
    norm = F.upper(F.trim(F.regexp_replace("designation", r"\s+", " ")))
    coords = F.format_string(f"RADEC %.{decimals}f %+.{decimals}f", "ra", "dec")
    group = (F.when(F.col("designation").isNotNull() & (norm != ""), norm)
             .when(F.col("ra").isNotNull() & F.col("dec").isNotNull(), coords)
             .otherwise(F.concat(F.lit("FILE "), F.col("source_path"))))
    return j.filter("status = 'ok'").select(
        F.col("source_path").alias("id"), "source_path", F.col("designation").alias("object"),
        group.alias("group"), "label", "flux", F.lit(None).cast("string").alias("adapt_id"))


def summary_line(s: dict[str, Any]) -> str:
    """The job's last log line."""
    reasons = ", ".join(f"{k} {v}" for k, v in s.get("rejected_by_reason", {}).items()) or "none"
    splits = ", ".join(f"{k} {sum(v.values())}" for k, v in sorted(s.get("by_split", {}).items()))
    extra = f"; extra LAMOST rows {s['extra']['in_table']}/{s['extra']['rows']}" if "extra" in s else ""
    return (f"trainset {s['run_id']}: seen {s['seen']} = in table {s['ondrejov_in_table']} + rejected "
            f"{s['rejected']} ({reasons}) + unlabelled {s['unlabelled']} + dropped unknown {s['dropped_unknown']} "
            f"+ duplicates {s['duplicates']}; labels without a file {s['labels_without_file']}{extra}; "
            f"{s['in_table']} rows ({splits}) in {s['groups']} groups; {s['seconds']:.1f} s")
