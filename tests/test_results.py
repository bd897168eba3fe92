"""The results tables are aggregated from run records, never typed in."""
import json
from pathlib import Path

import numpy as np
import pytest

from decs import results


def _record(tmp: Path, dataset, method, profile, seed, acc, nmi=0.5, best=None, name=None):
    rec = {"dataset": dataset, "method": method, "profile": profile, "seed": seed,
           "final": {"acc": acc, "nmi": nmi, "ari": 0.1},
           "best_label_selected": {"acc": best if best is not None else acc},
           "kmeans_on_embedding": {"acc": acc - 0.1},
           "wall_time_s": {"pretrain": 60.0, "kmeans": 1.0, "cluster": 59.0},
           "environment": {"cpu_count": 2}}
    path = tmp / dataset / method / f"{name or f'{profile}-seed{seed}'}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec))
    return rec


def test_summary_is_mean_std_over_records(tmp_path):
    for seed, acc in enumerate([0.90, 0.92, 0.94]):
        _record(tmp_path, "usps", "decs", "cpu", seed, acc, best=acc + 0.01)
    _record(tmp_path, "usps", "dec", "cpu", 0, 0.80)
    _record(tmp_path, "usps", "kmeans-raw", "cpu", 0, 0.65)
    _record(tmp_path, "mnist-test", "decs", "paper", 0, 0.97)
    rows = results.summary_rows(results.load_records(tmp_path))
    assert [(r["dataset"], r["profile"]) for r in rows] == [("mnist-test", "paper"), ("usps", "cpu")]
    usps = rows[1]
    m, s, n = usps["decs_acc"]
    assert n == 3 and m == pytest.approx(0.92) and s == pytest.approx(np.std([0.90, 0.92, 0.94]))
    assert usps["decs_best_acc"][0] == pytest.approx(0.93)
    assert usps["dec_acc"] == (pytest.approx(0.80), 0.0, 1)
    assert usps["kmeans_raw_acc"][0] == pytest.approx(0.65)
    assert usps["decs_wall_min"][0] == pytest.approx(2.0)
    assert usps["hardware"] == "2 CPU cores" == results.hardware({"cpu_count": 2})
    assert results.hardware({"cpu_count": 16, "gpu": "NVIDIA H200"}) == "NVIDIA H200"
    assert results.fmt(*usps["decs_acc"]) == "0.920 ± 0.016 (3)"
    assert results.fmt(*rows[0]["dec_acc"]) == "—"


def test_filters_and_protocol_flag(tmp_path):
    _record(tmp_path, "usps", "decs", "cpu", 0, 0.9)
    _record(tmp_path, "usps", "decs", "cpu", 0, 0.7, name="cpu-seed0+maxiter=100")
    recs = results.load_records(tmp_path, dataset="usps", method="decs")
    assert len(recs) == 2
    flags = {Path(r["path"]).stem: results.is_protocol_run(r) for r in recs}
    assert flags == {"cpu-seed0": True, "cpu-seed0+maxiter=100": False}
    assert results.load_records(tmp_path, profile="paper") == []


def test_committed_records_match_their_table():
    """Every number of the committed results table equals the aggregate of its record files."""
    records = [r for r in results.load_records() if results.is_protocol_run(r)]  # as the chapter does
    for row in results.summary_rows(records):
        files = [json.loads(Path(p).read_text()) for p in row["files"]]
        for method in ("decs", "dec"):
            accs = [f["final"]["acc"] for f in files if f["method"] == method]
            m, _, n = row[f"{method}_acc"]
            assert n == len(accs)
            if accs:
                assert m == pytest.approx(np.mean(accs))
        for f in files:  # provenance is recorded next to each number
            if f["method"] in ("decs", "dec"):
                assert f["environment"]["commit"] and f["config"] and "seed" in f and f["wall_time_s"]


