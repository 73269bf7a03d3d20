"""Finding input files (a directory, a glob or a list file) without holding them on the driver.

``--input`` is, as CONVENTIONS.md says, a directory searched recursively, a glob, or a text file
with one path per line, local or any Hadoop-filesystem URI. The result is always a Spark
DataFrame ``(source_path, file_size, file_mtime)``:

* a list file is read by Spark (``spark.read.text``) and the files are stat'ed in the tasks;
* a local directory is expanded breadth-first on the driver only down to a few dozen
  sub-directories, which tasks then walk in parallel (an archive of millions of files is never
  walked on the driver one file at a time, nor held in its memory);
* a glob or a remote directory is listed by Spark's file index (``binaryFile`` with only the
  path, length and modification time selected: the contents are not read).
"""
from __future__ import annotations

import logging
import os
from typing import Iterator

import pandas as pd

from .errors import UsageError
from .io.errors import SpectrumError
from .io.fits import Limits
from .io.reader import read_bytes_from_path
from .lifecycle import task_count
from .warehouse import is_local, local_path
from .worker import prepare_worker

log = logging.getLogger(__name__)

LISTING_SCHEMA = "source_path string, file_size long, file_mtime timestamp"
GLOB_CHARS = set("*?[{")


def matches(name: str, suffixes: tuple[str, ...]) -> bool:
    n = name.lower()
    return any(n.endswith(s) for s in suffixes)


def _remote_stat(path: str) -> tuple[int | None, pd.Timestamp | None]:
    try:
        from pyarrow import fs as pafs
        fs, p = pafs.FileSystem.from_uri(path.replace("s3a://", "s3://", 1))
        info = fs.get_file_info(p)
        mtime = pd.Timestamp(info.mtime_ns, unit="ns", tz="UTC") if info.mtime_ns is not None else None
        return info.size, mtime
    except Exception:
        return None, None


def read_source_bytes(path: str, limits: Limits) -> bytes:
    """The bytes of a local or remote file, within ``limits`` (SpectrumError ``unreadable``/``too_large``)."""
    if is_local(path):
        return read_bytes_from_path(local_path(path), limits)
    try:
        from pyarrow import fs as pafs
        fs, p = pafs.FileSystem.from_uri(path.replace("s3a://", "s3://", 1))
        with fs.open_input_stream(p) as fh:
            data = fh.read(limits.max_bytes + 1)
    except Exception as exc:
        raise SpectrumError("unreadable", path, f"{type(exc).__name__}: {exc}") from None
    if len(data) > limits.max_bytes:
        raise SpectrumError("too_large", path, f"over {limits.max_bytes} bytes")
    return data


# -- local directory walk ---------------------------------------------------------------------------
def plan_walk(root: str, suffixes: tuple[str, ...], target_dirs: int = 64,
              max_entries: int = 2000) -> tuple[list[str], list[str]]:
    """Expand ``root`` breadth-first on the driver until there are ``target_dirs`` directories.

    Returns ``(files, dirs)``: the matching files met on the way (only in the few top levels)
    and the directories left for the tasks to walk. A directory with more than ``max_entries``
    entries is not expanded here: a task lists it.
    """
    files: list[str] = []
    pending = [root]
    out_dirs: list[str] = []
    while pending and len(pending) + len(out_dirs) < target_dirs:
        d = pending.pop(0)
        try:
            with os.scandir(d) as it:
                entries = []
                for e in it:
                    entries.append(e)
                    if len(entries) > max_entries:
                        break
        except OSError:
            out_dirs.append(d)  # let the task report it
            continue
        if len(entries) > max_entries:
            out_dirs.append(d)
            continue
        for e in sorted(entries, key=lambda e: e.name):
            if e.is_dir(follow_symlinks=False) and not matches(e.name, suffixes):
                pending.append(e.path)
            elif matches(e.name, suffixes):
                files.append(e.path)  # files, links (even broken) and dirs named like files
    return files, sorted(out_dirs + pending)


def walk_dir(d: str, suffixes: tuple[str, ...]) -> Iterator[str]:
    """Every entry under ``d`` whose name matches ``suffixes`` (a directory named like a file
    is yielded, not entered, so that it is rejected rather than lost)."""
    for top, dirs, names in os.walk(d, followlinks=False):
        keep = []
        for name in sorted(dirs):
            (yield os.path.join(top, name)) if matches(name, suffixes) else keep.append(name)
        dirs[:] = keep
        for name in sorted(names):
            if matches(name, suffixes):
                yield os.path.join(top, name)


def _listing_rows(paths: Iterator[str]) -> Iterator[pd.DataFrame]:
    """``(source_path, file_size, file_mtime)`` frames of up to 10,000 rows for ``paths``."""
    batch: list[str] = []
    for p in paths:
        batch.append(p)
        if len(batch) >= 10000:
            yield _stat_frame(batch)
            batch = []
    if batch:
        yield _stat_frame(batch)


