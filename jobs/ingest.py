"""Ingest LAMOST spectra: files -> normalised vectors in W/spectra, bad files in W/rejects."""
from spectraldl.cli import add_break_lock, entry


def add_arguments(p):
    p.add_argument("--input", required=True, help="directory (recursive), glob, or text file of paths")
    p.add_argument("--warehouse", required=True, help="warehouse root (local path or Hadoop URI)")
    p.add_argument("--retry-rejects", action="store_true", help="parse again unchanged files rejected before")
    add_break_lock(p)


def main(ctx):
    from spectraldl.ingest import run_ingest, summary_line
    a = ctx.args
    return summary_line(run_ingest(ctx.spark(), a.input, a.warehouse, ctx.config, a.retry_rejects, a.break_lock))


if __name__ == "__main__":
    entry("ingest", __doc__, add_arguments, main)
