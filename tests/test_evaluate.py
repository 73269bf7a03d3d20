"""Metrics and thresholds on hand-made predictions (values computed by hand)."""
import numpy as np
import pytest

from spectraldl.evaluate import choose_thresholds, per_class_metrics, thresholded_metrics


def test_per_class_metrics_by_hand():
    y = np.array([0, 0, 1, 1, 1, 2])
    p = np.array([0, 1, 1, 1, 2, 2])
    m = per_class_metrics(y, p)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 1], [0, 0, 1]]
    assert m["emission"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert m["absorption"]["precision"] == pytest.approx(2 / 3) and m["absorption"]["recall"] == pytest.approx(2 / 3)
    assert m["double_peak"]["precision"] == 0.5 and m["accuracy"] == pytest.approx(4 / 6)


def test_thresholds_take_the_low_end_of_a_plateau():
    y = np.array([0] * 50 + [1] * 50)
    p0 = np.r_[np.linspace(0.9999, 1.0, 50), np.linspace(0.0, 0.0001, 50)]
    proba = np.c_[p0, 1 - p0, np.zeros(100)]
    t = choose_thresholds(y, proba, lo=0.3, hi=1.0)
    assert t["emission"] == pytest.approx(0.9999)        # the lowest threshold with the best F1
    t = choose_thresholds(y, proba, lo=0.3, hi=0.9)
    assert t["emission"] == 0.9                            # clipped
    overlap = np.c_[np.r_[np.full(50, 0.7), np.full(50, 0.6)], np.zeros(100), np.zeros(100)]
    t = choose_thresholds(y, overlap, lo=0.0, hi=1.0)
    assert t["emission"] == pytest.approx(0.7)           # 0.6 would let the 50 negatives in
    sel = thresholded_metrics(y, overlap, {"emission": 0.7, "absorption": 0.5, "double_peak": 0.5})
    assert sel["emission"] == {"threshold": 0.7, "selected": 50, "precision": 1.0, "recall": 1.0}
