"""`keras-ahbf train`: train (or resume) an AHBF-OKD model or a baseline.

Everything that can fail on user input (options, output paths, data,
backbone) fails before anything is written or trained. The run directory is
`keras_ahbf.runs`; the per-epoch commit is `keras_ahbf.callbacks.EpochCheckpoint`.
"""

from __future__ import annotations

import dataclasses
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
from keras_ahbf import runs
from keras_ahbf import training
from keras_ahbf.callbacks import EpochCheckpoint
from keras_ahbf.callbacks import FusionWeightLogger
from keras_ahbf.cli._common import EXIT_INTERRUPTED
from keras_ahbf.cli._common import EXIT_NONFINITE
from keras_ahbf.cli._common import CLIError
from keras_ahbf.cli._common import check_output_path
from keras_ahbf.cli._common import one_line
from keras_ahbf.cli._common import percent
from keras_ahbf.cli._common import say
from keras_ahbf.cli._common import tensorboard_available
from keras_ahbf.cli.main import TRAIN_OPTIONS
from keras_ahbf.config import METHOD_SPECS

# Number of evaluation images on which the fusion weights' spread is measured.
FUSION_PROBE = 256


def preload_backends() -> None:
    """Imports TensorFlow (`tf.data`) now, while its start-up lines are hidden."""
    from keras_ahbf.data import _utils

    _utils.tf()


def jit_setting(choice: str) -> bool:
    """`--jit auto|on|off` as the `jit_compile` of `compile`."""
    if choice == "auto":
        return keras.backend.backend() == "jax"
    return choice == "on"


def check_user_values(call, *args, **kwargs):
    """Runs `call`, turning bad-data/bad-option errors into `CLIError`s."""
    try:
        return call(*args, **kwargs)
    except (data.DataError, ValueError, TypeError) as e:
        raise CLIError(one_line(e)) from None


@dataclasses.dataclass
class Inputs:
    """The data of a run: pipelines, sizes and the images probing the fusion."""

    train: object
    evaluation: object
    train_size: int
    evaluated_on: str  # "test" or "validation".
    probe: np.ndarray | None = None
    evaluation_size: int | None = None  # Unknown for ImageNet.


# --------------------------------------------------------------------------
# Configuration and data.


def _option_value(args, name):
    value = getattr(args, name)
    if name == "data_dir" and value is not None:
        value = os.path.abspath(os.path.expanduser(value))
    return value


def train_config(args):
    """The `TrainConfig` of the command line (`resolve_config` checks it)."""
    options = {o.field: _option_value(args, o.field) for o in TRAIN_OPTIONS}
    options = {k: v for k, v in options.items() if v is not None}
    return check_user_values(training.resolve_config, args.dataset, **options)


def _split_count(config, size: int) -> int:
    """Number of held-out training examples for `--validation-split`."""
    split = config.validation_split
    if not split:
        return 0
    count = int(size * split + 0.5)
    if not 0 < count < size:
        raise CLIError(
            f"--validation-split {split} of {size} training examples holds out "
            f"{count}; it must leave at least one example on each side."
        )
    return count


def _imagenet_inputs(config, initial_epoch: int, common: dict) -> Inputs:
    if config.data_dir is None:
        raise CLIError(
            "ImageNet needs --data-dir: the folder with the manually downloaded "
            "ILSVRC2012 tar files (see keras_ahbf.data.load_imagenet)."
        )
    train = check_user_values(data.load_imagenet, config.data_dir, "train")
    test = check_user_values(data.load_imagenet, config.data_dir, "validation")
    if config.train_limit:
        train = train.take(config.train_limit)
    if config.test_limit:
        test = test.take(config.test_limit)
    size = int(train.cardinality())
    if size < 1:
        raise CLIError("Could not determine the size of the ImageNet training split.")
    held_out = _split_count(config, size)
    if held_out:
        train, test = train.take(size - held_out), train.skip(size - held_out)
        size -= held_out
    train_ds = data.make_dataset(
        train, None, training=True, augment=config.augment,
        seed=config.seed + initial_epoch, **common,
    )
    test_ds = data.make_dataset(test, None, training=False, **common)
    return Inputs(train_ds, test_ds, size, "validation" if held_out else "test")


