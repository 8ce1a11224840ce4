"""The `keras-ahbf` command: train, evaluate, export and plot AHBF-OKD models.

```
keras-ahbf train --dataset digits --output runs/digits        # ~2 min on 2 CPU cores
keras-ahbf train --dataset cifar100 --data-dir cifar100.npz   # the paper's recipe
keras-ahbf evaluate runs/digits                                # every branch and teacher
keras-ahbf export runs/digits --output resnet8.keras           # + a TF SavedModel
keras-ahbf plot runs/digits                                    # PNGs in runs/digits/plots
keras-ahbf train ... --distribute mirrored                     # data parallel, see below
```

The Keras backend is chosen as usual with `KERAS_BACKEND` (tensorflow, jax or
torch). Exit codes: 0 success, 2 bad options or bad data (a one-line message,
nothing trained), 3 training stopped on a NaN/infinite loss, 130 interrupted.

`train` writes into `--output`: `config.json` (the resolved options),
`checkpoints/epoch_NNNN.keras` (the full model after the last completed epoch),
`state.json` (the commit record: epochs completed and one row of metrics per
epoch), `log.csv`, `tensorboard/`, and at the end `target.keras` (the
deployable target network) and `summary.json`. Running the same command again
with the same `--output` resumes an interrupted run (even one killed with
SIGKILL) from its last completed epoch; see `keras_ahbf.callbacks.EpochCheckpoint`.

`train --distribute mirrored|multi-worker|data-parallel` trains data-parallel
with `keras_ahbf.make_distribution` (TensorFlow's `MirroredStrategy` /
`MultiWorkerMirroredStrategy` with `TF_CONFIG`, JAX's `DataParallel`);
`--batch-size` stays the global batch, and with several workers only the
chief writes `--output`.
"""

import argparse
import importlib.util
import os
import shutil
import sys
import tempfile
import time

import keras
import numpy as np

from keras_ahbf import _io
from keras_ahbf import data
from keras_ahbf import distribution
from keras_ahbf import training
from keras_ahbf.callbacks import EpochCheckpoint
from keras_ahbf.callbacks import FusionWeightLogger
from keras_ahbf.online_kd_model import OnlineKDModel

EXIT_USAGE = 2
EXIT_NONFINITE = 3
EXIT_INTERRUPTED = 130

CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"
TARGET_FILE = "target.keras"
TENSORBOARD_DIR = "tensorboard"
# Number of test images on which the fusion weights' spread is measured.
_FUSION_PROBE = 256


class CLIError(Exception):
    """A user error: printed as one line, exit code `code`."""

    def __init__(self, message, code=EXIT_USAGE):
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------
# Argument parsing.


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _milestones(text):
    text = text.strip()
    if text.lower() in ("", "none"):
        return ()
    try:
        return tuple(int(t) for t in text.replace(" ", ",").split(",") if t)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated epochs such as 150,225 (or 'none'), got {text!r}"
        ) from None


