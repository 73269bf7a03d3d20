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
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..artifact import META_FILE, default_model_dir, read_meta
from ..errors import UsageError
from ..evaluate import summary_table
from ..models import CLASSES
from ..ingest import REJECTS_SCHEMA, SPECTRA_SCHEMA, SPECTRUM_KEY
from ..lifecycle import JobRun, recorded_grid
from ..score import SCORES_SCHEMA
from ..warehouse import is_local, local_path, utc_now
from . import plots
from .catalogue import (ACKNOWLEDGEMENT, CATALOGUE_COLUMNS, assign_stars, group_by_star, is_star, labelling_export,
                        select_candidates, split_nebular, unit_vectors, write_votable)

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


def _latest_version(scores) -> str | None:
    from pyspark.sql import functions as F
    row = scores.groupBy("model_version").agg(F.max("scored_at").alias("t")).orderBy(F.desc("t")).first()
    return None if row is None else row["model_version"]


def run_report(spark, warehouse: str, config: dict[str, Any], top: int | None = None,
               model_version: str | None = None, parent: JobRun | None = None) -> dict[str, Any]:
    """Build the report of the newest (or the given) model version's scores.

    The report reads the tables of the manifest it started from (no lock: it writes only its own
    directory). A warehouse with nothing scored still gets a report, saying what the archive
    holds (spectra and rejects by reason) and that there is nothing to rank.
    """
    from pyspark.sql import functions as F

    cfg = config["report"]
    top = top or cfg["top"]
    with JobRun(spark, "report", warehouse, config, inputs={"top": top, "model_version": model_version},
                parent=parent) as run:
        if not is_local(run.wh.root):
            raise UsageError("the report is written to a local or mounted warehouse path")
        out = Path(local_path(run.wh.root)) / "reports" / run.run_id
        out.mkdir(parents=True)
        archive = _archive_counts(run)
        scores = run.read_table("scores", SCORES_SCHEMA)
        version = model_version or _latest_version(scores)
        s = scores.filter(F.col("model_version") == version) if version else scores
        run.describe("count the scores")
        by_class = s.groupBy("lamost_class", "label").count().toPandas()  # exact totals for the charts
        n_scored = int(by_class["count"].sum())
        predicted = {c: int(by_class.loc[by_class["label"] == c, "count"].sum()) for c in CLASSES}
        run.summary.update(model_version=version, scored=n_scored, candidates_stars=0, candidate_spectra_stars=0,
                           candidates_extragalactic=0, nebular_stars=0, labelling=0, disagreements=0,
                           variable_stars=0, report=str(out / "index.html"))
        page = {"run_id": run.run_id, "generated": utc_now(), "warehouse": run.wh.root, "model_version": version,
                "n_scored": n_scored, "predicted": predicted, "archive": archive,
                "acknowledgement": ACKNOWLEDGEMENT}
        if n_scored == 0:
            run.nothing_to_do(f"no spectra scored ({archive['spectra']} in the spectra table, "
                              f"{archive['rejected']} rejected)")
            _empty_outputs(out)
        else:
            mdir = model_dir_for(version, run.wh.root)
            meta = read_meta(mdir) if mdir else {}
            page.update(_report_body(run, s, meta, by_class, out, top, cfg))
            page.update(_model_section(mdir, meta, out))
        page.update(maps=_copy_maps(run, out), runs=_latest_runs(run))
        _render(page, out)
        return run.summary


def _archive_counts(run: JobRun) -> dict[str, Any]:
    """What the warehouse holds (exact counts): spectra (and those from MRS files), rejected
    files and MRS exposures, and the rejects' reasons."""
    from pyspark.sql import functions as F
    rejects = run.read_table("rejects", REJECTS_SCHEMA)
    rows = rejects.groupBy("reason", (F.col("exposure") != "").alias("exposure")).count().collect()
    by_reason: dict[str, int] = {}
    for r in rows:
        by_reason[r["reason"]] = by_reason.get(r["reason"], 0) + r["count"]
    mrs = (run.read_table("spectra", SPECTRA_SCHEMA).filter(F.col("exposure") != "").count()
           if run.table_dirs("spectra") else 0)
    return {"spectra": run.count_rows("spectra"), "mrs_spectra": mrs, "rejected": sum(by_reason.values()),
            "rejected_files": sum(r["count"] for r in rows if not r["exposure"]),
            "rejected_exposures": sum(r["count"] for r in rows if r["exposure"]),
            "rejected_by_reason": dict(sorted(by_reason.items()))}


