"""Archive to report in one command: ingest, score, explore, report (trainset and train first with --train)."""
from spectraldl.cli import JobFailed, entry


def add_arguments(p):
    p.add_argument("--input", required=True, help="LAMOST archive: directory, glob or list file")
    p.add_argument("--warehouse", required=True)
    p.add_argument("--train", action="store_true", help="build the training set and train a model first")
    p.add_argument("--dry-run", action="store_true", help="print the plan (files found, new since the last run) and exit")
    p.add_argument("--break-lock", action="store_true", help="remove a stale lock left by a crashed run")


def main(ctx):
    from spectraldl.artifact import ModelError
    from spectraldl.pipeline import plan, run_pipeline, summary_line
    from spectraldl.warehouse import LockedError
    a = ctx.args
    if a.dry_run:
        p = plan(ctx.spark(), a.input, a.warehouse, ctx.config)
        return (f"pipeline plan: {p['found']} files found in {a.input}: {p['new']} new, {p['changed']} changed, "
                f"{p['unchanged']} unchanged since the last run, {p['gone']} gone; would ingest {p['new'] + p['changed']}")
    try:
        s = run_pipeline(ctx.spark(), a.input, a.warehouse, ctx.config, a.train, a.break_lock)
    except (LockedError, ModelError) as exc:
        raise JobFailed(str(exc)) from None
    return summary_line(s)


if __name__ == "__main__":
    entry("pipeline", __doc__, add_arguments, main)
