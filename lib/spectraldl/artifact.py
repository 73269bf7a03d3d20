"""A model directory: ``model.keras`` + ``model.json`` (+ metrics and plots). No pickle anywhere.

``model.json`` (CONVENTIONS.md): ``version``, ``arch``, ``classes``, ``grid`` (start, stop, n),
``preprocess_id``, ``metrics``, ``thresholds``, ``trainset_fingerprint``, ``created``,
``versions`` (python, tensorflow, horovod, spectraldl), ``git_commit``.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from . import __version__
from .errors import JobError
from .models import CLASSES

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "models" / "default"
MODEL_FILE = "model.keras"
META_FILE = "model.json"


class ModelError(JobError):
    """A model directory is missing, incomplete or incompatible."""


def software_versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "spectraldl": __version__}
    for mod in ("tensorflow", "horovod", "pyspark", "numpy"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:
            out[mod] = None
    return out


def git_commit() -> str | None:
    root = Path(__file__).resolve().parent.parent.parent
    try:
        return subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip() or None
    except Exception:
        return None


def write_meta(model_dir: str | os.PathLike, meta: dict[str, Any]) -> None:
    required = {"version", "arch", "classes", "grid", "preprocess_id"}
    missing = required - set(meta)
    if missing:
        raise ModelError(f"model.json lacks {sorted(missing)}")
    p = Path(model_dir) / META_FILE
    tmp = p.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=1, sort_keys=True, default=float))
    os.replace(tmp, p)


def read_meta(model_dir: str | os.PathLike) -> dict[str, Any]:
    p = Path(model_dir) / META_FILE
    try:
        meta = json.loads(p.read_text())
    except FileNotFoundError:
        raise ModelError(f"{model_dir}: no {META_FILE} (not a finished model directory)") from None
    except json.JSONDecodeError as exc:
        raise ModelError(f"{p}: invalid JSON: {exc}") from None
    if tuple(meta.get("classes", ())) != CLASSES:
        raise ModelError(f"{p}: classes {meta.get('classes')} != {list(CLASSES)}")
    return meta


def load_model(model_dir: str | os.PathLike):
    """``(keras_model, meta)`` from a model directory (Keras native format, safe mode: no code)."""
    import tensorflow as tf
    meta = read_meta(model_dir)
    path = Path(model_dir) / MODEL_FILE
    if not path.is_file():
        raise ModelError(f"{model_dir}: no {MODEL_FILE}")
    model = tf.keras.models.load_model(path, compile=False, safe_mode=True)
    return model, meta


def default_model_dir() -> Path:
    """The embedded default model as a directory on disk.

    Inside a package zip shipped with ``--py-files`` (cluster mode) the files are not on the file
    system: they are copied once into ``$XDG_CACHE_HOME/spectraldl/models/default-<hash>``.
    """
    if (DEFAULT_MODEL_DIR / META_FILE).is_file():
        return DEFAULT_MODEL_DIR
    import hashlib
    import importlib.resources
    src = importlib.resources.files("spectraldl") / "models" / "default"
    meta = src.joinpath(META_FILE).read_bytes()
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "spectraldl" / "models"
    dst = cache / f"default-{hashlib.sha256(meta).hexdigest()[:12]}"
    if not (dst / META_FILE).is_file():
        tmp = cache / f".tmp-{os.getpid()}"
        tmp.mkdir(parents=True, exist_ok=True)
        for entry in src.iterdir():
            if entry.is_file():
                (tmp / entry.name).write_bytes(entry.read_bytes())
        try:
            os.replace(tmp, dst)
        except OSError:  # another process got there first
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
    return dst


def resolve_model(spec: str, warehouse_models: str | None) -> Path:
    """``default`` -> the embedded model; ``latest`` -> the newest finished ``W/models/<version>``;
    anything else -> a directory."""
    if spec == "default":
        return default_model_dir()
    if spec == "latest":
        if not warehouse_models or not os.path.isdir(warehouse_models):
            raise ModelError(f"--model latest: no models under {warehouse_models}")
        done = sorted(d for d in os.listdir(warehouse_models)
                      if (Path(warehouse_models) / d / META_FILE).is_file())
        if not done:
            raise ModelError(f"--model latest: no finished model under {warehouse_models}")
        return Path(warehouse_models) / done[-1]
    p = Path(spec)
    if not p.is_dir():
        raise ModelError(f"--model {spec}: not a directory")
    return p
