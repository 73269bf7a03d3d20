"""Horovod on Spark: 2 Gloo workers on a tiny training set; rank 0's weights saved; metrics honest."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from spectraldl.config import load_config
from spectraldl.models import CLASSES
from spectraldl.preprocess import DEFAULT_SETTINGS
from spectraldl.warehouse import Warehouse

TRAINSET_SCHEMA = ("id string, source_path string, object string, group string, label int, label_name string, "
                   "flux array<float>, split string, preprocess_id string")


def toy_vector(rng, code):
    x = np.linspace(-1, 1, 140)
    base = rng.normal(0, 0.15, 140)
    if code == 0:
        base += 2.5 * np.exp(-0.5 * (x / 0.05) ** 2)
    elif code == 1:
        base -= 1.5 * np.exp(-0.5 * (x / 0.08) ** 2)
    else:
        base += 2.0 * (np.exp(-0.5 * ((x - 0.06) / 0.03) ** 2) + np.exp(-0.5 * ((x + 0.06) / 0.03) ** 2))
    return ((base - base.mean()) / base.std()).astype(np.float32)


def make_trainset(spark, wh_root, n=360, seed=1, unbalanced=False, shuffled=False):
    """Toy rows, 6 per star, stars in train/val/test 3:1:1; ``unbalanced``: the training split holds
    the classes 1:4:1 (the others stay 1:1:1), so class weights from its counts are not uniform."""
    rng = np.random.default_rng(seed)
    rows = []
    names = {0: "emission", 1: "absorption", 3: "double_peak"}
    for i in range(n):
        star = i // 6
        split = ("train", "train", "train", "val", "test")[star % 5]
        code = (0, 1, 1, 3, 1, 1)[i % 6] if unbalanced and split == "train" else (0, 1, 3)[i % 3]
        rows.append((f"s{i}", f"/x/s{i}.fits", f"STAR {star}", f"STAR {star}", code, names[code],
                     toy_vector(rng, code).tolist(), split, DEFAULT_SETTINGS.fingerprint()))
    w = Warehouse(str(wh_root))
    if shuffled:   # the same rows written in another order, in several files
        order = np.random.default_rng(99).permutation(len(rows))
        spark.createDataFrame([rows[i] for i in order], TRAINSET_SCHEMA).repartition(3).write.parquet(
            w.uri("trainset", "run-toy"))
    else:
        spark.createDataFrame(rows, TRAINSET_SCHEMA).coalesce(1).write.parquet(w.uri("trainset", "run-toy"))
    w.commit({"trainset": ["run-toy"]}, {"job": "test", "run_id": "toy"})
    return rows


@pytest.fixture(scope="module")
def trained(spark, tmp_path_factory):
    from spectraldl.train import run_train
    wh = tmp_path_factory.mktemp("wh-train")
    make_trainset(spark, wh, unbalanced=True)
    cfg = load_config("local", overrides=["train.threads=1", "train.warmup_epochs=2", "train.batch_size=32"])
    summary = run_train(spark, str(wh), cfg, arch="mlp", num_proc=2, epochs=4)
    return wh, cfg, summary


def test_two_workers_rank0_weights_saved(trained):
    import tensorflow as tf
    wh, cfg, s = trained
    assert len(s["weights_sha256"]) == 2                       # both ranks finished
    model = tf.keras.models.load_model(f"{s['model_dir']}/model.keras", compile=False)
    digest = hashlib.sha256(b"".join(w.tobytes() for w in model.get_weights())).hexdigest()
    assert digest == s["weights_sha256"][0]                     # the saved weights are rank 0's
    metrics = json.loads(open(f"{s['model_dir']}/metrics.json").read())
    assert [sum(r[0] for r in metrics["rows_read_per_rank"]), sum(r[1] for r in metrics["rows_read_per_rank"])] == \
        [s["n"]["train"], s["n"]["val"]]
    assert all(r[0] > 0 for r in metrics["rows_read_per_rank"])  # every worker read its shard


def test_metrics_agree_with_recomputed_predictions(spark, trained):
    from spectraldl.artifact import load_model
    wh, cfg, s = trained
    model, meta = load_model(s["model_dir"])
    assert meta["classes"] == list(CLASSES) and meta["preprocess_id"] == DEFAULT_SETTINGS.fingerprint()
    test = Warehouse(str(wh)).read_table(spark, "trainset").filter("split = 'test'").toPandas()
    x = np.stack(test.flux.to_numpy())
    y = test.label.map({0: 0, 1: 1, 3: 2}).to_numpy()
    pred = model.predict(x, verbose=0).argmax(1)
    cm = np.zeros((3, 3), int)
    np.add.at(cm, (y, pred), 1)
    assert meta["metrics"]["test"]["confusion_matrix"] == cm.tolist()
    assert meta["metrics"]["test"]["accuracy"] == pytest.approx((pred == y).mean())
    assert meta["metrics"]["test"]["accuracy"] > 0.9              # the toy classes are easy
    for f in ("confusion_matrix.png", "training_curves.png", "pr_curves.png"):
        assert (wh / "models" / s["version"] / f).stat().st_size > 5000


def _sha(model) -> str:
    return hashlib.sha256(b"".join(w.tobytes() for w in model.get_weights())).hexdigest()


def test_horovod_synchronisation(spark, trained):
    """Each piece of the data-parallel recipe, seen in what every rank reports; each assertion
    fails when its piece is removed from spectraldl.hvd_worker."""
    from pathlib import Path

    from spectraldl.models import build_model
    wh, cfg, s = trained
    r0, r1 = s["ranks"]
    vdir = Path(s["model_dir"])
    # two different shards, together the training split
    assert r0["rows_train"] > 0 and r1["rows_train"] > 0 and r0["rows_train"] + r1["rows_train"] == s["n"]["train"]

    # hvd.DistributedOptimizer (gradients averaged) and the broadcast of rank 0's initial state
    # (each rank draws its own initial weights): both ranks end with one model, rank 0's last checkpoint
    assert r0["last_weights_sha256"] == r1["last_weights_sha256"]
    state = json.loads((vdir / "checkpoints/state.json").read_text())
    last = build_model("mlp", 140, 3)
    last.load_weights(vdir / "checkpoints" / state["last_weights"])
    assert _sha(last) == r0["last_weights_sha256"]
    assert state["epoch"] == len(r0["epoch_log"]["loss"]) == 4

    # the learning rate: base x workers, reached by a linear warm-up over train.warmup_epochs = 2
    base, size = cfg["train"]["learning_rate"], 2
    expected_lr = [base * size / size * (1 + (e + 1) * (size - 1) / 2) for e in range(2)] + [base * size] * 2
    assert expected_lr == pytest.approx([1.5 * base, 2 * base, 2 * base, 2 * base])
    for r in (r0, r1):
        assert r["epoch_log"]["lr"] == pytest.approx(expected_lr, rel=1e-6)

    # hvd.callbacks.MetricAverageCallback: every rank's val_loss / val_accuracy is the mean over the
    # ranks; with shards of equal size that is the value on the whole validation split
    assert r0["rows_val"] == r1["rows_val"] and r0["rows_val"] + r1["rows_val"] == s["n"]["val"]
    assert r0["epoch_log"]["val_loss"] == r1["epoch_log"]["val_loss"]
    val = spark.read.parquet(f"file://{vdir / '_data/val'}").toPandas()
    x, y = np.stack(val["flux"].to_numpy()), val["y"].to_numpy().astype(int)
    last.compile(loss="categorical_crossentropy", metrics=["accuracy"])
    whole_loss, whole_acc = last.evaluate(x, np.eye(3)[y], batch_size=32, verbose=0)
    assert r0["epoch_log"]["val_loss"][-1] == pytest.approx(whole_loss, rel=1e-4)
    assert r0["epoch_log"]["val_accuracy"][-1] == pytest.approx(whole_acc, abs=1e-6)

    # the class weights: n_train / (3 x n_train of the class), from the training split's counts
    # (1:4:1 here, while validation and test are 1:1:1), used by every rank
    train = Warehouse(str(wh)).read_table(spark, "trainset").filter("split = 'train'").toPandas()
    counts = train["label"].map({0: 0, 1: 1, 3: 2}).value_counts().sort_index().to_numpy()
    expected = {i: len(train) / (3 * c) for i, c in enumerate(counts)}
    assert expected == pytest.approx({0: 2.0, 1: 0.5, 2: 2.0})
    meta = json.loads((vdir / "model.json").read_text())
    assert {int(k): v for k, v in meta["training"]["class_weight"].items()} == pytest.approx(expected)
    for r in (r0, r1):
        assert {int(k): v for k, v in r["class_weight"].items()} == pytest.approx(expected)


def test_a_rerun_gives_the_same_weights(spark, trained, tmp_path):
    """Seeds, deterministic kernels, shards sorted by id: training again on the same training set,
    here written in another row order and into other files, gives rank 0 and rank 1 the same
    weights bit for bit (so scripts/train_default_model.sh reproduces the shipped model)."""
    from spectraldl.train import run_train
    wh, cfg, s = trained
    make_trainset(spark, tmp_path / "wh", unbalanced=True, shuffled=True)
    again = run_train(spark, str(tmp_path / "wh"), cfg, arch="mlp", num_proc=2, epochs=4)
    assert again["weights_sha256"] == s["weights_sha256"]
    assert [r["last_weights_sha256"] for r in again["ranks"]] == [r["last_weights_sha256"] for r in s["ranks"]]


def test_kill_and_resume(spark, tmp_path):
    """SIGKILL the train job after its second checkpoint; --resume finishes the same version."""
    import os
    import signal
    import subprocess
    import time

    from conftest import ROOT
    wh = tmp_path / "wh"
    make_trainset(spark, wh, n=240, seed=2)
    args = [str(ROOT / "spark-submit.sh"), "--master", "local[2]", "--conf", "train.threads=1",
            "--conf", "train.patience=100", "train", "--warehouse", str(wh), "--arch", "mlp",
            "--num-proc", "2", "--epochs", "8"]
    log = open(tmp_path / "first.log", "w")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    state = None
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        states = list((wh / "models").glob("*/checkpoints/state.json"))
        if states:
            try:
                state = json.loads(states[0].read_text())
            except ValueError:
                state = None
            if state and state["epoch"] >= 2:
                break
        time.sleep(0.2)
    assert state and state["epoch"] >= 2, open(tmp_path / "first.log").read()[-3000:]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    vdir = states[0].parent.parent
    assert not (vdir / "model.json").exists()                      # killed: not finished
    done = subprocess.run(args + ["--resume"], capture_output=True, text=True, timeout=400)
    worker_log = (vdir / "train.log").read_text() if (vdir / "train.log").exists() else ""
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:] + "\nworkers:\n" + worker_log[-4000:]
    meta = json.loads((vdir / "model.json").read_text())            # the same version completed
    hist = meta["training"]["history"]["loss"]
    assert len(hist) == 8 and json.loads(states[0].read_text())["epoch"] == 8
    # spark-submit merges the Python driver's stderr into stdout: the summary is the last line
    assert "test accuracy" in done.stdout.strip().splitlines()[-1]


def test_checkpoint_state_survives_a_kill_mid_write(tmp_path):
    """A kill during a weights write leaves state.json naming the previous, complete files."""
    from spectraldl.hvd_worker import _State

    class Model:
        def __init__(self, payload, die=False):
            self.payload, self.die = payload, die

        def save_weights(self, path):
            with open(path, "wb") as fh:
                fh.write(self.payload[: len(self.payload) // 2] if self.die else self.payload)
            if self.die:
                raise KeyboardInterrupt("killed mid-write")

    store = _State(str(tmp_path))
    store.save_weights(Model(b"epoch-1 weights"), "epoch-0001.weights.h5")
    store.save({"epoch": 1, "last_weights": "epoch-0001.weights.h5", "best_weights": "epoch-0001.weights.h5"})
    with pytest.raises(KeyboardInterrupt):
        store.save_weights(Model(b"epoch-2 weights", die=True), "epoch-0002.weights.h5")
    state = store.load()
    assert state["epoch"] == 1
    assert open(store.weights_path(state["last_weights"]), "rb").read() == b"epoch-1 weights"
    assert not (tmp_path / "epoch-0002.weights.h5").exists()      # only its temporary was half-written
    store.save_weights(Model(b"epoch-2 weights"), "epoch-0002.weights.h5")
    store.save({"epoch": 2, "last_weights": "epoch-0002.weights.h5", "best_weights": "epoch-0001.weights.h5"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0001.weights.h5", "epoch-0002.weights.h5",
                                                          "state.json"]   # the stale temporary is gone


def test_checkpoint_of_the_fixed_name_layout_still_resumes(tmp_path):
    """A state.json written before per-epoch weight files names no files: the old names are used."""
    from spectraldl.hvd_worker import _State
    (tmp_path / "last.weights.h5").write_bytes(b"last")
    (tmp_path / "best.weights.h5").write_bytes(b"best")
    (tmp_path / "state.json").write_text(json.dumps({"epoch": 3, "best": 0.1, "wait": 0, "history": {}}))
    state = _State(str(tmp_path)).load()
    assert (state["epoch"], state["last_weights"], state["best_weights"]) == (3, "last.weights.h5", "best.weights.h5")
    (tmp_path / "best.weights.h5").unlink()
    assert _State(str(tmp_path)).load().get("best_weights") is None
