"""The Python-worker set-up: zip archives on sys.path are re-read only when they change."""
import os
import sys
import time
import zipfile
import zipimport

import pytest

from spectraldl.worker import prepare_worker

pytestmark = pytest.mark.skipif(sys.version_info >= (3, 12), reason="Python 3.12 fixed gh-103200 itself")


def _write_zip(path, source):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("zmod.py", source)


def test_unchanged_archive_is_not_reread_and_a_changed_one_is(tmp_path, monkeypatch):
    archive = tmp_path / "pkg.zip"
    _write_zip(archive, "VALUE = 1\n")
    prepare_worker()
    prepare_worker()  # idempotent: wrapping twice would still work but cost twice
    importer = zipimport.zipimporter(str(archive))
    reads = []
    real_read = zipimport._read_directory
    monkeypatch.setattr(zipimport, "_read_directory", lambda p: reads.append(p) or real_read(p))

    importer.invalidate_caches()          # first invalidation: read and stamp
    importer.invalidate_caches()          # unchanged: nothing read
    importer.invalidate_caches()
    assert reads == [str(archive)]

    time.sleep(0.01)
    _write_zip(archive, "VALUE = 2\nOTHER = 3\n")
    os.utime(archive, ns=(time.time_ns(), time.time_ns() + 10**9))  # a newer mtime, whatever the clock
    importer.invalidate_caches()          # changed: read again
    assert reads == [str(archive)] * 2
    assert importer.get_source("zmod") == "VALUE = 2\nOTHER = 3\n"   # the new directory is in use


def test_python_tasks_start_fast_after_the_first(spark):
    """Tasks of a reused worker start without re-reading pyspark.zip and the spark-core jar."""
    sc = spark.sparkContext

    def task(it):
        prepare_worker()
        t = time.perf_counter()
        import importlib
        importlib.invalidate_caches()  # what PySpark's worker does before every task
        yield time.perf_counter() - t

    sc.parallelize(range(4), 4).mapPartitions(task).collect()  # every worker prepared
    costs = sc.parallelize(range(8), 8).mapPartitions(task).collect()
    assert max(costs) < 0.005, costs  # unpatched: 20-60 ms per call with the jar on the path


def test_workers_fork_from_the_preloading_daemon(spark):
    """conf/local.toml's ``spark.python.daemon.module``: workers come from spectraldl's daemon,
    with the package's modules already imported and zip invalidation already patched."""
    def probe(_):
        import sys
        import zipimport
        main = sys.modules["__main__"]
        yield (getattr(main, "__file__", ""), "pyarrow.parquet" in sys.modules, "spectraldl.parse" in sys.modules,
               getattr(zipimport.zipimporter.invalidate_caches, "_spectraldl_lazy", False))

    got = set(spark.sparkContext.parallelize(range(4), 4).mapPartitions(probe).collect())
    assert {(f.endswith("spectraldl/daemon.py"), a, b, c) for f, a, b, c in got} == {(True, True, True, True)}
