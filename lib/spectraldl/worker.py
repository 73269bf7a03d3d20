"""Set-up of the Python worker processes that run spectraldl's Spark tasks.

PySpark's worker calls :func:`importlib.invalidate_caches` at the start of *every* task. On Python
3.10 and 3.11 that makes each ``zipimporter`` on ``sys.path`` re-read its archive's directory
(CPython issue gh-103200, fixed in 3.12; Spark works around it only from SPARK-54744, after 3.5).
A pip-installed PySpark puts ``pyspark.zip``, the py4j zip and the 15 MB ``spark-core`` jar on
the workers' path, so every task paid 50-100 ms before running a line of ours: on 2 cores that
was a third of a 20,000-file ingest. :func:`prepare_worker` makes the invalidation re-read an
archive only when the file changed (its size, mtime or inode), which is what invalidation is for.

Every task body of the package calls :func:`prepare_worker` first. Workers are reused across
tasks, so the first task of a worker pays once and the others start at once; the call is
idempotent and costs a few microseconds after the first.
"""
from __future__ import annotations

import os
import sys
import zipimport

_MARK = "_spectraldl_lazy"


def _archive_stamp(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


def prepare_worker() -> None:
    """Make ``zipimporter.invalidate_caches`` skip archives that did not change (Python < 3.12)."""
    if sys.version_info >= (3, 12):
        return
    current = zipimport.zipimporter.invalidate_caches
    if getattr(current, _MARK, False):
        return

    def invalidate_caches(self) -> None:
        stamp = _archive_stamp(self.archive)
        if stamp is not None and self.__dict__.get("_spectraldl_stamp") == stamp:
            return  # the archive is the one whose directory this importer holds
        current(self)
        self._spectraldl_stamp = stamp

    setattr(invalidate_caches, _MARK, True)
    zipimport.zipimporter.invalidate_caches = invalidate_caches
    # The importers in use hold a current directory (PySpark's worker has just invalidated them
    # before this task; a daemon has just started): stamp them, or their first patched
    # invalidation would read every archive once more.
    for importer in list(sys.path_importer_cache.values()):
        if isinstance(importer, zipimport.zipimporter):
            importer._spectraldl_stamp = _archive_stamp(importer.archive)
