"""The report job's plan: scores + spectra -> ``W/reports/<run_id>/`` (HTML, CSV, VOTable, PNG).

The heavy part (selecting candidates among millions of scores) runs in Spark; only the
candidates, a sample for the histograms and the few spectra plotted come to the driver.
The HTML uses relative links only, so the directory opens offline and can be copied anywhere.
"""
from __future__ import annotations

import glob
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..artifact import META_FILE, default_model_dir, read_meta
from ..errors import UsageError
from ..evaluate import summary_table
from ..models import CLASSES
from ..preprocess import PreprocessSettings
from ..warehouse import Warehouse, is_local, local_path, new_run_id, utc_now
from . import plots
from .catalogue import (ACKNOWLEDGEMENT, group_by_star, is_star, labelling_export, select_candidates,
                        write_votable)

log = logging.getLogger(__name__)


def model_dir_for(version: str, wh_root: str) -> Path | None:
    """The directory of a model version: ``W/models/<version>`` or the embedded default."""
    p = Path(local_path(wh_root)) / "models" / version
    if (p / META_FILE).is_file():
        return p
    default = default_model_dir()
    if read_meta(default)["version"] == version:
        return default
    return None


def _latest_version(scores) -> str:
    from pyspark.sql import functions as F
    row = scores.groupBy("model_version").agg(F.max("scored_at").alias("t")).orderBy(F.desc("t")).first()
    if row is None:
        raise FileNotFoundError("no scores yet: run the score job first")
    return row["model_version"]


