"""The archives' conventions: one writer per layout, headers as the real files have them, and the
plates, nights and names that give the files their places and identities.

Layouts (``Synth.layout``) and what they imitate (compare ../shared/data/real):

- ``dr1``: MWRFITS v1.8 primary image 5 x N float32, rows flux, ivar, *normalised flux*, andmask,
  ormask; ``SN_G``/``SN_R``; no ``OBSID``/``DATA_V``; RA/DEC with 12 significant digits;
- ``dr2``: the same re-saved by astropy, float64, row 2 the wavelength, ``FIBERID`` a string;
- ``dr3_8``: MWRFITS v1.11b, float32, row 2 the wavelength, ``OBSID``, ``DATA_V 'LAMOST DRn'``,
  ``SNRG``/``SNRR``; ``X_VALUE`` a string from DR4; ``TSOURCE``/``RA_OBS`` from DR7;
- ``dr9``: empty primary (BITPIX 16, NAXIS 0, stale NAXIS1/NAXIS2) + ``COADD`` table of one row of
  float32 arrays FLUX IVAR WAVELENGTH ANDMASK ORMASK NORMALIZATION;
- ``iraf``: Ondřejov CCD700 original, 1-D float32 image in ADU, CRVAL1/CDELT1, sexagesimal RA/DEC,
  invalid cards (``HISTORY1``, ``COMMENT1=``, cards without a value);
- ``table``: Ondřejov archive download, empty primary + BINTABLE ``spectral``/``flux`` float64.
"""
from __future__ import annotations

import functools
import gzip as _gzip

import numpy as np

from .fitswrite import NO_VALUE, Raw, bintable, card, commentary, hdu_bytes, image_data, raw_card
from .types import Synth

try:  # ISA-L deflates several times faster than zlib
    from isal import igzip as _igzip
except ImportError:  # pragma: no cover - isal is in requirements.txt
    _igzip = None

C = card


def _mjd_to_date(mjd: float) -> str:
    """``YYYY-MM-DDThh:mm:ss.ss`` of a modified Julian date."""
    t = np.datetime64("1858-11-17T00:00:00.00") + np.timedelta64(int(round(mjd * 86400 * 100)), "10ms")
    return str(t)[:22]


