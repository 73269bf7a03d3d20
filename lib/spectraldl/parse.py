"""One file in, one row out: read, check the format, preprocess (pure Python, runs in Spark tasks).

:func:`parse_file` never raises for a bad file: it returns a row whose ``outcome`` is ``ok`` (with
the vector and metadata) or ``rejected`` (with a reason code and a detail naming the cause). That
is what lets the ingest job promise ``seen == skipped + ingested + rejected``.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from .halpha import DEFAULT_SETTINGS as DEFAULT_MEASURE
from .halpha import HALPHA_COLUMNS, HalphaSettings, measure_spectrum
from .io import FORMAT_SURVEY, Limits, SpectrumError, read_spectrum
from .preprocess import PreprocessSettings, preprocess
from .sources import read_source_bytes
from .worker import prepare_worker

if TYPE_CHECKING:  # imported where used: pyarrow is not needed to read files
    import pyarrow as pa

#: Columns of the staging output (spectra and rejects columns together, plus ``outcome``).
PARSED_SCHEMA = (
    "outcome string, source_path string, file_size long, file_mtime timestamp, obsid long, "
    "designation string, ra double, dec double, lamost_class string, lamost_subclass string, "
    "z double, snr_g double, snr_r double, data_release string, date_obs string, "
    "file_format string, flux array<float>, valid_fraction float, preprocess_id string, "
    + "".join(f"{name} {kind}, " for name, kind in HALPHA_COLUMNS.items())
    + "reason string, detail string"
)
#: Fault-injection hook for tests (tests/test_faults.py), inert unless set: when this environment
#: variable names an existing file, the first parse task that deletes the file raises
#: :class:`InjectedFault`; every other task, and the retried attempt, runs normally. It proves that
#: Spark's task retry (``--master 'local[2,4]'``, ``spark.task.maxFailures``) gives the same tables.
FAULT_INJECT_ENV = "SPECTRALDL_FAULT_INJECT"


class InjectedFault(RuntimeError):
    """The task failure :data:`FAULT_INJECT_ENV` asked for."""


def _maybe_inject_fault() -> None:
    marker = os.environ.get(FAULT_INJECT_ENV)
    if not marker:
        return
    try:
        os.remove(marker)  # atomic: exactly one task attempt wins
    except OSError:
        return
    raise InjectedFault(f"{FAULT_INJECT_ENV}: injected failure of this task attempt ({marker})")


_META = ("obsid", "designation", "ra", "dec", "lamost_class", "lamost_subclass", "z", "snr_g",
         "snr_r", "data_release", "date_obs")


@dataclass(frozen=True)
class ParseOptions:
    """What a task needs to turn a path into a row."""

    settings: PreprocessSettings
    accept_formats: tuple[str, ...]
    limits: Limits
    measure: HalphaSettings = DEFAULT_MEASURE
    preprocess_id: str = field(init=False)  # the settings' fingerprint, computed once

    def __post_init__(self) -> None:
        object.__setattr__(self, "preprocess_id", self.settings.fingerprint())

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "ParseOptions":
        io = config["io"]
        return cls(PreprocessSettings.from_config(config["preprocess"]),
                   tuple(config["ingest"]["accept_formats"]),
                   Limits(io["max_bytes"], io["max_header_cards"], io["max_hdus"]),
                   HalphaSettings.from_config(config["measure"]))


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):  # math: np.isfinite costs 10x on a scalar
        return None
    return v


def parse_file(path: str, opts: ParseOptions) -> dict[str, Any]:
    """Read, preprocess and measure one file; a failure becomes a ``rejected`` row with its reason.

    The H-alpha measurements (:mod:`spectraldl.halpha`) are made on the spectrum in its own
    wavelengths, before any resampling; one that cannot be made is null with ``ha_flag`` saying
    why, never a reject."""
    row: dict[str, Any] = {"source_path": path}
    try:
        spec = read_spectrum(read_source_bytes(path, opts.limits), name=path, limits=opts.limits)
        if spec.format not in opts.accept_formats:
            survey = FORMAT_SURVEY.get(spec.format, "?")
            raise SpectrumError("unsupported_format", path,
                                f"{spec.format} ({survey}) is not ingested; ingest.accept_formats = "
                                f"{list(opts.accept_formats)}")
        vec, frac = preprocess(spec.wavelength, spec.flux, None, opts.settings, name=path, andmask=spec.andmask)
    except SpectrumError as exc:
        row.update(outcome="rejected", reason=exc.reason, detail=str(exc))
        return row
    row.update({k: _clean(spec.meta.get(k)) for k in _META})
    row.update(outcome="ok", file_format=spec.format, flux=vec, valid_fraction=np.float32(frac),
               preprocess_id=opts.preprocess_id)
    row.update(measure_spectrum(spec, settings=opts.measure).as_row())
    return row


def arrow_schema(ddl: str):
    """The Arrow schema Spark exchanges with Python for a DDL schema string (built on the
    driver, where a Spark context exists, and shipped to the tasks with the function)."""
    from pyspark.sql.pandas.types import to_arrow_schema
    from pyspark.sql.types import _parse_datatype_string
    return to_arrow_schema(_parse_datatype_string(ddl))


def _list_array(vectors: list[np.ndarray | None], type_) -> "pa.Array":
    """A list<float> Arrow array from vectors (None for a null) with one copy of the values."""
    import pyarrow as pa
    lengths = np.array([0 if v is None else len(v) for v in vectors], dtype=np.int32)
    offsets = np.zeros(len(vectors) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    present = [v for v in vectors if v is not None]
    values = np.concatenate(present).astype(np.float32, copy=False) if present else np.zeros(0, np.float32)
    mask = pa.array(np.fromiter((v is None for v in vectors), dtype=bool, count=len(vectors)))
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values), type=type_, mask=mask)


#: Columns a parse task passes through from its input listing unchanged.
_LISTING_COLUMNS = ("source_path", "file_size", "file_mtime")


def _parse_rows(batch: "pa.RecordBatch", opts: ParseOptions) -> list[dict[str, Any]]:
    """:func:`parse_file` of every path of a listing batch."""
    _maybe_inject_fault()
    return [parse_file(p, opts) for p in batch.column("source_path").to_pylist()]


def _rows_batch(rows: list[dict[str, Any]], listing: "pa.RecordBatch", schema: "pa.Schema",
                take: list[int] | None = None, constants: dict[str, Any] | None = None) -> "pa.RecordBatch":
    """An Arrow batch with ``schema`` of ``rows`` (only those at ``take``, if given): listing
    columns come from the input batch, ``flux`` is packed into one buffer, ``constants`` fill a
    column with one value, and the other columns come from the row dicts."""
    import pyarrow as pa
    picked = rows if take is None else [rows[i] for i in take]
    n = len(picked)
    arrays = []
    for fld in schema:
        name = fld.name
        if constants and name in constants:
            arrays.append(pa.array([constants[name]] * n, type=fld.type))
        elif name in _LISTING_COLUMNS:
            col = listing.column(name) if take is None else listing.column(name).take(pa.array(take, pa.int32()))
            arrays.append(col.cast(fld.type))
        elif name == "flux":
            arrays.append(_list_array([r.get("flux") for r in picked], fld.type))
        else:
            arrays.append(pa.array([r.get(name) for r in picked], type=fld.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def parse_batches(batches: Iterator["pa.RecordBatch"], opts: ParseOptions, schema: "pa.Schema"
                  ) -> Iterator["pa.RecordBatch"]:
    """``mapInArrow`` body: listing batches in, :data:`PARSED_SCHEMA` batches out (``schema``
    is :func:`arrow_schema` of it).

    Arrow in and out, without pandas: the listing columns pass through untouched and the vectors
    are packed into one buffer, so moving a row through Spark costs a few microseconds, not the
    tens a per-element pandas conversion of ``array<float>`` costs.
    """
    prepare_worker()
    for batch in batches:
        yield _rows_batch(_parse_rows(batch, opts), batch, schema)


#: What :func:`parse_and_write_batches` gives back to Spark: every rejected file as a row
#: (``kind = "rejected"``, written to ``rejects`` by Spark) and one row per Parquet file of
#: spectra the task wrote itself (``kind = "file"``, its path in ``source_path``, ``rows`` rows).
TASK_OUTPUT_SCHEMA = ("kind string, source_path string, file_size long, file_mtime timestamp, "
                      "reason string, detail string, rows long")


@dataclass(frozen=True)
class SpectraSink:
    """Where and how parse tasks write the ``spectra`` rows themselves (a local or shared
    POSIX directory; the ingest job uses Spark's writer for other file systems)."""

    directory: str
    schema: "pa.Schema"       # the spectra table's Arrow schema, ``ingest_run`` included
    run_id: str
    spark_schema_json: str    # kept in the footer as Spark does, so Spark reads the file as its own


def parse_and_write_batches(batches: Iterator["pa.RecordBatch"], opts: ParseOptions, sink: SpectraSink,
                            out_schema: "pa.Schema") -> Iterator["pa.RecordBatch"]:
    """``mapInArrow`` body that writes the vectors to Parquet in the task: listing batches in,
    :data:`TASK_OUTPUT_SCHEMA` batches (``out_schema``) out.

    The 140-float vectors never cross into the JVM: no Arrow-to-row conversion, no cached copy,
    no second pass to write them. Each task writes one file, named by its partition
    (``part-00007.parquet``), under a hidden temporary name that is renamed when complete, so a
    retried or speculative attempt replaces the file with the same rows (the parse is
    deterministic) and a failed one leaves only a hidden file, ignored by readers and deleted
    with the staging directory.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyspark import TaskContext

    prepare_worker()
    ctx = TaskContext.get()
    part, attempt = (ctx.partitionId(), ctx.attemptNumber()) if ctx is not None else (0, 0)
    final = os.path.join(sink.directory, f"part-{part:05d}.parquet")
    tmp = os.path.join(sink.directory, f".part-{part:05d}.attempt-{attempt}.tmp")
    writer, nrows = None, 0
    try:
        for batch in batches:
            rows = _parse_rows(batch, opts)
            ok = [i for i, r in enumerate(rows) if r["outcome"] == "ok"]
            if ok:
                if writer is None:
                    os.makedirs(sink.directory, exist_ok=True)
                    meta = {b"org.apache.spark.sql.parquet.row.metadata": sink.spark_schema_json.encode()}
                    writer = pq.ParquetWriter(tmp, sink.schema.with_metadata(meta), compression="snappy",
                                              use_compliant_nested_type=True)
                writer.write_batch(_rows_batch(rows, batch, sink.schema, ok, {"ingest_run": sink.run_id}))
                nrows += len(ok)
            if len(ok) < len(rows):
                okset = set(ok)
                yield _rows_batch(rows, batch, out_schema, [i for i in range(len(rows)) if i not in okset],
                                  {"kind": "rejected", "rows": None})
        if writer is not None:
            writer.close()
            writer = None
            os.replace(tmp, final)
            yield pa.RecordBatch.from_arrays(
                [pa.array([{"kind": "file", "source_path": final, "rows": nrows}.get(f.name)], f.type)
                 for f in out_schema], schema=out_schema)
    finally:
        if writer is not None:  # failed half-way: the partial file goes
            writer.close()
            try:
                os.remove(tmp)
            except OSError:
                pass
