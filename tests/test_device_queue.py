"""benchmarks/device_queue.py, the prepared command of a GPU lease, on the CPU at ci scale (USPS
subset): it runs end to end and packs at most 8 files holding the records; a run stopped by its
deadline and resumed from the checkpoints it returned ends with the same records as one that ran
through."""
import importlib.util
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from decs import data

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "device_queue.py"
needs_usps = pytest.mark.skipif(not data.is_available("usps"),
                                reason=f"usps files not found under {data.data_root()}: set DECS_DATA")

# One job, seconds long: 300 USPS images, 10 pretraining epochs (checkpointed at the end), 100
# clustering iterations per method with a checkpoint every 20; model files written, as seed 0's are.
SCALE = ["--datasets", "usps", "--seeds", "0", "--profile", "ci", "--set", "subset=300", "pretrain_epochs=10",
         "maxiter=100", "update_interval=20", "kmeans_n_init=2", "checkpoint_every=20", "--model-files", "all",
         "--checkpoint-cap-mb", "48"]
COMPARED = ("final", "history", "kmeans_on_embedding", "pretrain_loss", "iterations")
# The queue's deadline and the subprocess's timeout are ceilings, not what the tests measure: a run
# is cut at a point of the training (--stop-at-iteration), never at a time. A run of seconds on a
# quiet machine took over 5 minutes beside two training jobs, so the ceilings are an hour.
DEADLINE = ["--deadline", "3600", "--margin", "5"]
TIMEOUT_S = 3900


