"""benchmarks/speed.py runs and writes the JSON the reproducibility chapter reads."""
import os
import json
import runpy
import sys
from pathlib import Path

import pytest

from decs import data, results

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "speed.py"


def test_a_benchmark_names_its_command_and_prints_what_it_writes(tmp_path, capsys):
    import argparse
    from decs.files import report_record
    from decs.provenance import benchmark_command
    args = argparse.Namespace(datasets=["usps", "mnist-test"], epochs=2, subset=None, out=tmp_path / "r.json")
    assert benchmark_command("benchmarks/speed.py", args) == \
        "python benchmarks/speed.py --datasets usps mnist-test --epochs 2"   # unset and --out left out
    record = {"command": "c", "history": [{"it": 0, "acc": 0.5}], "sizes": [1, 2]}
    report_record(record, args.out)
    printed = capsys.readouterr().out
    assert printed == args.out.read_text() and json.loads(printed) == record
    report_record(record, None)                  # no file: printed only
    assert json.loads(capsys.readouterr().out) == record and len(list(tmp_path.iterdir())) == 1


@pytest.mark.skipif(not data.is_available("usps"), reason="USPS files not found under DECS_DATA (see data/README.md)")
def test_speed_script_writes_its_json(tmp_path, monkeypatch, one_thread):
    out = tmp_path / "speed.json"
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), "--datasets", "usps", "--epochs", "1",
                                      "--iterations", "3", "--device", "cpu", "--subset", "600", "--out", str(out)])
    runpy.run_path(str(SCRIPT), run_name="__main__")
    report = json.loads(out.read_text())
    assert report["command"].startswith("python benchmarks/speed.py --datasets usps --epochs 1")
    assert report["environment"]["device"] == "cpu"
    (row,) = results.load_benchmarks(tmp_path)
    assert row["dataset"] == "usps" and row["n"] == 600
    for key in ("pretrain_s_per_epoch", "full_data_eval_s", "cluster_s_per_iteration_with_eval"):
        assert row[key] > 0
    # the operations of a USPS step (batch 256 of 16 × 16), and the rate they make
    assert 10 < row["pretrain_gflop_per_step"] < 12
    assert row["pretrain_gflops"] == pytest.approx(row["pretrain_gflop_per_step"] / row["pretrain_s_per_step"], rel=0.02)
    assert "vendor" in report["environment"]["cpu_info"] or not Path("/proc/cpuinfo").exists()


@pytest.mark.skipif(not data.is_available("usps"), reason="USPS files not found under DECS_DATA (see data/README.md)")
def test_speed_script_times_each_precision_in_turn(tmp_path, monkeypatch, one_thread):
    out = tmp_path / "speed.json"
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), "--datasets", "usps", "--epochs", "1",
                                      "--iterations", "2", "--device", "cpu", "--subset", "300",
                                      "--precisions", "fp32", "bf16", "--rounds", "2", "--out", str(out)])
    runpy.run_path(str(SCRIPT), run_name="__main__")
    rows = results.load_benchmarks(tmp_path)
    assert [r["precision"] for r in rows] == ["fp32", "bf16", "fp32", "bf16"]
    assert all(r["pretrain_s_per_epoch"] > 0 for r in rows)


STEP_PROFILE = runpy.run_path(str(SCRIPT.parent / "step_profile.py"))


def test_step_profile_names_the_part_of_each_operator():
    """An operator goes to the part its own name matches, else to its nearest caller's part:
    Adam's arithmetic to Adam, a backward convolution's bookkeeping to the backward part."""
    class Ev:
        def __init__(self, name, parent=None):
            self.name, self.cpu_parent = name, parent

    part_of, other = STEP_PROFILE["part_of"], STEP_PROFILE["OTHER"]
    step = Ev("Optimizer.step#Adam.step")
    assert part_of(Ev("aten::sqrt", step)) == "Adam"
    assert part_of(Ev("aten::mul_", Ev("aten::sqrt", step))) == "Adam"
    backward = Ev("autograd::engine::evaluate_function: ConvolutionBackward0")
    assert part_of(backward) == "convolutions, backward"
    assert part_of(Ev("aten::convolution_backward", backward)) == "convolutions, backward"
    assert part_of(Ev("aten::mkldnn_convolution", Ev("aten::conv2d"))) == "convolutions, forward"
    assert part_of(Ev("aten::empty", Ev("aten::grid_sampler_2d"))) == "augmentation"
    assert part_of(Ev("aten::index")) == other


