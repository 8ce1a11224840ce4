"""The gain-vs-budget curve: AHBF target minus the same network alone, at
several training budgets.

For every budget (`--epochs 5 10 20`), every seed and every row (the
`alone` baseline and one or more AHBF rows of `short_budget_recipe.ROWS`,
e.g. `paper` and `short`), one `keras-ahbf train` run (resumable), with
the schedule and the ramp-up scaled to the budget as `--epochs` scales
them. The target's test top-1 at the last epoch is reported (the curve is
a measurement, not a choice: recipes are chosen on a validation split by
`short_budget_recipe.py --stage search`).

Usage:

    python experiments/gain_vs_budget.py --data /path/to/cifar100.npz \
        --epochs 5 10 20 --rows short --seeds 0 1 --output runs/curve

`--previous docs/gain_vs_budget.json` adds the points measured earlier (the
curve's data as committed) at the budgets not run now, so the curve grows one
budget at a time; every point keeps its `source`. `--replot
docs/gain_vs_budget.json --plot docs/gain_vs_budget.png` redraws a committed
curve (and prints its table) without training.

Writes `<output>/curve.json`, `<output>/curve.md` and the plot
(`<output>/gain_vs_budget.png`, or `--plot PATH`): the gain (mean over
seeds of the per-seed difference, bars: its standard deviation) and the
absolute accuracies against the budget.
"""

import argparse
import copy
import os
import sys

from matplotlib.figure import Figure

from keras_ahbf import _io

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import short_budget_recipe  # noqa: E402
from reduced_budget_cifar import _mean_std  # noqa: E402
from reduced_budget_cifar import machine  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="CIFAR .npz file or folder (data_dir); required unless --replot")
    p.add_argument("--dataset", default="cifar100", choices=("cifar10", "cifar100"))
    p.add_argument("--backbone", default="resnet8")
    p.add_argument("--epochs", type=int, nargs="+", default=[5, 10, 20])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--train-limit", type=int, default=12500,
                   help="training images read; the last --validation-split of them "
                   "(held out by the recipe search) are left out here too")
    p.add_argument("--validation-split", type=float, default=0.2)
    p.add_argument("--rows", nargs="+", default=["short"],
                   help="AHBF rows of short_budget_recipe.ROWS, each against 'alone'")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--output", default="runs/curve")
    p.add_argument("--plot", help="PNG path (default <output>/gain_vs_budget.png)")
    p.add_argument("--previous", help="a curve.json of earlier runs (e.g. "
                   "docs/gain_vs_budget.json): its points at budgets not in --epochs are "
                   "kept in the report and the plot, marked with their source")
    p.add_argument("--replot", help="a curve.json to redraw (with --plot) and print, "
                   "training nothing")
    p.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2))
    args = p.parse_args(argv)
    if not args.data and not args.replot:
        p.error("--data is required (unless --replot)")
    return args


def _points(args):
    """{row: [{epochs, mean, std, gain_mean, gain_std, runs}]}, alone included."""
    points = {row: [] for row in ["alone", *args.rows]}
    for epochs in args.epochs:
        run_args = copy.copy(args)
        run_args.epochs, run_args.stage, run_args.row = epochs, "final", []
        run_args.output = os.path.join(args.output, f"epochs{epochs}")
        results = {
            row: [short_budget_recipe._train(
                run_args, row, short_budget_recipe.ROWS[row], seed) for seed in args.seeds]
            for row in points
        }
        alone = [r["target_top1_last"] for r in results["alone"]]
        for row, runs in results.items():
            values = [r["target_top1_last"] for r in runs]
            mean, std = _mean_std(values)
            gain_mean, gain_std = _mean_std([v - a for v, a in zip(values, alone)])
            points[row].append(dict(
                epochs=epochs, mean=mean, std=std, gain_mean=gain_mean, gain_std=gain_std,
                minutes=sum(r["train_time_seconds"] for r in runs) / 60 / len(runs),
                values=values, seeds=list(args.seeds),
            ))
    return points


def _merge_previous(report, previous, source):
    """Adds `previous`'s points at the budgets `report` did not run (same rows and data)."""
    s, p = report["settings"], previous["settings"]
    for key in ("dataset", "backbone", "train_images", "batch_size"):
        if s[key] != p[key]:
            raise SystemExit(f"--previous {source} has {key}={p[key]!r}, this run {s[key]!r}")
    if set(previous["points"]) != set(report["points"]):
        raise SystemExit(f"--previous {source} has rows {sorted(previous['points'])}, "
                         f"this run {sorted(report['points'])}")
    new = set(s["epochs"])
    for row, points in report["points"].items():
        kept = [dict(pt, source=pt.get("source", source)) for pt in previous["points"][row]
                if pt["epochs"] not in new]
        points[:] = sorted(kept + points, key=lambda pt: pt["epochs"])
    s["epochs"] = sorted(new | {pt["epochs"] for pt in previous["points"]["alone"]})
    s["seeds_per_budget"] = {
        str(pt["epochs"]): pt.get("seeds", s["seeds"]) for pt in report["points"]["alone"]
    }


