"""Domain adaptation: air -> vacuum, the resolution kernel, and the 22 real cross-matched pairs."""
from __future__ import annotations

import csv
from dataclasses import replace

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

from conftest import REAL, real_files
from spectraldl.adapt import (AdaptSettings, adapt_ondrejov, air_to_vacuum, fill_bad,
                              match_resolution)
from spectraldl.config import load_config
from spectraldl.io import Spectrum, read_bytes_from_path, read_spectrum
from spectraldl.parse import ParseOptions, parse_file
from spectraldl.preprocess import PreprocessSettings, preprocess

real = pytest.mark.realdata


def vacuum_to_air_morton(w_vac):
    """VALD's vacuum -> air (Morton 2000), written independently of the code under test."""
    s2 = (1e4 / w_vac) ** 2
    n = 1 + 0.0000834254 + 0.02406147 / (130 - s2) + 0.00015998 / (38.9 - s2)
    return w_vac / n


def second_moment_sigma(y):
    x = np.arange(y.size)
    m = (x * y).sum() / y.sum()
    return np.sqrt(((x - m) ** 2 * y).sum() / y.sum())


# -- air -> vacuum ------------------------------------------------------------------------------
def test_air_to_vacuum_at_h_alpha():
    assert air_to_vacuum(6562.80) == pytest.approx(6564.61, abs=0.01)
    assert isinstance(air_to_vacuum(6562.80), float)
    assert air_to_vacuum(np.array([6562.80]))[0] - 6562.80 == pytest.approx(1.81, abs=0.01)


def test_air_to_vacuum_inverts_morton():
    w_air = np.linspace(3000, 10000, 701)
    back = vacuum_to_air_morton(air_to_vacuum(w_air))
    assert np.max(np.abs(back - w_air)) < 2e-3  # Å: the two published fits agree to a few mÅ
    assert np.all(np.diff(air_to_vacuum(w_air)) > 0)


def test_air_to_vacuum_leaves_far_uv_alone():
    assert air_to_vacuum(1500.0) == 1500.0


# -- the kernel ---------------------------------------------------------------------------------
def test_derived_kernel_width():
    s = AdaptSettings()
    lam = 6562.8
    expect = np.sqrt((lam / (2.3548 * 1800)) ** 2 - (lam / (2.3548 * 13000)) ** 2)
    assert s.kernel_sigma_angstrom() == pytest.approx(expect, rel=1e-3)
    assert s.kernel_sigma_angstrom() == pytest.approx(1.533, abs=0.002)
    assert s.kernel_sigma_px(0.2567) == pytest.approx(5.97, abs=0.02)
    assert s.kernel_sigma_px(0.2309) == pytest.approx(6.64, abs=0.02)
    assert AdaptSettings(sigma_px=7.0).kernel_sigma_px(0.2309) == 7.0
    assert AdaptSettings(blur=False).kernel_sigma_px(0.2567) == 0.0


@pytest.mark.parametrize("dispersion", [0.2567, 0.2309])
def test_blur_of_a_delta_has_the_derived_sigma(dispersion):
    w = 6250.0 + dispersion * np.arange(2001)
    f = np.zeros(w.size)
    f[1000] = 1.0
    out, sigma = match_resolution(w, f)
    assert sigma == pytest.approx(AdaptSettings().kernel_sigma_angstrom() / dispersion)
    assert second_moment_sigma(out) == pytest.approx(sigma, rel=0.01)
    assert second_moment_sigma(out) * dispersion == pytest.approx(1.533, abs=0.02)  # Å, whatever the detector
    assert out.sum() == pytest.approx(1.0)
    assert out.argmax() == 1000


def test_fixed_sigma_and_no_blur():
    w = 6250.0 + 0.2567 * np.arange(2001)
    f = np.zeros(w.size)
    f[1000] = 1.0
    out, _ = match_resolution(w, f, settings=AdaptSettings(sigma_px=7.0))
    assert second_moment_sigma(out) == pytest.approx(7.0, rel=0.01)
    out, sigma = match_resolution(w, f, settings=AdaptSettings(blur=False))
    assert sigma == 0 and np.array_equal(out, f)


def test_edges_keep_a_flat_continuum_flat():
    w = 6250.0 + 0.2567 * np.arange(2001)
    out, _ = match_resolution(w, np.full(w.size, 3.0))
    np.testing.assert_allclose(out, 3.0, rtol=1e-12)


def test_bad_pixels_are_bridged_not_spread():
    w = 6250.0 + 0.2567 * np.arange(400)
    f = 1.0 + 0.001 * np.arange(400)
    f[200:205] = np.nan
    good = np.isfinite(f)
    out, sigma = match_resolution(w, f, good)
    assert np.isfinite(out).all()
    ramp = 1.0 + 0.001 * np.arange(400)  # linear interpolation restores the ramp exactly
    np.testing.assert_allclose(fill_bad(f, good), ramp)
    np.testing.assert_allclose(out[50:350], ramp[50:350], rtol=1e-9)


