"""`keras-ahbf evaluate`: accuracy of every branch and fused teacher, or of a
target network, on a test set."""

import os

import keras

from keras_ahbf import _io
from keras_ahbf import data
from keras_ahbf.cli._common import CLIError
from keras_ahbf.cli._common import check_output_path
from keras_ahbf.cli._common import percent
from keras_ahbf.cli._common import say
from keras_ahbf.cli._sources import load_source
from keras_ahbf.cli.train import check_user_values
from keras_ahbf.cli.train import jit_setting
from keras_ahbf.cli.train import preload_backends  # noqa: F401 - used by main.
from keras_ahbf.methods import OnlineDistillationModel


def metric_order(key: str):
    """Sort key: branches (or peers), then assistants (or the ensemble), then
    fusion levels, by number."""
    parts = key.split("_")
    rank = {"branch": 0, "peer": 0, "ta": 1, "ensemble": 1, "fusion": 2}.get(parts[0], 3)
    number = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    return rank, number, key


def _check_model_fits(model, dataset: str) -> None:
    info = data.DATASETS[dataset]
    shaped = model.target_model() if isinstance(model, OnlineDistillationModel) else model
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


def _test_set(dataset: str, data_dir, args):
    """`(test pipeline, number of examples or None)`."""
    if dataset == "imagenet2012":
        if data_dir is None:
            raise CLIError("ImageNet needs --data-dir.")
        test = check_user_values(data.load_imagenet, data_dir, "validation")
        if args.test_limit:
            test = test.take(args.test_limit)
        ds = data.make_dataset(test, None, dataset=dataset, batch_size=args.batch_size,
                               training=False)
        return ds, None
    _, (x_test, y_test) = check_user_values(
        data.load_arrays, dataset, data_dir, test_limit=args.test_limit
    )
    ds = data.make_dataset(x_test, y_test, dataset=dataset, batch_size=args.batch_size,
                           training=False)
    return ds, len(x_test)


def _compile(model) -> str:
    """Compiles `model` for evaluation; returns what kind of model it is."""
    jit = jit_setting("auto")
    if isinstance(model, OnlineDistillationModel):
        model.compile(jit_compile=jit)
        return f"{model.method_title} model (all networks)"
    # A target network, or the network of a --baseline run.
    model.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="branch_0_accuracy")],
        jit_compile=jit,
    )
    return "target network"


def _print_report(kind, args, dataset, count, results) -> None:
    say(f"{kind} {args.model} on the {dataset} test set"
        + (f" ({count} images)" if count else "") + ":")
    for key in sorted(results, key=metric_order):
        if key.endswith("_accuracy"):
            name = key[: -len("_accuracy")]
            label = {"branch_0": "branch_0 (target)", "peer_0": "peer_0 (target)",
                     "ensemble": "ensemble (peers' mean)"}.get(name, name)
            if name.startswith("ta_"):
                label += " (fused teacher)"
            say(f"  {label:<28}{percent(results[key])}")
    for key in sorted(results, key=metric_order):
        if key.startswith("fusion_") and key.endswith("_weight"):
            w = results[key]
            say(f"  fusion level {key.split('_')[1]} weights   [{w:.3f}, {1 - w:.3f}]")


def run(args) -> int:
    """Runs `keras-ahbf evaluate`; returns 0."""
    if args.json_path:
        check_output_path("--json", args.json_path, kind="file")
    model, config = load_source(args.model)
    dataset = args.dataset or (config.dataset if config else None)
    if dataset is None:
        raise CLIError("--dataset is required when evaluating a .keras file.")
    data_dir = args.data_dir or (config.data_dir if config and dataset == config.dataset else None)
    _check_model_fits(model, dataset)
    test_ds, count = _test_set(dataset, data_dir, args)
    kind = _compile(model)
    logs = model.evaluate(test_ds, return_dict=True, verbose=0)
    results = {k: float(v) for k, v in logs.items()}
    _print_report(kind, args, dataset, count, results)
    if args.json_path:
        _io.atomic_write_json(args.json_path, {
            "model": os.path.abspath(args.model),
            "kind": kind,
            "dataset": dataset,
            "test_examples": count,
            "target_top1": results.get(getattr(model, "target_metric", "branch_0_accuracy")),
            "metrics": results,
        })
    return 0
