"""The synthetic archive generator: round trips through the readers, realism against the real
files, determinism under any Spark partitioning, the Ondřejov label file, MRS files in the LAMOST
archive with truth per red exposure."""
from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import warnings
from collections import Counter

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from scipy.ndimage import median_filter

from conftest import ROOT
from spectraldl.cli import run
from spectraldl.config import ConfigError, load_config
from spectraldl.halpha import measure_halpha
from spectraldl.io import read_spectrum
from spectraldl.io.fits import load_bytes
from spectraldl.io.lamost_mrs import read_mrs_exposures
from spectraldl.synth import TRUTH_COLUMNS, SynthConfig, generate_indices, make_spectrum, write_spectrum
from spectraldl.synth.fitswrite import NO_VALUE, Raw, card
from spectraldl.synth.formats import encode
from spectraldl.synth.observing import nebula_params, plate_of, plate_params
from spectraldl.synth.job import run_synth
from spectraldl.synth.mrs import make_mrs, mrs_bytes

CFG = SynthConfig.defaults()
READER_ID = {"dr1": "lamost_lrs_dr1", "dr2": "lamost_lrs_image", "dr3_8": "lamost_lrs_image",
             "dr9": "lamost_lrs_coadd", "iraf": "ondrejov_iraf", "table": "ondrejov_table"}
CASES = ([("lamost", lay, comp) for lay in ("dr1", "dr2", "dr3_8", "dr9") for comp in ("none", "gzip", "gzip_misnamed")]
         + [("ondrejov", "iraf", "none"), ("ondrejov", "table", "none")])


# -- 1. round trip ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind, layout, compression", CASES, ids=lambda c: str(c))
def test_round_trip_through_the_readers(kind, layout, compression, tmp_path):
    for index in (0, 5, 17, 90):  # absorption, emission, galaxy/quasar or Be stars depending on kind
        s = make_spectrum(index, 7, kind, CFG, layout=layout, compression=compression)
        write_spectrum(str(tmp_path), s)
        path = tmp_path / s.relpath
        raw = path.read_bytes()
        assert (raw[:2] == b"\x1f\x8b") == (compression != "none")
        assert path.name.endswith(".fits.gz") == (compression == "gzip")
        r = read_spectrum(path)
        assert r.format == READER_ID[layout] == s.truth["format"]
        assert r.flux.dtype == s.flux.dtype and np.array_equal(r.flux, s.flux)
        assert np.array_equal(r.wavelength, s.wavelength)
        if kind == "lamost":
            assert np.array_equal(r.ivar, s.ivar) and np.array_equal(r.andmask, s.andmask)
            assert r.medium == "vacuum" and 3820 <= len(r) <= 3909
        else:
            assert r.ivar is None and r.medium == "air"
            assert 6240 < r.wavelength[0] < 6290 and 6725 < r.wavelength[-1] < 6780
        meta = s.expected_meta
        for key in ("designation", "lamost_class", "snr_r", "object", "z", "obsid"):
            if key in meta:
                assert r.meta[key] == meta[key], key
        assert r.meta["ra"] == pytest.approx(meta["ra"], abs=1e-9) and r.meta["dec"] == pytest.approx(meta["dec"], abs=1e-9)
        # another FITS library reads the same numbers (IRAF's invalid cards only warn)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(path) as hl:
                data = hl[0].data if layout in ("dr1", "dr2", "dr3_8", "iraf") else hl[1].data
                flux = data["flux"][0] if layout == "dr9" else data["flux"] if layout == "table" else \
                    data if layout == "iraf" else data[0]
                assert np.array_equal(np.asarray(flux, dtype=s.flux.dtype), s.flux)


def _keys_and_types(header):
    return {k: type(header[k]).__name__ for k in header.keys()}


