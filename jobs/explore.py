"""Explore the warehouse: PCA (Spark ML) and t-SNE maps of the archive and the training set."""
from spectraldl.cli import entry


def add_arguments(p):
    p.add_argument("--warehouse", required=True, help="warehouse root (local path or Hadoop URI)")


def main(ctx):
    from spectraldl.explore import run_explore, summary_line
    return summary_line(run_explore(ctx.spark(), ctx.args.warehouse, ctx.config))


if __name__ == "__main__":
    entry("explore", __doc__, add_arguments, main)
