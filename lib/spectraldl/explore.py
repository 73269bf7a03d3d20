"""The explore job: maps of the archive and the training set (Spark ML PCA, then t-SNE on a sample).

Do the domain-adapted Ondřejov spectra look like LAMOST spectra, and do the classes separate?

1. PCA is fitted with Spark ML (:class:`pyspark.ml.feature.PCA`, distributed: the n x n
   covariance of the n-point vectors is summed over the partitions) on every vector of ``W/spectra`` and ``W/trainset``
   together, so both live in one space;
2. a random sample (``[explore] archive_sample`` archive rows, ``trainset_sample`` training rows)
   is projected onto ``pca_components`` components and brought to the driver, where t-SNE
   (scikit-learn) maps it to 2-D;
3. PNG maps (matplotlib, Agg) go to ``W/reports/<run_id>/maps/``: PCA and t-SNE of the training
   set by class, of the archive by LAMOST class, and both together; the coordinates to
   ``embedding.csv`` beside them; the run summary to ``W/runs/explore-<run_id>.json``.

Explore only reads the tables (no lock): the manifest pinned at its start makes what it reads a
consistent state, kept by cleanup for ``warehouse.retention_hours``.
"""
from __future__ import annotations

import io
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .errors import UsageError
from .ingest import SPECTRA_SCHEMA
from .lifecycle import JobRun
from .warehouse import Warehouse, is_local, local_path

log = logging.getLogger(__name__)

CLASS_COLOURS = {"emission": "#d62728", "absorption": "#1f77b4", "double_peak": "#2ca02c", "unknown": "#7f7f7f"}
LAMOST_COLOURS = {"STAR": "#1f77b4", "GALAXY": "#ff7f0e", "QSO": "#9467bd", "Unknown": "#8c564b", "none": "#7f7f7f"}


@dataclass(frozen=True)
class ExploreSettings:
    """``[explore]`` in conf/."""

    archive_sample: int = 5000
    trainset_sample: int = 1000
    pca_components: int = 30
    tsne_perplexity: float = 30.0
    tsne_max_iter: int = 1000
    tsne_threads: int = 1
    seed: int = 42
    point_size: float = 4.0

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> "ExploreSettings":
        return cls(**{k: section[k] for k in cls.__dataclass_fields__ if k in section})


def tsne_2d(x: np.ndarray, perplexity: float, max_iter: int, seed: int, threads: int = 1) -> np.ndarray:
    """t-SNE of ``x`` to 2-D; the perplexity is lowered for small samples (it must stay < n / 3).

    OpenMP and BLAS are held to ``threads``: on a driver whose cores are busy (local mode, shared
    machines) their spinning threads made a 400-point t-SNE take 23 s instead of 1.6 s.
    """
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits
    n = len(x)
    if n < 5:
        return np.zeros((n, 2)) if n < 2 else x[:, :2] - x[:, :2].mean(axis=0)
    p = float(min(perplexity, max(2.0, (n - 1) / 3.0)))
    with threadpool_limits(max(1, threads)):
        return TSNE(n_components=2, perplexity=p, init="pca", random_state=seed, max_iter=max(250, max_iter),
                    learning_rate="auto", n_jobs=max(1, threads)).fit_transform(x)


def _write_bytes(wh: Warehouse, path: str, data: bytes) -> None:
    """Binary write through the warehouse's file system (local, or Hadoop/S3 via pyarrow)."""
    wh.fs.mkdirs(path.rsplit("/", 1)[0])
    if is_local(path) and not wh.force_hadoop:
        with open(local_path(path), "wb") as fh:
            fh.write(data)
        return
    from pyarrow import fs as pafs
    fs, p = pafs.FileSystem.from_uri(path.replace("s3a://", "s3://", 1))
    with fs.open_output_stream(p) as fh:
        fh.write(data)


def scatter(ax, xy: np.ndarray, cats: pd.Series, colours: dict[str, str], size: float, alpha: float = 0.8,
            label_prefix: str = "") -> None:
    """One coloured scatter per category, biggest first, with counts in the legend."""
    for c, n in cats.value_counts().items():
        m = (cats == c).to_numpy()
        ax.scatter(xy[m, 0], xy[m, 1], s=size, alpha=alpha, lw=0, color=colours.get(c, None),
                   label=f"{label_prefix}{c} ({n})")


def _figure(title: str, xlabel: str, ylabel: str):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7.5, 6.5), dpi=110)
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return fig, ax