@pytest.mark.parametrize("layout, release, real_file", [
    ("dr1", 1, "lamost/podondra_bt-spectraldl/bt-cmi-lamost.fits"),
    ("dr2", 2, "lamost/podondra_spectraml/spec-55916-B5591606_sp01-001.fits"),
    ("dr3_8", 7, "lamost/ChenfaZheng_LAMOST-SBC/spec-58575-HD103621N361936B01_sp03-003.fits"),
    ("dr9", 10, "lamost/LiangJunC_PyLASP/3703110.fits"),
])
def test_headers_drift_like_the_real_release(layout, release, real_file, real_dir):
    index = next(i for i in range(0, 200000, 3) if plate_params(plate_of(i)[0], 7, CFG)["layout"] == layout
                 and plate_params(plate_of(i)[0], 7, CFG)["release"] == release)
    s = make_spectrum(index, 7, "lamost", CFG, layout=layout, compression="none")
    syn = _keys_and_types(load_bytes(encode(s)).primary)
    real = _keys_and_types(load_bytes((real_dir / real_file).read_bytes()).primary)
    assert len(set(syn) & set(real)) / len(set(syn) | set(real)) > 0.85, set(syn) ^ set(real)
    for key in ("OBSID", "DATA_V", "DESIG", "FIBERID", "X_VALUE", "RA", "DEC", "CLASS", "Z", "COEFF0", "COEFF1",
                "VACUUM", "SN_G", "SN_R", "SNRG", "SNRR", "TELESCOP", "OBJNAME", "DATE-OBS", "NAXIS1", "NAXIS2"):
        assert syn.get(key) == real.get(key), key
    data = encode(s)
    text = data[:data.index(b"END" + b" " * 77)].decode("ascii")
    assert "TELESCOP= 'LAMOST  '           / GuoShouJing Telescope" in text
    assert f"COEFF0  = {'3.56820' if release == 1 else '3.5682':>20} / Central wavelength" in text
    h = load_bytes(encode(s)).primary
    assert h["DESIG"] == s.truth["object"] and len(h["DESIG"]) == 26 and h["DESIG"][:8] == "LAMOST J"
    if release >= 3:
        assert h["DATA_V"] == f"LAMOST DR{release}"


def test_cards_are_formatted_like_the_archives():
    assert card("RA", 119.26584, "[deg] Right ascension of object", "#.12g") == \
        "RA      =        119.265840000 / [deg] Right ascension of object".ljust(80)
    assert card("CLASS", "STAR", "Class of object") == "CLASS   = 'STAR    '           / Class of object".ljust(80)
    assert card("SIMPLE", True, "Primary Header created by MWRFITS v1.8", tight=True).startswith(
        "SIMPLE  =                    T /Primary Header")
    assert card("AZIMUTH", NO_VALUE, "Mean azimuth") == "AZIMUTH =                      / Mean azimuth".ljust(80)
    assert card("HEIGHT", Raw("0528")) == "HEIGHT  =                 0528".ljust(80)
    assert card("O", "it's") == "O       = 'it''s   '".ljust(80)
    long = card("DEC", -0.018605618540635607)                       # repr needs 21 columns
    assert len(long) == 80 and float(long[10:30]) == pytest.approx(-0.018605618540635607, rel=1e-14)
    with pytest.raises(ValueError):
        card("TOOLONGKEY", 1)


# -- physics and habits ------------------------------------------------------------------------------
def test_noise_ivar_snr_and_habits_are_consistent():
    pulls, checked, zero_peaks, dead = [], 0, 0, 0
    for i in range(400):
        s = make_spectrum(i, 3, "lamost", CFG)
        t, w = s.truth, s.wavelength
        good = (s.ivar > 0) & (s.andmask == 0) & (s.flux != 0)
        pulls.append(((s.flux[good] - s.model[good]) * np.sqrt(s.ivar[good]))[::7])
        if t["dead_fibre"]:
            dead += 1
            d = s.andmask != 0
            assert d.sum() > 100 and (s.ivar[d] == 0).all() and (np.abs(s.flux[d]) < 2.0).sum() > 100
        elif t["lamost_class"] == "STAR":
            r = (w > 5600) & (w < 6900)
            snr_model = np.median((s.model * np.sqrt(s.ivar))[r & (s.ivar > 0)])
            assert snr_model == pytest.approx(s.expected_meta["snr_r"], rel=0.1)
            checked += 1
        core = np.abs(w - 6564.61) < 6
        if t["halpha_profile"] in ("single", "double", "mdwarf", "pcygni") and (s.ivar[core] == 0).all():
            zero_peaks += 1
        if t["class"] in ("emission", "double_peak"):
            assert t["strength"] > 0.05, t
        if t["class"] == "absorption":
            assert t["strength"] < 0, t
    pull = np.concatenate(pulls)
    assert np.std(pull[np.abs(pull) < 10]) == pytest.approx(1.0, abs=0.05)
    assert checked > 250 and zero_peaks > 3 and dead >= 1


