"""Why the AHBF target loses at short budgets: loss terms and gradient shares over training.

Trains an AHBF-OKD model with the `keras-ahbf train` recipe (scaled to
`--epochs`), one epoch at a time, and after every epoch measures on one fixed
batch of training images (no augmentation, BatchNorm in training mode, its
statistics restored afterwards):

- every loss term: the target's cross-entropy, the deeper branches' and the
  fused outputs' cross-entropy, the two distillation groups as they enter the
  loss (`w * kd_weight * lambda * KL`) and the coupled L2;
- the gradient each term sends into the shared trunk: its norm and its share
  of the total trunk gradient, `<g_term, g_total> / ||g_total||^2` (the shares
  add up to 1; a negative share pulls against the sum);
- the test top-1 of every branch and fused output, and each fusion module's
  mean weight on its first input (the previous assistant).

One JSON line per epoch goes to `<output>/dynamics.jsonl`; the run resumes from
the last completed epoch if interrupted (the model is checkpointed after each
epoch). It uses Keras' PyTorch backend (autograd gives the per-term gradients
directly).

    python experiments/diagnose_dynamics.py --data ../shared/data/cifar10_subset.npz \
        --epochs 10 --output runs/dynamics
"""

import argparse
import json
import os
import sys

os.environ["KERAS_BACKEND"] = "torch"

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from keras_ahbf import _io  # noqa: E402
from keras_ahbf import data  # noqa: E402
from keras_ahbf import losses  # noqa: E402
from keras_ahbf import training  # noqa: E402

TERMS = ("ce_target", "ce_deeper_branches", "ce_fused", "kd_branch", "kd_ta", "l2")


def loss_terms(model, x, y):
    """The loss split into TERMS (each as it enters the total), + fusion weights."""
    out = model(x, training=True)
    t = losses.ahbf_loss(
        y, out["branch_logits"], out["fused_logits"], temperature=model.temperature,
        kd_weight=model.kd_weight, lambda_ta=model.lambda_ta, lambda_branch=model.lambda_branch,
        rampup_weight=model.rampup_weight(), stop_teacher_gradient=model.stop_teacher_gradient,
        aux_ce_weight=model.aux_ce_weight, fused_ce_weight=model.fused_ce_weight,
    )
    B = model.num_branches
    ce = t["ce_terms"]
    scale = model.rampup_weight() * model.kd_weight
    terms = {
        "ce_target": ce[0],
        "ce_deeper_branches": model.aux_ce_weight * sum(ce[1:B]),
        "ce_fused": model.fused_ce_weight * sum(ce[B:]),
        "kd_branch": scale * model.lambda_branch * t["kd_branch"],
        "kd_ta": scale * model.lambda_ta * t["kd_ta"],
        "l2": 0.5 * model.weight_decay * sum(torch.sum(v.value ** 2) for v in model.trainable_variables),
    }
    return terms, [float(w[:, 0].mean().detach()) for w in out["fusion_weights"]]


def gradient_shares(model, x, y):
    trunk = [v.value for v in model.trunk.trainable_variables]
    saved = [keras.ops.convert_to_numpy(v) for v in model.non_trainable_variables]
    terms, fusion_weights = loss_terms(model, x, y)
    grads = {}
    for name in TERMS:
        g = torch.autograd.grad(terms[name], trunk, retain_graph=True, allow_unused=True)
        grads[name] = torch.cat([
            (gi if gi is not None else torch.zeros_like(p)).reshape(-1) for gi, p in zip(g, trunk)
        ])
    for v, value in zip(model.non_trainable_variables, saved):
        v.assign(value)
    total = sum(grads.values())
    denom = float(torch.dot(total, total))
    return {
        "loss": {k: float(v) for k, v in terms.items()},
        "trunk_grad_norm": {k: float(torch.linalg.norm(g)) for k, g in grads.items()},
        "trunk_grad_share": {k: float(torch.dot(g, total)) / denom for k, g in grads.items()},
        "trunk_grad_norm_total": denom ** 0.5,
        "fusion_weight_batch": fusion_weights,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="CIFAR .npz (x_train, y_train, x_test, y_test)")
    ap.add_argument("--dataset", default="cifar10", choices=("cifar10", "cifar100"))
    ap.add_argument("--backbone", default="resnet8")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--train-limit", type=int)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--recipe", default="paper")
    ap.add_argument("--probe", type=int, default=256, help="images in the fixed measurement batch")
    ap.add_argument("--output", default="runs/dynamics")
    a = ap.parse_args(argv)
    torch.set_num_threads(2)
    os.makedirs(a.output, exist_ok=True)
    config = training.resolve_config(a.dataset, backbone=a.backbone, epochs=a.epochs, seed=a.seed,
                                     recipe=a.recipe, train_limit=a.train_limit)
    (x_train, y_train), (x_test, y_test) = data.load_arrays(a.dataset, a.data, train_limit=a.train_limit)
    keras.utils.set_random_seed(a.seed)
    steps = training.steps_per_epoch(len(x_train), config.batch_size)
    model_path = os.path.join(a.output, "model.keras")
    log_path = os.path.join(a.output, "dynamics.jsonl")
    done = 0
    if os.path.exists(model_path) and os.path.exists(log_path):
        model = keras.saving.load_model(model_path)
        with open(log_path) as f:
            done = sum(1 for _ in f)
    else:
        model = training.build_model(config, data.DATASETS[a.dataset].num_classes, x_train.shape[1:])
        training.compile_model(model, config, steps)
        open(log_path, "w").close()
    probe_ds = data.make_dataset(x_train[: a.probe], y_train[: a.probe], dataset=a.dataset,
                                 batch_size=a.probe, training=False)
    x_probe, y_probe = next(iter(probe_ds))
    x_probe = keras.ops.convert_to_tensor(np.asarray(x_probe))
    y_probe = keras.ops.convert_to_tensor(np.asarray(y_probe))
    test_ds = data.make_dataset(x_test, y_test, dataset=a.dataset, batch_size=500, training=False)
    for epoch in range(done, a.epochs):
        train_ds = data.make_dataset(x_train, y_train, dataset=a.dataset, batch_size=config.batch_size,
                                     training=True, seed=a.seed + epoch)
        history = model.fit(train_ds, epochs=epoch + 1, initial_epoch=epoch, verbose=0).history
        row = {"epoch": epoch + 1, "rampup_weight": float(model.rampup_weight())}
        row.update(gradient_shares(model, x_probe, y_probe))
        logs = model.evaluate(test_ds, verbose=0, return_dict=True)
        row["test_top1"] = {k: v for k, v in logs.items() if k.endswith("_accuracy")}
        row["train_logs"] = {k: v[-1] for k, v in history.items()}
        _io.atomic_save_model(model, model_path)
        with open(log_path, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"epoch {epoch + 1}: w {row['rampup_weight']:.3f} shares "
              + " ".join(f"{k} {v:+.2f}" for k, v in row["trunk_grad_share"].items())
              + f" | target {row['test_top1'].get('branch_0_accuracy', 0):.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
