"""Every real file in ../shared/data/real reads, and its arrays and keywords equal astropy's; the
folder holds exactly the files of the committed list (scripts/real_data/sources.tsv), bytes verified."""
from __future__ import annotations

import gzip
import hashlib
import warnings

import numpy as np
import pytest
from astropy.io import fits

from conftest import REAL_SPECTRA, real_files
from realdata import NOT_IN_PROVENANCE, read_sources
from spectraldl.io import SpectrumError, read_spectrum
from spectraldl.io.fits import load_bytes

pytestmark = pytest.mark.realdata
EXPECTED_FORMAT = {  # from PROVENANCE.tsv's format column
    "old LRS": ("lamost_lrs_dr1", "lamost_lrs_image"),
    "new LRS": ("lamost_lrs_coadd",),
    "LAMOST MRS": ("lamost_mrs",),
    "Ondrejov CCD700 original": ("ondrejov_iraf",),
    "Ondrejov CCD700 via CZVO": ("ondrejov_table",),
}


def provenance(real_dir):
    rows = {}
    for line in (real_dir / "PROVENANCE.tsv").read_text().splitlines()[1:]:
        f = line.split("\t")
        rows[f[0]] = {"format": f[6], "release": f[7], "class": f[8] if len(f) > 8 else ""}
    return rows


