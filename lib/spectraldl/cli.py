"""What every job's entry point shares: arguments, config, logging, exit codes.

A job in ``jobs/`` is a dozen lines: a docstring, an ``add_arguments`` and a ``main`` that calls
library code and returns the one-line summary that ends the log. Exit codes follow
CONVENTIONS.md: 0 success, 1 failure of the job's own work, 2 bad arguments or configuration.
"""
from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from typing import Any, Callable

from .config import ConfigError, load_config
from .errors import JobError, UsageError
from .session import setup_logging

log = logging.getLogger("spectraldl")


#: The job could not do its work (exit code 1); the message says why.
JobFailed = JobError


@dataclass
class JobContext:
    """What a job's ``main`` receives: parsed arguments and the layered config."""

    name: str
    args: argparse.Namespace
    config: dict[str, Any]

    def spark(self):
        """The job's SparkSession (built on first use)."""
        from .session import get_spark
        return get_spark(f"spectraldl-{self.name}", self.config)


def add_break_lock(p: argparse.ArgumentParser) -> None:
    """``--break-lock``, which every job that writes to the warehouse accepts."""
    p.add_argument("--break-lock", action="store_true",
                   help="remove another run's warehouse lock first (a run that crashed and left it)")


def build_parser(name: str, doc: str | None, add_arguments: Callable[[argparse.ArgumentParser], None]) -> argparse.ArgumentParser:
    # no abbreviations: "--conf K=V" after the job name must not pass for "--config FILE"
    p = argparse.ArgumentParser(prog=f"spark-submit.sh {name}", description=(doc or "").strip(), allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Wrapper options go before the job's name: "
                                       "./spark-submit.sh [--master URL] [--conf KEY=VALUE] JOB ...")
    add_arguments(p)
    g = p.add_argument_group("configuration (normally passed by spark-submit.sh)")
    g.add_argument("--env", default="local", help="config environment: conf/<env>.toml (default: local)")
    g.add_argument("--config", default=None, help="a TOML file layered over conf/")
    g.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting, e.g. --set preprocess.n_points=140 (repeatable)")
    return p


def run(name: str, doc: str | None, add_arguments: Callable[[argparse.ArgumentParser], None],
        main: Callable[[JobContext], str], argv: list[str] | None = None) -> int:
    """Parse, configure, run ``main`` and turn the outcome into an exit code."""
    parser = build_parser(name, doc, add_arguments)
    args = parser.parse_args(argv)  # exits 2 on bad arguments
    try:
        config = load_config(args.env, args.config, args.set)
    except ConfigError as exc:
        setup_logging()
        log.error("%s: bad configuration: %s", name, exc)
        return 2
    setup_logging(config["logging"]["level"])
    try:
        summary = main(JobContext(name, args, config))
    except (UsageError, ConfigError) as exc:  # not any ValueError: a bug must not pass for a typo
        log.error("%s: bad arguments: %s", name, exc)
        return 2
    except JobError as exc:
        log.error("%s failed: %s", name, exc)
        return 1
    except Exception:
        log.exception("%s failed with an unexpected error", name)
        return 1
    log.info("%s", summary)
    return 0


def entry(name: str, doc: str | None, add_arguments, main) -> None:
    """``if __name__ == "__main__": entry(...)`` in a job file."""
    sys.exit(run(name, doc, add_arguments, main))
