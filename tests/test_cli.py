"""``python -m decs``: a tiny real run through the command line (USPS subset), and its errors."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from decs import data
from decs.__main__ import UsageError, _parse_overrides, run_name, sweep_name, sweep_order
from decs.config import SWEEP_ALPHAS, SWEEP_LAMS, get_config

REPO = Path(__file__).resolve().parent.parent
needs_usps = pytest.mark.skipif(not data.is_available("usps"),
                                reason=f"usps files not found under {data.data_root()}: set DECS_DATA")


def _cli(*args, env_extra=None, tmp_path=None):
    env = {**os.environ, "DECS_CHECKPOINTS": str(tmp_path / "ck"), **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "decs", *args, "--results", str(tmp_path / "res"), "--quiet"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=3600)


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
    refused = _cli("train", *args, "--resume", tmp_path=tmp_path)  # a record is never overwritten silently
    assert refused.returncode != 0 and "--replace" in refused.stderr
    again = _cli("train", *args, "--resume", "--replace", tmp_path=tmp_path)  # finished run: resumes to the same end
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.strip().splitlines()[-1])["final"] == record["final"]


@needs_usps
def test_model_files_rescore_the_record_and_catch_a_changed_file(tmp_path):
    args = ["--dataset", "usps", "--profile", "ci", "--set", "subset=300", "pretrain_epochs=2", "maxiter=30",
            "kmeans_n_init=2", "--model-files", "all"]
    for method in ("decs", "dec"):  # DEC reuses the pretrained file DECS wrote (same tensors)
        out = _cli("train", *args, "--method", method, tmp_path=tmp_path)
        assert out.returncode == 0, out.stderr
    path = Path(json.loads(out.stdout.strip().splitlines()[-1])["record"])
    record = json.loads(path.read_text())
    files = record["model_files"]
    assert (tmp_path / "res" / files["final"]["path"]).exists()
    assert files["pretrained"]["path"] == "usps/pretrained/ci-seed0+subset=300+pretrain_epochs=2.pt"
    ev = _cli("evaluate", "--record", str(path), tmp_path=tmp_path)
    assert ev.returncode == 0, ev.stderr
    out = json.loads(ev.stdout)
    assert out["agrees"] and out["now"]["acc"] == record["final"]["acc"] and out["tolerance"] == round(1 / 300, 6)
    # a model file that is not the one the record names: refused, loudly
    with open(tmp_path / "res" / files["final"]["path"], "ab") as f:
        f.write(b"x")
    bad = _cli("evaluate", "--record", str(path), tmp_path=tmp_path)
    assert bad.returncode != 0 and "sha256" in bad.stderr
    (tmp_path / "res" / files["final"]["path"]).unlink()
    gone = _cli("evaluate", "--record", str(path), tmp_path=tmp_path)
    assert gone.returncode != 0 and "missing" in gone.stderr


def test_a_record_whose_model_files_were_dropped_says_so_in_one_line(tmp_path):
    """The usps cpu seed-0 records keep their files' names and sha256 under model_files_dropped
    (the chapters load the paper run's files): re-scoring one says why, and how to make them."""
    for method in ("decs", "dec"):
        path = REPO / "results" / "usps" / method / "cpu-seed0.json"
        record = json.loads(path.read_text())
        assert "model_files" not in record and record["model_files_dropped"]["files"]["final"]["sha256"]
        assert not (REPO / "results" / record["model_files_dropped"]["files"]["final"]["path"]).exists()
        out = _cli("evaluate", "--record", str(path), tmp_path=tmp_path)
        lines = out.stderr.strip().splitlines()
        assert out.returncode != 0 and len(lines) == 1, out.stderr
        assert "no longer in results/" in lines[0] and record["command"] in lines[0]


@needs_usps
def test_a_wrong_record_fails_the_rescoring(tmp_path):
    args = ["--dataset", "usps", "--profile", "ci", "--set", "subset=300", "pretrain_epochs=2", "maxiter=30",
            "kmeans_n_init=2", "--model-files", "all"]
    out = _cli("train", *args, tmp_path=tmp_path)
    path = Path(json.loads(out.stdout.strip().splitlines()[-1])["record"])
    record = json.loads(path.read_text())
    record["final"]["acc"] += 2.0 / 300  # two samples' worth: more than the same-device tolerance
    path.write_text(json.dumps(record))
    ev = _cli("evaluate", "--record", str(path), tmp_path=tmp_path)
    assert ev.returncode != 0 and "differs" in ev.stderr


def test_a_sweep_runs_the_protocol_cell_then_the_cross_through_it_then_the_rest():
    alphas, lams = list(SWEEP_ALPHAS), list(SWEEP_LAMS)
    assert 0.5 in alphas and 0.4 in lams    # the paper's own α and λ are cells of the grid
    order = sweep_order(alphas, lams, 0.5, 0.4)
    assert sorted(order) == sorted((a, l) for a in alphas for l in lams)   # every cell, once
    assert order[0] == (0.5, 0.4)
    cross = order[1:1 + len(alphas) + len(lams) - 2]
    assert all((a == 0.5) != (l == 0.4) for a, l in cross)                # one of the two changed
    assert set(cross[:4]) == {(0.2, 0.4), (1.0, 0.4), (0.5, 0.1), (0.5, 1.0)}   # nearest first
    assert all(a != 0.5 and l != 0.4 for a, l in order[len(cross) + 1:])
    # a profile whose α is off the grid: every cell still runs, once
    assert sorted(sweep_order(alphas, lams, 0.3, 0.4)) == sorted(order)


def test_sweep_cells_never_take_the_protocol_runs_name():
    cfg = get_config("cpu")  # the profile's own α and λ: still tagged
    assert sweep_name(cfg, 0) == "cpu-seed0+alpha=0.5+lam=0.4"
    assert sweep_name(cfg.replace(alpha=2.0), 1) == "cpu-seed1+alpha=2.0+lam=0.4"
    assert sweep_name(cfg.replace(maxiter=10), 0) == "cpu-seed0+alpha=0.5+lam=0.4+maxiter=10"


def test_unknown_dataset_and_bad_override(tmp_path):
    out = _cli("train", "--dataset", "cifar", tmp_path=tmp_path)
    assert out.returncode != 0 and "cifar" in out.stderr
    with pytest.raises(UsageError, match="FIELD=VALUE"):
        _parse_overrides(["nonsense=1"])


def test_overrides_are_typed_and_named():
    o = _parse_overrides(["maxiter=500", "lam=0.2", "augment=false", "subset=100", "batch_size=100", "form=paper"])
    assert o == {"maxiter": 500, "lam": 0.2, "augment": False, "subset": 100, "batch_size": 100, "form": "paper"}
    cfg = get_config("cpu", **o)
    assert run_name(cfg, 2).startswith("cpu-seed2+") and "maxiter=500" in run_name(cfg, 2)
    assert run_name(get_config("cpu"), 0) == "cpu-seed0"


@needs_usps
def test_a_run_started_from_a_given_network_is_the_run_from_that_network(tmp_path):
    """``train --start-from`` clusters from a given autoencoder: given our own pretrained network,
    it ends exactly where the run that pretrained it ends, under a name and record of its own."""
    import torch

    args = ["--dataset", "usps", "--profile", "ci", "--set", "subset=300", "pretrain_epochs=2", "maxiter=30",
            "kmeans_n_init=2"]
    out = _cli("train", *args, tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    protocol = json.loads(Path(json.loads(out.stdout.strip().splitlines()[-1])["record"]).read_text())
    [pre] = (tmp_path / "ck").glob("usps/*/pretrain.pt")
    start = tmp_path / "ours-again.pt"
    torch.save({"model": torch.load(pre, weights_only=False)["model"], "from": "our own pretraining"}, start)
    given = _cli("train", *args, "--start-from", str(start), tmp_path=tmp_path)
    assert given.returncode == 0, given.stderr
    path = Path(json.loads(given.stdout.strip().splitlines()[-1])["record"])
    assert path.stem == "ci-seed0+subset=300+pretrain_epochs=2+maxiter=30+kmeans_n_init=2+start=ours-again"
    rec = json.loads(path.read_text())
    assert rec["start_network"]["from"] == "our own pretraining" and len(rec["start_network"]["sha256"]) == 64
    assert rec["pretrain_loss"] == [] and rec["wall_time_s"]["pretrain"] == 0.0
    assert rec["kmeans_on_embedding"] == protocol["kmeans_on_embedding"]
    assert rec["final"] == protocol["final"]
    torch.save({"weights": {}}, tmp_path / "bad.pt")
    bad = _cli("train", *args, "--start-from", str(tmp_path / "bad.pt"), tmp_path=tmp_path)
    assert bad.returncode != 0 and "'model' state dict" in bad.stderr
    missing = _cli("train", *args, "--start-from", str(tmp_path / "none.pt"), tmp_path=tmp_path)
    assert missing.returncode != 0 and "no such file" in missing.stderr