def build_parser():
    """The `argparse` parser of the `keras-ahbf` command."""
    parser = argparse.ArgumentParser(
        prog="keras-ahbf",
        description="Online knowledge distillation with Adaptive Hierarchy-Branch "
        "Fusion (AHBF-OKD) for Keras 3. Backend: KERAS_BACKEND=tensorflow|jax|torch.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    # ---- train
    p = sub.add_parser(
        "train",
        help="train an AHBF-OKD model (resumes an interrupted run in --output)",
        description="Train an AHBF-OKD model. Defaults are the data set's recipe "
        "(CIFAR: the paper's 300 epochs, SGD 0.1 Nesterov, x0.1 at 150/225, wd 5e-4, "
        "batch 128, ramp-up 240); with fewer --epochs the milestones and the "
        "ramp-up scale with it unless given. Re-running the same command with the "
        "same --output resumes from the last completed epoch.",
    )
    p.add_argument("--dataset", required=True, choices=sorted(training.RECIPES))
    p.add_argument("--data-dir", help="local copy of the data (CIFAR .npz or "
                   "python-batch folder; ImageNet manual-download folder)")
    p.add_argument("--backbone", help="resnet<depth>, e.g. resnet32 (default: the recipe's)")
    p.add_argument("--num-branches", type=int, help="number of branches B (default 4)")
    p.add_argument("--aux", type=int, help="extra blocks per branch level (default 4)")
    p.add_argument("--fusion", help="fusion module kind (default 'conv')")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float, help="initial learning rate (default 0.1)")
    p.add_argument("--momentum", type=float, help="SGD momentum (default 0.9)")
    p.add_argument("--no-nesterov", dest="nesterov", action="store_false", default=None,
                   help="plain momentum instead of Nesterov")
    p.add_argument("--milestones", type=_milestones,
                   help="epochs at which the lr is multiplied by --lr-decay, e.g. 150,225; 'none'")
    p.add_argument("--lr-decay", type=float, help="lr factor at each milestone (default 0.1)")
    p.add_argument("--weight-decay", type=float, help="coupled L2 weight decay")
    p.add_argument("--temperature", type=float, help="distillation temperature T (default 3)")
    p.add_argument("--kd-weight", type=float, help="weight of the distillation loss (default 1.5)")
    p.add_argument("--lambda-ta", type=float, help="teacher-assistant KL weight (default 2)")
    p.add_argument("--lambda-branch", type=float, help="branch KL weight (default 4)")
    p.add_argument("--rampup", "--rampup-epochs", dest="rampup_epochs", type=int,
                   help="distillation ramp-up length in epochs")
    p.add_argument("--stop-teacher-gradient", action="store_true", default=None,
                   help="stop gradients through the teacher side of every KL term")
    p.add_argument("--no-augment", dest="augment", action="store_false", default=None,
                   help="disable the training augmentation")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--train-limit", type=_positive_int,
                   help="use only the first N training examples")
    p.add_argument("--test-limit", type=_positive_int,
                   help="use only the first N test examples")
    p.add_argument("--jit", choices=("auto", "on", "off"), default="auto",
                   help="XLA compilation: auto = on for JAX (which needs it), off "
                   "for TensorFlow and PyTorch (faster for convolutions on CPU)")
    p.add_argument("--distribute", choices=distribution.KINDS, default="none",
                   help="data-parallel engine: 'mirrored' (TensorFlow, all local GPUs), "
                   "'multi-worker' (TensorFlow, one process per host, cluster in "
                   "TF_CONFIG), 'data-parallel' (JAX, all devices; multi-host with "
                   "KERAS_DISTRIBUTION_* variables). --batch-size stays the global batch.")
    p.add_argument("--cpu-devices", type=_positive_int,
                   help="without GPUs, split the CPU into N devices for --distribute "
                   "mirrored/data-parallel (to try a distributed run on one machine)")
    p.add_argument("--output", help="run directory (default runs/<dataset>-<backbone>-seed<seed>)")
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1,
                   help="0 silent, 1 progress bar (default), 2 one line per epoch")
    p.set_defaults(func=_train)

    # ---- evaluate
    p = sub.add_parser("evaluate", help="evaluate a run or a saved model on a test set")
    p.add_argument("model", help="run directory, or a .keras file (full model or target network)")
    p.add_argument("--dataset", choices=sorted(data.DATASETS),
                   help="default: the run's data set")
    p.add_argument("--data-dir")
    p.add_argument("--batch-size", type=_positive_int, default=256)
    p.add_argument("--test-limit", type=_positive_int)
    p.add_argument("--json", dest="json_path", help="also write the results to this JSON file")
    p.set_defaults(func=_evaluate)

    # ---- export
    p = sub.add_parser("export", help="export the target network (.keras and TF SavedModel)")
    p.add_argument("model", help="run directory or full-model .keras file")
    p.add_argument("--output", help="target .keras file (default <run>/target.keras or "
                   "<model>_target.keras)")
    p.add_argument("--saved-model", help="SavedModel directory (default: next to --output, "
                   "'<name>_savedmodel')")
    p.add_argument("--no-saved-model", action="store_true", help="write only the .keras file")
    p.set_defaults(func=_export)

    # ---- plot
    p = sub.add_parser("plot", help="PNG plots of a run: accuracies, losses, fusion weights")
    p.add_argument("run_dir")
    p.add_argument("--output", help="folder for the PNGs (default <run_dir>/plots)")
    p.set_defaults(func=_plot)
    return parser


