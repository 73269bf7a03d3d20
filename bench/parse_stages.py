"""Where a parse task's time goes per file: the stages of ``spectraldl.parse.parse_path``, one core.

For the plain real LAMOST LRS files of ../shared/data/real (in the page cache after a warm-up
pass) it times, per file, each stage on its own and the whole ``parse_path``: reading the bytes,
the FITS headers and data layout, the format's reader with the metadata, the default
preprocessing (one spectrum at a time, and ``preprocess_batch`` over the files in one array) and the
H-alpha measurements, then ``parse_path`` file by file against ``parse_paths`` over ``ingest.batch_files``
files at a time, which is what the ingest's tasks run (and, to tell its two gains apart, the same
with each spectrum preprocessed on its own: the stages taken in turn over the batch, without the
2-D array); for the real MRS files, ``parse_path`` per spectrum
(red co-adds and exposures) and the night's cleaning (``clean_night``) within it. Medians of
``--rounds`` rounds.

    .venv/bin/python bench/parse_stages.py [--rounds 7]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "lib"))

from spectraldl.config import load_config  # noqa: E402
from spectraldl.halpha import measure_spectrum  # noqa: E402
from spectraldl.io import read_spectra  # noqa: E402
from spectraldl.io.fits import load_bytes  # noqa: E402
from spectraldl.io.mrs_quality import clean_night  # noqa: E402
from spectraldl import parse  # noqa: E402
from spectraldl.io.errors import SpectrumError  # noqa: E402
from spectraldl.parse import ParseOptions, parse_path, parse_paths  # noqa: E402
from spectraldl.preprocess import preprocess, preprocess_batch  # noqa: E402
from spectraldl.sources import read_source_bytes  # noqa: E402


def per_file(fn, items) -> float:
    """Seconds per item of ``fn`` over ``items``."""
    t = time.perf_counter()
    for x in items:
        fn(x)
    return (time.perf_counter() - t) / len(items)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", default=str(ROOT.parent / "shared/data/real"))
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    opts = ParseOptions.from_config(load_config("local"))
    lamost = Path(args.real) / "lamost"
    lrs = [str(p) for p in sorted(lamost.rglob("*.fits")) if not p.name.startswith("med-")]
    mrs = [str(p) for p in sorted(lamost.rglob("med-*.fits*"))]
    data = [read_source_bytes(p, opts.limits) for p in lrs]
    specs = [read_spectra(d, name=p)[1][0][1] for p, d in zip(lrs, data)]
    good = [s for s in specs if s.format in opts.accept_formats]

    def prep(s):
        try:
            preprocess(s.wavelength, s.flux, None, opts.settings, andmask=s.andmask)
        except Exception:  # noqa: BLE001 (a dead fibre: its reject costs the same)
            pass

    by_grid: dict[int, list] = {}
    for s in good:
        by_grid.setdefault(id(s.wavelength), []).append(s)

    def prep_batches(_):
        for group in by_grid.values():
            preprocess_batch(group[0].wavelength, [s.flux for s in group], [s.andmask for s in group], opts.settings)

    def parse_batches(_):
        for k in range(0, len(lrs), opts.batch_files):
            parse_paths(lrs[k:k + opts.batch_files], opts)

    def one_by_one(w, fluxes, andmasks, settings, names):  # preprocess_batch without the 2-D array
        out = []
        for f, m, name in zip(fluxes, andmasks, names):
            try:
                out.append(preprocess(w, f, None, settings, name=name, andmask=m))
            except SpectrumError as exc:
                out.append(exc)
        return out

    def parse_batches_one_by_one(_):
        parse.preprocess_batch = one_by_one
        try:
            parse_batches(_)
        finally:
            parse.preprocess_batch = preprocess_batch

    stages = {
        "read bytes": lambda p: read_source_bytes(p, opts.limits),
        "FITS headers and layout": lambda d: load_bytes(d, "x"),
        "FITS + reader + metadata": lambda d: read_spectra(d, name="x"),
        "preprocess": prep,
        "preprocess_batch per grid": None,
        "H-alpha measurements": lambda s: measure_spectrum(s, settings=opts.measure),
        "parse_path (all of it)": lambda p: parse_path(p, opts),
        "parse_paths (what tasks run)": None,
        "  the same, 1-D preprocess": None,
    }
    whole = {"preprocess_batch per grid": (prep_batches, len(good)),
             "parse_paths (what tasks run)": (parse_batches, len(lrs)),
             "  the same, 1-D preprocess": (parse_batches_one_by_one, len(lrs))}
    inputs = {"read bytes": lrs, "FITS headers and layout": data, "FITS + reader + metadata": data,
              "preprocess": good, "H-alpha measurements": good, "parse_path (all of it)": lrs}

    def timed(name: str) -> float:
        if name in whole:  # one call over all the items, per item
            fn, n = whole[name]
            return per_file(fn, [None]) / n
        return per_file(stages[name], inputs[name])

    for name in stages:  # warm-up: page cache, per-grid caches
        timed(name)
    times: dict[str, list[float]] = {name: [] for name in stages}
    mrs_times, clean_times = [], []
    nights = [read_spectra(p)[1] for p in mrs]
    n_mrs = sum(len(n) for n in nights)
    for _ in range(args.rounds):  # stages interleaved round after round: the machine drifts
        for name in stages:
            times[name].append(timed(name))
        mrs_times.append(per_file(lambda p: parse_path(p, opts), mrs) * len(mrs) / n_mrs)
        clean_times.append(per_file(lambda n: clean_night([e for e in n if not isinstance(e[1], Exception)]),
                                    nights) * len(nights) / n_mrs)
    print(f"{len(lrs)} plain real LRS files, median of {args.rounds} rounds, µs per file:")
    for name, ts in times.items():
        print(f"  {name:<28}{statistics.median(ts) * 1e6:8.1f}")
    print(f"{len(mrs)} real MRS files, {n_mrs} red-arm spectra: parse_path {statistics.median(mrs_times) * 1e3:.2f} ms "
          f"per spectrum, of which the night's cleaning {statistics.median(clean_times) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