# -- 2. statistics against the real archive ---------------------------------------------------------
def _stats(w, flux, ivar, andmask):
    good = (andmask == 0) & np.isfinite(flux)

    def med(a, b):
        m = (w > a) & (w < b) & good
        return np.median(flux[m]) if m.sum() > 5 else np.nan

    side = np.r_[flux[(w > 6500) & (w < 6540) & good], flux[(w > 6590) & (w < 6630) & good]]
    cont = np.median(side) if side.size else np.nan
    core = flux[(np.abs(w - 6564.6) < 10) & good] / cont
    return (med(6700, 6750) / med(4500, 4550), core.min() if core.size else np.nan,
            core.max() if core.size else np.nan, float(np.mean(ivar == 0)))


def test_synthetic_statistics_overlap_the_real_ones(real_dir):
    real, syn = [], []
    for p in sorted((real_dir / "lamost").glob("*/*.fits*")):
        if p.name.startswith("med-"):
            continue
        r = read_spectrum(p)
        if r.meta["lamost_class"] == "STAR" and (r.meta["snr_r"] or -1) > 0:
            real.append(_stats(r.wavelength, r.flux, r.ivar, r.andmask) + (r.meta["snr_r"],))
    paths = set()
    for i in range(300):
        s = make_spectrum(i, 21, "lamost", CFG)
        paths.add(s.relpath)
        if s.truth["lamost_class"] == "STAR" and s.expected_meta["snr_r"] > 0:
            syn.append(_stats(s.wavelength, s.flux.astype(float), s.ivar, s.andmask) + (s.expected_meta["snr_r"],))
    real, syn = np.array(real), np.array(syn)
    assert len(real) > 80 and len(syn) > 250 and len(paths) == 300
    for j, name in enumerate(("slope 6725/4525", "H-alpha min", "H-alpha max", "ivar==0 fraction", "snr_r")):
        r, s = real[:, j][np.isfinite(real[:, j])], syn[:, j][np.isfinite(syn[:, j])]
        assert max(r.min(), s.min()) < min(r.max(), s.max()), name            # ranges overlap
        r_lo, r_hi = np.percentile(r, [25, 75])
        s_lo, s_hi = np.percentile(s, [5, 95])
        covered = max(0.0, min(r_hi, s_hi) - max(r_lo, s_lo)) / max(r_hi - r_lo, 1e-9)
        assert covered > 0.5 or (r_hi - r_lo < 1e-6 and s_lo <= r_lo <= s_hi), (name, r_lo, r_hi, s_lo, s_hi)
        assert np.median(s) == pytest.approx(np.median(r), rel=0.5, abs=0.02), name


