"""Every example in the library's docstrings runs and prints what it says (doctest). Modules are
found by their ``>>>`` lines, so a new example is checked without listing it here."""
from __future__ import annotations

import doctest
import importlib
import io
import re

import pytest

from conftest import ROOT

PACKAGE = ROOT / "lib" / "spectraldl"
MODULES = sorted(
    ".".join(("spectraldl",) + p.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__")
    for p in PACKAGE.rglob("*.py") if re.search(r"^\s*>>> ", p.read_text(encoding="utf-8"), re.MULTILINE))


def test_the_examples_are_found():
    assert {"spectraldl.ingest", "spectraldl.io", "spectraldl.io.reader", "spectraldl.synth"} <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples(module):
    mod = importlib.import_module(module)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = io.StringIO()
    for test in doctest.DocTestFinder(exclude_empty=True).find(mod, module):
        runner.run(test, out=report.write)
    failed, attempted = runner.summarize(verbose=False)
    assert attempted > 0, f"{module}: no example ran"
    assert failed == 0, report.getvalue()
