"""Progress of a running job, read from Spark's status tracker.

A background thread looks at the active stages every second. On a terminal it redraws one bar
on stderr; otherwise (a log file, a cluster's driver log) it logs a line at most every
``logging.progress_seconds``, and only for a stage that has run at least that long:

    ingest 20261205T010203Z1a2b3c: parse 100000 files in 20 tasks: 8/20 tasks (40%), ~40000 files,
    0.21 tasks/s, about 57 s left

The counts come from Spark (tasks completed of the stage's total), never from counting rows in
Python. The rate is tasks completed per second since the stage started; the time left assumes
the remaining tasks go at that rate.
"""
from __future__ import annotations

import logging
import re
import sys
import threading
import time
from typing import Any, TextIO

log = logging.getLogger("spectraldl.progress")

#: ``"... N files ..."`` in a job description: the progress line converts tasks to files.
_FILES = re.compile(r"(\d+) (?:files|spectra|paths)")


def spark_ui_line(sc) -> str:
    """Where the Spark UI of ``sc`` is, or why there is none."""
    url = sc.uiWebUrl
    if url:
        return f"Spark UI: {url}"
    return "Spark UI: off (spark.ui.enabled=false; --conf spark.ui.enabled=true turns it on)"


def format_progress(label: str, done: int, total: int, elapsed: float, units: int | None = None) -> str:
    """One progress line: tasks done of the total, the rate and the time left.

    Parameters
    ----------
    label : str
        What is running (the Spark job description).
    done, total : int
        Completed tasks and all tasks of the running stages.
    elapsed : float
        Seconds since the stage started.
    units : int, optional
        Files (or spectra) the stage works through, spread evenly over its tasks.

    Examples
    --------
    >>> format_progress("ingest r1: parse 1000 files in 4 tasks", 1, 4, 10.0, 1000)
    'ingest r1: parse 1000 files in 4 tasks: 1/4 tasks (25%), ~250 files, 0.10 tasks/s, about 30 s left'
    """
    pct = 100.0 * done / total if total else 0.0
    parts = [f"{label}: {done}/{total} tasks ({pct:.0f}%)"]
    if units and total:
        parts.append(f"~{units * done // total} files")
    rate = done / elapsed if elapsed > 0 else 0.0
    parts.append(f"{rate:.2f} tasks/s")
    parts.append(f"about {(total - done) / rate:.0f} s left" if rate > 0 else "time left unknown")
    return ", ".join(parts)


class ProgressReporter:
    """Report the progress of the Spark stages a job runs, from a daemon thread.

    Parameters
    ----------
    sc : SparkContext
    every : float
        Seconds between log lines (``logging.progress_seconds``); a stage shorter than this
        logs nothing.
    stream : file, optional
        Where a terminal's bar goes (default ``sys.stderr``); a bar is drawn only when it is a TTY.
    """

    def __init__(self, sc, every: float, stream: TextIO | None = None) -> None:
        self._sc = sc
        self._every = every
        self._stream = stream or sys.stderr
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stage_start: dict[int, float] = {}
        self._last_line = 0.0
        self._bar_drawn = False
        self.lines: list[str] = []  # what was logged (tests, the run summary)
        #: What the job is doing now (its Spark job description, set by the lifecycle: Spark's
        #: local properties belong to the thread that sets them, so this thread cannot read them).
        self.label: str | None = None

    def start(self) -> "ProgressReporter":
        self._thread = threading.Thread(target=self._loop, name="spectraldl-progress", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._bar_drawn:
            self._stream.write("\r\033[K")
            self._stream.flush()

    def snapshot(self) -> dict[str, Any] | None:
        """The running stages now: ``{label, done, total, elapsed, units}`` or None when idle."""
        tracker = self._sc.statusTracker()
        stages = [tracker.getStageInfo(s) for s in tracker.getActiveStageIds()]
        stages = [s for s in stages if s is not None]
        if not stages:
            return None
        now = time.time()
        for s in stages:
            self._stage_start.setdefault(s.stageId, now)
        total = sum(s.numTasks for s in stages)
        done = sum(s.numCompletedTasks for s in stages)
        label = self.label or stages[0].name
        m = _FILES.search(label)
        elapsed = now - min(self._stage_start[s.stageId] for s in stages)
        return {"label": label, "done": done, "total": total, "elapsed": elapsed,
                "units": int(m.group(1)) if m else None}

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            try:
                snap = self.snapshot()
            except Exception:  # noqa: BLE001 - the context is stopping; progress is best effort
                return
            if snap is None:
                continue
            line = format_progress(snap["label"], snap["done"], snap["total"], snap["elapsed"], snap["units"])
            if self._tty:
                width = 30
                filled = int(width * snap["done"] / snap["total"]) if snap["total"] else 0
                self._stream.write(f"\r\033[K[{'#' * filled}{'.' * (width - filled)}] {line}"[:200])
                self._stream.flush()
                self._bar_drawn = True
            now = time.time()
            if snap["elapsed"] >= self._every and now - self._last_line >= self._every:
                self._last_line = now
                self.lines.append(line)
                if not self._tty:
                    log.info("%s", line)
