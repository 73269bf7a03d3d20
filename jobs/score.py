"""Score W/spectra with a model (pandas UDF): class probabilities per spectrum into W/scores."""
from spectraldl.cli import add_break_lock, entry


def add_arguments(p):
    p.add_argument("--warehouse", required=True)
    p.add_argument("--model", default="default", help="default (embedded), latest (newest in W/models) or a directory")
    p.add_argument("--rescore", action="store_true", help="score every spectrum again with this model")
    add_break_lock(p)


def main(ctx):
    from spectraldl.score import run_score, summary_line
    a = ctx.args
    return summary_line(run_score(ctx.spark(), a.warehouse, ctx.config, a.model, a.rescore, a.break_lock))


if __name__ == "__main__":
    entry("score", __doc__, add_arguments, main)
