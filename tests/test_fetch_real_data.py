"""scripts/fetch_real_data.py against local sources only (a directory and file:// URLs), never the
network: layout, sha256 checks, idempotence, a missing or corrupt source, no network."""
from __future__ import annotations

import hashlib
import importlib.util
import socket
import subprocess
import sys

import pytest

from conftest import ROOT
from realdata import read_sources

SCRIPT = ROOT / "scripts" / "fetch_real_data.py"
COLUMNS = ("file", "source_repo", "source_path", "commit", "sha256", "bytes", "format", "data_release", "class")


def _script():
    spec = importlib.util.spec_from_file_location("fetch_real_data", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _row(file, repo, path, commit, data, fmt="old LRS: primary image 5 x NAXIS1"):
    return dict(zip(COLUMNS, (file, repo, path, commit, hashlib.sha256(data).hexdigest(), str(len(data)), fmt,
                              "DR7", "STAR")))


@pytest.fixture()
def mirror(tmp_path):
    """A mirror laid out as {repo}/{commit}/{path}, and a sources.tsv listing it plus a file of this
    repository (``.``)."""
    files = {("lamost/alice_x/a b.fits", "alice/x", "data/a b.fits", "c0ffee"): b"SIMPLE  = T" + b"\0" * 100,
             ("lamost/alice_x/c.fits.gz", "alice/x", "data/c.fits.gz", "c0ffee"): b"\x1f\x8b" + b"\1" * 50,
             ("labels/l.csv", "bob/y", "notebooks/l.csv", "beef"): b"id,label\nx,1\n"}
    rows = []
    for (file, repo, path, commit), data in files.items():
        p = tmp_path / "mirror" / repo / commit / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        rows.append(_row(file, repo, path, commit, data))
    pairs = ROOT / "scripts/real_data/cross-matched-pairs.csv"
    rows.append(_row("labels/cross-matched-pairs.csv", ".", "scripts/real_data/cross-matched-pairs.csv", "",
                     pairs.read_bytes()))
    tsv = tmp_path / "sources.tsv"
    tsv.write_text("\t".join(COLUMNS) + "\n" + "".join("\t".join(r.values()) + "\n" for r in rows))
    return tmp_path / "mirror", tsv, rows


@pytest.mark.parametrize("as_url", [False, True], ids=["directory", "file-url"])
def test_fetch_lays_out_verified_files_and_is_idempotent(mirror, tmp_path, capsys, as_url):
    src, tsv, rows = mirror
    dest = tmp_path / "real"
    base = src.as_uri() if as_url else str(src)
    fetch = _script()
    assert fetch.main(["--dest", str(dest), "--base-url", base, "--sources", str(tsv)]) == 0
    assert "4 fetched, 0 already present, 0 missing, 0 with a wrong sha256" in capsys.readouterr().err
    for r in rows:
        origin = ROOT / r["source_path"] if r["source_repo"] == "." else src / r["source_repo"] / r["commit"] / r["source_path"]
        assert (dest / r["file"]).read_bytes() == origin.read_bytes()
    prov = (dest / "PROVENANCE.tsv").read_text().splitlines()
    assert prov[0] == "\t".join(COLUMNS) and [line.split("\t")[0] for line in prov[1:]] == [
        "lamost/alice_x/a b.fits", "lamost/alice_x/c.fits.gz"]  # the spectra; label files are not in it
    assert "Guoshoujing" in (dest / "README.md").read_text()
    assert not list(dest.rglob(".fetch-*"))
    assert fetch.main(["--dest", str(dest), "--base-url", base, "--sources", str(tsv)]) == 0
    assert "0 fetched, 4 already present" in capsys.readouterr().err


def test_wrong_checksum_and_missing_file_are_refused(mirror, tmp_path, capsys):
    src, tsv, rows = mirror
    (src / "alice/x/c0ffee/data/c.fits.gz").write_bytes(b"<html>rate limited</html>")  # not the listed bytes
    (src / "bob/y/beef/notebooks/l.csv").unlink()
    dest = tmp_path / "real"
    fetch = _script()
    assert fetch.main(["--dest", str(dest), "--base-url", src.as_uri(), "--sources", str(tsv)]) == 1
    err = capsys.readouterr().err
    assert "bad checksum: lamost/alice_x/c.fits.gz" in err and "missing:" in err and "l.csv" in err
    assert "2 fetched, 0 already present, 1 missing, 1 with a wrong sha256" in err
    assert not (dest / "lamost/alice_x/c.fits.gz").exists() and not (dest / "labels/l.csv").exists()
    assert not (dest / "PROVENANCE.tsv").exists()  # incomplete: the tests must not take it for the data
    # with the sources mended, a wrong file already in place is replaced by the right one
    (src / "alice/x/c0ffee/data/c.fits.gz").write_bytes(b"\x1f\x8b" + b"\1" * 50)
    (src / "bob/y/beef/notebooks/l.csv").write_bytes(b"id,label\nx,1\n")
    (dest / "lamost/alice_x/a b.fits").write_bytes(b"stale")
    assert fetch.main(["--dest", str(dest), "--base-url", str(src), "--sources", str(tsv)]) == 0
    assert "3 fetched, 1 already present, 0 missing" in capsys.readouterr().err
    assert (dest / "lamost/alice_x/a b.fits").read_bytes() == b"SIMPLE  = T" + b"\0" * 100
    assert (dest / "PROVENANCE.tsv").is_file()


def test_without_network_one_line_and_nonzero(mirror, tmp_path):
    _, tsv, _ = mirror
    with socket.socket() as s:  # a port nobody listens on: the connection is refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = subprocess.run([sys.executable, str(SCRIPT), "--dest", str(tmp_path / "real"), "--sources", str(tsv),
                          "--base-url", f"http://127.0.0.1:{port}", "--timeout", "5"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 3 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fetch_real_data: no network (cannot reach 127.0.0.1:"), out.stderr
    assert not (tmp_path / "real" / "PROVENANCE.tsv").exists()


def test_source_url_is_the_raw_file_of_the_commit():
    row = {"source_repo": "podondra/bt-spectraldl", "commit": "8010ed4f", "source_path": "notebooks/data/a b.csv"}
    assert _script().source_url("https://raw.githubusercontent.com/", row) == \
        "https://raw.githubusercontent.com/podondra/bt-spectraldl/8010ed4f/notebooks/data/a%20b.csv"


@pytest.mark.realdata
def test_the_committed_list_fetches_the_real_data(real_dir, tmp_path):
    """A mirror of the real folder laid out as the public repositories are: fetching the committed
    list from it rebuilds the folder, PROVENANCE.tsv byte for byte."""
    src = tmp_path / "mirror"
    rows = read_sources()
    for r in rows:
        if r["source_repo"] != ".":
            p = src / r["source_repo"] / r["commit"] / r["source_path"]
            p.parent.mkdir(parents=True, exist_ok=True)
            p.symlink_to(real_dir / r["file"])
    dest = tmp_path / "real"
    assert _script().main(["--dest", str(dest), "--base-url", str(src)]) == 0
    assert (dest / "PROVENANCE.tsv").read_bytes() == (real_dir / "PROVENANCE.tsv").read_bytes()
    got = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    want = sorted(str(p.relative_to(real_dir)) for p in real_dir.rglob("*") if p.is_file())
    assert got == want and len(got) == 165 + 2 + 2  # spectra, label files, PROVENANCE.tsv and README.md
    for r in rows:
        assert (dest / r["file"]).read_bytes() == (real_dir / r["file"]).read_bytes()
