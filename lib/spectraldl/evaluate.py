"""Honest evaluation: grouped test split, per-class metrics, thresholds chosen on validation, plots.

The thresholds are picked on the validation split (per class, the probability that maximises
that class's one-vs-rest F1) and only then applied to the test split, so the reported figures
are not tuned on the data they describe.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .models import CLASSES


def per_class_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str] = CLASSES) -> dict[str, Any]:
    """Precision, recall, F1 and support per class, accuracy, macro F1 and the confusion matrix
    (rows: true class, columns: predicted), from integer class indices."""
    k = len(classes)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    out: dict[str, Any] = {"confusion_matrix": cm.tolist(), "n": int(len(y_true)),
                           "accuracy": float((y_true == y_pred).mean()) if len(y_true) else float("nan")}
    f1s = []
    for i, c in enumerate(classes):
        tp, fp, fn = cm[i, i], cm[:, i].sum() - cm[i, i], cm[i, :].sum() - cm[i, i]
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        f1s.append(f)
        out[c] = {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(cm[i, :].sum())}
    out["macro_f1"] = float(np.mean(f1s))
    return out


def choose_thresholds(y_true: np.ndarray, proba: np.ndarray, classes: Sequence[str] = CLASSES,
                      tolerance: float = 0.005, lo: float = 0.5, hi: float = 0.95) -> dict[str, float]:
    """Per class, a probability threshold chosen on (validation) data.

    The smallest threshold whose one-vs-rest F1 is within ``tolerance`` of the best, clipped to
    ``[lo, hi]``: on well-separated data every threshold in a wide plateau is optimal, and the
    plateau's top (0.9999...) would reject real spectra a little less certain than the synthetic
    validation set, so the low end of the plateau is the robust choice.
    """
    from sklearn.metrics import precision_recall_curve
    out = {}
    for i, c in enumerate(classes):
        yt = (y_true == i).astype(int)
        if yt.sum() == 0:
            out[c] = lo
            continue
        p, r, t = precision_recall_curve(yt, proba[:, i])
        f1 = np.where(p[:-1] + r[:-1] > 0, 2 * p[:-1] * r[:-1] / np.maximum(p[:-1] + r[:-1], 1e-12), 0)
        near_best = t[f1 >= f1.max() - tolerance]
        out[c] = float(np.clip(near_best.min(), lo, hi))
    return out


def thresholded_metrics(y_true: np.ndarray, proba: np.ndarray, thresholds: dict[str, float],
                        classes: Sequence[str] = CLASSES) -> dict[str, Any]:
    """One-vs-rest precision/recall of "P(class) >= threshold" per class (how candidates are picked)."""
    out = {}
    for i, c in enumerate(classes):
        sel = proba[:, i] >= thresholds[c]
        yt = y_true == i
        tp = int((sel & yt).sum())
        out[c] = {"threshold": thresholds[c], "selected": int(sel.sum()),
                  "precision": tp / int(sel.sum()) if sel.sum() else 0.0,
                  "recall": tp / int(yt.sum()) if yt.sum() else 0.0}
    return out


def average_precision(y_true: np.ndarray, proba: np.ndarray, classes: Sequence[str] = CLASSES) -> dict[str, float]:
    from sklearn.metrics import average_precision_score
    return {c: float(average_precision_score(y_true == i, proba[:, i])) if (y_true == i).any() else float("nan")
            for i, c in enumerate(classes)}


def evaluate(y_val: np.ndarray, p_val: np.ndarray, y_test: np.ndarray, p_test: np.ndarray,
             **threshold_options: float) -> dict[str, Any]:
    """Everything model.json's ``metrics`` holds (``threshold_options``: see :func:`choose_thresholds`)."""
    thresholds = choose_thresholds(y_val, p_val, **threshold_options)
    return {
        "test": per_class_metrics(y_test, p_test.argmax(1)),
        "val": per_class_metrics(y_val, p_val.argmax(1)),
        "thresholds": thresholds,
        "test_thresholded": thresholded_metrics(y_test, p_test, thresholds),
        "test_average_precision": average_precision(y_test, p_test),
    }


def summary_table(metrics: dict[str, Any]) -> str:
    """A printable per-class table of the test metrics."""
    t = metrics["test"]
    lines = [f"{'class':<12}{'precision':>10}{'recall':>8}{'f1':>8}{'support':>9}{'AP':>7}{'thresh':>8}"]
    for c in CLASSES:
        m = t[c]
        lines.append(f"{c:<12}{m['precision']:>10.3f}{m['recall']:>8.3f}{m['f1']:>8.3f}{m['support']:>9d}"
                     f"{metrics['test_average_precision'][c]:>7.3f}{metrics['thresholds'][c]:>8.3f}")
    lines.append(f"accuracy {t['accuracy']:.4f}  macro F1 {t['macro_f1']:.4f}  (grouped test split, n={t['n']})")
    return "\n".join(lines)


def plot_all(out_dir: str | Path, history: dict[str, list[float]], metrics: dict[str, Any],
             y_test: np.ndarray, p_test: np.ndarray) -> list[str]:
    """confusion_matrix.png, training_curves.png, pr_curves.png beside the model."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    out_dir = Path(out_dir)
    files = []
    cm = np.array(metrics["test"]["confusion_matrix"])
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, f"{cm[i, j]}\n{norm[i, j]:.2f}", ha="center", va="center",
                    color="white" if norm[i, j] > 0.5 else "black", fontsize=9)
    ax.set_xticks(range(len(CLASSES)), CLASSES, rotation=20)
    ax.set_yticks(range(len(CLASSES)), CLASSES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"test split, accuracy {metrics['test']['accuracy']:.3f}")
    fig.tight_layout()
    fig.savefig(out_dir / "confusion_matrix.png", dpi=110)
    plt.close(fig)
    files.append("confusion_matrix.png")

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for key, ax in (("loss", axes[0]), ("accuracy", axes[1])):
        for k, style in ((key, "-"), (f"val_{key}", "--")):
            if k in history:
                ax.plot(np.arange(1, len(history[k]) + 1), history[k], style, label=k)
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "training_curves.png", dpi=110)
    plt.close(fig)
    files.append("training_curves.png")

    fig, ax = plt.subplots(figsize=(5, 4))
    for i, c in enumerate(CLASSES):
        if (y_test == i).any():
            p, r, _ = precision_recall_curve(y_test == i, p_test[:, i])
            ax.plot(r, p, label=f"{c} (AP {metrics['test_average_precision'][c]:.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("precision-recall, test split")
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(out_dir / "pr_curves.png", dpi=110)
    plt.close(fig)
    files.append("pr_curves.png")
    return files
