"""Range and consistency checks of every setting, applied when the configuration is loaded.

:func:`spectraldl.config.load_config` checks types against ``conf/defaults.toml``; this module
checks values: counts are at least 1, fractions lie in [0, 1] and sum to 1 where they split
something, names are among the known choices, wavelength windows are ordered and inside what
LAMOST covers. A bad value stops the job before any Spark work (and before the JVM starts where
``spark-submit.sh`` reads the config) with one line naming the key, the value and the allowed
range. Every setting of ``defaults.toml`` outside ``[spark]`` must have a rule here
(:func:`unchecked_keys` lists those that do not; a test keeps it empty).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator

#: LAMOST low-resolution spectra cover about 3,690-9,100 Å (vacuum): a preprocessing window
#: outside this range would reject every file.
COVERED_RANGE = (3690.0, 9100.0)


@dataclass(frozen=True)
class Rule:
    """One value check: ``ok(value)`` is True when the value is allowed; ``allowed`` says what is."""

    ok: Callable[[Any], bool]
    allowed: str


def at_least(lo: float) -> Rule:
    return Rule(lambda v: v >= lo, f">= {lo:g}")


def above(lo: float) -> Rule:
    return Rule(lambda v: v > lo and math.isfinite(v), f"> {lo:g}")


def between(lo: float, hi: float, lo_open: bool = False) -> Rule:
    if lo_open:
        return Rule(lambda v: lo < v <= hi, f"in ({lo:g}, {hi:g}]")
    return Rule(lambda v: lo <= v <= hi, f"in [{lo:g}, {hi:g}]")


def one_of(*choices: Any) -> Rule:
    return Rule(lambda v: v in choices, "one of " + ", ".join(repr(c) for c in choices))


def any_value() -> Rule:
    return Rule(lambda v: True, "any")


def nonempty_list() -> Rule:
    return Rule(lambda v: len(v) > 0, "a non-empty list")


def list_of(count: int, item: Rule) -> Rule:
    return Rule(lambda v: len(v) == count and all(item.ok(x) for x in v),
                f"a list of {count} values, each {item.allowed}")


def reader_formats() -> Rule:
    def ok(v: list[str]) -> bool:
        from .io.registry import FORMAT_SURVEY
        return len(v) > 0 and all(f in FORMAT_SURVEY for f in v)
    return Rule(ok, "a non-empty list of reader format ids (README: File formats)")


COUNT = at_least(1)
FRACTION = between(0.0, 1.0)
WAVELENGTH = between(*COVERED_RANGE)

#: ``section.key`` -> rule. Sections with sub-tables use dotted paths (``synth.lamost_formats.dr1``).
RULES: dict[str, Rule] = {
    "io.max_bytes": COUNT, "io.max_header_cards": at_least(36), "io.max_hdus": COUNT,
    "preprocess.window_start": WAVELENGTH, "preprocess.window_stop": WAVELENGTH,
    "preprocess.n_points": at_least(2), "preprocess.core_start": WAVELENGTH, "preprocess.core_stop": WAVELENGTH,
    "preprocess.min_valid_fraction": between(0.0, 1.0, lo_open=True),
    "preprocess.continuum": one_of("linear", "none"), "preprocess.normalisation": one_of("zscore", "minmax"),
    "ingest.accept_formats": reader_formats(), "ingest.paths_per_task": COUNT, "ingest.batch_files": COUNT, "ingest.rows_per_file": COUNT,
    "ingest.min_rows_per_file": COUNT, "ingest.spectra_writer": one_of("auto", "spark"),
    "ingest.file_suffixes": nonempty_list(),
    "train.arch": one_of("cnn", "mlp"), "train.num_proc": COUNT, "train.epochs": COUNT, "train.batch_size": COUNT,
    "train.learning_rate": above(0.0), "train.warmup_epochs": at_least(0), "train.patience": COUNT,
    "train.min_delta": at_least(0.0), "train.threads": at_least(0), "train.seed": at_least(0),
    "train.files_per_worker": COUNT, "train.cycle_time_ms": above(0.0), "train.threshold_tolerance": FRACTION,
    "train.threshold_min": FRACTION, "train.threshold_max": FRACTION,
    "score.arrow_batch_size": COUNT, "score.tf_threads": at_least(0), "score.rows_per_task": COUNT,
    "report.top": COUNT, "report.stars_only": any_value(), "report.labelling": at_least(0),
    "report.labelling_plots": at_least(0), "report.examples_per_class": at_least(0),
    "report.histogram_sample": COUNT, "report.disagreements_listed": at_least(0), "report.variable_plots": at_least(0),
    "report.match_arcsec": above(0.0), "report.ew_floor": at_least(0.0),
    "pipeline.model": any_value(), "pipeline.explore": any_value(), "pipeline.train_input": any_value(),
    "pipeline.train_labels": any_value(),
    **{f"measure.{k}": WAVELENGTH for k in ("line_start", "line_stop", "blue_start", "blue_stop", "red_start",
                                            "red_stop", "ha_center")},
    "measure.fwhm_halfwidth": above(0.0), "measure.min_line_fraction": between(0.0, 1.0, lo_open=True),
    "measure.min_continuum_pixels": at_least(3), "measure.ivar_fill_pixels": COUNT,
    **{f"measure.{k}": at_least(0.0) for k in ("sys_floor", "k_emission", "k_absorption", "k_dip", "k_ew",
                                               "double_min_sep_fwhm", "filled_max_offset_kms", "nebular_band_fwhm",
                                               "nebular_cont_fwhm", "nebular_snr", "nebular_fwhm_factor",
                                               "line_sys_floor")},
    "mrs.exposures": any_value(), "mrs.resolving_power": above(0.0), "mrs.target_resolving_power": above(0.0),
    "mrs.min_snr": at_least(0.0), "mrs.cosmic_nsigma": above(0.0),
    "warehouse.filesystem": one_of("auto", "hadoop"), "warehouse.retention_hours": at_least(0.0),
    "logging.level": one_of("DEBUG", "INFO", "WARNING", "ERROR"), "logging.progress_seconds": above(0.0),
    "adapt.air_to_vacuum": any_value(), "adapt.blur": any_value(), "adapt.r_source": above(0.0),
    "adapt.r_target": above(0.0), "adapt.reference_wavelength": WAVELENGTH, "adapt.sigma_px": at_least(0.0),
    "adapt.edge_mode": one_of("nearest", "reflect", "mirror"), "adapt.truncate": above(0.0),
    "trainset.accept_formats": reader_formats(), "trainset.file_suffixes": nonempty_list(),
    "trainset.paths_per_task": COUNT, "trainset.drop_unknown": any_value(), "trainset.seed": at_least(0),
    "trainset.fractions": list_of(3, FRACTION), "trainset.coord_decimals": between(0, 10),
    "trainset.max_listed": at_least(0), "trainset.holdout": any_value(),
    "synth.partitions": at_least(0), "synth.block_size": COUNT, "synth.lamost_spectra_per_star": at_least(1.0),
    "synth.ondrejov_spectra_per_star": at_least(1.0), "synth.emission_fraction": FRACTION,
    "synth.double_peak_fraction": FRACTION, "synth.galaxy_fraction": FRACTION, "synth.qso_fraction": FRACTION,
    "synth.dead_fibre_fraction": FRACTION, "synth.gzip_fraction": FRACTION, "synth.gzip_misnamed_fraction": FRACTION,
    "synth.gzip_level": between(0, 9), "synth.mrs_fraction": FRACTION,
    "synth.mrs_dr9_fraction": FRACTION, "synth.ivar_zero_on_emission": FRACTION, "synth.ivar_zero_peak": above(0.0),
    "synth.nebular_plate_fraction": FRACTION, "synth.nebular_strength": above(0.0),
    "synth.lamost_resolution": above(0.0), "synth.ondrejov_resolution": above(0.0),
    "synth.ondrejov_iraf_fraction": FRACTION, "synth.ondrejov_pylon_fraction": FRACTION,
    "synth.ondrejov_class_counts": list_of(4, at_least(0)),
    "synth.lamost_formats.dr1": at_least(0.0), "synth.lamost_formats.dr2": at_least(0.0),
    "synth.lamost_formats.dr3_8": at_least(0.0), "synth.lamost_formats.dr9": at_least(0.0),
    "explore.archive_sample": COUNT, "explore.trainset_sample": at_least(0), "explore.pca_components": at_least(2),
    "explore.tsne_perplexity": above(0.0), "explore.tsne_max_iter": at_least(250), "explore.tsne_threads": COUNT,
    "explore.seed": at_least(0), "explore.point_size": above(0.0),
}


def _leaves(cfg: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in cfg.items():
        if not prefix and (key == "spark" or key.startswith("_")):
            continue
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _cross_checks(cfg: dict[str, Any]) -> Iterator[tuple[str, Any, str]]:
    """Checks that involve several keys: ``(key, value, allowed)`` for each violation."""
    p = cfg["preprocess"]
    if not p["window_start"] < p["core_start"] < p["core_stop"] < p["window_stop"]:
        yield ("preprocess.window_start/core_start/core_stop/window_stop",
               [p["window_start"], p["core_start"], p["core_stop"], p["window_stop"]],
               "window_start < core_start < core_stop < window_stop")
    fr = cfg["trainset"]["fractions"]
    if len(fr) == 3 and abs(sum(fr) - 1.0) > 1e-9:
        yield "trainset.fractions", fr, "three fractions summing to 1"
    t = cfg["train"]
    if t["threshold_min"] > t["threshold_max"]:
        yield "train.threshold_min", t["threshold_min"], f"<= train.threshold_max ({t['threshold_max']})"
    a = cfg["adapt"]
    if a["blur"] and a["sigma_px"] == 0 and a["r_source"] <= a["r_target"]:
        yield "adapt.r_source", a["r_source"], f"> adapt.r_target ({a['r_target']}) to derive a blur kernel"
    m = cfg["mrs"]
    if m["resolving_power"] <= m["target_resolving_power"]:
        yield ("mrs.resolving_power", m["resolving_power"],
               f"> mrs.target_resolving_power ({m['target_resolving_power']}) to derive a blur kernel")
    try:  # the measurement bands' order and reach, as the measurement itself checks them
        from .halpha import HalphaSettings
        HalphaSettings.from_config(cfg["measure"])
    except ValueError as exc:
        yield "measure", "(bands)", str(exc).split(": ", 1)[-1]
    s = cfg["synth"]
    if sum(s["lamost_formats"].values()) <= 0:
        yield "synth.lamost_formats", s["lamost_formats"], "weights with a positive sum"
    if sum(s["ondrejov_class_counts"]) <= 0:
        yield "synth.ondrejov_class_counts", s["ondrejov_class_counts"], "counts with a positive sum"
    if s["galaxy_fraction"] + s["qso_fraction"] > 1:
        yield "synth.galaxy_fraction", s["galaxy_fraction"], "galaxy_fraction + qso_fraction <= 1"


def violations(cfg: dict[str, Any]) -> list[str]:
    """Every broken rule of ``cfg`` as a line ``key = value: must be ALLOWED``."""
    out = []
    for key, value in _leaves(cfg):
        rule = RULES.get(key)
        if rule is None:
            continue
        try:
            good = rule.ok(value)
        except TypeError:
            good = False
        if not good:
            out.append(f"{key} = {value!r}: must be {rule.allowed}")
    if not out:  # cross-checks assume each value is sane on its own
        out.extend(f"{k} = {v!r}: must be {allowed}" for k, v, allowed in _cross_checks(cfg))
    return out


def unchecked_keys(cfg: dict[str, Any]) -> list[str]:
    """Settings without a rule (a test keeps this empty, so a new setting comes with its range)."""
    return [key for key, _ in _leaves(cfg) if key not in RULES]

