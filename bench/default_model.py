"""The embedded default model on what it never saw: the figures the README gives and
tests/test_default_model.py asserts.

1. The external test: the LAMOST spectra of the 22 cross-matched stars (truth: the label of
   their Ondřejov spectrum) and of BT CMi (a Be star with H-alpha in emission; its Ondřejov
   spectra carry no label). scripts/train_default_model.sh holds all 23 stars out of
   training, validation and test (split ``holdout``), so the model saw none of their spectra.
2. A synthetic LAMOST archive (the project's generator, ``make_spectrum``, seed 2026, in memory):
   emission recall and false-positive rate by spectral type (O-B, A, F-G-K, M) and by line
   strength (the truth's ``strength``: the largest departure from the continuum within 10 Å of
   H-alpha, in continuum units); false positives apart for absorption stars with and without an
   H II region's sky-subtraction residual (narrow H-alpha and [N II] in emission) in front. A
   spectrum is flagged when the arg-max class is emission or
   double-peak (the default model's thresholds are all 0.5); stars only, dead fibres left out.

    .venv/bin/python bench/default_model.py [--n 6000] [--model DIR] [--csv-dir DIR]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))
REAL = ROOT.parent / "shared" / "data" / "real"

NAMES = {0: "emission", 1: "absorption", 3: "double_peak"}
BT_CMI = ("BT CMi", "ondrejov/podondra_bt-spectraldl/bt-cmi-ondrejov.fits",
          "lamost/podondra_bt-spectraldl/bt-cmi-lamost.fits", "emission")
SYNTH_SEED, SYNTH_N = 2026, 6000
TYPE_GROUPS = {"O": "O-B", "B": "O-B", "A": "A", "F": "F-G-K", "G": "F-G-K", "K": "F-G-K", "M": "M"}
TYPE_ORDER = ["O-B", "A", "F-G-K", "M"]
STRENGTH_BINS = [-np.inf, 0.1, 0.3, 1.0, 3.0, np.inf]
STRENGTH_LABELS = ["< 0.1", "0.1-0.3", "0.3-1", "1-3", ">= 3"]


def external_stars(real: Path = REAL) -> pd.DataFrame:
    """The 23 held-out stars: object, Ondřejov file, LAMOST file, truth."""
    from spectraldl.io import read_spectrum
    pairs = pd.read_csv(real / "labels/cross-matched-pairs.csv")
    lab = pd.read_csv(real / "labels/ondrejov-dataset.csv")
    lab["stem"] = lab["id"].str.rsplit("/", n=1).str[-1]
    pairs["stem"] = pairs["ondrejov_file"].str.rsplit("/", n=1).str[-1].str.replace(".fits", "", regex=False)
    pairs = pairs.merge(lab[["stem", "label"]], on="stem", how="left")
    rows = [(read_spectrum(real / o).meta.get("object"), o, la, NAMES[int(c)])
            for o, la, c in zip(pairs["ondrejov_file"], pairs["lamost_file"], pairs["label"])]
    rows.append(BT_CMI)
    return pd.DataFrame(rows, columns=["object", "ondrejov_file", "lamost_file", "truth"])


def predict_files(model, real: Path, rel_paths) -> np.ndarray:
    from spectraldl.io import read_spectrum
    from spectraldl.preprocess import preprocess
    vecs = []
    for rel in rel_paths:
        s = read_spectrum(real / rel)
        vecs.append(preprocess(s.wavelength, s.flux, s.good)[0])
    return model.predict(np.stack(vecs), verbose=0)


def external_table(model, real: Path = REAL) -> pd.DataFrame:
    """Per star: truth, prediction, the predicted class's probability and the truth's."""
    from spectraldl.models import CLASSES
    stars = external_stars(real)
    p = predict_files(model, real, stars["lamost_file"])
    stars["predicted"] = [CLASSES[i] for i in p.argmax(1)]
    stars["p_predicted"] = [round(float(v), 3) for v in p.max(1)]
    stars["p_truth"] = [round(float(p[k, CLASSES.index(t)]), 6) for k, t in enumerate(stars["truth"])]
    stars["correct"] = stars["predicted"] == stars["truth"]
    return stars


def synthetic_archive(model, n: int = SYNTH_N, seed: int = SYNTH_SEED) -> pd.DataFrame:
    """Truth and prediction of ``n`` synthetic LAMOST spectra (stars, no dead fibres)."""
    from spectraldl.io import SpectrumError
    from spectraldl.models import CLASSES
    from spectraldl.preprocess import preprocess
    from spectraldl.synth import SynthConfig, make_spectrum
    cfg = SynthConfig.defaults()
    rows, vecs = [], []
    for i in range(n):
        s = make_spectrum(i, seed=seed, kind="lamost", cfg=cfg)
        t = s.truth
        if t["class"] not in ("absorption", "emission", "double_peak") or t["dead_fibre"]:
            continue
        good = np.isfinite(s.flux) & (s.andmask == 0 if s.andmask is not None else True)
        try:
            vecs.append(preprocess(s.wavelength, s.flux, good)[0])
        except SpectrumError:
            continue
        rows.append({k: t[k] for k in ("index", "class", "spectral_type", "strength", "ha_ew_true", "snr",
                                       "nebular")})
    df = pd.DataFrame(rows)
    p = model.predict(np.stack(vecs), batch_size=1024, verbose=0)
    df["predicted"] = [CLASSES[i] for i in p.argmax(1)]
    df["emitter"] = df["class"] != "absorption"
    df["flagged"] = df["predicted"] != "absorption"
    df["type_group"] = df["spectral_type"].str[0].map(TYPE_GROUPS)
    df["strength_bin"] = pd.cut(df["strength"], STRENGTH_BINS, labels=STRENGTH_LABELS, right=False)
    return df


def rates(df: pd.DataFrame, by: str, order: list[str]) -> pd.DataFrame:
    """Per value of ``by``: emitters, recalled, recall; absorption stars without and with an H II
    region's sky residual in front (``nebular``), how many of each are flagged, false-positive rates."""
    out = []
    for key in order:
        g = df[df[by] == key]
        e, a = g[g["emitter"]], g[~g["emitter"]]
        clean, neb = a[~a["nebular"]], a[a["nebular"]]
        out.append({by: key, "emitters": len(e), "recalled": int(e["flagged"].sum()),
                    "recall": round(e["flagged"].mean(), 3) if len(e) else None,
                    "absorption": len(clean), "false_positives": int(clean["flagged"].sum()),
                    "fpr": round(clean["flagged"].mean(), 4) if len(clean) else None,
                    "absorption_nebular": len(neb), "flagged_nebular": int(neb["flagged"].sum()),
                    "fpr_nebular": round(neb["flagged"].mean(), 3) if len(neb) else None})
    return pd.DataFrame(out)