def test_benchmark_rows_come_from_the_files(tmp_path):
    rec = {"environment": {"cpu_count": 2, "torch_threads": 2, "commit": "0123456789abcdef"},
           "results": [{"dataset": "usps", "pretrain_s_per_epoch": 2.5},
                       {"dataset": "mnist-test", "pretrain_s_per_epoch": 8.0}]}
    (tmp_path / "quiet.json").write_text(json.dumps(rec))
    rows = results.load_benchmarks(tmp_path)
    assert [(r["file"], r["dataset"], r["pretrain_s_per_epoch"]) for r in rows] == [
        ("quiet.json", "usps", 2.5), ("quiet.json", "mnist-test", 8.0)]
    assert rows[0]["hardware"] == "2 CPU cores, 2 threads" and rows[0]["commit"] == "01234567"
    for row in results.load_benchmarks():  # the committed measurements say where they came from
        assert row["commit"] and row["pretrain_s_per_epoch"] > 0 and row["cluster_s_per_iteration"] > 0


def test_every_committed_record_with_model_files_rescores_to_its_final_accuracy():
    """`python -m decs evaluate --record` for each committed record whose model files are in the
    repository: sha256 checked, final ACC reproduced (within one sample on the CPU that trained it)."""
    from decs import data
    from decs.__main__ import evaluate_record
    from decs.results import RESULTS, load_records

    with_files = [r for r in load_records(RESULTS) if "model_files" in r]
    for rec in with_files:
        if not data.is_available(rec["dataset"]):
            pytest.skip(f"{rec['dataset']} files not found: set DECS_DATA")
        out = evaluate_record(rec["path"], device="cpu")
        assert out["agrees"], out


def _rec(ds, prof, method, seed, acc, start, sizes):
    return {"dataset": ds, "profile": prof, "method": method, "seed": seed, "path": f"{prof}-seed{seed}.json",
            "n_clusters": len(sizes), "final": {"acc": acc, "nmi": acc}, "kmeans_on_embedding": {"acc": start},
            "best_label_selected": {"acc": acc}, "history": [{"cluster_sizes": sizes}],
            "config": {"pretrain_epochs": 200, "maxiter": 3000},
            "wall_time_s": {"pretrain": 1, "kmeans": 1, "cluster": 1}, "environment": {"cpu_count": 2}}


def test_findings_are_computed_from_the_records():
    recs = [_rec("usps", "cpu", "decs", 0, 0.90, 0.93, [5, 0, 5]), _rec("usps", "cpu", "decs", 1, 0.95, 0.93, [3, 3, 4]),
            _rec("usps", "cpu", "dec", 0, 0.97, 0.93, [3, 3, 4]), _rec("usps", "cpu", "dec", 1, 0.99, 0.93, [3, 3, 4]),
            _rec("mnist", "cpu", "decs", 0, 0.5, 0.6, [5, 5])]          # no DEC run: no line
    text = results.findings(recs)
    assert text.count("\n") == 0 and "usps" in text and "mnist" not in text
    assert "0.925 ± 0.025 (2)" in text and "0.980 ± 0.010 (2)" in text
    assert "1 of 2 DECS runs end below" in text and "1 empty a cluster" in text and "published DECS: 0.992" in text
    assert results.findings([]) == "- (no committed protocol records yet)"


def test_threshold_summary_reads_the_loop_diagnostics():
    h = [{"iteration": 0, "cluster_sizes": [3, 3]},
         {"iteration": 30, "cluster_sizes": [3, 3], "t_mean": 0.4, "t_min": 0.3, "t_max": 0.5, "t_clamped": 0},
         {"iteration": 60, "cluster_sizes": [6, 0], "t_mean": 0.1, "t_min": 0.0005, "t_max": 0.2, "t_clamped": 3}]
    rec = {"dataset": "usps", "profile": "cpu", "seed": 0, "method": "decs", "path": "cpu-seed0.json",
           "iterations": 60, "history": h}
    old = {**rec, "history": [{"iteration": 0, "cluster_sizes": [3, 3]}, {"iteration": 30, "cluster_sizes": [3, 3]}]}
    ablation = {**rec, "path": "cpu-seed0+lam=0.0.json"}
    rows = results.threshold_summary([rec, old, ablation])   # only protocol runs that kept diagnostics
    assert len(rows) == 1
    row = rows[0]
    assert row["t, first interval"] == 0.4 and row["t, last tenth"] == 0.1 and row["lowest t"] == 0.0005
    assert row["share of batches clamped"] == 3 / 60 and row["clusters used"] == 1


