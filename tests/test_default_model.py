"""The embedded default model on what it never saw, asserted exactly as the README states it.

- what it saw: ``trainset-groups.csv`` beside the model (every star: split, spectra, synthetic or
  real); the 22 cross-matched stars and BT CMi are in none of train / val / test;
- the external test: the LAMOST spectra of those 23 stars, per star;
- the real LAMOST K and M dwarfs (H-alpha in absorption);
- a synthetic LAMOST archive (seed 2026): emission recall and false positives by spectral type
  and by line strength.

The figures come from ``bench/default_model.py`` (which prints the README's rows); a retrained
default model changes them, and this test says where.
"""
from __future__ import annotations

import json
import sys

import pandas as pd
import pytest

from conftest import REAL, ROOT
from spectraldl.artifact import DEFAULT_MODEL_DIR, load_model
from spectraldl.labels import group_key
from spectraldl.preprocess import DEFAULT_SETTINGS

sys.path.insert(0, str(ROOT / "bench"))
import default_model as dm  # noqa: E402

pytestmark = pytest.mark.realdata

#: (object, truth, prediction, probability of the prediction) of the 23 held-out stars
EXTERNAL = [
    ("GALEX0639+5156", "absorption", "absorption", 1.0), ("HD 31894", "absorption", "absorption", 1.0),
    ("HIP27249", "absorption", "absorption", 1.0), ("HD 187523", "absorption", "absorption", 1.0),
    ("HD 66665", "absorption", "absorption", 1.0), ("HR1097", "absorption", "absorption", 1.0),
    ("HD 50975", "absorption", "absorption", 1.0), ("HD 34452", "absorption", "absorption", 1.0),
    ("HD 46056", "absorption", "absorption", 1.0), ("HD 32328", "absorption", "absorption", 1.0),
    ("HR 3135", "emission", "emission", 1.0), ("omi Per", "absorption", "absorption", 1.0),
    ("V1150 Tau", "emission", "emission", 1.0), ("HD 31617", "absorption", "absorption", 1.0),
    ("HIP53355", "absorption", "absorption", 1.0), ("HD 277197", "absorption", "absorption", 1.0),
    ("GALEXJ1348+4337", "absorption", "absorption", 1.0), ("V395 Aur", "double_peak", "double_peak", 1.0),
    ("UZLyr", "absorption", "absorption", 1.0), ("HIP47636", "absorption", "absorption", 1.0),
    ("HD 53416", "emission", "emission", 1.0), ("HD90052", "absorption", "absorption", 1.0),
    ("BT CMi", "emission", "emission", 0.973),
]
#: type group: emitters recalled, emitters, clean absorption stars flagged, clean absorption stars,
#: absorption stars behind an H II region flagged, such stars
BY_TYPE = {"O-B": (443, 454, 0, 108, 6, 8), "A": (113, 117, 0, 418, 16, 31),
           "F-G-K": (66, 66, 4, 3328, 149, 213), "M": (171, 174, 2, 462, 33, 34)}
#: strength bin: recalled, emitters
BY_STRENGTH = {"< 0.1": (0, 0), "0.1-0.3": (4, 4), "0.3-1": (215, 228), "1-3": (424, 429), ">= 3": (150, 150)}
#: real LAMOST K and M dwarfs, how many called absorption, the others (file, subclass, class, probability)
COOL_DWARFS = (37, 33, [("spec-56257-GAC089N38V2_sp01-006.fits", "K3", "double_peak", 1.0),
                        ("spec-58575-HD103621N361936B01_sp03-030.fits", "dM1", "emission", 1.0),
                        ("spec-58575-HD103621N361936B01_sp03-121.fits", "K7", "emission", 1.0),
                        ("spec-58575-HD103621N361936B01_sp03-206.fits", "K5", "emission", 1.0)])
README = (ROOT / "README.md").read_text()


