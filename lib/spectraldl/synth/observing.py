"""Archive conventions of the synthetic files: LAMOST plates (and the H II regions in front of
some), Ondřejov nights, names.

Which plate (layout, release, date, plan name, exposure) or night (detector, date, conditions) a
spectrum belongs to depends only on its index and the run's seed, so any partitioning of the work
gives the same files.
"""
from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from .types import SynthConfig

_PLATES_PER_CYCLE, _FIBRES_PER_PLATE = 64, 4000
RELEASES = {"dr1": (1,), "dr2": (2,), "dr3_8": (3, 4, 5, 6, 7, 8), "dr9": (9, 10)}
RELEASE_END_MJD = {1: 56460, 2: 56830, 3: 57190, 4: 57550, 5: 57910, 6: 58270, 7: 58640, 8: 59000, 9: 59370, 10: 59740}


def plate_of(index: int) -> tuple[int, int, int]:
    """(plate, spectrograph 1-16, fibre 1-250): consecutive indices go to 64 different plates."""
    cycle, k = divmod(index, _PLATES_PER_CYCLE * _FIBRES_PER_PLATE)
    slot = k // _PLATES_PER_CYCLE
    return cycle * _PLATES_PER_CYCLE + k % _PLATES_PER_CYCLE, slot // 250 + 1, slot % 250 + 1


@functools.lru_cache(maxsize=256)
def plate_params(plate: int, seed: int, cfg: SynthConfig) -> dict[str, Any]:
    """A LAMOST plate: layout/release of its files, observing date, plan name, exposure."""
    rng = np.random.default_rng([seed, 1, 0x91A7, plate])
    names, w = zip(*cfg.lamost_formats)
    layout = names[int(rng.choice(len(names), p=np.array(w) / sum(w)))]
    release = int(rng.choice(RELEASES[layout]))
    ra_c, dec_c = int(rng.integers(0, 360)), int(rng.integers(-9, 80))
    prefix = str(rng.choice(["GAC", "VB", "HD", "KP", "EG", "B"]))
    ns = f"{'N' if dec_c >= 0 else 'S'}{abs(dec_c):02d}"
    # the plate number sits in each name, so no two plates share a directory (or a file name)
    planid = (f"{prefix}{ra_c:03d}{ns}V{plate + 1}" if prefix in ("GAC", "VB") else
              f"HD{ra_c:03d}{plate:06d}{ns}{int(rng.integers(0, 10**4)):04d}B01" if prefix == "HD" else
              f"{prefix}{plate:05d}{int(rng.integers(1, 99)):02d}")
    lmjd = int(rng.integers(55859, RELEASE_END_MJD[release]))
    return {"layout": layout, "release": release, "planid": planid, "lmjd": lmjd, "seed": int(rng.integers(2**62)),
            "exptime": float(rng.choice([600.0, 1200.0, 1500.0, 1800.0, 2700.0, 4500.0])), "plate": plate}


_GOLDEN = 0.6180339887498949


@functools.lru_cache(maxsize=256)
def nebula_params(plate: int, seed: int, cfg: SynthConfig) -> dict[str, float] | None:
    """The H II region in front of a LAMOST plate, or None (most plates).

    A plate has one when ``(offset + plate * golden ratio) mod 1 < nebular_plate_fraction`` (the
    offset from the seed): a low-discrepancy choice, so any 64 consecutive plates (consecutive
    spectra go to 64 plates in turn) hold the fraction to about one plate. The
    nebula's own generator, keyed by the plate, draws its H-alpha equivalent width (Å, against
    the continuum of a star at H-alpha; lognormal about ``nebular_strength`` with sigma 0.4 in ln),
    its velocity (0-30 km/s), [N II] 6585 / H-alpha (0.25-0.6) and [S II] (6718 + 6733) / H-alpha
    (0.15-0.45) flux ratios and [S II] 6718 / 6733 (1.0-1.45).
    """
    offset = float(np.random.default_rng([seed, 1, 0x4EB0]).random())
    if (offset + plate * _GOLDEN) % 1.0 >= cfg.nebular_plate_fraction:
        return None
    rng = np.random.default_rng([seed, 1, 0x4EB1, plate])
    return {"ha_ew": cfg.nebular_strength * float(rng.lognormal(0.0, 0.4)), "rv": float(rng.uniform(0.0, 30.0)),
            "nii": float(rng.uniform(0.25, 0.6)), "sii": float(rng.uniform(0.15, 0.45)),
            "sii_ratio": float(rng.uniform(1.0, 1.45))}


def designation(ra: float, dec: float) -> str:
    """``LAMOST Jhhmmss.ss+ddmmss.s`` (truncated, not rounded, as the archive writes it)."""
    t = int(ra / 15.0 * 3600 * 100)
    d = int(abs(dec) * 3600 * 10)
    return (f"LAMOST J{t // 360000:02d}{t // 6000 % 60:02d}{t % 6000 // 100:02d}.{t % 100:02d}"
            f"{'-' if dec < 0 else '+'}{d // 36000:02d}{d // 600 % 60:02d}{d % 600 // 10:02d}.{d % 10}")


SPECTRA_PER_NIGHT = 40
DETECTORS = {  # name: era (first, last day as datetime64), pixels, dispersion Å/px, IRAF start Å
    "SITe": ("1998-01-01", "2013-06-30", 1997, 0.25667, (6252.5, 6266.0), (1757, 1758)),
    "PyLoN": ("2013-07-01", "2019-12-31", 2047, 0.230918, (6261.5, 6262.2), (1953, 1953)),
}


@functools.lru_cache(maxsize=256)
def night_params(night: int, seed: int, cfg: SynthConfig) -> dict[str, Any]:
    """An Ondřejov night: detector (by era), date, observers' conditions."""
    rng = np.random.default_rng([seed, 2, 0x2197, night])
    det = "PyLoN" if rng.random() < cfg.ondrejov_pylon_fraction else "SITe"
    first, last = (np.datetime64(d) for d in DETECTORS[det][:2])
    span = int((last - first).astype(int)) + 1
    fold, day = divmod(night, span)
    date = first + np.timedelta64(day * coprime_step(span) % span, "D")
    return {"detector": det, "date": str(date), "fold": fold, "seed": int(rng.integers(2**62)),
            "telluric": float(rng.uniform(0.3, 1.5))}


def ondrejov_stem(date: str, seq: int, detector: str) -> str:
    """``ud090015`` (SITe: year letter from 1991, month letter, day, number) or ``a201402030013``."""
    y, m, d = (int(x) for x in date.split("-"))
    if detector == "PyLoN":
        return f"a{y:04d}{m:02d}{d:02d}{seq:04d}"
    return f"{chr(ord('a') + y - 1991)}{chr(ord('a') + m - 1)}{d:02d}{seq:04d}"


def object_name(star_id: int, uid: int) -> str:
    """A unique catalogue-like name for one star (``HD 123456``, ``HIP 12345``, ``BD+12 3456``)."""
    cat = uid % 3
    if cat == 0:
        return f"HD {100000 + star_id}"
    if cat == 1:
        return f"HIP {200000 + star_id}"
    return f"BD+{star_id % 90:02d} {star_id // 90 + 10000}"


def coprime_step(span: int, step: int = 37) -> int:
    """A step coprime with ``span`` (so ``k * step % span`` visits every day once)."""
    while math.gcd(step, span) != 1:
        step += 1
    return step