def _lamost_cards(s: Synth, coadd: bool) -> list[str]:
    """The primary header of a LAMOST LRS file in the style of its release (see module doc)."""
    h, rel = s.header, s.header["release"]
    pp = h["plate"]
    astropy = rel == 2
    rng = np.random.default_rng(h["cosmetic_seed"])
    bitpix = 16 if coadd else (-64 if s.flux.dtype == np.float64 else -32)
    e = "" if not astropy else None
    cards = [C("SIMPLE", True, "conforms to FITS standard" if astropy else
               f"Primary Header created by MWRFITS {'v1.8' if rel == 1 else 'v1.11b'}", tight=not astropy),
             C("BITPIX", bitpix, "array data type" if astropy else ""),
             C("NAXIS", 0 if coadd else 2, "number of array dimensions" if astropy else
               ("" if rel == 1 else "Number of array dimensions")),
             C("NAXIS1", h["n"], e), C("NAXIS2", 5, e),
             C("EXTEND", True, None if astropy else ("Extensions may be present" if rel == 1 else ""))]
    if rel == 2 or rel >= 7:
        cards.append(commentary(""))
    cards += [commentary("COMMENT", "--------FILE INFORMATION"), C("FILENAME", h["filename"], "")]
    if rel >= 3:
        cards.append(C("OBSID", h["obsid"], "Unique number ID of this spectrum"))
    segments = _plate_segments(pp["seed"], pp["lmjd"], pp["planid"], pp["exptime"], rel, coadd)
    cards += segments[0]
    radec = "#.12g" if rel == 1 else None if astropy else ".6f"
    cards += [C("RA", h["ra"], "[deg] Right ascension of object", radec),
              C("DEC", h["dec"], "[deg] Declination of object", radec)]
    if astropy:
        cards += [C("OFFSET", False, "Whether there is a offset during observing"),
                  C("OBS_RA", h["ra"], "[deg] Right ascension during observing"),
                  C("OBS_DEC", h["dec"], "[deg] Declination during observing")]
    elif rel >= 7:
        cards += [C("RA_OBS", h["ra"], "[deg] Right ascension during observing", ".6f"),
                  C("DEC_OBS", h["dec"], "[deg] Declination during observing", ".6f"),
                  C("OFFSET", False, "Whether there's a offset during observing"),
                  C("OFFSET_V", 0.0, "Offset value in arcsecond", ".2f")]
    x, y = rng.uniform(-900, 900, 2)
    if rel >= 4:  # X_VALUE / Y_VALUE became strings
        xv, yv, fx = f"{x:.10f}", f"{y:.10f}", None
    else:
        xv, yv, fx = round(float(x), 9 if rel == 1 else 3), round(float(y), 9 if rel == 1 else 3), {1: "#.12g", 2: None}.get(rel, ".3f")
    cards += [C("DESIG", h["desig"], "Designation of LAMOST target"),
              C("FIBERID", f"{h['fiberid']}" if astropy else h["fiberid"], "Fiber ID of Object"),
              C("CELL_ID", f"{'ABCDEFGH'[h['spid'] % 8]}{int(rng.integers(1000, 4000))}", "Fiber Unit ID on the focal plane"),
              C("X_VALUE", xv, "[mm] X coordinate of object on the focal plane", fx),
              C("Y_VALUE", yv, "[mm] Y coordinate of object on the focal plane", fx),
              C("OBJNAME", h["objname"], "Name of object"),
              C("OBJTYPE", h["objtype"].lower() if rel == 1 else h["objtype"], "Object type from input catalog")]
    if rel >= 7:
        cards += [C("TSOURCE", "LEGUE_LCH", "Name of input catalog"), C("TCOMMENT", h["objname"][:15], "Target information"),
                  C("TFROM", "LCH100002", "Target catalog")]
    else:
        cards += [C("OBJSOURC", "PILOT", "Name of input catalog"), C("T_INFO", "<off_9.2>", "Target information"),
                  C("T_FROM", "-", "Target catalog")]
    mags = np.round(rng.uniform(10, 17.5, 7), 2)
    if rel >= 9:
        cards += [C("FIB_TYPE", "Obj", "Fiber type of object"), C("FIB_MASK", 0, "Bitmask of warning values, 0 means good")]
        cards += [C(f"MAG_PS_{b}", float(m), "[mag] Magnitude of object", ".2f") for b, m in zip("GRIZY", mags)]
    else:
        cards.append(C("FIBERTYP", "Obj", "Fiber type of object"))
        if rel >= 7:
            cards.append(C("FIBERMAS", 0, "Bitmask of warning values, 0 means all is well"))
        cards.append(C("MAGTYPE", "ugrizjh", "Magnitude type of object"))
        cards += [C(f"MAG{i + 1}", float(m) if i in (2, 3, 4) else 99.0, f"[mag] Mag{i + 1} of object",
                    None if astropy else ".2f") for i, m in enumerate(mags)]
    cards += segments[1]
    cards += [C("SPID", h["spid"], "Spectrograph ID"),
              C("SPRA", round(h["ra"] + float(rng.normal(0, 0.3)), 3) % 360, "[deg] Average RA of this spectrograph", ".3f"),
              C("SPDEC", round(h["dec"] + float(rng.normal(0, 0.3)), 5), "[deg] Average DEC of this spectrograph", ".5f")]
    cards += segments[2]
    if rel == 1:
        nexp, lmjd = 2, pp["lmjd"]
        cards += [C(f"EXPID{i + 1:02d}", f"{h['spid']:02d}{'br'[i // nexp]}-{lmjd}-{i % nexp + 7}-{lmjd * 1440 + 500 + i % nexp * 17}",
                    f"ID string for exposure {i + 1}") for i in range(2 * nexp)]
    cards += segments[3]
    cards += [C("CLASS", h["lamost_class"], "Class of object"), C("SUBCLASS", h["subclass"], "Subclass of object"),
              C("Z", h["z"], "Redshift of object", ".8f"),
              C("Z_ERR", round(float(rng.uniform(1e-6, 3e-5)), 8), "Redshift error of object", ".8f")]
    if rel == 2:
        cards.append(C("Z_FROM", "PIPELINE", "Which method computes the redshift"))
    elif rel >= 7:
        cards.append(C("ZFLAG", "LASP", "Which method computes the redshift"))
    sn = "SN_" if rel <= 2 else "SNR"
    cards += [C(f"{sn}{b.upper()}", h["snr"][b], f"SNR of {b} filter", None if astropy else ".2f") for b in "ugriz"]
    return cards


