"""The built package is a complete install: a wheel built from the repository, installed into a
folder of its own, runs an ingest with ``python -m spectraldl`` from outside the repository, with
its own configuration; ``python -m spectraldl`` / the ``spectraldl`` command; the --py-files zip."""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from conftest import ROOT
from spectraldl import __main__ as cli_main
from spectraldl.config import conf_dir

CONF_FILES = sorted(p.name for p in (ROOT / "conf").iterdir() if p.suffix == ".toml" or p.name == "log4j2.properties")
JOBS = sorted(p.stem for p in (ROOT / "jobs").glob("*.py"))


# -- python -m spectraldl in a checkout ------------------------------------------------------------------
def test_checkout_reads_conf_and_jobs_in_place(monkeypatch):
    monkeypatch.delenv("SPECTRALDL_CONF_DIR", raising=False)
    assert conf_dir() == ROOT / "conf" and cli_main.jobs_dir() == ROOT / "jobs"
    assert sorted(cli_main.list_jobs()) == JOBS and len(JOBS) == 8
    assert cli_main.list_jobs()["ingest"].startswith("Ingest LAMOST spectra")
    assert cli_main.job_path("score") == ROOT / "jobs" / "score.py"
    with pytest.raises(cli_main.UsageProblem, match="no such job"):
        cli_main.job_path("../conf/defaults")


def test_help_lists_jobs_and_says_how_to_submit_to_a_cluster(capsys):
    assert cli_main.main(["--help"]) == 0
    out = capsys.readouterr().out
    for job in JOBS:
        assert f"\n  {job:<10} " in out
    assert "spark-submit --master yarn --py-files" in out and "./spark-submit.sh --master URL JOB ARGS" in out
    assert cli_main.main([]) == 2 and "usage: python -m spectraldl" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--master", "yarn", "ingest"], "local mode only"),
    (["--master=spark://h:7077", "ingest"], "local mode only"),
    (["nosuchjob"], "no such job 'nosuchjob'"),
    (["--conf", "novalue", "ingest"], "expected KEY=VALUE"),
    (["--bogus", "ingest"], "unknown option --bogus"),
    (["--master"], "--master needs a value"),
    (["--env", "local"], "no job given"),
])
def test_bad_wrapper_arguments_exit_2(argv, message, capsys):
    assert cli_main.main(argv) == 2
    assert message in capsys.readouterr().err


def test_wrapper_options_become_job_arguments_like_spark_submit_sh(monkeypatch):
    monkeypatch.delenv("SPECTRALDL_CONF_DIR", raising=False)
    opts, rest = cli_main.split_args(["--master", "local[2]", "--conf", "spark.sql.shuffle.partitions=3",
                                      "--conf=preprocess.n_points=150", "--env", "local", "ingest", "--input", "x"])
    assert rest == ["ingest", "--input", "x"]
    argv = cli_main.job_argv(opts)
    sets = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
    assert argv[:2] == ["--env", "local"]
    assert sets[:3] == ["spark.sql.shuffle.partitions=3", "preprocess.n_points=150", "spark.master=local[2]"]
    log4j = f"-Dlog4j2.configurationFile=file:{ROOT / 'conf/log4j2.properties'}"
    assert sets[3] == f"spark.driver.extraJavaOptions={log4j} -XX:TieredStopAtLevel=1 -XX:+UseSerialGC"  # + conf/local.toml's
    from spectraldl.config import load_config
    cfg = load_config("local", None, sets)
    assert cfg["spark"]["spark.master"] == "local[2]" and cfg["preprocess"]["n_points"] == 150
    opts, _ = cli_main.split_args(["--conf", "spark.driver.extraJavaOptions=-Dx=1", "ingest"])
    assert cli_main.job_argv(opts)[-1] == "spark.driver.extraJavaOptions=-Dx=1"  # the user's wins