@pytest.mark.skipif(not data.is_available("usps"), reason="USPS files not found under DECS_DATA (see data/README.md)")
def test_step_profile_splits_the_whole_profiled_epoch(tmp_path, monkeypatch, one_thread):
    out = tmp_path / "profile.json"
    monkeypatch.setattr(sys, "argv", [str(SCRIPT.parent / "step_profile.py"), "--precisions", "fp32",
                                      "--epochs", "1", "--subset", "300", "--out", str(out)])
    runpy.run_path(str(SCRIPT.parent / "step_profile.py"), run_name="__main__")
    report = json.loads(out.read_text())
    (prof,) = report["profiles"]
    parts = prof["parts_s_per_epoch"]
    assert prof["n"] == 300 and report["batch_size"] == 256
    # the parts add up to the profiled epoch; a pretraining step convolves, augments, runs Adam
    assert sum(parts.values()) == pytest.approx(prof["s_per_epoch_profiled"], abs=0.01)
    for part in ("convolutions, forward", "convolutions, backward", "augmentation", "Adam"):
        assert parts[part] > 0, part
    assert results.load_benchmarks(tmp_path) == []   # not a speed.py file: the speed table skips it


def test_every_chapter_becomes_a_script_the_device_can_run(tmp_path):
    """benchmarks/device_notebooks.py: each notebook's code compiles as plain Python (magics turned
    into calls to a stand-in shell), and the stand-in IPython.display works without IPython."""
    tool = runpy.run_path(str(SCRIPT.parent / "device_notebooks.py"))
    notebooks = sorted((SCRIPT.parents[1] / "book").glob("*.ipynb"))
    assert len(notebooks) > 10
    for nb in notebooks:
        code = tool["to_script"](nb)
        compile(code, nb.name, "exec")
        assert "get_ipython().run_line_magic" not in code or "def get_ipython" in code
    shim = {}
    exec(tool["SHIM"], shim)
    shim["display"](shim["Markdown"]("**x**"))


AUTHORS_TF = runpy.run_path(str(SCRIPT.parent / "authors_tf.py"))