def _empty_outputs(out: Path) -> None:
    """Header-only downloads, so the links of an empty report work."""
    for name, cols in (("catalogue.csv", CATALOGUE_COLUMNS), ("nebular.csv", CATALOGUE_COLUMNS),
                       ("extragalactic.csv", [*SPECTRUM_KEY, "designation"]),
                       ("labelling.csv", [*SPECTRUM_KEY, "label"]), ("disagreements.csv", ["kind", *SPECTRUM_KEY])):
        pd.DataFrame(columns=cols).to_csv(out / name, index=False)


#: Measurement columns of ``spectra`` the report joins to the scores.
MEASURED = ("obsid", "date_obs", "mjd", "file_format", "ha_ew", "ha_ew_err", "ha_profile", "ha_fwhm", "nebular", "nii_snr", "sii_snr")
#: The network and the measurement disagree: emission by the network with ``ha_ew >= 0``, or
#: absorption by the network with H-alpha in emission beyond this EW (Å).
DISAGREE_EW = -3.0


def _report_body(run: JobRun, s, meta: dict[str, Any], by_class: pd.DataFrame, out: Path, top: int,
                 cfg: dict[str, Any]) -> dict[str, Any]:
    """Candidates, catalogue (stellar and nebular apart), labelling export, charts and spectrum
    plots of the scored rows, each joined with its H-alpha measurements."""
    from pyspark.sql import functions as F
    version = meta.get("version")
    thresholds = meta.get("thresholds") or {c: 0.5 for c in CLASSES}
    measured = run.read_table("spectra", SPECTRA_SCHEMA).select(*SPECTRUM_KEY, *MEASURED)
    sm = s.join(measured, SPECTRUM_KEY, "left")
    run.describe("select candidates")
    cond = (F.col("p_emission") >= thresholds["emission"]) | (F.col("p_double_peak") >= thresholds["double_peak"])
    cand = select_candidates(sm.filter(cond).toPandas(), thresholds)
    star = assign_stars(cand[is_star(cand)] if cfg["stars_only"] else cand, cfg["match_arcsec"])
    extragalactic = cand[~is_star(cand)] if cfg["stars_only"] else cand.iloc[0:0]
    obs = _observations(run, sm, star, cfg["match_arcsec"])
    stars, nebular = split_nebular(group_by_star(star, obs, cfg["ew_floor"]))
    stars.to_csv(out / "catalogue.csv", index=False)
    nebular.to_csv(out / "nebular.csv", index=False)
    extragalactic.drop(columns=["scored_at"], errors="ignore").to_csv(out / "extragalactic.csv", index=False)
    n_scored = int(by_class["count"].sum())
    write_votable(stars, str(out / "catalogue.vot"),
                  {"model_version": version or "", "run_id": run.run_id, "warehouse": run.wh.root,
                   "thresholds": json.dumps(thresholds), "n_scored": n_scored})
    labelling = labelling_export(s.orderBy(F.desc("entropy")).limit(cfg["labelling"]).toPandas(), cfg["labelling"])
    labelling.to_csv(out / "labelling.csv", index=False)
    disagree = _disagreements(run, sm, out, cfg["disagreements_listed"])

    sample = sm.select("label", "lamost_class", "ha_ew", *[f"p_{c}" for c in CLASSES])
    if n_scored > cfg["histogram_sample"]:  # only the histograms are drawn from a sample
        sample = sample.sample(fraction=cfg["histogram_sample"] / n_scored, seed=1)
    sample = sample.toPandas()
    plots.counts_plot(by_class, out / "counts.png")
    plots.probability_histograms(sample, thresholds, out / "probabilities.png")
    plots.ew_histogram(sample, out / "ew.png")
    plots.ew_vs_probability(sample, DISAGREE_EW, out / "ew-vs-p.png")
    plots.sky_map(stars, out / "sky.png")
    variable = stars[stars["ha_variable"].astype(bool)].head(cfg["variable_plots"])
    plots.ew_over_time(obs, variable, out / "ew-time.png")
    made = _plot_spectra(run, s, stars, nebular, labelling, out, top, cfg)
    run.summary.update(candidates_stars=len(stars), candidate_spectra_stars=len(star),
                       candidates_extragalactic=len(extragalactic), nebular_stars=len(nebular),
                       labelling=len(labelling), disagreements=disagree["n"], variable_stars=int(stars["ha_variable"].sum()))
    return {"n_star_candidates": len(stars), "n_star_candidate_spectra": len(star),
            "n_extragalactic": len(extragalactic), "n_nebular": len(nebular),
            "top_rows": stars.head(top).to_dict("records"), "nebular_rows": nebular.head(top).to_dict("records"),
            "top_plots": made["top"], "nebular_plots": made["nebular"], "class_plots": {c: made[c] for c in CLASSES},
            "n_labelling": len(labelling), "labelling_plots": made["uncertain"],
            "histogram_sampled": n_scored > cfg["histogram_sample"], "disagree": disagree,
            "n_variable": int(stars["ha_variable"].sum()), "variable_plotted": len(variable)}


