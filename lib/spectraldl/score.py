"""The score job: a pandas UDF applies a model to every vector of ``W/spectra``, incrementally.

The model travels to the executors as a broadcast of its ``model.keras`` bytes (no shared file
system needed, no pickle) and is loaded once per Python worker process, then cached: Spark
reuses Python workers between tasks, so a worker pays the TensorFlow start-up once per job.

Rows are keyed by ``(source_path, ingest_run, model_version)``: a rerun with the same model scores
only rows not yet scored (new or re-ingested spectra); a new model version scores everything
again and keeps the old versions' rows; ``rescore`` forces a full pass for this version.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from typing import Any, Iterator

import numpy as np
import pandas as pd

from .artifact import MODEL_FILE, ModelError, read_meta, resolve_model
from .models import CLASSES
from .warehouse import Warehouse, is_local, local_path, new_run_id, utc_now
from .worker import prepare_worker

log = logging.getLogger(__name__)

SCORES_SCHEMA = (
    "source_path string, designation string, ra double, dec double, lamost_class string, "
    "lamost_subclass string, p_emission float, p_absorption float, p_double_peak float, label string, "
    "entropy float, model_version string, ingest_run string, scored_at timestamp"
)
_MODEL_CACHE: dict[str, Any] = {}


def _cached_model(key: str, payload: bytes, threads: int):
    """The Keras model for ``key``, loaded once per Python worker process."""
    model = _MODEL_CACHE.get(key)
    if model is None:
        import tensorflow as tf
        if threads:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(threads)
            except RuntimeError:
                pass  # TF already initialised in this process
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, MODEL_FILE)
            with open(path, "wb") as fh:
                fh.write(payload)
            model = tf.keras.models.load_model(path, compile=False, safe_mode=True)
        _MODEL_CACHE[key] = model
    return model


def predict_proba(model, flux: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Class probabilities of a stack of vectors, in chunks (plain forward passes, no ``predict`` loop)."""
    out = [model(flux[i:i + chunk], training=False).numpy() for i in range(0, len(flux), chunk)]
    return np.concatenate(out) if out else np.zeros((0, len(CLASSES)), np.float32)


