"""PNG plots of a training run (matplotlib, headless).

Figures are drawn with matplotlib's object API and its Agg renderer, without
`pyplot`, so no display is needed and the user's pyplot backend is left
alone.

`plot_run(run_dir)` reads the per-epoch rows of a run written by the
`keras-ahbf train` command (`state.json`, or `log.csv` when there is no
state) and writes:

- `accuracy.png`: test (and training) accuracy per epoch of every branch
  and every fused teacher assistant (of a run of another method: every peer
  and every ensemble or teacher it reports, e.g. DML's ensemble);
- `loss.png`: the loss terms (total, cross-entropy, branch and assistant
  distillation, L2) and the ramp-up weight;
- `loss_terms.png` (when the log has the per-output terms `ce_branch_{b}`,
  `ce_ta_{m}`): the cross-entropy of every branch and fused assistant, and
  the distillation terms `kd_branch`, `kd_ta` as they enter the total loss
  (times the ramp-up weight, and `kd_weight * lambda_*` when the run's
  `config.json` gives them), so one sees when distillation starts to act;
- `fusion_weights.png` (not for a `--baseline` run): the weight each fusion level gives its first input
  (the previous assistant) over training, on training and test data, with
  the spread of the per-image weights when `FusionWeightLogger` measured it;
- `learning_rate.png`: the learning rate per epoch.

`plot_history(rows, out_dir)` does the same from rows already in memory
(e.g. `history_rows(model.fit(...))`).

Nothing here imports Keras or a backend.
"""

import csv
import os
import re

import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from keras_ahbf import _io

__all__ = ["history_rows", "load_rows", "plot_history", "plot_run"]

_LOSS_TERMS = ("loss", "ce", "kd_branch", "kd_ta", "l2")


def load_rows(run_dir):
    """Per-epoch log rows (dicts of floats) of a run directory.

    Raises:
        FileNotFoundError: if the directory has neither `state.json` nor
            `log.csv`.
    """
    state = _io.read_json(os.path.join(run_dir, "state.json"))
    if state and state.get("history"):
        return state["history"]
    path = os.path.join(run_dir, "log.csv")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"No training log in {run_dir!r}: expected state.json or log.csv "
            "(written by `keras-ahbf train`)."
        )
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            rows.append({k: float(v) for k, v in row.items() if v not in ("", None)})
    return rows


def history_rows(history):
    """Converts a `keras.callbacks.History` (or its `.history` dict) to rows."""
    logs = getattr(history, "history", history)
    epochs = getattr(history, "epoch", None) or list(range(len(next(iter(logs.values()), []))))
    return [
        dict(epoch=e, **{k: float(v[i]) for k, v in logs.items() if i < len(v)})
        for i, e in enumerate(epochs)
    ]


def _series(rows, key):
    xs, ys = [], []
    for row in rows:
        value = row.get(key)
        if value is not None:
            xs.append(int(row["epoch"]) + 1)
            ys.append(value)
    return xs, ys


def _numbered(rows, pattern):
    keys = set()
    for row in rows:
        keys.update(k for k in row if re.fullmatch(pattern, k))
    return sorted(keys, key=lambda k: int(re.search(r"\d+", k).group()))


def _save(fig, path):
    for ax in fig.axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    with _io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path


def _accuracy_names(rows):
    """The accuracy columns drawn: AHBF-OKD's branches and fused assistants,
    the peers of the other methods, then every other accuracy (their
    ensembles and teachers)."""
    names = (_numbered(rows, r"branch_\d+_accuracy") + _numbered(rows, r"peer_\d+_accuracy")
             + _numbered(rows, r"ta_\d+_accuracy"))
    others = {k for row in rows for k in row
              if k.endswith("_accuracy") and not k.startswith("val_") and k not in names}
    return names + sorted(others)