def main(argv=None):
    """Runs the `keras-ahbf` command; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return args.func(args)
    except CLIError as e:
        print(f"keras-ahbf {args.command}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return e.code
    except (_io.CorruptFileError, FileNotFoundError) as e:
        # A damaged or missing file of a run (state.json, config.json, a
        # checkpoint) or a damaged .keras file: reported before anything is
        # written.
        print(f"keras-ahbf {args.command}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return EXIT_USAGE


# --------------------------------------------------------------------------
# Helpers.


def tensorboard_available():
    """True if `keras.callbacks.TensorBoard` can write logs here."""
    return (
        importlib.util.find_spec("tensorflow") is not None
        and importlib.util.find_spec("tensorboard") is not None
    )


def _jit_setting(choice):
    if choice == "auto":
        return keras.backend.backend() == "jax"
    return choice == "on"


def _print(*args):
    print(*args, flush=True)


def _check_user_values(call, *args, **kwargs):
    """Runs `call`, turning bad-data/bad-option errors into `CLIError`s."""
    try:
        return call(*args, **kwargs)
    except (data.DataError, ValueError, TypeError) as e:
        raise CLIError(" ".join(str(e).split())) from None


def _load_arrays(dataset, data_dir, train_limit=None, test_limit=None):
    return _check_user_values(
        data.load_arrays,
        dataset,
        data_dir,
        train_limit=train_limit,
        test_limit=test_limit,
    )


def _datasets(config, initial_epoch):
    """(train_ds, test_ds, train_size, probe images) of a configuration."""
    common = dict(dataset=config.dataset, batch_size=config.batch_size)
    if config.dataset == "imagenet2012":
        if config.data_dir is None:
            raise CLIError(
                "ImageNet needs --data-dir: the folder with the manually "
                "downloaded ILSVRC2012 tar files (see keras_ahbf.data.load_imagenet)."
            )
        train = _check_user_values(data.load_imagenet, config.data_dir, "train")
        test = _check_user_values(data.load_imagenet, config.data_dir, "validation")
        if config.train_limit:
            train = train.take(config.train_limit)
        if config.test_limit:
            test = test.take(config.test_limit)
        size = int(train.cardinality())
        if size < 1:
            raise CLIError("Could not determine the size of the ImageNet training split.")
        train_ds = data.make_dataset(
            train, None, training=True, augment=config.augment,
            seed=config.seed + initial_epoch, **common,
        )
        test_ds = data.make_dataset(test, None, training=False, **common)
        return train_ds, test_ds, size, None
    (x_train, y_train), (x_test, y_test) = _load_arrays(
        config.dataset, config.data_dir, config.train_limit, config.test_limit
    )
    train_ds = _check_user_values(
        data.make_dataset, x_train, y_train, training=True, augment=config.augment,
        seed=config.seed + initial_epoch, **common,
    )
    test_ds = _check_user_values(
        data.make_dataset, x_test, y_test, training=False, **common
    )
    probe = data.make_dataset(
        x_test[:_FUSION_PROBE], y_test[:_FUSION_PROBE], dataset=config.dataset,
        batch_size=_FUSION_PROBE, training=False,
    )
    probe = np.asarray(next(iter(probe))[0])
    return train_ds, test_ds, len(x_train), probe


def _config_differences(saved, current):
    diffs = []
    for key in sorted(set(saved) | set(current)):
        if saved.get(key) != current.get(key):
            flag = "--" + key.replace("_", "-")
            diffs.append(f"{flag} {saved.get(key)!r} (this command: {current.get(key)!r})")
    return diffs


def _is_foreign_directory(path):
    """True if `path` is a non-empty directory without a run's config.json.

    `config.json` is the first file `train` writes, so any directory it
    wrote into has one. Temporary files (a run killed while writing
    config.json, or during the write test) do not count.
    """
    return os.path.isdir(path) and any(not _io.is_temporary(n) for n in os.listdir(path))


def _percent(value):
    return "   n/a" if value is None else f"{100 * value:6.2f}%"


# --------------------------------------------------------------------------
# Summary.


def summarize(config, state):
    """The `summary.json` content of a finished run (from `state.json`)."""
    rows = state["history"]
    last = rows[-1]

    def metric(row, name):
        return row.get(f"val_{name}")

    target = "branch_0_accuracy"
    best_row = max(rows, key=lambda r: metric(r, target) or -1.0)
    branch_names = sorted(
        (k[4:] for k in last if k.startswith("val_branch_") and k.endswith("_accuracy")),
        key=lambda k: int(k.split("_")[1]),
    )
    ta_names = sorted(
        (k[4:] for k in last if k.startswith("val_ta_") and k.endswith("_accuracy")),
        key=lambda k: int(k.split("_")[1]),
    )

    def accuracy_table(names):
        return {
            name.replace("_accuracy", ""): {
                "last": metric(last, name),
                "best": max((metric(r, name) or 0.0) for r in rows),
            }
            for name in names
        }

    levels = len(ta_names)
    fusion = {}
    for m in range(1, levels + 1):
        entry = {}
        for kind, key in (
            ("test", f"val_fusion_{m}_weight"),
            ("train", f"fusion_{m}_weight"),
        ):
            if last.get(key) is not None:
                entry[kind] = [last[key], 1.0 - last[key]]
        if last.get(f"fusion_{m}_weight_infer_std") is not None:
            entry["test_std"] = last[f"fusion_{m}_weight_infer_std"]
        fusion[f"fusion_{m}"] = entry
    return {
        "status": "complete",
        "dataset": config.dataset,
        "backbone": config.backbone,
        "epochs_completed": state["epochs_completed"],
        "epochs_planned": config.epochs,
        "target_top1_last": metric(last, target),
        "target_top1_best": metric(best_row, target),
        "best_epoch": int(best_row["epoch"]) + 1,
        "branch_top1": accuracy_table(branch_names),
        "teacher_top1": accuracy_table(ta_names),
        "fusion_weights": fusion,
        "fusion_weights_note": "per level: mean weights [previous assistant, new branch] "
        "in the last epoch (test: inference mode on the test set)",
        "train_time_seconds": sum(r.get("epoch_time", 0.0) for r in rows),
        "backend": keras.backend.backend(),
        "config": config.to_dict(),
    }


def format_summary(summary, output):
    """The end-of-training screen: accuracies, fusion weights and files."""
    config = summary["config"]
    lines = [
        "",
        f"AHBF-OKD run finished: {config['dataset']}, {config['backbone']}, "
        f"{config['num_branches']} branches (aux {config['aux']}), "
        f"{summary['epochs_completed']} epochs, backend {summary['backend']}, "
        f"{summary['train_time_seconds']:.0f} s of training",
        "",
        f"  {'test top-1':<22}{'last':>8}{'best':>9}",
    ]
    for name, acc in summary["branch_top1"].items():
        label = f"{name} (target)" if name == "branch_0" else name
        lines.append(f"  {label:<22}{_percent(acc['last']):>8}{_percent(acc['best']):>9}")
    for name, acc in summary["teacher_top1"].items():
        label = f"{name} (fused teacher)"
        lines.append(f"  {label:<22}{_percent(acc['last']):>8}{_percent(acc['best']):>9}")
    lines.append(f"  best target epoch: {summary['best_epoch']}")
    if summary["fusion_weights"]:
        lines.append("")
        lines.append("  fusion weights, last epoch on the test set [previous assistant, new branch]:")
        for name, entry in summary["fusion_weights"].items():
            w = entry.get("test") or entry.get("train")
            if w:
                lines.append(f"    level {name.split('_')[1]}: [{w[0]:.3f}, {w[1]:.3f}]")
    lines += [
        "",
        f"  run directory: {output}",
        f"    {TARGET_FILE} (target network), {SUMMARY_FILE}, {EpochCheckpoint.LOG_FILE}, "
        f"{EpochCheckpoint.CHECKPOINT_DIR}/, {TENSORBOARD_DIR}/",
        f"  plots: keras-ahbf plot {output}",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------
# train


def _train_config(args):
    data_dir = args.data_dir
    if data_dir is not None:
        data_dir = os.path.abspath(os.path.expanduser(data_dir))
    options = dict(
        data_dir=data_dir,
        backbone=args.backbone,
        num_branches=args.num_branches,
        aux=args.aux,
        fusion=args.fusion,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        momentum=args.momentum,
        nesterov=args.nesterov,
        milestones=args.milestones,
        lr_decay=args.lr_decay,
        weight_decay=args.weight_decay,
        temperature=args.temperature,
        kd_weight=args.kd_weight,
        lambda_ta=args.lambda_ta,
        lambda_branch=args.lambda_branch,
        rampup_epochs=args.rampup_epochs,
        stop_teacher_gradient=args.stop_teacher_gradient,
        augment=args.augment,
        seed=args.seed,
        train_limit=args.train_limit,
        test_limit=args.test_limit,
    )
    return _check_user_values(training.resolve_config, args.dataset, **options)


def _new_model(config, steps, jit):
    info = data.DATASETS[config.dataset]
    keras.utils.set_random_seed(config.seed)
    model = _check_user_values(
        training.build_model, config, info.num_classes, info.image_shape
    )
    return training.compile_model(model, config, steps, jit_compile=jit)


# Checkpoints, logs and the export of a small model take a few MiB; refuse to
# start a run that could only fail at its first checkpoint.
MIN_FREE_MIB = 64


def _check_output_writable(output):
    """Fails before training if `output` cannot hold the run's files."""
    probe = os.path.join(output, f".write-test{_io.TMP_MARKER}{os.getpid()}-probe")
    try:
        os.makedirs(output, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"\0" * 65536)
            f.flush()
            os.fsync(f.fileno())
        os.remove(probe)
    except OSError as e:
        raise CLIError(
            f"--output {output} is not writable: {e.strerror or e}"
        ) from None
    free_mib = shutil.disk_usage(output).free / 2**20
    if free_mib < MIN_FREE_MIB:
        raise CLIError(
            f"--output {output}: only {free_mib:.0f} MiB free on its disk; a run "
            f"needs at least {MIN_FREE_MIB} MiB for checkpoints and logs"
        )


