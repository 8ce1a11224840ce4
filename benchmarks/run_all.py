"""Runs the whole keras_ahbf speed suite and writes JSON + a Markdown table.

One subprocess per measurement (a Keras backend cannot be switched inside a
process, and peak RSS is per process), in this order, so the PyTorch anchor
is measured in the same run as ours (before and after them):

1. `bench_matmul.py`: the machine's float32 / bfloat16 matmul peak;
2. `../shared/bench/torch_reference.py` (PyTorch eager, same model and loss): run A;
3. `bench_keras.py` once per configuration `backend:jit[:dtype_policy]`;
4. the PyTorch reference again: run B (the anchor is the mean of A and B;
   their difference shows how steady the machine was);
5. `bench_pipeline.py`: the CIFAR training input pipeline;
6. `bench_bf16_accuracy.py`: float32 vs mixed_bfloat16 accuracy on a
   reduced budget (TensorFlow; skip with `--skip-accuracy`).

Results go to `benchmarks/results/<date>.json` and `<date>.md`.

Run (the full suite, 20-25 minutes on a 2-core machine):

    python benchmarks/run_all.py

Quick check of the plumbing (tiny model, a few steps, minutes):

    python benchmarks/run_all.py --quick --configs tensorflow:0 --out /tmp/bench
"""

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if __package__ in (None, ""):
    sys.path.insert(0, ROOT)

from benchmarks import _common  # noqa: E402

DEFAULT_REFERENCE = os.path.join(ROOT, "..", "shared", "bench", "torch_reference.py")

# backend:jit_compile[:dtype_policy]
DEFAULT_CONFIGS = (
    "tensorflow:0",
    "tensorflow:1",
    "jax:1",
    "jax:0",
    "torch:0",
    "tensorflow:0:mixed_bfloat16",
)
# Also supported, left out of the default run for time: "torch:1"
# (torch.compile), "jax:1:mixed_bfloat16", "torch:0:mixed_bfloat16".
# Configurations too slow for the default step count get fewer steps.
SLOW_CONFIGS = {"jax:0": (4, 1), "torch:1": (2, 1), "tensorflow:1": (5, 2), "jax:1": (6, 2)}

# Runtime settings per backend, recorded in the results. XLA:CPU flags for
# JAX are chosen in benchmarks/README.md ("JAX and XLA:CPU options").
BACKEND_ENV = {
    "tensorflow": {"TF_CPP_MIN_LOG_LEVEL": "2"},
    "jax": {"TF_CPP_MIN_LOG_LEVEL": "2"},
    "torch": {"TF_CPP_MIN_LOG_LEVEL": "2"},
}

TARGETS = {
    "best_train_vs_reference": 1.25,
    "tensorflow_train_vs_reference": 1.1,
    "torch_train_vs_reference": 0.9,
    "jax_train_vs_reference": 0.5,
    "ahbf_overhead_max": 1.10,
    "infer_vs_reference": 1.0,
    "bf16_speedup": 1.5,
    "peak_rss_vs_reference_max": 1.0,
}


def _kernels_text(names):
    """The `kernels` column: the active kernels, `none`, or `-` (not recorded)."""
    if names is None:
        return "-"
    return ", ".join(names) if names else "none"


def parse_config(text):
    """`backend:jit[:dtype_policy][:nokernels]` as a dict.

    `nokernels` runs the configuration with `KERAS_AHBF_KERNELS=0` (the
    `keras.ops` reference path instead of `keras_ahbf.kernels`).
    """
    parts = text.split(":")
    kernels = True
    if parts and parts[-1] == "nokernels":
        kernels = False
        parts = parts[:-1]
    if len(parts) not in (2, 3) or parts[0] not in ("tensorflow", "jax", "torch"):
        raise ValueError(
            f"A configuration is backend:jit[:dtype_policy][:nokernels], e.g. "
            f"'jax:1:mixed_bfloat16' or 'torch:0:float32:nokernels'. "
            f"Received: {text!r}"
        )
    return {
        "name": text,
        "backend": parts[0],
        "jit": parts[1] in ("1", "true", "jit"),
        "dtype_policy": parts[2] if len(parts) == 3 else "float32",
        "kernels": kernels,
    }