def test_py_files_zip_holds_package_model_and_conf(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("SPECTRALDL_CONF_DIR", raising=False)
    assert cli_main.main(["--job-path", "ingest"]) == 0 and capsys.readouterr().out == f"{ROOT / 'jobs' / 'ingest.py'}\n"
    assert cli_main.main(["--zip", str(tmp_path)]) == 0
    path = tmp_path / "spectraldl.zip"
    assert capsys.readouterr().out == f"{path}\n"
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
        for f in CONF_FILES:
            assert z.read(f"spectraldl/_conf/{f}") == (ROOT / "conf" / f).read_bytes()
        assert {"spectraldl/__init__.py", "spectraldl/io/reader.py", "spectraldl/models/default/model.keras",
                "spectraldl/report/templates/index.html"} <= names
        assert not any("__pycache__" in n or n.endswith(".pyc") or "/_jobs/" in n for n in names)
    # the same sources give the same bytes: the archive in place (which another run's driver may be
    # importing from) is left alone, and nothing is left aside
    inode = path.stat().st_ino
    assert cli_main.build_zip(tmp_path) == path and path.stat().st_ino == inode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spectraldl.zip"]
    # spark-submit.sh ships the same archive on a cluster master (a dry run only names it)
    env = {**os.environ, "SPECTRALDL_DRY_RUN": "1"}
    out = subprocess.run([str(ROOT / "spark-submit.sh"), "--master", "spark://127.0.0.1:7077", "ingest", "--input", "x",
                          "--warehouse", "w"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    cmd = shlex.split(out.stdout)
    assert cmd[cmd.index("--py-files") + 1] == str(ROOT / "dist" / "spectraldl.zip")
    assert cmd[cmd.index("--env") + 1] == "cluster"


# -- the wheel -----------------------------------------------------------------------------------------
def _copy_source(dst: Path) -> None:
    """What the build reads, copied (the build writes build/ and *.egg-info beside setup.py)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "_conf", "_jobs", "*.egg-info")
    for name in ("setup.py", "MANIFEST.in", "README.md"):
        shutil.copy2(ROOT / name, dst / name)
    for name in ("lib", "conf", "jobs"):
        shutil.copytree(ROOT / name, dst / name, ignore=ignore)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src, dist = tmp / "src", tmp / "dist"
    src.mkdir()
    _copy_source(src)
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                          "--disable-pip-version-check", "-w", str(dist), str(src)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    (whl,) = dist.glob("spectraldl-*.whl")
    return whl


def test_wheel_is_a_complete_install(wheel, synth_archive, tmp_path):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for f in CONF_FILES:  # the defaults users edit in conf/, copied at build time, not committed twice
            assert z.read(f"spectraldl/_conf/{f}") == (ROOT / "conf" / f).read_bytes()
        for job in JOBS:
            assert z.read(f"spectraldl/_jobs/{job}.py") == (ROOT / "jobs" / f"{job}.py").read_bytes()
        assert {"spectraldl/__main__.py", "spectraldl/models/default/model.keras", "spectraldl/models/default/model.json",
                "spectraldl/report/templates/index.html"} <= names
        entry = z.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
        assert "spectraldl = spectraldl.__main__:main" in entry
        assert not any(n.startswith(("lib/", "tests/", "conf/", "jobs/")) or "__pycache__" in n for n in names)
    site = tmp_path / "site"
    out = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                          "--disable-pip-version-check", "--target", str(site), str(wheel)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    # Outside the repository, nothing pointing at it: the installed copy, its own conf and jobs.
    env = {k: v for k, v in os.environ.items() if k not in ("SPECTRALDL_CONF_DIR", "PYTHONPATH")}
    env["PYTHONPATH"] = str(site)
    work = tmp_path / "elsewhere"
    work.mkdir()

    def run(*args, timeout=300):
        return subprocess.run(list(args), capture_output=True, text=True, env=env, cwd=work, timeout=timeout)

    probe = run(sys.executable, "-c", "import spectraldl, spectraldl.config as c, spectraldl.__main__ as m; "
                                      "print(spectraldl.__file__); print(c.conf_dir()); print(m.jobs_dir())")
    assert probe.returncode == 0, probe.stderr
    pkg = site.resolve() / "spectraldl"
    assert probe.stdout.split() == [str(pkg / "__init__.py"), str(pkg / "_conf"), str(pkg / "_jobs")]
    helped = run(str(site / "bin" / "spectraldl"), "--help")  # the console script
    assert helped.returncode == 0 and "\n  ingest     Ingest LAMOST spectra" in helped.stdout, helped.stderr

    wh = tmp_path / "wh"
    ingest = run(sys.executable, "-m", "spectraldl", "--master", "local[2]", "--conf", "ingest.paths_per_task=16",
                 "ingest", "--input", str(synth_archive), "--warehouse", str(wh))
    assert ingest.returncode == 0, ingest.stderr[-4000:]
    truth = pd.read_csv(synth_archive / "truth.csv")
    want_ok = int((~truth["dead_fibre"]).sum())
    assert len(truth) == 48 and want_ok == 47
    (summary_file,) = (wh / "runs").glob("ingest-*.json")
    summary = json.loads(summary_file.read_text())
    assert (summary["seen"], summary["ingested"], summary["rejected"]) == (48, want_ok, 48 - want_ok)
    rows = sum(pq.ParquetFile(p).metadata.num_rows for p in (wh / "spectra").rglob("*.parquet")
               if not any(part.startswith((".", "_")) for part in p.relative_to(wh / "spectra").parts))
    assert rows == want_ok