def _make_distribution(args):
    """The `--distribute` engine; created before any tensor exists."""
    if args.cpu_devices is not None and args.distribute == "none":
        raise CLIError("--cpu-devices needs --distribute mirrored or data-parallel.")
    try:
        return distribution.make_distribution(args.distribute, cpu_devices=args.cpu_devices)
    except ValueError as e:
        raise CLIError(f"--distribute {args.distribute}: {e}") from None


def _train(args):
    config = _train_config(args)
    dist = _make_distribution(args)
    with dist.scope():
        return _train_in_scope(args, config, dist)


def _train_in_scope(args, config, dist):
    output = os.path.abspath(
        args.output or os.path.join("runs", f"{config.dataset}-{config.backbone}-seed{config.seed}")
    )
    config_path = os.path.join(output, CONFIG_FILE)
    saved = _io.read_json(config_path)
    if saved is not None:
        diffs = _config_differences(saved.get("config", {}), config.to_dict())
        if diffs:
            raise CLIError(
                f"{output} holds a run started with other options: "
                + "; ".join(diffs)
                + ". Repeat the original command to resume it, or choose another --output."
            )
    elif dist.is_chief and _is_foreign_directory(output):
        raise CLIError(
            f"--output {output} is a non-empty directory without a keras-ahbf run "
            f"({CONFIG_FILE}); choose a new or empty directory."
        )
    state = EpochCheckpoint.read_state(output)
    done = state["epochs_completed"] if state else 0
    jit = _jit_setting(args.jit)

    # Everything that can fail on user input (options, data, backbone) fails
    # here, before anything is written or trained.
    if done < config.epochs:
        if config.batch_size % dist.num_replicas:
            raise CLIError(
                f"--batch-size {config.batch_size} (the global batch) must be divisible "
                f"by the {dist.num_replicas} replicas of --distribute {dist.kind}."
            )
        train_ds, test_ds, train_size, probe = _datasets(config, done)
        steps = training.steps_per_epoch(train_size, config.batch_size)
        if not state:
            model = _new_model(config, steps, jit)
        else:
            # A damaged checkpoint is reported here, before anything is written.
            model, state = EpochCheckpoint.restore(output)
            model.jit_compile = jit
    if dist.is_chief:
        _check_output_writable(output)
        # A run killed during a commit or in _finalize: delete its temporary
        # files, bring log.csv and the checkpoints in line with state.json.
        EpochCheckpoint.recover(output)
        if saved is None:
            _io.atomic_write_json(
                config_path,
                {
                    "config": config.to_dict(),
                    "created": time.strftime("%Y-%m-%d %H:%M:%S"),
                    "backend": keras.backend.backend(),
                    "command": "keras-ahbf " + " ".join(args.argv),
                    "distribute": dist.kind,
                    "replicas": dist.num_replicas,
                },
            )
    if done >= config.epochs:
        _print(f"{output} already completed its {config.epochs} epochs.")
        model = None
    else:
        if state:
            _print(
                f"Resuming {output} after epoch {done} of {config.epochs} "
                f"(checkpoint {state['checkpoint']})."
            )
        else:
            _print(
                f"Training {config.backbone} with {config.num_branches} branches on "
                f"{config.dataset} ({train_size} images) for {config.epochs} epochs; "
                f"backend {keras.backend.backend()}; run directory {output}"
            )
        if dist.kind != "none":
            _print(
                f"Data parallel ({dist.kind}): {dist.num_replicas} replicas on "
                f"{dist.num_workers} worker(s), this is worker {dist.worker_index}; "
                f"global batch {config.batch_size}."
            )
        if dist.is_chief:
            code = _fit(args, config, model, output, output, train_ds, test_ds, probe, done)
        else:
            # Only the chief writes the run directory (the others read their
            # resume point from it, on a shared file system). The other
            # workers keep identical checkpoints in a scratch folder, so that
            # every worker runs the same callbacks and stops in lock step.
            scratch = tempfile.mkdtemp(prefix=f"keras-ahbf-worker{dist.worker_index}-")
            try:
                code = _fit(args, config, model, output, scratch, train_ds, test_ds, probe, done)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        if code:
            return code
        state = EpochCheckpoint.read_state(output)
    if not dist.is_chief:
        _print(f"Worker {dist.worker_index} done; the chief writes {output}.")
        return 0
    summary = _finalize(output, config, state, model)
    _print(format_summary(summary, output))
    return 0