def _mid_mjd(lmjd: int, rng: np.random.Generator) -> float:
    """The plate's mid-observation UTC MJD (``DATE-OBS``): the night before local day ``lmjd``."""
    return lmjd - 1 + 0.5 + rng.uniform(-0.1, 0.2)


def plate_mid_mjd(plate_seed: int, lmjd: int) -> float:
    """The ``DATE-OBS`` of a LAMOST LRS plate as an MJD (the first draw of the plate's card generator).

    Parameters
    ----------
    plate_seed : int
        ``plate_params(...)["seed"]``, the seed of the plate's header cards.
    lmjd : int
        The plate's local MJD.

    Returns
    -------
    float
        The value :func:`_plate_segments` writes, before its rounding to 10 ms.
    """
    return float(_mid_mjd(lmjd, np.random.default_rng(plate_seed)))


@functools.lru_cache(maxsize=128)
def _plate_segments(seed: int, lmjd: int, planid: str, exptime: float, rel: int, coadd: bool) -> tuple[list[str], ...]:
    """The cards shared by every file of one plate (site, date, weather, reduction), four runs of them."""
    rng = np.random.default_rng(seed)
    astropy = rel == 2
    e = "" if not astropy else None
    mid = _mid_mjd(lmjd, rng)
    a = [C("AUTHOR", "LAMOST Pipeline", "Who compiled the information")]
    if rel >= 3:
        a.append(C("DATA_V", f"LAMOST DR{rel}", "Data release version"))
    if coadd:
        a += [C("N_EXTEN", 2, "The amount of extension"), C("NORM", 1, "1 if there exists a normalizated spectrum")]
    else:
        exten0 = {1: "Flux Inverse Subcontinuum Andmask Ormask", 2: "Flux Inverse Wavelength Andmask Ormask"}
        a += [C("EXTEN0", exten0.get(rel, "Flux, Inverse, Wavelength, Andmask, Ormask"), e),
              C("N_EXTEN", 1, "The extension number")]
        if rel >= 2:
            a.append(C("EXTNAME", "Flux", "The extension name"))
    made = _mjd_to_date(_RELEASE_DATE.get(rel, 58000) + rng.uniform(0, 300))[:19]
    a += [C("ORIGIN", "NAOC-LAMOST", "Organization responsible for creating this file"),
          C("DATE", made.replace("T", " ") if astropy else made, "Time when this HDU is created (UTC)"),
          commentary("COMMENT", "--------TELESCOPE PARAMETERS"), C("TELESCOP", "LAMOST", "GuoShouJing Telescope"),
          C("LONGITUD", 117.58, "[deg] Longitude of site", ".3f" if rel == 1 else None),
          C("LATITUDE", 40.39, "[deg] Latitude of site", ".4f" if rel == 1 else None),
          C("FOCUS", 19964, "[mm] Telescope focus"), C("CAMPRO", "NEWCAM", "Camera program name"),
          C("CAMVER", "2.0" if astropy else "v2.0", "Camera program version"),
          commentary("COMMENT", "--------OBSERVATION PARAMETERS"),
          C("DATE-OBS", _mjd_to_date(mid), "The observation median UTC"),
          C("DATE-BEG", _mjd_to_date(mid + 0.33 - exptime / 172800)[:21], "The observation start local time"),
          C("DATE-END", _mjd_to_date(mid + 0.33 + exptime / 172800)[:21], "The observation end local time"),
          C("LMJD", lmjd, "Local Modified Julian Day"), C("MJD", lmjd - int(rng.integers(0, 2)), "Modified Julian Day"),
          C("LMJMLIST", f"{lmjd * 1440 + 500:08d}-{lmjd * 1440 + 517:08d}", "Local Modified Julian Minute list"),
          C("PLANID", planid, "Plan ID in use")]
    b = [C("OBS_TYPE", "OBJ", "The type of target (OBJ, FLAT, ARC or BIAS)"),
         C("OBSCOMM", "Science", "Science, Test" if rel == 1 else "Science or Test"),
         C("RADECSYS", "FK5", "Equatorial coordinate system"), C("EQUINOX", 2000.0, "Equinox in years", ".2f"),
         commentary("COMMENT", "--------SPECTROGRAPH PARAMETERS")]
    weather = np.round(rng.uniform([-125, -125, 2, 0, -15, -25, 5, 0, 0], [-110, -110, 5, 29.5, 20, 5, 90, 360, 8]), 2)
    c = [C("SLIT_MOD", "x2/3", "Slit mode, x1, x2/3 or x1/2"), commentary("COMMENT", "--------WEATHER CONDITION")]
    for key, val, note in zip(("TEMPCCDB", "TEMPCCDR", "SEEING", "MOONPHA", "TEMP_AIR", "DEWPOINT", "HUMIDITY", "WINDD", "WINDS"),
                              weather, _WEATHER_NOTES):
        if key == "HUMIDITY":
            c.append(C("DUST", "", "Reservation"))
        c.append(C(key, float(val), note, None if astropy else ".2f"))
    c += [C("SKYLEVEL", "", "Reservation"), commentary("COMMENT", "--------DATA REDUCTION PARAMETERS"),
          C("LAMPLIST", "lamphgcdne.dat", "Arc lamp emission line list"), C("SKYLIST", "skylines.dat", "Sky emission line list")]
    nexp = 2 if rel == 1 else int(rng.integers(2, 4))
    d = [C("NEXP", nexp, "Number of valid exposures"), C("NEXP_B", nexp, "Number of valid blue exposures"),
         C("NEXP_R", nexp, "Number of valid red exposures"), C("EXPT_B", exptime, "[s] Blue exposure duration time", ".2f"),
         C("EXPT_R", exptime, "[s] Red exposure duration time", ".2f"),
         C("EXPTIME", exptime, "[s] Minimum of exposure time for all cameras", ".2f"),
         C("BESTEXP", lmjd * 1440 + 500, "MJM of the best exposure"),
         C("SCAMEAN", round(float(rng.uniform(-1, 6)), 2), "[ADU] Mean level of scatter light", ".2f"),
         C("EXTRACT", "aperture", "Extraction method"), C("SFLATTEN", True, "Super flat has been applied"),
         C("PCASKYSB", True, "PCA sky-subtraction has been applied"), C("NSKIES", int(rng.integers(15, 50)), "Sky fiber number"),
         C("SKYCHI2", round(float(rng.uniform(1.2, 4)), 1), "Mean chi^2 of sky-subtraction", ".1f"),
         C("SCHI2MIN", 1.1, "Minimum chi^2 of sky-subtraction", ".1f"),
         C("SCHI2MAX", 6.0, "Maximum chi^2 of sky-subtraction", ".1f"),
         C("NSTD", int(rng.integers(2, 6)), "Number of (good) standard stars"),
         C("FSTAR", "103-106-97-30", "FiberID of flux standard stars"),
         C("FCBY", "auto", "Standard stars origin (auto, manual or catalog)"), C("HELIO", True, "Heliocentric correction"),
         C("HELIO_RV", round(float(rng.uniform(-30, 30)), 5), "[km/s] Heliocentric correction", ".5f"),
         C("VACUUM", True, "Wavelengths are in vacuum"), C("NWORDER", 2, "Number of linear-log10 coefficients"),
         C("WFITTYPE", "LOG-LINEAR", "Linear-log10 dispersion"),
         C("COEFF0", 3.5682, "Central wavelength (log10) of first pixel", ".5f" if rel == 1 else None),
         C("COEFF1", 0.0001, "Log10 dispersion per pixel", ".9f" if rel == 1 else None),
         C("WAT0_001", "system=linear", e), C("WAT1_001", "wtype=linear label=Wavelength units=Angstroms", e),
         C("CRVAL1", 3.5682, "Central wavelength (log10) of first pixel", ".5f" if rel == 1 else None),
         C("CD1_1", 0.0001, "Log10 dispersion per pixel", ".9f" if rel == 1 else None),
         C("CRPIX1", 1, "Starting pixel (1-indexed)"), C("CTYPE1", "LINEAR", e), C("DC-FLAG", 1, "Log-linear flag"),
         commentary("COMMENT", "--------SPECTRA ANALYSIS RESULTS"),
         C("VERSPIPE", {1: "v2.6.4", 2: "2.7.5"}.get(rel, "v2.9.8" if rel >= 7 else "v2.7.5"), "Version of Pipeline")]
    return a, b, c, d


