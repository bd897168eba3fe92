"""Provenance: what a record says about the code and the machine that made it — the commit this
process imported (and the files that differed from it), versions, device, processes — and the
command line that gives a benchmark's record again. Read in :doc:`/book/reproducibility`.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys

import numpy as np
import torch

from . import distributed
from .paths import REPO_ROOT


def git(*args) -> str | None:
    """The output of ``git *args`` in the repository, None where git or the checkout is missing."""
    try:
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def code_version() -> dict:
    """The commit checked out now and the tracked files that differ from it."""
    changed = git("diff", "--name-only", "HEAD")  # tracked files, staged or not
    files = changed.splitlines() if changed else []
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(files), "dirty_files": files}


# Taken once, when this module is imported: the code a process runs is the code it imported,
# whatever is edited or committed while a long run goes on.
CODE_VERSION = code_version()


def environment_info(device: torch.device) -> dict:
    """Provenance for a run record: the commit this process imported (and the files that
    differed from it then), device, number of processes and their backend (1 and "none" in one
    process; :doc:`/book/distributed`), versions, host."""
    info = {**CODE_VERSION, "device": str(device), "world_size": distributed.world_size(),
            "backend": distributed.backend(), "python": sys.version.split()[0],
            "torch": torch.__version__, "numpy": np.__version__, "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    else:
        info["cpu"] = platform.processor() or platform.machine()
    info["cpu_info"] = cpu_info()
    return info


def cpu_info(path: str = "/proc/cpuinfo") -> dict:
    """What the CPU is, from the kernel's ``/proc/cpuinfo`` (first processor): its name, vendor,
    family and model numbers (which name the microarchitecture), the clock the kernel reports in
    MHz and whether it has AVX-512; empty where that file does not exist (not Linux). The
    reproducibility page works the float32 peak out of it (:func:`decs.device.fp32_peak`)."""
    try:
        text = open(path, encoding="utf-8").read().split("\n\n")[0]
    except OSError:
        return {}
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    number = {"family": "cpu family", "model": "model"}
    out = {"name": fields.get("model name"), "vendor": fields.get("vendor_id"),
           **{k: int(fields[v]) for k, v in number.items() if fields.get(v, "").isdigit()},
           "avx512": "avx512f" in fields.get("flags", "").split()}
    if fields.get("cpu MHz"):
        out["mhz"] = float(fields["cpu MHz"])
    return out


def benchmark_command(script: str, args) -> str:
    """The command line that gives a benchmark's record again, from its parsed arguments: each
    option that was set as ``--name value`` (a list's values separated by spaces), ``--out`` left
    out because it names where the record went, not what it measured. ``script`` is the path from
    the repository root, e.g. ``"benchmarks/speed.py"`` (:doc:`/book/reproducibility`)."""
    options = (f"--{k} {' '.join(map(str, v)) if isinstance(v, list) else v}"
               for k, v in vars(args).items() if v is not None and k != "out")
    return " ".join(["python", script, *options])
