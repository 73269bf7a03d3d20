"""Label files, class codes, file stems and star groups: the small tables the trainset job joins.

Label files are human work (13,334 rows for the whole Ondřejov CCD700 archive, a hundred per
active-learning round), so they are read and checked on the driver with pandas and joined to the
(possibly huge) file listing as a broadcast table. A label file that gives a code outside the
conventions, or two different labels to one spectrum, is refused (``ValueError``: bad arguments)
rather than half-used.
"""
from __future__ import annotations

import os
import re
from typing import Any

import numpy as np
import pandas as pd

from .errors import UsageError
from .warehouse import is_local, local_path

#: Label codes of the Ondřejov label file (CONVENTIONS.md) and the class names used everywhere.
CODE_TO_NAME = {0: "emission", 1: "absorption", 2: "unknown", 3: "double_peak"}
NAME_TO_CODE = {v: k for k, v in CODE_TO_NAME.items()}
UNKNOWN = 2
#: Java regex removing what :func:`file_stem` removes, for Spark columns.
STEM_SUFFIX_REGEX = r"(?i)(\.fits?)?(\.gz|\.fz)?$"


def file_stem(path: str) -> str:
    """``/a/b/UD090015.fits.gz`` -> ``ud090015``: the key the label file's ids end with."""
    low = path.rstrip("/").rsplit("/", 1)[-1].lower()
    for suf in (".gz", ".fz"):
        if low.endswith(suf):
            low = low[:-len(suf)]
            break
    for suf in (".fits", ".fit"):
        if low.endswith(suf):
            return low[:-len(suf)]
    return low


def label_stem(label_id: str) -> str:
    """``ivo://asu.cas.cz/stel/ccd700/ud090015`` -> ``ud090015``."""
    return str(label_id).strip().rstrip("/").rsplit("/", 1)[-1].lower()


_SIMBAD_PREFIX = re.compile(r"^\s*(V\*|\*\*|\*)\s+")


def group_key(obj: Any, ra: Any, dec: Any, stem: str, decimals: int = 2) -> str:
    """The star a spectrum belongs to, so that no star is in two splits.

    The OBJECT name uppercased, without SIMBAD's type prefix (``V*``, ``*``, ``**``) and without
    any whitespace, so that the spellings observers use for one star agree (``"hd  31894 "``,
    ``"HD31894"`` and ``"HD 31894"`` -> ``"HD31894"``; ``"V* BT CMi"`` -> ``"BTCMI"``); without a
    name, the coordinates rounded to ``decimals`` degrees; else the file stem (a group of its own).
    """
    name = _SIMBAD_PREFIX.sub("", str(obj).upper()) if obj is not None else ""
    name = "".join(name.split())
    if name:
        return name
    try:
        ra, dec = float(ra), float(dec)
    except (TypeError, ValueError):
        ra = dec = float("nan")
    if np.isfinite(ra) and np.isfinite(dec):
        return f"RADEC {ra:.{decimals}f} {dec:+.{decimals}f}"
    return f"FILE {stem}"


def spark_uri(p: str) -> str:
    """A path Spark can read: local paths as absolute ``file://`` URIs."""
    return f"file://{os.path.abspath(local_path(p))}" if is_local(p) else p


def read_csv_small(spark, path: str, what: str, columns: tuple[str, ...]) -> pd.DataFrame:
    """A small CSV (all strings) on the driver: pandas for local files, Spark for Hadoop URIs."""
    if is_local(path):
        p = local_path(path)
        if not os.path.isfile(p):
            raise UsageError(f"{what} {path}: no such file")
        try:
            df = pd.read_csv(p, dtype=str, keep_default_na=False, skipinitialspace=True)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise UsageError(f"{what} {path}: not a CSV file: {exc}") from None
    else:
        df = spark.read.csv(path, header=True).toPandas().fillna("")
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise UsageError(f"{what} {path}: no column {missing} in the header {list(df.columns)}")
    return df[list(columns)].apply(lambda s: s.astype(str).str.strip())


def read_labels(spark, path: str) -> pd.DataFrame:
    """The Ondřejov label file (``id,label`` with codes 0-3) as ``(stem, id, label)``, one row per stem."""
    df = read_csv_small(spark, path, "--labels", ("id", "label"))
    code = pd.to_numeric(df["label"], errors="coerce")
    bad = (df["id"] == "") | ~code.isin(list(CODE_TO_NAME))
    if bad.any():
        raise UsageError(f"--labels {path}: {int(bad.sum())} rows without an id or with a label not in "
                         f"{sorted(CODE_TO_NAME)}, e.g. {df[bad].head(5).values.tolist()}")
    out = pd.DataFrame({"stem": df["id"].map(label_stem), "id": df["id"], "label": code.astype("int32")})
    n = out.groupby("stem")["label"].nunique()
    if (n > 1).any():
        raise UsageError(f"--labels {path}: {int((n > 1).sum())} spectra with conflicting labels, "
                         f"e.g. {n[n > 1].index[:5].tolist()}")
    return out.sort_values(["stem", "id"]).drop_duplicates("stem").reset_index(drop=True)


def read_extra_labels(spark, path: str) -> pd.DataFrame:
    """``source_path,label`` (class names, any case) as ``(source_path, label code)``, one row per path."""
    df = read_csv_small(spark, path, "--extra-labels", ("source_path", "label"))
    name = df["label"].str.lower()
    bad = (df["source_path"] == "") | ~name.isin(list(NAME_TO_CODE))
    if bad.any():
        raise UsageError(f"--extra-labels {path}: {int(bad.sum())} rows with no path or a label not in "
                         f"{list(NAME_TO_CODE)}, e.g. {df[bad].head(5).values.tolist()}")
    out = pd.DataFrame({"source_path": df["source_path"], "label": name.map(NAME_TO_CODE).astype("int32")})
    n = out.groupby("source_path")["label"].nunique()
    if (n > 1).any():
        raise UsageError(f"--extra-labels {path}: conflicting labels for {n[n > 1].index[:5].tolist()}")
    return out.drop_duplicates("source_path").reset_index(drop=True)
