"""Bad input: every failure is a SpectrumError with a reason code and the file name."""
from __future__ import annotations

import functools
import gzip
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import REAL
from spectraldl.io import Limits, SpectrumError, read_spectrum

LAYOUTS = ("dr1", "dr2", "dr9", "table", "iraf")
REAL_SAMPLE = {"dr1": REAL / "lamost/podondra_bt-spectraldl/bt-cmi-lamost.fits",            # DR1 float32 image
               "dr2": REAL / "lamost/podondra_spectraml/spec-55916-B5591606_sp01-001.fits",  # DR2 float64
               "dr9": REAL / "lamost/LiangJunC_PyLASP/3703110.fits",                        # DR10 COADD
               "table": REAL / "ondrejov/podondra_bt-spectraldl/td240024.fits",             # Ondřejov table
               "iraf": REAL / "ondrejov/podondra_bt-spectraldl/samples_bt-cmi-ondrejov.fits"}  # IRAF
#: The fuzzing runs on synthetic files of every layout (no real data needed) and on real ones.
ORIGINS = ["synthetic", pytest.param("real", marks=pytest.mark.realdata)]


@pytest.fixture(scope="module")
def sample(synth_samples):
    """The synthetic file of each layout (conftest's ``synth_samples``), as bytes."""
    return {k: synth_samples[k].read_bytes() for k in LAYOUTS}


@functools.cache
def _real_sample() -> dict[str, bytes]:
    return {k: REAL_SAMPLE[k].read_bytes() for k in LAYOUTS}


def _samples(origin: str, synthetic: dict[str, bytes]) -> dict[str, bytes]:
    return synthetic if origin == "synthetic" else _real_sample()


def reason_of(source, **kw) -> str:
    with pytest.raises(SpectrumError) as ei:
        read_spectrum(source, **kw)
    return ei.value.reason


def card(text: str) -> bytes:
    return text.ljust(80).encode()


def set_card(data: bytes, key: str, value: str) -> bytes:
    """Replace the value of the first ``key`` card in the primary header."""
    i = 0
    while i < len(data):
        if data[i:i + 8].decode() == f"{key:<8}":
            return data[:i] + card(f"{key:<8}= {value:>20}") + data[i + 80:]
        i += 80
    raise KeyError(key)


def test_unreadable_paths(tmp_path):
    assert reason_of(tmp_path / "missing.fits") == "unreadable"
    (tmp_path / "dir.fits").mkdir()
    assert reason_of(tmp_path / "dir.fits") == "unreadable"
    os.symlink(tmp_path / "nowhere.fits", tmp_path / "broken.fits")
    with pytest.raises(SpectrumError, match="broken symbolic link") as ei:
        read_spectrum(tmp_path / "broken.fits")
    assert str(tmp_path / "broken.fits") in str(ei.value)
    (tmp_path / "empty.fits").write_bytes(b"")
    assert reason_of(tmp_path / "empty.fits") == "empty_file"


def test_bad_contents(sample):
    good = sample["dr1"]
    assert reason_of(b"<html><body>404 Not Found</body></html>", name="x.fits") == "not_fits"
    assert reason_of(good[:1000], name="x") == "truncated"       # inside the header
    assert reason_of(good[:20000], name="x") == "truncated"      # inside the data
    assert reason_of(gzip.compress(good)[:3000], name="x") == "gzip_error"
    assert reason_of(set_card(good, "NAXIS1", "500000000"), name="x") == "too_large"
    assert reason_of(set_card(good, "BITPIX", "24"), name="x") == "bad_header"
    assert reason_of(set_card(good, "NAXIS2", "4"), name="x") == "bad_shape"
    assert reason_of(set_card(good, "COEFF0", "'abc'"), name="x") == "missing_wavelength"
    assert reason_of(set_card(good, "COEFF1", "-0.0001"), name="x") == "bad_wavelength"
    no_end = good[:2880 * 4].replace(b"END" + b" " * 77, b"XND" + b" " * 77)
    assert reason_of(no_end, name="x") == "bad_header"
    assert reason_of(good[:100] + "é".encode("latin-1") + good[101:], name="x") == "bad_header"
    assert reason_of(sample["dr9"].replace(b"TTYPE1  = 'FLUX", b"TTYPE1  = 'FLUQ"), name="x") == "missing_column"
    # a valid FITS file no reader knows: an empty primary only
    empty = card("SIMPLE  =                    T") + card("BITPIX  =                    8") + \
        card("NAXIS   =                    0") + card("END")
    assert reason_of(empty.ljust(2880), name="x") == "unknown_format"


def test_gzip_bomb_limit():
    bomb = gzip.compress(b"\0" * (8 << 20))  # 8 MiB of zeros in about 8 kB
    assert len(bomb) < 20000
    assert reason_of(bomb, name="bomb.fits", limits=Limits(max_bytes=1 << 20)) == "too_large"


def test_file_size_limit(tmp_path, sample):
    p = tmp_path / "big.fits"
    p.write_bytes(sample["dr1"])
    assert reason_of(p, limits=Limits(max_bytes=10000)) == "too_large"


@pytest.mark.parametrize("origin", ORIGINS)
def test_long_header_is_read(origin, sample):
    good = _samples(origin, sample)["dr1"]
    hdr_end = good.index(b"END" + b" " * 77)
    extra = b"".join(card(f"X{i:07d}= {i:20d}") for i in range(10000))
    body_start = -(-(hdr_end + 80) // 2880) * 2880
    header = good[:hdr_end] + extra + card("END")
    header = header.ljust(-(-len(header) // 2880) * 2880, b" ")
    s = read_spectrum(header + good[body_start:], name="long.fits")
    np.testing.assert_array_equal(s.flux, read_spectrum(good, name="short.fits").flux)


def _only_spectrum_errors(data: bytes) -> None:
    try:
        read_spectrum(data, name="fuzz.fits")
    except SpectrumError as exc:
        # "unreadable" on bytes would mean an internal error was caught by the safety net
        assert exc.reason != "unreadable", exc
        assert "fuzz.fits" in str(exc)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=6000))
def test_random_bytes(data):
    _only_spectrum_errors(data)
    _only_spectrum_errors(b"SIMPLE  =" + data)


@pytest.mark.parametrize("origin", ORIGINS)
@settings(max_examples=300, deadline=None)
@given(layout=st.sampled_from(LAYOUTS), frac=st.floats(0, 1))
def test_truncations(origin, sample, layout, frac):
    data = _samples(origin, sample)[layout]
    _only_spectrum_errors(data[: int(len(data) * frac)])


@pytest.mark.parametrize("origin", ORIGINS)
@settings(max_examples=500, deadline=None)
@given(layout=st.sampled_from(LAYOUTS),
       flips=st.lists(st.tuples(st.floats(0, 0.999), st.integers(0, 7)), min_size=1, max_size=8),
       in_header=st.booleans())
def test_bit_flips(origin, sample, layout, flips, in_header):
    data = bytearray(_samples(origin, sample)[layout])
    span = 2880 * 3 if in_header else len(data)
    for pos, bit in flips:
        data[int(pos * span)] ^= 1 << bit
    _only_spectrum_errors(bytes(data))
    _only_spectrum_errors(gzip.compress(bytes(data))[: int(len(data) * flips[0][0]) + 10])
