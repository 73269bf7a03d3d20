"""The train job's plan: trainset -> Parquet shards -> Horovod on Spark -> evaluated model directory.

1. the ``trainset`` table's splits are written as Parquet under ``W/models/<version>/_data``
   (the training split in ``num_proc x files_per_worker`` files, so petastorm's row-group
   sharding gives every worker rows; sorted by id and dealt round robin, so the same training set
   gives the same shards and, with the workers' seeds and deterministic kernels, the same model);
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
from .hvd_worker import WorkerSpec, train_worker
from .lifecycle import JobRun
from .models import ARCHS, CLASSES, CODE_TO_INDEX
from .preprocess import PreprocessSettings
from .warehouse import is_local, local_path, utc_now

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


def prepare_data(run: JobRun, vdir: Path, opts: TrainOptions) -> dict[str, Any]:
    """Write the splits for the workers; return counts, class weights and the test rows.

    The class weights are ``n_train / (n_classes x n_train_of_class)`` from the training
    split's counts (0 for a class absent from it)."""
    from pyspark.sql import functions as F
    if not run.table_dirs("trainset"):
        raise ModelError(f"warehouse {run.wh.root} has no training set: run the trainset job first")
    ts = run.read_table("trainset")
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
            rows = ts.filter(F.col("split") == split).select("id", F.col("flux"), F.col("y").cast("int").alias("y"))
            _shards(run.spark, rows, nfiles).write.mode("overwrite").parquet(f"file://{target}")
    train_counts = np.array([counts.get(("train", i), 0) for i in range(len(CLASSES))], dtype=float)
    weights = {i: float(train_counts.sum() / (len(CLASSES) * c)) if c else 0.0 for i, c in enumerate(train_counts)}
    test = ts.filter(F.col("split") == "test").select("id", "flux", "y").toPandas()
    return {"n": n, "class_counts_train": train_counts.astype(int).tolist(), "class_weight": weights,
            "preprocess_ids": pids, "test": test}


def _shards(spark, rows, nfiles: int):
    """``rows`` (with a unique ``id``) as ``nfiles`` partitions, the same whatever order the training
    set was written in: sorted by id, row ``i`` in partition ``i % nfiles`` (so they differ by at
    most one row), in id order within each. Workers then read the same rows in the same order on
    every run, which makes training reproducible."""
    schema = rows.select("flux", "y").schema

    def ordered(it):
        return [r for _, (_, r) in sorted(it, key=lambda kv: kv[1][0])]

    rdd = (rows.orderBy("id").select("flux", "y").rdd.zipWithIndex()
           .map(lambda t: (t[1] % nfiles, (t[1], t[0]))).partitionBy(nfiles, lambda k: k).mapPartitions(ordered))
    return spark.createDataFrame(rdd, schema)