# ------------------------------------------------------------------ an installed package
def test_the_manifest_lists_every_committed_result_with_its_checksum():
    """An installed package fetches exactly the files results/ holds (tools/sync_results_manifest.py)."""
    import subprocess
    import sys

    from decs.train import REPO_ROOT

    tool = subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "sync_results_manifest.py"), "--check"],
                          capture_output=True, text=True)
    assert tool.returncode == 0, tool.stdout + tool.stderr


@pytest.fixture
def results_server(tmp_path):
    """results/ of the checkout, served on 127.0.0.1, plus a folder whose files are all wrong."""
    import http.server
    import threading

    from decs.results import RESULTS

    bad = tmp_path / "bad"
    for rel, entry in results.manifest()["files"].items():
        if not rel.endswith(".pt"):  # the right length, the wrong bytes
            (bad / rel).parent.mkdir(parents=True, exist_ok=True)
            (bad / rel).write_bytes(bytes(entry["bytes"]))
    folders = {"good": RESULTS, "bad": bad}

    class Handler(http.server.SimpleHTTPRequestHandler):
        def translate_path(self, path):
            head, _, rest = path.lstrip("/").partition("/")
            return str(folders[head] / rest) if head in folders else "/nonexistent"

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_fetch_results_checks_each_file_and_falls_back(tmp_path, results_server, monkeypatch):
    from decs.data import sha256

    wanted = ["usps/decs/paper-seed0.json", "theory/sweep_cpu.json"]
    wanted = [w for w in wanted if w in results.manifest()["files"]]
    assert wanted
    # a wrong copy first: refused by its checksum, nothing left behind; the next source serves it
    monkeypatch.setattr(results, "_result_urls",
                        lambda rel: [f"{results_server}/bad/{rel}", f"{results_server}/missing/{rel}",
                                     f"{results_server}/good/{rel}"])
    assert results.fetch_results(tmp_path / "r", wanted) == []
    for rel in wanted:
        assert sha256(tmp_path / "r" / rel) == results.manifest()["files"][rel]["sha256"]
    # only wrong copies: each failure named, no file written
    monkeypatch.setattr(results, "_result_urls", lambda rel: [f"{results_server}/bad/{rel}"])
    failures = results.fetch_results(tmp_path / "s", wanted)
    assert len(failures) == len(wanted) and all("wrong sha256" in f for f in failures)
    assert not list((tmp_path / "s").rglob("*.json"))
    assert "not in this release's manifest" in results.fetch_results(tmp_path / "s", ["nope.json"])[0]


def test_an_installed_package_keeps_checkpoints_and_results_in_the_users_cache(tmp_path, monkeypatch):
    from decs import paths

    monkeypatch.setattr(paths, "REPO_ROOT", tmp_path / "site-packages")  # no pyproject.toml: installed
    for var in ("DECS_CACHE", "DECS_CHECKPOINTS", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert not paths.in_checkout()
    assert paths.checkpoints_root() == tmp_path / "home" / ".cache" / "decs" / "checkpoints"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert paths.cache_dir() == tmp_path / "xdg" / "decs"
    monkeypatch.setenv("DECS_CACHE", str(tmp_path / "drive"))
    assert paths.checkpoints_root() == tmp_path / "drive" / "checkpoints"
    monkeypatch.setenv("DECS_CHECKPOINTS", str(tmp_path / "ck"))
    assert paths.checkpoints_root() == tmp_path / "ck"
    monkeypatch.setattr(paths, "REPO_ROOT", Path(results.__file__).resolve().parent.parent)
    assert paths.in_checkout()
