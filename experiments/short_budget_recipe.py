"""Short-budget recipe search: which options make the AHBF target beat the
same network trained alone, at a CPU budget.

Every row of the ablation is one `keras-ahbf train` run per seed (resumable
run directories), with the row's options added to the common ones
(`--dataset`, `--backbone`, `--epochs`, `--train-limit`, ...). Two stages:

- `--stage search` holds out the last `--validation-split` of the training
  subset and reports on it: choose the recipe here, never on the test set;
- `--stage final` trains on the same training images (the held-out ones
  excluded) and reports the full test set, once, for the chosen rows.

Usage (CIFAR-100: 10,000 training images, 2,500 held out for validation):

    python experiments/short_budget_recipe.py --data /path/to/cifar100.npz \
        --stage search --rows alone paper b2-aux1 --seeds 0 --output runs/short

    python experiments/short_budget_recipe.py --data /path/to/cifar100.npz \
        --stage final --rows alone short --seeds 0 1 2 --output runs/short

Writes `<output>/<stage>.json` and `<output>/<stage>.md` (the ablation
table: target top-1 at the last epoch, mean +- std over seeds, the
difference to the `alone` row, the options, the time per run, the command
and the machine) and prints the Markdown. Rows are listed in `ROWS`; add
your own with `--row name=--opt,value,...`.
"""

import argparse
import os
import sys
import time

import keras

from keras_ahbf import _io
from keras_ahbf import cli
from keras_ahbf import runs

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reduced_budget_cifar import _mean_std  # noqa: E402
from reduced_budget_cifar import machine  # noqa: E402

# Each row: the `keras-ahbf train` options it adds to the common ones. The
# levers one at a time first, then combinations (see docs/results.md).
ROWS = {
    "alone": ["--baseline"],
    "alone-zero-init": ["--baseline", "--zero-init-residual"],
    "paper": [],
    "b2-aux1": ["--num-branches", "2", "--aux", "1"],
    "b3-aux2": ["--num-branches", "3", "--aux", "2"],
    "b2-aux1-rampup1": ["--num-branches", "2", "--aux", "1", "--rampup", "1"],
    "b2-aux1-stopgrad": ["--num-branches", "2", "--aux", "1", "--stop-teacher-gradient"],
    "b2-aux1-auxce0.3": ["--num-branches", "2", "--aux", "1", "--aux-ce-weight", "0.3",
                         "--fused-ce-weight", "0.3"],
    "b2-aux1-kd3": ["--num-branches", "2", "--aux", "1", "--kd-weight", "3"],
    "b2-aux1-zero-init": ["--num-branches", "2", "--aux", "1", "--zero-init-residual"],
    "b2-aux1-warmup1": ["--num-branches", "2", "--aux", "1", "--warmup-epochs", "1"],
    "b2-aux1-T5": ["--num-branches", "2", "--aux", "1", "--temperature", "5"],
    "b2-aux1-lambdas1": ["--num-branches", "2", "--aux", "1", "--lambda-ta", "1",
                         "--lambda-branch", "1"],
    "b3-aux1": ["--num-branches", "3", "--aux", "1"],
    "b2-aux2": ["--num-branches", "2", "--aux", "2"],
    "b2-aux3": ["--num-branches", "2", "--aux", "3"],
    "b2-aux4": ["--num-branches", "2", "--aux", "4"],
    "dml": ["--method", "dml"],
    "short": ["--recipe", "short"],
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="CIFAR .npz file or folder (data_dir)")
    p.add_argument("--dataset", default="cifar100", choices=("cifar10", "cifar100"))
    p.add_argument("--backbone", default="resnet8")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--train-limit", type=int, default=12500,
                   help="training images read (the held-out split included)")
    p.add_argument("--validation-split", type=float, default=0.2,
                   help="fraction of --train-limit held out for the search stage")
    p.add_argument("--stage", choices=("search", "final"), default="search")
    p.add_argument("--rows", nargs="+", default=["alone", "paper"])
    p.add_argument("--row", action="append", default=[], metavar="NAME=OPTS",
                   help="an extra row: name=--opt,value,--flag")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--output", default="runs/short_budget")
    p.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2))
    return p.parse_args(argv)


