"""The reader registry: (priority, identify, read) per format, tried in priority order.

A new LAMOST release is one new module with an ``identify`` and a ``read`` and one
:func:`register` call, not an if-chain in a shared function (the astropy/specutils pattern).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

from . import lamost_coadd, lamost_lrs, lamost_mrs, ondrejov
from .errors import SpectrumError
from .fits import FitsFile
from .spectrum import Spectrum


@dataclass(frozen=True)
class Reader:
    """One registered format reader."""

    name: str
    priority: int
    identify: Callable[[FitsFile], bool]
    read: Callable[[FitsFile], Spectrum]
    survey: str  # "lamost" or "ondrejov"
    #: Every spectrum of a file that holds several (MRS: the red co-add and each red exposure), as
    #: ``(exposure, Spectrum or the SpectrumError of that table)``; None for one-spectrum formats.
    read_all: Callable[[FitsFile], list[tuple[str, Union[Spectrum, SpectrumError]]]] | None = None


_READERS: list[Reader] = []


def register(reader: Reader) -> None:
    """Add a reader; higher priority is tried first."""
    _READERS.append(reader)
    _READERS.sort(key=lambda r: -r.priority)


def readers() -> list[Reader]:
    """The registered readers, highest priority first."""
    return list(_READERS)


def find_reader(ff: FitsFile) -> Reader | None:
    """The first reader whose ``identify`` accepts ``ff``, else None."""
    for r in _READERS:
        if r.identify(ff):
            return r
    return None


register(Reader("lamost_lrs_coadd", 40, lamost_coadd.identify, lamost_coadd.read, "lamost"))
register(Reader("lamost_mrs", 30, lamost_mrs.identify, lamost_mrs.read, "lamost", lamost_mrs.read_all))
register(Reader("lamost_lrs_image", 20, lamost_lrs.identify, lamost_lrs.read, "lamost"))
register(Reader("ondrejov_table", 10, ondrejov.identify_table, ondrejov.read_table, "ondrejov"))
register(Reader("ondrejov_iraf", 5, ondrejov.identify_iraf, ondrejov.read_iraf, "ondrejov"))

#: Format id (``Spectrum.format``) -> survey.
FORMAT_SURVEY = {
    **{f: "lamost" for f in lamost_lrs.FORMATS + lamost_coadd.FORMATS + lamost_mrs.FORMATS},
    **{f: "ondrejov" for f in ondrejov.FORMATS},
}
