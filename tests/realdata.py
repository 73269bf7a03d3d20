"""Where the real LAMOST and Ondřejov files are, and which files they are, for the tests, the
bad-file corpus and ``scripts/fetch_real_data.py``.

The list of real files (source repository, commit, path, sha256) is committed in
``scripts/real_data/sources.tsv``, so a clone without the data still knows what it is missing and
``scripts/fetch_real_data.py`` can download it.
"""
from __future__ import annotations

import csv
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "scripts" / "real_data" / "sources.tsv"
#: Rows of ``sources.tsv`` that are not spectra (label files): they are not in the data's own
#: ``PROVENANCE.tsv``.
NOT_IN_PROVENANCE = ("labels/",)


def find_real_data() -> Path:
    """``$SPECTRALDL_REAL_DATA``, else ``../shared/data/real``, else (a clone made elsewhere, as in
    ``git clone . /tmp/fresh``) the ``shared/data/real`` beside the repository it was cloned from."""
    if "SPECTRALDL_REAL_DATA" in os.environ:
        return Path(os.environ["SPECTRALDL_REAL_DATA"])
    beside = ROOT.parent / "shared" / "data" / "real"
    if beside.is_dir():
        return beside
    try:
        origin = subprocess.run(["git", "-C", str(ROOT), "remote", "get-url", "origin"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        origin = ""
    if origin and os.path.isdir(origin):
        candidate = Path(origin).resolve().parent / "shared" / "data" / "real"
        if candidate.is_dir():
            return candidate
    return beside


def have_real_data(path: Path) -> bool:
    """Whether ``path`` holds the real data (its ``PROVENANCE.tsv`` is there)."""
    return (path / "PROVENANCE.tsv").is_file()


def read_sources(path: Path = SOURCES) -> list[dict[str, str]]:
    """The rows of a sources table (``PROVENANCE.tsv``'s columns), in file order."""
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def manifest_spectra() -> list[str]:
    """Paths (relative to the real-data folder) of every real spectrum file, sorted."""
    return sorted(r["file"] for r in read_sources() if not r["file"].startswith(NOT_IN_PROVENANCE))
