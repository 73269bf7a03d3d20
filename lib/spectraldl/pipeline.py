"""One command from archive to report: ingest -> score -> explore -> report (-> trainset -> train first).

The pipeline holds the warehouse lock for the whole run and its stages run under it (each stage
is the job of the same name, run with the pipeline's run as its parent), so a second concurrent
run (a cron rescan that overlaps a slow one) stops at once with a clear message; a stale lock
after a crash is reported and broken only with ``--break-lock``. On a rescan only new or changed files are
ingested and only their vectors scored; the summary says when a stage had nothing to do.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from .errors import UsageError
from .lifecycle import JobRun
from .warehouse import Warehouse

log = logging.getLogger(__name__)


def plan(spark, src: str, warehouse: str, config: dict[str, Any]) -> dict[str, int]:
    """What an ingest would do now: files found, new, changed, unchanged (a dry run)."""
    from .ingest import _known, classify, status_counts
    from .sources import list_sources
    wh = Warehouse(warehouse, spark, force_hadoop=config["warehouse"]["filesystem"] == "hadoop")
    listing = list_sources(spark, src, tuple(config["ingest"]["file_suffixes"]))
    counts = status_counts(classify(listing, _known(spark, wh)))
    gone = counts.pop("gone", 0)
    return {"found": sum(counts.values()), "new": counts.get("new", 0), "changed": counts.get("changed", 0),
            "unchanged": counts.get("unchanged", 0) + counts.get("unchanged_rejected", 0), "gone": gone}


def plan_line(p: dict[str, int], src: str) -> str:
    """The dry run's last log line."""
    return (f"pipeline plan: {p['found']} files found in {src}: {p['new']} new, {p['changed']} changed, "
            f"{p['unchanged']} unchanged since the last run, {p['gone']} gone; would ingest {p['new'] + p['changed']}")


def _stage(run: JobRun, name: str, fn, *args, **kwargs) -> dict[str, Any]:
    """Run one stage job under the pipeline's run (its lock, its progress reporter)."""
    t = time.time()
    log.info("pipeline stage %s: start", name)
    out = fn(*args, parent=run, **kwargs)
    run.summary.setdefault("stages", {})[name] = {"run_id": out["run_id"], "seconds": round(time.time() - t, 1),
                                                  "nothing_to_do": out.get("nothing_to_do")}
    log.info("pipeline stage %s: done in %.1f s", name, time.time() - t)
    return out


def run_pipeline(spark, src: str, warehouse: str, config: dict[str, Any], train: bool = False,
                 break_lock: bool = False) -> dict[str, Any]:
    """Run every stage; returns the pipeline summary (also in ``W/runs``)."""
    from .explore import run_explore
    from .ingest import run_ingest
    from .report.build import run_report
    from .score import run_score

    pcfg = config["pipeline"]
    if train and (not pcfg["train_input"] or not pcfg["train_labels"]):
        raise UsageError("--train needs pipeline.train_input and pipeline.train_labels in the config")
    with JobRun(spark, "pipeline", warehouse, config, inputs={"input": src, "train": train}, writes=True,
                break_lock=break_lock) as run:
        root, model = run.wh.root, pcfg["model"]
        if train:
            from .train import run_train
            from .trainset import run_trainset
            ts = _stage(run, "trainset", run_trainset, spark, pcfg["train_input"], pcfg["train_labels"], root, config)
            tr = _stage(run, "train", run_train, spark, root, config)
            run.summary.update(trainset=ts.get("summary_path"), model_version=tr["version"])
            model = tr["model_dir"]
        ing = _stage(run, "ingest", run_ingest, spark, src, root, config)
        sc = _stage(run, "score", run_score, spark, root, config, model)
        changed = ing["ingested"] + ing["replaced"] + sc["scored"] > 0
        if pcfg["explore"] and (changed or not run.wh.fs.listdir(run.wh.path("reports"))):
            try:
                _stage(run, "explore", run_explore, spark, root, config)
            except Exception as exc:  # maps are a nice-to-have: the report goes on without them
                log.warning("explore failed, the report will have no maps: %s", exc)
        rep = _stage(run, "report", run_report, spark, root, config, model_version=sc["model_version"])
        run.summary.update(seen=ing["seen"], ingested=ing["ingested"], rejected=ing["rejected"],
                           spectra=ing["spectra"], rejected_spectra=ing["rejected_spectra"], skipped=ing["skipped"],
                           rejected_by_reason=ing["rejected_by_reason"], gone=ing["gone"],
                           scored=sc["scored"], score_skipped=sc["skipped"], model_version=sc["model_version"],
                           candidates=rep["candidates_stars"], candidate_spectra=rep["candidate_spectra_stars"],
                           extragalactic=rep["candidates_extragalactic"], report=rep["report"],
                           nothing_new=not changed)
        if not changed:
            run.nothing_to_do("no new or changed files, nothing left to score")
        return run.summary


def summary_line(s: dict[str, Any]) -> str:
    """The pipeline's last log line."""
    new = " (nothing new: no ingest or scoring work)" if s["nothing_new"] else ""
    return (f"pipeline {s['run_id']}: files seen {s['seen']} = skipped {s['skipped']} + ingested {s['ingested']} + "
            f"rejected {s['rejected']}; spectra {s['spectra'] + s['rejected_spectra']} = ingested {s['spectra']} + "
            f"rejected {s['rejected_spectra']}; scored {s['scored']} (skipped {s['score_skipped']}){new}; "
            f"{s['candidates']} candidate stars; report {s['report']} ({s['seconds']:.0f} s)")