def _rows(args):
    rows = dict(ROWS)
    for spec in args.row:
        name, _, opts = spec.partition("=")
        if not name or not opts:
            raise SystemExit(f"--row must look like name=--opt,value; received: {spec!r}")
        rows[name] = opts.split(",")
    unknown = [r for r in args.rows if r not in rows]
    if unknown:
        raise SystemExit(f"unknown rows {unknown}; known: {sorted(rows)}")
    return rows


def _common_args(args, seed):
    held_out = int(args.train_limit * args.validation_split + 0.5)
    out = [
        "--dataset", args.dataset, "--data-dir", args.data, "--backbone", args.backbone,
        "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
        "--seed", str(seed), "--verbose", str(args.verbose),
    ]
    if args.stage == "search":
        out += ["--train-limit", str(args.train_limit),
                "--validation-split", str(args.validation_split)]
    else:  # the same training images, without the held-out ones; full test set
        out += ["--train-limit", str(args.train_limit - held_out)]
    return out


def _train(args, row, options, seed):
    output = os.path.join(args.output, args.stage, f"{row}-seed{seed}")
    rc = cli.main(["train", *_common_args(args, seed), *options, "--output", output])
    if rc != 0:
        raise SystemExit(f"row {row} (seed {seed}) failed with exit code {rc}")
    summary = _io.read_json(os.path.join(output, runs.SUMMARY_FILE))
    if summary["epochs_completed"] < summary["epochs_planned"]:
        raise SystemExit(f"row {row} (seed {seed}) stopped early")
    keras.backend.clear_session()
    return {
        "seed": seed,
        "target_top1_last": summary["target_top1_last"],
        "teacher_top1_last": {k: v["last"] for k, v in summary["teacher_top1"].items()},
        "train_time_seconds": summary["train_time_seconds"],
        "output": os.path.abspath(output),
    }


def to_markdown(report):
    s = report["settings"]
    where = ("validation split" if s["stage"] == "search" else "full test set")
    lines = [
        f"{s['dataset']}, {s['backbone']}, {s['epochs']} epochs, batch {s['batch_size']}, "
        f"{s['train_images']} training images; target top-1 on the {where} at the last "
        "epoch, mean ± std over seeds:",
        "",
        "| row | options | seeds | target top-1 | vs alone | min per run |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    alone = report["rows"].get("alone", {}).get("mean")
    for name, r in report["rows"].items():
        diff = f"{100 * (r['mean'] - alone):+.2f}" if alone is not None else "-"
        lines.append(
            f"| {name} | `{' '.join(r['options']) or '(paper defaults)'}` | {len(r['runs'])} | "
            f"{100 * r['mean']:.2f} ± {100 * r['std']:.2f} | {diff} | "
            f"{r['minutes']:.1f} |"
        )
    m = report["machine"]
    lines += [
        "",
        f"Command: `{report['command']}`",
        "",
        f"Machine: {m['cpu']}, {m['logical_cores']} logical cores, {m['platform']}, "
        f"Keras {m['versions'].get('keras')} (backend {m['backend']}), "
        f"TensorFlow {m['versions'].get('tensorflow', '-')}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    rows = _rows(args)
    os.makedirs(args.output, exist_ok=True)
    path = os.path.join(args.output, f"{args.stage}.json")
    report = _io.read_json(path) if os.path.exists(path) else {"rows": {}}
    held_out = int(args.train_limit * args.validation_split + 0.5)
    report["settings"] = {
        "dataset": args.dataset, "backbone": args.backbone, "epochs": args.epochs,
        "batch_size": args.batch_size, "stage": args.stage,
        "train_images": args.train_limit - held_out, "held_out": held_out,
    }
    for row in args.rows:
        start = time.time()
        results = [_train(args, row, rows[row], seed) for seed in args.seeds]
        values = [r["target_top1_last"] for r in results]
        mean, std = _mean_std(values)
        report["rows"][row] = {
            "options": rows[row], "runs": results, "mean": mean, "std": std,
            "minutes": sum(r["train_time_seconds"] for r in results) / 60 / len(results),
        }
        report["command"] = "python experiments/short_budget_recipe.py " + " ".join(
            sys.argv[1:] if argv is None else argv)
        report["machine"] = machine()
        _io.atomic_write_json(path, report)
        _io.atomic_write_text(os.path.join(args.output, f"{args.stage}.md"), to_markdown(report))
        print(f"{row}: {100 * mean:.2f} ± {100 * std:.2f} ({time.time() - start:.0f} s)", flush=True)
    print(to_markdown(report))
    return report


if __name__ == "__main__":
    main()
