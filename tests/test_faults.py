"""Faults: a task that fails and is retried, a run that fails outright, drivers SIGKILLed at random
points. The warehouse converges to exactly the tables of an uninterrupted run (run ids aside).

Task failures are injected with the ``SPECTRALDL_FAULT_INJECT`` hook of :mod:`spectraldl.parse`
(a marker file: the first parse task that deletes it raises). Retries need a master with
``maxFailures`` > 1, ``local[2,4]``; the shared test session is ``local[2]`` (one attempt per task)
and a second session cannot live beside it, so the retried run and the killed runs are
``./spark-submit.sh ingest`` subprocesses in their own process group (``os.killpg`` ends the
driver JVM, the Python driver and its workers together).
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from pyspark_test import assert_pyspark_df_equal

from badfiles import build_corpus
from conftest import REAL, ROOT
from spectraldl.config import load_config
from spectraldl.ingest import run_ingest
from spectraldl.parse import FAULT_INJECT_ENV
from spectraldl.warehouse import LockedError, Warehouse

pytestmark = pytest.mark.realdata
SETTINGS = ["ingest.paths_per_task=4"]  # several parse tasks, so one can fail among others
BAD_KINDS = ["empty", "truncated_data", "html_page", "broken_symlink", "directory", "nan_window", "ondrejov_table"]
#: Seed of the kill delays; set SPECTRALDL_FAULT_SEED to replay a failure (the test prints it).
SEED = int(os.environ.get("SPECTRALDL_FAULT_SEED", random.SystemRandom().randrange(1 << 30)))


@pytest.fixture(scope="module")
def config():
    return load_config("local", overrides=SETTINGS)


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """24 real LAMOST files (one a dead fibre) and 7 bad ones."""
    arc = tmp_path_factory.mktemp("fault-archive")
    real = sorted((REAL / "lamost" / "ChenfaZheng_LAMOST-SBC").glob("spec-*.fits"))[:18]
    real += sorted((REAL / "lamost" / "LiangJunC_PyLASP").glob("*.fits"))[:6]
    for p in real:
        dst = arc / p.parent.name / p.name
        dst.parent.mkdir(exist_ok=True)
        dst.write_bytes(p.read_bytes())
    build_corpus(arc / "bad", BAD_KINDS)
    return arc


@pytest.fixture(scope="module")
def reference(spark, archive, config, tmp_path_factory) -> tuple[Path, dict]:
    """An uninterrupted run in the test session: the tables every other run must reproduce."""
    wh = tmp_path_factory.mktemp("fault-ref")
    s = run_ingest(spark, str(archive), str(wh), config)
    assert (s["seen"], s["ingested"], s["rejected"]) == (31, 23, 8)
    assert s["rejected_by_reason"] == {"empty_file": 1, "no_signal": 2, "not_fits": 1, "truncated": 1,
                                       "unreadable": 2, "unsupported_format": 1}
    return wh, s


def assert_same_tables(spark, wh: Path, ref: Path) -> None:
    """The committed spectra and rejects of ``wh`` equal ``ref``'s, ``ingest_run`` aside."""
    for table in ("spectra", "rejects"):
        got = Warehouse(str(wh)).read_table(spark, table).drop("ingest_run").orderBy("source_path")
        want = Warehouse(str(ref)).read_table(spark, table).drop("ingest_run").orderBy("source_path")
        assert got.count() == want.count() > 0, table
        assert_pyspark_df_equal(got, want)


def assert_clean(wh: Path) -> None:
    """Only what the manifest lists is left; no staging, no lock."""
    w = Warehouse(str(wh))
    for table in ("spectra", "rejects"):
        assert sorted(os.listdir(wh / table)) == sorted(w.table_dirs(table)), table
    assert not (wh / "_staging").exists() or os.listdir(wh / "_staging") == []
    assert not (wh / "_state" / "lock").exists()


