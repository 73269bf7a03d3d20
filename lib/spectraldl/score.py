"""The score job: a pandas UDF applies a model to every vector of ``W/spectra``, incrementally.

The model travels to the executors as a broadcast of its ``model.keras`` bytes (no shared file
system needed, no pickle) and is loaded once per Python worker process, then cached: Spark
reuses Python workers between tasks, so a worker pays the TensorFlow start-up once per job.

Rows are keyed by ``(source_path, exposure, ingest_run, model_version)`` (``exposure``: the HDU
of an MRS spectrum, empty for a one-spectrum file): a rerun with the same model scores
only rows not yet scored (new or re-ingested spectra); a new model version scores everything
again and keeps the old versions' rows; ``rescore`` forces a full pass for this version.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from typing import Any

import numpy as np
import pandas as pd

from .artifact import MODEL_FILE, ModelError, read_meta, resolve_model
from .ingest import SPECTRA_SCHEMA
from .ingest import SPECTRUM_KEY as KEY
from .lifecycle import JobRun, task_count
from .models import CLASSES
from .warehouse import is_local, local_path
from .worker import prepare_worker

log = logging.getLogger(__name__)

SCORES_SCHEMA = (
    "source_path string, exposure string, designation string, ra double, dec double, lamost_class string, "
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
              rescore: bool = False, break_lock: bool = False, parent: JobRun | None = None) -> dict[str, Any]:
    """Score ``W/spectra`` with ``model``; returns the run summary (also in ``W/runs``).

    ``parent``: the run this is a stage of (the pipeline), whose lock covers it. An empty
    ``spectra`` table, or nothing left to score, is no work: the run ends ok and says so.
    """
    from pyspark.sql import functions as F
    inputs = {"model": model, "rescore": rescore}
    with JobRun(spark, "score", warehouse, config, inputs=inputs, writes=True, break_lock=break_lock,
                parent=parent) as run:
        models_root = os.path.join(local_path(run.wh.root), "models") if is_local(run.wh.root) else None
        model_dir = resolve_model(model, models_root)
        meta = read_meta(model_dir)
        run.summary.update(model_version=meta["version"], spectra=0, scored=0, skipped=0, rate_per_s=0.0)
        run.summary["inputs"]["model"] = str(model_dir)
        if not run.table_dirs("spectra"):
            run.nothing_to_do("the spectra table is empty (no file ingested yet)")
            return run.summary
        spectra = run.read_table("spectra", SPECTRA_SCHEMA)
        _check_preprocess(spectra, meta, model_dir)
        old = run.read_table("scores", SCORES_SCHEMA)
        this_version = old.filter(F.col("model_version") == meta["version"])
        todo = spectra if rescore else spectra.join(this_version.select(*KEY, "ingest_run"),
                                                    [*KEY, "ingest_run"], "left_anti")
        n_spectra, n_todo = spectra.count(), todo.count()
        run.summary.update(spectra=n_spectra, scored=n_todo, skipped=n_spectra - n_todo)
        if not n_todo:
            run.nothing_to_do(f"all {n_spectra} spectra already scored by {meta['version']}")
            return run.summary
        t0 = time.time()
        _score_and_commit(run, todo, n_todo, old, this_version, model_dir, meta["version"])
        run.summary["rate_per_s"] = round(n_todo / max(time.time() - t0, 1e-9), 1)
        return run.summary


def _score_and_commit(run: JobRun, todo, n_todo: int, old, this_version, model_dir, version: str) -> None:
    """Score ``todo`` into a new ``scores`` directory; rows of this version for the same spectra
    (re-ingested or rescored) leave the table; commit; count the predicted classes."""
    from pyspark.sql import functions as F
    cfg, sc = run.config["score"], run.spark.sparkContext
    payload = (model_dir / MODEL_FILE).read_bytes()
    key = f"{version}:{hashlib.sha256(payload).hexdigest()[:16]}"
    run.spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(cfg["arrow_batch_size"]))
    probs = make_udf(sc.broadcast(payload), key, cfg["tf_threads"])
    nparts = task_count(n_todo, cfg["rows_per_task"], sc.defaultParallelism)
    run.describe(f"score {n_todo} spectra with {version} in {nparts} tasks")
    p = todo.repartition(nparts).withColumn("p", probs("flux"))
    names = F.array(*[F.lit(c) for c in CLASSES])
    scored = p.select(
        *KEY, "designation", "ra", "dec", "lamost_class", "lamost_subclass",
        F.col("p")[0].alias("p_emission"), F.col("p")[1].alias("p_absorption"),
        F.col("p")[2].alias("p_double_peak"),
        names[F.expr("array_position(p, array_max(p)) - 1")].alias("label"),
        F.expr("-aggregate(p, cast(0.0 as double), (acc, x) -> acc + x * ln(greatest(x, 1e-12)))")
        .cast("float").alias("entropy"),
        F.lit(version).alias("model_version"), "ingest_run",
        F.current_timestamp().alias("scored_at"))
    scored.write.parquet(run.staging_uri("scores"))
    new_dir = f"run-{run.run_id}"
    dirs = run.table_dirs("scores")
    moves = [(f"{run.staging}/scores", run.wh.path("scores", new_dir))]
    if dirs and this_version.join(todo.select(*KEY), KEY, "left_semi").limit(1).count():
        keep = old.filter(F.col("model_version") != version).unionByName(
            this_version.join(todo.select(*KEY), KEY, "left_anti"))
        keep.write.parquet(run.staging_uri("compact"))
        moves.append((f"{run.staging}/compact", run.wh.path("scores", f"compact-{run.run_id}")))
        dirs = [f"compact-{run.run_id}"]
    run.commit({"scores": dirs + [new_dir]}, moves)
    run.describe("count predicted classes")
    counts = {r["label"]: r["count"] for r in run.wh.read_table(run.spark, "scores")
              .filter(F.col("model_version") == version).groupBy("label").count().collect()}
    run.summary["predicted"] = {c: counts.get(c, 0) for c in CLASSES}


def summary_line(s: dict[str, Any]) -> str:
    pred = ", ".join(f"{k} {v}" for k, v in s.get("predicted", {}).items())
    return (f"score {s['run_id']}: {s['spectra']} spectra, scored {s['scored']}, skipped {s['skipped']} "
            f"(already scored by {s['model_version']})" + (f"; {s['model_version']} predicts {pred}" if pred else "")
            + (f"; nothing to do ({s['nothing_to_do']})" if s.get("nothing_to_do") else "")
            + f"; {s['seconds']:.1f} s")
