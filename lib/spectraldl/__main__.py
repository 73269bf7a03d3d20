"""``python -m spectraldl`` and the ``spectraldl`` command: run a job in local mode, in this process.

    python -m spectraldl [--master local[N]] [--conf KEY=VALUE ...] [--config FILE] [--env ENV] JOB [JOB ARGS]
    python -m spectraldl --help | --zip DIR | --job-path JOB

It does what ``./spark-submit.sh JOB ARGS`` does in local mode, without the repository's wrapper,
in whatever environment the package is installed in (a venv, a cluster's conda env): the Spark
workers run this interpreter, ``--conf spark.*=...`` goes to Spark, any other ``--conf`` key
overrides a spectraldl setting, and the driver-launch settings of the config reach the JVM (see
:func:`spectraldl.session.get_spark`). Cluster masters need the package shipped to the executors:
``--help`` says how (Spark's ``spark-submit`` with ``--zip``'s archive as ``--py-files``).

Jobs come from the repository's ``jobs/`` in a checkout and from the copy built into the package
(``spectraldl/_jobs``) in an installed wheel; the configuration likewise (see
:func:`spectraldl.config.conf_dir`).
"""
from __future__ import annotations

import filecmp
import importlib.util
import os
import sys
import tempfile
import zipfile
from pathlib import Path
from types import ModuleType

PACKAGE_DIR = Path(__file__).resolve().parent
LOCAL_MASTERS = ("local", "local[")
#: Wrapper options taking a value, as in spark-submit.sh.
VALUE_OPTIONS = ("--master", "--conf", "--config", "--env")


class UsageProblem(ValueError):
    """Bad wrapper arguments (exit code 2)."""


def jobs_dir() -> Path:
    """The job entry points: the checkout's ``jobs/`` (package imported from ``lib/spectraldl``),
    else the copy inside the built package (``spectraldl/_jobs``)."""
    if PACKAGE_DIR.parent.name == "lib" and (PACKAGE_DIR.parent.parent / "jobs").is_dir():
        return PACKAGE_DIR.parent.parent / "jobs"
    return PACKAGE_DIR / "_jobs"


def list_jobs() -> dict[str, str]:
    """``{job name: first line of its docstring}``, sorted by name."""
    out = {}
    for f in sorted(jobs_dir().glob("*.py")):
        if f.stem.startswith("_"):
            continue
        first = f.read_text(encoding="utf-8").splitlines()[0] if f.stat().st_size else ""
        out[f.stem] = first.strip().strip('"').strip()
    return out


def job_path(name: str) -> Path:
    """The entry-point file of job ``name``; raises :class:`UsageProblem` for an unknown job."""
    if not name.replace("_", "").isalpha() or not name.islower() or name not in list_jobs():
        raise UsageProblem(f"no such job {name!r} (python -m spectraldl --help lists them)")
    return jobs_dir() / f"{name}.py"