def plot(report, path):
    fig = Figure(figsize=(10, 4), layout="constrained")
    gain_ax, acc_ax = fig.subplots(1, 2)
    for i, (row, pts) in enumerate(report["points"].items()):
        epochs = [p["epochs"] for p in pts]
        acc_ax.errorbar(epochs, [100 * p["mean"] for p in pts],
                        yerr=[100 * p["std"] for p in pts], marker="o", capsize=3,
                        color=f"C{i}", label=f"{row} (target)")
        if row != "alone":
            gain_ax.errorbar(epochs, [100 * p["gain_mean"] for p in pts],
                             yerr=[100 * p["gain_std"] for p in pts], marker="o",
                             capsize=3, color=f"C{i}", label=row)
    s = report["settings"]
    gain_ax.axhline(0.0, color="grey", linewidth=1)
    gain_ax.set(xscale="log", xlabel="training budget (epochs)",
                ylabel="target top-1, AHBF - alone (points)",
                title=f"gain vs budget, {_seed_counts(report)} seeds per point")
    acc_ax.set(xscale="log", xlabel="training budget (epochs)", ylabel="test top-1 (%)",
               title=f"{s['dataset']} {s['backbone']}, {s['train_images']} training images")
    for ax in (gain_ax, acc_ax):
        ax.set_xticks(s["epochs"], [str(e) for e in s["epochs"]])
        ax.minorticks_off()
        ax.grid(alpha=0.3)
        ax.legend()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)


def _seeds(report, i):
    """The seeds of the `i`-th budget's points."""
    return report["points"]["alone"][i].get("seeds", report["settings"]["seeds"])


def _seed_counts(report):
    """"2" or "2-3": how many seeds the points have."""
    counts = sorted({len(_seeds(report, i)) for i in range(len(report["points"]["alone"]))})
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"


def to_markdown(report):
    s = report["settings"]
    lines = [
        f"{s['dataset']}, {s['backbone']}, {s['train_images']} training images, full test "
        "set; target top-1 at the last epoch (mean ± std over seeds) and the gain "
        "over the same network alone (mean ± std of the per-seed difference):",
        "",
        "| epochs | seeds | " + " | ".join(report["points"]) + " | "
        + " | ".join(f"gain {r}" for r in report["points"] if r != "alone") + " |",
        "| --- " * (2 * len(report["points"]) + 1) + "|",
    ]
    for i, epochs in enumerate(s["epochs"]):
        cells = [f"{100 * p[i]['mean']:.2f} ± {100 * p[i]['std']:.2f}"
                 for p in report["points"].values()]
        gains = [f"{100 * p[i]['gain_mean']:+.2f} ± {100 * p[i]['gain_std']:.2f}"
                 for r, p in report["points"].items() if r != "alone"]
        seeds = ", ".join(str(seed) for seed in _seeds(report, i))
        lines.append(f"| {epochs} | {seeds} | " + " | ".join(cells + gains) + " |")
    m = report["machine"]
    lines += ["", f"Command: `{report['command']}`", "",
              f"Machine: {m['cpu']}, {m['logical_cores']} logical cores, "
              f"Keras {m['versions'].get('keras')} (backend {m['backend']})."]
    earlier = {pt["epochs"]: pt["source"] for pts in report["points"].values()
               for pt in pts if pt.get("source")}
    for source in sorted(set(earlier.values())):
        budgets = sorted(e for e, src in earlier.items() if src == source)
        lines += ["", f"Epochs {budgets}: from {source}."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    if args.replot:
        report = _io.read_json(args.replot)
        plot(report, args.plot or os.path.splitext(args.replot)[0] + ".png")
        markdown = to_markdown(report)
        print(markdown)
        return report
    unknown = [r for r in args.rows if r not in short_budget_recipe.ROWS or r == "alone"]
    if unknown:
        raise SystemExit(f"unknown AHBF rows {unknown}; known: {sorted(short_budget_recipe.ROWS)}")
    os.makedirs(args.output, exist_ok=True)
    held_out = int(args.train_limit * args.validation_split + 0.5)
    report = {
        "settings": {
            "dataset": args.dataset, "backbone": args.backbone, "epochs": args.epochs,
            "seeds": args.seeds, "batch_size": args.batch_size,
            "train_images": args.train_limit - held_out,
            "rows": {r: short_budget_recipe.ROWS[r] for r in ["alone", *args.rows]},
        },
        "points": _points(args),
        "command": "python experiments/gain_vs_budget.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine(),
    }
    if args.previous:
        _merge_previous(report, _io.read_json(args.previous), args.previous)
    _io.atomic_write_json(os.path.join(args.output, "curve.json"), report)
    markdown = to_markdown(report)
    _io.atomic_write_text(os.path.join(args.output, "curve.md"), markdown)
    plot(report, args.plot or os.path.join(args.output, "gain_vs_budget.png"))
    print(markdown)
    return report


if __name__ == "__main__":
    main()
