"""``read_spectrum``: any supported file (path or bytes, plain or gzip) to a :class:`Spectrum`."""
from __future__ import annotations

import os
import stat
from typing import Union

from .errors import SpectrumError
from .fits import DEFAULT_LIMITS, Limits, load_bytes
from .registry import find_reader
from .spectrum import Spectrum

Source = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview]


def read_bytes_from_path(path: "str | os.PathLike[str]", limits: Limits = DEFAULT_LIMITS) -> bytes:
    """Read a local file, refusing anything over ``limits.max_bytes`` before reading it.

    Raises
    ------
    SpectrumError
        ``unreadable`` for a missing path, a directory, a broken link or a permission error;
        ``too_large`` for a file over the limit.
    """
    name = os.fspath(path)
    try:
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))  # unbuffered: one read, one copy
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                raise IsADirectoryError(name)
            if st.st_size > limits.max_bytes:
                raise SpectrumError("too_large", name, f"{st.st_size} bytes (limit {limits.max_bytes})")
            want = st.st_size + 1  # not max_bytes: that would allocate the whole limit
            data = os.read(fd, want)
            if 0 < len(data) < st.st_size:  # a short read (network file systems): read the rest
                parts = [data]
                while (got := sum(map(len, parts))) < want and (chunk := os.read(fd, want - got)):
                    parts.append(chunk)
                data = b"".join(parts)
            return data
        finally:
            os.close(fd)
    except SpectrumError:
        raise
    except IsADirectoryError:
        raise SpectrumError("unreadable", name, "is a directory") from None
    except FileNotFoundError:
        kind = "broken symbolic link" if os.path.islink(name) else "no such file"
        raise SpectrumError("unreadable", name, kind) from None
    except OSError as exc:
        raise SpectrumError("unreadable", name, f"{type(exc).__name__}: {exc.strerror or exc}") from None


def read_spectrum(source: Source, name: str | None = None, limits: Limits | None = None) -> Spectrum:
    """Read one spectrum file, picking the reader from the file's content.

    Parameters
    ----------
    source : str, path-like or bytes
        A local path, or the file's bytes (for files read through a Hadoop filesystem).
    name : str, optional
        The name to use in error messages; defaults to the path.
    limits : Limits, optional
        Size limits (defaults: :data:`~spectraldl.io.fits.DEFAULT_LIMITS`).

    Returns
    -------
    Spectrum

    Raises
    ------
    SpectrumError
        For every failure, with ``.reason`` set (see :data:`~spectraldl.io.errors.REASONS`) and
        the file name in the message. No other exception escapes.

    Examples
    --------
    A path (a real DR2 file; not shipped, hence skipped):

    >>> s = read_spectrum("spec-55916-B5591606_sp01-001.fits")  # doctest: +SKIP
    >>> s.format, s.wavelength[0]                                # doctest: +SKIP
    ('lamost_lrs_image', 3699.98...)

    Bytes, here a synthetic DR2 file, gzipped (found by its magic bytes, not the name):

    >>> from spectraldl.synth import SynthConfig, make_spectrum
    >>> from spectraldl.synth.formats import encode
    >>> data = encode(make_spectrum(0, 1, "lamost", SynthConfig.defaults(), layout="dr2", compression="gzip"))
    >>> s = read_spectrum(data, name="spec.fits")
    >>> s.format, len(s), s.medium, round(float(s.wavelength[0]), 2)
    ('lamost_lrs_image', 3909, 'vacuum', 3699.99)
    >>> read_spectrum(b"<html>404 Not Found</html>", name="x.fits")
    Traceback (most recent call last):
        ...
    spectraldl.io.errors.SpectrumError: x.fits: not_fits: does not start with a SIMPLE card (looks like HTML/XML)
    """
    return _read(source, name, limits, every=False)[1][0][1]


def read_spectra(source: Source, name: str | None = None, limits: Limits | None = None
                 ) -> tuple[str, list[tuple[str, "Spectrum | SpectrumError"]]]:
    """Every spectrum a file holds, for the ingest: ``(format, [(exposure, spectrum), ...])``.

    A one-spectrum file (LAMOST LRS, Ondřejov) gives ``[("", Spectrum)]``; an MRS file its
    ``COADD_R`` and each red-arm exposure, keyed by EXTNAME, where a table that cannot be read is
    its :class:`SpectrumError` instead (see :func:`spectraldl.io.lamost_mrs.read_all`).

    Raises
    ------
    SpectrumError
        As :func:`read_spectrum`, for a file that yields nothing.
    """
    return _read(source, name, limits, every=True)


def _read(source: Source, name: str | None, limits: Limits | None, every: bool):
    """The one guarded path from a source to ``(format, [(exposure, spectrum), ...])``: with
    ``every`` the reader's ``read_all`` where it has one, else its one spectrum."""
    limits = limits or DEFAULT_LIMITS
    try:
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
        else:
            name = name or os.fspath(source)
            data = read_bytes_from_path(source, limits)
        ff = load_bytes(data, name, limits)
        reader = find_reader(ff)
        if reader is None:
            raise SpectrumError("unknown_format", name, "no reader recognises this FITS file")
        if every and reader.read_all is not None:
            return reader.name, reader.read_all(ff)
        spec = reader.read(ff)
        return spec.format, [("", spec)]
    except SpectrumError as exc:
        raise exc.with_name(name) from None
    except MemoryError:
        raise SpectrumError("too_large", name, "out of memory while reading") from None
    except Exception as exc:  # a reader bug must still name the file and not kill the task
        raise SpectrumError("unreadable", name, f"{type(exc).__name__}: {exc}") from None
