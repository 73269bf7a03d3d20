"""Report figures (matplotlib, Agg): counts, probability histograms, sky map, spectra."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import SpectrumError, read_spectrum
from ..models import CLASSES

log = logging.getLogger(__name__)
HALPHA_VAC = 6564.61


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def counts_plot(by_class: pd.DataFrame, path: Path) -> None:
    """Bar charts of the predicted classes, overall and per LAMOST class, from exact totals
    (``by_class``: columns ``lamost_class``, ``label``, ``count``, one row per pair)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    totals = by_class.groupby("label")["count"].sum().reindex(CLASSES, fill_value=0)
    totals.plot.bar(ax=axes[0], color=["C3", "C0", "C2"])
    axes[0].set_title("predicted class")
    axes[0].tick_params(axis="x", rotation=0)
    ct = (by_class.assign(lamost_class=by_class["lamost_class"].fillna("?"))
          .pivot_table(index="lamost_class", columns="label", values="count", aggfunc="sum", fill_value=0)
          .reindex(columns=CLASSES, fill_value=0))
    ct.plot.bar(ax=axes[1], stacked=True, color=["C3", "C0", "C2"])
    axes[1].set_title("by LAMOST class")
    axes[1].tick_params(axis="x", rotation=0)
    axes[1].set_yscale("log")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def probability_histograms(scores: pd.DataFrame, thresholds: dict[str, float], path: Path) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for ax, c in zip(axes, CLASSES):
        ax.hist(scores[f"p_{c}"], bins=np.linspace(0, 1, 41), color="0.4", log=True)
        if c in thresholds:
            ax.axvline(thresholds[c], color="C3", ls="--", label=f"threshold {thresholds[c]:.2f}")
            ax.legend()
        ax.set_title(f"P({c})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def sky_map(cat: pd.DataFrame, path: Path) -> None:
    plt = _plt()
    fig = plt.figure(figsize=(9, 4.8))
    ax = fig.add_subplot(111, projection="aitoff")
    for c, color in (("emission", "C3"), ("double_peak", "C2")):
        sel = cat[cat["candidate_class"] == c]
        ra = np.radians(((sel["ra"].to_numpy() + 180) % 360) - 180)
        ax.scatter(-ra, np.radians(sel["dec"].to_numpy()), s=8, color=color, label=f"{c} ({len(sel)})")
    ax.grid(True)
    ax.set_title("candidates (RA increases to the left)", pad=22)
    ax.legend(loc="lower right", fontsize=8)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def spectrum_plot(row: pd.Series, vector: np.ndarray | None, grid: np.ndarray, path: Path) -> None:
    """Whole spectrum (from the file when readable), the H-alpha window, and the model's input."""
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(13, 2.8), gridspec_kw={"width_ratios": [2.2, 1, 1]})
    title = f"{row.get('designation') or row['source_path']}  {row.get('lamost_subclass') or ''}"
    try:
        s = read_spectrum(row["source_path"])
        g = s.good
        axes[0].plot(s.wavelength[g], s.flux[g], lw=0.5, color="k")
        axes[0].axvline(HALPHA_VAC, color="C3", lw=0.6, ls=":")
        w = (s.wavelength > 6500) & (s.wavelength < 6630) & g
        axes[1].plot(s.wavelength[w], s.flux[w], color="k", lw=0.8, drawstyle="steps-mid")
        axes[1].axvline(HALPHA_VAC, color="C3", lw=0.6, ls=":")
    except (SpectrumError, OSError) as exc:
        axes[0].text(0.5, 0.5, f"file not readable here:\n{exc}", ha="center", va="center", fontsize=7,
                     transform=axes[0].transAxes)
    axes[0].set_title(title, fontsize=9, loc="left")
    axes[1].set_title("H-alpha window", fontsize=9)
    if vector is not None:
        axes[2].plot(grid, vector, color="C0", lw=1)
    probs = ", ".join(f"{c[:4]} {row[f'p_{c}']:.2f}" for c in CLASSES)
    axes[2].set_title(f"model input; P: {probs}", fontsize=8)
    for ax in axes:
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
