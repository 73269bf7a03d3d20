"""One lifecycle for every job: run id, lock, pinned manifest, staging, progress, commit, summary.

Every job body runs inside a :class:`JobRun`::

    with JobRun(spark, "score", warehouse, config, inputs={...}, writes=True) as run:
        spectra = run.read_table("spectra")          # from the manifest pinned at the start
        ...write to run.staging_uri("scores")...
        run.commit({"scores": dirs}, moves)          # move in, one manifest, cleanup
        run.summary.update(scored=n)
    # the summary is written on success and on failure (status, error, counts so far)

What it does, in order:

* a run id (``YYYYMMDDTHHMMSSZ`` + 6 hex), the Spark UI's address, a start line;
* for a job that writes (``writes=True``), the warehouse lock, unless the job runs inside another
  run (``parent``, the pipeline) that holds it already; then the cleanup of what no retained
  manifest lists (:meth:`Warehouse.garbage_collect` with ``warehouse.retention_hours``);
* the newest manifest, pinned: :meth:`JobRun.read_table` reads what it lists even after another
  job commits, and cleanup keeps those directories for ``warehouse.retention_hours``;
* progress lines from Spark's status tracker (:mod:`spectraldl.progress`);
* :meth:`JobRun.commit`: staged directories moved in, one manifest, cleanup (under the lock);
* on the way out: the run summary in ``W/runs/<job>-<run_id>.json`` with ``status`` ``ok`` or
  ``failed`` (and ``error``), the staging directory removed, the lock released.

Jobs that only read (explore, report, train until it publishes) take no lock; train takes it
around the publication of a model version (:meth:`JobRun.lock`).
"""
from __future__ import annotations

import contextlib
import logging
import math
import time
from typing import Any, Iterator

from .progress import ProgressReporter, spark_ui_line
from .warehouse import Warehouse, move_dirs, new_run_id, utc_now

log = logging.getLogger("spectraldl")


def task_count(n_items: int, per_task: int, parallelism: int, min_waves: int = 1,
               max_waves: int | None = None) -> int:
    """How many Spark tasks a stage over ``n_items`` gets: whole waves of ``parallelism`` tasks
    of about ``per_task`` items each, never more tasks than items.

    Parameters
    ----------
    n_items : int
        Paths, rows or directories the stage works through.
    per_task : int
        Items one task should take (a setting such as ``ingest.paths_per_task``).
    parallelism : int
        Tasks that run at once (``sparkContext.defaultParallelism``).
    min_waves, max_waves : int
        Bounds on the number of waves (``max_waves`` caps small-item stages such as listing).

    Examples
    --------
    >>> task_count(3000, 5000, 2)
    2
    >>> task_count(100_000, 5000, 2)
    20
    >>> task_count(1, 5000, 8)
    1
    >>> task_count(50, 1, 2, max_waves=2)
    4
    """
    if per_task < 1 or parallelism < 1:
        raise ValueError(f"per_task ({per_task}) and parallelism ({parallelism}) must be >= 1")
    waves = max(min_waves, math.ceil(n_items / (per_task * parallelism)))
    if max_waves is not None:
        waves = min(waves, max_waves)
    return max(1, min(n_items, parallelism * waves))