def _queue(tmp: Path, name: str, *extra) -> tuple[Path, dict]:
    """Run the queue with its own out/results/checkpoints folders under tmp/name."""
    out = tmp / name / "out"
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    proc = subprocess.run([sys.executable, str(SCRIPT), *SCALE, "--out", str(out), "--results", str(tmp / name / "res"),
                           "--checkpoints", str(tmp / name / "ck"), *extra],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return out, json.loads((out / "summary.json").read_text())


def _records(results: Path) -> dict[str, dict]:
    """method → its record, from a results folder."""
    return {p.parent.name: json.loads(p.read_text()) for p in results.glob("usps/*/*.json")}


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """One uninterrupted run: (tmp folder, out folder, summary)."""
    tmp = tmp_path_factory.mktemp("device_queue")
    return (tmp, *_queue(tmp, "whole", *DEADLINE))


@needs_usps
def test_runs_end_to_end_and_returns_at_most_8_files_holding_the_records(whole):
    tmp, out, summary = whole
    files = sorted(p.name for p in out.iterdir())
    assert files == ["log.txt", "records.tar.gz", "summary.json"]  # nothing unfinished: no checkpoints.tar
    (job,) = summary["jobs"]
    assert job["status"] == "done" and job["dataset"] == "usps" and job["seed"] == 0
    with tarfile.open(out / "records.tar.gz") as tar:
        names = set(tar.getnames())
        packed = {n.split("/")[1]: json.load(tar.extractfile(n)) for n in names if n.endswith(".json")}
    assert packed == _records(tmp / "whole" / "res") and set(packed) == {"kmeans-raw", "decs", "dec"}
    for method, rec in packed.items():
        assert job["final"][method] == {k: rec["final"][k] for k in ("acc", "nmi")}
        for f in rec.get("model_files", {}).values():  # the networks travel with their records
            assert f["path"] in names
    assert job["steps_per_s"]["pretrain"] > 0 and job["steps_per_s"]["decs"] > 0
    log = (out / "log.txt").read_text()
    assert "device: cpu" in log and "usps/seed0: done" in log


@needs_usps
def test_a_run_stopped_by_the_deadline_resumes_to_the_same_records(whole):
    tmp, _, summary = whole
    # stop the job inside its first clustering, after pretraining (checkpointed): at the clustering
    # checkpoint of iteration 20 of 100, a point of the training, not a time — on a busy machine
    # a deadline drawn from an earlier run's wall time came after the run had ended
    out1, first = _queue(tmp, "cut", *DEADLINE, "--stop-at-iteration", "20")
    assert first["jobs"][0]["status"] == "unfinished", first
    assert "stop point reached" in (out1 / "log.txt").read_text()
    assert (out1 / "checkpoints.tar").exists(), (out1 / "log.txt").read_text()
    assert len(list(out1.iterdir())) <= 8
    out2, second = _queue(tmp, "resumed", *DEADLINE, "--resume-from", str(out1))
    assert second["jobs"][0]["status"] == "done"
    assert "resumed from" in (out2 / "log.txt").read_text()
    expected, got = _records(tmp / "whole" / "res"), _records(tmp / "resumed" / "res")
    assert set(got) == {"kmeans-raw", "decs", "dec"}
    for method in ("decs", "dec"):
        for key in COMPARED:
            assert got[method][key] == expected[method][key], (method, key)
    assert got["kmeans-raw"]["final"] == expected["kmeans-raw"]["final"]


def _module():
    spec = importlib.util.spec_from_file_location("device_queue", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["device_queue"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_only_complete_records_and_the_model_files_they_name_are_returned(tmp_path):
    dq = _module()
    (tmp_path / "usps" / "decs").mkdir(parents=True)
    (tmp_path / "usps" / "pretrained").mkdir()
    (tmp_path / "usps" / "old.json").write_text("{}")
    before = dq.snapshot(tmp_path)
    named = {"final": {"path": "usps/decs/a.pt"}, "pretrained": {"path": "usps/pretrained/a.pt"}}
    (tmp_path / "usps" / "decs" / "a.json").write_text(json.dumps({"model_files": named}))
    (tmp_path / "usps" / "decs" / "b.json").write_text('{"final": {"acc"')  # being written
    for name in ("usps/decs/a.pt", "usps/pretrained/a.pt", "usps/decs/b.pt", "usps/decs/c.tmp"):
        (tmp_path / name).write_bytes(b"x")
    got = dq.record_files(tmp_path, before)
    assert sorted(got) == ["usps/decs/a.json", "usps/decs/a.pt", "usps/pretrained/a.pt"]


def test_refuses_an_out_folder_that_is_not_empty(tmp_path):
    (tmp_path / "old.txt").write_text("x")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "not empty" in proc.stderr


def test_checkpoints_that_save_the_most_training_go_first_within_the_cap(tmp_path):
    dq = _module()
    jobs = []
    for seed, mb in ((0, 3), (1, 3), (2, 3)):
        ck = tmp_path / "usps" / f"paper-seed{seed}"
        ck.mkdir(parents=True)
        for name in ("pretrain.pt", "decs.pt", "pretrain-epoch50.pt"):
            (ck / name).write_bytes(b"x" * (mb * 2**20 if name != "decs.pt" else 2**20))
        records = {m: tmp_path / "res" / m / f"paper-seed{seed}.json" for m in dq.RECORDS}
        jobs.append(dq.Job("usps", seed, records, ck, {"decs": ck / "decs.pt", "dec": ck / "dec.pt"}, 256,
                           status="unfinished"))
    jobs[2].status = "done"  # its records are there: nothing of it is returned
    prog = {"usps/seed0": {"checkpointed_seconds": 10.0}, "usps/seed1": {"checkpointed_seconds": 50.0}}
    chosen = dq.checkpoint_files(jobs, tmp_path, cap=5 * 2**20, prog=prog)  # room for one job's pretrain + decs
    assert sorted(chosen) == ["usps/paper-seed1/decs.pt", "usps/paper-seed1/pretrain.pt"]
    roomy = dq.checkpoint_files(jobs, tmp_path, cap=100 * 2**20, prog=prog)
    assert "usps/paper-seed0/pretrain-epoch50.pt" in roomy and not any("seed2" in n for n in roomy)


def test_parallel_jobs_from_free_gpu_memory():
    dq = _module()
    assert dq.choose_parallel({"device": "cpu", "cpu_count": 16}, 9) == 1
    assert dq.choose_parallel({"gpu_free_gib": 78.0, "cpu_count": 16}, 2) == 2   # no more than the jobs
    assert dq.choose_parallel({"gpu_free_gib": 10.0, "cpu_count": 16}, 9) == 2   # 4 GiB each
    assert dq.choose_parallel({"gpu_free_gib": 139.0, "cpu_count": 16}, 9) == 6  # at most 6
    assert dq.choose_parallel({"gpu_free_gib": 78.0, "cpu_count": 4}, 9) == 2    # two cores each


def test_hadis_jobs_come_after_every_decs_job(tmp_path):
    dq = _module()
    jobs = dq.make_jobs(["usps", "mnist", "fashion-mnist"], [0, 1], "paper", [], tmp_path / "res", tmp_path / "ck",
                        dq.HADIS_DATASETS, None, ["hsd=False"])
    assert [j.name for j in jobs] == ["usps/seed0", "mnist/seed0", "fashion-mnist/seed0", "usps/seed1", "mnist/seed1",
                                      "fashion-mnist/seed1", "hadis:mnist/seed0", "hadis:fashion-mnist/seed0",
                                      "hadis:mnist/seed1", "hadis:fashion-mnist/seed1"]
    h = jobs[6]
    assert h.kind == "hadis" and h.records == {"hadis": tmp_path / "res" / "mnist" / "hadis" / "paper-seed0+hsd=False.json"}
    assert h.cluster_files == {"hadis": tmp_path / "ck" / "mnist" / "hadis" / "paper-seed0+hsd=False.pt"}
    assert dq.progress(h) == {"checkpointed_seconds": 0.0}  # nothing trained yet
    assert [j.name for j in dq.make_jobs(["usps"], [0], "ci", [], tmp_path, tmp_path, dq.HADIS_DATASETS)] == ["usps/seed0"]



def test_model_files_only_for_usps_unless_asked(tmp_path):
    """One seed's networks take 7 MB: only the dataset the chapters load keeps them by default."""
    import argparse

    dq = _module()
    jobs = dq.make_jobs(["usps", "mnist"], [0], "paper", [], tmp_path, tmp_path, dq.HADIS_DATASETS)
    default, asked = argparse.Namespace(model_files=None), argparse.Namespace(model_files="all")
    assert [dq.model_files(j, default) for j in jobs] == ["auto", "none", "none"]   # + hadis:mnist
    assert {dq.model_files(j, asked) for j in jobs} == {"all"}

@needs_usps
def test_hadis_job_runs_and_its_record_is_returned(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--datasets", "usps", "--seeds", "0", "--profile", "ci",
                           "--set", "subset=200", "batch_size=200", "pretrain_epochs=2", "maxiter=20", "kmeans_n_init=1",
                           "--hadis-datasets", "usps", "--hadis-set", "subset=200", "epochs=2",
                           "--model-files", "none", *DEADLINE, "--out", str(out),
                           "--results", str(tmp_path / "res"), "--checkpoints", str(tmp_path / "ck")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    assert [(j["dataset"], j["status"]) for j in summary["jobs"]] == [("usps", "done"), ("usps", "done")]
    rec = json.loads((tmp_path / "res" / "usps" / "hadis" / "ci-seed0+subset=200+epochs=2.json").read_text())
    assert summary["jobs"][1]["final"]["hadis"] == {k: rec["final"][k] for k in ("acc", "nmi")}
    with tarfile.open(out / "records.tar.gz") as tar:
        assert "usps/hadis/ci-seed0+subset=200+epochs=2.json" in tar.getnames()