def start_ingest(archive: Path, wh: Path, log: Path, master: str = "local[2]",
                 env: dict[str, str] | None = None) -> subprocess.Popen:
    """``./spark-submit.sh ingest`` in a new session (process group), output to ``log``.

    The master is passed twice, as ``--master`` and through a config file (``[spark]
    spark.master``); ``session.get_spark`` lets spark-submit's win, and both say the same.
    """
    conf = log.with_suffix(".toml")
    conf.write_text(f'[spark]\n"spark.master" = "{master}"\n')
    cmd = [str(ROOT / "spark-submit.sh"), "--master", master, "--config", str(conf)]
    for item in SETTINGS:
        cmd += ["--conf", item]
    cmd += ["ingest", "--input", str(archive), "--warehouse", str(wh), "--break-lock"]
    full_env = {k: v for k, v in os.environ.items() if k != FAULT_INJECT_ENV}
    full_env.update({"PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1", **(env or {})})
    with open(log, "wb") as fh:
        return subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)


def wait_for_lock(p: subprocess.Popen, wh: Path, timeout: float = 120) -> float:
    """Wait until the run holds the warehouse lock (it has started its work); returns the time."""
    lock = wh / "_state" / "lock"
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        if lock.exists():
            try:
                if json.loads(lock.read_text()).get("job") == "ingest":
                    return time.monotonic()
            except (OSError, ValueError):
                pass  # being written
        if p.poll() is not None:
            raise AssertionError(f"ingest exited with {p.returncode} before taking the lock")
        time.sleep(0.02)
    raise AssertionError("ingest did not take the lock in time")


def phase(wh: Path, log: Path) -> str:
    """How far a run had got, from what it left in the warehouse and its log."""
    w = Warehouse(str(wh))
    if w.manifest()["seq"] > 0:
        return "committed"
    if any((wh / t).exists() and os.listdir(wh / t) for t in ("spectra", "rejects")):
        return "moved, not committed"
    staging = wh / "_staging"
    if staging.exists() and any((d / t).exists() for d in staging.iterdir() for t in ("spectra", "rejects")):
        return "writing tables"
    if ": seen " in log.read_text(errors="replace"):
        return "parsing"
    return "listing"


#: When each killed run is killed: after an event, plus a random delay of up to so many seconds.
KILL_AFTER = (("lock taken", 3.0), ("listing done", 1.5), ("staging written", 1.0))


def wait_for_event(event: str, p: subprocess.Popen, wh: Path, log: Path, timeout: float = 120) -> bool:
    """Wait for ``event`` of :data:`KILL_AFTER` in a running ingest; False if it exited first."""
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end and p.poll() is None:
        if event == "lock taken" and (wh / "_state" / "lock").exists():
            return True
        if event == "listing done" and ": seen " in log.read_text(errors="replace"):
            return True
        if event == "staging written" and (wh / "_staging").exists() and any(
                (d / t).exists() for d in (wh / "_staging").iterdir() for t in ("spectra", "rejects")):
            return True
        time.sleep(0.01)
    return False


