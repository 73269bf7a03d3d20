"""Candidate catalogue (CSV, VOTable), labelling export and an offline HTML report under W/reports."""
from spectraldl.cli import entry


def add_arguments(p):
    p.add_argument("--warehouse", required=True)
    p.add_argument("--top", type=int, default=None, help="candidates listed and plotted (default: report.top)")
    p.add_argument("--model-version", default=None, help="report this model version (default: newest scored)")


def main(ctx):
    from spectraldl.report.build import run_report, summary_line
    a = ctx.args
    return summary_line(run_report(ctx.spark(), a.warehouse, ctx.config, a.top, a.model_version))


if __name__ == "__main__":
    entry("report", __doc__, add_arguments, main)
