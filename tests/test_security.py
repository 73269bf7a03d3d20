"""Security checks on the source: the pyarrow hotfix, no code-executing deserialisation, safe models.

Static checks parse ``lib/`` and ``jobs/`` with :mod:`ast` (strings and comments cannot trigger
them, aliases such as ``import pickle as p`` cannot hide a call); one runtime check proves that
importing ``spectraldl`` blocks the CVE-2023-47248 payload that plain pyarrow 10 executes.
"""
from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import ROOT

LIB = ROOT / "lib" / "spectraldl"
SOURCES = sorted(LIB.rglob("*.py")) + sorted((ROOT / "jobs").glob("*.py"))
#: Modules whose use reads Parquet/Arrow data with pyarrow underneath.
PYARROW_USERS = ("pyarrow", "petastorm")


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _imports(tree: ast.Module) -> dict[str, str]:
    """Local name -> dotted module or object it is bound to, for every import in the file."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                names[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                names[a.asname or a.name] = f"{node.module}.{a.name}"
    return names


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str:
    """``pickle.loads`` for ``p.loads`` after ``import pickle as p``; '' when not a plain name chain."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return ""
    parts.append(aliases.get(node.id, node.id))
    return ".".join(reversed(parts))


def _calls(path: Path):
    tree = _tree(path)
    aliases = _imports(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node, _dotted(node.func, aliases)


def _kw(call: ast.Call, name: str):
    for k in call.keywords:
        if k.arg == name:
            return k.value.value if isinstance(k.value, ast.Constant) else k.value
    return None


def _uses_pyarrow(tree: ast.Module) -> bool:
    for node in ast.walk(tree):
        mods = []
        if isinstance(node, ast.Import):
            mods = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            mods = [node.module]
        if any(m.split(".")[0] in PYARROW_USERS for m in mods):
            return True
        if isinstance(node, ast.Attribute) and node.attr in ("read_parquet", "to_parquet", "read_feather", "to_feather"):
            return True  # pandas' Parquet/Feather go through pyarrow
    return False


def test_sources_found():
    assert len(SOURCES) > 30 and LIB / "io" / "fits.py" in SOURCES


def test_pyarrow_hotfix_applies_to_every_pyarrow_user():
    """Every module using pyarrow (directly, through petastorm or pandas' Parquet) imports
    ``pyarrow_hotfix`` first: itself, or through the package ``__init__`` that Python always
    imports before any ``spectraldl.*`` module (the hotfix's first statement)."""
    init = _tree(LIB / "__init__.py")
    first_import = next((n for n in init.body if isinstance(n, (ast.Import, ast.ImportFrom))), None)
    package_fix = isinstance(first_import, ast.Import) and [a.name for a in first_import.names] == ["pyarrow_hotfix"]
    users = [p for p in SOURCES if _uses_pyarrow(_tree(p))]
    assert {p.name for p in users} >= {"sources.py", "explore.py"}  # the check sees what it must
    unprotected = [str(p.relative_to(ROOT)) for p in users
                   if "pyarrow_hotfix" not in _imports(_tree(p))
                   and not (package_fix and LIB in p.parents)]
    assert unprotected == []
    assert package_fix, "lib/spectraldl/__init__.py must import pyarrow_hotfix before anything else"


FORBIDDEN = {
    "pickle.load", "pickle.loads", "cPickle.load", "cPickle.loads", "dill.load", "dill.loads",
    "marshal.load", "marshal.loads", "shelve.open", "yaml.load", "yaml.unsafe_load", "yaml.full_load",
    "eval", "exec", "os.system", "os.popen", "pandas.read_pickle", "pd.read_pickle", "torch.load",
}


def test_no_code_executing_calls():
    found = []
    for path in SOURCES:
        for call, name in _calls(path):
            where = f"{path.relative_to(ROOT)}:{call.lineno}"
            if name in FORBIDDEN or name.endswith(".read_pickle"):
                found.append(f"{where} {name}(")
            if _kw(call, "shell") is True:
                found.append(f"{where} {name}(shell=True)")
            if _kw(call, "allow_pickle") is True:
                found.append(f"{where} {name}(allow_pickle=True)")
    assert found == []


def test_forbidden_call_check_is_not_blind(tmp_path):
    """The AST check above sees aliased and attribute calls, and ignores the same words in strings."""
    src = tmp_path / "bad.py"
    src.write_text(textwrap.dedent('''
        import pickle as p, os, subprocess
        from yaml import load
        x = p.loads(b"")
        y = load("a: 1")
        os.system("ls")
        subprocess.run("ls", shell=True)
        eval("1")
        """pickle.loads( eval( in a docstring"""
    '''))
    names = [n for _, n in _calls(src)]
    assert sorted(n for n in names if n in FORBIDDEN) == ["eval", "os.system", "pickle.loads", "yaml.load"]
    shell = [c for c, _ in _calls(src) if _kw(c, "shell") is True]
    assert len(shell) == 1 and names.count("eval") == 1


def test_models_loaded_with_safe_mode():
    """Every Keras ``load_model`` call passes ``safe_mode=True`` (no Lambda-layer bytecode runs)."""
    loads, unsafe = [], []
    for path in SOURCES:
        for call, name in _calls(path):
            if name.endswith("load_model") and ("keras" in name or name.startswith(("tf.", "tensorflow."))):
                loads.append(f"{path.relative_to(ROOT)}:{call.lineno}")
                if _kw(call, "safe_mode") is not True:
                    unsafe.append(loads[-1])
            if name.endswith(("saving.load_model", "models.load_model")) and "keras" not in name and not name.startswith("tf"):
                unsafe.append(f"{path.relative_to(ROOT)}:{call.lineno} {name}")
    assert len(loads) >= 2  # score and artifact at least: the check is not vacuous
    assert unsafe == []


PAYLOAD = textwrap.dedent('''
    import sys
    from pathlib import Path
    marker = Path(sys.argv[1])
    if sys.argv[2] == "protected":
        import spectraldl  # noqa: F401  (the package must install the hotfix)
    import pyarrow as pa

    class Payload(pa.PyExtensionType):  # what a hostile Parquet/Feather/IPC file carries
        def __init__(self):
            super().__init__(pa.int64())
        def __reduce__(self):
            return (marker.touch, ())   # stands for os.system(...)

    arr = pa.ExtensionArray.from_storage(Payload(), pa.array([1, 2], pa.int64()))
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, pa.schema([("x", arr.type)])) as w:
        w.write_batch(pa.record_batch([arr], names=["x"]))
    try:
        pa.ipc.open_stream(sink.getvalue()).read_all()
        print("read")
    except Exception as exc:
        print("refused", type(exc).__name__, str(exc).splitlines()[0])
''')


@pytest.mark.parametrize("mode", ["plain", "protected"])
def test_pyarrow_extension_payload(tmp_path, mode):
    """Plain pyarrow 10 runs the payload on read (so the test is live); after ``import spectraldl``
    the read is refused and nothing runs."""
    marker = tmp_path / "payload-ran"
    out = subprocess.run([sys.executable, "-c", PAYLOAD, str(marker), mode], capture_output=True,
                         text=True, timeout=120, env={"PYTHONPATH": str(ROOT / "lib"), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    if mode == "plain":
        assert marker.exists(), out.stdout
    else:
        assert not marker.exists()
        assert out.stdout.startswith("refused RuntimeError Disallowed deserialization of 'arrow.py_extension_type'"), out.stdout