_WEATHER_NOTES = ("[deg] The temperature of blue CCD", "[deg] The temperature of red CCD", "[arcsec] Seeing during exposure",
                  "[day] Moon phase for a 29.53 days period", "[deg] Temperature outside dome", "[deg]", "",
                  "[deg] Wind direction", "[m/s] Wind speed")
_RELEASE_DATE = {1: 56600, 2: 57000, 3: 57350, 4: 57700, 5: 58050, 6: 58400, 7: 58750, 8: 59100, 9: 59450, 10: 60000}


def lamost_image_bytes(s: Synth) -> bytes:
    """DR1-DR8: primary image of 5 rows (row 2 normalised flux in DR1, wavelength after)."""
    dtype = s.flux.dtype
    row2 = s.normalised if s.layout == "dr1" else s.wavelength.astype(dtype)
    img = np.stack([s.flux, s.ivar, row2, s.andmask.astype(dtype), s.ormask.astype(dtype)])
    return hdu_bytes(_lamost_cards(s, coadd=False), image_data(img))


def lamost_coadd_bytes(s: Synth) -> bytes:
    """DR9+: empty primary with stale NAXISn + one-row ``COADD`` table of float32 arrays."""
    f4 = np.float32
    cols = [(name, np.asarray(a, dtype=f4)[None, :]) for name, a in (
        ("FLUX", s.flux), ("IVAR", s.ivar), ("WAVELENGTH", s.wavelength), ("ANDMASK", s.andmask),
        ("ORMASK", s.ormask), ("NORMALIZATION", s.normalised))]
    fields, data = bintable(cols, 1)
    head = [C("XTENSION", "BINTABLE", "Binary table written by MWRFITS v1.11b", tight=True),
            C("BITPIX", 8, "Required value", tight=True), C("NAXIS", 2, "Required value", tight=True),
            C("NAXIS1", sum(f[2] for f in fields), "Number of bytes per row", tight=True),
            C("NAXIS2", 1, "Number of rows", tight=True),
            C("PCOUNT", 0, "Normally 0 (no varying arrays)", tight=True), C("GCOUNT", 1, "Required value", tight=True),
            C("TFIELDS", len(fields), "Number of columns in table", tight=True), commentary("COMMENT"),
            commentary("COMMENT", " *** End of mandatory fields ***"), commentary("COMMENT"),
            C("EXTNAME", "COADD", "The extension name"), commentary("COMMENT"),
            commentary("COMMENT", " *** Column names ***"), commentary("COMMENT")]
    head += [C(f"TTYPE{i + 1}", f[0], "") for i, f in enumerate(fields)]
    head += [commentary("COMMENT"), commentary("COMMENT", " *** Column formats ***"), commentary("COMMENT")]
    head += [C(f"TFORM{i + 1}", f[1], "") for i, f in enumerate(fields)]
    return hdu_bytes(_lamost_cards(s, coadd=True)) + hdu_bytes(head, data)


