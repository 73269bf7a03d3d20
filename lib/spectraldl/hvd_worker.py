"""What runs inside each Horovod process: read a shard through petastorm, train, checkpoint.

:func:`train_worker` is handed to ``horovod.spark.run``; everything it needs arrives in one
:class:`WorkerSpec` (plain data: names, numbers and paths). Only rank 0 writes (checkpoints and
the final model).

Data-parallel recipe (Horovod docs): ``hvd.DistributedOptimizer``, the initial state broadcast
from rank 0, the learning rate scaled by the number of workers with a warm-up, metrics averaged
over workers before early stopping reads them.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Any


def _pin_device(hvd) -> str:
    """Use the GPU Spark assigned to this task (``spark.task.resource.gpu.amount``), else the one
    of ``local_rank``; the CPU when there is none."""
    import tensorflow as tf
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "cpu"
    try:
        from horovod.spark.task import get_available_devices
        assigned = get_available_devices()  # Spark's GPU addresses for this task
    except Exception:
        assigned = []
    index = int(assigned[0]) if assigned else hvd.local_rank()
    chosen = gpus[index % len(gpus)]
    tf.config.set_visible_devices(chosen, "GPU")
    tf.config.experimental.set_memory_growth(chosen, True)
    return chosen.name


def read_shard(urls: list[str], rank: int, size: int, n_classes: int, seed: int):
    """This rank's rows of a Parquet dataset through petastorm, as a cached ``tf.data.Dataset``
    of ``(flux, one_hot)`` and its row count."""
    import tensorflow as tf
    from petastorm import make_batch_reader
    from petastorm.tf_utils import make_petastorm_dataset

    reader = make_batch_reader(urls, cur_shard=rank, shard_count=size, num_epochs=1,
                               shuffle_row_groups=False, workers_count=1, seed=seed,
                               schema_fields=["flux", "y"])
    ds = make_petastorm_dataset(reader).unbatch()
    ds = ds.map(lambda r: (r.flux, tf.one_hot(r.y, n_classes)), num_parallel_calls=1).cache()
    n = int(ds.reduce(0, lambda c, _: c + 1).numpy())  # fills the cache, counts the rows
    reader.stop()
    reader.join()
    return ds, n


class _State:
    """Checkpoint bookkeeping of rank 0: ``checkpoints/state.json`` plus the weights files it names.

    A kill can land anywhere, so every write is atomic (a temporary file, then ``os.replace``)
    and each epoch's weights get a new file name: ``state.json`` is replaced last and always
    names files that are complete.  Files no state names any more are removed afterwards.
    """

    def __init__(self, ckpt_dir: str) -> None:
        self.dir = ckpt_dir
        self.path = os.path.join(ckpt_dir, "state.json")

    def load(self) -> dict[str, Any] | None:
        try:
            with open(self.path) as fh:
                state = json.load(fh)
        except FileNotFoundError:
            return None
        # checkpoints of spectraldl before per-epoch files kept fixed names
        state.setdefault("last_weights", "last.weights.h5")
        if "best_weights" not in state and os.path.exists(self.weights_path("best.weights.h5")):
            state["best_weights"] = "best.weights.h5"
        return state

    def weights_path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def save_weights(self, model, name: str) -> None:
        tmp = self.weights_path("tmp-" + name)  # same suffix: Keras picks the format from it
        model.save_weights(tmp)
        os.replace(tmp, self.weights_path(name))

    def save(self, state: dict[str, Any]) -> None:
        tmp = self.path + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        keep = {state.get("last_weights"), state.get("best_weights")}
        for f in os.listdir(self.dir):
            if f.endswith(".h5") and f not in keep:
                try:
                    os.remove(os.path.join(self.dir, f))
                except FileNotFoundError:
                    pass


@dataclass
class WorkerSpec:
    """Everything a Horovod worker needs, built by the driver (:func:`spectraldl.train.run_train`)."""

    arch: str
    classes: list[str]
    n_inputs: int
    train_urls: list[str]
    val_urls: list[str]
    n_train: int
    n_val: int
    class_weight: dict[int, float]
    checkpoint_dir: str
    model_path: str
    resume: bool
    epochs: int
    batch_size: int
    learning_rate: float
    warmup_epochs: int
    patience: int
    min_delta: float
    threads: int
    seed: int
    num_proc: int = 1
    files_per_worker: int = 4
    cycle_time_ms: float = 10.0

    def checkpointed(self) -> dict[str, Any]:
        """The spec as saved with each checkpoint (``--resume`` rebuilds the options from it)."""
        return {k: v for k, v in asdict(self).items() if k != "resume"}


def _datasets(spec: WorkerSpec, hvd, tf, rank: int, size: int):
    """This rank's shards as batched ``tf.data`` sets, checked against the driver's row counts
    across all ranks: ``(train, val, steps per epoch, rows train, rows val)``."""
    n_classes = len(spec.classes)
    train_ds, n_train = read_shard(spec.train_urls, rank, size, n_classes, spec.seed)
    val_ds, n_val = read_shard(spec.val_urls, rank, size, n_classes, spec.seed)
    counts = hvd.allreduce(tf.constant([n_train, n_val], tf.int64), op=hvd.Sum, name="row_counts").numpy()
    if (int(counts[0]), int(counts[1])) != (spec.n_train, spec.n_val) or n_train == 0:
        raise RuntimeError(f"rank {rank}: petastorm read {n_train} train / {n_val} val rows; all ranks read "
                           f"{counts.tolist()}, expected {spec.n_train} / {spec.n_val}")
    steps = max(1, math.ceil(spec.n_train / (spec.batch_size * size)))
    train_ds = train_ds.shuffle(max(n_train, 1), seed=spec.seed + rank, reshuffle_each_iteration=True)
    return (train_ds.repeat().batch(spec.batch_size).prefetch(2), val_ds.batch(spec.batch_size), steps,
            n_train, n_val)


def _checkpoint_callback(tf, spec: WorkerSpec, store: "_State", state: dict[str, Any] | None, rank: int):
    """A Keras callback: early stopping on the (averaged) validation loss, and on rank 0 the
    weights of every epoch and the training state (:class:`_State`)."""
    import numpy as np

    class Checkpoint(tf.keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.history = dict(state["history"]) if state else {}
            self.best = state.get("best") if state else None
            self.wait = state.get("wait", 0) if state else 0
            self.best_weights = state.get("best_weights") if state else None

        def on_epoch_begin(self, epoch, logs=None):
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = dict(logs or {})
            logs["epoch_seconds"] = time.perf_counter() - self._t0  # training + validation of this epoch
            logs["lr"] = float(tf.keras.backend.get_value(self.model.optimizer.learning_rate))  # after warm-up: base x size
            for k, v in logs.items():
                self.history.setdefault(k, []).append(float(v))
            vl = float(logs.get("val_loss", np.inf))
            improved = self.best is None or vl < self.best - spec.min_delta
            if improved:
                self.best, self.wait = vl, 0
            else:
                self.wait += 1
            if rank == 0:
                last = f"epoch-{epoch + 1:04d}.weights.h5"
                store.save_weights(self.model, last)
                if improved:
                    self.best_weights = last
                store.save({"epoch": epoch + 1, "best": self.best, "wait": self.wait,
                            "last_weights": last, "best_weights": self.best_weights,
                            "history": self.history, "spec": spec.checkpointed()})
            if self.wait >= spec.patience:
                self.model.stop_training = True  # same averaged val_loss on every rank: same decision

    return Checkpoint()


def train_worker(spec: WorkerSpec | dict[str, Any]) -> dict[str, Any]:
    """Train on this rank's shard; returns what the driver reports (rank 0: history, weights digest)."""
    import hashlib

    import horovod.tensorflow.keras as hvd
    import tensorflow as tf

    from spectraldl.models import build_model

    spec = spec if isinstance(spec, WorkerSpec) else WorkerSpec(**spec)
    hvd.init()
    rank, size = hvd.rank(), hvd.size()
    if spec.threads:
        tf.config.threading.set_intra_op_parallelism_threads(spec.threads)
        tf.config.threading.set_inter_op_parallelism_threads(spec.threads)
    device = _pin_device(hvd)
    tf.keras.utils.set_random_seed(spec.seed + rank)
    # deterministic kernels: with the seeds above, petastorm's fixed row-group order and Gloo's sum
    # of two ranks, a rerun gives the same weights bit for bit (scripts/train_default_model.sh)
    tf.config.experimental.enable_op_determinism()
    train_ds, val_ds, steps, n_train, n_val = _datasets(spec, hvd, tf, rank, size)

    # each rank draws its own initial weights: only the broadcast from rank 0 makes them one model
    # (rank 0's draw is the run's; tests/test_train.py fails if the broadcast goes)
    model = build_model(spec.arch, spec.n_inputs, len(spec.classes), seed=spec.seed + rank)
    store = _State(spec.checkpoint_dir)
    state = store.load() if spec.resume else None
    initial_epoch = 0
    if state:
        model.load_weights(store.weights_path(state["last_weights"]))
        initial_epoch = state["epoch"]
    scaled_lr = spec.learning_rate * size
    opt = hvd.DistributedOptimizer(tf.keras.optimizers.Adam(learning_rate=scaled_lr))
    model.compile(loss="categorical_crossentropy", optimizer=opt, metrics=["accuracy"])
    ckpt = _checkpoint_callback(tf, spec, store, state, rank)
    callbacks = [
        hvd.callbacks.BroadcastGlobalVariablesCallback(0),
        hvd.callbacks.MetricAverageCallback(),
        hvd.callbacks.LearningRateWarmupCallback(initial_lr=scaled_lr, warmup_epochs=spec.warmup_epochs,
                                                 steps_per_epoch=steps, verbose=0),
        ckpt,
    ]
    if initial_epoch < spec.epochs and ckpt.wait < spec.patience:
        model.fit(train_ds, steps_per_epoch=steps, epochs=spec.epochs, initial_epoch=initial_epoch,
                  validation_data=val_ds, class_weight=spec.class_weight, callbacks=callbacks,
                  verbose=2 if rank == 0 else 0)
    def sha(m) -> str:
        return hashlib.sha256(b"".join(w.tobytes() for w in m.get_weights())).hexdigest()

    last_digest = sha(model)  # every rank's weights after the last epoch: one model if synchronised
    if rank == 0 and ckpt.best_weights:
        model.load_weights(store.weights_path(ckpt.best_weights))  # early stopping keeps the best epoch
    # per-rank facts for the driver (and the synchronisation tests): the shard sizes, the weights
    # after the last epoch, the learning rate and the (averaged) metrics of every epoch as this
    # rank saw them, the class weights it trained with
    out = {"rank": rank, "size": size, "rows_train": n_train, "rows_val": n_val, "device": device,
           "weights_sha256": sha(model), "last_weights_sha256": last_digest,
           "epoch_log": {k: ckpt.history.get(k, []) for k in ("lr", "loss", "val_loss", "val_accuracy")},
           "class_weight": {int(k): float(v) for k, v in spec.class_weight.items()}}
    if rank == 0:
        # an uncompiled copy: the artifact holds weights only (checkpoints hold the training state)
        plain = build_model(spec.arch, spec.n_inputs, len(spec.classes))
        plain.set_weights(model.get_weights())
        plain.save(spec.model_path)
        out.update(history=ckpt.history, best_val_loss=ckpt.best,
                   epochs_run=len(ckpt.history.get("loss", [])))
    return out
