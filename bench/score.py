"""The score job vs plain batched ``model.predict`` on the same vectors, in one run.

Ingests a hard-linked archive of real LAMOST files (or uses ``--warehouse W``), then times
``run_score`` with ``--rescore`` (local mode, all cores; spectra/s per core) and plain
``model.predict`` over the same vectors loaded into memory (one process, TensorFlow using every
core; reported per core too), and prints the ratio (target >= 0.8).

    .venv/bin/python bench/score.py [--files 20000] [--model default]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "lib"))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

import numpy as np  # noqa: E402

from spectraldl.artifact import load_model, resolve_model  # noqa: E402
from spectraldl.config import load_config  # noqa: E402
from spectraldl.ingest import run_ingest  # noqa: E402
from spectraldl.score import run_score  # noqa: E402
from spectraldl.session import get_spark, setup_logging  # noqa: E402
from spectraldl.warehouse import Warehouse  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--model", default="default")
    ap.add_argument("--warehouse", default=None)
    ap.add_argument("--real", default=str(ROOT.parent / "shared/data/real"))
    args = ap.parse_args()
    setup_logging("WARNING")
    cores = os.cpu_count() or 1
    cfg = load_config("local", overrides=["score.tf_threads=1"])
    spark = get_spark("bench-score", cfg, master=f"local[{cores}]")
    tmp = Path(tempfile.mkdtemp(prefix="bench-score-"))
    try:
        wh = args.warehouse
        if wh is None:
            from ingest import make_archive, real_lrs
            make_archive(tmp / "archive", real_lrs(Path(args.real)), args.files)
            wh = str(tmp / "wh")
            run_ingest(spark, str(tmp / "archive"), wh, cfg)
        model_dir = resolve_model(args.model, os.path.join(wh, "models"))
        spectra = Warehouse(wh).read_table(spark, "spectra").select("flux").toPandas()
        x = np.stack(spectra.flux.to_numpy()).astype(np.float32)
        run_score(spark, wh, cfg, str(model_dir))          # warm-up: workers, TF, caches
        t = time.perf_counter()
        s = run_score(spark, wh, cfg, str(model_dir), rescore=True)
        job = time.perf_counter() - t
        model, _ = load_model(model_dir)
        model.predict(x[:1024], batch_size=1024, verbose=0)
        t = time.perf_counter()
        model.predict(x, batch_size=1024, verbose=0)
        plain = time.perf_counter() - t
        n = len(x)
        job_rate, plain_rate = n / job / cores, n / plain / cores
        print(f"{n} spectra, {cores} cores, model {model_dir.name}")
        print(f"score job (whole run: read, UDF, write, commit): {job_rate:.0f} spectra/s/core ({job:.1f} s)")
        print(f"plain model.predict (vectors in memory):         {plain_rate:.0f} spectra/s/core ({plain:.1f} s)")
        print(f"ratio job / plain: {job_rate / plain_rate:.2f}")
        assert s["scored"] == n
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        spark.stop()


if __name__ == "__main__":
    main()
