"""Data-parallel speed-up of the train job: samples/s with 1 and with 2 Horovod workers.

The same training set (13,000 spectra by default: a toy set with the thesis' class proportions,
or ``--warehouse W`` with a real ``trainset`` table) is trained for a few epochs with 1 and then
2 workers, in one run, each worker limited to one intra-op and one inter-op thread so the
comparison measures data parallelism, not thread parallelism. Samples/s come from the workers'
own epoch timings (the first epoch, which fills the caches, is left out).

    .venv/bin/python bench/train.py [--n 13000] [--epochs 4] [--arch cnn] [--batch-size 64,256]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "lib"))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

from spectraldl.config import load_config  # noqa: E402
from spectraldl.session import get_spark, setup_logging  # noqa: E402
from spectraldl.train import run_train  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=13000)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--arch", default="cnn")
    ap.add_argument("--batch-size", default="64,256",
                    help="per-worker batch sizes, each measured with 1 and 2 workers (default 64 = train.batch_size)")
    ap.add_argument("--warehouse", default=None, help="use this warehouse's trainset instead of a toy one")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override, e.g. train.compression=\"fp16\"")
    args = ap.parse_args()
    setup_logging("WARNING")
    base = ["train.threads=1", "train.patience=1000"] + args.set
    spark = get_spark("bench-train", load_config("local", overrides=base), master="local[2]")
    tmp = Path(tempfile.mkdtemp(prefix="bench-train-"))
    try:
        if args.warehouse:
            wh = args.warehouse
        else:
            from test_train import make_trainset
            wh = str(tmp / "wh")
            make_trainset(spark, wh, n=args.n)
        for batch in (int(b) for b in args.batch_size.split(",")):
            cfg = load_config("local", overrides=base + [f"train.batch_size={batch}"])
            rates = {}
            for n in (1, 2):
                s = run_train(spark, wh, cfg, arch=args.arch, num_proc=n, epochs=args.epochs)
                meta = json.loads(Path(s["model_dir"], "model.json").read_text())
                secs = meta["training"]["history"]["epoch_seconds"][1:] or meta["training"]["history"]["epoch_seconds"]
                epoch = statistics.median(secs)
                rates[n] = s["n"]["train"] / epoch
                print(f"batch {batch}, {n} worker(s): {rates[n]:.0f} samples/s, epoch {epoch:.1f} s for "
                      f"{s['n']['train']} training spectra (+ validation), median of {len(secs)} epochs", flush=True)
            print(f"batch {batch} per worker: speed-up 2 vs 1 worker {rates[2] / rates[1]:.2f}x (target >= 1.6; one "
                  f"intra-op and one inter-op thread per worker); epoch of 13,000 spectra with 2 workers "
                  f"{13000 / rates[2]:.1f} s ({args.arch})", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        spark.stop()


if __name__ == "__main__":
    main()
