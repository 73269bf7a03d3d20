"""Coverage-guided fuzzing of the spectrum readers (atheris / libFuzzer), run outside CI.

``read_spectrum(bytes)`` is the trust boundary of the project: every file of the archive goes
through it. Its contract (``spectraldl.io.reader``): for any bytes it returns a :class:`Spectrum`
or raises :class:`SpectrumError` with a reason code and the file name; nothing else escapes. The
reader wraps unexpected exceptions into reason ``unreadable`` as a safety net, so for byte input
(no path to be unreadable) ``unreadable`` means a reader bug was caught: this harness counts it
as a crash, as it does any other exception.

A returned :class:`Spectrum` must also keep the promises the ingest job relies on: float64,
finite, strictly increasing wavelengths; 1-D flux (and ivar/andmask) of the same length;
a known format; metadata of the types the ``spectra`` table stores (``obsid`` fits a long).
With ``FUZZ_PREPROCESS=1`` the default preprocessing runs on every spectrum read, and must return
140 finite values or raise ``SpectrumError``.

Usage (one process; seeds are made from the real files in ``../shared/data/real``)::

    pip install -r requirements-bench.txt          # atheris
    python fuzz/fuzz_readers.py -max_total_time=300
    python fuzz/fuzz_readers.py -max_total_time=300 my_corpus_dir/     # keep the corpus
    python fuzz/fuzz_readers.py crash-<sha1>                            # replay one input

Without a corpus directory the corpus goes to ``$TMPDIR/spectraldl-fuzz/corpus``; crash inputs
to ``$TMPDIR/spectraldl-fuzz/artifacts/`` unless ``-artifact_prefix=`` is given. Any libFuzzer
flag works (``-runs=N``, ``-max_len=N``, ``-timeout=S``, ``-print_final_stats=1``).
"""
from __future__ import annotations

import gzip
import io
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np  # imported before instrumentation: only spectraldl is instrumented

try:
    import isal  # noqa: F401  (likewise)
except ImportError:  # pragma: no cover
    pass

import atheris

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "lib"))
REAL = Path(os.environ.get("SPECTRALDL_REAL_DATA", ROOT.parent / "shared" / "data" / "real"))

with atheris.instrument_imports(include=["spectraldl"]):
    from spectraldl.io import FORMAT_SURVEY, META_KEYS, REASONS, Limits, Spectrum, SpectrumError, read_spectrum
    from spectraldl.preprocess import DEFAULT_SETTINGS, preprocess

#: Limits while fuzzing: small, so that a mutated size card cannot make a test case slow.
LIMITS = Limits(max_bytes=8 << 20, max_header_cards=20_000, max_hdus=32)
NAME = "fuzz.fits"
PREPROCESS = os.environ.get("FUZZ_PREPROCESS", "") not in ("", "0")
INT64 = (-(2 ** 63), 2 ** 63 - 1)

#: Real files the seeds are made from (relative to REAL): one of each format.
SEED_FILES = (
    "lamost/podondra_bt-spectraldl/bt-cmi-lamost.fits",                # DR1 image, float32
    "lamost/podondra_spectraml/spec-55916-B5591606_sp01-001.fits",     # DR2 image, float64
    "lamost/LiangJunC_PyLASP/3703110.fits",                            # DR10 COADD table
    "lamost/ChenfaZheng_LAMOST-SBC/101008.fits",                       # gzip under .fits
    "ondrejov/podondra_bt-spectraldl/td240024.fits",                   # Ondřejov table
    "ondrejov/podondra_bt-spectraldl/samples_bt-cmi-ondrejov.fits",    # Ondřejov IRAF
    "lamost/hypergravity_laspec/med-58408-TD230151N343645T01_sp01-015.fits",  # MRS (shrunk only)
)


class ContractViolation(AssertionError):
    """The reader broke its contract; atheris reports it as a crash with this message."""


def check_spectrum(s: Spectrum) -> None:
    """Raise :class:`ContractViolation` unless ``s`` keeps the promises ingest relies on."""
    def fail(msg: str) -> None:
        raise ContractViolation(f"{s.format}: {msg}")

    w = s.wavelength
    if not isinstance(w, np.ndarray) or w.dtype != np.float64 or w.ndim != 1 or w.size == 0:
        fail(f"wavelength {type(w).__name__} {getattr(w, 'dtype', None)} {getattr(w, 'shape', None)}")
    if not np.isfinite(w).all() or w[0] <= 0 or (w.size > 1 and not (np.diff(w) > 0).all()):
        fail("wavelengths not finite, positive and strictly increasing")
    for key in ("flux", "ivar", "andmask"):
        a = getattr(s, key)
        if a is None and key != "flux":
            continue
        if not isinstance(a, np.ndarray) or a.shape != w.shape:
            fail(f"{key} shape {getattr(a, 'shape', None)} != wavelength {w.shape}")
        if a.dtype.kind not in "biuf":
            fail(f"{key} dtype {a.dtype} is not numeric")
        if not a.dtype.isnative and a.dtype.itemsize > 1:
            fail(f"{key} dtype {a.dtype} is not in native byte order")
    if s.format not in FORMAT_SURVEY:
        fail(f"unknown format id {s.format!r}")
    if s.medium not in ("air", "vacuum"):
        fail(f"medium {s.medium!r}")
    missing = set(META_KEYS) - set(s.meta)
    if missing:
        fail(f"meta lacks {sorted(missing)}")
    for k, v in s.meta.items():
        if v is not None and not isinstance(v, (str, int, float)) or isinstance(v, bool):
            fail(f"meta {k} = {v!r} ({type(v).__name__})")
        if isinstance(v, int) and not INT64[0] <= v <= INT64[1]:
            fail(f"meta {k} = {v} does not fit a long")
    good = s.good
    if good.dtype != bool or good.shape != w.shape:
        fail(f"good mask {good.dtype} {good.shape}")


