"""Ingest a corpus of bad files mixed with good ones, at volume, and account for every file.

Builds every kind of ``tests/badfiles.py`` (bad files and awkward-but-valid ones) plus the good
real files, then ``--copies`` more names of each (hard links; symbolic links and directories made
again), runs the ingest job in this process (local mode), checks each file's outcome against the
kind's expected reason, and prints: kinds tried, files, ingested, rejected per reason, lost
(``seen - ingested - rejected - skipped``, must be 0), wrong outcomes (must be 0), and the peak
memory of the driver JVM and the Python processes (sampled with psutil over the process tree).

    .venv/bin/python bench/badinput.py [--copies 20] [--master 'local[2]'] [--work DIR]

Exit status 1 when a file is lost or gets another outcome than its kind's.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "lib"))
sys.path.insert(0, str(ROOT / "tests"))
from badfiles import KINDS, TEST_MAX_BYTES, build_corpus, copy_good, replicate  # noqa: E402


class PeakMemory:
    """Sample the memory of this process and all its descendants (JVM, Python workers) in a thread.

    Two sums are kept: RSS (what ``top`` shows; pages shared by forked Python workers counted in
    each) and PSS (shared pages split between the processes sharing them: the memory really used).
    """

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.peak = {"rss": 0, "pss": 0, "jvm_pss": 0, "python_pss": 0, "processes": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        rss = jvm = python = 0
        procs = [me, *me.children(recursive=True)]
        for p in procs:
            try:
                info = p.memory_full_info()
                name = p.name()
            except psutil.Error:
                continue
            rss += info.rss
            if name.startswith("java"):
                jvm += info.pss
            else:
                python += info.pss
        for key, value in (("rss", rss), ("pss", jvm + python), ("jvm_pss", jvm), ("python_pss", python),
                           ("processes", len(procs))):
            self.peak[key] = max(self.peak[key], value)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            time.sleep(self.interval)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--copies", type=int, default=20, help="extra names (hard links) of every file (default 20)")
    ap.add_argument("--master", default="local[2]", help="Spark master (default local[2])")
    ap.add_argument("--work", default=None, help="work directory (default: a temporary one, removed)")
    ap.add_argument("--paths-per-task", type=int, default=200, help="ingest.paths_per_task (default 200)")
    a = ap.parse_args(argv)

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from spectraldl.config import load_config
    from spectraldl.ingest import run_ingest
    from spectraldl.session import get_spark, setup_logging
    from spectraldl.warehouse import Warehouse

    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="spectraldl-badinput-"))
    arc, wh = work / "archive", work / "warehouse"
    if arc.exists() or wh.exists():
        shutil.rmtree(arc, ignore_errors=True)
        shutil.rmtree(wh, ignore_errors=True)
    t0 = time.time()
    base = copy_good(arc / "base" / "good") + build_corpus(arc / "base" / "bad")
    cases = list(base)
    for i in range(a.copies):
        cases += replicate(base, arc, i)
    expected = {str(c.path): c.reason for c in cases}
    kind_of = {str(c.path): c.kind for c in cases}
    build_s = time.time() - t0

    setup_logging("WARNING")
    cfg = load_config("local", overrides=[f"io.max_bytes={TEST_MAX_BYTES}",
                                          f"ingest.paths_per_task={a.paths_per_task}"])
    with PeakMemory() as mem:
        spark = get_spark("spectraldl-bench-badinput", cfg, master=a.master)
        t1 = time.time()
        s = run_ingest(spark, str(arc), str(wh), cfg)
        ingest_s = time.time() - t1
        w = Warehouse(str(wh))
        ok = set(w.read_table(spark, "spectra").select("source_path").toPandas()["source_path"])
        rej = dict(w.read_table(spark, "rejects").select("source_path", "reason").toPandas().values.tolist())
    spark.stop()

    got = {**{p: None for p in ok}, **rej}
    lost = s["seen"] - s["ingested"] - s["rejected"] - s["skipped"]
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    wrong = Counter((kind_of[p], expected[p], got[p]) for p in expected if p in got and got[p] != expected[p])
    bad_kinds = sum(k.reason is not None for k in KINDS.values())

    print(f"kinds tried       {len(KINDS)} ({bad_kinds} bad, {len(KINDS) - bad_kinds} valid edge cases) "
          f"+ {sum(c.kind.startswith('good:') for c in base)} good real files")
    print(f"files             {len(expected)} ({len(base)} built, x{a.copies + 1} names; corpus built in {build_s:.1f} s)")
    print(f"seen              {s['seen']}  (skipped {s['skipped']})")
    print(f"ingested          {s['ingested']}  (expected {sum(r is None for r in expected.values())})")
    print(f"rejected          {s['rejected']}")
    for reason, n in s["rejected_by_reason"].items():
        want = sum(r == reason for r in expected.values())
        print(f"  {reason:22s} {n:6d}" + ("" if n == want else f"   (expected {want})"))
    print(f"lost              {lost}  (seen - ingested - rejected - skipped)")
    print(f"not in a table    {len(missing)}; unexpected paths {len(extra)}")
    print(f"wrong outcome     {sum(wrong.values())}" + "".join(f"\n  {k}: want {e}, got {g} x{n}" for (k, e, g), n in wrong.items()))
    print(f"ingest time       {ingest_s:.1f} s ({s['seen'] / ingest_s:.0f} files/s, parse {s.get('parse_seconds')} s), master {a.master}")
    pk = mem.peak
    print(f"peak memory       {mib(pk['pss'])} PSS (driver JVM {mib(pk['jvm_pss'])}, Python driver + workers "
          f"{mib(pk['python_pss'])}); RSS sum {mib(pk['rss'])}; up to {pk['processes']} processes")
    if not a.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if lost == 0 and not missing and not extra and not wrong else 1


if __name__ == "__main__":
    sys.exit(main())