def by_type(df: pd.DataFrame) -> pd.DataFrame:
    return rates(df, "type_group", TYPE_ORDER)


def by_strength(df: pd.DataFrame) -> pd.DataFrame:
    """Emitters only (false positives have no emission strength)."""
    t = rates(df[df["emitter"]], "strength_bin", STRENGTH_LABELS)
    return t[["strength_bin", "emitters", "recalled", "recall"]]


def cool_dwarfs(model, real: Path = REAL) -> tuple[int, int, list[tuple[str, str, str, float]]]:
    """The real LAMOST K and M dwarfs (subclass K* or dM*, all with H-alpha in absorption) that
    preprocess: how many, how many the model calls absorption, and the others (file name,
    subclass, predicted class, its probability)."""
    from spectraldl.io import read_spectrum
    from spectraldl.models import CLASSES
    from spectraldl.preprocess import preprocess
    vecs, names = [], []
    for p in sorted((real / "lamost").rglob("*.fits*")):
        if p.name.startswith("med-"):
            continue
        s = read_spectrum(p)
        sub = s.meta.get("lamost_subclass") or ""
        if sub.startswith(("dM", "K")):
            try:
                vecs.append(preprocess(s.wavelength, s.flux, s.good)[0])
            except Exception:
                continue
            names.append((p.name, sub))
    prob = model.predict(np.stack(vecs), verbose=0)
    pred = prob.argmax(1)
    flagged = [(n, sub, CLASSES[k], round(float(prob[i, k]), 3))
               for i, ((n, sub), k) in enumerate(zip(names, pred)) if k != 1]
    return len(vecs), int((pred == 1).sum()), flagged


def _num(v, fmt: str) -> str:
    return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else format(v, fmt)


def markdown_external(ext: pd.DataFrame) -> list[str]:
    """README rows: star, truth, prediction, probability of the prediction."""
    return [f"| {o} | {t.replace('_', '-')} | {p.replace('_', '-')} | {pp:.3f} |"
            for o, t, p, pp in zip(ext["object"], ext["truth"], ext["predicted"], ext["p_predicted"])]


def markdown_by_type(t: pd.DataFrame) -> list[str]:
    return [f"| {r.type_group} | {r.recalled} / {r.emitters} | {_num(r.recall, '.3f')} | "
            f"{r.false_positives} / {r.absorption} | {r.flagged_nebular} / {r.absorption_nebular} |"
            for r in t.itertuples()]


def markdown_by_strength(s: pd.DataFrame) -> list[str]:
    return [f"| {r.strength_bin} | {r.recalled} / {r.emitters} | {_num(r.recall, '.3f')} |"
            for r in s.itertuples() if r.emitters]


def main() -> None:
    import tensorflow as tf
    from spectraldl.artifact import DEFAULT_MODEL_DIR, load_model
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=SYNTH_N)
    ap.add_argument("--model", default=str(DEFAULT_MODEL_DIR))
    ap.add_argument("--csv-dir", default=None, help="also write external.csv, by_type.csv, by_strength.csv here")
    a = ap.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(1)
    model, _ = load_model(a.model)
    ext = external_table(model)
    pd.set_option("display.width", 200)
    print(ext.drop(columns=["ondrejov_file"]).to_string(index=False))
    print(f"correct {int(ext['correct'].sum())} of {len(ext)}; by truth:")
    print(ext.groupby("truth")["correct"].agg(["sum", "count"]))
    df = synthetic_archive(model, a.n)
    print(f"synthetic archive: {len(df)} stars scored")
    t, s = by_type(df), by_strength(df)
    print(t.to_string(index=False))
    print(s.to_string(index=False))
    print("\n".join(markdown_external(ext) + markdown_by_type(t) + markdown_by_strength(s)))
    n, n_abs, flagged = cool_dwarfs(model)
    print(f"real K and M dwarfs: {n}, called absorption: {n_abs}; the others: {flagged}")
    if a.csv_dir:
        d = Path(a.csv_dir)
        d.mkdir(parents=True, exist_ok=True)
        ext.to_csv(d / "external.csv", index=False)
        t.to_csv(d / "by_type.csv", index=False)
        s.to_csv(d / "by_strength.csv", index=False)


if __name__ == "__main__":
    main()
