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
   ``(id, group, label)`` table, then joined back; the stars named in ``trainset.holdout`` (a
   file of Ondřejov file stems or object names) get the split ``holdout`` first, with every
   spectrum of their groups, so that they stay out of train, validation and test (an external
   test set; the run summary lists what was held out and what the file named but the table
   lacks); the table is written aside and published by
   one manifest commit, replacing the previous training set whole.
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any, Iterator

import numpy as np
import pandas as pd

from .adapt import AdaptSettings, adapt_ondrejov
from .errors import CountMismatch, JobError, UsageError
from .io import Limits, SpectrumError, read_spectrum
from .labels import (CODE_TO_NAME, STEM_SUFFIX_REGEX, UNKNOWN, file_stem, group_key, read_extra_labels,
                     read_labels)
from .lifecycle import JobRun, task_count
from .preprocess import PreprocessSettings
from .sources import list_sources, read_source_bytes
from .splits import grouped_stratified_split
from .worker import prepare_worker

log = logging.getLogger(__name__)

TRAINSET_COLUMNS = ["id", "source_path", "object", "group", "label", "label_name", "flux", "split",
                    "preprocess_id", "adapt_id"]
TRAINSET_SCHEMA = ("id string, source_path string, object string, group string, label int, "
                   "label_name string, flux array<float>, split string, preprocess_id string, adapt_id string")
PARSED_SCHEMA = ("outcome string, id string, source_path string, object string, group string, label int, "
                 "flux array<float>, valid_fraction float, file_format string, reason string, detail string")


class EmptyTrainset(JobError):
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
                 extra_labels: str | None = None, break_lock: bool = False,
                 parent: JobRun | None = None) -> dict[str, Any]:
    """Build ``W/trainset`` from ``src`` and ``labels``; returns the run summary (also in ``W/runs``).

    Raises :class:`~spectraldl.errors.UsageError` for bad label files (before taking the lock),
    :class:`CountMismatch` or :class:`EmptyTrainset` without committing; a failed run still
    writes its summary. ``parent``: the run this is a stage of (the pipeline).
    """
    from pyspark.sql import functions as F

    ts = config["trainset"]
    opts = TrainsetOptions.from_config(config)
    pp_id, ad_id = opts.preprocess.fingerprint(), opts.adapt.fingerprint()
    lab = read_labels(spark, labels)
    extra = read_extra_labels(spark, extra_labels) if extra_labels else None
    holdout = ts.get("holdout") or ""
    held_entries = read_holdout(holdout) if holdout else []
    inputs = {"input": src, "labels": labels, "extra_labels": extra_labels}
    with JobRun(spark, "trainset", warehouse, config, inputs=inputs, writes=True, break_lock=break_lock,
                parent=parent) as run:
        run.summary.update(preprocess_id=pp_id, adapt_id=ad_id, seed=ts["seed"], fractions=list(ts["fractions"]),
                           drop_unknown=bool(ts["drop_unknown"]))
        j, by_status, labelled, orphans = _match_labels(run, src, lab)
        todo = labelled[labelled["status"] == "todo"]
        accepted, rejected, by_reason, parts, small = _adapt_labelled(run, todo, opts, ad_id)
        seen = sum(by_status.values())
        others = sum(by_status.get(s, 0) for s in ("unlabelled", "duplicate", "dropped_unknown"))
        run.summary.update(seen=seen, ondrejov_in_table=accepted, rejected=rejected, rejected_by_reason=by_reason)
        if seen != accepted + rejected + others:
            raise CountMismatch(f"seen {seen} != in table {accepted} + rejected {rejected} + {by_status}")
        if extra is not None:
            rows, ids = _extra_rows(run, extra, pp_id, bool(ts["drop_unknown"]), opts.coord_decimals,
                                    run.summary, int(ts["max_listed"]))
            parts.append(rows)
            small.append(ids)
        table = pd.concat(small, ignore_index=True) if small else pd.DataFrame(columns=["id", "group", "label"])
        if table.empty:
            raise EmptyTrainset("no labelled spectrum left for the training set")
        if table["id"].duplicated().any():
            raise CountMismatch(f"duplicate ids in the training set: {table['id'][table['id'].duplicated()].tolist()[:5]}")
        held = holdout_mask(table, run.summary, holdout, held_entries, int(ts["max_listed"]))
        table["split"] = HOLDOUT
        table.loc[~held, "split"] = grouped_stratified_split(table.loc[~held, "group"], table.loc[~held, "label"],
                                                             ts["fractions"], int(ts["seed"]))
        splits = run.spark.createDataFrame(table[["id", "split"]], "id string, split string")
        rows = parts[0] if len(parts) == 1 else parts[0].unionByName(parts[1])
        name = F.create_map(*[x for k, v in CODE_TO_NAME.items() for x in (F.lit(k), F.lit(v))])
        out = (rows.join(F.broadcast(splits) if len(table) < 2_000_000 else splits, "id")
               .withColumn("label", F.col("label").cast("int")).withColumn("label_name", name[F.col("label")])
               .withColumn("preprocess_id", F.lit(pp_id)).select(*TRAINSET_COLUMNS))
        run.describe(f"write {len(table)} rows")
        out.write.parquet(run.staging_uri("trainset"))
        run.commit({"trainset": [f"run-{run.run_id}"]},
                   [(f"{run.staging}/trainset", run.wh.path("trainset", f"run-{run.run_id}"))],
                   {pp_id: asdict(opts.preprocess)})
        _list_left_out(run, j, by_status, labelled, orphans)
        counts = pd.crosstab(table["split"], table["label"].map(CODE_TO_NAME))
        run.summary.update(
            in_table=len(table), unlabelled=by_status.get("unlabelled", 0),
            duplicates=by_status.get("duplicate", 0), dropped_unknown=by_status.get("dropped_unknown", 0),
            labels_total=len(lab), labels_without_file=len(orphans), groups=int(table["group"].nunique()),
            by_split={s: {c: int(v) for c, v in row.items()} for s, row in counts.iterrows()})
        j.unpersist()
        return run.summary


