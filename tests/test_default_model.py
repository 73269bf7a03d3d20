"""The embedded default model on real data it was not trained on (LAMOST) and on the real Ondřejov files."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import REAL
from spectraldl.artifact import DEFAULT_MODEL_DIR, load_model
from spectraldl.io import read_spectrum
from spectraldl.models import CLASSES
from spectraldl.preprocess import DEFAULT_SETTINGS, preprocess

pytestmark = pytest.mark.realdata
NAMES = {0: "emission", 1: "absorption", 3: "double_peak"}


@pytest.fixture(scope="module")
def model():
    m, meta = load_model(DEFAULT_MODEL_DIR)
    assert meta["preprocess_id"] == DEFAULT_SETTINGS.fingerprint()
    assert meta["grid"] == {"start": 6519.0, "stop": 6732.0, "n": 140} and meta["arch"] == "cnn"
    return m


def labelled_pairs() -> pd.DataFrame:
    pairs = pd.read_csv(REAL / "labels/cross-matched-pairs.csv")
    lab = pd.read_csv(REAL / "labels/ondrejov-dataset.csv")
    lab["stem"] = lab["id"].str.rsplit("/", n=1).str[-1]
    pairs["stem"] = pairs["ondrejov_file"].str.rsplit("/", n=1).str[-1].str.replace(".fits", "", regex=False)
    return pairs.merge(lab[["stem", "label"]], on="stem")


def predict_lamost(model, rel_paths):
    vecs = []
    for rel in rel_paths:
        s = read_spectrum(REAL / rel)
        vecs.append(preprocess(s.wavelength, s.flux, s.good)[0])
    return model.predict(np.stack(vecs), verbose=0)


def test_real_lamost_cross_matched_stars(model):
    """LAMOST spectra of 22 stars whose Ondřejov spectra carry labels: the LAMOST files were never
    seen in training (only Ondřejov spectra were)."""
    pairs = labelled_pairs()
    assert len(pairs) == 22
    p = predict_lamost(model, pairs["lamost_file"])
    pred = [CLASSES[i] for i in p.argmax(1)]
    truth = [NAMES[c] for c in pairs["label"]]
    agree = sum(a == b for a, b in zip(pred, truth))
    assert agree >= 20, list(zip(pairs["lamost_file"], truth, pred))
    emitters = [i for i, t in enumerate(truth) if t != "absorption"]
    assert len(emitters) == 4 and all(pred[i] == truth[i] for i in emitters)   # every emitter found


def test_bt_cmi_and_cool_stars(model):
    lamost = sorted(p for p in (REAL / "lamost").rglob("*.fits*") if not p.name.startswith("med-"))
    cool = []
    for p in lamost:
        s = read_spectrum(p)
        sub = s.meta.get("lamost_subclass") or ""
        if sub.startswith(("dM", "K")):
            try:
                cool.append(preprocess(s.wavelength, s.flux, s.good)[0])
            except Exception:
                continue
    bt = predict_lamost(model, ["lamost/podondra_bt-spectraldl/bt-cmi-lamost.fits"])[0]
    assert CLASSES[bt.argmax()] == "emission" and bt[0] > 0.9         # BT CMi, a Be star
    pc = model.predict(np.stack(cool), verbose=0)
    # the real K and M dwarfs here show H-alpha in absorption: left alone
    assert len(cool) >= 30 and (pc.argmax(1) == 1).mean() >= 0.95
