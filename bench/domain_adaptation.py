"""How well adapted Ondřejov vectors match LAMOST vectors of the same star (22 real pairs).

For each cross-matched pair in ../shared/data/real/labels/cross-matched-pairs.csv the LAMOST file
goes through the ingest's own parse (:func:`spectraldl.parse.parse_file`: read + preprocess) and
the Ondřejov file through :func:`spectraldl.adapt.adapt_ondrejov`; the figure is the Pearson
correlation of the two 140-value vectors, and the table gives the median (and mean, minimum) over
the pairs for:

* no adaptation at all, no blur with air -> vacuum, the configured adaptation (conf/ [adapt]);
* a sweep of fixed kernel widths in native pixels, as in the 2017 thesis
  (0.910, 0.934, 0.946, 0.951, 0.955, 0.952 for sigma 0, 3, 5, 7, 9, 11 px).

    .venv/bin/python bench/domain_adaptation.py [--sigmas 0,3,5,7,9,11] [--config FILE]
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "lib"))
from spectraldl.adapt import AdaptSettings, adapt_ondrejov  # noqa: E402
from spectraldl.config import load_config  # noqa: E402
from spectraldl.io import read_bytes_from_path, read_spectrum  # noqa: E402
from spectraldl.parse import ParseOptions, parse_file  # noqa: E402

REAL = ROOT.parent / "shared" / "data" / "real"
THESIS = {0: 0.910, 3: 0.934, 5: 0.946, 7: 0.951, 9: 0.955, 11: 0.952}


def load_pairs(real: Path = REAL, config: dict | None = None):
    """``[(name, ondrejov Spectrum, lamost vector)]`` for every pair in the CSV."""
    config = config or load_config("local")
    opts = ParseOptions.from_config(config)
    out = []
    with open(real / "labels" / "cross-matched-pairs.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            lam = parse_file(str(real / row["lamost_file"]), opts)
            if lam["outcome"] != "ok":
                raise RuntimeError(f"{row['lamost_file']}: {lam['reason']}: {lam['detail']}")
            ond_path = real / row["ondrejov_file"]
            ond = read_spectrum(read_bytes_from_path(str(ond_path)), name=str(ond_path))
            out.append((ond_path.name, ond, np.asarray(lam["flux"], dtype=np.float64)))
    return out


def correlations(pairs, adapt: AdaptSettings, config: dict) -> np.ndarray:
    """Pearson r of adapted Ondřejov vs LAMOST vector, per pair."""
    opts = ParseOptions.from_config(config)
    return np.array([np.corrcoef(adapt_ondrejov(o, adapt, opts.settings, name)[0], v)[0, 1]
                     for name, o, v in pairs])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sigmas", default="0,3,5,7,9,11", help="fixed kernel sigmas in px (0: no blur)")
    ap.add_argument("--config", default=None, help="a TOML file layered over conf/")
    a = ap.parse_args(argv)
    config = load_config("local", a.config)
    base = AdaptSettings.from_config(config["adapt"])
    t0 = time.time()
    pairs = load_pairs(REAL, config)

    def line(label: str, r: np.ndarray, ref: str = "") -> None:
        print(f"{label:<44} {np.median(r):7.3f} {r.mean():7.3f} {r.min():7.3f}  {ref}")

    print(f"{len(pairs)} cross-matched pairs; Pearson r of the 140-value vectors\n")
    print(f"{'adaptation':<44} {'median':>7} {'mean':>7} {'min':>7}  thesis median")
    line("none (air wavelengths, no blur)", correlations(pairs, replace(base, air_to_vacuum=False, blur=False), config))
    no_blur = correlations(pairs, replace(base, blur=False), config)
    line("air -> vacuum, no blur", no_blur, "0.910")
    adapted = correlations(pairs, base, config)
    desc = (f"fixed sigma {base.sigma_px:g} px" if base.sigma_px > 0 else
            f"derived sigma {base.kernel_sigma_angstrom():.3f} Å = {base.kernel_sigma_px(0.2567):.2f} px "
            f"@0.2567, {base.kernel_sigma_px(0.2309):.2f} px @0.2309")
    line(f"configured: {desc}"[:44], adapted)
    if base.sigma_px == 0 and base.blur:
        print(f"  ({desc})")
    print("\nsweep, air -> vacuum + fixed sigma in native px:")
    for s in (float(x) for x in a.sigmas.split(",")):
        st = replace(base, blur=s > 0, sigma_px=s if s > 0 else 0.0)
        line(f"  sigma {s:g} px", correlations(pairs, st, config), f"{THESIS[int(s)]:.3f}" if s in THESIS else "")
    print("\nper pair (no blur -> configured): " + ", ".join(
        f"{n.removesuffix('.fits')} {x:.3f}->{y:.3f}" for (n, _, _), x, y in zip(pairs, no_blur, adapted)))
    print(f"\n{time.time() - t0:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
