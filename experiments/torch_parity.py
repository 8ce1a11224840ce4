"""Step-by-step parity of keras_ahbf with a PyTorch implementation of AHBF-OKD.

Builds the PyTorch reference model (`torch_reference.py`, the model of the
published code) and the same `keras_ahbf.models.resnet_cifar`, copies the
PyTorch initial weights into the Keras model (NCHW/OIHW -> NHWC/HWIO, Linear
(out, in) -> Dense (in, out), BatchNorm statistics included), then on one fixed
batch compares:

1. every output in training mode (branch and fused logits) and the loss terms;
2. every variable's gradient;
3. the weights and BatchNorm statistics after 1 and after 20 SGD steps
   (lr 0.1, momentum 0.9, Nesterov, coupled L2 5e-4), PyTorch's
   `torch.optim.SGD` against Keras' `SGD` + `OnlineKDModel(weight_decay=...)`.

It uses Keras' PyTorch backend (gradients come from the same autograd; the
three Keras backends agree with each other to float32 rounding, see
`tests/`), so it runs with `KERAS_BACKEND=torch` whatever is set.

    python experiments/torch_parity.py --reference ../shared/bench/torch_reference.py

Prints one line per check with the largest absolute and relative difference
and writes them to `--json` if given. Exit code 1 if a check exceeds its
tolerance.
"""

import argparse
import importlib.util
import json
import os
import sys

os.environ["KERAS_BACKEND"] = "torch"

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import keras_ahbf  # noqa: E402