def entropy(p: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) of each row of probabilities: high = uncertain (active learning)."""
    q = np.clip(p, 1e-12, 1.0)
    return -(q * np.log(q)).sum(axis=1)


def make_udf(bc_model, key: str, threads: int):
    """The pandas UDF: a Series of flux arrays -> a Series of probability arrays."""
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("array<float>")
    def probabilities(flux: pd.Series) -> pd.Series:
        prepare_worker()
        model = _cached_model(key, bc_model.value, threads)
        x = np.stack(flux.to_numpy()).astype(np.float32, copy=False)
        return pd.Series(list(predict_proba(model, x)))

    return probabilities


def _check_preprocess(spectra, meta: dict[str, Any], model_dir) -> None:
    ids = [r[0] for r in spectra.select("preprocess_id").distinct().collect()]
    bad = [i for i in ids if i != meta["preprocess_id"]]
    if bad:
        raise ModelError(
            f"model {meta['version']} ({model_dir}) expects vectors made with preprocess_id "
            f"{meta['preprocess_id']}, but W/spectra holds {sorted(ids)}: re-ingest with the model's "
            "preprocessing settings or train a model on them")


def run_score(spark, warehouse: str, config: dict[str, Any], model: str = "default",
              rescore: bool = False, take_lock: bool = True) -> dict[str, Any]:
    """Score ``W/spectra`` with ``model``; returns the run summary (also in ``W/runs``).

    ``take_lock=False`` when the caller (the pipeline job) already holds the warehouse lock.
    """
    from pyspark.sql import functions as F

    t0 = time.time()
    run_id = new_run_id()
    wh = Warehouse(warehouse, spark)
    models_root = os.path.join(local_path(wh.root), "models") if is_local(wh.root) else None
    model_dir = resolve_model(model, models_root)
    meta = read_meta(model_dir)
    version = meta["version"]
    sc = spark.sparkContext
    cfg = config["score"]
    with wh.locked(run_id, "score", cfg.get("break_lock", False), take=take_lock):
        spectra = wh.read_table(spark, "spectra")
        _check_preprocess(spectra, meta, model_dir)
        old = wh.read_table(spark, "scores", SCORES_SCHEMA)
        this_version = old.filter(F.col("model_version") == version)
        if rescore:
            todo = spectra
        else:
            todo = spectra.join(this_version.select("source_path", "ingest_run"), ["source_path", "ingest_run"], "left_anti")
        n_spectra = spectra.count()
        n_todo = todo.count()
        summary: dict[str, Any] = {"job": "score", "run_id": run_id, "started": utc_now(), "status": "ok",
                                   "inputs": {"warehouse": wh.root, "model": str(model_dir), "rescore": rescore},
                                   "model_version": version, "spectra": n_spectra, "scored": n_todo,
                                   "skipped": n_spectra - n_todo}
        if n_todo:
            payload = (model_dir / MODEL_FILE).read_bytes()
            key = f"{version}:{hashlib.sha256(payload).hexdigest()[:16]}"
            bc = sc.broadcast(payload)
            spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(cfg["arrow_batch_size"]))
            probs = make_udf(bc, key, cfg["tf_threads"])
            sc.setJobDescription(f"score {run_id}: {n_todo} spectra with {version}")
            nparts = max(sc.defaultParallelism, -(-n_todo // cfg["rows_per_task"]))
            p = todo.repartition(nparts).withColumn("p", probs("flux"))
            names = F.array(*[F.lit(c) for c in CLASSES])
            scored = p.select(
                "source_path", "designation", "ra", "dec", "lamost_class", "lamost_subclass",
                F.col("p")[0].alias("p_emission"), F.col("p")[1].alias("p_absorption"),
                F.col("p")[2].alias("p_double_peak"),
                names[F.expr("array_position(p, array_max(p)) - 1")].alias("label"),
                F.expr("-aggregate(p, cast(0.0 as double), (acc, x) -> acc + x * ln(greatest(x, 1e-12)))")
                .cast("float").alias("entropy"),
                F.lit(version).alias("model_version"), "ingest_run",
                F.current_timestamp().alias("scored_at"))
            scored.write.parquet(wh.uri("_staging", run_id, "scores"))
            new_dir = f"run-{run_id}"
            dirs = wh.table_dirs("scores")
            moves = [(wh.path("_staging", run_id, "scores"), wh.path("scores", new_dir))]
            superseded = this_version.join(todo.select("source_path"), "source_path", "left_semi")
            if dirs and superseded.limit(1).count():
                # rows of this version for re-ingested or rescored spectra leave the table
                keep = old.filter(F.col("model_version") != version).unionByName(
                    this_version.join(todo.select("source_path"), "source_path", "left_anti"))
                keep.write.parquet(wh.uri("_staging", run_id, "compact"))
                moves.append((wh.path("_staging", run_id, "compact"), wh.path("scores", f"compact-{run_id}")))
                dirs = [f"compact-{run_id}"]
            for src, dst in moves:
                wh.fs.mkdirs(wh.path("scores"))
                wh.fs.rename(src, dst)
            wh.commit({"scores": dirs + [new_dir]}, {"job": "score", "run_id": run_id})
            wh.fs.delete(wh.path("_staging", run_id))
            wh.garbage_collect()
            counts = {r["label"]: r["count"] for r in
                      wh.read_table(spark, "scores").filter(F.col("scored_at").isNotNull())
                      .filter(F.col("model_version") == version).groupBy("label").count().collect()}
            summary["predicted"] = {c: counts.get(c, 0) for c in CLASSES}
        summary.update(finished=utc_now(), seconds=round(time.time() - t0, 2))
        summary["rate_per_s"] = round(n_todo / summary["seconds"], 1) if n_todo else 0.0
        summary["summary_path"] = wh.write_summary(summary)
        return summary


def summary_line(s: dict[str, Any]) -> str:
    pred = ", ".join(f"{k} {v}" for k, v in s.get("predicted", {}).items())
    return (f"score {s['run_id']}: {s['spectra']} spectra, scored {s['scored']}, skipped {s['skipped']} "
            f"(already scored by {s['model_version']})" + (f"; {s['model_version']} predicts {pred}" if pred else "")
            + f"; {s['seconds']:.1f} s")