def _run(cmd, env_extra, timeout, log_path):
    env = dict(os.environ)
    env.update(env_extra)
    env["PYTHONPATH"] = ROOT + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        try:
            proc = subprocess.run(
                cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                timeout=timeout, check=False, cwd=ROOT,
            )
            code = proc.returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    return code, time.perf_counter() - t0


def _load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _tail(path, lines=15):
    try:
        with open(path) as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def run_suite(args):
    stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H%M")
    out_dir = os.path.abspath(args.out)
    work = os.path.join(out_dir, f"{stamp}_raw")
    os.makedirs(work, exist_ok=True)
    py = sys.executable
    size = (
        ["--depth", "8", "--aux", "1", "--image-size", "16", "--classes", "10",
         "--batch", "16", "--infer-batch", "16"]
        if args.quick else []
    )
    ref_size = (
        ["--depth", "8", "--aux", "1", "--classes", "10", "--batch", "16",
         "--infer-batch", "16"]
        if args.quick else []
    )
    steps, warmup = (2, 1) if args.quick else (args.steps, args.warmup)
    results = {
        "schema_version": _common.SCHEMA_VERSION,
        "date": stamp,
        "command": " ".join([os.path.basename(py)] + sys.argv),
        "machine": _common.machine_info(),
        "settings": {
            "quick": args.quick, "steps": steps, "warmup": warmup,
            "threads": args.threads, "configs": args.configs, "rounds": args.rounds,
            "backend_env": BACKEND_ENV,
        },
        "targets": TARGETS,
        "runs": {},
        "errors": {},
    }

    def step(name, cmd, env, timeout):
        json_path = os.path.join(work, f"{name}.json")
        log_path = os.path.join(work, f"{name}.log")
        if os.path.exists(json_path):
            os.remove(json_path)
        print(f"[run_all] {name} ...", flush=True)
        code, wall = _run(cmd + ["--json", json_path], env, timeout, log_path)
        data = _load(json_path)
        if code != 0 or data is None:
            results["errors"][name] = {"exit": code, "log_tail": _tail(log_path)}
            print(f"[run_all] {name} FAILED ({code}); see {log_path}", flush=True)
            return None
        data["subprocess_wall_s"] = wall
        results["runs"][name] = data
        print(f"[run_all] {name} done in {wall:.0f} s", flush=True)
        return data

    thread_args = ["--threads", str(args.threads)]
    if not args.skip_matmul:
        step("matmul_peak",
             [py, os.path.join(HERE, "bench_matmul.py")] + thread_args
             + (["--seconds", "0.2", "--sizes", "256,512"] if args.quick else []),
             {}, args.timeout)
    reference = os.path.abspath(args.reference) if args.reference else None
    ref_cmd = None
    if reference and os.path.exists(reference):
        ref_cmd = [py, reference, "--threads", str(args.threads),
                   "--steps", str(steps), "--warmup", str(warmup)] + ref_size
    elif reference:
        results["errors"]["reference"] = {"exit": "missing", "log_tail": reference}
    ref_names = []

    def reference_run():
        """One reference run; returns its name (None without a reference)."""
        if ref_cmd is None:
            return None
        name = f"reference_{len(ref_names)}"
        ref_names.append(name)
        step(name, ref_cmd, {}, args.timeout)
        return name

    sequence = [(r, text) for r in range(args.rounds) for text in args.configs]
    before = reference_run()
    for round_index, text in sequence:
        cfg = parse_config(text)
        key = f"{cfg['backend']}:{int(cfg['jit'])}"
        c_steps, c_warmup = (steps, warmup)
        if key in SLOW_CONFIGS and not args.quick:
            c_steps, c_warmup = SLOW_CONFIGS[key]
        name = f"keras_{cfg['backend']}_jit{int(cfg['jit'])}_{cfg['dtype_policy']}"
        if not cfg["kernels"]:
            name += "_nokernels"
        if args.rounds > 1:
            name += f"_round{round_index}"
        phases = "train_ahbf,train_ce_only,infer_target"
        if cfg["dtype_policy"] != "float32":
            phases = "train_ahbf,infer_target"
        cmd = [py, os.path.join(HERE, "bench_keras.py"), "--jit", str(int(cfg["jit"])),
               "--dtype-policy", cfg["dtype_policy"], "--steps", str(c_steps),
               "--warmup", str(c_warmup), "--phases", phases] + thread_args + size
        env = dict(BACKEND_ENV[cfg["backend"]], KERAS_BACKEND=cfg["backend"])
        env["KERAS_AHBF_KERNELS"] = "1" if cfg["kernels"] else "0"
        data = step(name, cmd, env, args.timeout)
        after = reference_run()
        if data is not None:
            data["config_name"] = text
            data["round"] = round_index
            data["anchor_runs"] = [n for n in (before, after) if n is not None]
        before = after
    if not args.skip_pipeline:
        pipe_cmd = [py, os.path.join(HERE, "bench_pipeline.py")]
        if args.quick:
            pipe_cmd += ["--images", "512", "--batches", "5", "--warmup", "1"]
        if args.data:
            pipe_cmd += ["--data", os.path.abspath(args.data)]
        step("input_pipeline", pipe_cmd, {"KERAS_BACKEND": "tensorflow",
                                           "TF_CPP_MIN_LOG_LEVEL": "2"}, args.timeout)

    if not args.skip_accuracy:
        acc_cmd = [py, os.path.join(HERE, "bench_bf16_accuracy.py")] + thread_args
        if args.quick:
            acc_cmd += ["--epochs", "1", "--seeds", "0"]
        step("bf16_accuracy", acc_cmd, {"KERAS_BACKEND": "tensorflow",
                                         "TF_CPP_MIN_LOG_LEVEL": "2"}, args.timeout)

    results["summary"] = summarize(results)
    json_path = os.path.join(out_dir, f"{stamp}.json")
    md_path = os.path.join(out_dir, f"{stamp}.md")
    _common.write_json(json_path, results)
    with open(md_path, "w") as f:
        f.write(to_markdown(results))
    print(to_markdown(results))
    print(f"[run_all] wrote {json_path} and {md_path}")
    return results


