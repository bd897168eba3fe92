"""Behaviour pinned across refactors: the full history of four USPS ``ci`` runs, bit for bit.

Saved before the package was reorganised (issue 30) with ``python tests/test_histories.py --save``
and compared after every change since: DECS, DEC and HaDis through ``python -m decs train``, and
DECS on two processes through ``torchrun``. Each run starts from nothing (its own checkpoint
folder, so no cached pretraining), one thread per process, and everything its record holds except
what names the machine or the moment (wall times, environment, date, command) must be equal —
losses, accuracies, cluster sizes and confusion matrices at every evaluation, as floats, not to a
tolerance.

Float32 sums depend on the CPU's kernels, so bit-identity is defined per platform: the torch
version, the CPU's name, and the vector instructions the kernels may use (PyTorch's CPU capability
and the CPU's AVX2/AVX-512/AMX flags: two virtual machines both named "AMD EPYC", one showing
AVX-512 and one not, sum differently). Each file keeps one history per platform it was saved on;
on a platform with none the test is skipped and says why. The first histories were saved before
the instruction flags were part of the key, so their platform names none and matches no machine;
`--save` on a machine adds (or replaces) that machine's own.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from decs.provenance import cpu_info

ROOT = Path(__file__).resolve().parents[1]
SAVED = Path(__file__).with_name("histories")
VOLATILE = {"wall_time_s", "environment", "created", "command"}
RUNS = {  # name -> (number of processes, method)
    "decs": (1, "decs"),
    "dec": (1, "dec"),
    "hadis": (1, "hadis"),
    "decs-2-processes": (2, "decs"),
}


def platform_key() -> dict:
    """Torch, the CPU's name and vector instructions (decs.provenance.cpu_info), and the kernels
    PyTorch picked for them."""
    cpu = cpu_info()
    return {"torch": torch.__version__, "cpu": cpu.get("name") or platform.processor() or platform.machine(),
            "machine": platform.machine(), "kernels": torch.backends.cpu.get_cpu_capability(),
            "simd": " ".join(cpu["simd"]) if cpu else "unknown"}


def run_history(name: str, work: Path) -> dict:
    """Run one pinned command from nothing and return its record without the volatile fields."""
    nproc, method = RUNS[name]
    data = os.environ.get("DECS_DATA") or str(ROOT / "data")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0", "DECS_DATA": data,
           "DECS_CHECKPOINTS": str(work / "checkpoints"), "DECS_DOWNLOAD": "0"}
    args = ["train", "--dataset", "usps", "--profile", "ci", "--seed", "0", "--method", method,
            "--results", str(work / "results"), "--quiet", "--model-files", "none"]
    if nproc == 1:
        cmd = [sys.executable, "-m", "decs", *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "decs", *args]
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    (record,) = (work / "results" / "usps" / method).glob("*.json")
    return {k: v for k, v in json.loads(record.read_text()).items() if k not in VOLATILE}


def _saved(name: str) -> list[dict]:
    """Every history of ``name``, one per platform: ``{"platform": ..., "record": ...}``."""
    return json.loads((SAVED / f"{name}.json").read_text())["saved"]


def _usps_available() -> bool:
    from decs.data import data_root

    return (data_root() / "usps").is_dir()


@pytest.mark.slow
@pytest.mark.parametrize("name", list(RUNS))
def test_a_pinned_run_gives_the_same_history_to_the_last_bit(name, tmp_path):
    here = platform_key()
    saved = next((s for s in _saved(name) if s["platform"] == here), None)
    if saved is None:
        pytest.skip(f"histories saved on {[s['platform'] for s in _saved(name)]}; this is {here}")
    if not _usps_available():
        pytest.skip("USPS is not on this machine (set DECS_DATA)")
    got = run_history(name, tmp_path)
    assert set(got) == set(saved["record"])
    for key in saved["record"]:  # one key at a time, so a failure names what changed
        assert got[key] == saved["record"][key], key


def test_the_saved_histories_hold_every_evaluation():
    for name in RUNS:
        platforms = [s["platform"] for s in _saved(name)]
        assert len({json.dumps(p, sort_keys=True) for p in platforms}) == len(platforms), name  # one each
        for saved in _saved(name):
            record = saved["record"]
            assert record["history"], name
            assert record["dataset"] == "usps" and record["profile"] == "ci"


if __name__ == "__main__":  # python tests/test_histories.py --save [NAME ...]
    if "--save" not in sys.argv:
        raise SystemExit("usage: python tests/test_histories.py --save [NAME ...]  (adds or replaces this platform's histories)")
    SAVED.mkdir(exist_ok=True)
    for name in [a for a in sys.argv[1:] if a != "--save"] or list(RUNS):
        work = ROOT / ".histories-work"
        shutil.rmtree(work, ignore_errors=True)
        record = run_history(name, work)
        shutil.rmtree(work)
        path = SAVED / f"{name}.json"
        others = [s for s in (_saved(name) if path.exists() else []) if s["platform"] != platform_key()]
        saved = others + [{"platform": platform_key(), "record": record}]
        path.write_text(json.dumps({"saved": saved}, indent=1) + "\n")
        print(f"saved {name} for {platform_key()}: {len(record['history'])} evaluations")
