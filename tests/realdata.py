"""Where the real LAMOST and Ondřejov files are, for the tests and the bad-file corpus."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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