def _plot_accuracy(rows, path):
    fig = Figure(figsize=(8, 5))
    ax = fig.subplots()
    names = _accuracy_names(rows)
    targets = {"branch_0_accuracy": "target (branch_0)", "peer_0_accuracy": "target (peer_0)"}
    cmap = matplotlib.colormaps["tab10"]
    for i, name in enumerate(names):
        label = targets.get(name, name.replace("_accuracy", ""))
        style = "-" if re.fullmatch(r"(branch|peer)_\d+_accuracy", name) else "--"
        xs, ys = _series(rows, f"val_{name}")
        if xs:
            ax.plot(xs, ys, style, color=cmap(i % 10), label=f"{label} test",
                    linewidth=2.2 if name in targets else 1.2)
        xs, ys = _series(rows, name)
        if xs:
            ax.plot(xs, ys, style, color=cmap(i % 10), alpha=0.35, linewidth=0.8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("top-1 accuracy")
    ax.set_title("Accuracy per branch or peer (solid) and fused teacher or ensemble "
                 "(dashed); faint: training")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # a log may lack these columns
        ax.legend(fontsize=8, ncol=2)
    return _save(fig, path)


def _plot_losses(rows, path):
    fig = Figure(figsize=(11, 4.5))
    ax, ax_w = fig.subplots(1, 2)
    cmap = matplotlib.colormaps["tab10"]
    for i, name in enumerate(_LOSS_TERMS):
        for prefix, style in (("", "-"), ("val_", "--")):
            xs, ys = _series(rows, prefix + name)
            if xs:
                ax.plot(xs, ys, style, color=cmap(i),
                        label=f"{'test ' if prefix else ''}{name}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.set_title("Loss terms (solid: training, dashed: test)")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # a log may lack these columns
        ax.legend(fontsize=8, ncol=2)
    xs, ys = _series(rows, "rampup_weight")
    ax_w.plot(xs, ys, color="k")
    ax_w.set_xlabel("epoch")
    ax_w.set_title("Distillation ramp-up weight w(epoch)")
    ax_w.grid(alpha=0.3)
    return _save(fig, path)


def _kd_factors(rows, config):
    """`{kd term: (label, factor per row)}`: how each term enters the loss."""
    config = config or {}
    factors = {}
    for term, lam in (("kd_branch", "lambda_branch"), ("kd_ta", "lambda_ta")):
        constant, label = 1.0, term
        if config.get("kd_weight") is not None and config.get(lam) is not None:
            constant = float(config["kd_weight"]) * float(config[lam])
            label = f"{constant:g} * {term}"
        has_rampup = any("rampup_weight" in r for r in rows)
        if has_rampup:
            label = f"w(epoch) * {label}"
        factors[term] = (label, constant, has_rampup)
    return factors


def _plot_loss_terms(rows, path, config=None):
    fig = Figure(figsize=(11, 4.5))
    ax_ce, ax_kd = fig.subplots(1, 2)
    cmap = matplotlib.colormaps["tab10"]
    names = _numbered(rows, r"ce_branch_\d+") + _numbered(rows, r"ce_ta_\d+")
    for i, name in enumerate(names):
        xs, ys = _series(rows, name)
        label = name[len("ce_"):]
        label = "target (branch_0)" if label == "branch_0" else label
        ax_ce.plot(xs, ys, "--" if name.startswith("ce_ta_") else "-",
                   color=cmap(i % 10), label=label)
    ax_ce.set_xlabel("epoch")
    ax_ce.set_ylabel("cross-entropy (training)")
    ax_ce.set_title("Cross-entropy per branch (solid) and fused assistant (dashed)",
                    fontsize=10)
    ax_ce.grid(alpha=0.3)
    if names:
        ax_ce.legend(fontsize=8, ncol=2)
    for i, (term, (label, constant, has_rampup)) in enumerate(_kd_factors(rows, config).items()):
        xs, ys = [], []
        for row in rows:
            if row.get(term) is None:
                continue
            w = row.get("rampup_weight", 1.0) if has_rampup else 1.0
            xs.append(int(row["epoch"]) + 1)
            ys.append(constant * w * row[term])
        if xs:
            ax_kd.plot(xs, ys, "-", color=cmap(i), label=label)
            raw_x, raw_y = _series(rows, term)
            ax_kd.plot(raw_x, raw_y, ":", color=cmap(i), alpha=0.6, label=f"{term} (unweighted)")
    ax_kd.set_xlabel("epoch")
    ax_kd.set_ylabel("loss")
    ax_kd.set_title("Distillation terms as they enter the total loss", fontsize=10)
    ax_kd.grid(alpha=0.3)
    if ax_kd.lines:
        ax_kd.legend(fontsize=8)
    return _save(fig, path)


def _plot_fusion(rows, path):
    levels = [re.search(r"\d+", k).group() for k in _numbered(rows, r"fusion_\d+_weight")]
    fig = Figure(figsize=(8, 5))
    ax = fig.subplots()
    cmap = matplotlib.colormaps["tab10"]
    for i, m in enumerate(levels):
        color = cmap(i % 10)
        xs, ys = _series(rows, f"fusion_{m}_weight")
        ax.plot(xs, ys, "-", color=color, label=f"level {m} (training)")
        xs, ys = _series(rows, f"val_fusion_{m}_weight")
        if xs:
            ax.plot(xs, ys, "--", color=color, label=f"level {m} (test)")
        xs, ys = _series(rows, f"fusion_{m}_weight_infer")
        _, std = _series(rows, f"fusion_{m}_weight_infer_std")
        if xs and len(std) == len(ys):
            # Spread of the per-sample weights over the probe images.
            low = [y - s for y, s in zip(ys, std)]
            high = [y + s for y, s in zip(ys, std)]
            ax.fill_between(xs, low, high, color=color, alpha=0.15, linewidth=0)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean weight of the previous assistant")
    ax.set_title("Adaptive fusion weights per level (1 - w goes to the new branch);\n"
                 "band: +- std of the per-image weights", fontsize=10)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # a log may lack these columns
        ax.legend(fontsize=8, ncol=2)
    return _save(fig, path)


def _plot_learning_rate(rows, path):
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    xs, ys = _series(rows, "learning_rate")
    ax.plot(xs, ys, drawstyle="steps-post")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_history(rows, out_dir, config=None):
    """Writes the PNG plots of per-epoch log rows into `out_dir`.

    Args:
        rows: list of dicts with an `"epoch"` key (0-based) and metric
            values, as in `state.json`'s `"history"`.
        out_dir: str. Folder for the PNG files (created if needed).
        config: dict or None. The run's options (`config.json`'s
            `"config"`); its `kd_weight`, `lambda_branch` and `lambda_ta`
            scale the distillation terms of `loss_terms.png`.

    Returns:
        List of the written file paths.

    Raises:
        ValueError: if `rows` is empty.
    """
    if not rows:
        raise ValueError("There are no completed epochs to plot (the log is empty).")
    os.makedirs(out_dir, exist_ok=True)
    paths = [
        _plot_accuracy(rows, os.path.join(out_dir, "accuracy.png")),
        _plot_losses(rows, os.path.join(out_dir, "loss.png")),
    ]
    if _numbered(rows, r"ce_(branch|ta)_\d+"):
        paths.append(_plot_loss_terms(rows, os.path.join(out_dir, "loss_terms.png"), config))
    if _numbered(rows, r"fusion_\d+_weight"):  # Not for a baseline.
        paths.append(_plot_fusion(rows, os.path.join(out_dir, "fusion_weights.png")))
    if any("learning_rate" in r for r in rows):
        paths.append(_plot_learning_rate(rows, os.path.join(out_dir, "learning_rate.png")))
    return paths


def plot_run(run_dir, out_dir=None):
    """Plots a run directory's log; PNGs go to `out_dir` (default
    `<run_dir>/plots`). Returns the written paths."""
    rows = load_rows(run_dir)
    saved = _io.read_json(os.path.join(run_dir, "config.json"))
    config = saved.get("config") if isinstance(saved, dict) else None
    return plot_history(rows, out_dir or os.path.join(run_dir, "plots"), config)