def ondrejov_iraf_bytes(s: Synth) -> bytes:
    """An IRAF 1-D image in ADU with the CCD700 header, its invalid cards included."""
    h, night = s.header, s.header["night"]
    rng = np.random.default_rng(h["cosmetic_seed"])
    pylon = h["detector"] == "PyLoN"
    ut = f"{int(rng.integers(18, 24)):02d}:{int(rng.integers(0, 60)):02d}:{int(rng.integers(0, 60)):02d}"
    ha, da = h["ra"] / 15.0, h["dec"]
    cards = [C("SIMPLE", True, "Fits standard"), C("BITPIX", -32, "Bits per pixel"), C("NAXIS", 1, "Number of axes"),
             C("NAXIS1", h["n"], "Axis length"), C("EXTEND", pylon, "File may contain extensions"),
             C("ORIGIN", "NOAO-IRAF FITS Image Kernel July 2003", "FITS file originator"),
             C("IRAF-TLM", night["date"] + "T21:45:23", "Time of last modification"),
             C("OBJECT", h["object"], "Name of the object observed" if pylon else "Title of observation"),
             C("DATE", night["date"] + "T21:44:13", "Date FITS file was generated"),
             C("OBSERVAT", "ONDREJOV", "Name of observatory (IRAF style)"),
             C("LATITUDE", 49.910555, "Telescope latitude  (degrees), +49:54:38.0"),
             C("LONGITUD", 14.783611, "Telescope longitud  (degrees), +14:47:01.0"),
             C("HEIGHT", Raw("0528"), "Height above sea level [m]."),
             C("OBSERVER", str(rng.choice(["Slechta, Sloup", "BudKa", "Vot,Dvo,Slou", "Kubat"])), "Observers"),
             C("IMAGETYP", "object", "Type of observation, eg. FLAT"),
             C("FILENAME", f"{h['stem']}.fit", "BIAS filename"),
             C("TELESCOP", "ZEISS-2m", "2m Ondrejov observatory telescope"),
             C("TELSYST", "COUDE", "Telescope setup - COUDE or CASSegrain"),
             C("EXPTIME", round(h["exptime"], 3), "Length of observation excluding pauses", ".3f"),
             C("DATE-OBS", night["date"], "UTC date start of observation"),
             raw_card("COMMENT =                      /"), raw_card("COMMENT1=                      /"),
             C("UT", ut, "UTC of  start of observation"),
             C("INSTRUME", "COUDE700", "Coude spectrograph setup - 1400/700mm focus"),
             C("DETECTOR", "PyLoN 2048x512BX" if pylon else "SITe 2000x800", "Name of the detector"),
             C("BUNIT", "ADU", "Unit of the array of image data"), C("GAIN", 1.07, "Electrons per ADU", ".2f"),
             C("READNOIS", 7.0, "Readout noise in electrons per pix", ".2f"),
             C("GRATNAME", "3", "Grating name - ID"), C("GRATANG", 30.25, "30:15"),
             C("GRATCWAV", NO_VALUE, "Central Wavelength in A"), C("SLITWID", 0.2, "Slit width in mm", ".2f"),
             C("CAMFOCUS", NO_VALUE, "Camera focus position"),
             C("COMPLAMP", "ThAr-BS/15mA", "Comparison arc setup"),
             C("SEEING", NO_VALUE, "Estimate of FWHM of seeing disk in arcsec"),
             raw_card("COMMENT3=                      /"), raw_card("HISTORY1"),
             C("RA", h["ra_text"], f"{ha:.6f}"), C("DEC", h["dec_text"], f"{da:.6f}"),
             C("EQUINOX", 2000.0 + rng.uniform(0, 20), "Equinox of RA and DEC", ".6f"),
             C("AZIMUTH", NO_VALUE, "Mean azimuth of observation (degrees)"),
             C("ZD", NO_VALUE, "Mean horizon-distance of observation (degrees)"),
             C("CAT-NAME", NO_VALUE, "Target input-catalogue name"), raw_card("HISTORY2"),
             C("WCSDIM", 1, "2", tight=True), C("LTM1_1", Raw("1.")),
             C("WAT0_001", "system=equispec"), C("WAT1_001", "wtype=linear label=Wavelength units=angstroms"),
             C("JD", round(2451545.0 + rng.uniform(0, 7000), 8)), C("AIRMASS", round(rng.uniform(1.0, 2.2), 6)),
             C("CTYPE1", "LINEAR"), C("CRVAL1", h["crval"]), C("CRPIX1", Raw("1.")), C("CDELT1", h["cdelt"]),
             C("CD1_1", h["cdelt"]), C("DC-FLAG", 0, "0", tight=True), C("DISPCOR", 0),
             C("VHELIO", round(rng.uniform(-30, 30), 13))]
    return hdu_bytes(cards, image_data(s.flux.astype(np.float32)))


