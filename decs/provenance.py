"""Provenance: what a record says about the code and the machine that made it — the commit this
process imported (and the files that differed from it), versions, device, processes — the seconds
a run took (:class:`RunClock`) and the command line that gives a benchmark's record again. Read
in :doc:`/book/reproducibility`.
"""
from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
import threading
import time

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


SIMD_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile")  # flags that change kernels


def cpu_info(path: str = "/proc/cpuinfo") -> dict:
    """What the CPU is, from the kernel's ``/proc/cpuinfo`` (first processor): its name, vendor,
    family and model numbers (which name the microarchitecture), the clock the kernel reports in
    MHz, whether it has AVX-512, and which of the vector instructions in ``SIMD_FLAGS`` it shows
    (they decide which kernels PyTorch runs, and so how float sums round); empty where that file
    does not exist (not Linux). The reproducibility page works the float32 peak out of it
    (:func:`decs.device.fp32_peak`)."""
    try:
        text = open(path, encoding="utf-8").read().split("\n\n")[0]
    except OSError:
        return {}
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    number = {"family": "cpu family", "model": "model"}
    flags = set(fields.get("flags", "").split())
    out = {"name": fields.get("model name"), "vendor": fields.get("vendor_id"),
           **{k: int(fields[v]) for k, v in number.items() if fields.get(v, "").isdigit()},
           "avx512": "avx512f" in flags, "simd": [f for f in SIMD_FLAGS if f in flags]}
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


# ------------------------------------------------------------------------------- run time
# A long run's cores are sometimes freed for a while with `kill -STOP`, then `kill -CONT` (as while
# the tests run beside it). Wall time would count the stop; these count it once, here, and subtract it.
_stopped = 0.0                     # seconds this process has spent stopped so far
_last_tick = time.perf_counter()   # when a training loop last finished a step
_handler = False


def tick() -> None:
    """Mark a training step done; the loops call it every step. A stop is measured from the last
    tick to the ``SIGCONT`` that ends it, so it is known to within the step it interrupted (or
    the full-data evaluation or k-means between steps, which tick nothing; :class:`RunClock`,
    :doc:`/book/reproducibility`)."""
    global _last_tick
    _last_tick = time.perf_counter()


def _continued(signum, frame) -> None:
    global _stopped
    now = time.perf_counter()
    _stopped += now - _last_tick
    tick()


def _install_handler() -> None:
    """Handle ``SIGCONT`` once per process, from the main thread (Python's rule), and only where
    nothing else handles it; elsewhere a :class:`RunClock` is a plain wall clock."""
    global _handler
    if _handler or not hasattr(signal, "SIGCONT") or threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGCONT) == signal.SIG_DFL:
        signal.signal(signal.SIGCONT, _continued)
        _handler = True


class RunClock:
    """The seconds a stage of a run has taken: wall time since this clock began, plus ``earlier``
    (what earlier processes spent on the stage, from its checkpoint), less the time this process
    was stopped (``kill -STOP`` … ``kill -CONT``). A stopped process cannot see its stop begin,
    but it sees the ``SIGCONT`` that ends it: the time since the loop's last :func:`tick` is
    counted as stopped. The records' ``wall_time_s`` and the checkpoints' ``seconds`` come from
    here (:doc:`/book/reproducibility`)."""

    def __init__(self, earlier: float = 0.0):
        _install_handler()
        tick()
        self._start = time.perf_counter() - earlier
        self._stopped_before = _stopped

    def seconds(self) -> float:
        """Seconds so far: ``earlier`` plus this process's running time since the clock began."""
        return time.perf_counter() - self._start - (_stopped - self._stopped_before)