def _stat_frame(paths: list[str]) -> pd.DataFrame:
    """The listing rows of ``paths``: sizes and mtimes converted once per batch, not per file."""
    stats = [_stat_ns(p) for p in paths]
    size = pd.array([s for s, _ in stats], dtype="Int64")
    mtime = pd.to_datetime(pd.array([t for _, t in stats], dtype="Int64"), unit="ns", utc=True)
    return pd.DataFrame({"source_path": paths, "file_size": size, "file_mtime": mtime})


def _stat_ns(path: str) -> tuple[int | None, int | None]:
    """(size, mtime in ns) of a local or remote path; (None, None) when it cannot be stat'ed."""
    if not is_local(path):
        size, mtime = _remote_stat(path)
        return size, None if mtime is None else mtime.value
    path = local_path(path)
    try:
        st = os.stat(path)
    except OSError:
        try:
            st = os.lstat(path)  # a broken link still has a size and a time of its own
        except OSError:
            return None, None
    return st.st_size, st.st_mtime_ns


def _walk_items(items: Iterator[pd.DataFrame], suffixes: tuple[str, ...]) -> Iterator[pd.DataFrame]:
    """``mapInPandas`` body: ``(kind, path)`` rows in (``f`` a file, ``d`` a directory to walk),
    listing rows out. Walking and stat'ing in the same task keeps the listing one Python stage."""
    prepare_worker()
    for pdf in items:
        def paths():
            for kind, path in zip(pdf["kind"], pdf["path"]):
                yield from ([path] if kind == "f" else walk_dir(path, suffixes))
        yield from _listing_rows(paths())


def list_sources(spark, src: str, suffixes: tuple[str, ...]):
    """The input files of ``src`` as a DataFrame ``(source_path, file_size, file_mtime)``, each
    path once (a walk or a file index never repeats one; a list file is deduplicated)."""
    suffixes = tuple(s.lower() for s in suffixes)
    sc = spark.sparkContext
    if is_local(src) and not any(c in GLOB_CHARS for c in src):
        p = local_path(src)
        if os.path.isdir(p):
            files, dirs = plan_walk(p, suffixes, target_dirs=max(8, 4 * sc.defaultParallelism))
            log.info("listing %s: %d top-level files, %d directories walked by tasks", src, len(files), len(dirs))
            items = pd.DataFrame([("f", f) for f in files] + [("d", d) for d in dirs], columns=["kind", "path"])
            if items.empty:
                return spark.createDataFrame([], LISTING_SCHEMA)
            # at most two waves; the round-robin repartition spreads the directories evenly
            nparts = task_count(len(items), 1, sc.defaultParallelism, max_waves=2)
            df = spark.createDataFrame(items, "kind string, path string").repartition(nparts)
            return df.mapInPandas(lambda it: _walk_items(it, suffixes), LISTING_SCHEMA)
        if os.path.isfile(p) and not _looks_like_fits(p):
            return _from_list_file(spark, src)
        if not os.path.lexists(p):
            raise UsageError(f"--input {src}: no such file or directory")
        return _stat_paths(spark.createDataFrame([(src,)], "source_path string"))
    if not any(c in GLOB_CHARS for c in src) and src.lower().endswith((".txt", ".lst", ".list", ".csv")):
        return _from_list_file(spark, src)
    # a glob, or a remote directory: Spark's file index lists it (contents are not read)
    df = (spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(src)
          .selectExpr("path as source_path", "length as file_size", "modificationTime as file_mtime"))
    from pyspark.sql import functions as F
    cond = None
    for s in suffixes:
        c = F.lower(F.col("source_path")).endswith(s)
        cond = c if cond is None else cond | c
    df = df.filter(cond)
    if is_local(src):  # give local files back as plain paths, as the user wrote them
        df = df.withColumn("source_path", F.regexp_replace("source_path", "^file:", ""))
    return df


def _looks_like_fits(p: str) -> bool:
    with open(p, "rb") as fh:
        head = fh.read(9)
    return head.startswith(b"SIMPLE") or head.startswith(b"\x1f\x8b")


def _from_list_file(spark, src: str):
    uri = f"file://{os.path.abspath(local_path(src))}" if is_local(src) else src
    from pyspark.sql import functions as F
    lines = spark.read.text(uri).select(F.trim("value").alias("source_path"))
    lines = lines.filter((F.col("source_path") != "") & ~F.col("source_path").startswith("#"))
    return _stat_paths(lines.dropDuplicates(["source_path"]))  # a path listed twice is one file


def _stat_paths(df):
    def stat_batches(batches):
        prepare_worker()
        for pdf in batches:
            yield from _listing_rows(iter(pdf["source_path"].tolist()))

    return df.mapInPandas(stat_batches, LISTING_SCHEMA)