def load_inputs(config, initial_epoch: int) -> Inputs:
    """Loads and checks the data of `config`; the training pipeline is
    seeded with the epoch it starts at (a resumed run sees new shuffles)."""
    common = dict(dataset=config.dataset, batch_size=config.batch_size)
    if config.dataset == "imagenet2012":
        return _imagenet_inputs(config, initial_epoch, common)
    (x_train, y_train), (x_eval, y_eval) = check_user_values(
        data.load_arrays, config.dataset, config.data_dir,
        train_limit=config.train_limit, test_limit=config.test_limit,
    )
    held_out = _split_count(config, len(x_train))
    if held_out:
        cut = len(x_train) - held_out
        x_train, y_train, x_eval, y_eval = x_train[:cut], y_train[:cut], x_train[cut:], y_train[cut:]
    train_ds = check_user_values(
        data.make_dataset, x_train, y_train, training=True, augment=config.augment,
        seed=config.seed + initial_epoch, **common,
    )
    eval_ds = check_user_values(data.make_dataset, x_eval, y_eval, training=False, **common)
    probe = data.make_dataset(
        x_eval[:FUSION_PROBE], y_eval[:FUSION_PROBE], dataset=config.dataset,
        batch_size=FUSION_PROBE, training=False,
    )
    probe = np.asarray(next(iter(probe))[0])
    return Inputs(
        train_ds, eval_ds, len(x_train), "validation" if held_out else "test", probe,
        evaluation_size=len(x_eval),
    )


# --------------------------------------------------------------------------
# Model.


def new_model(config, steps: int, jit: bool):
    """A freshly built and compiled model (the baseline with `--baseline`)."""
    info = data.DATASETS[config.dataset]
    keras.utils.set_random_seed(config.seed)
    if config.baseline:
        model = check_user_values(
            training.build_baseline, config, info.num_classes, info.image_shape
        )
        return training.compile_baseline(model, config, steps, jit_compile=jit)
    model = check_user_values(training.build_model, config, info.num_classes, info.image_shape)
    return training.compile_model(model, config, steps, jit_compile=jit)


def restored_model(output: str, config, jit: bool):
    """The model of the last commit, ready to continue training."""
    model, state = runs.restore(output)
    model.jit_compile = jit
    return model, state


# --------------------------------------------------------------------------
# The run directory.


def output_directory(args, config) -> str:
    """`--output` (checked), or the default `runs/<dataset>-<backbone>-seed<seed>`."""
    if args.output is not None:
        return check_output_path("--output", args.output, kind="directory")
    name = f"{config.dataset}-{config.backbone}-seed{config.seed}"
    if config.baseline:
        name += "-baseline"
    elif config.method != "ahbf":
        name += f"-{config.method}"
    return check_output_path("--output", os.path.join("runs", name), kind="directory")


def _config_defaults(config) -> dict:
    return {
        f.name: f.default
        for f in dataclasses.fields(config)
        if f.default is not dataclasses.MISSING
    }


def check_existing_run(output: str, config, dist):
    """The saved `config.json` of `output` (None for a new run).

    Raises:
        CLIError: if `output` holds a run with other options, or is a
            non-empty directory that is not a run.
    """
    saved = runs.read_config(output)
    if saved is not None:
        diffs = runs.config_differences(
            saved.get("config", {}), config.to_dict(), _config_defaults(config)
        )
        if diffs:
            raise CLIError(
                f"{output} holds a run started with other options: " + "; ".join(diffs)
                + ". Repeat the original command to resume it, or choose another --output."
            )
    elif dist.is_chief and runs.is_foreign_directory(output):
        raise CLIError(
            f"--output {output} is a non-empty directory without a keras-ahbf run "
            f"({runs.CONFIG_FILE}); choose a new or empty directory."
        )
    return saved


def prepare_output(output: str, config, dist, args, saved) -> None:
    """Checks the disk, tidies a crashed run and writes `config.json` (chief only)."""
    if not dist.is_chief:
        return
    try:
        runs.check_output_writable(output)
    except OSError as e:
        raise CLIError(f"--output {one_line(e)}") from None
    # A run killed during a commit or in `finalize`: delete its temporary
    # files, bring log.csv and the checkpoints in line with state.json.
    runs.recover(output)
    if saved is None:
        runs.write_config(
            output,
            config.to_dict(),
            created=time.strftime("%Y-%m-%d %H:%M:%S"),
            backend=keras.backend.backend(),
            command="keras-ahbf " + " ".join(args.argv),
            distribute=dist.kind,
            replicas=dist.num_replicas,
        )


# --------------------------------------------------------------------------
# The command.


def make_distribution(args):
    """The `--distribute` engine; created before any tensor exists."""
    if args.cpu_devices is not None and args.distribute == "none":
        raise CLIError("--cpu-devices needs --distribute mirrored or data-parallel.")
    try:
        return distribution.make_distribution(args.distribute, cpu_devices=args.cpu_devices)
    except ValueError as e:
        raise CLIError(f"--distribute {args.distribute}: {e}") from None


def run(args) -> int:
    """Runs `keras-ahbf train`; returns the exit code."""
    config = train_config(args)
    output = output_directory(args, config)
    dist = make_distribution(args)
    if getattr(args, "dry_run", False):
        from keras_ahbf.cli import dry_run  # It imports this module.

        return dry_run.dry_run(config, output, dist)
    with dist.scope():
        return _train_in_scope(args, config, output, dist)