# -- 3. determinism and the Ondřejov classes ----------------------------------------------------------
def _digest(out):
    return {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*")) if p.is_file()}


def test_spark_output_does_not_depend_on_partitioning(spark, tmp_path):
    config = {"synth": {**CFG.__dict__, "lamost_formats": dict(CFG.lamost_formats)}}
    outs = []
    for parts in (1, 3):
        config["synth"]["partitions"] = parts
        out = tmp_path / f"p{parts}"
        summary = run_synth(spark, str(out), 40, 5, "lamost", config)
        assert summary["files"] == 40 and summary["partitions"] == parts
        outs.append(out)
    a, b = _digest(outs[0]), _digest(outs[1])
    assert len(a) == 42 and a == b                        # 40 spectra + truth.csv + truth.parquet, byte-identical
    ta, tb = pq.read_table(outs[0] / "truth.parquet"), pq.read_table(outs[1] / "truth.parquet")
    assert ta.equals(tb) and ta.num_rows == 40
    for col, typ in (("ha_ew_true", "double"), ("ha_ew_west_true", "double"), ("nebular", "bool"),
                     ("nebular_ha_ew", "double"), ("nebular_nii_ratio", "double")):
        assert str(ta.schema.field(col).type) == typ, col
    rows = ta.to_pylist()
    assert [r["index"] for r in rows] == list(range(40)) and len({r["file"] for r in rows}) == 40
    assert {r["format"] for r in rows} <= set(READER_ID.values())
    assert all((outs[0] / r["file"]).is_file() for r in rows)
    assert pd.read_csv(outs[0] / "truth.csv")["file"].tolist() == [r["file"] for r in rows]
    other = run_synth(spark, str(tmp_path / "seed6"), 40, 6, "lamost", config)
    assert other["files"] == 40 and _digest(tmp_path / "seed6") != a


def test_ondrejov_classes_follow_the_real_label_file():
    counts = np.array(CFG.ondrejov_class_counts, float)
    want = dict(zip(("emission", "absorption", "unknown", "double_peak"), counts / counts.sum()))
    spectra = [make_spectrum(i, 4, "ondrejov", CFG) for i in range(2000)]
    assert len({s.relpath for s in spectra}) == 2000                   # unique file names
    rows = [s.truth for s in spectra]
    got = Counter(r["class"] for r in rows)
    for name, frac in want.items():
        assert got[name] / 2000 == pytest.approx(frac, abs=0.02), name
    per_object = Counter(r["object"] for r in rows)
    assert np.mean(list(per_object.values())) > 3 and max(per_object.values()) >= 6
    star_of_object = {}
    for r in rows:
        assert star_of_object.setdefault(r["object"], (r["star_id"], r["spectral_type"])) == (r["star_id"], r["spectral_type"])
        assert r["label"] == {"emission": 0, "absorption": 1, "unknown": 2, "double_peak": 3}[r["class"]]
    types = Counter(r["spectral_type"][0] for r in rows)
    assert set(types) >= set("BAFGKM") and types["M"] > 0
    assert any(r["spectral_type"][0] in "KM" and r["class"] == "emission" for r in rows)


# -- 4. labels.csv through the job's entry point --------------------------------------------------------
def test_synth_job_writes_labels_joining_the_files(spark, tmp_path, caplog, real_dir):
    spec = importlib.util.spec_from_file_location("synth_job", ROOT / "jobs" / "synth.py")
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    out = tmp_path / "ond"
    rc = run("synth", job.__doc__, job.add_arguments, job.main,
             ["--out", str(out), "--n", "60", "--seed", "3", "--kind", "ondrejov"])
    assert rc == 0 and "synth: wrote 60 ondrejov files" in caplog.records[-1].getMessage()
    labels = pd.read_csv(out / "labels.csv")
    real = pd.read_csv(real_dir / "labels" / "ondrejov-dataset.csv", nrows=5)
    assert list(labels.columns) == list(real.columns) == ["id", "label"]
    assert labels["label"].dtype == real["label"].dtype and set(labels["label"]) <= {0, 1, 2, 3}
    prefix = "ivo://asu.cas.cz/stel/ccd700/"
    assert labels["id"].str.startswith(prefix).all() and real["id"].str.startswith(prefix).all()
    files = {p.stem: p for p in (out / "ccd700").glob("*.fits")}
    stems = labels["id"].str.slice(len(prefix))
    assert len(files) == 60 and set(stems) == set(files)
    truth = pd.read_csv(out / "truth.csv")
    joined = labels.assign(stem=stems).merge(truth.assign(stem=truth["file"].str.slice(7, -5)), on="stem")
    assert len(joined) == 60 and (joined["label_x"] == joined["label_y"]).all()
    for stem, label in zip(stems[:10], labels["label"][:10]):
        r = read_spectrum(files[stem])
        assert r.format in ("ondrejov_iraf", "ondrejov_table")
        h = load_bytes(files[stem].read_bytes())
        if r.format == "ondrejov_table":
            assert h.hdus[1].header["DS_IDPUB"] == prefix + stem


# -- 5. H-alpha truth and H II-region residuals ---------------------------------------------------------
NO_NEBULA = SynthConfig.defaults(["synth.nebular_plate_fraction=0.0"])


@pytest.fixture(scope="module")
def lamost_run():
    """2,000 LAMOST spectra (seed 1, 64 plates): truth plus ``measure_halpha`` on the noiseless model
    (``m0``) and on the written flux (``m``, ``m_err``)."""
    rows = []
    for i in range(2000):
        s = make_spectrum(i, 1, "lamost", CFG)
        m0 = measure_halpha(s.wavelength, s.model, resolving_power=CFG.lamost_resolution)
        m = measure_halpha(s.wavelength, s.flux, s.ivar, s.andmask, resolving_power=CFG.lamost_resolution)
        rows.append(dict(s.truth, plate=plate_of(i)[0], m0=m0.ha_ew, m=m.ha_ew, m_err=m.ha_ew_err))
    return pd.DataFrame(rows)


def test_truth_ew_is_what_a_perfect_measurement_gives(lamost_run):
    t = lamost_run
    # noiseless model: the same definition, so equal to the truth's rounding (1e-6 Å)
    assert t["m0"].notna().all() and (t["m0"] - t["ha_ew_west_true"]).abs().max() < 1e-5
    # the written flux: the measurement scatters about the truth as its own error says
    ok = t["m"].notna() & ~t["dead_fibre"]
    pull = (t["m"] - t["ha_ew_west_true"])[ok] / t["m_err"][ok]
    assert ok.sum() > 1900 and 0.85 < pull.std() < 1.15 and abs(pull.median()) < 0.1
    assert (pull.abs() > 4).mean() < 0.005
    bright = ok & (t["snr"] > 100)
    assert bright.sum() > 100 and (t["m"] - t["ha_ew_west_true"])[bright].abs().median() < 0.1
    # the side-band continuum differs from the true one by the wings in the side bands: a few tenths of an Å
    stars = t["class"].isin(["absorption", "emission", "double_peak"])
    assert (t["ha_ew_true"] - t["ha_ew_west_true"])[stars].abs().median() < 0.3


def test_emission_is_negative_and_absorption_positive(lamost_run):
    t = lamost_run
    em = t["class"].isin(["emission", "double_peak"])
    assert em.sum() > 150 and (t["ha_ew_true"][em] < 0).all() and (t["ha_ew_west_true"][em] < 0).all()
    ab = t["class"] == "absorption"
    star_only = t["ha_ew_true"] - t["nebular_ha_ew"]
    assert ab.sum() > 1400 and (star_only[ab] > 0).all()
    assert (t["ha_ew_west_true"][ab & ~t["nebular"]] > 0).all()
    ond = [make_spectrum(i, 4, "ondrejov", CFG).truth for i in range(200)]
    assert all((r["ha_ew_true"] < 0) == (r["class"] in ("emission", "double_peak")) for r in ond
               if r["class"] != "unknown")
    assert not any(r["nebular"] for r in ond) and all(r["nebular_ha_ew"] == 0.0 for r in ond)


def _line_flux(w, y, centre, half):
    """Flux of ``y`` within ``centre +- half`` above a straight line through the windows beside it."""
    band = np.abs(w - centre) < half
    side = (np.abs(w - centre) >= half) & (np.abs(w - centre) < 2 * half)
    a, b = np.polyfit(w[side], y[side], 1)
    return float(np.sum((y - (a * w + b))[band] * np.gradient(w)[band]))


def test_nebular_residuals_carry_the_forbidden_lines(lamost_run):
    t = lamost_run
    neb = t[t["nebular"]]
    for _, r in neb.iloc[:: max(1, len(neb) // 12)].iterrows():
        s = make_spectrum(int(r["index"]), 1, "lamost", CFG)
        s0 = make_spectrum(int(r["index"]), 1, "lamost", NO_NEBULA)   # the same spectrum without the nebula
        assert not s0.truth["nebular"] and s0.truth["nebular_ha_ew"] == 0.0
        w, dl = s.wavelength, np.gradient(s.wavelength)
        diff = (s.model - s0.model) * dl                                # the residual alone, flux per pixel
        res = (s.model - s0.model) / s.continuum                        # ... and in continuum units
        dop = 1 + r["nebular_rv"] / 299792.458
        half = 2 * 6564.61 / CFG.lamost_resolution                      # +- 2 instrumental FWHM

        def flux(lo, hi=None):
            return float(diff[(w >= lo * dop - half) & (w < (hi or lo) * dop + half)].sum())

        ha, n1, n2, sii = flux(6564.61), flux(6549.86), flux(6585.27), flux(6718.29, 6732.67)
        assert n2 / ha == pytest.approx(r["nebular_nii_ratio"], rel=0.01) and n1 / n2 == pytest.approx(1 / 3, rel=0.01)
        assert sii / ha == pytest.approx(r["nebular_sii_ratio"], rel=0.01)
        s1, s2 = (float(res[np.abs(w - c * dop) < 2].sum()) for c in (6718.29, 6732.67))
        assert s1 > s2 > 0                                              # 6718 / 6733 = 1-1.45 (low density)
        assert float((res * dl)[np.abs(w - 6564.61) < 7].sum()) == pytest.approx(-r["nebular_ha_ew"], rel=0.01)
        assert r["ha_ew_true"] - s0.truth["ha_ew_true"] == pytest.approx(r["nebular_ha_ew"], abs=1e-5)
        core = np.abs(w - 6564.61 * dop) < half                         # unresolved, at the nebula's velocity
        centroid = np.sum(w[core] * res[core]) / np.sum(res[core])
        width = np.sqrt(np.sum((w[core] - centroid) ** 2 * res[core]) / np.sum(res[core]))
        assert centroid == pytest.approx(6564.61 * dop, abs=0.1)
        assert width == pytest.approx(6564.61 / (2.3548 * CFG.lamost_resolution), rel=0.1)
        # in the truth model itself, over the star's own lines: [N II] and [S II] in emission
        y, near = s.model / s.continuum, 0.75 * half
        for c in (6585.27, 6732.67):
            assert _line_flux(w, y, c * dop, near) > 0.5 * float((res * dl)[np.abs(w - c * dop) < near].sum()), c


def test_nebulae_are_plate_fields_and_deterministic(lamost_run):
    t = lamost_run
    per_plate = t.groupby("plate")["nebular"].agg(["all", "any"])
    assert (per_plate["all"] == per_plate["any"]).all()                # a plate has a nebula or not
    neb = t[t["nebular"]]
    assert neb["plate"].nunique() >= 2
    for _, g in neb.groupby("plate"):
        spread = np.log(-g["nebular_ha_ew"]).std()
        assert 0.3 < spread < 0.8, spread                               # fibre to fibre: lognormal sigma 0.5
        assert g["nebular_rv"].max() - g["nebular_rv"].min() < 25 and (g["nebular_rv"].abs() < 45).all()
        assert g["nebular_nii_ratio"].std() / g["nebular_nii_ratio"].mean() < 0.2
    assert t.loc[~t["nebular"], ["nebular_rv", "nebular_nii_ratio", "nebular_sii_ratio"]].isna().all().all()
    # any order, any process: the same spectrum; without a nebula the same bytes as with none configured
    i_neb, i_not = int(neb["index"].iloc[-1]), int(t.loc[~t["nebular"], "index"].iloc[-1])
    a = make_spectrum(i_neb, 1, "lamost", CFG)
    make_spectrum(i_neb + 64, 1, "lamost", CFG)
    b = make_spectrum(i_neb, 1, "lamost", CFG)
    assert encode(a) == encode(b) and a.truth == b.truth
    assert encode(make_spectrum(i_not, 1, "lamost", CFG)) == encode(make_spectrum(i_not, 1, "lamost", NO_NEBULA))
    assert encode(a) != encode(make_spectrum(i_neb, 1, "lamost", NO_NEBULA))


def test_nebular_fractions_follow_the_settings(lamost_run):
    t = lamost_run
    assert t["nebular"].mean() == pytest.approx(CFG.nebular_plate_fraction, abs=0.02)
    assert {"absorption", "emission", "double_peak"} <= set(t.loc[t["nebular"], "class"])
    for frac, strength in ((CFG.nebular_plate_fraction, CFG.nebular_strength), (0.2, 6.0)):
        cfg = SynthConfig.defaults([f"synth.nebular_plate_fraction={frac}", f"synth.nebular_strength={strength}"])
        plates = [nebula_params(p, 9, cfg) for p in range(5000)]
        got = [p for p in plates if p is not None]
        assert len(got) / 5000 == pytest.approx(frac, abs=0.002)
        assert sum(p is not None for p in plates[:64]) == pytest.approx(64 * frac, abs=1.5)   # any 64 plates
        assert np.median([p["ha_ew"] for p in got]) == pytest.approx(strength, rel=0.1)
    assert all(nebula_params(p, 9, NO_NEBULA) is None for p in range(1000))


# -- 6. MRS files in the LAMOST archive ------------------------------------------------------------------
NO_MRS = SynthConfig.defaults(["synth.mrs_fraction=0.0"])
WITH_MRS = SynthConfig.defaults(["synth.mrs_fraction=0.3"])
OLD_COLUMNS = TRUTH_COLUMNS[:TRUTH_COLUMNS.index("exposure")]
# 64 LAMOST files of seed 5 made by the generator before it could write MRS files (commit 3aa69ee):
# sha256 over (path, sha256 of the decompressed bytes) and over the truth rows' columns of then (all but
# ``bytes``, which depends on the gzip library)
NO_MRS_FILES_SHA256 = "17aed661eab991432fd7052a7032cc7e4c5c5faad7c5296a70987a74ba8fc79d"
NO_MRS_TRUTH_SHA256 = "0de3adef84f355ae2b12fb86a64aa035b4e67cfcb0f3652e5092e1a8205c2c60"


def _content_digest(out):
    h = hashlib.sha256()
    for p in sorted(out.rglob("*")):
        if p.is_file():
            raw = p.read_bytes()
            data = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
            h.update(p.relative_to(out).as_posix().encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()


def _mjd(date_obs: str) -> float:
    return float((np.datetime64(date_obs) - np.datetime64("1858-11-17T00:00:00")) / np.timedelta64(1, "ms")) / 86400e3


def test_an_archive_without_mrs_files_is_what_it_was(tmp_path):
    rows = list(generate_indices(str(tmp_path), range(64), 5, "lamost", NO_MRS))
    assert _content_digest(tmp_path) == NO_MRS_FILES_SHA256
    cols = [c for c in OLD_COLUMNS if c != "bytes"]
    assert hashlib.sha256(json.dumps([[r[c] for c in cols] for r in rows], default=str).encode()).hexdigest() \
        == NO_MRS_TRUTH_SHA256
    # the new columns of one-spectrum files: no exposure, the plate's DATE-OBS and EXPTIME
    assert all(r["exposure"] == "" and r["empty"] is False and r["n_cosmic"] is None
               and r["emission_scale"] is None for r in rows)
    for r in rows[:8]:
        h = load_bytes((tmp_path / r["file"]).read_bytes()).primary
        assert r["mjd"] == pytest.approx(_mjd(h["DATE-OBS"]), abs=1e-6) and r["exptime"] == h["EXPTIME"]
    ond = list(generate_indices(str(tmp_path / "ond"), range(3), 5, "ondrejov", WITH_MRS))
    assert all(r["format"].startswith("ondrejov") and r["mjd"] is None for r in ond)   # never MRS


def test_mrs_settings_are_range_checked():
    for key in ("mrs_fraction", "mrs_dr9_fraction"):
        with pytest.raises(ConfigError, match=f"synth.{key} = 1.5: must be in"):
            load_config("local", None, [f"synth.{key}=1.5"])


def _pulls(s):
    """(flux - its 11-pixel running median) * sqrt(ivar): cosmic-ray hits stand out above 10."""
    return (s.flux - median_filter(s.flux.astype(float), 11, mode="nearest")) * np.sqrt(s.ivar)


def test_lamost_archive_with_mrs_files_has_truth_per_red_exposure(spark, tmp_path):
    config = {"synth": {**WITH_MRS.__dict__, "lamost_formats": dict(WITH_MRS.lamost_formats), "partitions": 3}}
    out = tmp_path / "mrs"
    summary = run_synth(spark, str(out), 60, 5, "lamost", config)
    table = pq.read_table(out / "truth.parquet")
    for col, typ in (("exposure", "string"), ("mjd", "double"), ("exptime", "double"), ("empty", "bool"),
                     ("n_cosmic", "int64"), ("emission_scale", "double")):
        assert str(table.schema.field(col).type) == typ, col
    rows = table.to_pylist()
    assert [(r["index"], r["exposure"]) for r in rows] == sorted((r["index"], r["exposure"]) for r in rows)
    assert pd.read_csv(out / "truth.csv", keep_default_na=False)["exposure"].tolist() == [r["exposure"] for r in rows]
    files = {}
    for r in rows:
        files.setdefault(r["index"], []).append(r)
    mrs = {i: rs for i, rs in files.items() if rs[0]["format"] == "lamost_mrs"}
    assert sorted(files) == list(range(60)) and 10 <= len(mrs) <= 26
    assert summary["files"] == 60 and summary["mrs_files"] == len(mrs) and summary["spectra"] == len(rows)
    assert summary["bytes"] == sum(p.stat().st_size for p in out.rglob("*.fits*"))
    assert summary["formats"]["lamost_mrs"] == len(mrs) and sum(summary["formats"].values()) == 60
    assert {rs[0]["layout"] for rs in mrs.values()} == {"dr7", "dr9"} and any(rs[0]["gzip"] for rs in mrs.values())
    # the one-spectrum files are those of an archive without MRS files, and their truth rows too
    plain = tmp_path / "plain"
    old = {r["index"]: r for r in generate_indices(str(plain), range(60), 5, "lamost", NO_MRS)}
    for i, rs in files.items():
        if i not in mrs:
            assert len(rs) == 1 and rs[0] == old[i] and rs[0]["exposure"] == ""
            assert (out / rs[0]["file"]).read_bytes() == (plain / rs[0]["file"]).read_bytes()
    varying = empties = hits = 0
    for i, rs in mrs.items():
        f = rs[0]
        m = make_mrs(i, 5, f["layout"])                      # the generator's record of the file
        path = out / f["file"]
        raw = path.read_bytes()
        assert (raw[:2] == b"\x1f\x8b") == f["gzip"] == path.name.endswith(".fits.gz")
        assert gzip.decompress(raw) == mrs_bytes(m) if f["gzip"] else raw == mrs_bytes(m)
        lmjd, planid = str(m.primary["lmjd"]), m.primary["planid"]
        assert f["file"].startswith(f"{lmjd}/{planid}/med-{lmjd}-{planid}_sp") and f["bytes"] == len(raw)
        assert f["data_release"] == {"dr7": "DR7", "dr9": "DR9"}[f["layout"]]
        exposures = read_mrs_exposures(load_bytes(raw, path.name))
        # one truth row per red table the reader returns: COADD_R and every R-<LMJM>, no blue one
        assert [r["exposure"] for r in rs] == [name for name, _ in exposures] == \
            ["COADD_R"] + [t.name for t in m.red_exposures]
        level = max(np.median(s.flux) for _, s in exposures)
        rv_line = 6564.61 * (1 + m.truth["rv"] / 299792.458)
        for r, (name, s) in zip(rs, exposures):
            for key in ("file", "kind", "format", "layout", "data_release", "object", "ra", "dec", "gzip", "bytes",
                        "spectral_type", "halpha_profile", "z", "lamost_class", "label"):
                assert r[key] == f[key], key
            assert r["object"] == s.meta["designation"] and r["ra"] == pytest.approx(s.meta["ra"], abs=1e-9)
            assert r["mjd"] == pytest.approx(s.meta["mjd"], abs=1e-9) and r["exptime"] == s.meta["exptime"]
            t = m.table(name).truth
            assert r["ha_ew_true"] == t["ha_ew_true"] and r["emission_scale"] == t["emission_scale"]
            # empty exposures: about 1 % of the light of the file's brightest table
            if level > 0 and not all(x["empty"] for x in rs):
                assert r["empty"] == (np.median(s.flux) < 0.05 * level), (i, name)
            empties += r["empty"]
            # cosmic rays: each counted hit is in the file, and no other spike (away from the line)
            assert r["n_cosmic"] == len(t.get("cosmic_hits", [])) and (name != "COADD_R" or r["n_cosmic"] == 0)
            pull = _pulls(s)
            spikes = np.ones(s.flux.size, bool)
            for h in t.get("cosmic_hits", []):
                assert pull[h].max() > 10, (i, name, h)
                spikes[max(h[0] - 1, 0):h[-1] + 2] = False
            assert not (pull[spikes & (np.abs(s.wavelength - rv_line) > 5)] > 10).any(), (i, name)
            hits += r["n_cosmic"]
            # classes as the LRS truth has them; an empty exposure's like a dead fibre's: unknown
            want = {"absorption": "absorption", "single": "emission", "mdwarf": "emission", "double": "double_peak"}
            assert r["class"] == ("unknown" if r["empty"] else want[r["halpha_profile"]])
            assert (r["ha_ew_true"] < 0) == (r["halpha_profile"] != "absorption")
            assert r["ha_ew_west_true"] == t["ha_ew_west_true"] == pytest.approx(r["ha_ew_true"], rel=0.1, abs=1.0)
        scales = {r["emission_scale"] for r in rs[1:] if not r["empty"]}
        if f["halpha_profile"] != "absorption" and len(scales) > 1:
            varying += 1
            ews = [r["ha_ew_true"] for r in rs[1:] if not r["empty"]]
            assert len(set(ews)) == len(ews)            # emission that changes between exposures
    assert varying >= 3 and empties >= 1 and hits > 20
    assert summary["classes"] == dict(sorted(Counter(r["class"] for r in rows).items()))