def _save(wh: Warehouse, fig, path: str) -> str:
    import matplotlib.pyplot as plt
    for ax in fig.axes:
        if ax.get_legend_handles_labels()[0]:
            leg = ax.legend(fontsize=8, loc="best", framealpha=0.85)
            for h in leg.legend_handles:
                h.set_sizes([30.0])
                h.set_alpha(1.0)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    _write_bytes(wh, path, buf.getvalue())
    return path


def draw_maps(wh: Warehouse, out_dir: str, emb: pd.DataFrame, s: ExploreSettings, evr: list[float]) -> dict[str, str]:
    """The PNG maps of ``emb`` (columns source, cls, pc1, pc2, tsne_x, tsne_y); returns name -> path."""
    paths: dict[str, str] = {}
    arch, train = emb[emb["source"] == "archive"], emb[emb["source"] == "trainset"]
    size = s.point_size * float(np.clip(3000 / max(len(emb), 1), 1.0, 6.0))  # small samples: bigger dots
    pcs = (f"PC1 ({evr[0]:.0%} of variance)" if evr else "PC1", f"PC2 ({evr[1]:.0%})" if len(evr) > 1 else "PC2")
    for kind, cols, labels in (("pca", ["pc1", "pc2"], pcs), ("tsne", ["tsne_x", "tsne_y"], ("t-SNE 1", "t-SNE 2"))):
        what = "PCA (Spark ML)" if kind == "pca" else f"t-SNE of {s.pca_components} PCA components"
        if len(train):
            fig, ax = _figure(f"training set by class: {what}", *labels)
            scatter(ax, train[cols].to_numpy(), train["cls"], CLASS_COLOURS, size)
            paths[f"{kind}_trainset"] = _save(wh, fig, f"{out_dir}/{kind}_trainset.png")
        if len(arch):
            fig, ax = _figure(f"LAMOST archive by LAMOST class: {what}", *labels)
            scatter(ax, arch[cols].to_numpy(), arch["cls"], LAMOST_COLOURS, size, alpha=0.6)
            paths[f"{kind}_archive"] = _save(wh, fig, f"{out_dir}/{kind}_archive.png")
        if len(train) and len(arch):
            fig, ax = _figure(f"archive (grey) and training set (by class): {what}", *labels)
            ax.scatter(arch[cols[0]], arch[cols[1]], s=size, lw=0, alpha=0.35, color="#9a9a9a",
                       label=f"LAMOST archive ({len(arch)})")
            scatter(ax, train[cols].to_numpy(), train["cls"], CLASS_COLOURS, size * 1.5,
                    label_prefix="training: ")
            paths[f"{kind}_both"] = _save(wh, fig, f"{out_dir}/{kind}_both.png")
    return paths


def run_explore(spark, warehouse: str, config: dict[str, Any], parent: JobRun | None = None) -> dict[str, Any]:
    """Fit the PCA, embed a sample with t-SNE and draw the maps; returns the run summary.

    Reads the tables of the manifest it started from (no lock: it writes only its own
    ``W/reports/<run_id>/maps``). Empty tables are no work: the run ends ok and says so.
    """
    s = ExploreSettings.from_config(config["explore"])
    with JobRun(spark, "explore", warehouse, config, parent=parent) as run:
        run.summary["settings"] = s.__dict__.copy()
        run.summary.update(rows={}, sampled={}, maps={}, explained_variance=[0.0, 0.0], pca_components=0)
        parts = _tables(run)
        run.describe("count")
        counts = {name: df.count() for name, df in parts}
        run.summary["rows"] = counts
        if sum(counts.values()) < 3:
            run.nothing_to_do(f"too few vectors to map ({counts or 'no spectra and no training set'})")
            return run.summary
        emb, evr, k, pids = _embed(run, parts, counts, s)
        out_dir = run.wh.path("reports", run.run_id, "maps")
        maps = draw_maps(run.wh, out_dir, emb, s, evr)
        _write_bytes(run.wh, f"{out_dir}/embedding.csv", emb.to_csv(index=False).encode())
        run.summary.update(preprocess_ids=pids, pca_components=k, explained_variance=evr,
                           sampled={n: int((emb["source"] == n).sum()) for n, _ in parts},
                           sampled_by_class={f"{a}:{b}": int(v) for (a, b), v in emb.groupby(["source", "cls"]).size().items()},
                           maps=maps, embedding=f"{out_dir}/embedding.csv")
        return run.summary