def _observations(run: JobRun, sm, cands: pd.DataFrame, radius_arcsec: float) -> pd.DataFrame:
    """Every scored observation of the candidates' stars (:func:`assign_stars`), LRS and MRS:
    the spectra within ``radius_arcsec`` of a star's mean position (designations of one star differ
    between surveys), and for a candidate without coordinates its own file; with ``star``, the key
    of the star each belongs to, and its measurements."""
    from pyspark.sql import functions as F
    cols = [*SPECTRUM_KEY, "designation", *MEASURED]
    pos = cands.groupby("star", sort=False)[["ra", "dec"]].mean().reset_index()
    pos = pos[np.isfinite(pos["ra"]) & np.isfinite(pos["dec"])]
    loose = cands.loc[~np.isfinite(pd.to_numeric(cands["ra"], errors="coerce"))
                      | ~np.isfinite(pd.to_numeric(cands["dec"], errors="coerce")), ["star", "source_path"]]
    if not len(pos) and not len(loose):
        return sm.limit(0).select(*cols, F.lit("").alias("star")).toPandas()
    run.describe(f"collect the observations of {len(pos) + len(loose)} candidate stars")
    zone = radius_arcsec / 3600.0 * 4  # degrees of declination per zone: a match is in the same or a neighbour
    xyz = unit_vectors(pos["ra"].to_numpy(float), pos["dec"].to_numpy(float))
    zones = np.floor(pos["dec"].to_numpy(float) / zone).astype(np.int64)
    small = pd.DataFrame({"star": np.repeat(pos["star"].to_numpy(object), 3), "zone": (zones[:, None] + [-1, 0, 1]).ravel(),
                          "sx": np.repeat(xyz[:, 0], 3), "sy": np.repeat(xyz[:, 1], 3), "sz": np.repeat(xyz[:, 2], 3)})
    stars = run.spark.createDataFrame(small, "star string, zone long, sx double, sy double, sz double")
    r, d = F.radians("ra"), F.radians("dec")
    near = (sm.filter(F.col("ra").isNotNull() & F.col("dec").isNotNull())
            .withColumn("zone", F.floor(F.col("dec") / zone).cast("long"))
            .join(F.broadcast(stars), "zone")
            .filter(F.col("sx") * F.cos(d) * F.cos(r) + F.col("sy") * F.cos(d) * F.sin(r) + F.col("sz") * F.sin(d)
                    >= float(np.cos(np.radians(radius_arcsec / 3600.0))))
            .select(*cols, "star"))
    if len(loose):
        by_path = sm.join(run.spark.createDataFrame(loose, "star string, source_path string"), "source_path")
        near = near.unionByName(by_path.select(*cols, "star"))
    return near.toPandas().drop_duplicates(SPECTRUM_KEY)


def _disagreements(run: JobRun, sm, out: Path, listed: int) -> dict[str, Any]:
    """Spectra where the network and the H-alpha measurement disagree (exact counts; the
    ``listed`` strongest of each kind in ``disagreements.csv``)."""
    from pyspark.sql import functions as F
    net_emission = F.col("label").isin("emission", "double_peak")
    kinds = {"emission_but_ew_nonnegative": net_emission & (F.col("ha_ew") >= 0),
             "absorption_but_ew_emission": (F.col("label") == "absorption") & (F.col("ha_ew") < DISAGREE_EW)}
    counts, parts = {}, []
    run.describe("find disagreements between network and measurement")
    for name, cond in kinds.items():
        d = sm.filter(cond)
        counts[name] = d.count()
        order = F.desc("p_best") if name.startswith("emission") else F.asc("ha_ew")
        parts.append(d.withColumn("p_best", F.greatest("p_emission", "p_double_peak")).orderBy(order).limit(listed)
                     .select(F.lit(name).alias("kind"), *SPECTRUM_KEY, "designation", "lamost_class", "lamost_subclass",
                             "label", "p_emission", "p_absorption", "p_double_peak", "ha_ew", "ha_ew_err",
                             "ha_profile", "nebular").toPandas())
    table = pd.concat(parts, ignore_index=True)
    table.to_csv(out / "disagreements.csv", index=False)
    return {"n": sum(counts.values()), "counts": counts, "rows": table.head(2 * 25).to_dict("records")}


