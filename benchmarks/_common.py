"""Helpers shared by the benchmark scripts (standard library only)."""

import json
import os
import platform
import resource
import statistics
import subprocess
import sys

SCHEMA_VERSION = 1


def peak_rss_mib():
    """Whole-process peak resident set size so far, in MiB (Linux: KiB)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024.0 * 1024.0) if sys.platform == "darwin" else rss / 1024.0


def summarize(times, batch):
    """Step-time statistics: median step and images/s = batch / median."""
    median = statistics.median(times)
    return {
        "batch": batch,
        "steps": len(times),
        "median_s": median,
        "min_s": min(times),
        "max_s": max(times),
        "img_s": batch / median,
        "step_times_s": list(times),
    }


def machine_info():
    """CPU model, core count and flags that matter for speed (from lscpu)."""
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
    }
    try:
        out = subprocess.run(
            ["lscpu"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    fields = {}
    for line in out.splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    flags = set(fields.get("Flags", "").split())
    info.update(
        {
            "cpu_model": fields.get("Model name"),
            "vendor": fields.get("Vendor ID"),
            "cpus": fields.get("CPU(s)"),
            "threads_per_core": fields.get("Thread(s) per core"),
            "hypervisor": fields.get("Hypervisor vendor"),
            "caches": {
                k: fields.get(k) for k in ("L1d cache", "L2 cache", "L3 cache")
            },
            "isa": sorted(
                f
                for f in flags
                if f.startswith(("avx", "amx", "fma")) or f in ("f16c",)
            ),
            "amx_bf16": "amx_bf16" in flags,
            "avx512_bf16": "avx512_bf16" in flags,
        }
    )
    try:
        with open("/proc/loadavg") as f:
            info["loadavg_at_start"] = f.read().split()[:3]
    except OSError:
        pass
    return info


def write_json(path, data):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, indent=1, sort_keys=False)
        f.write("\n")
