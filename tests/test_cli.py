"""``python -m decs``: a tiny real run through the command line (USPS subset), and its errors."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from decs import data
from decs.__main__ import _parse_overrides, run_name
from decs.config import get_config

REPO = Path(__file__).resolve().parent.parent
needs_usps = pytest.mark.skipif(not data.is_available("usps"),
                                reason=f"usps files not found under {data.data_root()}: set DECS_DATA")


def _cli(*args, env_extra=None, tmp_path=None):
    env = {**os.environ, "DECS_CHECKPOINTS": str(tmp_path / "ck"), **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "decs", *args, "--results", str(tmp_path / "res"), "--quiet"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


@needs_usps
def test_train_evaluate_and_resume(tmp_path):
    args = ["--dataset", "usps", "--profile", "ci", "--set", "subset=300", "pretrain_epochs=2", "maxiter=20",
            "kmeans_n_init=2"]
    out = _cli("train", *args, tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    record = json.loads(Path(summary["record"]).read_text())
    assert record["dataset"] == "usps" and record["n_samples"] == 300 and record["iterations"] == 20
    assert record["command"].startswith("python -m decs train")
    ev = _cli("evaluate", *args, tmp_path=tmp_path)
    assert ev.returncode == 0, ev.stderr
    assert json.loads(ev.stdout)["acc"] == record["final"]["acc"]
    again = _cli("train", *args, "--resume", tmp_path=tmp_path)  # finished run: resumes to the same end
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.strip().splitlines()[-1])["final"] == record["final"]


def test_unknown_dataset_and_bad_override(tmp_path):
    out = _cli("train", "--dataset", "cifar", tmp_path=tmp_path)
    assert out.returncode != 0 and "cifar" in out.stderr
    with pytest.raises(SystemExit, match="FIELD=VALUE"):
        _parse_overrides(["nonsense=1"])


def test_overrides_are_typed_and_named():
    o = _parse_overrides(["maxiter=500", "lam=0.2", "augment=false", "subset=100", "form=paper"])
    assert o == {"maxiter": 500, "lam": 0.2, "augment": False, "subset": 100, "form": "paper"}
    cfg = get_config("cpu", **o)
    assert run_name(cfg, 2).startswith("cpu-seed2+") and "maxiter=500" in run_name(cfg, 2)
    assert run_name(get_config("cpu"), 0) == "cpu-seed0"