def check_global_batch(config, dist) -> None:
    """Raises unless the global batch splits evenly over the replicas."""
    if config.batch_size % dist.num_replicas:
        raise CLIError(
            f"--batch-size {config.batch_size} (the global batch) must be divisible "
            f"by the {dist.num_replicas} replicas of --distribute {dist.kind}."
        )


def _describe_start(config, output, state, inputs, dist) -> None:
    done = state["epochs_completed"] if state else 0
    if state:
        say(f"Resuming {output} after epoch {done} of {config.epochs} "
            f"(checkpoint {state['checkpoint']}).")
    else:
        if config.baseline:
            what = f"the {config.backbone} target network alone (baseline, cross-entropy only)"
        elif config.method in METHOD_SPECS:
            spec = METHOD_SPECS[config.method]
            what = f"{config.num_peers} {config.backbone} {spec.network_word} by {spec.title}"
        else:
            what = f"{config.backbone} with {config.num_branches} branches"
        say(f"Training {what} on {config.dataset} ({inputs.train_size} images) for "
            f"{config.epochs} epochs; backend {keras.backend.backend()}; run directory {output}")
    if inputs.evaluated_on == "validation":
        say("Evaluating on the held-out validation split (--validation-split), not the test set.")
    if dist.kind != "none":
        say(f"Data parallel ({dist.kind}): {dist.num_replicas} replicas on "
            f"{dist.num_workers} worker(s), this is worker {dist.worker_index}; "
            f"global batch {config.batch_size}.")


def _train_in_scope(args, config, output, dist) -> int:
    saved = check_existing_run(output, config, dist)
    state = runs.read_state(output)
    done = state["epochs_completed"] if state else 0
    jit = jit_setting(args.jit)
    from keras_ahbf import kernels

    choice = getattr(args, "kernels", "auto")
    kernels.set_enabled(None if choice == "auto" else choice == "on")
    model = inputs = None
    if done < config.epochs:
        check_global_batch(config, dist)
        inputs = load_inputs(config, done)
        steps = training.steps_per_epoch(inputs.train_size, config.batch_size)
        if state:
            # A damaged checkpoint is reported here, before anything is written.
            model, state = restored_model(output, config, jit)
        else:
            model = new_model(config, steps, jit)
    prepare_output(output, config, dist, args, saved)
    if model is None:
        say(f"{output} already completed its {config.epochs} epochs.")
    else:
        _describe_start(config, output, state, inputs, dist)
        code = _fit_on_worker(args, config, model, output, inputs, done, dist)
        if code:
            return code
        state = runs.read_state(output)
    if not dist.is_chief:
        say(f"Worker {dist.worker_index} done; the chief writes {output}.")
        return 0
    evaluated_on = inputs.evaluated_on if inputs else _evaluated_on(config)
    summary = finalize(output, config, state, evaluated_on, model)
    say(format_summary(summary, output))
    return 0


def _evaluated_on(config) -> str:
    return "validation" if config.validation_split else "test"


def _fit_on_worker(args, config, model, output, inputs, done, dist) -> int:
    if dist.is_chief:
        return fit(args, config, model, output, output, inputs, done)
    # Only the chief writes the run directory (the others read their resume
    # point from it, on a shared file system). The other workers keep
    # identical checkpoints in a scratch folder, so that every worker runs
    # the same callbacks and stops in lock step.
    scratch = tempfile.mkdtemp(prefix=f"keras-ahbf-worker{dist.worker_index}-")
    try:
        return fit(args, config, model, output, scratch, inputs, done)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _callbacks(config, output, checkpoint_dir, inputs):
    checkpoint = EpochCheckpoint(checkpoint_dir, metadata={"epochs_planned": config.epochs})
    callbacks = [keras.callbacks.TerminateOnNaN()]
    if not config.baseline and config.method == "ahbf":
        callbacks.append(FusionWeightLogger(inputs.probe))
    callbacks.append(checkpoint)
    writes_output = checkpoint_dir == output  # False on non-chief workers.
    if writes_output and tensorboard_available():
        # After the logger and the checkpoint, so it logs what they add.
        callbacks.append(
            keras.callbacks.TensorBoard(
                os.path.join(output, runs.TENSORBOARD_DIR), write_graph=False, profile_batch=0
            )
        )
    elif writes_output:
        say("Note: the `tensorboard` package is not installed; no TensorBoard logs "
            "(pip install tensorboard).")
    return checkpoint, callbacks


def _committed_epochs(output) -> int:
    state = runs.read_state(output)
    return state["epochs_completed"] if state else 0