def group_alive(pgid: int) -> list[str]:
    """Processes of group ``pgid`` that still run (zombies aside)."""
    alive = []
    for proc in psutil.process_iter(["pid", "name", "status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                alive.append(f"{proc.pid} {proc.info['name']}")
        except (ProcessLookupError, psutil.Error):
            continue
    return alive


@pytest.fixture(scope="module")
def retried_run(archive, tmp_path_factory) -> dict:
    """One ingest under ``local[2,4]`` whose first parse task attempt fails on purpose."""
    tmp = tmp_path_factory.mktemp("fault-retry")
    wh, marker, log = tmp / "wh", tmp / "fail-once", tmp / "ingest.log"
    marker.write_text("the first parse task that deletes this file fails\n")
    p = start_ingest(archive, wh, log, master="local[2,4]", env={FAULT_INJECT_ENV: str(marker)})
    try:
        t_lock = wait_for_lock(p, wh)
        rc = p.wait(timeout=240)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    return {"rc": rc, "wh": wh, "marker": marker, "log": log.read_text(errors="replace"),
            "seconds_after_lock": time.monotonic() - t_lock}


def test_failed_task_is_retried_and_output_unchanged(spark, retried_run, reference):
    ref_wh, ref = reference
    log = retried_run["log"]
    assert retried_run["rc"] == 0, log[-3000:]
    assert not retried_run["marker"].exists()                 # the fault fired ...
    assert "InjectedFault" in log and "Lost task" in log       # ... Spark saw the attempt fail ...
    summary_line = [ln for ln in log.splitlines() if ln.strip()][-1]
    assert f"seen {ref['seen']} = skipped 0 + ingested {ref['ingested']} + rejected {ref['rejected']}" in summary_line
    assert_same_tables(spark, retried_run["wh"], ref_wh)      # ... and the retry made the same rows
    assert_clean(retried_run["wh"])
    runs = list((retried_run["wh"] / "runs").glob("ingest-*.json"))
    s = json.loads(runs[0].read_text())
    assert len(runs) == 1 and s["rejected_by_reason"] == ref["rejected_by_reason"]


def test_failed_run_then_sigkills_at_random_points_then_rerun_converges(spark, archive, reference, config,
                                                                         tmp_path):
    """One warehouse through a run that fails (a task fails in the shared ``local[2]`` session, which
    allows one attempt per task), then three ``./spark-submit.sh ingest`` drivers SIGKILLed at
    random points (a random delay after taking the lock, after the listing, after the first
    staged table); a clean rerun then gives the reference tables."""
    ref_wh, ref = reference
    wh, marker = tmp_path / "wh", tmp_path / "fail-once"

    # 1. a failed run: nothing becomes visible and the lock is released
    marker.write_text("x")
    env = spark.sparkContext.environment  # the Python workers' environment (a new worker daemon)
    env[FAULT_INJECT_ENV] = str(marker)
    try:
        with pytest.raises(Exception, match="InjectedFault"):
            run_ingest(spark, str(archive), str(wh), config)
    finally:
        del env[FAULT_INJECT_ENV]
    assert not marker.exists()
    w = Warehouse(str(wh))
    assert w.manifest()["seq"] == 0 and w.table_dirs("spectra") == [] and w.table_dirs("rejects") == []
    assert not (wh / "_state" / "lock").exists()

    # 2. drivers killed with SIGKILL (no cleanup runs) at random points of three stages of the run,
    #    each run taking over the lock its killed predecessor left
    rng = random.Random(SEED)
    kills = []
    holder = None
    for k, (event, spread) in enumerate(KILL_AFTER):
        log = tmp_path / f"kill-{k}.log"
        p = start_ingest(archive, wh, log)
        try:
            delay = rng.uniform(0, spread)
            if wait_for_event(event, p, wh, log):
                t_kill = time.monotonic() + delay
                while time.monotonic() < t_kill and p.poll() is None:
                    time.sleep(0.005)
            where = phase(wh, log) if p.poll() is None else f"finished ({p.returncode})"
            try:
                holder = json.loads((wh / "_state" / "lock").read_text())["pid"]
            except (OSError, ValueError, KeyError):
                holder = None
            os.killpg(p.pid, signal.SIGKILL)
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=30)
        kills.append(f"{event} + {delay:.2f} s: {where}")
        t_end = time.monotonic() + 10
        while group_alive(p.pid) and time.monotonic() < t_end:
            time.sleep(0.1)
        assert group_alive(p.pid) == [], f"processes left after SIGKILL: {group_alive(p.pid)}"
    print(f"SPECTRALDL_FAULT_SEED={SEED}: killed at {kills}")
    assert sum(not w.endswith("committed") and "finished" not in w for w in kills) >= 2, (SEED, kills)

    # 3. the killed driver's lock is refused (and called stale once the pid is reaped), then broken
    if (wh / "_state" / "lock").exists():
        t_end = time.monotonic() + 10
        while holder and psutil.pid_exists(holder) and time.monotonic() < t_end:
            time.sleep(0.1)  # a SIGKILLed orphan is a zombie until init reaps it
        gone = not (holder and psutil.pid_exists(holder))
        with pytest.raises(LockedError, match="that process is gone" if gone else "locked by ingest run"):
            run_ingest(spark, str(archive), str(wh), config)
    s = run_ingest(spark, str(archive), str(wh), config, break_lock=True)
    assert s["seen"] == ref["seen"] == s["skipped"] + s["ingested"] + s["rejected"], (SEED, kills)
    assert_same_tables(spark, wh, ref_wh)
    assert_clean(wh)
    assert Warehouse(str(wh)).manifest()["seq"] >= 1