def one_input(data: bytes) -> None:
    """The fuzz target: read ``data``; anything but the contract raises."""
    try:
        s = read_spectrum(data, name=NAME, limits=LIMITS)
    except SpectrumError as exc:
        if exc.reason == "unreadable":  # only the safety net makes it for bytes: a caught bug
            raise ContractViolation(f"internal error caught by the safety net: {exc}") from None
        if exc.reason not in REASONS or NAME not in str(exc):
            raise ContractViolation(f"bad SpectrumError {exc!r}") from None
        return
    check_spectrum(s)
    if PREPROCESS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                vec, frac = preprocess(s.wavelength, s.flux, s.good, DEFAULT_SETTINGS, name=NAME)
            except SpectrumError:
                return
        if vec.shape != (DEFAULT_SETTINGS.n_points,) or not np.isfinite(vec).all() or not 0 <= frac <= 1:
            raise ContractViolation(f"preprocess gave {vec.shape} finite={np.isfinite(vec).all()} frac={frac}")


# -- seeds ---------------------------------------------------------------------------------------
def _shrunk(data: bytes, n: int = 300) -> bytes | None:
    """The same file with its spectrum cut to ``n`` pixels (astropy rewrites it), or None."""
    from astropy.io import fits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hl = fits.open(io.BytesIO(data), memmap=False)
        out = fits.HDUList()
        for i, hdu in enumerate(hl):
            if i >= 3:
                break
            if isinstance(hdu, fits.BinTableHDU):
                cols = []
                for c in hdu.columns:
                    arr = hdu.data[c.name]
                    if arr.ndim == 2:  # one row of arrays (COADD)
                        cols.append(fits.Column(name=c.name, format=f"{min(n, arr.shape[1])}{c.format[-1]}",
                                                array=arr[:, :n]))
                    else:              # one row per pixel (MRS, Ondřejov)
                        cols.append(fits.Column(name=c.name, format=c.format, array=arr[:n]))
                out.append(fits.BinTableHDU.from_columns(cols, header=hdu.header))
            elif i == 0:
                d = hdu.data
                out.append(fits.PrimaryHDU(None if d is None else d[..., :n], header=hdu.header))
        buf = io.BytesIO()
        out.writeto(buf, output_verify="silentfix")
    return buf.getvalue()


def make_seeds(corpus: Path) -> int:
    """Write seed inputs (real files, shrunk copies, header-only prefixes, gzip) into ``corpus``."""
    corpus.mkdir(parents=True, exist_ok=True)
    n = 0
    for rel in SEED_FILES:
        p = REAL / rel
        if not p.is_file():
            continue
        raw = p.read_bytes()
        plain = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
        seeds = {"small": _shrunk(plain), "head": plain[:plain.find(b"END" + b" " * 77) // 2880 * 2880 + 2880]}
        if len(raw) <= 200_000:
            seeds["orig"] = raw
        if raw is plain and len(plain) <= 200_000 and "ondrejov" not in rel:
            seeds["gz"] = gzip.compress(seeds["small"], mtime=0)
        for tag, blob in seeds.items():
            if blob:
                (corpus / f"{p.stem}-{tag}.fits").write_bytes(blob)
                n += 1
    return n


def main(argv: list[str]) -> None:
    args = list(argv)
    inputs = [a for a in args[1:] if not a.startswith("-")]
    work = Path(tempfile.gettempdir()) / "spectraldl-fuzz"
    if not inputs:
        corpus = work / "corpus"
        if not corpus.is_dir() or not any(corpus.iterdir()):
            print(f"fuzz_readers: {make_seeds(corpus)} seeds from {REAL} in {corpus}", file=sys.stderr)
        args.append(str(corpus))
    elif all(Path(a).is_dir() for a in inputs):
        for d in inputs:
            if not any(Path(d).iterdir()):
                make_seeds(Path(d))
    defaults = {"-artifact_prefix": f"{work / 'artifacts'}/", "-max_len": "200000", "-timeout": "10",
                "-rss_limit_mb": "3072"}
    for flag, value in defaults.items():
        if not any(a.startswith(flag + "=") for a in args):
            if flag == "-artifact_prefix":
                (work / "artifacts").mkdir(parents=True, exist_ok=True)
            args.insert(1, f"{flag}={value}")
    atheris.Setup(args, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
