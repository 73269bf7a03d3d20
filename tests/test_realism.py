"""bench/realism.py, the classifier two-sample test real vs synthetic, gives the AUCs the README
states (generator as committed; the figures before its last change are in the README only)."""
from __future__ import annotations

import sys

import pytest

from conftest import REAL, ROOT

sys.path.insert(0, str(ROOT / "bench"))
import realism  # noqa: E402

pytestmark = pytest.mark.realdata


def test_realism_aucs():
    res = realism.run(real=REAL)
    lam, ond = res["lamost"], res["ondrejov"]
    assert (lam["n_real"], lam["n_synthetic"], ond["n_real"], ond["n_synthetic"]) == (124, 372, 29, 87)
    assert (lam["gboost"]["auc"], lam["logreg"]["auc"]) == (0.879, 0.829)
    assert {t: v["auc"] for t, v in lam["by_type"].items()} == {
        "A": 0.709, "F-G-K": 0.914, "M": 1.0, "O-B": 1.0, "galaxy": 0.453}
    assert {t: v["n_real"] for t, v in lam["by_type"].items()} == {"A": 20, "F-G-K": 90, "M": 7, "O-B": 2, "galaxy": 5}
    assert (ond["gboost"]["auc"], ond["logreg"]["auc"]) == (0.91, 0.865)
    assert ond["by_type"]["absorption"]["auc"] == 0.923
    readme = (ROOT / "README.md").read_text()
    for row in ("| LAMOST, all (124 real) | 0.908 | 0.944 | 0.829 | 0.879 |",
                "| LAMOST F-G-K (90) | | 0.985 | | 0.914 |",
                "| Ondřejov, all (29 real) | 0.867 | 0.922 | 0.865 | 0.910 |"):
        assert row in readme, row
