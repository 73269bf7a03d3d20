"""Reason codes and the one exception every reader raises.

Every failure to read a spectrum becomes a :class:`SpectrumError` whose ``reason`` is one of
:data:`REASONS` (the codes of CONVENTIONS.md plus the ones this project added), so the ingest job
can put the file in the ``rejects`` table with a machine-readable cause and a human-readable detail.
"""
from __future__ import annotations

#: Reject reasons, code -> meaning. The README lists the same table.
REASONS: dict[str, str] = {
    "not_fits": "the bytes are not a FITS file (no SIMPLE card at the start)",
    "empty_file": "the file has zero bytes",
    "truncated": "the file ends inside a header or a data unit",
    "gzip_error": "gzip magic bytes but the stream is corrupt or cut short",
    "too_large": "the file, its decompressed size or a declared data size exceeds the configured limit",
    "bad_header": "a header card cannot be parsed: no END card, non-ASCII bytes, bad mandatory keyword",
    "bad_shape": "the data unit's shape does not match the format (rows, columns, lengths)",
    "bad_column_type": "a column read as numbers (flux, wavelength, ...) holds text or complex values (TFORM A, C, M)",
    "unsupported_format": "a FITS file of a known kind this job does not take (e.g. Ondřejov in a LAMOST archive, MRS where disabled)",
    "unknown_format": "a valid FITS file that no reader recognises",
    "missing_column": "a table lacks a column the format needs (e.g. COADD without FLUX)",
    "missing_wavelength": "no wavelength solution (COEFF0/COEFF1, CRVAL1/CDELT1 or a wavelength column)",
    "bad_wavelength": "the wavelength array is not finite and strictly increasing",
    "window_not_covered": "the spectrum does not cover the preprocessing window",
    "too_few_valid_pixels": "fewer good pixels in the window than the configured fraction",
    "no_signal": "continuum <= 0, flux constant or all zero in the window (dead fibre)",
    "low_signal": "an MRS exposure or co-add without usable flux: median S/N per pixel in 6500-6760 Å below mrs.min_snr (clouds)",
    "unreadable": "the path cannot be read (missing, a directory, a broken link, permission)",
}


class SpectrumError(Exception):
    """A spectrum file could not be read or used.

    Parameters
    ----------
    reason : str
        One of :data:`REASONS`.
    name : str
        The file the error is about (path or given name), repeated in the message.
    detail : str
        A short human-readable explanation.
    """

    def __init__(self, reason: str, name: str | None = None, detail: str = "") -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown reject reason {reason!r}")
        self.reason = reason
        self.name = name
        self.detail = detail
        super().__init__(f"{name or '<bytes>'}: {reason}: {detail}" if detail else f"{name or '<bytes>'}: {reason}")

    def with_name(self, name: str | None) -> "SpectrumError":
        """Return the same error naming ``name`` (readers deep down do not know the file name)."""
        if name is None or self.name == name:
            return self
        return SpectrumError(self.reason, name, self.detail)
