"""Generate a synthetic LAMOST or Ondřejov archive with known truth."""
from spectraldl.cli import entry


def add_arguments(p):
    p.add_argument("--out", required=True, help="output directory (local or shared by all executors)")
    p.add_argument("--n", type=int, required=True, help="number of spectra")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    p.add_argument("--kind", choices=["lamost", "ondrejov"], required=True, help="which archive to imitate")


def main(ctx):
    from spectraldl.synth.job import run_synth
    summary = run_synth(ctx.spark(), ctx.args.out, ctx.args.n, ctx.args.seed, ctx.args.kind, ctx.config)
    classes = ", ".join(f"{k} {v}" for k, v in summary["classes"].items())
    return (f"synth: wrote {summary['files']} {ctx.args.kind} files to {summary['out']} "
            f"({summary['bytes'] / 1e6:.1f} MB, {summary['gzip']} gzipped, {summary['partitions']} tasks, "
            f"{summary['seconds']} s, {summary['files_per_second']} files/s; {classes})")


if __name__ == "__main__":
    entry("synth", __doc__, add_arguments, main)
