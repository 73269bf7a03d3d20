"""One command from archive to report: ingest -> score -> explore -> report (-> trainset -> train first).

The pipeline holds the warehouse lock for the whole run, so a second concurrent run (a cron
rescan that overlaps a slow one) stops at once with a clear message; a stale lock after a crash
is reported and broken only with ``--break-lock``. On a rescan only new or changed files are
ingested and only their vectors scored; the summary says when a stage had nothing to do.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from .errors import UsageError
from .warehouse import Warehouse, new_run_id, utc_now

log = logging.getLogger(__name__)


def plan(spark, src: str, warehouse: str, config: dict[str, Any]) -> dict[str, int]:
    """What an ingest would do now: files found, new, changed, unchanged (a dry run)."""
    from .ingest import _known, classify, status_counts
    from .sources import list_sources
    wh = Warehouse(warehouse, spark, force_hadoop=config["warehouse"]["filesystem"] == "hadoop")
    listing = list_sources(spark, src, tuple(config["ingest"]["file_suffixes"])).dropDuplicates(["source_path"])
    counts = status_counts(classify(listing, _known(spark, wh)))
    gone = counts.pop("gone", 0)
    return {"found": sum(counts.values()), "new": counts.get("new", 0), "changed": counts.get("changed", 0),
            "unchanged": counts.get("unchanged", 0) + counts.get("unchanged_rejected", 0), "gone": gone}


def _stage(name: str):
    def deco(fn):
        def wrapped(*a, **kw):
            t = time.time()
            log.info("pipeline stage %s: start", name)
            out = fn(*a, **kw)
            log.info("pipeline stage %s: done in %.1f s", name, time.time() - t)
            return out
        return wrapped
    return deco


def run_pipeline(spark, src: str, warehouse: str, config: dict[str, Any], train: bool = False,
                 break_lock: bool = False) -> dict[str, Any]:
    """Run every stage; returns the pipeline summary (also in ``W/runs``)."""
    from .explore import run_explore
    from .ingest import run_ingest
    from .report.build import run_report
    from .score import run_score

    t0 = time.time()
    run_id = new_run_id()
    wh = Warehouse(warehouse, spark, force_hadoop=config["warehouse"]["filesystem"] == "hadoop")
    pcfg = config["pipeline"]
    summary: dict[str, Any] = {"job": "pipeline", "run_id": run_id, "started": utc_now(), "status": "running",
                               "inputs": {"input": src, "warehouse": wh.root, "train": train}}
    with wh.locked(run_id, "pipeline", break_lock):
        model = pcfg["model"]
        if train:
            from .train import run_train
            from .trainset import run_trainset
            if not pcfg["train_input"] or not pcfg["train_labels"]:
                raise UsageError("--train needs pipeline.train_input and pipeline.train_labels in the config")
            ts = _stage("trainset")(run_trainset)(spark, pcfg["train_input"], pcfg["train_labels"], wh.root, config)
            tr = _stage("train")(run_train)(spark, wh.root, config)
            summary.update(trainset=ts.get("summary_path"), model_version=tr["version"])
            model = tr["model_dir"]
        ing = _stage("ingest")(run_ingest)(spark, src, wh.root, config, take_lock=False)
        sc = _stage("score")(run_score)(spark, wh.root, config, model, take_lock=False)
        changed = ing["ingested"] + ing["replaced"] + sc["scored"] > 0
        if pcfg["explore"] and (changed or not wh.fs.listdir(wh.path("reports"))):
            try:
                _stage("explore")(run_explore)(spark, wh.root, config)
            except Exception as exc:  # maps are a nice-to-have: the report goes on without them
                log.warning("explore failed, the report will have no maps: %s", exc)
        rep = _stage("report")(run_report)(spark, wh.root, config, model_version=sc["model_version"])
        summary.update(status="ok", finished=utc_now(), seconds=round(time.time() - t0, 1),
                       seen=ing["seen"], ingested=ing["ingested"], rejected=ing["rejected"], skipped=ing["skipped"],
                       rejected_by_reason=ing["rejected_by_reason"], gone=ing["gone"], scored=sc["scored"],
                       score_skipped=sc["skipped"], model_version=sc["model_version"],
                       candidates=rep["candidates_stars"], candidate_spectra=rep["candidate_spectra_stars"],
                       extragalactic=rep["candidates_extragalactic"], report=rep["report"],
                       nothing_new=not changed)
        summary["summary_path"] = wh.write_summary(summary)
        return summary


def summary_line(s: dict[str, Any]) -> str:
    new = " (nothing new: no ingest or scoring work)" if s["nothing_new"] else ""
    return (f"pipeline {s['run_id']}: files seen {s['seen']} = skipped {s['skipped']} + ingested {s['ingested']} + "
            f"rejected {s['rejected']}; scored {s['scored']} (skipped {s['score_skipped']}){new}; "
            f"{s['candidates']} candidate stars; report {s['report']} ({s['seconds']:.0f} s)")
