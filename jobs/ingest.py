"""Ingest LAMOST spectra: files -> normalised vectors in W/spectra, bad files in W/rejects."""
from spectraldl.cli import JobFailed, entry


def add_arguments(p):
    p.add_argument("--input", required=True, help="directory (recursive), glob, or text file of paths")
    p.add_argument("--warehouse", required=True, help="warehouse root (local path or Hadoop URI)")
    p.add_argument("--retry-rejects", action="store_true", help="parse again unchanged files rejected before")
    p.add_argument("--break-lock", action="store_true", help="remove a stale lock left by a crashed run")


def main(ctx):
    from spectraldl.ingest import CountMismatch, run_ingest, summary_line
    from spectraldl.warehouse import LockedError
    a = ctx.args
    try:
        s = run_ingest(ctx.spark(), a.input, a.warehouse, ctx.config, a.retry_rejects, a.break_lock)
    except (LockedError, CountMismatch) as exc:
        raise JobFailed(str(exc)) from None
    return summary_line(s)


if __name__ == "__main__":
    entry("ingest", __doc__, add_arguments, main)