HOLDOUT = "holdout"


def read_holdout(path: str) -> list[str]:
    """The entries of a hold-out file: one Ondřejov file stem (``ud210022``, ``ud210022.fits``) or
    object name (``HD 53416``, ``V* BT CMi``) per line; ``#`` starts a comment; a CSV's first
    column (a header line ``stem``/``object``/``name`` is skipped)."""
    import os
    from .warehouse import local_path
    p = local_path(path)
    if not os.path.isfile(p):
        raise UsageError(f"trainset.holdout {path}: no such file")
    out = []
    with open(p, encoding="utf-8") as fh:
        for line in fh:
            entry = line.split("#", 1)[0].split(",", 1)[0].strip()
            if entry and entry.lower() not in ("stem", "object", "name", "file"):
                out.append(entry)
    return out


def holdout_mask(table: pd.DataFrame, summary: dict[str, Any], path: str, entries: list[str],
                 max_listed: int) -> np.ndarray:
    """Which rows of ``(id, group, label)`` are held out: the groups (stars) of the rows whose file
    stem is one of ``entries`` (:func:`read_holdout` of ``path``), and the groups an entry names (:func:`group_key` of it). Every
    spectrum of a held-out star is held out. Recorded in ``summary['holdout']``."""
    n = len(table)
    if not path:
        summary["holdout"] = None
        return np.zeros(n, dtype=bool)
    stems = table["id"].map(lambda i: file_stem(str(i)))
    groups = set()
    matched = []
    for e in entries:
        by_stem = table["group"][stems == file_stem(e)]
        by_name = group_key(e, None, None, "")
        hit = set(by_stem) | ({by_name} if (table["group"] == by_name).any() else set())
        groups |= hit
        if hit:
            matched.append(e)
    mask = table["group"].isin(groups).to_numpy()
    summary["holdout"] = {
        "file": path, "entries": len(entries), "matched": len(matched),
        "not_in_table": [e for e in entries if e not in matched][:max_listed],
        "groups": sorted(groups), "rows": int(mask.sum()),
        "by_label": {CODE_TO_NAME[int(k)]: int(v) for k, v in table.loc[mask, "label"].value_counts().sort_index().items()},
        "ids": sorted(map(str, table.loc[mask, "id"]))[:max_listed]}
    log.info("held out %d rows of %d groups (%d of %d entries of %s matched)", mask.sum(), len(groups),
             len(matched), len(entries), path)
    return mask


def _match_labels(run: JobRun, src: str, lab: pd.DataFrame):
    """List ``src`` and join the labels by file stem: ``(every file with its status, {status:
    count}, the labelled files as pandas, ids of labels without a file)``."""
    from pyspark import StorageLevel
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    ts = run.config["trainset"]
    run.describe(f"list {src} and join {len(lab)} labels")
    listing = list_sources(run.spark, src, tuple(ts["file_suffixes"]))
    base = F.regexp_extract("source_path", r"([^/]+)$", 1)
    listing = listing.withColumn("stem", F.lower(F.regexp_replace(base, STEM_SUFFIX_REGEX, "")))
    lab_df = run.spark.createDataFrame(lab, "stem string, id string, label int")
    j = listing.join(F.broadcast(lab_df), "stem", "left")
    rank = F.row_number().over(Window.partitionBy("stem").orderBy("source_path"))
    status = (F.when(F.col("label").isNull(), "unlabelled").when(F.col("rank") > 1, "duplicate")
              .when((F.col("label") == UNKNOWN) & F.lit(bool(ts["drop_unknown"])), "dropped_unknown")
              .otherwise("todo"))
    j = j.withColumn("rank", rank).withColumn("status", status).drop("rank").persist(StorageLevel.MEMORY_AND_DISK)
    by_status = {r["status"]: r["count"] for r in j.groupBy("status").count().collect()}
    # the labelled files are at most as many as the labels: a small table for the driver
    labelled = j.filter("status != 'unlabelled'").select("source_path", "stem", "id", "label", "status").toPandas()
    orphans = lab.loc[~lab["stem"].isin(labelled["stem"]), "id"]
    log.info("trainset %s: seen %d files: %s; %d labels without a file", run.run_id, sum(by_status.values()),
             by_status, len(orphans))
    return j, by_status, labelled, orphans