def _fit(args, config, model, output, checkpoint_dir, train_ds, test_ds, probe, done):
    """Trains from epoch `done`; 0, or the exit code of an interruption."""
    checkpoint = EpochCheckpoint(checkpoint_dir, metadata={"epochs_planned": config.epochs})
    callbacks = [keras.callbacks.TerminateOnNaN(), FusionWeightLogger(probe), checkpoint]
    writes_output = checkpoint_dir == output  # False on non-chief workers.
    if writes_output and tensorboard_available():
        # After the logger and the checkpoint, so it logs what they add.
        callbacks.append(
            keras.callbacks.TensorBoard(
                os.path.join(output, TENSORBOARD_DIR), write_graph=False, profile_batch=0
            )
        )
    elif writes_output:
        _print("Note: the `tensorboard` package is not installed; no TensorBoard logs "
               "(pip install tensorboard).")
    try:
        model.fit(
            train_ds,
            epochs=config.epochs,
            initial_epoch=done,
            validation_data=test_ds,
            callbacks=callbacks,
            verbose=args.verbose,
            shuffle=False,  # The tf.data pipeline shuffles; this silences a warning.
        )
    except KeyboardInterrupt:
        state = EpochCheckpoint.read_state(output)
        done = state["epochs_completed"] if state else 0
        print(
            f"\nInterrupted: {done} completed epoch(s) are saved in {output}; "
            "run the same command again to resume.",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    if checkpoint.nonfinite_epoch is not None:
        state = EpochCheckpoint.read_state(output)
        done = state["epochs_completed"] if state else 0
        kept = (
            f"the checkpoint of epoch {done} is kept in {output}"
            if done
            else "no epoch was completed"
        )
        raise CLIError(
            f"the loss became NaN or infinite in epoch {checkpoint.nonfinite_epoch + 1}; "
            f"training stopped and {kept}. Try a lower --lr.",
            code=EXIT_NONFINITE,
        )
    return 0


def _finalize(output, config, state, model=None):
    """Exports the target network and writes summary.json (idempotent)."""
    if model is None:
        model, state = EpochCheckpoint.restore(output, compile=False)
    target = model.target_model(name=f"{config.backbone}_target")
    _io.atomic_save_model(target, os.path.join(output, TARGET_FILE))
    summary = summarize(config, state)
    _io.atomic_write_json(os.path.join(output, SUMMARY_FILE), summary)
    return summary


# --------------------------------------------------------------------------
# evaluate / export


def _load_source(path):
    """(model, run config or None) from a run directory or a .keras file."""
    if os.path.isdir(path):
        saved = _io.read_json(os.path.join(path, CONFIG_FILE))
        config = training.TrainConfig.from_dict(saved["config"]) if saved else None
        if EpochCheckpoint.read_state(path):
            model, _ = EpochCheckpoint.restore(path, compile=False)
            return model, config
        if os.path.isfile(os.path.join(path, TARGET_FILE)):
            return _io.load_keras_model(os.path.join(path, TARGET_FILE), compile=False), config
        raise CLIError(f"{path} holds no completed epoch and no {TARGET_FILE}.")
    if not os.path.isfile(path):
        raise CLIError(f"{path} does not exist.")
    if not path.endswith(".keras"):
        raise CLIError(f"{path} is not a .keras model file or a run directory.")
    return _io.load_keras_model(path, compile=False), None


def _evaluate(args):
    model, config = _load_source(args.model)
    dataset = args.dataset or (config.dataset if config else None)
    if dataset is None:
        raise CLIError("--dataset is required when evaluating a .keras file.")
    data_dir = args.data_dir or (config.data_dir if config and dataset == config.dataset else None)
    info = data.DATASETS[dataset]
    shaped = model.target_model() if isinstance(model, OnlineKDModel) else model
    expected = tuple(shaped.input_shape[1:])
    if None not in expected and expected != tuple(info.image_shape):
        raise CLIError(
            f"the model expects images of shape {expected}, but {dataset} images "
            f"are {tuple(info.image_shape)}."
        )
    classes = shaped.output_shape[-1]
    if classes is not None and classes != info.num_classes:
        raise CLIError(
            f"the model has {classes} output classes, but {dataset} has "
            f"{info.num_classes} classes."
        )
    if dataset == "imagenet2012":
        if data_dir is None:
            raise CLIError("ImageNet needs --data-dir.")
        test = _check_user_values(data.load_imagenet, data_dir, "validation")
        if args.test_limit:
            test = test.take(args.test_limit)
        test_ds = data.make_dataset(test, None, dataset=dataset, batch_size=args.batch_size,
                                    training=False)
        count = None
    else:
        _, (x_test, y_test) = _load_arrays(dataset, data_dir, test_limit=args.test_limit)
        test_ds = data.make_dataset(x_test, y_test, dataset=dataset,
                                    batch_size=args.batch_size, training=False)
        count = len(x_test)
    jit = _jit_setting("auto")
    if isinstance(model, OnlineKDModel):
        model.compile(jit_compile=jit)
        kind = "AHBF-OKD model (all branches)"
    else:
        model.compile(
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="branch_0_accuracy")],
            jit_compile=jit,
        )
        kind = "target network"
    logs = model.evaluate(test_ds, return_dict=True, verbose=0)
    results = {k: float(v) for k, v in logs.items()}
    report = {
        "model": os.path.abspath(args.model),
        "kind": kind,
        "dataset": dataset,
        "test_examples": count,
        "target_top1": results.get("branch_0_accuracy"),
        "metrics": results,
    }
    _print(f"{kind} {args.model} on the {dataset} test set"
           + (f" ({count} images)" if count else "") + ":")
    for key in sorted(results, key=_metric_order):
        if key.endswith("_accuracy"):
            name = key[: -len("_accuracy")]
            label = {"branch_0": "branch_0 (target)"}.get(name, name)
            if name.startswith("ta_"):
                label += " (fused teacher)"
            _print(f"  {label:<28}{_percent(results[key])}")
    for key in sorted(results, key=_metric_order):
        if key.startswith("fusion_") and key.endswith("_weight"):
            w = results[key]
            _print(f"  fusion level {key.split('_')[1]} weights   [{w:.3f}, {1 - w:.3f}]")
    if args.json_path:
        _io.atomic_write_json(args.json_path, report)
    return 0


