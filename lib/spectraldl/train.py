"""The train job's plan: trainset -> Parquet shards -> Horovod on Spark -> evaluated model directory.

1. the ``trainset`` table's splits are written as Parquet under ``W/models/<version>/_data``
   (the training split in ``num_proc x files_per_worker`` files, so petastorm's row-group
   sharding gives every worker rows);
2. ``horovod.spark.run`` starts ``num_proc`` Spark tasks running
   :func:`spectraldl.hvd_worker.train_worker` with Gloo;
3. the driver evaluates rank 0's model on the grouped validation and test splits
   (:mod:`spectraldl.evaluate`) and writes ``model.json``, ``metrics.json`` and the plots.

``--resume`` continues the newest unfinished version from its last checkpoint.
"""
from __future__ import annotations

import glob
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .artifact import META_FILE, MODEL_FILE, ModelError, software_versions, git_commit, write_meta
from .errors import UsageError
from .evaluate import evaluate, plot_all, summary_table
from .models import ARCHS, CLASSES, CODE_TO_INDEX
from .preprocess import PreprocessSettings
from .warehouse import Warehouse, is_local, local_path, new_run_id, utc_now

log = logging.getLogger(__name__)


@dataclass
class TrainOptions:
    """``[train]`` settings plus the command line."""

    arch: str = "cnn"
    num_proc: int = 2
    epochs: int = 50
    batch_size: int = 64
    learning_rate: float = 1e-3
    warmup_epochs: int = 3
    patience: int = 10
    min_delta: float = 0.0
    threads: int = 0
    seed: int = 0
    files_per_worker: int = 4
    cycle_time_ms: float = 10.0

    @classmethod
    def from_config(cls, section: dict[str, Any], **cli: Any) -> "TrainOptions":
        kw = {k: section[k] for k in cls.__dataclass_fields__ if k in section}
        kw.update({k: v for k, v in cli.items() if v is not None})
        opts = cls(**kw)
        if opts.arch not in ARCHS:
            raise UsageError(f"--arch {opts.arch}: choose from {ARCHS}")
        if opts.num_proc < 1 or opts.epochs < 1:
            raise UsageError("--num-proc and --epochs must be >= 1")
        return opts


def _label_index(col):
    from pyspark.sql import functions as F
    expr = None
    for code, idx in CODE_TO_INDEX.items():
        expr = (F.when(col == code, idx) if expr is None else expr.when(col == code, idx))
    return expr


def _unfinished(models_dir: Path) -> Path | None:
    cands = sorted(d for d in models_dir.glob("*") if (d / "checkpoints" / "state.json").is_file()
                   and not (d / META_FILE).is_file())
    return cands[-1] if cands else None


def prepare_data(spark, wh: Warehouse, vdir: Path, opts: TrainOptions) -> dict[str, Any]:
    """Write the splits for the workers; return counts, class weights and the test rows."""
    from pyspark.sql import functions as F
    ts = wh.read_table(spark, "trainset")
    ts = ts.withColumn("y", _label_index(F.col("label"))).filter(F.col("y").isNotNull())
    counts = {(r["split"], r["y"]): r["count"] for r in ts.groupBy("split", "y").count().collect()}
    n = {s: sum(v for (sp, _), v in counts.items() if sp == s) for s in ("train", "val", "test")}
    if min(n.values()) == 0:
        raise ModelError(f"trainset splits too small: {n}")
    pids = [r[0] for r in ts.select("preprocess_id").distinct().collect()]
    data = vdir / "_data"
    for split, nfiles in (("train", opts.num_proc * opts.files_per_worker), ("val", opts.num_proc * 2)):
        target = data / split
        if not (target / "_SUCCESS").exists():
            (ts.filter(F.col("split") == split).select(F.col("flux"), F.col("y").cast("int").alias("y"))
             .repartition(nfiles).write.mode("overwrite").parquet(f"file://{target}"))
    train_counts = np.array([counts.get(("train", i), 0) for i in range(len(CLASSES))], dtype=float)
    weights = {i: float(train_counts.sum() / (len(CLASSES) * c)) if c else 0.0 for i, c in enumerate(train_counts)}
    test = ts.filter(F.col("split") == "test").select("id", "flux", "y").toPandas()
    return {"n": n, "class_counts_train": train_counts.astype(int).tolist(), "class_weight": weights,
            "preprocess_ids": pids, "test": test}


