"""How far the synthetic spectra are from real ones: a classifier two-sample test.

The real spectra in ``../shared/data/real`` (LAMOST low-resolution files; Ondřejov files) and
synthetic ones made by the project's generator are turned into the vectors the network sees
(LAMOST: :func:`spectraldl.preprocess.preprocess`; Ondřejov: :func:`spectraldl.adapt.adapt_ondrejov`),
the synthetic files going through the same readers as bytes. A small classifier learns to tell
real from synthetic; its cross-validated AUC says how well it can (0.5: indistinguishable, 1:
always told apart). Out-of-fold scores also give the AUC within each spectral type.

LAMOST: each real spectrum gets ``k`` synthetic partners of the same LAMOST class and subclass
(``dM2`` and ``M2V`` are both M2; else the same letter), drawn from a pool of ``--pool``
synthetic spectra (seed 99). Ondřejov: each real file (23 labelled, 6 not) gets ``k`` synthetic
spectra of the same label (any label for the unlabelled). Real spectra are few (about 120 LAMOST,
29 Ondřejov), so the per-type AUCs carry wide errors: the fold-to-fold spread is printed.

    .venv/bin/python bench/realism.py [--k 3] [--pool 8000] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))
REAL = ROOT.parent / "shared" / "data" / "real"
TYPE_GROUPS = {"O": "O-B", "B": "O-B", "A": "A", "F": "F-G-K", "G": "F-G-K", "K": "F-G-K", "M": "M"}
LABELS = {0: "emission", 1: "absorption", 3: "double_peak"}


def subclass_key(lamost_class: str, sub: str | None) -> tuple[str, str]:
    """``(STAR, dM2)`` -> ``(STAR, M2)``; ``(STAR, A2V)`` -> ``(STAR, A2)``; galaxies: ``(GALAXY, '')``."""
    if lamost_class != "STAR":
        return str(lamost_class).upper(), ""
    m = re.match(r"^(?:sd|d|g)?([OBAFGKM])(\d?)", str(sub or ""))
    return "STAR", (m.group(1) + m.group(2)) if m else ""


def type_group(key: tuple[str, str]) -> str:
    return TYPE_GROUPS.get(key[1][:1], "other") if key[0] == "STAR" else key[0].lower()


def real_lamost(real: Path = REAL) -> pd.DataFrame:
    from spectraldl.io import read_spectrum
    from spectraldl.preprocess import preprocess
    rows = []
    for p in sorted((real / "lamost").rglob("*.fits*")):
        if p.name.startswith("med-"):
            continue
        try:
            s = read_spectrum(p)
            vec = preprocess(s.wavelength, s.flux, s.good)[0]
        except Exception:   # unreadable, MRS, window not covered: not part of the comparison
            continue
        rows.append({"file": str(p.relative_to(real)), "key": subclass_key(s.meta.get("lamost_class"),
                                                                          s.meta.get("lamost_subclass")),
                     "vec": vec})
    df = pd.DataFrame(rows)
    return df[df["key"].map(lambda k: k[0] in ("STAR", "GALAXY", "QSO") and (k[0] != "STAR" or bool(k[1])))]


def synth_pool(kind: str, n: int, seed: int) -> pd.DataFrame:
    """``n`` synthetic spectra written as bytes and read back, as vectors with their class keys."""
    from spectraldl.adapt import adapt_ondrejov
    from spectraldl.io import read_spectrum
    from spectraldl.preprocess import preprocess
    from spectraldl.synth import SynthConfig, make_spectrum
    from spectraldl.synth.formats import encode
    cfg = SynthConfig.defaults()
    rows = []
    for i in range(n):
        s = make_spectrum(i, seed=seed, kind=kind, cfg=cfg)
        t = s.truth
        try:
            spec = read_spectrum(encode(s), name=s.relpath)
            vec = (preprocess(spec.wavelength, spec.flux, spec.good)[0] if kind == "lamost"
                   else adapt_ondrejov(spec, name=s.relpath)[0])
        except Exception:
            continue
        if kind == "lamost":
            if t.get("dead_fibre"):
                continue
            key = subclass_key(t["lamost_class"], t["spectral_type"])
        else:
            key = ("label", LABELS.get(int(t["label"]), "unknown"))
        rows.append({"index": i, "key": key, "vec": vec, "class": t["class"],
                     "spectral_type": t.get("spectral_type")})
    return pd.DataFrame(rows)


def match(real: pd.DataFrame, pool: pd.DataFrame, k: int, seed: int, loose) -> pd.DataFrame:
    """``k`` synthetic partners per real row with the same key (else ``loose(key)``), no repeats."""
    rng = np.random.default_rng(seed)
    used: set[int] = set()
    picks = []
    for key in real["key"]:
        for cand in (pool.index[pool["key"] == key], pool.index[pool["key"].map(loose) == loose(key)], pool.index):
            free = [c for c in cand if c not in used]
            if len(free) >= k:
                chosen = rng.choice(free, size=k, replace=False)
                break
        used.update(int(c) for c in chosen)
        picks += [(int(c), key) for c in chosen]
    out = pool.loc[[c for c, _ in picks]].copy()
    out["key"] = [key for _, key in picks]   # scored within the real partner's type
    return out


def c2st(real: pd.DataFrame, syn: pd.DataFrame, group_of, folds: int = 5, seed: int = 0) -> dict:
    """Cross-validated AUC of logistic regression and of gradient boosting, real (1) vs synthetic (0);
    per type from the out-of-fold scores of gradient boosting."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    x = np.stack(list(real["vec"]) + list(syn["vec"])).astype(np.float64)
    y = np.r_[np.ones(len(real)), np.zeros(len(syn))]
    types = np.array([group_of(k) for k in list(real["key"]) + list(syn["key"])])
    models = {"logreg": lambda: make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000)),
              "gboost": lambda: HistGradientBoostingClassifier(max_depth=3, max_iter=150, learning_rate=0.1,
                                                               random_state=seed)}
    out = {"n_real": int(len(real)), "n_synthetic": int(len(syn))}
    for name, make in models.items():
        oof = np.zeros(len(y))
        per_fold = []
        for tr, te in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
            m = make().fit(x[tr], y[tr])
            oof[te] = m.predict_proba(x[te])[:, 1]
            per_fold.append(roc_auc_score(y[te], oof[te]))
        out[name] = {"auc": round(float(roc_auc_score(y, oof)), 3), "fold_sd": round(float(np.std(per_fold)), 3)}
        if name == "gboost":
            out["by_type"] = {}
            for t in sorted(set(types)):
                m = types == t
                if y[m].min() != y[m].max():
                    out["by_type"][t] = {"auc": round(float(roc_auc_score(y[m], oof[m])), 3),
                                         "n_real": int(y[m].sum())}
    return out


