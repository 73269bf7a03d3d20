"""The parse's shortcuts give the values of the plain code they stand for: header indexes shared
per key sequence, metadata converted straight from the card text."""
from __future__ import annotations

import itertools
import math
import random

import pytest

from spectraldl.io import fits
from spectraldl.io.fits import Header
from spectraldl.io.meta import _META_CARDS, normalise_meta


def _card(key: str, value: str) -> str:
    return f"{key:<8}= {value}"[:80].ljust(80)


def _header(cards: list[tuple[str, str]]) -> Header:
    text = "".join(_card(k, v) for k, v in cards) + "END".ljust(80)
    return Header(text)


def _same(a, b) -> bool:
    return type(a) is type(b) and (a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)))


def _reference_meta(*headers: Header) -> dict:
    """normalise_meta as the plain loop: the first keyword present per header, parsed, then
    converted; an empty value leaves the key to the next header."""
    meta = {}
    for key, cards, convert in _META_CARDS:
        v = None
        for h in headers:
            v = h.first(*cards)
            if v is not None:
                break
        meta[key] = convert(v)
    return meta


#: Value fields as they occur (and as they should not, but might): strings with blanks, escaped
#: quotes and slashes, empty strings and fields, integers, reals with E/D exponents, the -9999
#: placeholder, sexagesimal strings, booleans, numbers with underscores, junk.
VALUES = [
    "'LAMOST J103238.85+355240.3' / Designation", "'STAR    '           / Class", "''", "'   '",
    "'O''Brien'", "'a/b' / slash inside", "", "          / only a comment", "740103003 / id",
    "+12", "-7", "99999999999999999999", "0.00001001 / z", "108.39", "-9999", "-9999.0", "-9.999D3",
    "1.5d2", "1E5", ".5", "+.5e-3", "158.161915", "'07:57:03.987'", "'+02 57 03.0'", "'-00 30 00'",
    "T", "F", "1_000", "12abc", "'2019-04-01T14:03:00' / date", "3.0", "'3'", "nan", "'  x  '",
]


def test_normalise_meta_equals_the_plain_loop():
    rng = random.Random(16)
    keywords = sorted({k for _, cards, _ in _META_CARDS for k in cards})
    for _ in range(3000):
        headers = []
        for _ in range(rng.choice((1, 1, 2))):
            picked = rng.sample(keywords, rng.randint(0, len(keywords)))
            cards = [(k, rng.choice(VALUES)) for k in picked]
            if cards and rng.random() < 0.2:  # a repeated keyword: the first card wins
                cards.append((cards[0][0], rng.choice(VALUES)))
            rng.shuffle(cards)
            headers.append(_header(cards))
        got, want = normalise_meta(*headers), _reference_meta(*[Header(h._text) for h in headers])
        assert got.keys() == want.keys()
        for k in want:
            assert _same(got[k], want[k]), (k, [h._text for h in headers])


def test_every_value_alone_in_each_field():
    for (key, cards, _), value in itertools.product(_META_CARDS, VALUES):
        h = _header([(cards[0], value)])
        got, want = normalise_meta(h)[key], _reference_meta(Header(h._text))[key]
        assert _same(got, want), (key, value)


def test_headers_with_one_key_sequence_share_an_index():
    a = _header([("OBSID", "1"), ("RA", "10.0"), ("RA", "11.0")])
    b = _header([("OBSID", "2"), ("RA", "20.0"), ("RA", "21.0")])
    assert a._index is b._index
    assert (a["OBSID"], a["RA"], b["OBSID"], b["RA"]) == (1, 10.0, 2, 20.0)  # first card wins
    c = _header([("RA", "30.0"), ("OBSID", "3")])
    assert c._index is not a._index and (c["OBSID"], c["RA"]) == (3, 30.0)


