"""decs.notebook: the set-up's profile choice, the long-step flag and its estimate, and pages that
say "not available" instead of failing when the committed results are missing."""
import json
from pathlib import Path

import pytest
import torch

from decs import notebook
from decs.config import get_config

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def no_profile(monkeypatch):
    monkeypatch.delenv("DECS_PROFILE", raising=False)
    monkeypatch.delenv("DECS_SKIP_LONG", raising=False)


def test_without_a_gpu_the_ci_profile_is_chosen_and_said(no_profile, monkeypatch, capsys):
    profile, why = notebook.choose_profile(torch.device("cpu"))
    assert profile == "ci" and "no GPU" in why
    assert get_config().profile == "ci"     # written into DECS_PROFILE: later get_config() agrees
    monkeypatch.delenv("DECS_PROFILE")
    monkeypatch.setenv("DECS_DEVICE", "cpu")
    S = notebook.setup(seed=0)
    assert S.profile == "ci" and S.config.profile == "ci"
    out = capsys.readouterr().out
    assert out.startswith("profile=ci |") and "profile ci: chosen because this runtime has no GPU" in out


def test_with_a_gpu_the_default_stays_cpu(no_profile):
    assert notebook.choose_profile(torch.device("cuda")) == (
        "cpu", "the default on a GPU; set DECS_PROFILE=paper for the authors' lengths, ci for the shortest")
    assert get_config().profile == "cpu"


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_a_profile_the_reader_set_is_kept(monkeypatch, device):
    monkeypatch.setenv("DECS_PROFILE", "paper")
    assert notebook.choose_profile(torch.device(device)) == ("paper", "set by DECS_PROFILE")


def test_long_steps_say_how_long_and_are_skipped_by_the_flag(no_profile, monkeypatch, capsys):
    monkeypatch.setenv("DECS_PROFILE", "cpu")
    minutes = notebook.minutes_at("usps")
    assert minutes > notebook.LONG_MINUTES
    assert notebook.long_step("training", minutes)
    assert "set DECS_SKIP_LONG=1" in capsys.readouterr().out
    monkeypatch.setenv("DECS_SKIP_LONG", "1")
    assert not notebook.long_step("training", minutes)
    assert "SKIPPED (DECS_SKIP_LONG=1)" in capsys.readouterr().out
    assert notebook.long_step("a short step", 0.5)       # a short step runs even with the flag
    assert "under a minute" in capsys.readouterr().out


def test_the_estimate_grows_with_the_profile_and_the_runs():
    ci, cpu, paper = (notebook.minutes_at("usps", get_config(p)) for p in ("ci", "cpu", "paper"))
    assert ci < 1 < notebook.LONG_MINUTES < cpu < paper
    assert notebook.minutes_at("usps", get_config("cpu"), runs=3) == pytest.approx(3 * cpu)
    assert notebook.minutes_at("usps", get_config("cpu"), pretrain=False) < cpu


def test_the_estimate_s_constants_are_the_committed_benchmark_s():
    rec = json.loads((ROOT / "results" / "benchmarks" / "cpu-2cores.json").read_text())
    by = {r["dataset"]: r for r in rec["results"]}
    usps, mnist = by["usps"], by["mnist-test"]
    assert notebook._PRETRAIN_S_PER_IMAGE[256] == pytest.approx(usps["pretrain_s_per_epoch"] / usps["n"], rel=1e-3)
    assert notebook._PRETRAIN_S_PER_IMAGE[784] == pytest.approx(mnist["pretrain_s_per_epoch"] / mnist["n"], rel=1e-3)
    assert notebook._CLUSTER_S_PER_ITERATION[256] == pytest.approx(usps["cluster_s_per_iteration_with_eval"],
                                                                   rel=1e-3)
    assert notebook._CLUSTER_S_PER_ITERATION[784] == pytest.approx(mnist["cluster_s_per_iteration_with_eval"],
                                                                   rel=1e-3)


def test_missing_results_are_said_not_available(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("DECS_RESULTS", str(tmp_path))
    assert not notebook.available("the sweep", None)
    assert not notebook.available("the records", [])
    assert not notebook.available("a file", tmp_path / "missing.json")
    out = capsys.readouterr().out
    assert out.count("NOT AVAILABLE on this machine") == 3 and "DECS_RESULTS names" in out

    (tmp_path / "empty").mkdir()    # what a failed fetch leaves: a folder without files
    assert not notebook.available("an empty folder", tmp_path / "empty")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "a.json").write_text("{}")
    assert notebook.available("the records", [{"a": 1}]) and notebook.available("a folder", tmp_path / "full")
    assert notebook.first_file(tmp_path / "a", tmp_path / "empty", tmp_path / "full") == tmp_path / "full"
    assert notebook.first_file(tmp_path / "a") is None


def test_in_a_checkout_a_missing_committed_result_is_a_bug(monkeypatch):
    monkeypatch.delenv("DECS_RESULTS", raising=False)
    with pytest.raises(AssertionError, match="missing from this checkout's results/"):
        notebook.available("the sweep", None)


def test_the_needs_magic_skips_a_cell_without_its_results_and_runs_it_with_them(monkeypatch, tmp_path):
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    monkeypatch.setenv("DECS_RESULTS", str(tmp_path))
    shell = InteractiveShell.instance()
    try:
        shell.register_magic_function(notebook.needs, magic_kind="cell", magic_name="needs")
        shell.user_ns.update(SW=None, REC=[1, 2])
        with capture_output() as out:
            shell.run_cell("%%needs REC SW\nran = True")
        assert "skipped: this cell needs SW" in out.stdout and "ran" not in shell.user_ns
        shell.run_cell("%%needs REC\nran = len(REC)")
        assert shell.user_ns["ran"] == 2
        with capture_output():
            result = shell.run_cell("%%needs REC\nassert False, 'inside'")
        assert isinstance(result.error_in_exec, AssertionError)   # an error inside stays an error
    finally:
        InteractiveShell.clear_instance()
