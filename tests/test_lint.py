"""The code passes ruff with the project's configuration (ruff.toml; ruff pinned in requirements-test.txt)."""
from __future__ import annotations

import subprocess
import sys

from conftest import ROOT

PATHS = ("lib", "jobs", "tests", "scripts", "bench", "fuzz")


def test_ruff_check_passes():
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", *PATHS],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert "No module named ruff" not in out.stderr, "ruff is missing: pip install -r requirements-test.txt"
    assert out.returncode == 0, f"ruff check {' '.join(PATHS)}:\n{out.stdout}{out.stderr}"


def test_ruff_config_is_the_one_used():
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--show-settings", "lib/spectraldl/__init__.py"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert str(ROOT / "ruff.toml") in out.stdout and "line_length = 140" in out.stdout