@pytest.fixture(scope="module")
def model():
    m, meta = load_model(DEFAULT_MODEL_DIR)
    assert meta["preprocess_id"] == DEFAULT_SETTINGS.fingerprint()
    assert meta["grid"] == {"start": 6519.0, "stop": 6732.0, "n": 140} and meta["arch"] == "cnn"
    return m


def test_the_model_never_saw_the_external_stars():
    """trainset-groups.csv: the 23 stars are held out (22) or not in the table at all (BT CMi,
    whose Ondřejov files carry no label); the only real star left in train/val/test is HD 208905;
    the counts agree with the model's own."""
    groups = pd.read_csv(DEFAULT_MODEL_DIR / "trainset-groups.csv")
    meta = json.loads((DEFAULT_MODEL_DIR / "model.json").read_text())
    ext = {group_key(o, None, None, "") for o in dm.external_stars(REAL)["object"]}
    assert len(ext) == 23
    seen = groups[groups["split"] != "holdout"]
    assert not ext & set(seen["group"])
    held = groups[groups["split"] == "holdout"]
    assert set(held["group"]) == ext - {"BTCMI"} and (held["source"] == "real").all() and held["n_spectra"].sum() == 22
    real_seen = seen[seen["source"] == "real"]
    assert real_seen[["group", "split", "n_spectra"]].values.tolist() == [["HD208905", "val", 1]]
    assert seen.groupby("split")["n_spectra"].sum().to_dict() == meta["training"]["n"]
    assert meta["training"]["n"] == {"train": 8828, "val": 1893, "test": 1891}
    stems = [ln for ln in (DEFAULT_MODEL_DIR / "holdout.txt").read_text().splitlines() if not ln.startswith("#")]
    assert len(stems) == 25 and "BT CMi" in stems


def test_external_stars(model):
    """The LAMOST spectra of the 22 cross-matched stars and of BT CMi: 23 of 23."""
    ext = dm.external_table(model, REAL)
    got = list(zip(ext["object"], ext["truth"], ext["predicted"], ext["p_predicted"]))
    assert got == EXTERNAL
    assert ext.groupby("truth")["correct"].agg(["sum", "count"]).to_dict("index") == {
        "absorption": {"sum": 18, "count": 18}, "double_peak": {"sum": 1, "count": 1},
        "emission": {"sum": 4, "count": 4}}
    assert (min(ext["p_truth"]), ext["object"][ext["p_truth"].idxmin()]) == (0.973408, "BT CMi")
    assert min(ext.loc[ext["object"] != "BT CMi", "p_truth"]) == 1.0   # rounded to 6 decimals
    for row in dm.markdown_external(ext):
        assert row in README, row


def test_real_cool_dwarfs_left_alone(model):
    n, n_abs, flagged = dm.cool_dwarfs(model, REAL)
    assert (n, n_abs, sorted(flagged)) == COOL_DWARFS


def test_synthetic_archive_by_type_and_strength(model):
    df = dm.synthetic_archive(model)
    assert len(df) == 5413
    t, s = dm.by_type(df), dm.by_strength(df)
    assert {r.type_group: (r.recalled, r.emitters, r.false_positives, r.absorption, r.flagged_nebular,
                           r.absorption_nebular) for r in t.itertuples()} == BY_TYPE
    assert {r.strength_bin: (r.recalled, r.emitters) for r in s.itertuples()} == BY_STRENGTH
    for row in dm.markdown_by_type(t) + dm.markdown_by_strength(s):
        assert row in README, row


def test_readme_sentences():
    for text in ("23 of 23", "18 of 18 absorption", "4 of 4 emission", "1 of 1 double-peak",
                 "33 of 37\nabsorption", "8,828 / 1,893 / 1,891", "accuracy 1.000, macro F1 1.000",
                 "204 of 286", "(6 of 4,316)", "0.973 (BT CMi), the other 22 get 1.000", "kept epoch 17 of 23",
                 "0.003 after the\nfirst epoch"):
        assert text in README, text
