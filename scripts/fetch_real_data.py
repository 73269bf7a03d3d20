#!/usr/bin/env python3
"""Download the real LAMOST and Ondřejov test files from their public sources and verify them.

Every file is listed in ``scripts/real_data/sources.tsv`` (``PROVENANCE.tsv``'s columns: the
file's place in the data folder, the public repository, the path in it, the commit, sha256,
size...). Each is fetched from ``BASE/{repository}/{commit}/{path}`` (GitHub's raw-file host by
default), its sha256 checked, and written under a temporary name that is renamed only once it
matches, so an interrupted or failed run leaves no wrong file. Files already there with the right
sha256 are kept; rows whose repository is ``.`` come from this repository. ``PROVENANCE.tsv`` and a
README are written beside the files once every file is there (the tests take a folder with
``PROVENANCE.tsv`` for complete data).

    python scripts/fetch_real_data.py                      # where the tests look (or $SPECTRALDL_REAL_DATA)
    python scripts/fetch_real_data.py --dest DIR --base-url file:///mirror    # a local mirror

``--base-url`` takes ``http(s)://`` and ``file://`` URLs or a plain directory laid out as
``{repository}/{commit}/{path}``. Exit status: 0 all files present and verified, 1 some file
missing at the source or with a wrong checksum, 3 no network (said in one line).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from realdata import NOT_IN_PROVENANCE, SOURCES, find_real_data, read_sources  # noqa: E402

DEFAULT_BASE_URL = "https://raw.githubusercontent.com"
COLUMNS = ("file", "source_repo", "source_path", "commit", "sha256", "bytes", "format", "data_release", "class")
README = """# Real spectra for tests and checks

Fetched by `scripts/fetch_real_data.py` from the public repositories named in `PROVENANCE.tsv`
(repository, path, commit); every file's sha256 was checked. Use them as read-only fixtures.

LAMOST data are public after their proprietary period; publications using them acknowledge
the Guoshoujing Telescope (LAMOST). Ondřejov 2 m (Perek telescope) spectra belong to the
Astronomical Institute of the Czech Academy of Sciences and are free for science and
teaching with citation. Keep this README and `PROVENANCE.tsv` beside the files.
"""


class NoNetwork(RuntimeError):
    """The source host cannot be reached at all (no route, no DNS, connection refused)."""


class Missing(RuntimeError):
    """The source answered but does not have the file."""


def source_url(base: str, row: dict[str, str]) -> str:
    """Where ``row``'s file is published: ``{base}/{repository}/{commit}/{path}`` (path quoted)."""
    path = urllib.parse.quote(row["source_path"])
    return f"{base.rstrip('/')}/{row['source_repo']}/{row['commit']}/{path}"


def read_source(base: str, row: dict[str, str], timeout: float = 60.0) -> bytes:
    """The bytes of ``row``'s file from ``base`` (URL or directory) or from this repository.

    Raises
    ------
    NoNetwork
        The host could not be reached.
    Missing
        The host answered without the file (HTTP error, no such local file).
    """
    if row["source_repo"] == ".":
        local = ROOT / row["source_path"]
        if not local.is_file():
            raise Missing(f"{local} is not in this checkout")
        return local.read_bytes()
    if "://" not in base:  # a plain directory laid out as {repo}/{commit}/{path}
        local = Path(base) / row["source_repo"] / row["commit"] / row["source_path"]
        if not local.is_file():
            raise Missing(f"no {local}")
        return local.read_bytes()
    url = source_url(base, row)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.read()
    except urllib.error.HTTPError as exc:
        raise Missing(f"{url}: HTTP {exc.code}") from None
    except urllib.error.URLError as exc:
        if base.startswith("file:"):
            raise Missing(f"{url}: {exc.reason}") from None
        raise NoNetwork(f"cannot reach {urllib.parse.urlsplit(url).netloc}: {exc.reason}") from None
    except (TimeoutError, ConnectionError) as exc:
        raise NoNetwork(f"cannot reach {urllib.parse.urlsplit(url).netloc}: {exc}") from None


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_verified(dest: Path, row: dict[str, str], data: bytes) -> None:
    """Write ``data`` as ``dest/row['file']`` if its sha256 is the listed one, else raise ValueError."""
    got = hashlib.sha256(data).hexdigest()
    if got != row["sha256"]:
        raise ValueError(f"{row['file']}: sha256 {got} differs from the listed {row['sha256']}")
    target = dest / row["file"]
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".fetch-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise


def write_provenance(dest: Path, rows: list[dict[str, str]]) -> None:
    """``PROVENANCE.tsv`` of the spectra (the label files are listed in sources.tsv only)."""
    lines = ["\t".join(COLUMNS)]
    lines += ["\t".join(r.get(c) or "" for c in COLUMNS) for r in rows if not r["file"].startswith(NOT_IN_PROVENANCE)]
    (dest / "PROVENANCE.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if not (dest / "README.md").exists():
        (dest / "README.md").write_text(README, encoding="utf-8")


def fetch(dest: Path, base: str, rows: list[dict[str, str]], timeout: float = 60.0) -> dict[str, list[str]]:
    """Fetch and verify every row into ``dest``; returns the files ``fetched``, ``present``
    (already there and verified), ``missing`` and ``bad`` (wrong sha256).

    Raises
    ------
    NoNetwork
        At the first file whose host cannot be reached (nothing else would work either).
    """
    out: dict[str, list[str]] = {"fetched": [], "present": [], "missing": [], "bad": []}
    for row in rows:
        target = dest / row["file"]
        if target.is_file() and sha256_of(target) == row["sha256"]:
            out["present"].append(row["file"])
            continue
        try:
            data = read_source(base, row, timeout)
            write_verified(dest, row, data)
        except Missing as exc:
            print(f"fetch_real_data: missing: {exc}", file=sys.stderr)
            out["missing"].append(row["file"])
            continue
        except ValueError as exc:
            print(f"fetch_real_data: bad checksum: {exc}", file=sys.stderr)
            out["bad"].append(row["file"])
            continue
        out["fetched"].append(row["file"])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="fetch_real_data.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--dest", type=Path, default=None,
                    help="where to lay the files out (default: $SPECTRALDL_REAL_DATA or where the tests look: "
                         f"{find_real_data()})")
    ap.add_argument("--base-url", default=os.environ.get("SPECTRALDL_REAL_DATA_BASE_URL", DEFAULT_BASE_URL),
                    help="http(s):// or file:// URL, or a directory, laid out as {repository}/{commit}/{path} "
                         f"(default {DEFAULT_BASE_URL})")
    ap.add_argument("--sources", type=Path, default=SOURCES, help=f"the list of files (default {SOURCES})")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per download")
    args = ap.parse_args(argv)
    dest = args.dest or find_real_data()
    rows = read_sources(args.sources)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        res = fetch(dest, args.base_url, rows, args.timeout)
    except NoNetwork as exc:
        print(f"fetch_real_data: no network ({exc}); nothing more fetched into {dest}", file=sys.stderr)
        return 3
    complete = not (res["missing"] or res["bad"])
    if complete:  # the tests take a folder with PROVENANCE.tsv for complete data
        write_provenance(dest, rows)
    print(f"fetch_real_data: {len(res['fetched'])} fetched, {len(res['present'])} already present, "
          f"{len(res['missing'])} missing, {len(res['bad'])} with a wrong sha256, in {dest}", file=sys.stderr)
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
