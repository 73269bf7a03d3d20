"""Build the training set: labelled Ondřejov spectra, domain-adapted, split by star, in W/trainset."""
from spectraldl.cli import add_break_lock, entry


def add_arguments(p):
    p.add_argument("--input", required=True, help="Ondřejov files: directory (recursive), glob, or text file of paths")
    p.add_argument("--labels", required=True, help="label CSV 'id,label' (0 emission, 1 absorption, 2 unknown, 3 double-peak)")
    p.add_argument("--warehouse", required=True, help="warehouse root (local path or Hadoop URI)")
    p.add_argument("--extra-labels", default=None, help="CSV 'source_path,label' (class names) of LAMOST rows in W/spectra")
    p.add_argument("--holdout", default=None, help="file of Ondřejov file stems or object names held out of "
                   "train/val/test (split 'holdout'); sets trainset.holdout")
    add_break_lock(p)


def main(ctx):
    from spectraldl.trainset import run_trainset, summary_line
    a = ctx.args
    if a.holdout is not None:
        ctx.config["trainset"]["holdout"] = a.holdout
    return summary_line(run_trainset(ctx.spark(), a.input, a.labels, a.warehouse, ctx.config, a.extra_labels,
                                     a.break_lock))


if __name__ == "__main__":
    entry("trainset", __doc__, add_arguments, main)
