"""Reduced-budget check: AHBF-OKD against the same target network alone.

On a local CIFAR copy, for every seed, trains

1. the AHBF-OKD model with the `keras-ahbf train` command (the paper's
   recipe scaled to `--epochs`), and
2. with the same budget, the same target network alone (trunk + branch 0,
   identical initial weights), with cross-entropy only: `keras-ahbf train
   --baseline`, so the same data pipeline, SGD schedule, batch size, coupled
   weight decay and run directory (resumable, `summary.json`),

and reports the target's test top-1 (last and best epoch) for both, per
seed and as mean +- standard deviation. This is a **reduced-budget check**
that a CPU finishes in under an hour with the defaults, not a reproduction
of the paper's 300-epoch numbers.

Usage (the shared CIFAR-10 copy has a 10,000-image training subset):

    python experiments/reduced_budget_cifar.py --data /path/to/cifar10_subset.npz \
        --dataset cifar10 --output runs/reduced_budget

Writes `<output>/results.json` and `<output>/results.md` (the table, the
exact command and the machine) and prints the Markdown. Every run is
resumable: run the same command again after an interruption.
"""

import argparse
import os
import platform
import statistics
import sys
import time

import keras

from keras_ahbf import _io
from keras_ahbf import cli
from keras_ahbf import data
from keras_ahbf import runs
from keras_ahbf import training


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="CIFAR .npz file or folder (data_dir)")
    p.add_argument("--dataset", default="cifar10", choices=("cifar10", "cifar100"))
    p.add_argument("--backbone", default="resnet8")
    p.add_argument("--num-branches", type=int, default=4)
    p.add_argument("--aux", type=int, default=4)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--train-limit", type=int)
    p.add_argument("--test-limit", type=int)
    p.add_argument("--output", default="runs/reduced_budget")
    p.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2))
    return p.parse_args(argv)


def _common_args(args, seed):
    out = [
        "--dataset", args.dataset, "--data-dir", args.data, "--backbone", args.backbone,
        "--num-branches", str(args.num_branches), "--aux", str(args.aux),
        "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
        "--seed", str(seed), "--verbose", str(args.verbose),
    ]
    if args.train_limit:
        out += ["--train-limit", str(args.train_limit)]
    if args.test_limit:
        out += ["--test-limit", str(args.test_limit)]
    return out


def _train(args, seed, kind):
    """One run through the command line (resumable); returns its results.

    `kind` is `"ahbf"` (AHBF-OKD) or `"baseline"` (`train --baseline`: the
    same target network alone, cross-entropy only, same recipe and data).
    """
    output = os.path.join(args.output, f"{kind}-seed{seed}")
    extra = ["--baseline"] if kind == "baseline" else []
    rc = cli.main(["train", *_common_args(args, seed), *extra, "--output", output])
    if rc != 0:
        raise SystemExit(f"{kind} training (seed {seed}) failed with exit code {rc}")
    summary = _io.read_json(os.path.join(output, runs.SUMMARY_FILE))
    if summary["epochs_completed"] < summary["epochs_planned"]:
        raise SystemExit(f"{kind} training (seed {seed}) stopped early")
    return {
        "target_top1_last": summary["target_top1_last"],
        "target_top1_best": summary["target_top1_best"],
        "teacher_top1_last": {k: v["last"] for k, v in summary["teacher_top1"].items()},
        "train_time_seconds": summary["train_time_seconds"],
        "output": os.path.abspath(output),
    }


def machine():
    cpu = platform.processor() or "unknown CPU"
    flags = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    # The widest vector unit: one "AMD EPYC" can be 2-3x faster than another.
    simd = next((f for f in ("avx512_bf16", "avx512f", "avx2", "avx") if f in flags), None)
    if simd:
        cpu = f"{cpu} ({simd})"
    versions = {"keras": keras.__version__}
    try:
        import tensorflow as tf

        versions["tensorflow"] = tf.__version__
    except ImportError:
        pass
    return {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "backend": keras.backend.backend(),
        "versions": versions,
    }


def _mean_std(values):
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, std


