"""The `keras-ahbf` argument parser and entry point.

This module imports nothing heavy: `keras-ahbf --help`, argument errors and
`keras-ahbf plot` never import Keras or a backend. The command that runs is
imported only once the arguments are parsed (`keras_ahbf.cli.train`,
`evaluate`, `export`, `plot`), with the backends' start-up log lines hidden
unless `--log-level` (or `TF_CPP_MIN_LOG_LEVEL`) asks for them.

The options of `train` are the table `TRAIN_OPTIONS`: one `Option` per
`TrainConfig` field, so a new field is one line here.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any, Callable

from keras_ahbf import _io
from keras_ahbf.cli import _common
from keras_ahbf.distribution import KINDS as DISTRIBUTE_KINDS
from keras_ahbf.cli._common import CLIError

from keras_ahbf import config as _config

__all__ = ["Option", "TRAIN_OPTIONS", "build_parser", "main"]

# The data sets and presets (from `keras_ahbf.config`, pure Python).
DATASETS = tuple(sorted(_config.RECIPES))
PRESETS = tuple(sorted(_config.PRESETS))
RAMPUP_SHAPES = tuple(_config.RAMPUP_SHAPES)


def _recipe_help() -> str:
    described = "; ".join(
        f"{name}: {_config.PRESETS[name].description}" for name in PRESETS
    )
    return f"training preset ({described}); explicit options override its values"


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _milestones(text: str) -> tuple:
    text = text.strip()
    if text.lower() in ("", "none"):
        return ()
    try:
        return tuple(int(t) for t in text.replace(" ", ",").split(",") if t)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated epochs such as 150,225 (or 'none'), got {text!r}"
        ) from None


@dataclasses.dataclass(frozen=True)
class Option:
    """One `train` option: a `TrainConfig` field and its command-line flag.

    Args:
        field: str. The `TrainConfig` field (and the `argparse` dest).
        help: str. The help text.
        type: callable or None. Converts the text (`int`, `float`, ...).
        flags: tuple of str. The flags; default `--<field with dashes>`.
        action: str or None. `"store_true"` / `"store_false"` for switches.
        choices: tuple or None. The allowed values.
        metavar: str or None. The value's name in `--help`.

    Every option's default is None ("the recipe's value"), so
    `resolve_config` fills in the data set's recipe and the `--recipe`
    preset, and an explicit flag always wins.
    """

    field: str
    help: str
    type: Callable[[str], Any] | None = None
    flags: tuple = ()
    action: str | None = None
    choices: tuple | None = None
    metavar: str | None = None

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        flags = self.flags or ("--" + self.field.replace("_", "-"),)
        kwargs = dict(dest=self.field, default=None, help=self.help)
        if self.action:
            kwargs["action"] = self.action
        else:
            kwargs.update(type=self.type, choices=self.choices, metavar=self.metavar)
        parser.add_argument(*flags, **kwargs)


TRAIN_OPTIONS = (
    Option("recipe", _recipe_help(), choices=PRESETS),
    Option("method", "online-distillation method: ahbf (AHBF-OKD, default), or one of "
           + ", ".join(f"{n} ({m.title})" for n, m in _config.METHOD_SPECS.items())
           + ", each with its paper's defaults (docs/methods.md)", choices=_config.METHODS),
    Option("num_peers", "methods other than ahbf: number of networks (peers, branches or "
           "heads; okddip counts its group leader) (default: the method's paper: "
           + ", ".join(f"{n} {m.defaults.num_peers}" for n, m in _config.METHOD_SPECS.items())
           + ")", int),
    Option("kdcl_ensemble", "kdcl: the ensemble teacher, minlogit (default), naive (mean "
           "of the logits) or best (the lowest-loss peer per sample)",
           choices=_config.KDCL_ENSEMBLES),
    Option("data_dir", "local copy of the data (CIFAR .npz or python-batch folder; "
           "ImageNet manual-download folder)"),
    Option("backbone", "resnet<depth>, e.g. resnet32, or any keras_ahbf.models "
           "backbone (default: the recipe's)"),
    Option("num_branches", "number of branches B (default 4)", int),
    Option("aux", "extra blocks per branch level (default 4)", int),
    Option("fusion", "fusion module kind (default 'conv')"),
    Option("baseline", "train the target network alone with cross-entropy only "
           "(same recipe, schedule, weight decay, data and outputs)", action="store_true"),
    Option("zero_init_residual", "start every residual block's last BatchNorm scale at "
           "zero", action="store_true"),
    Option("epochs", "number of epochs", int),
    Option("batch_size", "global batch size", int),
    Option("lr", "initial learning rate (default 0.1)", float),
    Option("warmup_epochs", "linear learning-rate warm-up, in epochs (default 0)", int),
    Option("momentum", "SGD momentum (default 0.9)", float),
    Option("nesterov", "plain momentum instead of Nesterov", flags=("--no-nesterov",),
           action="store_false"),
    Option("milestones", "epochs at which the lr is multiplied by --lr-decay, e.g. "
           "150,225; 'none'", _milestones),
    Option("lr_decay", "lr factor at each milestone (default 0.1)", float),
    Option("weight_decay", "coupled L2 weight decay", float),
    Option("temperature", "distillation temperature T (default 3)", float),
    Option("kd_weight", "weight of the distillation loss (default 1.5)", float),
    Option("lambda_ta", "teacher-assistant KL weight (default 2)", float),
    Option("lambda_branch", "branch KL weight (default 4)", float),
    Option("aux_ce_weight", "weight of the deeper branches' cross-entropy (default 1)",
           float),
    Option("fused_ce_weight", "weight of the fused outputs' cross-entropy (default 1)",
           float),
    Option("rampup_epochs", "distillation ramp-up length in epochs",
           int, flags=("--rampup", "--rampup-epochs")),
    Option("rampup_shape", "ramp-up curve: exp (the paper's) or linear",
           choices=RAMPUP_SHAPES),
    Option("stop_teacher_gradient", "stop gradients through the teacher side of every "
           "KL term", action="store_true"),
    Option("augment", "disable the training augmentation", flags=("--no-augment",),
           action="store_false"),
    Option("seed", "random seed (default 0)", int),
    Option("train_limit", "use only the first N training examples", _positive_int,
           metavar="N"),
    Option("test_limit", "use only the first N test examples", _positive_int, metavar="N"),
    Option("validation_split", "hold out this last fraction of the training examples "
           "and evaluate on it instead of the test set (default 0)", float,
           metavar="FRACTION"),
)


def _log_level_parser() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--log-level", choices=tuple(_common.LOG_LEVELS), default=None,
        help="what the backends (TensorFlow, JAX, absl) print: error (default: their "
        "start-up lines hidden), warning or info. Without it, a TF_CPP_MIN_LOG_LEVEL "
        "set in the environment is used as given.",
    )
    return parent


def _add_train(sub, parents) -> None:
    p = sub.add_parser(
        "train", parents=parents,
        help="train an AHBF-OKD model (resumes an interrupted run in --output)",
        description="Train an AHBF-OKD model (or, with --baseline, its target network "
        "alone; with --method, by another online-distillation method, e.g. dml: "
        "--num-peers copies of it by deep mutual learning; docs/methods.md). Defaults are the data set's recipe (CIFAR: the paper's 300 epochs, SGD "
        "0.1 Nesterov, x0.1 at 150/225, wd 5e-4, batch 128, ramp-up 240); with fewer "
        "--epochs the milestones and the ramp-up scale with it unless given. Re-running "
        "the same command with the same --output resumes from the last completed epoch.",
    )
    p.add_argument("--dataset", required=True, choices=DATASETS)
    for option in TRAIN_OPTIONS:
        option.add_to(p)
    p.add_argument("--jit", choices=("auto", "on", "off"), default="auto",
                   help="XLA compilation: auto = on for JAX (which needs it), off "
                   "for TensorFlow and PyTorch (faster for convolutions on CPU)")
    p.add_argument("--kernels", choices=("auto", "on", "off"), default="auto",
                   help="keras_ahbf's backend kernels (fused BatchNorm on TensorFlow "
                   "and PyTorch, PyTorch convolutions without layout copies; "
                   "measured faster, tested equal): auto = on unless "
                   "KERAS_AHBF_KERNELS=0; 'off' uses the keras.ops path")
    p.add_argument("--distribute", choices=DISTRIBUTE_KINDS, default="none",
                   help="data-parallel engine: 'mirrored' (TensorFlow, all local GPUs), "
                   "'multi-worker' (TensorFlow, one process per host, cluster in "
                   "TF_CONFIG), 'data-parallel' (JAX, all devices; multi-host with "
                   "KERAS_DISTRIBUTION_* variables). --batch-size stays the global batch.")
    p.add_argument("--cpu-devices", type=_positive_int, metavar="N",
                   help="without GPUs, split the CPU into N devices for --distribute "
                   "mirrored/data-parallel (to try a distributed run on one machine)")
    p.add_argument("--output", help="run directory (default runs/<dataset>-<backbone>-seed<seed>)")
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1,
                   help="0 silent, 1 progress bar (default), 2 one line per epoch")
    p.add_argument("--dry-run", action="store_true",
                   help="check everything a run checks (options, --output, an existing "
                   "run there, the data) and print the resolved configuration; builds "
                   "no model and writes nothing")


def build_parser() -> argparse.ArgumentParser:
    """The `argparse` parser of the `keras-ahbf` command.

    Returns:
        An `argparse.ArgumentParser`; `parse_args` gives a namespace whose
        `command` is `"train"`, `"evaluate"`, `"export"` or `"plot"`.
    """
    parser = argparse.ArgumentParser(
        prog="keras-ahbf",
        description="Online knowledge distillation with Adaptive Hierarchy-Branch "
        "Fusion (AHBF-OKD) for Keras 3. Backend: KERAS_BACKEND=tensorflow|jax|torch.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    parents = [_log_level_parser()]
    _add_train(sub, parents)

    p = sub.add_parser("evaluate", parents=parents,
                       help="evaluate a run or a saved model on a test set")
    p.add_argument("model", help="run directory, or a .keras file (full model or target network)")
    p.add_argument("--dataset", choices=DATASETS, help="default: the run's data set")
    p.add_argument("--data-dir")
    p.add_argument("--batch-size", type=_positive_int, default=256)
    p.add_argument("--test-limit", type=_positive_int, metavar="N")
    p.add_argument("--json", dest="json_path", help="also write the results to this JSON file")

    p = sub.add_parser("export", parents=parents,
                       help="export the target network (.keras and TF SavedModel)")
    p.add_argument("model", help="run directory or full-model .keras file")
    p.add_argument("--output", help="target .keras file (default <run>/target.keras or "
                   "<model>_target.keras)")
    p.add_argument("--saved-model", help="SavedModel directory (default: next to --output, "
                   "'<name>_savedmodel')")
    p.add_argument("--no-saved-model", action="store_true", help="write only the .keras file")

    p = sub.add_parser("plot", parents=parents,
                       help="PNG plots of a run: accuracies, losses, loss terms, fusion weights")
    p.add_argument("run_dir")
    p.add_argument("--output", help="folder for the PNGs (default <run_dir>/plots)")
    return parser


def main(argv=None) -> int:
    """Runs the `keras-ahbf` command.

    Args:
        argv: list of str or None. The arguments (default `sys.argv[1:]`).

    Returns:
        The exit code: 0 success, 2 bad options or bad data (a one-line
        message, nothing trained), 3 training stopped on a NaN/infinite
        loss, 130 interrupted. `argparse` errors exit with 2 themselves.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        hide = _common.configure_backend_logging(args.log_level)
        command = _common.load_command(args.command, hide)
        return command.run(args)
    except CLIError as e:
        print(f"keras-ahbf {args.command}: error: {_common.one_line(e)}", file=sys.stderr)
        return e.code
    except (_io.CorruptFileError, FileNotFoundError, NotADirectoryError) as e:
        # A damaged or missing file of a run (state.json, config.json, a
        # checkpoint) or a damaged .keras file: reported before anything is
        # written.
        print(f"keras-ahbf {args.command}: error: {_common.one_line(e)}", file=sys.stderr)
        return _common.EXIT_USAGE