def run_report(spark, warehouse: str, config: dict[str, Any], top: int | None = None,
               model_version: str | None = None) -> dict[str, Any]:
    """Build the report of the newest (or the given) model version's scores."""
    from pyspark.sql import functions as F

    t0 = time.time()
    cfg = config["report"]
    top = top or cfg["top"]
    run_id = new_run_id()
    wh = Warehouse(warehouse, spark)
    if not is_local(wh.root):
        raise UsageError("the report is written to a local or mounted warehouse path")
    out = Path(local_path(wh.root)) / "reports" / run_id
    out.mkdir(parents=True)
    scores = wh.read_table(spark, "scores")
    version = model_version or _latest_version(scores)
    mdir = model_dir_for(version, wh.root)
    meta = read_meta(mdir) if mdir else {}
    thresholds = meta.get("thresholds") or {c: 0.5 for c in CLASSES}
    s = scores.filter(F.col("model_version") == version)
    n_scored = s.count()
    predicted = {r["label"]: r["count"] for r in s.groupBy("label").count().collect()}
    predicted = {c: predicted.get(c, 0) for c in CLASSES}

    # candidates in Spark; the small result to the driver
    cond = (F.col("p_emission") >= thresholds["emission"]) | (F.col("p_double_peak") >= thresholds["double_peak"])
    cand = select_candidates(s.filter(cond).toPandas(), thresholds)
    keys = cand[["designation"]].dropna().drop_duplicates()
    obs = (s.select("source_path", "designation").join(spark.createDataFrame(keys), "designation", "left_semi").toPandas()
           if len(keys) else s.limit(0).select("source_path", "designation").toPandas())
    star = cand[is_star(cand["lamost_class"])] if cfg["stars_only"] else cand
    extragalactic = cand[~is_star(cand["lamost_class"])] if cfg["stars_only"] else cand.iloc[0:0]
    catalogue = group_by_star(star, pd.concat([obs, star[["source_path", "designation"]]]).drop_duplicates("source_path"))
    catalogue.to_csv(out / "catalogue.csv", index=False)
    extragalactic.drop(columns=["scored_at"], errors="ignore").to_csv(out / "extragalactic.csv", index=False)
    vmeta = {"model_version": version, "run_id": run_id, "warehouse": wh.root, "thresholds": json.dumps(thresholds),
             "n_scored": n_scored}
    write_votable(catalogue, str(out / "catalogue.vot"), vmeta)

    n_label = cfg["labelling"]
    uncertain = s.orderBy(F.desc("entropy")).limit(n_label).toPandas()
    labelling = labelling_export(uncertain, n_label)
    labelling.to_csv(out / "labelling.csv", index=False)

    sample = s.select("label", "lamost_class", *[f"p_{c}" for c in CLASSES])
    if n_scored > cfg["histogram_sample"]:
        sample = sample.sample(fraction=cfg["histogram_sample"] / n_scored, seed=1)
    sample = sample.toPandas()
    plots.counts_plot(sample, out / "counts.png")
    plots.probability_histograms(sample, thresholds, out / "probabilities.png")
    plots.sky_map(catalogue, out / "sky.png")

    # spectra: top candidates, random members of each class, the most uncertain
    grid = PreprocessSettings.from_config(config["preprocess"]).grid
    spectra = wh.read_table(spark, "spectra")
    want: dict[str, list[str]] = {"top": catalogue["best_source_path"].head(top).tolist()}
    per_class = cfg["examples_per_class"]
    for c in CLASSES:
        want[c] = [r["source_path"] for r in s.filter(F.col("label") == c).orderBy(F.rand(seed=7)).limit(per_class).collect()]
    want["uncertain"] = labelling["source_path"].head(cfg["labelling_plots"]).tolist()
    paths = sorted({p for v in want.values() for p in v})
    rows = {}
    if paths:
        joined = (spectra.join(spark.createDataFrame([(p,) for p in paths], "source_path string"), "source_path", "left_semi")
                  .join(s.drop("designation", "ra", "dec", "lamost_class", "lamost_subclass", "ingest_run"), "source_path"))
        rows = {r["source_path"]: r for r in (x.asDict() for x in joined.collect())}
    made: dict[str, list[str]] = {k: [] for k in want}
    for group, ps in want.items():
        for i, p in enumerate(ps):
            if p not in rows:
                continue
            name = f"spec-{group}-{i:03d}.png"
            plots.spectrum_plot(pd.Series(rows[p]), np.asarray(rows[p]["flux"]), grid, out / name)
            made[group].append(name)

    maps = []
    map_dirs = sorted(glob.glob(str(Path(local_path(wh.root)) / "reports" / "*" / "maps")))  # explore runs
    for p in sorted(glob.glob(os.path.join(map_dirs[-1], "*.png"))) if map_dirs else []:
        shutil.copy(p, out / f"map-{os.path.basename(p)}")
        maps.append(f"map-{os.path.basename(p)}")
    model_plots = []
    if mdir:
        for name in ("confusion_matrix.png", "pr_curves.png", "training_curves.png"):
            if (mdir / name).is_file():
                shutil.copy(mdir / name, out / f"model-{name}")
                model_plots.append(f"model-{name}")
    metrics_text = ""
    if meta.get("metrics", {}).get("test") and "thresholds" in meta.get("metrics", {}):
        metrics_text = summary_table({"test": meta["metrics"]["test"], "thresholds": meta["metrics"]["thresholds"],
                                      "test_average_precision": meta["metrics"].get("test_average_precision",
                                                                                   {c: float("nan") for c in CLASSES})})
    runs = []
    for job in ("ingest", "score", "train", "trainset", "explore"):
        files = sorted(glob.glob(str(Path(local_path(wh.root)) / "runs" / f"{job}-*.json")))
        if files:
            runs.append((os.path.basename(files[-1]), Path(files[-1]).read_text()))

    from jinja2 import Environment, PackageLoader, select_autoescape
    env = Environment(loader=PackageLoader("spectraldl.report", "templates"),  # works from a zip too
                      autoescape=select_autoescape(["html"]))
    html = env.get_template("index.html").render(
        run_id=run_id, generated=utc_now(), warehouse=wh.root, model_version=version, n_scored=n_scored,
        predicted=predicted, n_star_candidates=len(catalogue), n_star_candidate_spectra=len(star),
        n_extragalactic=len(extragalactic), top_rows=catalogue.head(top).to_dict("records"),
        top_plots=made["top"], class_plots={c: made[c] for c in CLASSES}, n_labelling=len(labelling),
        labelling_plots=made["uncertain"], maps=maps, model_metrics=metrics_text, model_plots=model_plots,
        runs=runs, acknowledgement=ACKNOWLEDGEMENT)
    (out / "index.html").write_text(html, encoding="utf-8")
    summary = {"job": "report", "run_id": run_id, "started": None, "finished": utc_now(), "status": "ok",
               "inputs": {"warehouse": wh.root, "top": top}, "model_version": version, "scored": n_scored,
               "candidates_stars": len(catalogue), "candidate_spectra_stars": len(star),
               "candidates_extragalactic": len(extragalactic), "labelling": len(labelling),
               "report": str(out / "index.html"), "seconds": round(time.time() - t0, 1)}
    summary["summary_path"] = wh.write_summary(summary)
    return summary