def run_train(spark, warehouse: str, config: dict[str, Any], arch: str | None = None, num_proc: int | None = None,
              epochs: int | None = None, resume: bool = False) -> dict[str, Any]:
    """Train a model from ``W/trainset``; returns the run summary (also in ``W/runs``)."""
    import horovod.spark
    import tensorflow as tf

    from .hvd_worker import train_worker

    t0 = time.time()
    wh = Warehouse(warehouse, spark)
    if not is_local(wh.root):
        raise ModelError("the train job keeps models and checkpoints on a shared POSIX path: use a local or mounted --warehouse")
    models_dir = Path(local_path(wh.root)) / "models"
    settings = PreprocessSettings.from_config(config["preprocess"])
    run_id = new_run_id()
    if resume:
        vdir = _unfinished(models_dir)
        if vdir is None:
            raise ModelError(f"--resume: no unfinished training under {models_dir}")
        saved = json.loads((vdir / "checkpoints" / "state.json").read_text())["spec"]
        opts = TrainOptions(**{k: saved[k] for k in TrainOptions.__dataclass_fields__ if k in saved})
        opts.epochs = epochs or opts.epochs
        log.info("resuming %s from its last checkpoint", vdir.name)
    else:
        opts = TrainOptions.from_config(config["train"], arch=arch, num_proc=num_proc, epochs=epochs)
        vdir = models_dir / f"{run_id}-{opts.arch}"
    (vdir / "checkpoints").mkdir(parents=True, exist_ok=True)
    spark.sparkContext.setJobDescription(f"train {vdir.name}: prepare data")
    data = prepare_data(spark, wh, vdir, opts)
    if data["preprocess_ids"] != [settings.fingerprint()]:
        raise ModelError(f"trainset preprocess_id {data['preprocess_ids']} != configured {settings.fingerprint()}")
    spec = {**asdict(opts), "classes": list(CLASSES), "n_inputs": settings.n_points,
            "train_urls": sorted(f"file://{p}" for p in glob.glob(str(vdir / "_data/train/*.parquet"))),
            "val_urls": sorted(f"file://{p}" for p in glob.glob(str(vdir / "_data/val/*.parquet"))),
            "n_train": data["n"]["train"], "n_val": data["n"]["val"], "class_weight": data["class_weight"],
            "checkpoint_dir": str(vdir / "checkpoints"), "model_path": str(vdir / MODEL_FILE), "resume": resume}
    log.info("train %s: %s on %d workers, train %d / val %d / test %d rows, class weights %s",
             vdir.name, opts.arch, opts.num_proc, data["n"]["train"], data["n"]["val"], data["n"]["test"],
             {CLASSES[k]: round(v, 3) for k, v in data["class_weight"].items()})
    spark.sparkContext.setJobDescription(f"train {vdir.name}: horovod x{opts.num_proc}")
    t_fit = time.time()
    with open(vdir / "train.log", "a") as worker_log:  # the workers' Keras output, per rank
        log.info("worker output: %s", vdir / "train.log")
        # Horovod's background thread negotiates every cycle (1 ms by default): on busy CPUs that
        # polling competes with training; 10 ms took the 2-worker speed-up from 1.39x to 1.51x here.
        # An explicit HOROVOD_CYCLE_TIME in the environment wins.
        env = {"HOROVOD_CYCLE_TIME": str(opts.cycle_time_ms), **os.environ}
        results = sorted(horovod.spark.run(train_worker, args=(spec,), num_proc=opts.num_proc, use_gloo=True,
                                           verbose=1, start_timeout=600, stdout=worker_log, stderr=worker_log,
                                           env=env),
                         key=lambda r: r["rank"])
    hist = results[0]["history"]
    for e, (l, vl) in enumerate(zip(hist.get("loss", []), hist.get("val_loss", [])), 1):
        log.info("epoch %d: loss %.4f, val_loss %.4f, val_accuracy %.4f", e, l, vl, hist["val_accuracy"][e - 1])
    fit_seconds = time.time() - t_fit
    rank0 = results[0]

    spark.sparkContext.setJobDescription(f"train {vdir.name}: evaluate")
    model = tf.keras.models.load_model(vdir / MODEL_FILE, compile=False, safe_mode=True)
    val = spark.read.parquet(f"file://{vdir / '_data/val'}").toPandas()
    x_val, y_val = np.stack(val["flux"].to_numpy()), val["y"].to_numpy()
    test = data["test"]
    x_test, y_test = np.stack(test["flux"].to_numpy()), test["y"].to_numpy().astype(int)
    p_val = model.predict(x_val, batch_size=1024, verbose=0)
    p_test = model.predict(x_test, batch_size=1024, verbose=0)
    tcfg = config["train"]
    metrics = evaluate(y_val, p_val, y_test, p_test, tolerance=tcfg["threshold_tolerance"],
                       lo=tcfg["threshold_min"], hi=tcfg["threshold_max"])
    metrics.update(epochs_run=rank0["epochs_run"], best_val_loss=rank0["best_val_loss"],
                   fit_seconds=round(fit_seconds, 1), num_proc=opts.num_proc,
                   rows_read_per_rank=[(r["rows_train"], r["rows_val"]) for r in results])
    (vdir / "metrics.json").write_text(json.dumps(metrics, indent=1, default=float))
    np.savez_compressed(vdir / "test_predictions.npz", id=test["id"].to_numpy().astype(str), y=y_test, proba=p_test)
    plots = plot_all(vdir, rank0["history"], metrics, y_test, p_test)
    ts_fp = wh.manifest()["tables"].get("trainset", [])
    meta = {"version": vdir.name, "arch": opts.arch, "classes": list(CLASSES),
            "grid": {"start": settings.window_start, "stop": settings.window_stop, "n": settings.n_points},
            "preprocess_id": settings.fingerprint(), "metrics": {k: metrics[k] for k in ("test", "thresholds")},
            "thresholds": metrics["thresholds"], "trainset_fingerprint": ",".join(ts_fp),
            "created": utc_now(), "versions": software_versions(), "git_commit": git_commit(),
            "training": {**asdict(opts), "history": rank0["history"], "class_weight": data["class_weight"],
                         "n": data["n"]}, "plots": plots}
    write_meta(vdir, meta)
    log.info("test metrics of %s:\n%s", vdir.name, summary_table(metrics))
    summary = {"job": "train", "run_id": run_id, "started": None, "finished": utc_now(), "status": "ok",
               "inputs": {"warehouse": wh.root, "arch": opts.arch, "num_proc": opts.num_proc,
                          "epochs": opts.epochs, "resume": resume},
               "model_dir": str(vdir), "version": vdir.name, "n": data["n"], "epochs_run": rank0["epochs_run"],
               "accuracy": metrics["test"]["accuracy"], "macro_f1": metrics["test"]["macro_f1"],
               "weights_sha256": [r["weights_sha256"] for r in results],
               "seconds": round(time.time() - t0, 1), "fit_seconds": round(fit_seconds, 1)}
    summary["summary_path"] = wh.write_summary(summary)
    return summary
