"""Ingest throughput vs the naive astropy loop, and the driver's memory at 10k vs 100k paths.

An archive is made by hard-linking the real LAMOST LRS files of ../shared/data/real into many
paths (plain, and gzipped copies for the gzip case), so 50,000 files cost a few MB of disk. In one
run this script times

* the ingest job (``run_ingest``, local mode, all cores), reported per core;
* the loop an astronomer would write: ``astropy.io.fits.open`` per file, take flux and
  wavelength, the same preprocessing function, one core;

and prints spectra/s per core and the ratio, for plain and gzipped files: the median of
``--rounds`` rounds, each timing the naive loop and then the job, so that both see the same
machine (a shared VM's speed drifts by tens of per cent within minutes). Then it ingests 10,000
and 100,000 paths, each in a fresh process with its own Spark session (a JVM's heap only grows,
so a second measurement in the same JVM would inherit the first one's peak), sampling the
driver's resident memory (that Python process plus its JVM; the Python workers are not the
driver), and prints the median peak per size over ``--memory-repeats`` sessions.

The medium-resolution survey gets the same comparison in spectra (red-arm co-adds and single
exposures) per second per core: the real MRS files hard-linked into ``--mrs-files`` paths, the job
against the astropy loop that blurs and preprocesses the same tables.

    .venv/bin/python bench/ingest.py [--files 50000] [--naive 2000] [--rounds 3] [--mrs-files 4000]
                                     [--memory 10000,100000] [--memory-repeats 3]
"""
from __future__ import annotations

import argparse
import gzip
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "lib"))
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

import numpy as np  # noqa: E402
import psutil  # noqa: E402

from spectraldl.config import load_config  # noqa: E402
from spectraldl.halpha import measure_halpha  # noqa: E402
from spectraldl.ingest import run_ingest  # noqa: E402
from spectraldl.io import SpectrumError  # noqa: E402
from spectraldl.preprocess import preprocess  # noqa: E402
from spectraldl.session import get_spark, setup_logging  # noqa: E402


def real_lrs(real: Path) -> list[Path]:
    out = []
    for p in sorted((real / "lamost").rglob("*.fits*")):
        if p.name.startswith("med-"):
            continue
        if p.read_bytes()[:2] != b"\x1f\x8b":
            out.append(p)
    return out


def make_archive(dst: Path, sources: list[Path], n: int, per_dir: int = 500) -> None:
    for i in range(n):
        d = dst / f"d{i // per_dir:04d}"
        if i % per_dir == 0:
            d.mkdir(parents=True, exist_ok=True)
        src = sources[i % len(sources)]
        os.link(src, d / f"spec-{i:07d}{'.fits.gz' if src.suffix == '.gz' else '.fits'}")


def real_mrs(real: Path) -> list[Path]:
    return sorted((real / "lamost").rglob("med-*.fits*"))


def opened(paths: list[Path]):
    """Each path opened with astropy (memmap off, its warnings silenced), as the naive loops read."""
    from astropy.io import fits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for p in paths:
            with fits.open(p, memmap=False) as hl:
                yield hl


def naive_mrs_loop(paths: list[Path], measure: bool = False) -> tuple[float, int]:
    """The astropy loop over MRS files: per file open, per red table (``COADD_R``, ``R-<LMJM>``)
    flux + wavelength sorted ascending, the same blur to R 1,800 and the same preprocessing (+ the
    same H-alpha measurements at R 7,500); no cosmic-ray cleaning. Returns (seconds, spectra)."""
    from spectraldl.adapt import degrade_resolution
    n = 0
    t = time.perf_counter()
    for hl in opened(paths):
        for hdu in hl[1:]:
            name = hdu.header.get("EXTNAME", "")
            if name != "COADD_R" and not name.startswith("R-"):
                continue
            d = hdu.data
            if "WAVELENGTH" in d.names:
                wave, flux = np.asarray(d["WAVELENGTH"][0], float), np.asarray(d["FLUX"][0], float)
            else:
                wave, flux = 10 ** np.asarray(d["LOGLAM"], float), np.asarray(d["FLUX"], float)
            mask = np.asarray(d["ANDMASK" if "ANDMASK" in d.names else "PIXMASK"]).ravel()
            o = np.argsort(wave)
            wave, flux, mask = wave[o], flux[o], mask[o]
            good = np.isfinite(flux) & (mask == 0)
            n += 1
            try:
                blurred, _ = degrade_resolution(wave, flux, good)
                preprocess(wave, blurred, good)
            except SpectrumError:
                continue
            if measure:
                measure_halpha(wave, flux, None, mask, resolving_power=7500.0)
    return time.perf_counter() - t, n