def summarize(results):
    """Anchor, per-configuration ratios and the issue's targets."""
    runs = results["runs"]
    refs = [r for k, r in runs.items() if k.startswith("reference_")]
    summary = {"rows": [], "checks": {}}
    anchor = None
    if refs:
        anchor = _mean_reference(refs)
        anchor["runs"] = len(refs)
        anchor["train_ahbf_img_s_each"] = [r["train_ahbf_img_s"] for r in refs]
        anchor["loss_first_step"] = refs[0].get("loss_first_step")
        summary["reference"] = anchor
    peak = runs.get("matmul_peak", {}).get("peak_float32_gflop_s")
    peak_bf16 = runs.get("matmul_peak", {}).get("peak_bfloat16_gflop_s")
    summary["matmul_peak_float32_gflop_s"] = peak
    summary["matmul_peak_bfloat16_gflop_s"] = peak_bf16
    train_flops = None
    per_config = {}
    for name, r in runs.items():
        if r.get("kind") != "keras":
            continue
        # The reference runs right before and after this one (all of them
        # for results without that record).
        near = [runs[n] for n in r.get("anchor_runs", ()) if n in runs]
        local = _mean_reference(near) if near else anchor
        row = {
            "config": r.get("config_name", name),
            "backend": r["backend"],
            "jit_compile": r["jit_compile"],
            "dtype_policy": r["dtype_policy"],
            "kernels": r.get("kernels"),
        }
        for phase in ("train_ahbf", "train_ce_only", "infer_target"):
            if phase in r:
                row[f"{phase}_img_s"] = r[phase]["img_s"]
                row[f"{phase}_gflop_s"] = r[phase].get("gflop_s")
        if "train_ahbf" in r:
            row["compile_s"] = r["train_ahbf"]["compile_s"]
            row["loss_first_step"] = r["train_ahbf"]["loss_first_step"]
            row["steps"] = r["train_ahbf"]["steps"]
            train_flops = r["flops"]["train_step_per_image"]
        row["ahbf_overhead"] = r.get("ahbf_overhead")
        row["peak_rss_mib"] = r.get("peak_rss_mib")
        if peak and row.get("train_ahbf_gflop_s"):
            row["train_fraction_of_peak"] = row["train_ahbf_gflop_s"] / peak
        if local:
            row["reference_train_img_s"] = local["train_ahbf_img_s"]
            if "train_ahbf_img_s" in row:
                row["train_vs_reference"] = row["train_ahbf_img_s"] / local["train_ahbf_img_s"]
            if "infer_target_img_s" in row:
                row["infer_vs_reference"] = row["infer_target_img_s"] / local["infer_target_img_s"]
            if row["peak_rss_mib"]:
                row["rss_vs_reference"] = row["peak_rss_mib"] / local["peak_rss_mib"]
        per_config.setdefault(row["config"], []).append(row)
    f32 = {}
    for rounds in per_config.values():
        row = _median_row(rounds)
        if row["dtype_policy"] == "float32":
            f32[(row["backend"], row["jit_compile"])] = row
        summary["rows"].append(row)
    for row in summary["rows"]:
        base = f32.get((row["backend"], row["jit_compile"]))
        if row["dtype_policy"] != "float32" and base and "train_ahbf_img_s" in row:
            row["speedup_vs_float32"] = row["train_ahbf_img_s"] / base["train_ahbf_img_s"]
    # jit vs non-jit: the same seed gives the same first-step loss.
    for backend in ("tensorflow", "jax", "torch"):
        a, b = f32.get((backend, False)), f32.get((backend, True))
        if a and b and a.get("loss_first_step") and b.get("loss_first_step"):
            summary["checks"][f"{backend}_jit_vs_eager_first_loss_rel_diff"] = abs(
                a["loss_first_step"] - b["loss_first_step"]
            ) / abs(a["loss_first_step"])
    if anchor and train_flops:
        summary["reference"]["train_gflop_s"] = anchor["train_ahbf_img_s"] * train_flops / 1e9
    pipe = runs.get("input_pipeline")
    if pipe:
        summary["input_pipeline_img_s"] = pipe["input_pipeline"]["img_s"]
    acc = runs.get("bf16_accuracy")
    if acc:
        summary["bf16_accuracy"] = {k: acc[k] for k in (
            "float32_mean", "bfloat16_mean", "difference", "float32_spread",
            "within_noise")}
        summary["bf16_accuracy"]["setup"] = acc["setup"]
    summary["targets"] = check_targets(summary)
    return summary