def ondrejov_table_bytes(s: Synth) -> bytes:
    """The archive's SSAP/DataLink download: empty primary + (spectral, flux) float64 rows."""
    h, night = s.header, s.header["night"]
    rng = np.random.default_rng(h["cosmetic_seed"])
    prim = [C("SIMPLE", True, "conforms to FITS standard"), C("BITPIX", 8, "array data type"),
            C("NAXIS", 0, "number of array dimensions"), C("EXTEND", True, "More exts following"),
            C("DATE", "2017-04-07", "Date file was written")]
    n = s.wavelength.size
    fields, data = bintable([("spectral", s.wavelength), ("flux", np.asarray(s.flux, np.float64))], n)
    w0, w1 = s.wavelength[0] * 1e-10, s.wavelength[-1] * 1e-10
    objdir = h["object"].lower().replace(" ", "").replace("+", "")
    mjd = float(np.datetime64(night["date"]).astype(int)) + 40587.0 + rng.uniform(0.8, 1.0)
    cards = [C("XTENSION", "BINTABLE", "binary table extension"), C("BITPIX", 8, "array data type"),
             C("NAXIS", 2, "number of array dimensions"), C("NAXIS1", 16, "length of dimension 1"),
             C("NAXIS2", n, "length of dimension 2"), C("PCOUNT", 0, "number of group parameters"),
             C("GCOUNT", 1, "number of groups"), C("TFIELDS", 2, "number of table fields"),
             C("TTYPE1", "spectral", "Air wavelength"), C("TFORM1", fields[0][1]), C("TUNIT1", "Angstrom"),
             C("TTYPE2", "flux", "Relative flux"), C("TFORM2", fields[1][1]),
             C("TUTYP1", "spec:spectrum.data.spectralaxis.value"), C("TUTYP2", "spec:spectrum.data.fluxaxis.value"),
             C("TITLE", f"ccd700/data/{objdir}/6255-6767/{h['stem']}.fit"),
             C("DS_IDPUB", f"ivo://asu.cas.cz/stel/ccd700/{h['stem']}"), C("DATE", night["date"] + "T15:16:23"),
             C("VODATE", "2016-02-02T11:41:47.376240"), C("SPECBAND", "Optical"), C("OBJECT", h["object"]),
             C("SRCCLASS", "star"), C("RA", h["ra"]), C("DEC", h["dec"]), C("APERTURE", 0.000167, "[deg]"),
             C("TMID", round(mjd, 10), "[d]"), C("TELAPSE", round(h["exptime"], 2), "[s]"),
             C("SPEC_VAL", (w0 + w1) / 2, "[m]", ".14E"), C("SPEC_BW", w1 - w0, "[m]", ".14E"),
             C("TDMIN1", w0, "[m]", ".14E"), C("TDMAX1", w1, "[m]", ".14E"), C("RADECSYS", "ICRS"),
             C("SPECSDIM", "Angstrom"), C("VOSEGT", "Spectrum"), C("VOPUB", "ivo://asu.cas.cz/org"),
             C("DSSOURCE", "pointed"), C("CRETYPE", "archival"), C("FLUX_CAL", "UNCALIBRATED"),
             C("SPEC_CAL", "ABSOLUTE")]
    return hdu_bytes(prim) + hdu_bytes(cards, data)


WRITERS = {"dr1": lamost_image_bytes, "dr2": lamost_image_bytes, "dr3_8": lamost_image_bytes,
           "dr9": lamost_coadd_bytes, "iraf": ondrejov_iraf_bytes, "table": ondrejov_table_bytes}


def compress(data: bytes, level: int = 2) -> bytes:
    """gzip with a zero timestamp (byte-identical reruns); ISA-L when installed (levels 0-3)."""
    if _igzip is not None:
        return _igzip.compress(data, compresslevel=min(max(level, 0), 3), mtime=0)
    return _gzip.compress(data, compresslevel=max(level, 1), mtime=0)


def encode(s: Synth, gzip_level: int = 2) -> bytes:
    """The file bytes of ``s``: its layout's writer, gzipped when ``s.compression`` says so."""
    data = WRITERS[s.layout](s)
    return compress(data, gzip_level) if s.compression != "none" else data
