"""`keras-ahbf train --dry-run`: every check of a run, then the plan.

Runs what `keras_ahbf.cli.train` checks before it trains (the options,
`--output` and a run already in it, the replicas, the data, loaded and
validated as for training) and prints what a real run would do with the
resolved configuration. Builds no model and writes nothing.
"""

from __future__ import annotations

import os
import shutil

from keras_ahbf import runs
from keras_ahbf import training
from keras_ahbf.cli._common import CLIError
from keras_ahbf.cli._common import say
from keras_ahbf.cli.train import check_existing_run
from keras_ahbf.cli.train import check_global_batch
from keras_ahbf.cli.train import check_user_values
from keras_ahbf.cli.train import load_inputs


def dry_run(config, output, dist) -> int:
    """`train --dry-run`: every check of a real run, then the plan; writes nothing.

    Checks what a real run checks before it trains (the options, `--output`
    and an existing run in it, the replicas, the data: loaded and validated
    as for training), prints the resolved configuration and the sizes, and
    returns 0. No model is built and nothing is written (ImageNet is not
    prepared: its tar files are only looked for).

    Raises:
        CLIError: as the real run would, before anything is built.
    """
    check_existing_run(output, config, dist)
    state = runs.read_state(output)  # A damaged state.json is reported here.
    done = state["epochs_completed"] if state else 0
    sizes = None
    if done < config.epochs:
        check_global_batch(config, dist)
        if state and not os.path.isfile(
            os.path.join(output, runs.CHECKPOINT_DIR, state["checkpoint"])
        ):
            raise CLIError(
                f"{os.path.join(output, runs.STATE_FILE)} names the checkpoint "
                f"{state['checkpoint']}, which does not exist."
            )
        sizes = _dry_run_sizes(config, done)
    existing = output
    while not os.path.isdir(existing):  # `--output` is checked: a parent exists.
        existing = os.path.dirname(existing)
    free_mib = shutil.disk_usage(existing).free / 2**20
    if dist.is_chief and free_mib < runs.MIN_FREE_MIB:
        raise CLIError(
            f"--output {output}: only {free_mib:.0f} MiB free on its disk; a run needs "
            f"at least {runs.MIN_FREE_MIB} MiB for checkpoints and logs."
        )
    say(format_dry_run(config, output, done, sizes))
    return 0


def _dry_run_sizes(config, done):
    """`(training examples, evaluation examples or None, "test"|"validation")`,
    or None for an ImageNet copy that a real run would first prepare."""
    if config.dataset == "imagenet2012" and config.data_dir is not None:
        from keras_ahbf.data import tfds as tfds_source

        builder = check_user_values(tfds_source._builder, "imagenet2012")
        if not builder.is_prepared():
            tars = [tfds_source.IMAGENET_TARS[s] for s in ("train", "validation")]
            missing = [t for t in tars if not os.path.isfile(os.path.join(config.data_dir, t))]
            if missing:
                raise CLIError(
                    f"--data-dir {config.data_dir} lacks {', '.join(missing)} and ImageNet "
                    "is not prepared yet (see keras_ahbf.data.load_imagenet)."
                )
            return None
    inputs = load_inputs(config, done)
    return inputs.train_size, inputs.evaluation_size, inputs.evaluated_on


def format_dry_run(config, output, done, sizes) -> str:
    """The screen of `train --dry-run`: the plan and the resolved options."""
    if done >= config.epochs:
        plan = f"nothing to train: {output} already completed its {config.epochs} epochs"
    elif done:
        plan = f"would resume {output} after epoch {done} of {config.epochs}"
    else:
        plan = f"would train {config.epochs} epochs into {output}"
    lines = [f"Dry run (no model built, nothing written): {plan}."]
    if sizes is None and done < config.epochs:
        lines.append("  data: ImageNet tar files found; a real run prepares them first.")
    elif sizes is not None:
        train_size, eval_size, evaluated_on = sizes
        steps = training.steps_per_epoch(train_size, config.batch_size)
        evaluation = "" if eval_size is None else f", {eval_size} {evaluated_on} examples"
        lines.append(f"  data: {train_size} training examples ({steps} step(s) of "
                     f"{config.batch_size} per epoch){evaluation}.")
    lines.append("  configuration (config.json):")
    options = config.to_dict()
    width = max(len(k) for k in options)
    lines += [f"    {key:<{width}}  {value!r}" for key, value in options.items()]
    return "\n".join(lines)
