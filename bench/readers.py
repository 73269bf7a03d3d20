"""Per-file read time of spectraldl's readers vs astropy (and fitsio when installed).

Reads every real LAMOST LRS file in ../shared/data/real, plain and gzipped (the gzipped copies
are made in a temporary directory), and prints the median microseconds per file and the ratios,
side by side in one run. Every library does the same work: open, get flux + wavelength + the
header keywords the pipeline uses.

    .venv/bin/python bench/readers.py [--repeat 5]
"""
from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "lib"))
from spectraldl.io import read_spectrum  # noqa: E402

KEYS = ("RA", "DEC", "CLASS", "SUBCLASS", "Z", "DESIG")


def with_astropy(path):
    from astropy.io import fits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(path, memmap=False) as hl:
            h = hl[0].header
            if "COADD" in hl:
                t = hl["COADD"].data
                flux, wave = np.array(t["FLUX"][0]), np.array(t["WAVELENGTH"][0])
            else:
                flux = np.array(hl[0].data[0])
                wave = 10 ** (h["COEFF0"] + np.arange(flux.size) * h["COEFF1"])
            meta = [h.get(k) for k in KEYS]
    return flux, wave, meta


def with_fitsio(path):
    import fitsio
    with fitsio.FITS(str(path)) as f:
        h = f[0].read_header()
        names = [hdu.get_extname() for hdu in f]
        if "COADD" in names:
            t = f["COADD"].read()
            flux, wave = t["FLUX"][0], t["WAVELENGTH"][0]
        else:
            flux = f[0].read()[0]
            wave = 10 ** (h["COEFF0"] + np.arange(flux.size) * h["COEFF1"])
        meta = [h.get(k) for k in KEYS]
    return flux, wave, meta


def with_spectraldl(path):
    s = read_spectrum(path)
    return s.flux, s.wavelength, s.meta


def timeit(fn, files, repeat):
    per_round = []
    for _ in range(repeat):
        t = time.perf_counter()
        for f in files:
            fn(f)
        per_round.append((time.perf_counter() - t) / len(files))
    return statistics.median(per_round) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", default=str(ROOT.parent / "shared/data/real/lamost"))
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    files = [p for p in sorted(Path(args.real).rglob("*.fits*")) if not p.name.startswith("med-")]
    plain = [p for p in files if p.read_bytes()[:2] != b"\x1f\x8b"]
    libs = {"spectraldl": with_spectraldl, "astropy": with_astropy}
    try:
        import fitsio  # noqa: F401
        libs["fitsio"] = with_fitsio
    except ImportError:
        print("fitsio not installed (pip install -r requirements-bench.txt): skipped")
    with tempfile.TemporaryDirectory() as tmp:
        gz = []
        for p in plain:
            q = Path(tmp) / (p.name + ".gz")
            q.write_bytes(gzip.compress(p.read_bytes(), 6))
            gz.append(q)
        for f in plain[:3] + gz[:3]:  # same answers before timing anything
            ref = with_spectraldl(f)
            for fn in libs.values():
                np.testing.assert_array_equal(fn(f)[0], ref[0])
        print(f"{len(plain)} plain LAMOST LRS files, {len(gz)} gzipped copies, median of {args.repeat} rounds")
        print(f"{'reader':<12}{'plain us/file':>15}{'gzip us/file':>15}{'plain x':>10}{'gzip x':>10}")
        res = {name: (timeit(fn, plain, args.repeat), timeit(fn, gz, args.repeat)) for name, fn in libs.items()}
        base = res["spectraldl"]
        for name, (tp, tg) in res.items():
            print(f"{name:<12}{tp:>15.0f}{tg:>15.0f}{tp / base[0]:>10.2f}{tg / base[1]:>10.2f}")
        print("x = time relative to spectraldl (higher is slower)")
        inflate_compare([q.read_bytes() for q in gz], args.repeat)


def inflate_compare(blobs, repeat):
    """Why ISA-L: inflating the same gzip streams with zlib and with isal_zlib."""
    import zlib
    try:
        from isal import isal_zlib
    except ImportError:
        return
    res = {}
    for name, mod in (("zlib", zlib), ("isal", isal_zlib)):
        res[name] = timeit(lambda b: mod.decompressobj(47).decompress(b), blobs, repeat)
    print(f"inflate only: zlib {res['zlib']:.0f} us/file, isal {res['isal']:.0f} us/file, "
          f"isal is {res['zlib'] / res['isal']:.2f}x faster")


if __name__ == "__main__":
    main()