def run(k: int = 3, pool: int = 8000, ondrejov_pool: int = 1500, seed: int = 99, real: Path = REAL) -> dict:
    """Both two-sample tests: ``{"lamost": ..., "ondrejov": ...}`` as :func:`c2st` gives them."""
    from spectraldl.adapt import adapt_ondrejov
    from spectraldl.io import read_spectrum

    res = {}
    rl = real_lamost(real)
    syn = match(rl, synth_pool("lamost", pool, seed), k, seed, loose=lambda key: (key[0], key[1][:1]))
    res["lamost"] = c2st(rl, syn, type_group)

    lab = pd.read_csv(real / "labels/ondrejov-dataset.csv")
    by_stem = dict(zip(lab["id"].str.rsplit("/", n=1).str[-1], lab["label"]))
    rows = []
    for p in sorted((real / "ondrejov").rglob("*.fits")):
        vec = adapt_ondrejov(read_spectrum(p), name=str(p))[0]
        code = by_stem.get(p.name[:-5])
        rows.append({"file": p.name, "key": ("label", LABELS.get(code, "any") if code is not None else "any"),
                     "vec": vec})
    ro = pd.DataFrame(rows)
    osyn = match(ro, synth_pool("ondrejov", ondrejov_pool, seed), k, seed, loose=lambda key: ("label", "any"))
    res["ondrejov"] = c2st(ro, osyn, lambda key: key[1])
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--pool", type=int, default=8000)
    ap.add_argument("--ondrejov-pool", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=99)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    res = run(a.k, a.pool, a.ondrejov_pool, a.seed)
    print(json.dumps(res, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