def test_settings_from_config_and_validation():
    cfg = load_config("local")
    s = AdaptSettings.from_config(cfg["adapt"])
    assert s == AdaptSettings()
    assert s.fingerprint() == AdaptSettings().fingerprint() != replace(s, sigma_px=7.0).fingerprint()
    with pytest.raises(ValueError):
        AdaptSettings(r_source=1000.0, r_target=1800.0)
    with pytest.raises(ValueError):
        AdaptSettings(sigma_px=-1.0)
    with pytest.raises(ValueError):
        AdaptSettings(edge_mode="wrap")
    AdaptSettings(r_source=1000.0, r_target=1800.0, sigma_px=7.0)  # a fixed kernel needs no R


# -- adapt_ondrejov on real files ---------------------------------------------------------------
@real
def test_adapt_is_blur_then_vacuum_then_preprocess():
    path = REAL / "ondrejov" / "podondra_bt-spectraldl" / "bt-cmi-ondrejov.fits"
    spec = read_spectrum(read_bytes_from_path(str(path)), name=str(path))
    vec, frac = adapt_ondrejov(spec, name=str(path))
    w = np.asarray(spec.wavelength, float)
    s = 1e4 / w
    n = 1 + 8.336624212083e-5 + 2.408926869968e-2 / (130.1065924522 - s ** 2) \
        + 1.599740894897e-4 / (38.92568793293 - s ** 2)
    fwhm = 2 * np.sqrt(2 * np.log(2))
    sigma = np.sqrt((6562.8 / (fwhm * 1800)) ** 2 - (6562.8 / (fwhm * 13000)) ** 2) / np.median(np.diff(w))
    f = gaussian_filter1d(np.asarray(spec.flux, float), sigma, mode="nearest", truncate=4.0)
    ref, ref_frac = preprocess(w * n, f, None, PreprocessSettings())
    np.testing.assert_allclose(vec, ref, atol=2e-6)
    assert frac == ref_frac == 1.0 and vec.dtype == np.float32 and vec.shape == (140,)
    # a spectrum already in vacuum is not shifted a second time (its pixels are 1.0003 x wider
    # in Å, so the kernel in px differs by as much: 2e-4 in the vector; a second shift: 1.9)
    vac = Spectrum(w * n, spec.flux, None, None, "vacuum", spec.format, spec.meta)
    np.testing.assert_allclose(adapt_ondrejov(vac)[0], vec, atol=1e-3)


@real
def test_every_real_ondrejov_file_adapts():
    files = real_files("ondrejov/**/*.fits")
    assert len(files) == 29
    for p in files:
        vec, frac = adapt_ondrejov(read_spectrum(read_bytes_from_path(str(p)), name=str(p)))
        assert np.isfinite(vec).all() and frac == 1.0
        assert abs(vec.mean()) < 1e-5 and vec.std() == pytest.approx(1.0, abs=1e-4)


@pytest.fixture(scope="module")
def pairs():
    opts = ParseOptions.from_config(load_config("local"))
    out = []
    with open(REAL / "labels" / "cross-matched-pairs.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            lam = parse_file(str(REAL / row["lamost_file"]), opts)  # exactly what ingest stores
            assert lam["outcome"] == "ok", lam
            p = str(REAL / row["ondrejov_file"])
            out.append((read_spectrum(read_bytes_from_path(p), name=p), np.asarray(lam["flux"], float)))
    return out


def median_r(pairs, settings):
    return float(np.median([np.corrcoef(adapt_ondrejov(o, settings)[0], v)[0, 1] for o, v in pairs]))


@real
def test_adapted_pairs_correlate(pairs):
    assert len(pairs) == 22
    cfg = AdaptSettings.from_config(load_config("local")["adapt"])
    adapted = median_r(pairs, cfg)
    no_blur = median_r(pairs, replace(cfg, blur=False))
    raw = median_r(pairs, replace(cfg, blur=False, air_to_vacuum=False))
    assert adapted >= 0.95
    assert adapted > no_blur + 0.03  # measured: 0.961 vs 0.906
    assert no_blur > raw + 0.03      # air -> vacuum matters on its own: 0.906 vs 0.847
    assert 0.89 < no_blur < 0.93     # the thesis measured 0.910 without blur


@real
def test_sigma_sweep_peaks_near_the_derived_kernel(pairs):
    r = {s: median_r(pairs, AdaptSettings(sigma_px=float(s)) if s else AdaptSettings(blur=False))
         for s in (0, 3, 5, 7, 9, 11)}
    assert r[0] < r[3] < r[5] < r[7]     # thesis: 0.910 < 0.934 < 0.946 < 0.951
    assert max(r.values()) - r[7] < 0.005  # flat between 7 and 11 px, as in the thesis
    assert r[11] < r[9] + 0.002
