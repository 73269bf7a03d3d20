"""Synthetic vs real LAMOST spectra, side by side: docs/synthetic-vs-real.png.

Four kinds of object, each as a real spectrum from ../shared/data/real and a synthetic one from
:mod:`spectraldl.synth` (found by scanning a seed's indices for the wanted truth): a Be star with
H-alpha emission (real: BT CMi), an A star with H-alpha absorption, an M dwarf with emission, and
a star-forming galaxy. Each row shows the whole spectrum (ivar == 0 pixels in red) and a zoom on
H-alpha (6500-6620 Å; for the galaxies around the redshifted line).

    .venv/bin/python bench/plot_synthetic.py [--seed 1] [--out docs/synthetic-vs-real.png]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "lib"))
from spectraldl.io import read_spectrum  # noqa: E402
from spectraldl.synth import SynthConfig, make_spectrum  # noqa: E402

REAL = ROOT.parent / "shared" / "data" / "real" / "lamost"
HALPHA = 6564.61

# (title, real file or a rule to pick one, condition on the synthetic truth, layout to write)
ROWS = [
    ("Be star, H-alpha emission", "podondra_bt-spectraldl/bt-cmi-lamost.fits",
     lambda t: t["class"] == "emission" and t["spectral_type"][:1] == "B" and t["strength"] > 0.8 and t["snr"] > 30, "dr1"),
    ("A star, H-alpha absorption", "podondra_bt-spectraldl/spec-56346-HD140207N433332B01_sp14-044.fits",
     lambda t: t["class"] == "absorption" and t["spectral_type"][:1] == "A" and t["snr"] > 60, "dr1"),
    ("M dwarf (real quiet, synth. active)", "ChenfaZheng_LAMOST-SBC/spec-58575-HD103621N361936B01_sp03-061.fits",
     lambda t: t["halpha_profile"] == "mdwarf" and t["snr"] > 40 and not t["dead_fibre"], "dr3_8"),
    ("star-forming galaxy", "ChenfaZheng_LAMOST-SBC/spec-58575-HD103621N361936B01_sp03-088.fits",
     lambda t: t["class"] == "galaxy" and t["strength"] > 0.5 and t["snr"] > 12, "dr3_8"),
]


def find_synthetic(cond, layout: str, seed: int, cfg: SynthConfig, limit: int = 20000):
    for i in range(limit):
        s = make_spectrum(i, seed, "lamost", cfg, layout=layout)
        if cond(s.truth):
            return s
    raise SystemExit(f"no synthetic spectrum matched within {limit} indices")


def panel(ax_full, ax_zoom, w, flux, ivar, z, title):
    ax_full.plot(w, flux, lw=0.4, color="k")
    bad = ivar == 0
    ax_full.plot(w[bad], flux[bad], ".", ms=1.5, color="r")
    lo, hi = np.percentile(flux[~bad] if (~bad).any() else flux, [0.5, 99.7])
    ax_full.set_ylim(lo - 0.15 * (hi - lo), hi + 0.35 * (hi - lo))
    ax_full.set_title(title, fontsize=8)
    centre = HALPHA * (1 + z)
    m = np.abs(w - centre) < 60 if z > 0.01 else (w > 6500) & (w < 6620)
    ax_zoom.plot(w[m], flux[m], lw=0.8, color="k", drawstyle="steps-mid")
    ax_zoom.plot(w[m & bad], flux[m & bad], ".", ms=3, color="r")
    ax_zoom.axvline(centre, color="b", lw=0.5, ls=":")
    ax_zoom.set_title("H-alpha", fontsize=8)
    for ax in (ax_full, ax_zoom):
        ax.tick_params(labelsize=6)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "docs" / "synthetic-vs-real.png"))
    args = ap.parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = SynthConfig.defaults()
    fig, axes = plt.subplots(len(ROWS), 4, figsize=(16, 3.1 * len(ROWS)),
                             gridspec_kw={"width_ratios": [3, 1.2, 3, 1.2]})
    for row, (title, real_file, cond, layout) in zip(axes, ROWS):
        r = read_spectrum(REAL / real_file)
        z = r.meta["z"] if r.meta["lamost_class"] == "GALAXY" else 0.0
        panel(row[0], row[1], r.wavelength, r.flux, r.ivar, z,
              f"REAL {title}: {Path(real_file).name[:28]} {r.meta['lamost_subclass']} SNR_r={r.meta['snr_r']}")
        s = find_synthetic(cond, layout, args.seed, cfg)
        t = s.truth
        panel(row[2], row[3], s.wavelength, s.flux.astype(float), s.ivar, t["z"] if t["class"] == "galaxy" else 0.0,
              f"SYNTHETIC {title}: #{t['index']} {t['spectral_type']} {t['halpha_profile']} "
              f"strength={t['strength']:.2f} SNR_r={t['snr']}")
    fig.suptitle("LAMOST low-resolution spectra: real (left) vs synthetic (right); red dots: ivar = 0", fontsize=10)
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=90)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