def _adapt_labelled(run: JobRun, todo: pd.DataFrame, opts: TrainsetOptions, ad_id: str):
    """Read and adapt the labelled files in tasks: ``(accepted, rejected, {reason: count}, [rows
    DataFrame], [(id, group, label) pandas])``; the rejected files are listed in the summary."""
    from pyspark.sql import functions as F
    if not len(todo):
        return 0, 0, {}, [], []
    ts = run.config["trainset"]
    nparts = task_count(len(todo), ts["paths_per_task"], run.spark.sparkContext.defaultParallelism)
    run.describe(f"read and adapt {len(todo)} files in {nparts} tasks")
    t_parse = time.time()
    (run.spark.createDataFrame(todo[["source_path", "id", "label"]], "source_path string, id string, label int")
     .repartition(nparts).mapInPandas(lambda it: parse_batches(it, opts), PARSED_SCHEMA)
     .write.parquet(run.staging_uri("parsed")))
    run.summary["parse_seconds"] = round(time.time() - t_parse, 3)
    parsed = run.spark.read.parquet(run.staging_uri("parsed"))
    meta = parsed.select("outcome", "reason", "detail", "source_path", "id", "group", "label").toPandas()
    ok = meta["outcome"] == "ok"
    by_reason = {k: int(v) for k, v in meta.loc[~ok, "reason"].value_counts().sort_index().items()}
    run.summary["rejected_files"] = (meta.loc[~ok, ["source_path", "reason", "detail"]].sort_values("source_path")
                                     .head(int(ts["max_listed"])).to_dict("records"))
    rows = parsed.filter("outcome = 'ok'").select(
        "id", "source_path", "object", "group", "label", "flux", F.lit(ad_id).alias("adapt_id"))
    return int(ok.sum()), int((~ok).sum()), by_reason, [rows], [meta.loc[ok, ["id", "group", "label"]]]


def _list_left_out(run: JobRun, j, by_status: dict[str, int], labelled: pd.DataFrame, orphans: pd.Series) -> None:
    """What did not make it into the table, in the summary: the first ``max_listed`` of each kind
    in the JSON, complete lists beside it in ``W/runs/trainset-<run_id>/``."""
    max_listed, wh, run_id = int(run.config["trainset"]["max_listed"]), run.wh, run.run_id
    n_unlabelled = by_status.get("unlabelled", 0)
    unl = j.filter("status = 'unlabelled'").select("source_path")
    run.summary["unlabelled_files"] = ([r[0] for r in unl.orderBy("source_path").limit(max_listed).collect()]
                                       if n_unlabelled else [])
    if n_unlabelled > max_listed:
        unl.coalesce(1).write.csv(wh.uri("runs", f"trainset-{run_id}", "unlabelled_files"), header=True)
        run.summary["unlabelled_files_csv"] = wh.path("runs", f"trainset-{run_id}", "unlabelled_files")
    run.summary["duplicate_files"] = _first(labelled.loc[labelled["status"] == "duplicate", "source_path"], max_listed)
    run.summary["dropped_unknown_files"] = _first(labelled.loc[labelled["status"] == "dropped_unknown", "source_path"],
                                                  max_listed)
    run.summary["labels_without_file_listed"] = _first(orphans, max_listed)
    if len(orphans) > max_listed:
        wh.fs.mkdirs(wh.path("runs", f"trainset-{run_id}"))
        wh.fs.write_new(wh.path("runs", f"trainset-{run_id}", "labels_without_file.csv"),
                        "id\n" + "".join(f"{x}\n" for x in sorted(orphans)))
        run.summary["labels_without_file_csv"] = wh.path("runs", f"trainset-{run_id}", "labels_without_file.csv")


def _extra_rows(run: JobRun, extra: pd.DataFrame, pp_id: str, drop_unknown: bool, decimals: int,
                summary: dict[str, Any], max_listed: int):
    """Labelled LAMOST rows of ``W/spectra`` in trainset columns, and their ``(id, group, label)``
    table; the counts go to ``summary['extra']``. Group: the designation (else coordinates)."""
    from pyspark.sql import functions as F
    from .ingest import SPECTRA_SCHEMA
    spark = run.spark
    spectra = run.read_table("spectra", SPECTRA_SCHEMA)
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
    if s.get("holdout"):
        splits += f"; held out {s['holdout']['rows']} rows of {len(s['holdout']['groups'])} stars"
    extra = f"; extra LAMOST rows {s['extra']['in_table']}/{s['extra']['rows']}" if "extra" in s else ""
    return (f"trainset {s['run_id']}: seen {s['seen']} = in table {s['ondrejov_in_table']} + rejected "
            f"{s['rejected']} ({reasons}) + unlabelled {s['unlabelled']} + dropped unknown {s['dropped_unknown']} "
            f"+ duplicates {s['duplicates']}; labels without a file {s['labels_without_file']}{extra}; "
            f"{s['in_table']} rows ({splits}) in {s['groups']} groups; {s['seconds']:.1f} s")
