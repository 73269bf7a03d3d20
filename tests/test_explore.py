"""The explore job on a small warehouse of toy vectors: Spark PCA vs numpy, t-SNE, the PNG maps."""
from __future__ import annotations

import json

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from spectraldl.config import load_config
from spectraldl.explore import CLASS_COLOURS, LAMOST_COLOURS, run_explore
from spectraldl.preprocess import DEFAULT_SETTINGS
from spectraldl.trainset import TRAINSET_SCHEMA
from spectraldl.warehouse import Warehouse

X = np.linspace(-1, 1, 140)


def toy(rng, kind):
    v = rng.normal(0, 0.2, 140)
    if kind in ("emission", "GALAXY"):
        v += 3.0 * np.exp(-0.5 * (X / 0.05) ** 2)
    elif kind in ("absorption", "STAR"):
        v -= 2.0 * np.exp(-0.5 * (X / 0.1) ** 2)
    elif kind == "double_peak":
        v += 2.0 * (np.exp(-0.5 * ((X - 0.08) / 0.03) ** 2) + np.exp(-0.5 * ((X + 0.08) / 0.03) ** 2))
    else:  # QSO: a slope
        v += 1.5 * X
    return ((v - v.mean()) / v.std()).astype(np.float32)


@pytest.fixture(scope="module")
def explored(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("wh-explore")
    rng = np.random.default_rng(3)
    pid = DEFAULT_SETTINGS.fingerprint()
    lam = ["STAR"] * 200 + ["GALAXY"] * 60 + ["QSO"] * 40
    spectra = pd.DataFrame({"source_path": [f"/a/{i}.fits" for i in range(len(lam))], "lamost_class": lam,
                            "flux": [toy(rng, c).tolist() for c in lam], "preprocess_id": pid})
    names = ["emission"] * 50 + ["absorption"] * 50 + ["double_peak"] * 20
    ts = [(f"t{i}", f"/o/{i}.fits", f"S{i}", f"S{i}", {"emission": 0, "absorption": 1, "double_peak": 3}[c], c,
           toy(rng, c).tolist(), "train", pid, None) for i, c in enumerate(names)]
    spark.createDataFrame(spectra, "source_path string, lamost_class string, flux array<float>, preprocess_id string") \
        .write.parquet(f"file://{root}/spectra/run-a")
    spark.createDataFrame(ts, TRAINSET_SCHEMA).write.parquet(f"file://{root}/trainset/run-b")
    wh = Warehouse(str(root))
    wh.commit({"spectra": ["run-a"], "trainset": ["run-b"]}, {"job": "test"})
    cfg = load_config("local", overrides=["explore.archive_sample=100", "explore.trainset_sample=1000",
                                          "explore.tsne_max_iter=500"])
    summary = run_explore(spark, str(root), cfg)
    allv = np.vstack([np.vstack(spectra["flux"].map(np.asarray)), np.array([r[6] for r in ts])]).astype(float)
    return summary, allv, pd.read_csv(summary["embedding"])


def test_spark_pca_matches_numpy(explored):
    summary, allv, emb = explored
    assert summary["rows"] == {"archive": 300, "trainset": 120} and summary["pca_components"] == 30
    eig = np.linalg.eigvalsh(np.cov(allv, rowvar=False))[::-1]
    np.testing.assert_allclose(summary["explained_variance"], eig[:30] / eig.sum(), rtol=1e-6, atol=1e-9)
    # PC1 of the embedding is the projection on numpy's first eigenvector (up to sign)
    w = np.linalg.eigh(np.cov(allv, rowvar=False))[1][:, -1]
    assert emb["pc1"].notna().all()
    proj = dict(zip([f"/a/{i}.fits" for i in range(300)] + [f"t{i}" for i in range(120)], allv @ w))
    assert abs(np.corrcoef(emb["pc1"], emb["key"].map(proj))[0, 1]) > 0.999999


def test_sample_sizes_and_tsne_separates_classes(explored):
    summary, _, emb = explored
    assert summary["sampled"] == {"archive": 100, "trainset": 120}
    assert (emb["source"] == "archive").sum() == 100
    t = emb[emb["source"] == "trainset"]
    xy, y = t[["tsne_x", "tsne_y"]].to_numpy(), t["cls"].to_numpy()
    d = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1) + np.eye(len(xy)) * 1e12
    assert (y[d.argmin(1)] == y).mean() > 0.95  # 1-nearest-neighbour in the map finds the class


def _has_colour(img, hexcol, tol=0.02):
    rgb = np.array([int(hexcol[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    return int((np.abs(img[..., :3] - rgb).max(-1) < tol).sum())


def test_maps_show_what_they_claim(explored):
    summary, _, _ = explored
    assert set(summary["maps"]) == {f"{k}_{w}" for k in ("pca", "tsne") for w in ("trainset", "archive", "both")}
    for name, path in summary["maps"].items():
        img = mpimg.imread(path)
        assert img.shape[0] > 500 and img.shape[1] > 600
        if name.endswith("trainset") or name.endswith("both"):
            assert all(_has_colour(img, CLASS_COLOURS[c]) > 20 for c in ("emission", "absorption", "double_peak")), name
        if name.endswith("archive"):
            assert all(_has_colour(img, LAMOST_COLOURS[c]) > 20 for c in ("STAR", "GALAXY", "QSO")), name
            assert _has_colour(img, CLASS_COLOURS["emission"]) == 0
    on_disk = json.load(open(summary["summary_path"]))
    assert on_disk["status"] == "ok" and on_disk["job"] == "explore"


def test_empty_warehouse_is_nothing_to_do(spark, tmp_path):
    from spectraldl.explore import summary_line
    s = run_explore(spark, str(tmp_path), load_config("local"))
    assert s["status"] == "ok" and s["nothing_to_do"].startswith("too few vectors to map")
    assert "nothing to do (too few vectors to map" in summary_line(s)
    assert json.load(open(s["summary_path"]))["status"] == "ok"