def _transcript(epochs=20, plain=2.5, kmeans=5.0, iters=(0, 30, 60, 90), per_iter=0.1):
    """What the authors' run_exp.py prints, with the second each line arrived: an epoch of
    ``plain`` seconds, plus ``kmeans`` seconds at the end of every other epoch (their
    pretraining's k-means every epochs/10 epochs), then clustering."""
    lines, t = [], 3.0
    for e in range(1, epochs + 1):
        lines.append((t, f"Epoch {e}/{epochs}"))
        t += plain + (10.0 if e == 1 else 0.0)  # the first epoch builds TensorFlow's graph
        if (e - 1) % (epochs // 10) == 0:
            t += kmeans
            lines.append((t, "        |==>  acc: 0.5000,  nmi: 0.5000,  ari: 0.4000  <==|"))
    lines += [(t, "Pretraining time:  99.0"), (t, "Time for pretraining: 99s")]
    t += 4.0
    for i in iters:
        lines.append((t + i * per_iter, f"Iter {i}: acc=0.90000, nmi=0.80000, ari=0.70000; loss=0.12345"))
    t += iters[-1] * per_iter
    lines += [(t, "Best: Best_acc=0.95000, Best_nmi=0.85000, Best_ari=0.75000"),
              (t, "Final: acc=0.9000, nmi=0.8000, ari=0.7000"),
              (t, "Time for pretaining, clustering and total: (99s, 12s, 111s)")]
    return lines


def test_authors_tf_transcript_is_read_into_a_record():
    rec = AUTHORS_TF["parse"](_transcript())
    speed = rec["speed_measured_here"]
    # epochs 2..19 whose end ran no k-means are timed alone: exactly the plain epoch
    assert speed["pretrain_s_per_epoch"] == 2.5 and speed["pretrain_epochs_timed"] == 9
    # epochs 2..20: 19 epochs, 9 of them (3, 5, ..., 19) ending in a k-means
    assert speed["pretrain_s_per_epoch_with_their_kmeans"] == pytest.approx((19 * 2.5 + 9 * 5.0) / 19, abs=1e-3)
    assert speed["cluster_s_per_iteration_with_eval"] == pytest.approx(0.1)
    # their callback's k-means while pretraining: after epochs 1, 3, ..., 19, with what it printed
    assert [k["epoch"] for k in rec["pretrain_kmeans"]] == list(range(1, 20, 2))
    assert rec["pretrain_kmeans"][0] == {"epoch": 1, "acc": 0.5, "nmi": 0.5, "ari": 0.4}
    assert rec["start"] == {"acc": 0.9, "nmi": 0.8, "ari": 0.7} and len(rec["history"]) == 4
    assert rec["their_final"]["acc"] == 0.9 and rec["their_best_label_selected"]["acc"] == 0.95
    assert rec["their_wall_time_s"] == {"pretrain": 99, "cluster": 12, "total": 111}
    assert "final" not in rec  # so results.load_records never mixes it with this project's runs


def test_authors_tf_keeps_their_pretraining_losses(tmp_path):
    """The record's pretrain_loss is their CSVLogger's loss column, one value per epoch in order;
    a run that did not pretrain (their main.py from given weights) has none."""
    assert AUTHORS_TF["_pretrain_losses"](tmp_path) is None
    log = tmp_path / "results" / "temp" / "DECS" / "usps" / "trial0" / "pretrain_log.csv"
    log.parent.mkdir(parents=True)
    log.write_text("epoch,loss,val_loss\n0,0.235,NA\n1,0.0609,NA\n2,0.04,NA\n")
    assert AUTHORS_TF["_pretrain_losses"](tmp_path) == [0.235, 0.0609, 0.04]


def test_authors_tf_refuses_an_unfinished_run_and_bad_paths(tmp_path):
    with pytest.raises(RuntimeError, match="did not finish"):
        AUTHORS_TF["parse"]([(t, line) for t, line in _transcript() if "Final" not in line])
    out = tmp_path / "r.json"
    out.write_text("{}")
    with pytest.raises(SystemExit, match="never overwrites"):
        AUTHORS_TF["main"](["--code", str(tmp_path), "--python", sys.executable,
                            "--pretrain-epochs", "1", "--maxiter", "1", "--out", str(out)])
    new = ["--python", sys.executable, "--pretrain-epochs", "1", "--maxiter", "1", "--out", str(tmp_path / "new.json")]
    with pytest.raises(SystemExit, match="pass --commit"):  # a record must name their commit
        AUTHORS_TF["main"](["--code", str(tmp_path), *new])
    with pytest.raises(SystemExit, match="no run_exp.py"):
        AUTHORS_TF["main"](["--code", str(tmp_path), "--commit", "85f2586", *new])
    with pytest.raises(SystemExit, match="together"):
        AUTHORS_TF["main"](["--code", str(tmp_path), "--commit", "85f2586", *new, "--from-log", "x.log"])


def test_authors_tf_rebuilds_a_record_from_what_it_printed(tmp_path):
    """--from-log reads back the lines the script printed while a run went (its own format, only the
    lines it shows) into the same history, start, final and times as the run's lines."""
    lines = _transcript()
    shown = [(t, line) for t, line in lines if AUTHORS_TF["EPOCH"].match(line) or AUTHORS_TF["ITER"].search(line)
             or "Time for" in line or "Final" in line]
    log = tmp_path / "run.log"
    log.write_text("".join(f"[authors-tf {t:7.1f}s] {line}\n" for t, line in shown) + "Traceback (most recent...\n")
    rebuilt, full = AUTHORS_TF["parse"](AUTHORS_TF["_read_log"](log)), AUTHORS_TF["parse"](lines)
    for key in ("history", "start", "their_final", "their_wall_time_s"):
        assert rebuilt[key] == full[key], key
    assert "their_best_label_selected" not in rebuilt  # the log does not show that line
    log.write_text("some other program's output\n")
    with pytest.raises(SystemExit, match="this script's output"):
        AUTHORS_TF["_read_log"](log)


@pytest.mark.skipif(not data.is_available("usps"), reason="USPS files not found under DECS_DATA (see data/README.md)")
def test_remedy_cost_times_each_variant_in_turn(tmp_path, one_thread):
    tool = runpy.run_path(str(SCRIPT.parent / "remedy_cost.py"))
    out = tmp_path / "cost.json"
    rep = tool["main"](["--subset", "300", "--iterations", "3", "--repeats", "2", "--device", "cpu",
                        "--out", str(out)])
    assert json.loads(out.read_text()) == rep
    assert set(rep["seconds"]) == {"protocol", "balance=1.0", "reseed_empty=true"}
    assert all(len(s) == 2 and min(s) > 0 for s in rep["seconds"].values())
    assert rep["ratio_to_protocol"]["protocol"] == 1.0 and rep["n"] == 300
    assert results.load_benchmarks(tmp_path) == []  # not a speed.py file: the speed table skips it


def test_authors_tf_wants_one_start(tmp_path):
    """Their pretraining (--pretrain-epochs) or given weights (--pretrained-weights), not both or none."""
    base = ["--code", str(tmp_path), "--python", sys.executable, "--maxiter", "1",
            "--out", str(tmp_path / "r.json")]
    with pytest.raises(SystemExit, match="exactly one"):
        AUTHORS_TF["main"](base)
    with pytest.raises(SystemExit, match="exactly one"):
        AUTHORS_TF["main"](base + ["--pretrain-epochs", "1", "--pretrained-weights", "w.h5"])
    with pytest.raises(SystemExit, match="authors_tf_weights.py"):
        AUTHORS_TF["main"](base + ["--pretrained-weights", str(tmp_path / "missing.h5")])
    weights = tmp_path / "w.h5"
    weights.write_bytes(b"not read before the checks")
    with pytest.raises(SystemExit, match="together"):
        AUTHORS_TF["main"](base + ["--pretrained-weights", str(weights), "--weights-seed", "0"])
    with pytest.raises(SystemExit, match="give that too"):
        AUTHORS_TF["main"](base + ["--pretrain-epochs", "1", "--weights-profile", "cpu", "--weights-seed", "0"])


class _Layer:
    """Just enough of a Keras layer for the weight copies of benchmarks/authors_tf_weights.py."""

    def __init__(self, kind, weights=(), filters=None, output_shape=None, name=None):
        self.__class__ = type(kind, (_Layer,), {})
        self.weights, self.filters, self.output_shape, self.name = list(weights), filters, output_shape, name

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        assert [w.shape for w in weights] == [w.shape for w in self.weights], self.name
        self.weights = [w.copy() for w in weights]


def test_the_two_weight_copies_are_each_others_inverse():
    """Ours → the Keras layout → ours gives our encoder back, entry for entry; and the Keras side
    gets Keras's shapes (kernels (h, w, in, out), the embedding's rows (H, W, C))."""
    import numpy as np
    import torch

    from decs.models import ConvAutoencoder

    tool = runpy.run_path(str(SCRIPT.parent / "authors_tf_weights.py"))
    torch.manual_seed(0)
    ours = ConvAutoencoder((1, 16, 16))
    for name, v in ours.state_dict().items():   # batch-norm statistics too, not their defaults
        if v.is_floating_point():
            v.copy_(torch.randn_like(v))
    chans = [(1, 32), (32, 64), (64, 128), (128, 256)]
    layers = []
    for i, (cin, cout) in enumerate(chans):
        layers.append(_Layer("Conv2D", [np.zeros((3, 3, cin, cout), "f4"), np.zeros(cout, "f4")], filters=cout,
                             output_shape=(None, 2, 2, cout), name=f"conv{i}"))
        layers.append(_Layer("BatchNormalization", [np.zeros(cout, "f4")] * 4, name=f"bn{i}"))
    dense = _Layer("Dense", [np.zeros((2 * 2 * 256, 10), "f4"), np.zeros(10, "f4")], name="embedding")
    keras = type("Model", (), {"layers": layers + [dense], "get_layer": lambda self, n: dense})()
    tool["copy_encoder"]({k: v.clone() for k, v in ours.state_dict().items()}, keras)
    w = ours.state_dict()["encoder.16.weight"]          # (10, C·H·W) with C = 256, H = W = 2
    assert np.array_equal(dense.weights[0][(1 * 2 + 0) * 256 + 5], w[:, 5 * 4 + 1 * 2 + 0].numpy())
    torch.manual_seed(1)
    back = ConvAutoencoder((1, 16, 16))
    tool["copy_encoder_to_ours"](keras, back)
    for name, v in ours.state_dict().items():
        if name.startswith("encoder.") and not name.endswith("num_batches_tracked"):
            assert torch.equal(back.state_dict()[name], v), name


def test_the_cpu_study_queue_names_only_valid_runs():
    """benchmarks/cpu_studies.sh with DRY_RUN=1 lists its runs: every one a `python -m decs`
    command whose --set fields exist and parse, on a known dataset and profile."""
    import shlex
    import subprocess

    from decs import hadis
    from decs.__main__ import _parse_overrides
    from decs.config import get_config

    out = subprocess.run(["bash", str(SCRIPT.parent / "cpu_studies.sh")], env={**os.environ, "DRY_RUN": "1"},
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(out) >= 10
    for line in out:
        words = shlex.split(line)
        assert words[:3] == ["python", "-m", "decs"] and words[3] in ("train", "reproduce", "sweep")
        assert data.canonical_name(words[words.index("--dataset") + 1])
        profile = words[words.index("--profile") + 1]
        pairs = words[words.index("--set") + 1:] if "--set" in words else []
        if "hadis" in words:
            hadis.get_hadis_config(profile, **_parse_overrides(pairs, hadis.HaDisConfig))
        else:
            get_config(profile, **_parse_overrides(pairs))


def test_the_cpu_queue_lists_two_lanes_and_skips_the_authors_lane_without_their_code(tmp_path):
    """benchmarks/cpu_queue.sh with DRY_RUN=1: the runs are `python -m decs` commands of known datasets and
    profiles — the protocol rows, each dataset and seed once — and the authors' runs (their MNIST-test
    protocol first, the USPS draws) are run only when AUTHORS_CODE and TF_PYTHON are set and only where
    their record is missing."""
    import shlex
    import subprocess

    def listed(**env):
        base = {k: v for k, v in os.environ.items() if k not in ("AUTHORS_CODE", "TF_PYTHON", "THEIR_MNIST_TEST")}
        return subprocess.run(["bash", str(SCRIPT.parent / "cpu_queue.sh")], env={**base, "DRY_RUN": "1", **env},
                              capture_output=True, text=True, check=True).stdout.splitlines()

    without = listed()
    assert any("the authors' draws skipped" in line for line in without)
    ours = [shlex.split(line) for line in without if line.startswith("python -m decs")]
    assert all(data.canonical_name(w[w.index("--dataset") + 1]) for w in ours)
    rows = [(w[w.index("--dataset") + 1], w[w.index("--seeds") + 1]) for w in ours if w[3] == "reproduce"]
    assert sorted(rows) == [("fashion-mnist", "0"), ("mnist", "0"), ("mnist-test", "1"), ("mnist-test", "2")]
    assert all(w[w.index("--profile") + 1] == "paper" for w in ours)
    # HaDis at its paper length: USPS first, then MNIST-test (issue 27, item 5)
    hadis_runs = [w[w.index("--dataset") + 1] for w in ours if w[3] == "train" and "hadis" in w]
    assert hadis_runs == ["usps", "mnist-test"]
    theirs = [line for line in listed(AUTHORS_CODE="x", TF_PYTHON="y") if "authors_tf.py" in line or "done: " in line]
    for seed in (1, 2, 3, 4):   # each draw: a command, or done where its record is committed
        assert sum(f"e200-i3000-seed{seed}.json" in line for line in theirs) == 1, seed
    # their MNIST-test protocol, before the lanes and on two threads: the 500-epoch pretraining, then
    # their clustering from the network it kept (each process whole within a session)
    # (each a command, or "done:" where its record is committed)
    protocol = [line for line in theirs if "mnist-test" in line]
    assert len(protocol) == 2 and all("--threads 2" in line or "done: " in line for line in protocol)
    assert "e500-i1.json" in protocol[0] and "e500-i20000.json" in protocol[1]
    assert "--pretrained-weights" in protocol[1] or "done: " in protocol[1]
    assert not any("mnist-test" in line and "authors_tf.py" in line for line in without)
    assert any("--start-from" in line and "theirs-e500.pt" in line for line in without)
    swaps = [line for line in listed(THEIR_MNIST_TEST="t.pt") if "--start-from t.pt" in line]
    assert len(swaps) == 3 and all("--dataset mnist-test" in line for line in swaps)


def test_queue_status_says_how_far_each_checkpoint_is(tmp_path, capsys):
    import torch

    status = runpy.run_path(str(SCRIPT.parent / "queue_status.py"))
    run = tmp_path / "usps" / "paper-seed0"
    run.mkdir(parents=True)
    torch.save({"losses": [0.1] * 40, "seconds": 100.0, "key": {"pretrain_epochs": 500}}, run / "pretrain.pt")
    torch.save({"state": {"iteration": 3000, "seconds": 600.0, "processes": 2,
                          "commits": ["a" * 40, "b" * 40]}}, run / "decs.pt")
    (run / "dec.pt").write_bytes(b"torn")
    (tmp_path / "usps" / "hadis").mkdir()
    torch.save({"epoch": 100, "seconds": 1000.0, "key": {"epochs": 1000}, "processes": 2, "commits": ["c" * 40],
                "threads": [1, 2]},
               tmp_path / "usps" / "hadis" / "paper-seed0.pt")
    lines = status["main"](["--checkpoints", str(tmp_path)])
    # a checkpoint older than the process count and the commits: one process, code not recorded;
    # threads: "?" for each process of a checkpoint older than their list;
    # the time left is the rate so far times what is left: 460 epochs × 2.5 s, 17,000 of the paper
    # profile's 20,000 iterations × 0.2 s, 900 HaDis epochs × 10 s
    assert any("pretraining 40/500 epochs, 2.5 s/epoch, 0.3 h left at this rate; 1 process (threads ?), "
               "code not recorded" in line for line in lines)
    assert any("clustering at iteration 3,000, 0.200 s/iteration, 0.9 h left at this rate; 2 processes "
               "(threads ?, ?), code aaaaaaaa, bbbbbbbb" in line for line in lines)
    assert any("HaDis at epoch 100/1000, 10.0 s/epoch, 2.5 h left at this rate; 2 processes (threads 1, 2), "
               "code cccccccc" in line for line in lines)
    assert any("dec.pt: unreadable" in line for line in lines)
    assert "no checkpoints" in status["main"](["--checkpoints", str(tmp_path / "none")])[0]


def test_estimator_length_fits_as_a_user_would(tmp_path, one_thread):
    """benchmarks/estimator_length.py at a few steps: the steps become whole epochs of the 1,797
    digits (8 batches of 256 each), every fit is kept with its clusters, and the record names its command."""
    length = runpy.run_path(str(SCRIPT.parent / "estimator_length.py"))
    out = tmp_path / "length.json"
    report = length["main"](["--steps", "8", "12", "--seeds", "0", "--maxiter", "10", "--out", str(out)])
    assert json.loads(out.read_text()) == report
    assert report["steps_per_epoch"] == 8 and report["n"] == 1797
    assert [(r["pretrain_epochs"], r["pretrain_steps"]) for r in report["runs"]] == [(1, 8), (2, 16)]
    for r in report["runs"]:
        assert 1 <= r["clusters_used"] <= 10 and 0 <= r["acc"] <= 1
    assert 0.5 < report["kmeans_on_pixels"][0]["acc"] <= 1   # k-means on these pixels is far above chance
    assert report["command"].startswith("python benchmarks/estimator_length.py --steps 8 12")