def load_job(name: str) -> ModuleType:
    """Import job ``name``'s entry point (``add_arguments`` and ``main``) without running it."""
    path = job_path(name)
    spec = importlib.util.spec_from_file_location(f"spectraldl_job_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_zip(out_dir: str | os.PathLike) -> Path:
    """Write ``out_dir/spectraldl.zip``: the package (model and templates included) and the
    configuration in force as ``spectraldl/_conf``, for ``spark-submit --py-files``.

    The archive is written aside and renamed into place only when its bytes differ from the one
    there: a driver of another run importing from that archive (zipimport reopens it by name)
    never sees it change under it while the sources stay the same.

    Returns
    -------
    pathlib.Path
        The archive's path.
    """
    from .config import conf_dir

    out = Path(out_dir) / "spectraldl.zip"
    out.parent.mkdir(parents=True, exist_ok=True)
    skip = {"__pycache__", "_conf", "_jobs"}
    fd, tmp = tempfile.mkstemp(prefix=".spectraldl-", suffix=".zip", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as z:
            for p in sorted(PACKAGE_DIR.rglob("*")):
                rel = p.relative_to(PACKAGE_DIR)
                if p.is_file() and not skip.intersection(rel.parts) and p.suffix != ".pyc":
                    z.write(p, f"spectraldl/{rel.as_posix()}")
            conf = conf_dir()
            for f in sorted(conf.iterdir(), key=lambda t: t.name):
                if f.name.endswith(".toml") or f.name == "log4j2.properties":
                    z.writestr(zipfile.ZipInfo(f"spectraldl/_conf/{f.name}", (1980, 1, 1, 0, 0, 0)), f.read_bytes(),
                               zipfile.ZIP_DEFLATED)
        if out.is_file() and filecmp.cmp(tmp, out, shallow=False):
            os.unlink(tmp)
        else:
            os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return out


def usage() -> str:
    lines = [
        "usage: python -m spectraldl [--master local[N]] [--conf KEY=VALUE ...] [--config FILE] [--env ENV] "
        "JOB [JOB ARGS]",
        "       python -m spectraldl --help | --zip DIR | --job-path JOB",
        "       (the 'spectraldl' command is the same)",
        "",
        "Runs a job in local mode in this process, like ./spark-submit.sh JOB ARGS; Spark's workers run",
        f"this Python ({sys.executable}).",
        "",
        "options (before JOB):",
        "  --master local[N]  local master (default local[*])",
        "  --conf KEY=VALUE   spark.* settings go to Spark; any other dotted key overrides a spectraldl setting",
        "  --config FILE      a TOML file layered over the configuration defaults",
        "  --env ENV          config environment (default local)",
        "  --zip DIR          write DIR/spectraldl.zip (package + configuration) for spark-submit --py-files",
        "  --job-path JOB     print the path of JOB's entry-point script",
        "",
        "jobs:",
    ]
    lines += [f"  {name:<10} {doc}" for name, doc in list_jobs().items()]
    lines += [
        "",
        "'python -m spectraldl JOB --help' lists a job's arguments.",
        "",
        "On a cluster (spark://, yarn, k8s://), ship the package to the executors with Spark's spark-submit:",
        '  spark-submit --master yarn --py-files "$(python -m spectraldl --zip dist)" \\',
        '      "$(python -m spectraldl --job-path ingest)" --env cluster --input hdfs:///lamost --warehouse hdfs:///w',
        "(the executors need the same Python packages: --archives a venv-pack archive, see the README), or from a",
        "checkout of the repository: ./spark-submit.sh --master URL JOB ARGS, which does all of this.",
    ]
    return "\n".join(lines)


def split_args(argv: list[str]) -> tuple[dict[str, object], list[str]]:
    """Wrapper options before the job name, and the job name with its own arguments after it."""
    opts: dict[str, object] = {"master": None, "conf": [], "config": None, "env": "local"}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("-"):
            return opts, argv[i:]
        key, eq, value = arg.partition("=")
        if key not in VALUE_OPTIONS:
            raise UsageProblem(f"unknown option {arg} (see --help)")
        if not eq:
            if i + 1 >= len(argv):
                raise UsageProblem(f"{key} needs a value")
            value, i = argv[i + 1], i + 1
        if key == "--conf":
            if "=" not in value:
                raise UsageProblem(f"--conf {value}: expected KEY=VALUE")
            opts["conf"].append(value)  # type: ignore[union-attr]
        else:
            opts[key[2:]] = value
        i += 1
    return opts, []


def job_argv(opts: dict[str, object]) -> list[str]:
    """The configuration arguments the job gets (as spark-submit.sh passes them), plus the local
    master and the packaged log4j2 settings for the JVM this process starts."""
    from .config import ConfigError, conf_dir, load_config

    argv = ["--env", str(opts["env"])] + (["--config", str(opts["config"])] if opts["config"] else [])
    sets = list(opts["conf"])  # type: ignore[arg-type]
    if opts["master"]:
        sets.append(f"spark.master={opts['master']}")
    log4j = conf_dir().joinpath("log4j2.properties")
    given = any(s.startswith("spark.driver.extraJavaOptions=") for s in sets)
    if isinstance(log4j, Path) and log4j.is_file() and not given:
        try:
            cfg = load_config(str(opts["env"]), opts["config"], sets)  # type: ignore[arg-type]
        except ConfigError:
            cfg = None  # the job itself reports the bad configuration (exit 2)
        if cfg is not None:
            java = cfg["spark"].get("spark.driver.extraJavaOptions", "")
            sets.append(f"spark.driver.extraJavaOptions=-Dlog4j2.configurationFile=file:{log4j} {java}".strip())
    for s in sets:
        argv += ["--set", s]
    return argv


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m spectraldl`` and the ``spectraldl`` console script; returns the
    exit code (0 success, 1 the job failed, 2 bad arguments or configuration)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    try:
        if argv[0] in ("--zip", "--job-path"):
            if len(argv) != 2:
                raise UsageProblem(f"{argv[0]} takes one argument")
            print(build_zip(argv[1]) if argv[0] == "--zip" else job_path(argv[1]))
            return 0
        opts, rest = split_args(argv)
        if not rest:
            raise UsageProblem("no job given (see --help)")
        master = opts["master"]
        if master and not str(master).startswith(LOCAL_MASTERS):
            raise UsageProblem(f"--master {master}: python -m spectraldl runs jobs in local mode only; "
                               "for a cluster see 'python -m spectraldl --help'")
        job = load_job(rest[0])
        jargs = job_argv(opts)
    except UsageProblem as exc:
        print(f"spectraldl: {exc}", file=sys.stderr)
        return 2
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from .cli import run

    return run(rest[0], job.__doc__, job.add_arguments, job.main, jargs + rest[1:])


if __name__ == "__main__":
    sys.exit(main())
