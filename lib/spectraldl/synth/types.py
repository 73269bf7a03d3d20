"""The synthetic generator's settings and its record of one generated spectrum."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from ..errors import UsageError


@dataclass(frozen=True)
class SynthConfig:
    """The ``[synth]`` settings; conf/defaults.toml declares them and says what they mean."""

    partitions: int
    block_size: int
    lamost_spectra_per_star: float
    ondrejov_spectra_per_star: float
    emission_fraction: float
    double_peak_fraction: float
    galaxy_fraction: float
    qso_fraction: float
    dead_fibre_fraction: float
    gzip_fraction: float
    gzip_misnamed_fraction: float
    gzip_level: int
    mrs_fraction: float
    mrs_dr9_fraction: float
    ivar_zero_on_emission: float
    ivar_zero_peak: float
    nebular_plate_fraction: float
    nebular_strength: float
    lamost_resolution: float
    ondrejov_resolution: float
    ondrejov_iraf_fraction: float
    ondrejov_pylon_fraction: float
    ondrejov_class_counts: tuple[int, ...]
    lamost_formats: tuple[tuple[str, float], ...]

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "SynthConfig":
        """Build from the layered config (the whole dict or its ``synth`` section)."""
        s = dict(config.get("synth", config))
        s["ondrejov_class_counts"] = tuple(int(v) for v in s["ondrejov_class_counts"])
        s["lamost_formats"] = tuple((k, float(s["lamost_formats"][k])) for k in ("dr1", "dr2", "dr3_8", "dr9"))
        known = set(cls.__dataclass_fields__)
        if set(s) != known:
            raise UsageError(f"[synth] settings differ from the declared ones: {sorted(set(s) ^ known)}")
        cfg = cls(**s)
        if cfg.block_size < 1 or sum(cfg.ondrejov_class_counts) <= 0 or sum(w for _, w in cfg.lamost_formats) <= 0:
            raise UsageError("[synth] block_size must be >= 1 and the class counts / format weights positive")
        return cfg

    @classmethod
    def defaults(cls, overrides: Iterable[str] = ()) -> "SynthConfig":
        """conf/defaults.toml's ``[synth]`` (plus ``--set``-style ``overrides``, e.g. ``"synth.block_size=8"``)."""
        from ..config import load_config

        return cls.from_config(load_config("local", overrides=list(overrides)))


@dataclass
class Synth:
    """One generated spectrum: what is written, what a reader must return, and the truth."""

    index: int
    kind: str
    layout: str                      # dr1, dr2, dr3_8, dr9, iraf, table
    relpath: str                     # path relative to the output directory
    compression: str                 # none, gzip, gzip_misnamed
    wavelength: np.ndarray           # as the reader returns it (float64)
    flux: np.ndarray                 # as written (float32 or float64)
    ivar: np.ndarray | None = None
    andmask: np.ndarray | None = None
    ormask: np.ndarray | None = None
    normalised: np.ndarray | None = None   # DR1 row 2 / COADD NORMALIZATION
    model: np.ndarray | None = None        # noiseless flux (not written)
    header: dict[str, Any] = field(default_factory=dict)   # values the format writers put in cards
    expected_meta: dict[str, Any] = field(default_factory=dict)
    truth: dict[str, Any] = field(default_factory=dict)
    continuum: np.ndarray | None = None    # the model without lines, ``model / continuum`` = F/Fc (not written)
