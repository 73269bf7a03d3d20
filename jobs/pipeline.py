"""Archive to report in one command: ingest, score, explore, report (trainset and train first with --train)."""
from spectraldl.cli import add_break_lock, entry


def add_arguments(p):
    p.add_argument("--input", required=True, help="LAMOST archive: directory, glob or list file")
    p.add_argument("--warehouse", required=True)
    p.add_argument("--train", action="store_true", help="build the training set and train a model first")
    p.add_argument("--dry-run", action="store_true", help="print the plan (files found, new since the last run) and exit")
    add_break_lock(p)


def main(ctx):
    from spectraldl.pipeline import plan, plan_line, run_pipeline, summary_line
    a = ctx.args
    if a.dry_run:
        return plan_line(plan(ctx.spark(), a.input, a.warehouse, ctx.config), a.input)
    return summary_line(run_pipeline(ctx.spark(), a.input, a.warehouse, ctx.config, a.train, a.break_lock))


if __name__ == "__main__":
    entry("pipeline", __doc__, add_arguments, main)
