"""Train the CNN or MLP data-parallel with Horovod on Spark, from W/trainset to W/models/<version>."""
from spectraldl.cli import add_break_lock, entry


def add_arguments(p):
    p.add_argument("--warehouse", required=True)
    p.add_argument("--arch", choices=["cnn", "mlp"], default=None, help="network (default: train.arch)")
    p.add_argument("--num-proc", type=int, default=None, help="Horovod workers (Spark tasks)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--resume", action="store_true", help="continue the newest unfinished training")
    add_break_lock(p)


def main(ctx):
    from spectraldl.train import run_train, summary_line
    a = ctx.args
    return summary_line(run_train(ctx.spark(), a.warehouse, ctx.config, a.arch, a.num_proc, a.epochs, a.resume,
                                  a.break_lock))


if __name__ == "__main__":
    entry("train", __doc__, add_arguments, main)