def fit(args, config, model, output, checkpoint_dir, inputs, done) -> int:
    """Trains from epoch `done`; 0, or the exit code of an interruption.

    Raises:
        CLIError: (exit code 3) if the loss became NaN or infinite.
    """
    checkpoint, callbacks = _callbacks(config, output, checkpoint_dir, inputs)
    try:
        model.fit(
            inputs.train,
            epochs=config.epochs,
            initial_epoch=done,
            validation_data=inputs.evaluation,
            callbacks=callbacks,
            verbose=args.verbose,
            shuffle=False,  # The tf.data pipeline shuffles; this silences a warning.
        )
    except KeyboardInterrupt:
        print(
            f"\nInterrupted: {_committed_epochs(output)} completed epoch(s) are saved in "
            f"{output}; run the same command again to resume.",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    if checkpoint.nonfinite_epoch is not None:
        done = _committed_epochs(output)
        kept = f"the checkpoint of epoch {done} is kept in {output}" if done else (
            "no epoch was completed"
        )
        raise CLIError(
            f"the loss became NaN or infinite in epoch {checkpoint.nonfinite_epoch + 1}; "
            f"training stopped and {kept}. Try a lower --lr.",
            code=EXIT_NONFINITE,
        )
    return 0


def finalize(output: str, config, state, evaluated_on: str = "test", model=None) -> dict:
    """Exports the target network and writes `summary.json` (idempotent).

    Args:
        output: str. The run directory.
        config: `TrainConfig`.
        state: dict. The committed state.
        evaluated_on: str. `"test"` or `"validation"`.
        model: the trained `OnlineKDModel`, or None to load the last
            checkpoint.

    Returns:
        The summary written.
    """
    if config.baseline:
        # The target network alone (a `BaselineModel`); loaded uncompiled,
        # so the exported file holds no optimizer state, and exported as a
        # plain `keras.Model` that loads with Keras alone.
        target, state = runs.restore(output, compile=False)
        target = target.target_model(name=f"{config.backbone}_target")
    else:
        if model is None:
            model, state = runs.restore(output, compile=False)
        target = model.target_model(name=f"{config.backbone}_target")
    _io.atomic_save_model(target, os.path.join(output, runs.TARGET_FILE))
    summary = runs.summarize(config, state, keras.backend.backend(), evaluated_on)
    _io.atomic_write_json(os.path.join(output, runs.SUMMARY_FILE), summary)
    return summary


def format_summary(summary: dict, output: str) -> str:
    """The end-of-training screen: accuracies, fusion weights and files."""
    config = summary["config"]
    split = summary.get("evaluated_on", "test")
    if summary.get("kind") == "baseline":
        title = (f"Baseline run finished (target network alone, cross-entropy only): "
                 f"{config['dataset']}, {config['backbone']}")
    elif summary.get("kind") in METHOD_SPECS:
        spec = METHOD_SPECS[summary["kind"]]
        title = (f"{spec.short} run finished: {config['dataset']}, {config.get('num_peers')} "
                 f"{config['backbone']} {spec.network_word}")
    else:
        title = (f"AHBF-OKD run finished: {config['dataset']}, {config['backbone']}, "
                 f"{config['num_branches']} branches (aux {config['aux']})")
    lines = [
        "",
        f"{title}, {summary['epochs_completed']} epochs, backend {summary['backend']}, "
        f"{summary['train_time_seconds']:.0f} s of training",
        "",
        f"  {split + ' top-1':<22}{'last':>8}{'best':>9}",
    ]
    for name, acc in {**summary["branch_top1"], **summary.get("peer_top1", {})}.items():
        label = f"{name} (target)" if name in ("branch_0", "peer_0") else name
        lines.append(f"  {label:<22}{percent(acc['last']):>8}{percent(acc['best']):>9}")
    for name, acc in summary["teacher_top1"].items():
        label = f"{name} (fused teacher)" if name.startswith("ta_") else f"{name} (teacher)"
        lines.append(f"  {label:<22}{percent(acc['last']):>8}{percent(acc['best']):>9}")
    lines.append(f"  best target epoch: {summary['best_epoch']}")
    if summary["fusion_weights"]:
        lines.append("")
        lines.append(f"  fusion weights, last epoch on the {split} set "
                     "[previous assistant, new branch]:")
        for name, entry in summary["fusion_weights"].items():
            w = entry.get("test") or entry.get("train")
            if w:
                lines.append(f"    level {name.split('_')[1]}: [{w[0]:.3f}, {w[1]:.3f}]")
    lines += [
        "",
        f"  run directory: {output}",
        f"    {runs.TARGET_FILE} (target network), {runs.SUMMARY_FILE}, {runs.LOG_FILE}, "
        f"{runs.CHECKPOINT_DIR}/, {runs.TENSORBOARD_DIR}/",
        f"  plots: keras-ahbf plot {output}",
        "",
    ]
    return "\n".join(lines)