def _metric_order(key):
    parts = key.split("_")
    rank = {"branch": 0, "ta": 1, "fusion": 2}.get(parts[0], 3)
    number = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    return rank, number, key


def _export(args):
    model, config = _load_source(args.model)
    target = model.target_model() if isinstance(model, OnlineKDModel) else model
    if args.output:
        output = args.output
    elif os.path.isdir(args.model):
        output = os.path.join(args.model, TARGET_FILE)
    else:
        output = args.model[: -len(".keras")] + "_target.keras"
    if not output.endswith(".keras"):
        raise CLIError(f"--output must end with .keras. Received: {output}")
    _io.atomic_save_model(target, output)
    _print(f"Target network ({target.count_params():,} parameters) saved to {output}")
    if args.no_saved_model:
        return 0
    saved_model = args.saved_model or output[: -len(".keras")] + "_savedmodel"
    if importlib.util.find_spec("tensorflow") is None:
        message = "TensorFlow is not installed; no SavedModel written."
        if args.saved_model:
            raise CLIError(message)
        _print(message)
        return 0
    try:
        _export_saved_model(target, saved_model)
    except Exception as e:  # noqa: BLE001 - backend-specific export limits.
        message = (
            f"SavedModel export failed on the {keras.backend.backend()} backend: "
            f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
        )
        if args.saved_model:
            raise CLIError(message, code=1) from None
        _print(message + " (the .keras file was written; export with "
               "KERAS_BACKEND=tensorflow for a SavedModel)")
        return 0
    _print(f"TF SavedModel written to {saved_model}")
    return 0


def _export_saved_model(model, directory):
    """`model.export` into a fresh temporary folder, then renamed into place."""
    directory = os.path.abspath(directory)
    parent = os.path.dirname(directory)
    os.makedirs(parent, exist_ok=True)
    # The temporary folder of an export killed earlier (SIGKILL) goes first.
    _, prefix, suffix = _io.temporary_affixes(directory)
    _io.remove_stale_temporaries(parent, prefix=prefix, suffix=suffix)
    tmp = _io.temporary_path(directory)
    try:
        model.export(tmp, format="tf_saved_model", verbose=False)
        if os.path.exists(directory):
            shutil.rmtree(directory)
        os.replace(tmp, directory)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------
# plot


def _plot(args):
    from keras_ahbf import plots

    try:
        paths = plots.plot_run(args.run_dir, args.output)
    except (FileNotFoundError, ValueError) as e:
        raise CLIError(str(e)) from None
    for path in paths:
        _print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
