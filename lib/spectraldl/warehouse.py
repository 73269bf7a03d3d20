"""The warehouse: table paths, run ids and summaries, the commit manifest, the lock.

Layout (CONVENTIONS.md)::

    W/spectra/run-<id>/part-*.parquet     one directory per commit (never modified in place)
    W/rejects/run-<id>/...
    W/runs/<job>-<run_id>.json           run summaries
    W/_state/manifest-<seq>.json         which directories make up each table (the highest seq wins)
    W/_state/lock                        one writer at a time
    W/_staging/<run_id>/                 written aside by a running job; published by a manifest

A job writes its output beside the tables, moves the new directories in, and only then writes
the next manifest (a new file under a fresh name, so the switch is one atomic rename on a local
disk and on HDFS alike). Readers take the directories of the manifest they started from, so a job
killed at any point leaves no partial rows visible. Cleanup (:meth:`Warehouse.garbage_collect`,
run by writers under the lock) deletes directories of interrupted runs at once, and superseded
directories once no manifest that lists them has been the newest for ``retention_hours``, so a
reader started before a commit finishes on the files it began with. The job lifecycle around
all this is :mod:`spectraldl.lifecycle`.

Local paths are handled with ``os``; any other URI (``hdfs://``, ``s3a://``) through the JVM's
Hadoop FileSystem of the Spark session, so whatever the cluster can read works.
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import secrets
import shutil
import socket
from dataclasses import dataclass
from typing import Any, Iterable

from .errors import JobError

log = logging.getLogger(__name__)

TABLES = ("spectra", "rejects", "trainset", "scores")
MANIFEST_PREFIX = "manifest-"
KEEP_MANIFESTS = 5

#: Key columns added to tables after their first rows were written, and the value older rows
#: read as: ``exposure`` is empty for one-spectrum files (CONVENTIONS.md), so ``(source_path,
#: exposure)`` never holds a null and joins on it match.
KEY_DEFAULTS = {"exposure": ""}


def new_run_id(now: _dt.datetime | None = None) -> str:
    """``YYYYMMDDTHHMMSSZ`` (UTC) plus 6 random hex characters, e.g. ``20261125T173000Z3fa9c1``."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return now.strftime("%Y%m%dT%H%M%SZ") + secrets.token_hex(3)


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def is_local(uri: str) -> bool:
    """True for plain paths and ``file:`` URIs."""
    return "://" not in uri or uri.startswith("file:")


def local_path(uri: str) -> str:
    """``file:///a/b`` or ``file:/a/b`` -> ``/a/b``; plain paths unchanged."""
    if uri.startswith("file://"):
        return uri[len("file://"):]
    if uri.startswith("file:"):
        return uri[len("file:"):]
    return uri


# -- file systems --------------------------------------------------------------------------------
class LocalFS:
    """Warehouse operations on a local disk."""

    def exists(self, p: str) -> bool:
        return os.path.lexists(p)

    def mkdirs(self, p: str) -> None:
        os.makedirs(p, exist_ok=True)

    def delete(self, p: str) -> None:
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p, ignore_errors=True)
        elif os.path.lexists(p):
            os.remove(p)

    def rename(self, src: str, dst: str) -> None:
        if os.path.lexists(dst):
            raise FileExistsError(dst)
        os.rename(src, dst)

    def listdir(self, p: str) -> list[str]:
        try:
            return sorted(os.listdir(p))
        except FileNotFoundError:
            return []

    def read_text(self, p: str) -> str:
        with open(p, encoding="utf-8") as fh:
            return fh.read()

    def write_new(self, p: str, text: str) -> None:
        """Write ``p``, which must not exist, atomically (write aside, then rename)."""
        tmp = f"{p}.tmp-{secrets.token_hex(4)}"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, p)  # fails if p exists: no silent overwrite
        finally:
            os.remove(tmp)

    def create_exclusive(self, p: str, text: str) -> bool:
        try:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        return True


