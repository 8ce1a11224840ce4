"""`keras-ahbf export`: the target network as `.keras` and TF SavedModel."""

import importlib.util
import os
import shutil

import keras

from keras_ahbf import _io
from keras_ahbf.cli._common import CLIError
from keras_ahbf.cli._common import check_output_path
from keras_ahbf.cli._common import one_line
from keras_ahbf.cli._common import say
from keras_ahbf.cli._sources import load_source
from keras_ahbf.cli.train import preload_backends  # noqa: F401 - used by main.
from keras_ahbf.methods import OnlineDistillationModel
from keras_ahbf.runs import TARGET_FILE


def _destinations(args):
    """`(the .keras file, the SavedModel folder or None)`, checked."""
    if args.output is not None:
        output = args.output
    elif os.path.isdir(args.model):
        output = os.path.join(args.model, TARGET_FILE)
    else:
        output = args.model[: -len(".keras")] + "_target.keras"
    if not output.endswith(".keras"):
        raise CLIError(f"--output must end with .keras. Received: {output}")
    check_output_path("--output", output, kind="file")
    if args.no_saved_model:
        return output, None
    saved_model = args.saved_model or output[: -len(".keras")] + "_savedmodel"
    check_output_path("--saved-model", saved_model, kind="directory")
    if (os.path.isdir(saved_model) and os.listdir(saved_model)
            and not os.path.isfile(os.path.join(saved_model, "saved_model.pb"))):
        # Replacing it would delete files that are not an earlier export.
        raise CLIError(
            f"--saved-model {saved_model} is a folder with other files in it, not a "
            "SavedModel; give a new or empty folder (an earlier SavedModel is replaced)."
        )
    return output, saved_model


def export_saved_model(model, directory: str) -> None:
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


def run(args) -> int:
    """Runs `keras-ahbf export`; returns the exit code."""
    output, saved_model = _destinations(args)
    model, _ = load_source(args.model)
    target = model.target_model() if isinstance(model, OnlineDistillationModel) else model
    _io.atomic_save_model(target, output)
    say(f"Target network ({target.count_params():,} parameters) saved to {output}")
    if saved_model is None:
        return 0
    if importlib.util.find_spec("tensorflow") is None:
        message = "TensorFlow is not installed; no SavedModel written."
        if args.saved_model:
            raise CLIError(message)
        say(message)
        return 0
    try:
        export_saved_model(target, saved_model)
    except Exception as e:  # noqa: BLE001 - backend-specific export limits.
        message = (
            f"SavedModel export failed on the {keras.backend.backend()} backend: "
            f"{type(e).__name__}: {one_line(e)[:300]}"
        )
        if args.saved_model:
            raise CLIError(message, code=1) from None
        say(message + " (the .keras file was written; export with "
            "KERAS_BACKEND=tensorflow for a SavedModel)")
        return 0
    say(f"TF SavedModel written to {saved_model}")
    return 0
