"""Spectrum readers: one identify + read pair per format, chosen from the file's content.

>>> from spectraldl.io import read_spectrum, SpectrumError
"""
from .errors import REASONS, SpectrumError
from .fits import DEFAULT_LIMITS, Limits
from .reader import read_bytes_from_path, read_spectra, read_spectrum
from .registry import FORMAT_SURVEY, Reader, readers, register
from .spectrum import META_KEYS, Spectrum

__all__ = [
    "DEFAULT_LIMITS", "FORMAT_SURVEY", "Limits", "META_KEYS", "REASONS", "Reader", "Spectrum",
    "SpectrumError", "read_bytes_from_path", "read_spectra", "read_spectrum", "readers", "register",
]