def to_markdown(report):
    s = report["settings"]
    lines = [
        f"Reduced-budget check on {s['dataset']} ({s['train_examples']} training / "
        f"{s['test_examples']} test images): {s['backbone']}, {s['num_branches']} branches "
        f"(aux {s['aux']}), {s['epochs']} epochs, batch {s['batch_size']}, paper recipe scaled "
        f"(lr 0.1 x0.1 at {s['milestones']}, ramp-up {s['rampup_epochs']}, wd 5e-4), "
        f"seeds {s['seeds']}. Target-network test top-1:",
        "",
        "| training | seed | top-1 last epoch | top-1 best epoch | training time |",
        "| --- | --- | --- | --- | --- |",
    ]
    for kind, label in (("ahbf", "AHBF-OKD (target branch)"), ("baseline", "target alone, CE only")):
        for seed, r in zip(s["seeds"], report[kind]):
            lines.append(
                f"| {label} | {seed} | {100 * r['target_top1_last']:.2f} % | "
                f"{100 * r['target_top1_best']:.2f} % | {r['train_time_seconds'] / 60:.1f} min |"
            )
    lines.append("")
    lines.append("| training | top-1 last, mean ± std | top-1 best, mean ± std |")
    lines.append("| --- | --- | --- |")
    for kind, label in (("ahbf", "AHBF-OKD"), ("baseline", "target alone")):
        agg = report["aggregate"][kind]
        lines.append(
            f"| {label} | {100 * agg['last_mean']:.2f} ± {100 * agg['last_std']:.2f} % | "
            f"{100 * agg['best_mean']:.2f} ± {100 * agg['best_std']:.2f} % |"
        )
    m = report["machine"]
    lines += [
        "",
        f"Difference (AHBF-OKD - alone, last epoch): "
        f"{100 * report['aggregate']['difference_last']:+.2f} points.",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Machine: {m['cpu']}, {m['logical_cores']} logical cores, {m['platform']}, "
        f"Python {m['python']}, Keras {m['versions'].get('keras')} "
        f"(backend {m['backend']}), TensorFlow {m['versions'].get('tensorflow', '-')}; "
        f"total wall time {report['wall_time_seconds'] / 60:.1f} min.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    os.makedirs(args.output, exist_ok=True)
    (x_train, _), (x_test, _) = data.load_arrays(
        args.dataset, args.data, train_limit=args.train_limit, test_limit=args.test_limit
    )
    config = training.resolve_config(args.dataset, epochs=args.epochs)
    ahbf, baseline = [], []
    for seed in args.seeds:
        ahbf.append(_train(args, seed, "ahbf"))
        baseline.append(_train(args, seed, "baseline"))
        keras.backend.clear_session()

    aggregate = {}
    for kind, results in (("ahbf", ahbf), ("baseline", baseline)):
        last_mean, last_std = _mean_std([r["target_top1_last"] for r in results])
        best_mean, best_std = _mean_std([r["target_top1_best"] for r in results])
        aggregate[kind] = dict(last_mean=last_mean, last_std=last_std,
                               best_mean=best_mean, best_std=best_std)
    aggregate["difference_last"] = aggregate["ahbf"]["last_mean"] - aggregate["baseline"]["last_mean"]
    report = {
        "settings": {
            "dataset": args.dataset, "backbone": args.backbone,
            "num_branches": args.num_branches, "aux": args.aux, "epochs": args.epochs,
            "batch_size": args.batch_size, "seeds": args.seeds,
            "milestones": list(config.milestones), "rampup_epochs": config.rampup_epochs,
            "train_examples": len(x_train), "test_examples": len(x_test),
            "stop_teacher_gradient": False,
        },
        "ahbf": ahbf,
        "baseline": baseline,
        "aggregate": aggregate,
        "command": "python experiments/reduced_budget_cifar.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine(),
        "wall_time_seconds": time.time() - start,
    }
    _io.atomic_write_json(os.path.join(args.output, "results.json"), report)
    markdown = to_markdown(report)
    _io.atomic_write_text(os.path.join(args.output, "results.md"), markdown)
    print(markdown)
    return report


if __name__ == "__main__":
    main()
