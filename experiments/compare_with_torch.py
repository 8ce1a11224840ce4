"""Side-by-side table of the PyTorch anchor and keras_ahbf at the same protocol.

Reads the JSON lines printed by `torch_train_reference.py` (one per arm and
seed) and the `results.json` written by `experiments/reduced_budget_cifar.py`,
and prints a Markdown table: the target's test top-1 per seed, mean +- std
(sample standard deviation) per framework and arm, and whether each arm's
means agree "within 1 point or within the seeds' spread, whichever is larger"
(the spread taken as the larger of the two frameworks' standard deviations).

    python experiments/compare_with_torch.py --torch runs/torch_ref/results.jsonl \
        --keras runs/keras/results.json
"""

import argparse
import json
import statistics


def mean_std(values):
    values = [100.0 * v for v in values]
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.mean(values), std


def load_torch(path):
    arms = {"ahbf": {}, "alone": {}}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                row = json.loads(line)
                arms[row["arm"]][row["seed"]] = row["target_top1"]
    return arms


def load_keras(path):
    with open(path) as f:
        report = json.load(f)
    seeds = report["settings"]["seeds"]
    return {
        "ahbf": dict(zip(seeds, (r["target_top1_last"] for r in report["ahbf"]))),
        "alone": dict(zip(seeds, (r["target_top1_last"] for r in report["baseline"]))),
    }, report


def table(torch_arms, keras_arms):
    lines = [
        "| arm | framework | per seed (top-1 %) | mean ± std |",
        "| --- | --- | --- | --- |",
    ]
    verdicts = []
    for arm, label in (("ahbf", "AHBF-OKD target"), ("alone", "target alone")):
        stats = {}
        for name, arms in (("PyTorch", torch_arms), ("keras_ahbf", keras_arms)):
            runs = arms[arm]
            per_seed = ", ".join(f"s{s}: {100 * v:.2f}" for s, v in sorted(runs.items()))
            stats[name] = mean_std(list(runs.values()))
            lines.append(f"| {label} | {name} | {per_seed} | {stats[name][0]:.2f} ± {stats[name][1]:.2f} |")
        gap = stats["keras_ahbf"][0] - stats["PyTorch"][0]
        allowed = max(1.0, stats["PyTorch"][1], stats["keras_ahbf"][1])
        verdicts.append(
            f"- {label}: keras_ahbf − PyTorch = {gap:+.2f} points; allowed ±{allowed:.2f} "
            f"(max of 1 point and the seeds' spread): {'agree' if abs(gap) <= allowed else 'DISAGREE'}."
        )
    return "\n".join(lines + [""] + verdicts)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--torch", required=True, help="JSON lines of torch_train_reference.py")
    ap.add_argument("--keras", required=True, help="results.json of reduced_budget_cifar.py")
    a = ap.parse_args(argv)
    keras_arms, _ = load_keras(a.keras)
    print(table(load_torch(a.torch), keras_arms))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