def naive_loop(paths: list[Path], measure: bool = False) -> tuple[float, int]:
    """The astropy loop: per file open, flux + wavelength, the same preprocessing; with ``measure``
    also the same H-alpha measurements (``spectraldl.halpha.measure_halpha``), so that it makes
    what the job makes."""
    ok = 0
    t = time.perf_counter()
    for hl in opened(paths):
        if "COADD" in hl:
            row = hl["COADD"].data
            flux, wave, mask = row["FLUX"][0], row["WAVELENGTH"][0], row["ANDMASK"][0]
            ivar = row["IVAR"][0]
        else:
            h, d = hl[0].header, hl[0].data
            flux, ivar, mask = d[0], d[1], d[3]
            wave = 10 ** (h["COEFF0"] + np.arange(d.shape[1]) * h["COEFF1"])
        try:
            preprocess(wave, flux, np.isfinite(flux) & (mask == 0))
            ok += 1
        except SpectrumError:
            continue
        if measure:
            measure_halpha(np.asarray(wave, dtype=np.float64), flux, ivar, mask)
    return time.perf_counter() - t, ok


class PeakRSS:
    """Samples RSS of this process and its JVM child (not the Python workers) every 50 ms."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _procs(self):
        me = psutil.Process()
        return [me] + [c for c in me.children(recursive=True) if "java" in (c.name() or "")]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, sum(p.memory_info().rss for p in self._procs()))
            except psutil.Error:
                pass
            time.sleep(0.05)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", default=str(ROOT.parent / "shared/data/real"))
    ap.add_argument("--files", type=int, default=50000)
    ap.add_argument("--naive", type=int, default=2000, help="files timed for the naive loop (it is linear)")
    ap.add_argument("--rounds", type=int, default=5, help="naive + job rounds per file kind (median reported)")
    ap.add_argument("--mrs-files", type=int, default=4000, help="MRS files (hard links of the real ones); 0: skip")
    ap.add_argument("--naive-mrs", type=int, default=160, help="MRS files timed for the naive loop")
    ap.add_argument("--memory", default="10000,100000")
    ap.add_argument("--memory-repeats", type=int, default=3, help="fresh sessions per size (JVM heap sizing is noisy)")
    ap.add_argument("--tmp", default=None)
    ap.add_argument("--memory-child", nargs=2, metavar=("ARCHIVE", "WAREHOUSE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    setup_logging("WARNING")
    cores = os.cpu_count() or 1
    cfg = load_config("local", overrides=["logging.level=\"WARNING\""])
    if args.memory_child:  # a fresh session (both sizes start equally cold): ingest once, report the peak
        spark = get_spark("bench-ingest-memory", cfg, master=f"local[{cores}]")
        arc, wh = args.memory_child
        with PeakRSS() as peak:
            t = time.perf_counter()
            run_ingest(spark, arc, wh, cfg)
            dt = time.perf_counter() - t
        spark.stop()
        print(peak.peak, dt)
        return
    spark = get_spark("bench-ingest", cfg, master=f"local[{cores}]")
    sources = real_lrs(Path(args.real))
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-", dir=args.tmp))
    try:
        gz_dir = tmp / "gzsrc"
        gz_dir.mkdir()
        gz_sources = []
        for p in sources:
            q = gz_dir / (p.name + ".gz")
            q.write_bytes(gzip.compress(p.read_bytes(), 6))
            gz_sources.append(q)
        print(f"{len(sources)} distinct real LAMOST LRS files hard-linked into {args.files} paths; {cores} cores")
        warm = tmp / "warm"
        make_archive(warm, sources, 200)
        run_ingest(spark, str(warm), str(tmp / "wh-warm"), cfg)  # JVM, Python workers and caches warm
        print("the session is warmed up by a 200-file ingest first (a cold start adds about 5 s once)")
        print(f"{'files':<8}{'job spectra/s/core':>20}{'naive spectra/s':>17}{'ratio':>8}"
              f"{'naive+measure /s':>18}{'ratio':>8}   (medians of {args.rounds} rounds)")
        for label, srcs in (("plain", sources), ("gzip", gz_sources)):
            arc = tmp / f"archive-{label}"
            make_archive(arc, srcs, args.files)
            all_paths = sorted(arc.rglob("spec-*"))
            rounds, phases = [], []
            # naive and job side by side, round after round: this machine's speed drifts by tens
            # of per cent within minutes, and a ratio must compare the two under the same drift
            for r in range(args.rounds):
                naive_rate = args.naive / naive_loop(all_paths[: args.naive])[0]
                measured_rate = args.naive / naive_loop(all_paths[: args.naive], measure=True)[0]
                t = time.perf_counter()
                s = run_ingest(spark, str(arc), str(tmp / f"wh-{label}-{r}"), cfg)
                job_t = time.perf_counter() - t
                assert s["seen"] == args.files == s["ingested"] + s["rejected"] + s["skipped"]
                rounds.append((args.files / job_t / cores, naive_rate, measured_rate))
                phases.append((job_t, s["list_seconds"], s["parse_seconds"], s["write_seconds"]))
                shutil.rmtree(tmp / f"wh-{label}-{r}")
            ratios = [j / n for j, n, _ in rounds]
            ratios_m = [j / m for j, _, m in rounds]
            job_rate, naive_rate, measured_rate = (statistics.median(x) for x in zip(*rounds))
            print(f"{label:<8}{job_rate:>20.0f}{naive_rate:>17.0f}{statistics.median(ratios):>8.2f}"
                  f"{measured_rate:>18.0f}{statistics.median(ratios_m):>8.2f}   "
                  f"rounds: {', '.join(f'{x:.2f}' for x in ratios)} / {', '.join(f'{x:.2f}' for x in ratios_m)}")
            run_s, list_s, parse_s, write_s = (f"{min(x):.2f}-{max(x):.2f}" for x in zip(*phases))
            print(f"{'':<8}job run {run_s} s: listing {list_s}, parse {parse_s}, write {write_s} "
                  "(the run summaries' list_seconds, parse_seconds, write_seconds; min-max of the rounds)")
            shutil.rmtree(arc)
        print("job: whole run (listing, parse, preprocessing, H-alpha measurements, commit) per core; naive: "
              "astropy + the same preprocessing (+ the same measurements), 1 core")
        mrs_sources = real_mrs(Path(args.real))
        if mrs_sources and args.mrs_files:
            arc = tmp / "archive-mrs"
            make_archive(arc, mrs_sources, args.mrs_files)
            paths = sorted(arc.rglob("spec-*"))
            rounds = []
            for r in range(args.rounds):
                dt, n_naive = naive_mrs_loop(paths[: args.naive_mrs])
                dt_m, _ = naive_mrs_loop(paths[: args.naive_mrs], measure=True)
                t = time.perf_counter()
                s = run_ingest(spark, str(arc), str(tmp / f"wh-mrs-{r}"), cfg)
                job_t = time.perf_counter() - t
                n_spectra = s["spectra"] + s["rejected_spectra"]
                assert s["seen"] == args.mrs_files == s["ingested"] + s["rejected"] + s["skipped"]
                rounds.append((n_spectra / job_t / cores, n_naive / dt, n_naive / dt_m, s["seen"] / job_t / cores))
                shutil.rmtree(tmp / f"wh-mrs-{r}")
            job_rate, naive_rate, measured_rate, files_rate = (statistics.median(x) for x in zip(*rounds))
            ratios = [j / n for j, n, _, _ in rounds]
            ratios_m = [j / m for j, _, m, _ in rounds]
            print(f"{'mrs':<8}{job_rate:>20.0f}{naive_rate:>17.0f}{statistics.median(ratios):>8.2f}"
                  f"{measured_rate:>18.0f}{statistics.median(ratios_m):>8.2f}   "
                  f"rounds: {', '.join(f'{x:.2f}' for x in ratios)} / {', '.join(f'{x:.2f}' for x in ratios_m)}")
            print(f"mrs: {len(mrs_sources)} real MRS files hard-linked into {args.mrs_files} paths, "
                  f"{n_spectra} red-arm spectra (co-adds and single exposures): the job makes "
                  f"{job_rate:.0f} spectra/s/core ({files_rate:.1f} files/s/core) with cosmic-ray cleaning; "
                  "the naive loop blurs and preprocesses the same tables without it")
            shutil.rmtree(arc)
        spark.stop()  # the memory runs start their own sessions; stop this one's JVM first
        sizes = [int(x) for x in args.memory.split(",")]
        peaks: dict[int, list[float]] = {n: [] for n in sizes}
        for n in sizes:
            make_archive(tmp / f"archive-mem-{n}", sources, n)
        for rep in range(args.memory_repeats):  # sizes interleaved, so drifts hit all of them alike
            for n in sizes:
                wh = tmp / f"wh-mem-{n}-{rep}"
                out = subprocess.run([sys.executable, __file__, "--memory-child", str(tmp / f"archive-mem-{n}"),
                                      str(wh)], capture_output=True, text=True, check=True)
                peaks[n].append(int(out.stdout.split()[-2]) / 2**20)
                shutil.rmtree(wh)
        median = {n: statistics.median(peaks[n]) for n in sizes}
        for n in sizes:
            print(f"driver peak RSS (Python + JVM) ingesting {n} paths: median {median[n]:.0f} MiB "
                  f"(min {min(peaks[n]):.0f}, max {max(peaks[n]):.0f}; {len(peaks[n])} fresh sessions)")
        print(f"largest / smallest median: {median[sizes[-1]] / median[sizes[0]]:.2f} (target <= 1.20)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        spark.stop()


if __name__ == "__main__":
    main()
