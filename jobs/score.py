"""Score W/spectra with a model (pandas UDF): class probabilities per spectrum into W/scores."""
from spectraldl.cli import JobFailed, entry


def add_arguments(p):
    p.add_argument("--warehouse", required=True)
    p.add_argument("--model", default="default", help="default (embedded), latest (newest in W/models) or a directory")
    p.add_argument("--rescore", action="store_true", help="score every spectrum again with this model")


def main(ctx):
    from spectraldl.artifact import ModelError
    from spectraldl.score import run_score, summary_line
    from spectraldl.warehouse import LockedError
    a = ctx.args
    try:
        s = run_score(ctx.spark(), a.warehouse, ctx.config, a.model, a.rescore)
    except (ModelError, LockedError) as exc:
        raise JobFailed(str(exc)) from None
    return summary_line(s)


if __name__ == "__main__":
    entry("score", __doc__, add_arguments, main)
