"""The trainset job's Spark plan: labelled Ondřejov files (+ labelled LAMOST rows) -> ``W/trainset``.

1. The input is listed like the ingest's (:func:`spectraldl.sources.list_sources`) and joined, by
   file stem, with the label file (``id,label``; ``ivo://asu.cas.cz/stel/ccd700/ud090015`` labels
   ``ud090015.fits``). Every file ends in exactly one of: ``unlabelled`` (no label),
   ``duplicate`` (another file with the same stem was taken: the first path), ``dropped_unknown``
   (label 2, by default), ``rejected`` (unreadable or unusable, with its reason) or the table.
   Labels without a file are counted too. The run summary lists every group (the first
   ``max_listed`` of each in the JSON; longer lists complete in a CSV beside it).
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
import time
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import pandas as pd

from .adapt import AdaptSettings, adapt_ondrejov
from .io import Limits, SpectrumError, read_spectrum
from .labels import (CODE_TO_NAME, STEM_SUFFIX_REGEX, UNKNOWN, file_stem, group_key, read_extra_labels,
                     read_labels)
from .preprocess import PreprocessSettings
from .sources import list_sources, read_source_bytes
from .splits import grouped_stratified_split
from .warehouse import Warehouse, move_dirs, new_run_id, utc_now
from .worker import prepare_worker

log = logging.getLogger(__name__)

TRAINSET_COLUMNS = ["id", "source_path", "object", "group", "label", "label_name", "flux", "split",
                    "preprocess_id", "adapt_id"]
TRAINSET_SCHEMA = ("id string, source_path string, object string, group string, label int, "
                   "label_name string, flux array<float>, split string, preprocess_id string, adapt_id string")
PARSED_SCHEMA = ("outcome string, id string, source_path string, object string, group string, label int, "
                 "flux array<float>, valid_fraction float, file_format string, reason string, detail string")


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
    prepare_worker()
    columns = [c.split()[0] for c in PARSED_SCHEMA.split(", ")]
    for pdf in batches:
        rows = []
        for path, id_, label in zip(pdf["source_path"], pdf["id"], pdf["label"]):
            r = parse_labelled(path, opts)
            r.update(source_path=path, id=id_, label=int(label))
            rows.append(r)
        yield pd.DataFrame({c: pd.Series([r.get(c) for r in rows], dtype=object) for c in columns})


def _first(values, n: int) -> list:
    return sorted(values)[:n]


def run_trainset(spark, src: str, labels: str, warehouse: str, config: dict[str, Any],
                 extra_labels: str | None = None, break_lock: bool = False) -> dict[str, Any]:
    """Build ``W/trainset`` from ``src`` and ``labels``; returns the run summary (also in ``W/runs``).

    Raises ``ValueError`` for bad label files (before taking the lock), :class:`CountMismatch`
    or :class:`EmptyTrainset` without committing; a failed run still writes its summary.
    """
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
    lab = read_labels(spark, labels)
    extra = read_extra_labels(spark, extra_labels) if extra_labels else None
    sc = spark.sparkContext
    wh.acquire_lock(run_id, "trainset", break_lock)
    j = None
    try:
        wh.garbage_collect()
        sc.setJobDescription(f"trainset {run_id}: list {src} and join {len(lab)} labels")
        listing = list_sources(spark, src, tuple(ts["file_suffixes"])).dropDuplicates(["source_path"])
        base = F.regexp_extract("source_path", r"([^/]+)$", 1)
        listing = listing.withColumn("stem", F.lower(F.regexp_replace(base, STEM_SUFFIX_REGEX, "")))
        lab_df = spark.createDataFrame(lab, "stem string, id string, label int")
        j = listing.join(F.broadcast(lab_df), "stem", "left")
        rank = F.row_number().over(Window.partitionBy("stem").orderBy("source_path"))
        status = (F.when(F.col("label").isNull(), "unlabelled").when(F.col("rank") > 1, "duplicate")
                  .when((F.col("label") == UNKNOWN) & F.lit(drop_unknown), "dropped_unknown").otherwise("todo"))
        j = j.withColumn("rank", rank).withColumn("status", status).drop("rank")
        j = j.persist(StorageLevel.MEMORY_AND_DISK)
        by_status = {r["status"]: r["count"] for r in j.groupBy("status").count().collect()}
        seen = sum(by_status.values())
        # the labelled files are at most as many as the labels: a small table for the driver
        labelled = j.filter("status != 'unlabelled'").select("source_path", "stem", "id", "label", "status").toPandas()
        orphans = lab.loc[~lab["stem"].isin(labelled["stem"]), "id"]
        todo = labelled[labelled["status"] == "todo"]
        log.info("trainset %s: seen %d files: %s; %d labels without a file", run_id, seen, by_status, len(orphans))

        staging = wh.path("_staging", run_id)
        parts, small = [], []
        accepted = rejected = 0
        by_reason: dict[str, int] = {}
        if len(todo):
            nparts = max(1, min(len(todo), max(sc.defaultParallelism, math.ceil(len(todo) / ts["paths_per_task"]))))
            sc.setJobDescription(f"trainset {run_id}: read and adapt {len(todo)} files in {nparts} tasks")
            t_parse = time.time()
            (spark.createDataFrame(todo[["source_path", "id", "label"]], "source_path string, id string, label int")
             .repartition(nparts).mapInPandas(lambda it: parse_batches(it, opts), PARSED_SCHEMA)
             .write.parquet(wh.uri("_staging", run_id, "parsed")))
            summary["parse_seconds"] = round(time.time() - t_parse, 3)
            parsed = spark.read.parquet(wh.uri("_staging", run_id, "parsed"))
            meta = parsed.select("outcome", "reason", "detail", "source_path", "id", "group", "label").toPandas()
            ok = meta["outcome"] == "ok"
            accepted, rejected = int(ok.sum()), int((~ok).sum())
            by_reason = {k: int(v) for k, v in meta.loc[~ok, "reason"].value_counts().sort_index().items()}
            summary["rejected_files"] = (meta.loc[~ok, ["source_path", "reason", "detail"]].sort_values("source_path")
                                         .head(max_listed).to_dict("records"))
            parts.append(parsed.filter("outcome = 'ok'").select(
                "id", "source_path", "object", "group", "label", "flux", F.lit(ad_id).alias("adapt_id")))
            small.append(meta.loc[ok, ["id", "group", "label"]])
        others = sum(by_status.get(s, 0) for s in ("unlabelled", "duplicate", "dropped_unknown"))
        if seen != accepted + rejected + others:
            raise CountMismatch(f"seen {seen} != in table {accepted} + rejected {rejected} + {by_status}")
        if extra is not None:
            rows, ids = _extra_rows(spark, wh, extra, pp_id, drop_unknown, opts.coord_decimals, summary, max_listed)
            parts.append(rows)
            small.append(ids)
        table = pd.concat(small, ignore_index=True) if small else pd.DataFrame(columns=["id", "group", "label"])
        if table.empty:
            raise EmptyTrainset("no labelled spectrum left for the training set")
        if table["id"].duplicated().any():
            raise CountMismatch(f"duplicate ids in the training set: {table['id'][table['id'].duplicated()].tolist()[:5]}")

        table["split"] = grouped_stratified_split(table["group"], table["label"], ts["fractions"], int(ts["seed"]))
        splits = spark.createDataFrame(table[["id", "split"]], "id string, split string")
        rows = parts[0] if len(parts) == 1 else parts[0].unionByName(parts[1])
        name = F.create_map(*[x for k, v in CODE_TO_NAME.items() for x in (F.lit(k), F.lit(v))])
        out = (rows.join(F.broadcast(splits) if len(table) < 2_000_000 else splits, "id")
               .withColumn("label", F.col("label").cast("int")).withColumn("label_name", name[F.col("label")])
               .withColumn("preprocess_id", F.lit(pp_id)).select(*TRAINSET_COLUMNS))
        sc.setJobDescription(f"trainset {run_id}: write {len(table)} rows")
        out.write.parquet(wh.uri("_staging", run_id, "trainset"))
        move_dirs(wh, [(f"{staging}/trainset", wh.path("trainset", f"run-{run_id}"))])
        wh.commit({"trainset": [f"run-{run_id}"]}, {"job": "trainset", "run_id": run_id})

        # what did not make it, listed: the first max_listed in the JSON, complete lists beside it
        n_unlabelled = by_status.get("unlabelled", 0)
        unl = j.filter("status = 'unlabelled'").select("source_path")
        summary["unlabelled_files"] = [r[0] for r in unl.orderBy("source_path").limit(max_listed).collect()] if n_unlabelled else []
        if n_unlabelled > max_listed:
            unl.coalesce(1).write.csv(wh.uri("runs", f"trainset-{run_id}", "unlabelled_files"), header=True)
            summary["unlabelled_files_csv"] = wh.path("runs", f"trainset-{run_id}", "unlabelled_files")
        summary["duplicate_files"] = _first(labelled.loc[labelled["status"] == "duplicate", "source_path"], max_listed)
        summary["dropped_unknown_files"] = _first(labelled.loc[labelled["status"] == "dropped_unknown", "source_path"], max_listed)
        summary["labels_without_file_listed"] = _first(orphans, max_listed)
        if len(orphans) > max_listed:
            wh.fs.mkdirs(wh.path("runs", f"trainset-{run_id}"))
            wh.fs.write_new(wh.path("runs", f"trainset-{run_id}", "labels_without_file.csv"),
                            "id\n" + "".join(f"{x}\n" for x in sorted(orphans)))
            summary["labels_without_file_csv"] = wh.path("runs", f"trainset-{run_id}", "labels_without_file.csv")
        counts = pd.crosstab(table["split"], table["label"].map(CODE_TO_NAME))
        summary.update(
            status="ok", finished=utc_now(), seen=seen, in_table=len(table), ondrejov_in_table=accepted,
            rejected=rejected, rejected_by_reason=by_reason, unlabelled=n_unlabelled,
            duplicates=by_status.get("duplicate", 0), dropped_unknown=by_status.get("dropped_unknown", 0),
            labels_total=len(lab), labels_without_file=len(orphans), groups=int(table["group"].nunique()),
            by_split={s: {c: int(v) for c, v in row.items()} for s, row in counts.iterrows()},
            seconds=round(time.time() - t0, 3))
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
        if j is not None:
            j.unpersist()
        wh.release_lock(run_id)


def _extra_rows(spark, wh: Warehouse, extra: pd.DataFrame, pp_id: str, drop_unknown: bool, decimals: int,
                summary: dict[str, Any], max_listed: int):
    """Labelled LAMOST rows of ``W/spectra`` in trainset columns, and their ``(id, group, label)``
    table; the counts go to ``summary['extra']``. Group: the designation (else coordinates)."""
    from pyspark.sql import functions as F
    from .ingest import SPECTRA_SCHEMA
    spectra = wh.read_table(spark, "spectra", SPECTRA_SCHEMA)
    ex = spark.createDataFrame(extra, "source_path string, label int")
    j = F.broadcast(ex).join(spectra.select("source_path", "designation", "ra", "dec", "flux", "preprocess_id"),
                             "source_path", "left")
    status = (F.when(F.col("flux").isNull(), "not_in_spectra")
              .when((F.col("label") == UNKNOWN) & F.lit(drop_unknown), "dropped_unknown")
              .when(F.col("preprocess_id") != pp_id, "preprocess_mismatch").otherwise("ok"))
    j = j.withColumn("status", status)
    meta = j.select("source_path", "designation", "ra", "dec", "label", "status").toPandas()
    meta["group"] = [group_key(d, r, de, p, decimals)
                     for d, r, de, p in zip(meta["designation"], meta["ra"], meta["dec"], meta["source_path"])]
    n = meta["status"].value_counts()
    summary["extra"] = {"rows": len(meta), "in_table": int(n.get("ok", 0)),
                        "not_in_spectra": int(n.get("not_in_spectra", 0)),
                        "dropped_unknown": int(n.get("dropped_unknown", 0)),
                        "preprocess_mismatch": int(n.get("preprocess_mismatch", 0))}
    log.info("extra labels: %s", summary["extra"])
    for st in ("not_in_spectra", "preprocess_mismatch", "dropped_unknown"):
        summary["extra"][f"{st}_listed"] = _first(meta.loc[meta["status"] == st, "source_path"], max_listed)
    ok = meta[meta["status"] == "ok"]
    groups = spark.createDataFrame(ok[["source_path", "group"]], "source_path string, group string")
    rows = (j.filter("status = 'ok'").join(F.broadcast(groups), "source_path")
            .select(F.col("source_path").alias("id"), "source_path", F.col("designation").alias("object"),
                    "group", "label", "flux", F.lit(None).cast("string").alias("adapt_id")))
    return rows, pd.DataFrame({"id": ok["source_path"], "group": ok["group"], "label": ok["label"]})


def summary_line(s: dict[str, Any]) -> str:
    """The job's last log line."""
    reasons = ", ".join(f"{k} {v}" for k, v in s.get("rejected_by_reason", {}).items()) or "none"
    splits = ", ".join(f"{k} {sum(v.values())}" for k, v in sorted(s.get("by_split", {}).items()))
    extra = f"; extra LAMOST rows {s['extra']['in_table']}/{s['extra']['rows']}" if "extra" in s else ""
    return (f"trainset {s['run_id']}: seen {s['seen']} = in table {s['ondrejov_in_table']} + rejected "
            f"{s['rejected']} ({reasons}) + unlabelled {s['unlabelled']} + dropped unknown {s['dropped_unknown']} "
            f"+ duplicates {s['duplicates']}; labels without a file {s['labels_without_file']}{extra}; "
            f"{s['in_table']} rows ({splits}) in {s['groups']} groups; {s['seconds']:.1f} s")
