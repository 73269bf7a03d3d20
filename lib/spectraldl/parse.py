"""One file in, its rows out: read, check the format, preprocess, measure (pure Python, runs in Spark tasks).

:func:`parse_path` never raises for a bad file: it returns one row per spectrum the file holds
(one for an LRS file; ``COADD_R`` and each red-arm exposure of an MRS file, keyed by ``exposure``),
each with ``outcome`` ``ok`` (the vector, metadata and H-alpha measurements) or ``rejected`` (a
reason code and a detail naming the cause); a file that cannot be read at all is one rejected row
with an empty ``exposure``. That is what lets the ingest job promise ``seen == skipped + ingested +
rejected`` for files and ``spectra read == ingested + rejected`` for spectra.

MRS exposures (:mod:`spectraldl.io.mrs_quality`): the night's cosmic rays are masked, exposures
without usable signal are rejected as ``low_signal``, the H-alpha measurements are made at the MRS
resolution on the cleaned spectrum, and the vector is made after a blur to the LRS resolution.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from .halpha import DEFAULT_SETTINGS as DEFAULT_MEASURE
from .halpha import HALPHA_COLUMNS, HalphaSettings, measure_halpha, measure_spectrum
from .io import FORMAT_SURVEY, Limits, Spectrum, SpectrumError, read_spectra
from .io.meta import date_to_mjd
from .io.mrs_quality import SNR_WINDOW, MrsSettings, clean_night, mrs_vector
from .preprocess import PreprocessSettings, preprocess_batch
from .sources import read_source_bytes
from .worker import prepare_worker

if TYPE_CHECKING:  # imported where used: pyarrow is not needed to read files
    import pyarrow as pa

#: Columns of the staging output (spectra and rejects columns together, plus ``outcome``).
PARSED_SCHEMA = (
    "outcome string, source_path string, exposure string, mjd double, exptime double, n_cosmic int, file_size long, "
    "file_mtime timestamp, obsid long, "
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
         "snr_r", "data_release", "date_obs", "exptime")


@dataclass(frozen=True)
class ParseOptions:
    """What a task needs to turn a path into a row."""

    settings: PreprocessSettings
    accept_formats: tuple[str, ...]
    limits: Limits
    measure: HalphaSettings = DEFAULT_MEASURE
    mrs: MrsSettings = MrsSettings()
    batch_files: int = 256    # paths a task parses together (ingest.batch_files)
    preprocess_id: str = field(init=False)  # the settings' fingerprint, computed once

    def __post_init__(self) -> None:
        object.__setattr__(self, "preprocess_id", self.settings.fingerprint())

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "ParseOptions":
        io = config["io"]
        return cls(PreprocessSettings.from_config(config["preprocess"]),
                   tuple(config["ingest"]["accept_formats"]),
                   Limits(io["max_bytes"], io["max_header_cards"], io["max_hdus"]),
                   HalphaSettings.from_config(config["measure"]), MrsSettings.from_config(config["mrs"]),
                   int(config["ingest"]["batch_files"]))


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):  # math: np.isfinite costs 10x on a scalar
        return None
    return v


def parse_path(path: str, opts: ParseOptions) -> list[dict[str, Any]]:
    """Every row of one file (see the module's docstring); a failure becomes a ``rejected`` row.

    The H-alpha measurements (:mod:`spectraldl.halpha`) are made on each spectrum in its own
    wavelengths, before any resampling or blur; one that cannot be made is null with ``ha_flag``
    saying why, never a reject."""
    return parse_paths([path], opts)[0]


def parse_paths(paths: list[str], opts: ParseOptions) -> list[list[dict[str, Any]]]:
    """:func:`parse_path` of every path, with the same rows: the one-spectrum (LRS) files that
    share a wavelength grid are preprocessed together (:func:`~spectraldl.preprocess.preprocess_batch`,
    the same bits as one by one), which is how the ingest's tasks call it, ``ingest.batch_files``
    paths at a time."""
    out: list[Any] = [None] * len(paths)
    by_grid: dict[int, list[tuple[int, Spectrum]]] = {}  # the LRS readers share one grid object per solution
    for i, path in enumerate(paths):
        try:
            fmt, entries = read_spectra(read_source_bytes(path, opts.limits), name=path, limits=opts.limits)
            if fmt not in opts.accept_formats:
                survey = FORMAT_SURVEY.get(fmt, "?")
                raise SpectrumError("unsupported_format", path,
                                    f"{fmt} ({survey}) is not ingested; ingest.accept_formats = "
                                    f"{list(opts.accept_formats)}")
        except SpectrumError as exc:
            out[i] = [_rejected(path, "", exc)]
            continue
        if fmt == "lamost_mrs":
            out[i] = _mrs_rows(path, entries, opts)
            continue
        spec = entries[0][1]
        by_grid.setdefault(id(spec.wavelength), []).append((i, spec))
    for group in by_grid.values():
        specs = [spec for _, spec in group]
        made = preprocess_batch(specs[0].wavelength, [sp.flux for sp in specs], [sp.andmask for sp in specs],
                                opts.settings, [paths[i] for i, _ in group])
        for (i, spec), got in zip(group, made):
            path = paths[i]
            if isinstance(got, SpectrumError):
                out[i] = [_rejected(path, "", got)]
                continue
            row = _ok_row(path, "", spec, got[0], got[1], opts)
            row["mjd"] = _clean(date_to_mjd(spec.meta.get("date_obs")) or _float(spec.meta.get("mjd")))
            row.update(measure_spectrum(spec, settings=opts.measure).as_row())
            out[i] = [row]
    return out


def parse_file(path: str, opts: ParseOptions) -> dict[str, Any]:
    """The first row of :func:`parse_path`: a one-spectrum file's row (an MRS file's ``COADD_R``)."""
    return parse_path(path, opts)[0]


def _float(v: Any) -> float | None:
    return None if v is None or isinstance(v, bool) else float(v)


def _rejected(path: str, exposure: str, exc: SpectrumError, **extra: Any) -> dict[str, Any]:
    return {"source_path": path, "exposure": exposure, "outcome": "rejected", "reason": exc.reason,
            "detail": str(exc.with_name(path) if exposure == "" else SpectrumError(exc.reason, f"{path}[{exposure}]", exc.detail)),
            **extra}


def _ok_row(path: str, exposure: str, spec: Spectrum, vec: np.ndarray, frac: float, opts: ParseOptions
            ) -> dict[str, Any]:
    row: dict[str, Any] = {k: _clean(spec.meta.get(k)) for k in _META}
    row.update(source_path=path, exposure=exposure, outcome="ok", file_format=spec.format, flux=vec,
               valid_fraction=np.float32(frac), preprocess_id=opts.preprocess_id)
    return row


def _mrs_rows(path: str, entries: list[tuple[str, Any]], opts: ParseOptions) -> list[dict[str, Any]]:
    """The rows of one MRS file (one night of one fibre): ``COADD_R`` and, with
    ``mrs.exposures``, every ``R-<LMJM>`` exposure.

    Per :func:`~spectraldl.io.mrs_quality.clean_night`: cosmic-ray hits are masked (``n_cosmic``
    counts them), a spectrum below ``mrs.min_snr`` is rejected as ``low_signal``; the others are
    measured at the MRS resolution on their cleaned pixels and blurred to the LRS resolution
    before the default preprocessing."""
    m = opts.mrs
    if not m.exposures:
        entries = [e for e in entries if e[0] == "COADD_R"]
        if not entries:
            return [_rejected(path, "", SpectrumError("bad_shape", path, "no COADD_R, and mrs.exposures = false"))]
    rows: dict[str, dict[str, Any]] = {}
    readable = []
    for name, spec in entries:
        if isinstance(spec, SpectrumError):
            rows[name] = _rejected(path, name, spec)
        else:
            readable.append((name, spec))
    cleaned = clean_night(readable, min_snr=m.min_snr, resolving_power=m.resolving_power, nsigma=m.cosmic_nsigma)
    for ce in cleaned:
        spec, name = ce.spectrum, ce.exposure
        known = {"mjd": _clean(spec.meta.get("mjd")), "n_cosmic": ce.n_cosmic}
        if ce.low_signal:
            lo, hi = SNR_WINDOW
            rows[name] = _rejected(path, name, SpectrumError(
                "low_signal", path, f"median S/N {ce.snr:.2f} per pixel in {lo:g}-{hi:g} Å < mrs.min_snr {m.min_snr:g}"),
                **known)
            continue
        try:
            vec, frac = mrs_vector(spec.wavelength, spec.flux, ce.good, r_from=m.resolving_power,
                                   r_to=m.target_resolving_power, settings=opts.settings, name=path)
        except SpectrumError as exc:
            rows[name] = _rejected(path, name, exc, **known)
            continue
        row = _ok_row(path, name, spec, vec, frac, opts)
        row.update(known)
        mask = np.where(ce.good, 0, 1).astype(np.int16)  # cosmic rays and zero-flux pixels are not good
        row.update(measure_halpha(spec.wavelength, spec.flux, spec.ivar, mask, resolving_power=m.resolving_power,
                                  settings=opts.measure).as_row())
        rows[name] = row
    return [rows[name] for name, _ in entries]


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


def _parse_rows(batch: "pa.RecordBatch", opts: ParseOptions) -> tuple[list[dict[str, Any]], list[int]]:
    """:func:`parse_path` of every path of a listing batch: the rows, and for each row the index
    of its path in the batch."""
    _maybe_inject_fault()
    rows: list[dict[str, Any]] = []
    src: list[int] = []
    paths = batch.column("source_path").to_pylist()
    step = opts.batch_files
    for start in range(0, len(paths), step):
        for i, got in enumerate(parse_paths(paths[start:start + step], opts), start):
            rows += got
            src += [i] * len(got)
    return rows, src


def _rows_batch(rows: list[dict[str, Any]], src: list[int], listing: "pa.RecordBatch", schema: "pa.Schema",
                take: list[int] | None = None, constants: dict[str, Any] | None = None) -> "pa.RecordBatch":
    """An Arrow batch with ``schema`` of ``rows`` (only those at ``take``, if given): listing
    columns come from the input batch (row ``i`` from its path's listing row ``src[i]``), ``flux``
    is packed into one buffer, ``constants`` fill a column with one value, and the other columns
    come from the row dicts."""
    import pyarrow as pa
    idx = list(range(len(rows))) if take is None else take
    picked = [rows[i] for i in idx]
    listing_rows = pa.array([src[i] for i in idx], pa.int32())
    n = len(picked)
    arrays = []
    for fld in schema:
        name = fld.name
        if constants and name in constants:
            arrays.append(pa.array([constants[name]] * n, type=fld.type))
        elif name in _LISTING_COLUMNS:
            arrays.append(listing.column(name).take(listing_rows).cast(fld.type))
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
        rows, src = _parse_rows(batch, opts)
        yield _rows_batch(rows, src, batch, schema)


#: What :func:`parse_and_write_batches` gives back to Spark: every rejected spectrum as a row
#: (``kind = "rejected"``, written to ``rejects`` by Spark; ``path_ok``: its file gave other,
#: ingested spectra) and, last, one row for the task (``kind = "file"``): the Parquet file of
#: spectra it wrote in ``source_path`` (null when it wrote none), ``rows`` rows from ``paths``
#: files, ``cosmic`` cosmic-ray hits masked in them, ``failed`` files that gave no spectrum.
TASK_OUTPUT_SCHEMA = ("kind string, source_path string, exposure string, file_size long, file_mtime timestamp, "
                      "reason string, detail string, path_ok boolean, rows long, paths long, cosmic long, "
                      "failed long")


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
    writer, nrows, npaths, ncosmic, nfailed = None, 0, 0, 0, 0
    try:
        for batch in batches:
            rows, src = _parse_rows(batch, opts)
            ok = [i for i, r in enumerate(rows) if r["outcome"] == "ok"]
            ok_paths = {src[i] for i in ok}
            nfailed += batch.num_rows - len(ok_paths)
            if ok:
                if writer is None:
                    os.makedirs(sink.directory, exist_ok=True)
                    meta = {b"org.apache.spark.sql.parquet.row.metadata": sink.spark_schema_json.encode()}
                    writer = pq.ParquetWriter(tmp, sink.schema.with_metadata(meta), compression="snappy",
                                              use_compliant_nested_type=True)
                writer.write_batch(_rows_batch(rows, src, batch, sink.schema, ok, {"ingest_run": sink.run_id}))
                nrows, npaths = nrows + len(ok), npaths + len(ok_paths)
                ncosmic += sum(rows[i].get("n_cosmic") or 0 for i in ok)
            if len(ok) < len(rows):
                okset = set(ok)
                for i, r in enumerate(rows):
                    r["path_ok"] = src[i] in ok_paths
                yield _rows_batch(rows, src, batch, out_schema, [i for i in range(len(rows)) if i not in okset],
                                  {"kind": "rejected", "rows": None})
        done = {"kind": "file", "source_path": None, "rows": nrows, "paths": npaths, "cosmic": ncosmic,
                "failed": nfailed}
        if writer is not None:
            writer.close()
            writer = None
            os.replace(tmp, final)
            done["source_path"] = final
        yield pa.RecordBatch.from_arrays([pa.array([done.get(f.name)], f.type) for f in out_schema],
                                         schema=out_schema)
    finally:
        if writer is not None:  # failed half-way: the partial file goes
            writer.close()
            try:
                os.remove(tmp)
            except OSError:
                pass