class JobRun:
    """The lifecycle of one job run (a context manager).

    Parameters
    ----------
    spark : SparkSession or None
        None for jobs without Spark work (the summary and lock still apply).
    job : str
        The job's name (``ingest``, ``score``...), used in the summary's file name and the lock.
    warehouse : str
        The warehouse root.
    config : dict
        The run's configuration (``warehouse.*`` and ``logging.progress_seconds`` are read here).
    inputs : dict, optional
        What the run was asked to do, recorded in its summary.
    writes : bool
        Whether the job commits tables (takes the lock and cleans up).
    publishes : bool
        Whether the job only reads but publishes something under the lock at its end (train): it
        refuses to start while another run holds the lock (``break_lock`` removes it), and takes
        the lock in :meth:`lock`.
    break_lock : bool
        Remove another run's lock first (``--break-lock``).
    parent : JobRun, optional
        The run this one is a stage of (the pipeline): its lock covers this run.

    Attributes
    ----------
    run_id : str
    wh : Warehouse
    manifest : dict
        The manifest pinned when the run started.
    summary : dict
        The run summary; jobs add their counts as they go, so a failure records them too.
    """

    def __init__(self, spark, job: str, warehouse: str, config: dict[str, Any], *,
                 inputs: dict[str, Any] | None = None, writes: bool = False, publishes: bool = False,
                 break_lock: bool = False, parent: "JobRun | None" = None) -> None:
        self.spark, self.job, self.config = spark, job, config
        self.writes, self.publishes, self.break_lock, self.parent = writes, publishes, break_lock, parent
        self.run_id = new_run_id()
        force = config["warehouse"]["filesystem"] == "hadoop"
        self.wh = Warehouse(warehouse, spark, force_hadoop=force)
        self.retention_hours = float(config["warehouse"]["retention_hours"])
        self.summary: dict[str, Any] = {"job": job, "run_id": self.run_id,
                                        "started": utc_now(), "status": "running",
                                        "inputs": {**(inputs or {}), "warehouse": self.wh.root}}
        if parent is not None:
            self.summary["parent_run"] = f"{parent.job}-{parent.run_id}"
        self.manifest: dict[str, Any] = {"seq": 0, "tables": {}}
        self._holds_lock = False
        self._t0 = 0.0
        self._progress: ProgressReporter | None = None

    # -- entering and leaving ------------------------------------------------------------------
    def __enter__(self) -> "JobRun":
        self._t0 = time.time()
        log.info("%s %s: start (warehouse %s)", self.job, self.run_id, self.wh.root)
        if self.parent is None and self.spark is not None:
            sc = self.spark.sparkContext
            log.info("%s", spark_ui_line(sc))
            self._progress = ProgressReporter(sc, float(self.config["logging"]["progress_seconds"])).start()
        elif self.parent is not None:
            self._progress = self.parent._progress
        try:
            if self.writes:
                self._take_lock()
                self.wh.garbage_collect(self.retention_hours)
            elif self.publishes and self.parent is None:
                self.wh.check_unlocked(self.break_lock)  # refuse at once, not after hours of work
            self.manifest = self.wh.manifest()
        except BaseException as exc:  # a refused start (a locked warehouse) is a failed run too
            self.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self.summary["manifest_seq"] = self.manifest["seq"]
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc is None:
                if self.summary["status"] == "running":
                    self.summary["status"] = "ok"
            else:
                self.summary.update(status="failed", error=f"{type(exc).__name__}: {exc}")
            self.summary.update(finished=utc_now(), seconds=round(time.time() - self._t0, 3))
            try:
                self.summary["summary_path"] = self.wh.write_summary(self.summary)
            except Exception:  # noqa: BLE001 - the job's own error matters more
                log.exception("%s %s: could not write the run summary", self.job, self.run_id)
                if exc is None:
                    raise
            if self.writes:
                self.wh.fs.delete(self.staging)
        finally:
            if self.parent is None and self._progress is not None:
                self._progress.stop()
            self.describe(None)
            self._release_lock()
        return False

    # -- the lock ------------------------------------------------------------------------------
    def _take_lock(self, break_lock: bool | None = None) -> None:
        if self.parent is not None:
            if not self.parent.holds_lock:
                raise RuntimeError(f"{self.job} runs inside {self.parent.job} {self.parent.run_id}, "
                                   "which does not hold the warehouse lock")
            return
        if not self._holds_lock:
            self.wh.acquire_lock(self.run_id, self.job, self.break_lock if break_lock is None else break_lock)
            self._holds_lock = True

    def _release_lock(self) -> None:
        if self._holds_lock:
            self._holds_lock = False
            self.wh.release_lock(self.run_id)

    @property
    def holds_lock(self) -> bool:
        """Whether this run (or the run it is a stage of) holds the warehouse lock now."""
        return self._holds_lock or (self.parent is not None and self.parent.holds_lock)

    @contextlib.contextmanager
    def lock(self) -> Iterator["JobRun"]:
        """Hold the warehouse lock for a block of a job that otherwise only reads (train while it
        publishes a model version). Already held (a writing job, or inside the pipeline): a no-op."""
        if self.holds_lock:
            yield self
            return
        self._take_lock(break_lock=False)  # --break-lock applied at the start, not to a run begun since
        try:
            yield self
        finally:
            self._release_lock()

    # -- reading, staging, committing ---------------------------------------------------------
    def read_table(self, table: str, schema=None):
        """``table`` as the manifest pinned at the start of the run lists it."""
        return self.wh.read_table(self.spark, table, schema, manifest=self.manifest)

    def table_dirs(self, table: str) -> list[str]:
        """The directories of ``table`` in the pinned manifest."""
        return self.wh.table_dirs(table, self.manifest)

    def count_rows(self, table: str) -> int:
        """Rows of ``table`` in the pinned manifest (0 for a table that does not exist yet)."""
        return self.read_table(table).count() if self.table_dirs(table) else 0

    @property
    def staging(self) -> str:
        """``W/_staging/<run_id>``: where the run writes before it commits."""
        return self.wh.path("_staging", self.run_id)

    def staging_uri(self, *parts: str) -> str:
        """A staging path Spark can write to."""
        return self.wh.uri("_staging", self.run_id, *parts)

    def commit(self, tables: dict[str, list[str]], moves: list[tuple[str, str]] = (),
               preprocess: dict[str, dict[str, Any]] | None = None) -> int:
        """Move the staged directories in, publish ``tables`` with one manifest, clean up.

        Returns the new manifest's sequence number. The run must hold the lock.
        """
        if not self.holds_lock:
            raise RuntimeError(f"{self.job} {self.run_id} commits without the warehouse lock")
        move_dirs(self.wh, moves)
        seq = self.wh.commit(tables, {"job": self.job, "run_id": self.run_id}, preprocess)
        self.summary["committed_seq"] = seq
        self.wh.fs.delete(self.staging)
        self.wh.garbage_collect(self.retention_hours)
        return seq

    # -- reporting -----------------------------------------------------------------------------
    def describe(self, text: str | None) -> None:
        """Name what the run does now: the Spark job description (Spark UI) and the progress label."""
        label = f"{self.job} {self.run_id}: {text}" if text else None
        if self.spark is not None:
            self.spark.sparkContext.setJobDescription(label)
        if self._progress is not None:
            self._progress.label = label

    def nothing_to_do(self, why: str) -> None:
        """Record that the run had no work (an empty input table, nothing new): it still ends ok."""
        self.summary["nothing_to_do"] = why
        log.info("%s %s: nothing to do: %s", self.job, self.run_id, why)

    @property
    def progress_lines(self) -> list[str]:
        """The progress lines logged so far."""
        return list(self._progress.lines) if self._progress is not None else []



def recorded_grid(manifest: dict[str, Any], preprocess_id: str, n_points: int):
    """The wavelengths (Å) of vectors made with ``preprocess_id``, from the settings the commit
    that wrote them recorded in the manifest (never from the current configuration).

    A warehouse written before settings were recorded knows only the default preprocessing;
    vectors of any other unrecorded ``preprocess_id`` are drawn against their pixel index.
    """
    import numpy as np

    from .preprocess import PreprocessSettings
    recorded = manifest.get("preprocess", {}).get(preprocess_id)
    if recorded is not None:
        settings = PreprocessSettings(**recorded)
    elif PreprocessSettings().fingerprint() == preprocess_id:
        settings = PreprocessSettings()
    else:
        log.warning("no settings recorded for preprocess_id %s: plotting against the pixel index", preprocess_id)
        return np.arange(n_points, dtype=float)
    if settings.n_points != n_points:
        raise ValueError(f"preprocess_id {preprocess_id} records {settings.n_points} points, the vector has {n_points}")
    return settings.grid