class HadoopFS:
    """The same operations through the JVM's Hadoop FileSystem (hdfs://, s3a://, file:...)."""

    def __init__(self, spark) -> None:
        self._jvm = spark.sparkContext._jvm
        self._conf = spark.sparkContext._jsc.hadoopConfiguration()

    def _fs(self, p: str):
        path = self._jvm.org.apache.hadoop.fs.Path(p)
        return path.getFileSystem(self._conf), path

    def exists(self, p: str) -> bool:
        fs, path = self._fs(p)
        return bool(fs.exists(path))

    def mkdirs(self, p: str) -> None:
        fs, path = self._fs(p)
        fs.mkdirs(path)

    def delete(self, p: str) -> None:
        fs, path = self._fs(p)
        fs.delete(path, True)

    def rename(self, src: str, dst: str) -> None:
        fs, s = self._fs(src)
        _, d = self._fs(dst)
        if fs.exists(d):
            raise FileExistsError(dst)
        if not fs.rename(s, d):
            raise OSError(f"rename {src} -> {dst} failed")

    def listdir(self, p: str) -> list[str]:
        fs, path = self._fs(p)
        if not fs.exists(path):
            return []
        return sorted(str(st.getPath().getName()) for st in fs.listStatus(path))

    def read_text(self, p: str) -> str:
        fs, path = self._fs(p)
        stream = fs.open(path)
        try:
            scanner = self._jvm.java.util.Scanner(stream, "UTF-8").useDelimiter("\\A")
            return scanner.next() if scanner.hasNext() else ""
        finally:
            stream.close()

    def _write(self, path, fs, text: str, overwrite: bool) -> None:
        out = fs.create(path, overwrite)
        try:
            out.write(bytearray(text.encode("utf-8")))
        finally:
            out.close()

    def write_new(self, p: str, text: str) -> None:
        fs, path = self._fs(p)
        tmp = self._jvm.org.apache.hadoop.fs.Path(f"{p}.tmp-{secrets.token_hex(4)}")
        self._write(tmp, fs, text, False)
        if fs.exists(path) or not fs.rename(tmp, path):
            fs.delete(tmp, False)
            raise FileExistsError(p)

    def create_exclusive(self, p: str, text: str) -> bool:
        fs, path = self._fs(p)
        try:
            self._write(path, fs, text, False)
        except Exception:  # FileAlreadyExistsException from the JVM
            return False
        return True


# -- the warehouse ------------------------------------------------------------------------------
class LockedError(JobError):
    """Another run holds the warehouse lock."""