def test_header_index_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(fits, "_HEADER_INDEXES", {})
    for i in range(fits._INDEXED_MAX_LAYOUTS * 2 + 5):
        h = _header([(f"K{i}", "1")])
        assert h[f"K{i}"] == 1
        assert len(fits._HEADER_INDEXES) <= fits._INDEXED_MAX_LAYOUTS
    big = Header("".join(_card(f"X{i}", str(i)) for i in range(fits._INDEXED_MAX_CARDS + 1)))
    assert big["X7"] == 7 and big.ncards == fits._INDEXED_MAX_CARDS + 1
    assert all(len(seq) // 10 <= fits._INDEXED_MAX_CARDS for seq in fits._HEADER_INDEXES)


@pytest.mark.parametrize("text", ["", _card("SIMPLE", "T")])
def test_small_headers(text):
    h = Header(text)
    assert h.ncards == len(text) // 80 and ("SIMPLE" in h) == bool(text)


def _lrs_like(seed: int, n: int = 3909):
    """A LAMOST-like spectrum on the shared read-only log-linear grid."""
    import numpy as np

    from spectraldl.io.wavelength import _loglinear_grid
    rng = np.random.default_rng(seed)
    w = _loglinear_grid(3.5682, 1e-4, n)
    flux = 100 + 0.01 * (w - 6000) + rng.normal(0, 2, n)
    flux -= 40 * np.exp(-0.5 * ((w - 6564.61) / 3) ** 2)
    ivar = np.full(n, 0.25)
    return w, flux.astype(np.float32), ivar.astype(np.float32), np.zeros(n, np.float32)


def test_shared_grid_shortcuts_give_the_same_bits():
    """A read-only shared grid (remembered by identity) and a writeable copy (computed afresh)
    give the same vector and measurements, with and without masked pixels."""
    import numpy as np

    from spectraldl.halpha import measure_halpha
    from spectraldl.preprocess import preprocess
    for seed in range(20):
        w, flux, ivar, mask = _lrs_like(seed)
        if seed % 3 == 1:
            mask[np.searchsorted(w, 6540.0) + seed] = 4  # a masked pixel in the window
        if seed % 3 == 2:
            ivar[np.searchsorted(w, 6564.0)] = 0  # a pixel without ivar
        copy = np.array(w)
        assert not w.flags.writeable and copy.flags.writeable
        for _ in range(2):  # the second call hits the caches
            v1, f1 = preprocess(w, flux, andmask=mask)
            v2, f2 = preprocess(copy, flux, andmask=mask)
            assert v1.tobytes() == v2.tobytes() and f1 == f2
            assert measure_halpha(w, flux, ivar, mask) == measure_halpha(copy, flux, ivar, mask)


def test_column_wavelength_shares_equal_grids_only():
    import numpy as np

    from spectraldl.io.errors import SpectrumError
    from spectraldl.io.wavelength import check_wavelength, column_wavelength
    base = np.linspace(3700.0, 9100.0, 3000)
    a = column_wavelength(base.astype(">f8"), "a")
    b = column_wavelength(base.astype(">f8"), "b")
    assert a is b and not a.flags.writeable and a.dtype == np.float64
    assert a.tobytes() == check_wavelength(base, None).tobytes()
    other = base.copy()
    other[1500] += 1e-9  # same ends, same length: the lookup key matches, the bytes do not
    c = column_wavelength(other.astype(">f8"), "c")
    assert c is not a and c.tobytes() == other.tobytes()
    f4 = column_wavelength(base.astype(">f4"), "d")
    assert f4.tobytes() == check_wavelength(base.astype(np.float32), None).tobytes()
    bad = base.copy()
    bad[10] = bad[9]
    with pytest.raises(SpectrumError, match="strictly increasing"):
        column_wavelength(bad.astype(">f8"), "e")
    with pytest.raises(SpectrumError, match="strictly increasing"):
        column_wavelength(bad.astype(">f8"), "e")  # a refused grid is never remembered