def run_train(spark, warehouse: str, config: dict[str, Any], arch: str | None = None, num_proc: int | None = None,
              epochs: int | None = None, resume: bool = False, break_lock: bool = False,
              parent: JobRun | None = None) -> dict[str, Any]:
    """Train a model from ``W/trainset``; returns the run summary (also in ``W/runs``).

    The run reads the training set of the manifest it started from, without the lock, and takes
    the lock only to publish the model version (``model.json`` makes a version complete);
    ``parent``: the run this is a stage of (the pipeline), whose lock covers it.
    """
    import tensorflow as tf

    with JobRun(spark, "train", warehouse, config, publishes=True, break_lock=break_lock, parent=parent,
                inputs={"arch": arch, "num_proc": num_proc, "epochs": epochs, "resume": resume}) as run:
        if not is_local(run.wh.root):
            raise ModelError("the train job keeps models and checkpoints on a shared POSIX path: "
                             "use a local or mounted --warehouse")
        settings = PreprocessSettings.from_config(config["preprocess"])
        vdir, opts = _version_dir(Path(local_path(run.wh.root)) / "models", config, run.run_id, arch, num_proc,
                                  epochs, resume)
        run.summary["inputs"].update(arch=opts.arch, num_proc=opts.num_proc, epochs=opts.epochs)
        run.summary.update(model_dir=str(vdir), version=vdir.name)
        (vdir / "checkpoints").mkdir(parents=True, exist_ok=True)
        run.describe(f"prepare data for {vdir.name}")
        data = prepare_data(run, vdir, opts)
        if data["preprocess_ids"] != [settings.fingerprint()]:
            raise ModelError(f"trainset preprocess_id {data['preprocess_ids']} != configured {settings.fingerprint()}")
        run.summary["n"] = data["n"]
        spec = WorkerSpec(**{k: v for k, v in asdict(opts).items() if k in WorkerSpec.__dataclass_fields__},
                          classes=list(CLASSES), n_inputs=settings.n_points,
                          train_urls=sorted(f"file://{p}" for p in glob.glob(str(vdir / "_data/train/*.parquet"))),
                          val_urls=sorted(f"file://{p}" for p in glob.glob(str(vdir / "_data/val/*.parquet"))),
                          n_train=data["n"]["train"], n_val=data["n"]["val"], class_weight=data["class_weight"],
                          checkpoint_dir=str(vdir / "checkpoints"), model_path=str(vdir / MODEL_FILE), resume=resume)
        run.describe(f"horovod x{opts.num_proc} for {vdir.name}")
        t_fit = time.time()
        results = _fit(spec, opts, vdir)
        fit_seconds = time.time() - t_fit
        rank0 = results[0]
        run.describe(f"evaluate {vdir.name}")
        model = tf.keras.models.load_model(vdir / MODEL_FILE, compile=False, safe_mode=True)
        metrics = _evaluate(run, model, vdir, data, config["train"])
        metrics.update(epochs_run=rank0["epochs_run"], best_val_loss=rank0["best_val_loss"],
                       fit_seconds=round(fit_seconds, 1), num_proc=opts.num_proc,
                       rows_read_per_rank=[(r["rows_train"], r["rows_val"]) for r in results])
        (vdir / "metrics.json").write_text(json.dumps(metrics, indent=1, default=float))
        plots = plot_all(vdir, rank0["history"], metrics, data["test_y"], data["test_p"])
        meta = {"version": vdir.name, "arch": opts.arch, "classes": list(CLASSES),
                "grid": {"start": settings.window_start, "stop": settings.window_stop, "n": settings.n_points},
                "preprocess_id": settings.fingerprint(), "metrics": {k: metrics[k] for k in ("test", "thresholds")},
                "thresholds": metrics["thresholds"], "trainset_fingerprint": ",".join(run.table_dirs("trainset")),
                "created": utc_now(), "versions": software_versions(), "git_commit": git_commit(),
                "training": {**asdict(opts), "history": rank0["history"], "class_weight": data["class_weight"],
                             "n": data["n"]}, "plots": plots}
        with run.lock():  # model.json completes the version: published under the warehouse lock
            write_meta(vdir, meta)
        log.info("test metrics of %s:\n%s", vdir.name, summary_table(metrics))
        run.summary.update(epochs_run=rank0["epochs_run"], accuracy=metrics["test"]["accuracy"],
                           macro_f1=metrics["test"]["macro_f1"],
                           weights_sha256=[r["weights_sha256"] for r in results], fit_seconds=round(fit_seconds, 1),
                           ranks=[{k: r[k] for k in ("rank", "rows_train", "rows_val", "last_weights_sha256",
                                                     "epoch_log", "class_weight")} for r in results])
        return run.summary