def _plot_spectra(run: JobRun, s, catalogue: pd.DataFrame, nebular: pd.DataFrame, labelling: pd.DataFrame,
                  out: Path, top: int, cfg: dict[str, Any]) -> dict[str, list[str]]:
    """Plots of the top candidates, the nebular stars, random members of each class and the most
    uncertain spectra, each vector drawn on the grid its ``preprocess_id`` was made with."""
    from pyspark.sql import functions as F
    def keys(df: pd.DataFrame, path: str, exposure: str) -> list[tuple[str, str]]:
        exp = df[exposure].fillna("") if exposure in df else pd.Series("", index=df.index)
        return list(zip(df[path], exp))

    want: dict[str, list[tuple[str, str]]] = {
        "top": keys(catalogue.head(top), "best_source_path", "best_exposure"),
        "nebular": keys(nebular.head(top), "best_source_path", "best_exposure")}
    for c in CLASSES:
        want[c] = [(r["source_path"], r["exposure"]) for r in
                   s.filter(F.col("label") == c).orderBy(F.rand(seed=7)).limit(cfg["examples_per_class"]).collect()]
    want["uncertain"] = keys(labelling.head(cfg["labelling_plots"]), "source_path", "exposure")
    wanted = sorted({k for v in want.values() for k in v})
    rows = {}
    if wanted:
        run.describe(f"read {len(wanted)} spectra to plot")
        kdf = run.spark.createDataFrame(wanted, "source_path string, exposure string")
        joined = (run.read_table("spectra", SPECTRA_SCHEMA).join(kdf, SPECTRUM_KEY, "left_semi")
                  .join(s.drop("designation", "ra", "dec", "lamost_class", "lamost_subclass", "ingest_run"),
                        SPECTRUM_KEY))
        rows = {(r["source_path"], r["exposure"]): r for r in (x.asDict() for x in joined.collect())}
    made: dict[str, list[str]] = {k: [] for k in want}
    for group, ps in want.items():
        for i, p in enumerate(ps):
            if p not in rows:
                continue
            name = f"spec-{group}-{i:03d}.png"
            grid = recorded_grid(run.manifest, rows[p]["preprocess_id"], len(rows[p]["flux"]))
            plots.spectrum_plot(pd.Series(rows[p]), np.asarray(rows[p]["flux"]), grid, out / name)
            made[group].append(name)
    return made


def _model_section(mdir: Path | None, meta: dict[str, Any], out: Path) -> dict[str, Any]:
    """The model's evaluation plots (copied) and its test metrics as text."""
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
    return {"model_metrics": metrics_text, "model_plots": model_plots}


def _copy_maps(run: JobRun, out: Path) -> list[str]:
    """The newest explore run's maps, copied beside the report."""
    maps = []
    map_dirs = sorted(glob.glob(str(Path(local_path(run.wh.root)) / "reports" / "*" / "maps")))
    for p in sorted(glob.glob(os.path.join(map_dirs[-1], "*.png"))) if map_dirs else []:
        shutil.copy(p, out / f"map-{os.path.basename(p)}")
        maps.append(f"map-{os.path.basename(p)}")
    return maps


def _latest_runs(run: JobRun) -> list[tuple[str, str]]:
    """The newest run summary of each job, as ``(file name, JSON text)``."""
    runs = []
    for job in ("pipeline", "ingest", "score", "train", "trainset", "explore"):
        files = sorted(glob.glob(str(Path(local_path(run.wh.root)) / "runs" / f"{job}-*.json")))
        if files:
            runs.append((os.path.basename(files[-1]), Path(files[-1]).read_text()))
    return runs


def _render(page: dict[str, Any], out: Path) -> None:
    from jinja2 import Environment, PackageLoader, select_autoescape
    env = Environment(loader=PackageLoader("spectraldl.report", "templates"),  # works from a zip too
                      autoescape=select_autoescape(["html"]))
    defaults = {"n_star_candidates": 0, "n_star_candidate_spectra": 0, "n_extragalactic": 0, "top_rows": [],
                "top_plots": [], "class_plots": {}, "n_labelling": 0, "labelling_plots": [], "model_metrics": "",
                "model_plots": [], "histogram_sampled": False, "n_nebular": 0, "nebular_rows": [], "nebular_plots": [],
                "disagree": {"n": 0, "counts": {}, "rows": []}, "n_variable": 0, "variable_plotted": 0,
                "disagree_ew": DISAGREE_EW}
    html = env.get_template("index.html").render(**{**defaults, **page})
    (out / "index.html").write_text(html, encoding="utf-8")


def summary_line(s: dict[str, Any]) -> str:
    """The report job's last log line."""
    if s.get("nothing_to_do"):
        return f"report {s['run_id']}: nothing to rank ({s['nothing_to_do']}); open {s['report']}"
    return (f"report {s['run_id']}: {s['scored']} spectra scored by {s['model_version']}, "
            f"{s['candidates_stars']} star candidates ({s['candidate_spectra_stars']} spectra), "
            f"{s['candidates_extragalactic']} galaxies/QSOs apart; open {s['report']}")
