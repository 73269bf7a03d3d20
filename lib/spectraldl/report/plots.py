"""Report figures (matplotlib, Agg): counts, probability and EW histograms, EW against the
network's probability and over time, sky map, spectra."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import SpectrumError, read_spectra, read_spectrum
from ..io.meta import date_to_mjd
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


def ew_histogram(sample: pd.DataFrame, path: Path) -> None:
    """Histogram of the measured H-alpha equivalent widths (negative = emission), by predicted class."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3.4))
    ew = pd.to_numeric(sample["ha_ew"], errors="coerce")
    finite = ew[np.isfinite(ew)]
    lo, hi = (np.percentile(finite, [0.5, 99.5]) if len(finite) else (-10.0, 5.0))
    bins = np.linspace(min(lo, -5.0), max(hi, 5.0), 61)
    for c, color in zip(CLASSES, ("C3", "C0", "C2")):
        sel = ew[(sample["label"] == c) & np.isfinite(ew)]
        if len(sel):
            ax.hist(np.clip(sel, bins[0], bins[-1]), bins=bins, histtype="step", color=color, lw=1.4,
                    label=f"network: {c} ({len(sel)})", log=True)
    ax.axvline(0, color="0.5", lw=0.6)
    ax.set_xlabel("H-alpha EW (Å), negative = emission")
    ax.set_ylabel("spectra")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def ew_vs_probability(sample: pd.DataFrame, disagree_ew: float, path: Path) -> None:
    """The network's emission probability (emission + double peak) against the measured EW; the
    disagreement regions shaded."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3.8))
    ew = pd.to_numeric(sample["ha_ew"], errors="coerce").to_numpy(float)
    p = (sample["p_emission"] + sample["p_double_peak"]).to_numpy(float)
    ok = np.isfinite(ew)
    ax.scatter(np.clip(ew[ok], -50, 20), p[ok], s=3, alpha=0.4, color="k", rasterized=True)
    ax.axvspan(0, 20, ymin=0.5, ymax=1, color="C1", alpha=0.12, label="network emission, EW >= 0")
    ax.axvspan(-50, disagree_ew, ymin=0, ymax=0.5, color="C4", alpha=0.12,
               label=f"network absorption, EW < {disagree_ew:g} Å")
    ax.set_xlim(-50, 20)
    ax.set_ylim(0, 1)
    ax.set_xlabel("H-alpha EW (Å), clipped to [-50, 20]")
    ax.set_ylabel("P(emission) + P(double peak)")
    ax.legend(fontsize=8, loc="center left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def observation_mjd(obs: pd.DataFrame) -> pd.Series:
    """Each observation's time (MJD): ``mjd``, else its ``date_obs`` (rows of older ingests)."""
    mjd = pd.to_numeric(obs["mjd"], errors="coerce") if "mjd" in obs else pd.Series(np.nan, index=obs.index)
    if "date_obs" in obs:
        mjd = mjd.fillna(pd.to_numeric(obs["date_obs"].map(date_to_mjd), errors="coerce"))
    return mjd


def ew_over_time(obs: pd.DataFrame, variable: pd.DataFrame, path: Path) -> None:
    """H-alpha EW of the variable stars listed, with error bars, on two time scales: over the
    years (every epoch, LRS circles and MRS exposures squares) and within a night (the MRS
    exposures of each night with several, minutes since the night's first)."""
    from .catalogue import epochs, exposure_of, star_key, survey_of
    plt = _plt()
    fig, (ax, axn) = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [1.6, 1]})
    obs = epochs(obs.assign(exposure=exposure_of(obs)))
    key = star_key(obs)
    nights = 0
    for i, (_, star) in enumerate(variable.iterrows()):
        o = obs[key == (star["designation"] if pd.notna(star["designation"]) else star["best_source_path"])]
        mjd = observation_mjd(o)
        ew = pd.to_numeric(o["ha_ew"], errors="coerce")
        err = pd.to_numeric(o["ha_ew_err"], errors="coerce").fillna(0)
        ok = mjd.notna() & ew.notna()
        o, mjd, ew, err = o[ok], mjd[ok], ew[ok], err[ok]
        order = np.argsort(mjd.to_numpy())
        year = 1858.877 + mjd.to_numpy() / 365.25  # decimal year
        color, label = f"C{i % 10}", str(star["designation"])[:28]
        ax.plot(year[order], ew.to_numpy()[order], lw=0.6, color=color, label=label)
        for survey, marker in (("LRS", "o"), ("MRS", "s")):
            m = (survey_of(o) == survey).to_numpy()
            ax.errorbar(year[m], ew.to_numpy()[m], yerr=err.to_numpy()[m], fmt=marker, ms=3, capsize=2, color=color)
        single = o["exposure"].str.startswith("R-").to_numpy()
        for _, night in o[single].groupby("source_path"):
            if len(night) < 2:
                continue
            t = observation_mjd(night).to_numpy()
            k = np.argsort(t)
            axn.errorbar((t[k] - t.min()) * 1440.0, ew[night.index].to_numpy()[k], yerr=err[night.index].to_numpy()[k],
                         marker="s", ms=3, lw=0.8, capsize=2, color=color)
            nights += 1
    if len(variable):
        ax.legend(fontsize=7, ncol=2)
    else:
        ax.text(0.5, 0.5, "no variable star among the candidates", ha="center", va="center", transform=ax.transAxes)
    if not nights:
        axn.text(0.5, 0.5, "no night with several MRS exposures", ha="center", va="center", transform=axn.transAxes)
    for a in (ax, axn):
        a.invert_yaxis()  # stronger emission upwards
        a.set_ylabel("H-alpha EW (Å)")
    ax.set_xlabel("year (o LRS, s MRS exposure)")
    axn.set_xlabel("minutes since the night's first MRS exposure")
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


def _read_observed(path: str, exposure: str):
    """The spectrum of ``(path, exposure)`` as stored in its file (an MRS exposure by its HDU)."""
    if not exposure:
        return read_spectrum(path)
    for name, spec in read_spectra(path)[1]:
        if name == exposure:
            if isinstance(spec, SpectrumError):
                raise spec
            return spec
    raise SpectrumError("bad_shape", path, f"no table {exposure}")


def spectrum_plot(row: pd.Series, vector: np.ndarray | None, grid: np.ndarray, path: Path) -> None:
    """Whole spectrum (from the file when readable), the H-alpha window, and the model's input."""
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(13, 2.8), gridspec_kw={"width_ratios": [2.2, 1, 1]})
    title = (f"{row.get('designation') or row['source_path']}  {row.get('exposure') or ''}  "
             f"{row.get('lamost_subclass') or ''}")
    try:
        s = _read_observed(row["source_path"], row.get("exposure") or "")
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
