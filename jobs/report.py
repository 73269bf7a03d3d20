"""Candidate catalogue (CSV, VOTable), labelling export and an offline HTML report under W/reports."""
from spectraldl.cli import JobFailed, entry


def add_arguments(p):
    p.add_argument("--warehouse", required=True)
    p.add_argument("--top", type=int, default=None, help="candidates listed and plotted (default: report.top)")
    p.add_argument("--model-version", default=None, help="report this model version (default: newest scored)")


def main(ctx):
    from spectraldl.report.build import run_report
    a = ctx.args
    try:
        s = run_report(ctx.spark(), a.warehouse, ctx.config, a.top, a.model_version)
    except FileNotFoundError as exc:
        raise JobFailed(str(exc)) from None
    return (f"report {s['run_id']}: {s['scored']} spectra scored by {s['model_version']}, "
            f"{s['candidates_stars']} star candidates ({s['candidate_spectra_stars']} spectra), "
            f"{s['candidates_extragalactic']} galaxies/QSOs apart; open {s['report']}")


if __name__ == "__main__":
    entry("report", __doc__, add_arguments, main)