@dataclass
class Warehouse:
    """A warehouse root and its file system.

    Parameters
    ----------
    root : str
        Local path or Hadoop URI.
    spark : SparkSession, optional
        Needed for non-local roots (Hadoop FileSystem through the JVM), and to force the Hadoop
        code path on local roots with ``force_hadoop`` (tests).
    """

    root: str
    spark: Any = None
    force_hadoop: bool = False

    def __post_init__(self) -> None:
        self.root = self.root.rstrip("/") or "/"
        if is_local(self.root) and not self.force_hadoop:
            self.root = os.path.abspath(local_path(self.root))
            self.fs: LocalFS | HadoopFS = LocalFS()
        else:
            if self.spark is None:
                raise ValueError(f"a SparkSession is needed for warehouse {self.root}")
            self.fs = HadoopFS(self.spark)

    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def uri(self, *parts: str) -> str:
        """A path Spark can read (local paths as ``file://`` URIs)."""
        p = self.path(*parts)
        return f"file://{p}" if p.startswith("/") else p

    # -- manifest --------------------------------------------------------------------------
    def _manifests(self) -> list[tuple[int, str]]:
        out = []
        for name in self.fs.listdir(self.path("_state")):
            if name.startswith(MANIFEST_PREFIX) and name.endswith(".json"):
                try:
                    out.append((int(name[len(MANIFEST_PREFIX):-5]), name))
                except ValueError:
                    continue
        return sorted(out)

    def manifest(self) -> dict[str, Any]:
        """The newest committed manifest: ``{"seq": n, "tables": {table: [dir, ...]}, ...}``."""
        ms = self._manifests()
        if not ms:
            return {"seq": 0, "tables": {}, "runs": []}
        return json.loads(self.fs.read_text(self.path("_state", ms[-1][1])))

    def table_dirs(self, table: str, manifest: dict[str, Any] | None = None) -> list[str]:
        """Directory names (under ``W/<table>/``) that make up ``table`` in ``manifest`` (default:
        the newest)."""
        return list((manifest or self.manifest())["tables"].get(table, []))

    def commit(self, tables: dict[str, list[str]], run: dict[str, Any],
               preprocess: dict[str, dict[str, Any]] | None = None) -> int:
        """Publish a new table state in one atomic step; returns the new sequence number.

        ``tables`` maps table names to their complete list of directories (tables not named
        keep their current directories). The directories must already be in place.
        ``preprocess`` records the settings of the ``preprocess_id`` values the new rows carry
        (``{preprocess_id: settings}``), so readers take a vector's grid from what made it.
        """
        m = self.manifest()
        new = {"seq": m["seq"] + 1, "tables": {**m["tables"], **tables},
               "runs": (m.get("runs", []) + [run])[-200:], "committed": utc_now(),
               "preprocess": {**m.get("preprocess", {}), **(preprocess or {})}}
        self.fs.mkdirs(self.path("_state"))
        self.fs.write_new(self.path("_state", f"{MANIFEST_PREFIX}{new['seq']:09d}.json"),
                          json.dumps(new, indent=1, sort_keys=True))
        return new["seq"]

    def _retained_manifests(self, retention_hours: float) -> tuple[list[dict[str, Any]], list[str]]:
        """``(manifests to honour, manifest files to delete)``.

        A manifest is honoured while it is the newest or was superseded (its successor committed)
        less than ``retention_hours`` ago: a reader may have pinned it until then. Files of the
        newest :data:`KEEP_MANIFESTS` manifests are kept as history either way.
        """
        names = [name for _, name in self._manifests()]
        docs = [json.loads(self.fs.read_text(self.path("_state", n))) for n in names]
        cutoff = _dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(hours=retention_hours)
        honoured, drop = [], []
        for i, (name, doc) in enumerate(zip(names, docs)):
            superseded = _parse_time(docs[i + 1].get("committed")) if i + 1 < len(docs) else None
            live = superseded is None or superseded > cutoff
            if live:
                honoured.append(doc)
            if not live and i < len(names) - KEEP_MANIFESTS:
                drop.append(name)
        return honoured, drop

    def garbage_collect(self, retention_hours: float = 0.0) -> list[str]:
        """Delete table directories that no retained manifest lists, and stale staging (call
        under the lock). A directory that a manifest superseded less than ``retention_hours``
        ago still lists is kept, so a reader that pinned that manifest finishes on its files."""
        removed = []
        honoured, drop = self._retained_manifests(retention_hours)
        for table in TABLES:
            keep = {d for m in honoured for d in m["tables"].get(table, [])}
            for name in self.fs.listdir(self.path(table)):
                if name not in keep and not name.startswith("."):
                    self.fs.delete(self.path(table, name))
                    removed.append(f"{table}/{name}")
        for name in self.fs.listdir(self.path("_staging")):
            self.fs.delete(self.path("_staging", name))
            removed.append(f"_staging/{name}")
        for name in drop:
            self.fs.delete(self.path("_state", name))
        if removed:
            log.info("removed %d directories no retained manifest lists (superseded over %g h ago, or "
                     "left by interrupted runs)", len(removed), retention_hours)
        return removed

    def read_table(self, spark, table: str, schema=None, manifest: dict[str, Any] | None = None):
        """The rows of ``table`` in ``manifest`` (default: the newest) as a DataFrame.

        With ``schema`` (a DDL string) an empty table is an empty DataFrame of that schema, and
        the files are read with it: columns that directories written before a column was added
        lack read as null, whichever file Spark would have taken the schema from, except the key
        columns of :data:`KEY_DEFAULTS`, which read as their default.
        """
        dirs = self.table_dirs(table, manifest)
        if not dirs:
            if schema is None:
                raise FileNotFoundError(f"table {table} is empty in {self.root}")
            # limit(0): an empty relation the optimizer can see, so a join with it is planned away
            return spark.createDataFrame([], schema).limit(0)
        reader = spark.read if schema is None else spark.read.schema(schema)
        df = reader.parquet(*[self.uri(table, d) for d in dirs])
        keys = [c for c in KEY_DEFAULTS if c in df.columns]  # rows written before a key column existed
        if keys:
            from pyspark.sql import functions as F
            df = df.withColumns({c: F.coalesce(F.col(c), F.lit(KEY_DEFAULTS[c])) for c in keys})
        return df

    # -- runs ------------------------------------------------------------------------------
    def write_summary(self, summary: dict[str, Any]) -> str:
        self.fs.mkdirs(self.path("runs"))
        p = self.path("runs", f"{summary['job']}-{summary['run_id']}.json")
        self.fs.write_new(p, json.dumps(summary, indent=1, sort_keys=True, default=str))
        return p

    # -- lock ------------------------------------------------------------------------------
    def acquire_lock(self, run_id: str, job: str, break_lock: bool = False) -> None:
        """Take ``W/_state/lock`` or raise :class:`LockedError` naming the holder."""
        self.fs.mkdirs(self.path("_state"))
        lock = self.path("_state", "lock")
        info = {"run_id": run_id, "job": job, "host": socket.gethostname(), "pid": os.getpid(),
                "since": utc_now()}
        if self.fs.create_exclusive(lock, json.dumps(info)):
            return
        holder = self._lock_holder()
        if break_lock:
            self._break(holder)
            if self.fs.create_exclusive(lock, json.dumps(info)):
                return
        raise self._locked_error(holder)

    def check_unlocked(self, break_lock: bool = False) -> None:
        """Raise :class:`LockedError` if another run holds the lock (with ``break_lock``: remove
        it instead). For jobs that read first and take the lock only to publish (train)."""
        holder = self._lock_holder()
        if holder is None:
            return
        if not break_lock:
            raise self._locked_error(holder)
        self._break(holder)

    def _lock_holder(self) -> dict[str, Any] | None:
        lock = self.path("_state", "lock")
        if not self.fs.exists(lock):
            return None
        try:
            return json.loads(self.fs.read_text(lock))
        except Exception:  # noqa: BLE001 - a lock file being written, or damaged: still a lock
            return {"run_id": "?", "job": "?", "host": "?", "pid": "?", "since": "?"}

    def _break(self, holder: dict[str, Any] | None) -> None:
        holder = holder or {}
        log.warning("breaking the lock of run %s (%s, host %s pid %s, since %s)", holder.get("run_id"),
                    holder.get("job"), holder.get("host"), holder.get("pid"), holder.get("since"))
        self.fs.delete(self.path("_state", "lock"))

    def _locked_error(self, holder: dict[str, Any] | None) -> LockedError:
        holder = holder or {}
        stale = holder.get("host") == socket.gethostname() and not _pid_alive(holder.get("pid"))
        return LockedError(
            f"warehouse {self.root} is locked by {holder.get('job')} run {holder.get('run_id')} "
            f"(host {holder.get('host')}, pid {holder.get('pid')}, since {holder.get('since')})"
            + ("; that process is gone: the lock is stale, rerun with --break-lock" if stale
               else "; wait for it to finish, or rerun with --break-lock if it crashed"))

    def release_lock(self, run_id: str) -> None:
        lock = self.path("_state", "lock")
        try:
            holder = json.loads(self.fs.read_text(lock))
        except Exception:
            return
        if holder.get("run_id") == run_id:
            self.fs.delete(lock)


def _parse_time(text: str | None) -> _dt.datetime | None:
    """A :func:`utc_now` timestamp as an aware datetime (None for None)."""
    if not text:
        return None
    return _dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=_dt.timezone.utc)


def _pid_alive(pid: Any) -> bool:
    """True if the process exists and is not a zombie (a killed process not yet reaped)."""
    try:
        os.kill(int(pid), 0)
    except (ValueError, TypeError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{int(pid)}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def move_dirs(wh: Warehouse, moves: Iterable[tuple[str, str]]) -> None:
    """Rename staged directories into tables (before the manifest that publishes them)."""
    for src, dst in moves:
        wh.fs.mkdirs(dst.rsplit("/", 1)[0])
        wh.fs.rename(src, dst)