def _mean_reference(refs):
    return {
        key: statistics.mean(r[key] for r in refs)
        for key in ("train_ahbf_img_s", "train_target_img_s",
                    "infer_target_img_s", "peak_rss_mib")
    }


def _median_row(rounds):
    """One row per configuration: the median of every number over its rounds."""
    row = dict(rounds[0])
    for key, value in rounds[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            values = [r[key] for r in rounds if isinstance(r.get(key), (int, float))]
            median = statistics.median(values)
            integral = all(isinstance(v, int) for v in values) and median == int(median)
            row[key] = int(median) if integral else median
    row["rounds"] = len(rounds)
    if len(rounds) > 1:
        row["train_vs_reference_each"] = [r.get("train_vs_reference") for r in rounds]
    return row


def check_targets(summary):
    # The `:nokernels` rows are the A/B comparison, not the product.
    rows = [
        r for r in summary["rows"]
        if "train_vs_reference" in r and not str(r["config"]).endswith(":nokernels")
    ]
    if not rows:
        return {}
    out = {}
    f32 = [r for r in rows if r["dtype_policy"] == "float32"]

    def best(backend=None, rows=f32):
        cands = [r for r in rows if backend in (None, r["backend"])]
        return max(cands, key=lambda r: r["train_vs_reference"]) if cands else None

    def entry(value, target, higher=True, config=None):
        ok = value >= target if higher else value <= target
        return {"value": value, "target": target, "met": bool(ok), "config": config}

    b = best()
    if b:
        out["best_train_vs_reference"] = entry(b["train_vs_reference"], 1.25, config=b["config"])
    for backend, target in (("tensorflow", 1.1), ("torch", 0.9), ("jax", 0.5)):
        r = best(backend)
        if r:
            out[f"{backend}_train_vs_reference"] = entry(r["train_vs_reference"], target, config=r["config"])
    over = [r for r in f32 if r.get("ahbf_overhead")]
    if over:
        r = min(over, key=lambda r: r["ahbf_overhead"])
        out["ahbf_overhead_best"] = entry(r["ahbf_overhead"], 1.10, higher=False, config=r["config"])
        out["ahbf_overhead_worst"] = entry(
            max(r["ahbf_overhead"] for r in over), 1.10, higher=False,
            config=max(over, key=lambda r: r["ahbf_overhead"])["config"])
    inf = [r for r in f32 if "infer_vs_reference" in r]
    if inf:
        r = max(inf, key=lambda r: r["infer_vs_reference"])
        out["infer_vs_reference_best"] = entry(r["infer_vs_reference"], 1.0, config=r["config"])
        for backend in ("tensorflow", "torch"):
            cands = [r for r in inf if r["backend"] == backend]
            if cands:
                r = max(cands, key=lambda r: r["infer_vs_reference"])
                out[f"{backend}_infer_vs_reference"] = entry(
                    r["infer_vs_reference"], 1.0, config=r["config"])
    bf = [r for r in rows if r.get("speedup_vs_float32")]
    if bf and b:
        same = [r for r in bf if r["backend"] == b["backend"] and r["jit_compile"] == b["jit_compile"]]
        r = same[0] if same else max(bf, key=lambda r: r["speedup_vs_float32"])
        out["bf16_speedup_on_best_backend"] = entry(r["speedup_vs_float32"], 1.5, config=r["config"])
    acc = summary.get("bf16_accuracy")
    if acc:
        out["bf16_accuracy_within_noise"] = {
            "value": acc["difference"], "target": "abs(diff) <= fp32 seed spread + 1 example",
            "met": bool(acc["within_noise"]), "config": "tensorflow:0 (digits, reduced budget)"}
    rss = [r for r in f32 if r.get("rss_vs_reference")]
    if rss and b:
        out["peak_rss_vs_reference_best_backend"] = entry(
            b.get("rss_vs_reference", float("nan")), 1.0, higher=False, config=b["config"])
        r = min(rss, key=lambda r: r["rss_vs_reference"])
        out["peak_rss_vs_reference_lowest"] = entry(r["rss_vs_reference"], 1.0, higher=False, config=r["config"])
    return out


def _fmt(value, spec=".2f"):
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def _model_text(results):
    for r in results.get("runs", {}).values():
        if r.get("kind") == "keras":
            c = r["config"]
            return (f"resnet_cifar({c['depth']}, {c['classes']} classes, "
                    f"{c['branches']} branches, aux {c['aux']}), "
                    f"{c['image_size']}x{c['image_size']} images, batch {c['batch']} "
                    f"(inference {c['infer_batch']})")
    return "resnet_cifar"


def to_markdown(results):
    s = results.get("summary", {})
    m = results["machine"]
    ref = s.get("reference") or {}
    lines = [
        f"# keras_ahbf benchmarks, {results['date']}",
        "",
        f"- Command: `{results['command']}`",
        f"- Machine: {m.get('cpu_model')} ({m.get('vendor')}), {m.get('cpus')} CPUs, "
        f"hypervisor {m.get('hypervisor')}; AMX-BF16: {_fmt(m.get('amx_bf16'))}, "
        f"AVX512-BF16: {_fmt(m.get('avx512_bf16'))}; load at start {m.get('loadavg_at_start')}",
        f"- Model: {_model_text(results)}, "
        f"CIFAR-shaped random data, SGD(0.1, momentum 0.9, nesterov) + coupled "
        f"weight decay 5e-4; {results['settings']['threads']} threads; median of "
        f"{results['settings']['steps']} timed steps after {results['settings']['warmup']} "
        f"warm-up steps (fewer for the slow configurations, see `steps`); "
        f"{results['settings'].get('rounds', 1)} round(s), median over rounds.",
        f"- float32 matmul peak: {_fmt(s.get('matmul_peak_float32_gflop_s'), '.0f')} GFLOP/s "
        f"(bfloat16: {_fmt(s.get('matmul_peak_bfloat16_gflop_s'), '.0f')}). FLOPs = 2 x MACs of "
        "every Conv2D/Dense layer, training = 3 x forward.",
    ]
    if ref:
        each = ", ".join(f"{v:.1f}" for v in ref.get("train_ahbf_img_s_each", []))
        lines.append(
            f"- PyTorch reference ({ref['runs']} runs, one before and after each "
            f"configuration, which is compared with the mean of those two: {each} img/s; "
            f"mean): train {ref['train_ahbf_img_s']:.1f} img/s "
            f"({_fmt(ref.get('train_gflop_s'), '.0f')} GFLOP/s), infer target "
            f"{ref['infer_target_img_s']:.1f} img/s, peak RSS {ref['peak_rss_mib']:.0f} MiB."
        )
    acc = s.get("bf16_accuracy")
    if acc:
        lines.append(
            f"- mixed_bfloat16 accuracy ({acc['setup']['dataset']}, "
            f"{acc['setup']['model']}, {acc['setup']['epochs']} epochs, seeds "
            f"{acc['setup']['seeds']}): target branch {acc['bfloat16_mean']:.4f} vs "
            f"float32 {acc['float32_mean']:.4f} (float32 seed spread "
            f"{acc['float32_spread']:.4f}; within noise: {_fmt(acc['within_noise'])}).")
    if "input_pipeline_img_s" in s:
        lines.append(f"- CIFAR input pipeline (augmentation on): "
                     f"{s['input_pipeline_img_s']:.0f} img/s.")
    lines += [
        "",
        "| config | kernels | train img/s | ref img/s | x ref | GFLOP/s (% peak) | compile s | CE-only img/s "
        "| AHBF overhead | infer img/s | x ref | peak RSS MiB | x ref | x fp32 | steps |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in s.get("rows", []):
        gf = r.get("train_ahbf_gflop_s")
        frac = r.get("train_fraction_of_peak")
        gf_txt = "-" if gf is None else f"{gf:.0f}" + (f" ({100 * frac:.0f}%)" if frac else "")
        lines.append(
            "| {c} | {k} | {t} | {ref} | {tr} | {gf} | {cs} | {ce} | {ov} | {inf} | {ir} | {rss} | {rr} | {bf} | {st} |".format(
                c=r["config"], k=_kernels_text(r.get("kernels")), t=_fmt(r.get("train_ahbf_img_s"), ".1f"),
                ref=_fmt(r.get("reference_train_img_s"), ".1f"),
                tr=_fmt(r.get("train_vs_reference")), gf=gf_txt,
                cs=_fmt(r.get("compile_s"), ".0f"),
                ce=_fmt(r.get("train_ce_only_img_s"), ".1f"),
                ov=_fmt(r.get("ahbf_overhead"), ".3f"),
                inf=_fmt(r.get("infer_target_img_s"), ".0f"),
                ir=_fmt(r.get("infer_vs_reference")),
                rss=_fmt(r.get("peak_rss_mib"), ".0f"), rr=_fmt(r.get("rss_vs_reference")),
                bf=_fmt(r.get("speedup_vs_float32")), st=_fmt(r.get("steps")),
            )
        )
    targets = s.get("targets") or {}
    if targets:
        lines += ["", "| target | value | goal | met | config |", "|---|---|---|---|---|"]
        for name, t in targets.items():
            lines.append(f"| {name} | {_fmt(t['value'], '.3f')} | {t['target']} | "
                         f"{_fmt(t['met'])} | {t.get('config')} |")
    checks = s.get("checks") or {}
    if checks:
        lines += ["", "Correctness checks (same seed, first-step loss): " + ", ".join(
            f"{k} = {v:.2e}" for k, v in checks.items())]
    if results.get("errors"):
        lines += ["", "Errors: " + ", ".join(
            f"{k} (exit {v['exit']})" for k, v in results["errors"].items())]
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", default=",".join(DEFAULT_CONFIGS),
                    help="comma-separated backend:jit[:dtype_policy] list")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1,
                    help="repeat the configuration sequence; report the median per configuration")
    ap.add_argument("--reference", default=DEFAULT_REFERENCE,
                    help="path of torch_reference.py ('' to skip)")
    ap.add_argument("--data", help="optional CIFAR-100 .npz for the pipeline benchmark")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--timeout", type=float, default=900, help="per subprocess, seconds")
    ap.add_argument("--quick", action="store_true",
                    help="tiny model and 2 steps: checks the plumbing, not speed")
    ap.add_argument("--skip-matmul", action="store_true")
    ap.add_argument("--skip-pipeline", action="store_true")
    ap.add_argument("--skip-accuracy", action="store_true")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error(f"--rounds must be at least 1. Received: --rounds {args.rounds}")
    args.configs = [c for c in args.configs.split(",") if c]
    for c in args.configs:
        parse_config(c)
    return run_suite(args)


if __name__ == "__main__":
    main()
