"""The batched parse gives the bits of the one-at-a-time parse.

:func:`spectraldl.preprocess.preprocess_batch` (what the ingest's tasks run on the spectra of a
wavelength grid) against :func:`~spectraldl.preprocess.preprocess` per spectrum, on constructed
spectra with every outcome, and :func:`spectraldl.parse.parse_paths` against
:func:`~spectraldl.parse.parse_path` per file on synthetic and real files.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from spectraldl import preprocess as pp
from spectraldl.config import load_config
from spectraldl.io.errors import SpectrumError
from spectraldl.io.wavelength import _loglinear_grid
from spectraldl.parse import ParseOptions, parse_path, parse_paths
from spectraldl.preprocess import PreprocessSettings, preprocess, preprocess_batch


def test_interp_rows_gives_numpy_interp_bits():
    """Points between pixels, exactly on pixels, on the last pixel and outside the range."""
    rng = np.random.default_rng(7)
    for _ in range(300):
        n = int(rng.integers(2, 200))
        xp = 6000.0 + np.cumsum(rng.uniform(0.01, 3.0, n))
        x = np.sort(np.concatenate([rng.uniform(xp[0] - 5, xp[-1] + 5, 60), rng.choice(xp, 5), xp[[0, -1]]]))
        fp = rng.normal(0, 10.0 ** rng.integers(-3, 4), (4, n))
        got = pp._interp_rows(pp._interp_plan(x, xp), fp)
        for k in range(fp.shape[0]):
            assert got[k].tobytes() == np.interp(x, xp, fp[k]).tobytes()
    assert pp._interp_plan(np.array([1.0, 2.0]), np.array([1.0, 1.0, 3.0])) is None  # not increasing


def _spectra(n: int = 3909) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray | None], list[str]]:
    """Spectra on one shared read-only LAMOST grid, each with an outcome of its own: clean ones,
    masked and non-finite pixels (the general path), a dead fibre, a negative continuum, constant
    flux, a huge flux, too few good pixels, and a float mask."""
    rng = np.random.default_rng(16)
    w = _loglinear_grid(3.5682, 1e-4, n)
    assert not w.flags.writeable
    win = np.flatnonzero((w >= 6519.0) & (w <= 6732.0))
    fluxes, masks, kinds = [], [], []

    def add(kind, flux, mask=None):
        fluxes.append(flux.astype(np.float32))
        masks.append(mask)
        kinds.append(kind)

    for seed in range(12):  # clean absorption and emission lines, sloped continua
        f = 100 + 0.01 * seed * (w - 6000) + rng.normal(0, 2, n)
        f += (-40 if seed % 2 else 300) * np.exp(-0.5 * ((w - 6564.61) / 3) ** 2)
        add(f"clean-{seed}", f, np.zeros(n, np.int32))
    base = 100 + rng.normal(0, 2, n)
    m = np.zeros(n, np.int32)
    m[win[10]] = 4
    add("masked", base, m)
    f = base.copy()
    f[win[50]] = np.nan
    add("nan", f, np.zeros(n, np.int32))
    add("dead", np.zeros(n), np.zeros(n, np.int32))
    add("negative", -base, np.zeros(n, np.int32))
    add("constant", np.full(n, 5.0), np.zeros(n, np.int32))
    add("huge", base * 1e36, None)  # float32 near its top: the continuum fit still works
    m = np.zeros(n, np.int32)
    m[win[: int(0.7 * win.size)]] = 1
    add("mostly-masked", base, m)
    add("float-mask", base, np.zeros(n, np.float32))
    add("no-mask", base + 1, None)
    return w, fluxes, masks, kinds


def _one(w, f, m, s, name):
    try:
        return preprocess(w, f, None, s, name=name, andmask=m)
    except SpectrumError as exc:
        return exc


def _same(a, b) -> bool:
    if isinstance(a, SpectrumError) or isinstance(b, SpectrumError):
        return type(a) is type(b) and (a.reason, str(a)) == (b.reason, str(b))
    return a[0].dtype == b[0].dtype and a[0].tobytes() == b[0].tobytes() and a[1] == b[1]


SETTINGS = [PreprocessSettings(), PreprocessSettings(continuum="none", normalisation="minmax"),
            PreprocessSettings(n_points=57, window_start=6530.0, window_stop=6700.0)]


@pytest.mark.parametrize("s", SETTINGS, ids=["default", "none-minmax", "57-points"])
def test_batch_equals_one_by_one(s, monkeypatch):
    w, fluxes, masks, kinds = _spectra()
    batched = []
    real_rows = pp._rows
    monkeypatch.setattr(pp, "_rows", lambda fw, *a: batched.append(fw.shape[0]) or real_rows(fw, *a))
    got = preprocess_batch(w, fluxes, masks, s, kinds)
    assert sum(batched) >= 12  # the clean spectra went through the 2-D path
    outcomes = {}
    for k, kind in enumerate(kinds):
        want = _one(w, fluxes[k], masks[k], s, kind)
        assert _same(got[k], want), kind
        outcomes[kind] = got[k].reason if isinstance(got[k], SpectrumError) else "ok"
    assert outcomes["dead"] == outcomes["negative"] == outcomes["constant"] == "no_signal" or s.continuum == "none"
    assert outcomes["mostly-masked"] == "too_few_valid_pixels"
    assert outcomes["clean-0"] == outcomes["masked"] == outcomes["nan"] == outcomes["huge"] == "ok"
    # a spectrum's bits do not depend on the others in its batch
    for pick in (slice(None, None, 3), slice(None, None, -1), slice(4, 6)):
        sub = preprocess_batch(w, fluxes[pick], masks[pick], s, kinds[pick])
        assert all(_same(a, b) for a, b in zip(sub, got[pick]))


def test_batch_off_the_window_or_on_a_writeable_grid():
    w, fluxes, masks, kinds = _spectra()
    short = np.array(w[:2000])  # ends near 5800 Å
    got = preprocess_batch(short, [f[:2000] for f in fluxes[:3]], [None] * 3, names=["a", "b", "c"])
    assert [(e.reason, e.name) for e in got] == [("window_not_covered", n) for n in "abc"]
    copy = np.array(w)  # writeable: planned afresh, the same bits
    assert all(_same(a, b) for a, b in zip(preprocess_batch(copy, fluxes, masks, names=kinds),
                                           preprocess_batch(w, fluxes, masks, names=kinds)))


def _rows_equal(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            if not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and x.dtype == y.dtype
                    and x.tobytes() == y.tobytes()):
                return False
        elif not (x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y))):
            return False
    return True


def _check_files(paths: list[str]) -> dict[str, int]:
    opts = ParseOptions.from_config(load_config("local"))
    single = [parse_path(p, opts) for p in paths]
    rng = np.random.default_rng(3)
    order = rng.permutation(len(paths))  # batches mixing releases, grids and outcomes
    shuffled = [paths[i] for i in order]
    batched = {}
    for start in range(0, len(shuffled), 37):
        chunk = shuffled[start:start + 37]
        batched.update(zip(chunk, parse_paths(chunk, opts)))
    outcomes: dict[str, int] = {}
    for p, want in zip(paths, single):
        got = batched[p]
        assert len(got) == len(want) and all(_rows_equal(a, b) for a, b in zip(got, want)), p
        for r in got:
            outcomes[r.get("reason") or r["outcome"]] = outcomes.get(r.get("reason") or r["outcome"], 0) + 1
    return outcomes


def test_parse_paths_equals_parse_path_on_synthetic_files(synth_archive):
    paths = sorted(str(p) for p in synth_archive.rglob("*.fits*"))
    outcomes = _check_files(paths)
    assert outcomes["ok"] >= 40 and sum(outcomes.values()) >= len(paths)


@pytest.mark.realdata
def test_parse_paths_equals_parse_path_on_real_files(real_dir):
    paths = sorted(str(p) for p in (real_dir / "lamost").rglob("*.fits*"))
    outcomes = _check_files(paths)
    assert outcomes["ok"] >= 120
