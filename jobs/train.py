"""Train the CNN or MLP data-parallel with Horovod on Spark, from W/trainset to W/models/<version>."""
from spectraldl.cli import JobFailed, entry


def add_arguments(p):
    p.add_argument("--warehouse", required=True)
    p.add_argument("--arch", choices=["cnn", "mlp"], default=None, help="network (default: train.arch)")
    p.add_argument("--num-proc", type=int, default=None, help="Horovod workers (Spark tasks)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--resume", action="store_true", help="continue the newest unfinished training")


def main(ctx):
    from spectraldl.artifact import ModelError
    from spectraldl.train import run_train
    a = ctx.args
    try:
        s = run_train(ctx.spark(), a.warehouse, ctx.config, a.arch, a.num_proc, a.epochs, a.resume)
    except ModelError as exc:
        raise JobFailed(str(exc)) from None
    return (f"train {s['version']}: {s['epochs_run']} epochs on {s['inputs']['num_proc']} workers, test accuracy "
            f"{s['accuracy']:.4f}, macro F1 {s['macro_f1']:.4f}; model in {s['model_dir']} ({s['seconds']:.0f} s)")


if __name__ == "__main__":
    entry("train", __doc__, add_arguments, main)
