"""Layered configuration: conf/defaults.toml < conf/<env>.toml < --config FILE < --set KEY=VALUE.

Every key must be declared in ``defaults.toml``; a later layer that names an unknown key or gives
a value of another type is refused with a clear message (a typo must not silently do nothing),
and so is a value outside its allowed range (:mod:`spectraldl.config_check`).
Values from ``--set`` are parsed as TOML scalars (``140``, ``6519.0``, ``true``, ``"x"``) and fall
back to plain strings. The ``[spark]`` section is free-form: Spark settings, passed to the session.
"""
from __future__ import annotations

import copy
import importlib.resources
import os
import tomllib
from pathlib import Path
from typing import Any, Iterable

from .config_check import violations

FREE_SECTIONS = ("spark",)
#: ``[spark]`` settings the driver JVM reads as it starts: given to a session builder afterwards,
#: they are silently ignored, so they go to the launcher (``get_spark`` when it starts the JVM
#: itself, ``spark-submit.sh`` as ``--conf`` otherwise).
LAUNCH_KEYS = ("spark.driver.memory", "spark.driver.extraJavaOptions", "spark.driver.extraClassPath",
               "spark.driver.extraLibraryPath", "spark.jars", "spark.jars.packages")


class ConfigError(ValueError):
    """A configuration layer is invalid; the message names the layer and the key."""


def conf_dir():
    """Where the layered TOML files live: ``$SPECTRALDL_CONF_DIR``; in a checkout (the package
    imported from ``lib/spectraldl``) the repository's ``conf/``; else the copy the build put inside
    the package (``spectraldl/_conf``: an installed wheel, the ``--py-files`` zip on a cluster).

    Returns a ``pathlib.Path`` or an ``importlib.resources`` Traversable (inside a zip).
    """
    env = os.environ.get("SPECTRALDL_CONF_DIR")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    if here.parent.name == "lib":  # never a conf/ that merely happens to sit near site-packages
        cand = here.parent.parent / "conf"
        if (cand / "defaults.toml").is_file():
            return cand
    packaged = importlib.resources.files("spectraldl") / "_conf"
    if packaged.joinpath("defaults.toml").is_file():
        return packaged
    raise ConfigError("cannot find conf/defaults.toml (set SPECTRALDL_CONF_DIR)")


def _load_toml(path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def _merge(base: dict[str, Any], layer: dict[str, Any], origin: str, prefix: str = "") -> None:
    for key, value in layer.items():
        dotted = f"{prefix}{key}"
        if prefix == "" and key in FREE_SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"{origin}: [{key}] must be a table")
            base.setdefault(key, {}).update({k: str(v) for k, v in value.items()})
            continue
        if key not in base:
            raise ConfigError(f"{origin}: unknown setting {dotted!r}")
        old = base[key]
        if isinstance(old, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{origin}: {dotted!r} is a section, not a value")
            _merge(old, value, origin, dotted + ".")
            continue
        if isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not type(old):
            raise ConfigError(f"{origin}: {dotted!r} must be {type(old).__name__}, got {value!r}")
        base[key] = value


def parse_override(item: str) -> dict[str, Any]:
    """``"preprocess.n_points=140"`` -> ``{"preprocess": {"n_points": 140}}``."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
    key, raw = item.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"--set {item!r}: bad key")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    if parts[0] in FREE_SECTIONS:  # spark.sql.x=y: the rest of the key is one Spark setting
        return {parts[0]: {".".join(parts[1:]) if parts[0] != "spark" else key.strip(): str(value)}}
    out: dict[str, Any] = {}
    node = out
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return out


def load_config(env: str = "local", config_file: str | os.PathLike | None = None,
                overrides: Iterable[str] = ()) -> dict[str, Any]:
    """Build the configuration of one run.

    Parameters
    ----------
    env : str
        ``local`` or ``cluster`` (selects ``conf/<env>.toml``; a missing file is an error).
    config_file : path, optional
        A user TOML file layered on top.
    overrides : iterable of str
        ``KEY=VALUE`` items (dotted keys), applied last.
    """
    d = conf_dir()
    cfg = _load_toml(d.joinpath("defaults.toml"))
    cfg.setdefault("spark", {})
    cfg["spark"] = {k: str(v) for k, v in cfg["spark"].items()}
    env_file = d.joinpath(f"{env}.toml")
    if not env_file.is_file():
        raise ConfigError(f"unknown environment {env!r}: no {env_file}")
    _merge(cfg, _load_toml(env_file), str(env_file))
    if config_file:
        _merge(cfg, _load_toml(Path(config_file)), str(config_file))
    for item in overrides:
        _merge(cfg, parse_override(item), f"--set {item}")
    problems = violations(cfg)
    if problems:
        raise ConfigError(problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
    cfg["_env"] = env
    return copy.deepcopy(cfg)


def launch_settings(config: dict[str, Any]) -> dict[str, str]:
    """The ``[spark]`` settings of ``config`` that must be given when the driver JVM starts."""
    return {k: v for k, v in config.get("spark", {}).items() if k in LAUNCH_KEYS}


def print_launch_conf(argv: list[str]) -> None:
    """``KEY=VALUE`` lines of :func:`launch_settings` for ``[--env E] [--config F] [--set K=V ...]``
    (``spark-submit.sh`` turns them into ``--conf`` options). A bad configuration is one line on
    stderr and exit status 2, before any JVM starts."""
    import argparse
    ap = argparse.ArgumentParser(prog="launch-conf")
    ap.add_argument("--env", default="local")
    ap.add_argument("--config")
    ap.add_argument("--set", action="append", default=[])
    args, _ = ap.parse_known_args(argv)
    try:
        cfg = load_config(args.env, args.config, args.set)
    except ConfigError as exc:
        import sys
        print(f"bad configuration: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    for key, value in launch_settings(cfg).items():
        print(f"{key}={value}")
