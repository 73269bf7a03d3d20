"""Timing and figures of spectraldl.halpha (issue #16); not a test.

    .venv/bin/python bench/halpha_check.py [--real DIR] [--repeat N]

Prints: the time per spectrum of measure_halpha on the real LAMOST LRS files (all, fast path only,
general path forced) and on synthetic LRS spectra; the measured FWHM of instrumental-width lines
over the instrumental FWHM (what nebular_fwhm_factor is set against); and a table of the real files.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "lib"))
sys.path.insert(0, str(ROOT / "tests"))

from spectraldl import halpha as H  # noqa: E402
from spectraldl.halpha import DEFAULT_SETTINGS, HA_VAC, measure_halpha, measure_spectrum  # noqa: E402


def _time(calls, repeat: int) -> float:
    """Best of ``repeat`` rounds, seconds per call."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for fn, args in calls:
            fn(*args)
        best = min(best, (time.perf_counter() - t) / len(calls))
    return best


def main() -> None:
    from realdata import find_real_data
    from test_halpha import R_LRS, lrs_grid, make, observed_fwhm

    ap = argparse.ArgumentParser()
    ap.add_argument("--real", type=Path, default=find_real_data())
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--table", action="store_true", help="print the per-file table of the real files")
    a = ap.parse_args()

    if (a.real / "lamost").is_dir():
        from spectraldl.io.reader import read_spectrum
        specs = [(p, read_spectrum(p)) for p in sorted((a.real / "lamost").rglob("*.fits*"))
                 if not p.name.startswith("med-")]
        plan = H._plan(DEFAULT_SETTINGS, 1800.0)
        args = [(s.wavelength, s.flux, s.ivar, s.andmask) for _, s in specs]
        fast = [x for x in args if H._measure_fast(np.asarray(x[0], float), *x[1:], plan) is not None]
        t_all = _time([(measure_halpha, x) for x in args], a.repeat)
        t_fast = _time([(measure_halpha, x) for x in fast], a.repeat)
        t_gen = _time([(H._measure_general, (*x, 1800.0, DEFAULT_SETTINGS)) for x in args], max(3, a.repeat // 4))
        print(f"real LRS files: {len(args)}, {len(fast)} on the fast path")
        print(f"  measure_halpha, all files      {t_all * 1e6:7.1f} us/spectrum")
        print(f"  measure_halpha, fast-path ones {t_fast * 1e6:7.1f} us/spectrum")
        print(f"  general path forced            {t_gen * 1e6:7.1f} us/spectrum")
        if a.table:
            for p, s in specs:
                r = measure_spectrum(s)
                d = r.as_row()
                print(f"  {p.name[:40]:40s} {str(s.meta.get('lamost_subclass'))[:5]:5s} "
                      + " ".join(f"{k}={'-' if v is None else f'{v:.2f}' if isinstance(v, float) else v}"
                                 for k, v in d.items()))
    else:
        print(f"no real data at {a.real}")

    rng = np.random.default_rng(0)
    w = lrs_grid()
    syn = [make(w, R_LRS, [(HA_VAC, 5.0, rng.uniform(-20, 5))], slope=rng.uniform(-5e-4, 5e-4),
                snr=rng.uniform(10, 100), rng=rng) for _ in range(200)]
    t_syn = _time([(measure_halpha, x) for x in syn], a.repeat)
    print(f"synthetic LRS spectra (one grid)  {t_syn * 1e6:7.1f} us/spectrum")

    # measured FWHM of unresolved lines / instrumental FWHM, by S/N (for nebular_fwhm_factor)
    inst = HA_VAC / R_LRS
    print("unresolved H-alpha emission (EW -2 Å on an absorption trough), FWHM / instrumental:")
    for snr in (20, 50, 150):
        ratios = []
        for _ in range(300):
            shift = rng.uniform(-0.75, 0.75)  # sub-pixel position
            lines = [(HA_VAC, 15.0, 3.0), (HA_VAC + shift, 0.0, -2.0)]
            r = measure_halpha(*make(w, R_LRS, lines, snr=snr, rng=rng))
            if r.ha_fwhm is not None:
                ratios.append(r.ha_fwhm / inst)
        q = np.percentile(ratios, [50, 95, 99, 100])
        print(f"  S/N {snr:4d}: measured {len(ratios)}/300, median {q[0]:.2f}, p95 {q[1]:.2f}, "
              f"p99 {q[2]:.2f}, max {q[3]:.2f}")
    print("broad emission (intrinsic FWHM k x instrumental), FWHM / instrumental at S/N 50:")
    for k in (1.0, 1.5, 2.0, 3.0):
        ratios = []
        for _ in range(200):
            r = measure_halpha(*make(w, R_LRS, [(HA_VAC, k * inst, -10.0)], snr=50, rng=rng))
            ratios.append(r.ha_fwhm / inst)
        print(f"  k={k:3.1f} (expected {observed_fwhm(HA_VAC, k * inst, R_LRS) / inst:.2f}): "
              f"median {np.median(ratios):.2f}, p5 {np.percentile(ratios, 5):.2f}")


if __name__ == "__main__":
    main()