def _tables(run: JobRun) -> list[tuple[str, Any]]:
    """``(name, rows)`` of the archive and the training set, in common columns."""
    from pyspark.sql import functions as F
    parts = []
    if run.table_dirs("spectra"):
        mrs = F.col("exposure") != ""  # an MRS spectrum: its file and table; no LAMOST class
        parts.append(("archive", run.read_table("spectra", SPECTRA_SCHEMA).select(
            F.lit("archive").alias("source"),
            F.when(mrs, F.concat("source_path", F.lit("["), "exposure", F.lit("]"))).otherwise(F.col("source_path"))
            .alias("key"),
            F.coalesce("lamost_class", F.when(mrs, F.lit("MRS")), F.lit("none")).alias("cls"), "flux", "preprocess_id")))
    if run.table_dirs("trainset"):
        parts.append(("trainset", run.read_table("trainset").select(
            F.lit("trainset").alias("source"), F.col("id").alias("key"), F.col("label_name").alias("cls"),
            "flux", "preprocess_id")))
    return parts


def _embed(run: JobRun, parts, counts: dict[str, int], s: ExploreSettings):
    """PCA on every vector (Spark ML), t-SNE of a sample on the driver: ``(embedding, explained
    variance, components, preprocess ids)``. The vector length comes from the data."""
    from pyspark.ml.feature import PCA
    from pyspark.ml.functions import array_to_vector, vector_to_array
    from pyspark.sql import functions as F
    allrows = parts[0][1] if len(parts) == 1 else parts[0][1].unionByName(parts[1][1])
    shapes = {r[0]: r[1] for r in allrows.groupBy("preprocess_id").agg(F.max(F.size("flux"))).collect()}
    pids = sorted(shapes)
    if len(set(shapes.values())) > 1:
        raise UsageError(f"explore: the tables hold vectors of different lengths {shapes}: re-ingest or rebuild "
                         "the training set with one preprocessing")
    if len(pids) > 1:
        log.warning("explore: the tables hold vectors of %d preprocessings %s: the maps mix them", len(pids), pids)
    n_points = next(iter(shapes.values()))
    k = int(min(s.pca_components, n_points, max(2, sum(counts.values()) - 1)))
    run.describe(f"PCA fit on {sum(counts.values())} vectors")
    model = PCA(k=k, inputCol="features", outputCol="pca").fit(allrows.withColumn("features", array_to_vector("flux")))
    evr = [float(v) for v in model.explainedVariance.toArray()]
    samples = []  # a sample of each table, projected with the fitted model
    for name, df in parts:
        n_want = s.archive_sample if name == "archive" else s.trainset_sample
        frac = min(1.0, 1.5 * n_want / max(1, counts[name]))
        samples.append(df.sample(False, frac, seed=s.seed).limit(n_want))
    sample = samples[0] if len(samples) == 1 else samples[0].unionByName(samples[1])
    run.describe("project the sample")
    proj = model.transform(sample.withColumn("features", array_to_vector("flux")))
    emb = proj.select("source", "key", "cls", vector_to_array("pca").alias("pca")).toPandas()
    x = np.vstack(emb["pca"].to_numpy()) if len(emb) else np.zeros((0, k))
    emb = emb.drop(columns="pca")
    emb["pc1"], emb["pc2"] = x[:, 0], x[:, 1]
    t_tsne = time.time()
    xy = tsne_2d(x, s.tsne_perplexity, s.tsne_max_iter, s.seed, s.tsne_threads)
    run.summary["tsne_seconds"] = round(time.time() - t_tsne, 3)
    emb["tsne_x"], emb["tsne_y"] = xy[:, 0], xy[:, 1]
    return emb, evr, k, pids


def summary_line(s: dict[str, Any]) -> str:
    """The job's last log line."""
    if s.get("nothing_to_do"):
        return f"explore {s['run_id']}: nothing to do ({s['nothing_to_do']}); {s['seconds']:.1f} s"
    rows = ", ".join(f"{k} {v}" for k, v in s["rows"].items())
    smp = ", ".join(f"{k} {v}" for k, v in s["sampled"].items())
    ev = sum(s["explained_variance"][:2])
    return (f"explore {s['run_id']}: PCA on {rows} vectors ({s['pca_components']} components, PC1+PC2 "
            f"{ev:.0%} of variance); t-SNE of {smp}; {len(s['maps'])} maps in "
            f"{s['maps'] and next(iter(s['maps'].values())).rsplit('/', 1)[0]}; {s['seconds']:.1f} s")
