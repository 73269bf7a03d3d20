"""Header keyword normalisation: one set of metadata keys whatever the release's drift."""
from __future__ import annotations

import functools
from typing import Any

import numpy as np

from .fits import _FLOAT_RE, _NUMBER_START, Header, card_key, parse_value
from .spectrum import META_KEYS


def _str(v: Any) -> str | None:
    if v is None or isinstance(v, bool):
        return None
    s = str(v).strip()
    return s or None


#: LAMOST writes -9999 where a value is unknown (a dead camera's SNR, the z of CLASS Unknown).
PLACEHOLDER = -9999.0


def _float(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        f = float(v)
    else:
        try:
            f = float(str(v).strip())
        except ValueError:
            return None
    return None if f == PLACEHOLDER else f


_INT64 = (-(2 ** 63), 2 ** 63 - 1)


def _int(v: Any) -> int | None:
    """An integer that fits a long (the ``spectra`` table's type), else None."""
    if isinstance(v, bool) or v is None:
        return None
    if not isinstance(v, int):
        try:
            v = int(str(v).strip())
        except ValueError:
            return None
    return v if _INT64[0] <= v <= _INT64[1] else None  # a 20-digit OBSID would fail the Arrow write


def sexagesimal_to_deg(value: Any, hours: bool) -> float | None:
    """Degrees from a number or a sexagesimal string (``'07:57:03.987'``, ``'+02 57 03.0'``).

    ``hours`` says that the sexagesimal form counts hours (RA). A plain number is taken as
    degrees whatever ``hours`` says, as LAMOST and the Ondřejov archive write them.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    s = str(value).strip()
    if not s:
        return None
    parts = s.replace(":", " ").split()
    try:
        if len(parts) == 1:
            return float(parts[0])
        sign = -1.0 if parts[0].startswith("-") else 1.0
        nums = [abs(float(p)) for p in parts[:3]]
    except ValueError:
        return None
    deg = nums[0] + (nums[1] if len(nums) > 1 else 0) / 60 + (nums[2] if len(nums) > 2 else 0) / 3600
    return sign * deg * (15.0 if hours else 1.0)


def _ra(v: Any) -> float | None:
    return sexagesimal_to_deg(v, hours=True)


def _dec(v: Any) -> float | None:
    return sexagesimal_to_deg(v, hours=False)


#: (meta key, header keywords in order of preference, conversion): the drift seen in the real
#: archive in one table.
_META_CARDS: tuple[tuple[str, tuple[str, ...], Any], ...] = (
    ("obsid", ("OBSID",), _int),
    ("designation", ("DESIG", "DESIGNAT", "DESIGNATION"), _str),
    ("ra", ("RA",), _ra),
    ("dec", ("DEC",), _dec),
    ("lamost_class", ("CLASS",), _str),
    ("lamost_subclass", ("SUBCLASS",), _str),
    ("z", ("Z",), _float),
    ("snr_g", ("SNRG", "SN_G"), _float),
    ("snr_r", ("SNRR", "SN_R"), _float),
    ("data_release", ("DATA_V",), _str),
    ("object", ("OBJECT", "OBJNAME"), _str),
    ("date_obs", ("DATE-OBS",), _str),
    ("fiberid", ("FIBERID",), _int),
    ("mjd", ("MJD",), _int),
    ("exptime", ("EXPTIME",), _float),
    ("planid", ("PLANID",), _str),
)
assert set(META_KEYS) <= {k for k, _, _ in _META_CARDS}


#: The keywords of :data:`_META_CARDS` as card keys, for :meth:`Header.first_texts`.
_META_GROUPS = tuple(tuple(card_key(k) for k in cards) for _, cards, _ in _META_CARDS)
#: :func:`parse_value` returned None (an empty value field): the key is left to the next header.
_NEXT = object()


def _text_str(t: str) -> Any:
    """``_str(parse_value(t))`` (or :data:`_NEXT`), a quoted string without escaped quotes
    taken directly."""
    s = t.lstrip()
    if s[:1] == "'":
        end = s.find("'", 1)
        if end > 0 and s[end + 1:end + 2] != "'":
            return s[1:end].strip() or None
    v = parse_value(t)
    return _NEXT if v is None else _str(v)


def _number_field(t: str) -> str | None:
    """The value field of ``t`` when :func:`parse_value` would read it as a number (the
    comment and blanks removed), else None."""
    field = t.split("/", 1)[0].strip()
    if field[:1] in _NUMBER_START and "_" not in field:
        return field
    return None


def _text_float(t: str) -> Any:
    """``_float(parse_value(t))`` (or :data:`_NEXT`), numbers parsed directly."""
    field = _number_field(t)
    if field is not None:
        if (field[1:] if field[0] in "+-" else field).isdigit():
            f = float(int(field))
            return None if f == PLACEHOLDER else f
        if _FLOAT_RE.match(field):
            f = float(field.replace("D", "E").replace("d", "e"))
            return None if f == PLACEHOLDER else f
    v = parse_value(t)
    return _NEXT if v is None else _float(v)


def _text_int(t: str) -> Any:
    """``_int(parse_value(t))`` (or :data:`_NEXT`), integers parsed directly."""
    field = _number_field(t)
    if field is not None and (field[1:] if field[0] in "+-" else field).isdigit():
        v = int(field)
        return v if _INT64[0] <= v <= _INT64[1] else None
    v = parse_value(t)
    return _NEXT if v is None else _int(v)


def _text_deg(t: str) -> Any:
    """``sexagesimal_to_deg(parse_value(t))`` (or :data:`_NEXT`): a number is degrees, read
    directly; anything else (a sexagesimal string: RA in hours) goes through
    :func:`parse_value`."""
    field = _number_field(t)
    if field is not None:
        if (field[1:] if field[0] in "+-" else field).isdigit():
            return float(int(field))
        if _FLOAT_RE.match(field):
            return float(field.replace("D", "E").replace("d", "e"))
    return _NEXT


def _text_angle(t: str, convert: Any) -> Any:
    """An angle's value field: degrees read directly, anything else ``convert(parse_value(t))``
    (``_ra``: a sexagesimal RA is in hours)."""
    v = _text_deg(t)
    if v is _NEXT:
        v = parse_value(t)
        return _NEXT if v is None else convert(v)
    return v


_FROM_TEXT = {_str: _text_str, _float: _text_float, _int: _text_int,
              _ra: functools.partial(_text_angle, convert=_ra), _dec: functools.partial(_text_angle, convert=_dec)}
#: (meta key, conversion of a value field) in the order of :data:`_META_CARDS`.
_META_TEXT = tuple((key, _FROM_TEXT[convert]) for key, _, convert in _META_CARDS)


def normalise_meta(*headers: Header) -> dict[str, Any]:
    """Collect :data:`~spectraldl.io.spectrum.META_KEYS` from one or more headers (first wins).

    Handles the drift seen in the real archive: ``SN_G``/``SN_R`` (DR1-DR2) vs ``SNRG``/``SNRR``
    (DR3+), ``DESIG``, string ``FIBERID``, no ``OBSID`` before DR3, sexagesimal ``RA``/``DEC``.
    In each header the first keyword present gives the value; a header where it is empty
    (or absent) leaves the key to the next header.

    The value fields are converted straight from the card text (``_text_*``: the same values as
    :func:`~spectraldl.io.fits.parse_value` followed by the conversions of :data:`_META_CARDS`,
    in one call per key).
    """
    texts = [h.first_texts(_META_GROUPS) for h in headers]
    meta: dict[str, Any] = {}
    j = 0
    for key, convert in _META_TEXT:
        v = None
        for tx in texts:
            t = tx[j]
            if t is not None:
                v = convert(t)
                if v is not _NEXT:
                    break
                v = None
        meta[key] = v
        j += 1
    return meta


@functools.lru_cache(maxsize=4096)  # the files of one plate share their DATE-OBS
def date_to_mjd(text: Any) -> float | None:
    """MJD (UTC, days) of an ISO ``YYYY-MM-DD[Thh:mm:ss[.fff]]`` date (a ``DATE-OBS``), else None.

    >>> date_to_mjd("2019-04-01T14:03:00"), date_to_mjd("") is None
    (58574.585416666..., True)
    """
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        t = np.datetime64(text.strip().replace(" ", "T"), "ms")
    except ValueError:
        return None
    return float((t - np.datetime64("1858-11-17T00:00:00", "ms")) / np.timedelta64(1, "D"))