def load_reference(path):
    spec = importlib.util.spec_from_file_location("torch_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def torch_to_keras_layout(array):
    """OIHW conv kernels to HWIO, (out, in) Linear weights to (in, out)."""
    if array.ndim == 4:
        return array.transpose(2, 3, 1, 0)
    if array.ndim == 2:
        return array.T
    return array


def torch_tensors(module):
    """Trainable parameters, then BatchNorm statistics, in definition order."""
    params = [p for p in module.parameters()]
    stats = [b for n, b in module.named_buffers() if not n.endswith("num_batches_tracked")]
    return params, stats


def keras_tensors(model):
    params = list(model.trainable_variables)
    stats = [v for v in model.non_trainable_variables if v.path.split("/")[-1].startswith("moving_")]
    return params, stats


def transplant(tmodel, kmodel):
    """Copies the PyTorch weights into the Keras model; checks shapes pairwise."""
    tp, ts = torch_tensors(tmodel)
    kp, ks = keras_tensors(kmodel)
    if len(tp) != len(kp) or len(ts) != len(ks):
        raise SystemExit(f"variable counts differ: torch {len(tp)}+{len(ts)}, keras {len(kp)}+{len(ks)}")
    for t, k in zip(tp + ts, kp + ks):
        value = torch_to_keras_layout(t.detach().numpy())
        if tuple(value.shape) != tuple(k.shape):
            raise SystemExit(f"shape mismatch at {k.path}: torch {tuple(t.shape)} keras {tuple(k.shape)}")
        k.assign(value)
    return list(zip(tp + ts, kp + ks))


def compare(name, a, b, rtol, report):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    scale = float(np.max(np.abs(a))) if a.size else 0.0
    rel = diff / scale if scale > 0 else diff
    ok = rel <= rtol
    report.append({"check": name, "max_abs": diff, "max_rel": rel, "ok": ok})
    return ok


def pairs_report(label, pairs, rtol, report, grad=False, reference=None):
    """Relative L2 difference per variable, `||t - k|| / ||t||`.

    Variables whose reference value is below 1e-4 of the largest norm (e.g.
    the gradient of a BatchNorm offset that the next BatchNorm cancels,
    zero up to rounding) are compared against that floor instead.
    """
    values = []
    for t, k in pairs:
        tv = torch_to_keras_layout((t.grad if grad else t).detach().numpy()).astype(np.float64)
        kv = np.asarray(keras.ops.convert_to_numpy(k.value.grad if grad else k), np.float64)
        if reference is not None:  # compare the change from the initial values
            tv, kv = tv - reference[k.path], kv - reference[k.path]
        values.append((k.path, tv, kv))
    floor = 1e-4 * max(np.linalg.norm(tv) for _, tv, _ in values)
    worst, bad = 0.0, []
    for path, tv, kv in values:
        rel = float(np.linalg.norm(tv - kv)) / max(float(np.linalg.norm(tv)), floor, 1e-30)
        worst = max(worst, rel)
        if rel > rtol:
            bad.append((path, round(rel, 5)))
    bad.sort(key=lambda item: -item[1])
    report.append({"check": label, "max_rel": worst, "ok": not bad, "worst_variables": bad[:5]})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reference", required=True, help="path of torch_reference.py")
    ap.add_argument("--depth", type=int, default=8)
    ap.add_argument("--branches", type=int, default=4)
    ap.add_argument("--aux", type=int, default=4)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rampup-weight", type=float, default=0.5,
                    help="w(epoch) of the compared steps (0.5 = full distillation)")
    ap.add_argument("--stop-grad", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--float64", action="store_true",
                    help="run both sides in float64 (separates float32 rounding from real differences)")
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    if a.float64:
        keras.config.set_floatx("float64")
        torch.set_default_dtype(torch.float64)
    R = load_reference(a.reference)
    torch.manual_seed(a.seed)
    torch.set_num_threads(2)
    rng = np.random.default_rng(a.seed)
    x = rng.normal(size=(a.batch, 32, 32, 3)).astype("float64" if a.float64 else "float32")
    y = rng.integers(0, a.classes, size=a.batch)
    xt, yt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), torch.from_numpy(y)

    tmodel = R.AHBFResNet(a.depth, a.branches, a.aux, a.classes).train()
    # rampup_epochs=0 gives w = 0.5 in Keras; other weights through kd_weight.
    kd_scale = a.rampup_weight / 0.5
    kmodel = keras_ahbf.models.resnet_cifar(
        a.depth, num_classes=a.classes, num_branches=a.branches, aux=a.aux,
        rampup_epochs=0, kd_weight=1.5 * kd_scale, weight_decay=5e-4,
        stop_teacher_gradient=a.stop_grad,
    )
    pairs = transplant(tmodel, kmodel)
    report = []

    # 1. outputs and loss terms, training mode.
    logits, fused = tmodel(xt)
    tloss = R.ahbf_loss(logits, fused, yt, a.rampup_weight, a.stop_grad)
    tl2 = 0.5 * 5e-4 * sum((p ** 2).sum() for p in tmodel.parameters())
    out = kmodel(x, training=True)
    for b, (tz, kz) in enumerate(zip(logits, out["branch_logits"])):
        compare(f"forward branch_{b} logits", tz.detach().numpy(), keras.ops.convert_to_numpy(kz), 1e-4, report)
    for m, (te, ke) in enumerate(zip(fused, out["fused_logits"]), 1):
        compare(f"forward fused_{m} logits", te.detach().numpy(), keras.ops.convert_to_numpy(ke), 1e-4, report)
    kloss = kmodel.compute_loss(x=x, y=keras.ops.convert_to_tensor(y), y_pred=out)
    compare("loss (AHBF + coupled L2)", (tloss + tl2).item(), keras.ops.convert_to_numpy(kloss), 1e-5, report)

    # 2. gradients.
    tmodel.zero_grad()
    (tloss + tl2).backward()  # PyTorch SGD adds wd * w itself; here L2 in the loss, same gradient
    for v in kmodel.trainable_variables:
        v.value.grad = None
    kloss.backward()
    pairs_report("gradient of every variable", pairs[: len(list(tmodel.parameters()))], 1e-3, report, grad=True)

    # 3. SGD steps: PyTorch's optimizer vs Keras' fit on the same batch repeated.
    tmodel2 = R.AHBFResNet(a.depth, a.branches, a.aux, a.classes).train()
    tmodel2.load_state_dict(tmodel.state_dict())
    kmodel2 = keras_ahbf.models.resnet_cifar(
        a.depth, num_classes=a.classes, num_branches=a.branches, aux=a.aux,
        rampup_epochs=0, kd_weight=1.5 * kd_scale, weight_decay=5e-4,
        stop_teacher_gradient=a.stop_grad,
    )
    pairs2 = transplant(tmodel2, kmodel2)
    initial = {k.path: np.asarray(keras.ops.convert_to_numpy(k), np.float64) for _, k in pairs2}
    n_params = len(list(tmodel2.parameters()))
    opt = torch.optim.SGD(tmodel2.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    # Control: the same PyTorch model with every weight nudged by a relative
    # 1e-6, trained identically. Where it drifts from the unnudged run as far
    # as Keras does, the difference is the chaos of SGD at this learning
    # rate, not a difference between the implementations.
    tmodel3 = R.AHBFResNet(a.depth, a.branches, a.aux, a.classes).train()
    tmodel3.load_state_dict(tmodel.state_dict())
    with torch.no_grad():
        for p in tmodel3.parameters():
            p.mul_(1.0 + 1e-6 * torch.randn_like(p))
    opt3 = torch.optim.SGD(tmodel3.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    control = [(t2, t3, t2.detach().clone(), t3.detach().clone())
               for t2, t3 in zip(tmodel2.parameters(), tmodel3.parameters())]
    kmodel2.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True))
    for step in range(1, a.steps + 1):
        lg, fu = tmodel2(xt)
        loss = R.ahbf_loss(lg, fu, yt, a.rampup_weight, a.stop_grad)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        lg3, fu3 = tmodel3(xt)
        loss3 = R.ahbf_loss(lg3, fu3, yt, a.rampup_weight, a.stop_grad)
        opt3.zero_grad(set_to_none=True)
        loss3.backward()
        opt3.step()
        history = kmodel2.fit(x, y, batch_size=a.batch, epochs=1, shuffle=False, verbose=0)
        kl = history.history["loss"][0] - history.history.get("l2", [0.0])[0]
        if step in (1, 2, 5, 10, a.steps):
            compare(f"loss at step {step}", loss.item(), kl, 1e-3 if step == 1 else 2e-2, report)
            tol = 1e-3 if step == 1 else 5e-2
            pairs_report(f"weight change after {step} SGD step(s)", pairs2[:n_params], tol, report,
                         reference=initial)
            pairs_report(f"BatchNorm statistics after {step} step(s)", pairs2[n_params:], tol, report)
            changes = [((t2 - i2).detach(), (t3 - i3).detach()) for t2, t3, i2, i3 in control]
            floor = 1e-4 * max(float(torch.linalg.norm(c2)) for c2, _ in changes)
            worst = max(float(torch.linalg.norm(c3 - c2)) / max(float(torch.linalg.norm(c2)), floor)
                        for c2, c3 in changes)
            report.append({"check": f"  control: PyTorch vs PyTorch nudged by 1e-6, step {step}",
                           "max_rel": worst, "ok": True})

    ok = all(r["ok"] for r in report)
    for r in report:
        extra = f"  worst: {r['worst_variables']}" if r.get("worst_variables") else ""
        print(f"{'ok ' if r['ok'] else 'BAD'} {r['check']:45s} max rel diff {r['max_rel']:.2e}{extra}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"args": vars(a), "checks": report}, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
