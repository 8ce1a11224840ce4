"""The side-by-side table: every online-distillation method and the target
network alone, trained the same way, the deployed network's test top-1.

Each row is one `--method` of `keras-ahbf train` (plus the network alone and
AHBF-OKD with the `short` structure), trained with the same data, budget,
schedule and seeds as the short-budget work (`short_budget_recipe.py`
`--stage final`: CIFAR-100, ResNet-8, the first 12,500 training images minus
the 2,500 the recipe search held out, 10 epochs, the full test set), one
resumable run directory per row and seed. Reported per row: the deployed
network's test top-1 at the last epoch (mean ± std over seeds) and its
difference to the network alone, the trainable parameters during training
(every network, gate and aggregator) and of the deployed network, and the
minutes per run, next to each method's published CIFAR-100 ResNet-32 top-1
(300 epochs, labelled as published).

Usage:

    python experiments/methods_table.py --data /path/to/cifar100.npz \
        --seeds 0 1 --output runs/methods

Writes `<output>/methods.json` and `<output>/methods.md`.
"""

import argparse
import math
import os
import sys

import keras

from keras_ahbf import _io
from keras_ahbf import config as ahbf_config
from keras_ahbf import training

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import short_budget_recipe  # noqa: E402
from reduced_budget_cifar import _mean_std  # noqa: E402
from reduced_budget_cifar import machine  # noqa: E402

# Row -> `keras-ahbf train` options (the common ones are short_budget_recipe's).
ROWS = {
    "alone": ["--baseline"],
    "ahbf-short": ["--recipe", "short"],
    **{name: ["--method", name] for name in ahbf_config.METHOD_SPECS},
}

# Published CIFAR-100 ResNet-32 top-1 (%, 300 epochs), as reported in the
# MCL-OKD repository's table (not measured here); AHBF-OKD's paper reports
# ResNet-32 only as error curves, so none is given for it.
PUBLISHED = {
    "alone": 71.09, "dml": 75.08, "cl-ilr": 74.60, "one": 74.26, "okddip": 74.24,
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="CIFAR .npz file or folder (data_dir)")
    p.add_argument("--dataset", default="cifar100", choices=("cifar10", "cifar100"))
    p.add_argument("--backbone", default="resnet8")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--train-limit", type=int, default=12500)
    p.add_argument("--validation-split", type=float, default=0.2)
    p.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--output", default="runs/methods")
    p.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2))
    return p.parse_args(argv)


def parameter_counts(args, row):
    """(trainable parameters of the training model, of the deployed network)."""
    options = dict(epochs=args.epochs, backbone=args.backbone)
    if row == "alone":
        config = ahbf_config.resolve_config(args.dataset, baseline=True, **options)
        model = training.build_baseline(config, 100 if args.dataset == "cifar100" else 10,
                                        (32, 32, 3))
        count = sum(int(math.prod(v.shape)) for v in model.trainable_variables)
        keras.backend.clear_session()
        return count, count
    opts = ROWS[row]
    if opts[0] == "--recipe":
        options["recipe"] = opts[1]
    else:
        options["method"] = opts[1]
    config = ahbf_config.resolve_config(args.dataset, **options)
    num_classes = 100 if args.dataset == "cifar100" else 10
    model = training.build_model(config, num_classes, (32, 32, 3))
    total = sum(int(math.prod(v.shape)) for v in model.trainable_variables)
    target = model.target_model()
    deployed = sum(int(math.prod(v.shape)) for v in target.trainable_variables)
    keras.backend.clear_session()
    return total, deployed


def to_markdown(report):
    s = report["settings"]
    lines = [
        f"{s['dataset']}, {s['backbone']}, {s['epochs']} epochs, batch {s['batch_size']}, "
        f"{s['train_images']} training images, full test set; the deployed network's "
        "top-1 at the last epoch, mean ± std over seeds:",
        "",
        "| method | seeds | deployed top-1 | vs alone | parameters in training | deployed "
        "| min per run | published ResNet-32, 300 epochs |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    alone = report["rows"].get("alone", {}).get("mean")
    for name, r in report["rows"].items():
        diff = f"{100 * (r['mean'] - alone):+.2f}" if alone is not None else "-"
        published = PUBLISHED.get(name)
        lines.append(
            f"| {name} | {len(r['runs'])} | {100 * r['mean']:.2f} ± {100 * r['std']:.2f} | "
            f"{diff} | {r['parameters']:,} | {r['deployed_parameters']:,} | "
            f"{r['minutes']:.1f} | {'-' if published is None else f'{published:.2f} (published)'} |"
        )
    m = report["machine"]
    lines += ["", f"Command: `{report['command']}`", "",
              f"Machine: {m['cpu']}, {m['logical_cores']} logical cores, "
              f"Keras {m['versions'].get('keras')} (backend {m['backend']})."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.output, exist_ok=True)
    path = os.path.join(args.output, "methods.json")
    report = _io.read_json(path) if os.path.exists(path) else {"rows": {}}
    held_out = int(args.train_limit * args.validation_split + 0.5)
    report["settings"] = {
        "dataset": args.dataset, "backbone": args.backbone, "epochs": args.epochs,
        "batch_size": args.batch_size, "train_images": args.train_limit - held_out,
        "seeds": args.seeds,
    }
    run_args = argparse.Namespace(**vars(args), stage="final", row=[])
    for row in args.rows:
        results = [short_budget_recipe._train(run_args, row, ROWS[row], seed)
                   for seed in args.seeds]
        mean, std = _mean_std([r["target_top1_last"] for r in results])
        total, deployed = parameter_counts(args, row)
        report["rows"][row] = {
            "options": ROWS[row], "runs": results, "mean": mean, "std": std,
            "parameters": total, "deployed_parameters": deployed,
            "minutes": sum(r["train_time_seconds"] for r in results) / 60 / len(results),
        }
        report["command"] = "python experiments/methods_table.py " + " ".join(
            sys.argv[1:] if argv is None else argv)
        report["machine"] = machine()
        _io.atomic_write_json(path, report)
        _io.atomic_write_text(os.path.join(args.output, "methods.md"), to_markdown(report))
    print(to_markdown(report))
    return report


if __name__ == "__main__":
    main()