def _version_dir(models_dir: Path, config: dict[str, Any], run_id: str, arch: str | None, num_proc: int | None,
                 epochs: int | None, resume: bool) -> tuple[Path, TrainOptions]:
    """The model version directory and the training options: a new version, or with ``resume``
    the newest unfinished one with the options saved in its checkpoint."""
    if not resume:
        opts = TrainOptions.from_config(config["train"], arch=arch, num_proc=num_proc, epochs=epochs)
        return models_dir / f"{run_id}-{opts.arch}", opts
    vdir = _unfinished(models_dir)
    if vdir is None:
        raise ModelError(f"--resume: no unfinished training under {models_dir}")
    saved = json.loads((vdir / "checkpoints" / "state.json").read_text())["spec"]
    opts = TrainOptions(**{k: saved[k] for k in TrainOptions.__dataclass_fields__ if k in saved})
    opts.epochs = epochs or opts.epochs
    log.info("resuming %s from its last checkpoint", vdir.name)
    return vdir, opts


def _fit(spec: WorkerSpec, opts: TrainOptions, vdir: Path) -> list[dict[str, Any]]:
    """Run :func:`train_worker` on ``opts.num_proc`` Horovod workers (Gloo); their results by rank."""
    import horovod.spark
    log.info("train %s: %s on %d workers, train %d / val %d rows, class weights %s", vdir.name, opts.arch,
             opts.num_proc, spec.n_train, spec.n_val, {CLASSES[k]: round(v, 3) for k, v in spec.class_weight.items()})
    with open(vdir / "train.log", "a") as worker_log:  # the workers' Keras output, per rank
        log.info("worker output: %s", vdir / "train.log")
        # Horovod's background thread negotiates every cycle (1 ms by default): on busy CPUs that
        # polling competes with training (train.cycle_time_ms; README: bench/train.py).
        # An explicit HOROVOD_CYCLE_TIME in the environment wins.
        env = {"HOROVOD_CYCLE_TIME": str(opts.cycle_time_ms), **os.environ}
        results = sorted(horovod.spark.run(train_worker, args=(spec,), num_proc=opts.num_proc, use_gloo=True,
                                           verbose=1, start_timeout=600, stdout=worker_log, stderr=worker_log,
                                           env=env),
                         key=lambda r: r["rank"])
    hist = results[0]["history"]
    for e, (loss, vl) in enumerate(zip(hist.get("loss", []), hist.get("val_loss", [])), 1):
        log.info("epoch %d: loss %.4f, val_loss %.4f, val_accuracy %.4f", e, loss, vl, hist["val_accuracy"][e - 1])
    return results


def _evaluate(run: JobRun, model, vdir: Path, data: dict[str, Any], tcfg: dict[str, Any]) -> dict[str, Any]:
    """Metrics on the validation (thresholds) and test splits; the test predictions are saved
    beside the model and kept in ``data`` (``test_y``, ``test_p``) for the plots."""
    val = run.spark.read.parquet(f"file://{vdir / '_data/val'}").toPandas()
    x_val, y_val = np.stack(val["flux"].to_numpy()), val["y"].to_numpy()
    test = data["test"]
    x_test, y_test = np.stack(test["flux"].to_numpy()), test["y"].to_numpy().astype(int)
    p_val = model.predict(x_val, batch_size=1024, verbose=0)
    p_test = model.predict(x_test, batch_size=1024, verbose=0)
    np.savez_compressed(vdir / "test_predictions.npz", id=test["id"].to_numpy().astype(str), y=y_test, proba=p_test)
    data.update(test_y=y_test, test_p=p_test)
    return evaluate(y_val, p_val, y_test, p_test, tolerance=tcfg["threshold_tolerance"],
                    lo=tcfg["threshold_min"], hi=tcfg["threshold_max"])


def summary_line(s: dict[str, Any]) -> str:
    """The train job's last log line."""
    return (f"train {s['version']}: {s['epochs_run']} epochs on {s['inputs']['num_proc']} workers, test accuracy "
            f"{s['accuracy']:.4f}, macro F1 {s['macro_f1']:.4f}; model in {s['model_dir']} ({s['seconds']:.0f} s)")