def _astropy(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fits.open(path, memmap=False)


def test_real_corpus_is_complete(real_dir):
    """The folder holds the listed spectra, byte for byte, and its PROVENANCE.tsv is the list's."""
    assert len(REAL_SPECTRA) == 165  # 161 + 4 DR10 spectra with nebular contamination
    assert real_files() == REAL_SPECTRA
    listed = read_sources()
    spectra_rows = [r for r in listed if not r["file"].startswith(NOT_IN_PROVENANCE)]
    prov = (real_dir / "PROVENANCE.tsv").read_text().splitlines()
    assert prov[1:] == ["\t".join(r.values()) for r in spectra_rows]  # same rows, same order
    assert len(provenance(real_dir)) == 165
    for r in listed:
        data = (real_dir / r["file"]).read_bytes()
        assert (hashlib.sha256(data).hexdigest(), len(data)) == (r["sha256"], int(r["bytes"])), r["file"]


@pytest.mark.parametrize("path", REAL_SPECTRA, ids=[f"{p.parent.name}/{p.name}" for p in REAL_SPECTRA])
def test_real_file_equals_astropy(path, real_dir):
    rel = str(path.relative_to(real_dir))
    prov = provenance(real_dir)[rel]
    s = read_spectrum(path)
    kind = next(k for k in EXPECTED_FORMAT if prov["format"].startswith(k))
    assert s.format in EXPECTED_FORMAT[kind]
    assert s.wavelength.dtype == np.float64 and np.all(np.diff(s.wavelength) > 0)
    hl = _astropy(path)
    ff = load_bytes(path.read_bytes(), str(path))
    if s.format in ("lamost_lrs_dr1", "lamost_lrs_image"):
        h, data = hl[0].header, hl[0].data
        np.testing.assert_array_equal(s.flux, data[0])
        np.testing.assert_array_equal(s.ivar, data[1])
        np.testing.assert_array_equal(s.andmask, data[3])
        n = data.shape[1]
        np.testing.assert_allclose(s.wavelength, 10 ** (h["COEFF0"] + np.arange(n) * h["COEFF1"]), rtol=1e-15)
        if s.format == "lamost_lrs_image":  # row 2 is the stored wavelength
            np.testing.assert_allclose(s.wavelength, data[2], rtol=2e-6)
        else:  # DR1: row 2 is a normalised flux around 1
            assert 0.1 < np.nanmedian(data[2]) < 10
        assert s.medium == "vacuum"
        hdus = [0]
    elif s.format == "lamost_lrs_coadd":
        t = hl["COADD"].data
        for col, arr in (("FLUX", s.flux), ("IVAR", s.ivar), ("WAVELENGTH", s.wavelength), ("ANDMASK", s.andmask)):
            np.testing.assert_array_equal(arr, t[col][0])
        hdus = [0, 1]
    elif s.format == "lamost_mrs":
        t = hl["COADD_R"].data
        np.testing.assert_array_equal(s.flux, t["FLUX"])
        np.testing.assert_array_equal(s.wavelength, 10 ** t["LOGLAM"].astype(np.float64))
        assert 6200 < s.wavelength[0] < 6563 < s.wavelength[-1] < 6900
        hdus = [0, hl.index_of("COADD_R")]
    elif s.format == "ondrejov_table":
        t = hl[1].data
        np.testing.assert_array_equal(s.flux, t["flux"])
        np.testing.assert_array_equal(s.wavelength, t["spectral"])
        assert s.medium == "air" and s.ivar is None
        hdus = [0, 1]
    else:  # ondrejov_iraf
        h = hl[0].header
        np.testing.assert_array_equal(s.flux, hl[0].data)
        n = hl[0].data.size
        w = h["CRVAL1"] + (np.arange(1, n + 1) - h.get("CRPIX1", 1)) * h["CDELT1"]
        np.testing.assert_allclose(s.wavelength, w, rtol=1e-15)
        assert s.medium == "air" and 6200 < s.wavelength[0] < 6563 < s.wavelength[-1] < 6800
        hdus = [0]
    # every valued keyword of the HDUs used equals astropy's value
    for i in hdus:
        ah, mine = hl[i].header, ff.hdus[i].header
        checked = 0
        for key in ah:
            if key in ("", "COMMENT", "HISTORY") or key not in mine:
                continue
            try:
                v = ah[key]
            except Exception:
                continue
            if isinstance(v, fits.card.Undefined):
                assert mine[key] is None
            else:
                assert mine[key] == v and type(mine[key]) is type(v), (key, mine[key], v)
            checked += 1
        assert checked >= 4
    assert np.array_equal(s.good, np.isfinite(s.flux) & ((s.andmask == 0) if s.andmask is not None else True))


def test_meta_normalised_across_releases(real_dir):
    bt = read_spectrum(real_dir / "lamost/podondra_bt-spectraldl/bt-cmi-lamost.fits")  # DR1
    assert bt.meta["designation"] == "LAMOST J075703.80+025653.6"
    assert bt.meta["ra"] == pytest.approx(119.26584) and bt.meta["dec"] == pytest.approx(2.9482255)
    assert bt.meta["snr_g"] == pytest.approx(52.28) and bt.meta["snr_r"] == pytest.approx(64.14)
    assert bt.meta["obsid"] is None and bt.meta["lamost_class"] == "STAR"
    assert bt.meta["lamost_subclass"] == "A2V"
    dr10 = read_spectrum(real_dir / "lamost/LiangJunC_PyLASP/3703110.fits")
    assert dr10.meta["obsid"] == 3703110 and dr10.meta["snr_g"] == pytest.approx(19.35)
    assert dr10.meta["data_release"] == "LAMOST DR10" and dr10.meta["lamost_subclass"] == "K7"
    dr2 = read_spectrum(real_dir / "lamost/podondra_spectraml/spec-55916-B5591606_sp01-001.fits")
    assert dr2.meta["fiberid"] == 1  # FIBERID = '1       ' (string)
    assert dr2.flux.dtype == np.float64  # DR2 files are float64
    dead = read_spectrum(real_dir / "lamost/ChenfaZheng_LAMOST-SBC/spec-58575-HD103621N361936B01_sp03-018.fits")
    assert dead.meta["snr_r"] is None and dead.meta["snr_g"] == pytest.approx(33.57)  # SNRR = -9999
    iraf = read_spectrum(real_dir / "ondrejov/podondra_bt-spectraldl/samples_bt-cmi-ondrejov.fits")
    assert iraf.meta["object"] == "BT CMi"
    assert iraf.meta["ra"] == pytest.approx(7.951107 * 15, abs=1e-4)  # '07:57:03.987'
    assert iraf.meta["dec"] == pytest.approx(2.950833, abs=1e-5)
    assert len(iraf.flux) == 2047 and np.diff(iraf.wavelength)[0] == pytest.approx(0.2309, abs=1e-4)
    tab = read_spectrum(real_dir / "ondrejov/podondra_bt-spectraldl/td240024.fits")
    assert tab.meta["object"] == "GALEX0639+5156" and tab.meta["ra"] == pytest.approx(99.9673625)


def test_gzip_detected_by_magic_not_name(real_dir, tmp_path):
    plain = real_dir / "lamost/podondra_bt-spectraldl/bt-cmi-lamost.fits"
    assert plain.read_bytes()[:2] != b"\x1f\x8b"
    sneaky = real_dir / "lamost/ChenfaZheng_LAMOST-SBC/101008.fits"  # gzip under a .fits name
    assert sneaky.read_bytes()[:2] == b"\x1f\x8b"
    assert read_spectrum(sneaky).format == "lamost_lrs_image"
    for name in ("x.fits", "x.fits.gz", "x.dat"):
        p = tmp_path / name
        p.write_bytes(gzip.compress(plain.read_bytes()))
        np.testing.assert_array_equal(read_spectrum(p).flux, read_spectrum(plain).flux)


def test_bytes_source_equals_path(real_dir):
    p = real_dir / "lamost/LiangJunC_PyLASP/3706009.fits"
    a, b = read_spectrum(p), read_spectrum(p.read_bytes(), name="given-name.fits")
    np.testing.assert_array_equal(a.flux, b.flux)
    assert a.meta == b.meta
    with pytest.raises(SpectrumError, match="given-name.fits"):
        read_spectrum(p.read_bytes()[:5000], name="given-name.fits")
