"""The results tables are aggregated from run records, never typed in."""
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from decs import fetch, hadis, results, runs


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


def test_seed_std_is_the_population_spread_and_nan_for_one_run():
    import math

    import pandas as pd

    assert results.seed_std([0.775, 0.688, 0.597]) == pytest.approx(0.0726743, abs=1e-7)  # not 0.089 (n − 1)
    assert results.seed_std([0.5, 0.5]) == 0.0
    assert math.isnan(results.seed_std([0.9])) and math.isnan(results.seed_std([None]))
    frame = pd.DataFrame({"m": ["a", "a", "a", "b"], "acc": [0.775, 0.688, 0.597, 0.5]})
    out = frame.groupby("m").agg(s=("acc", results.seed_std))["s"]   # as the pages call it
    assert out["a"] == pytest.approx(results.mean_std([0.775, 0.688, 0.597])[1]) and math.isnan(out["b"])


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


def test_run_changes_reads_back_what_run_name_wrote():
    """The pages select ablations and variants by results.run_changes: it must read the changes
    run_name spells into the file name, and nothing for a run of the protocol."""
    from decs.config import get_config

    base = get_config("cpu")
    assert results.run_changes({"path": f"r/usps/decs/{runs.run_name(base, 2)}.json"}) == ""
    cfg = dataclasses.replace(base, precision="bf16")
    rec = {"path": f"r/usps/decs/{runs.run_name(cfg, 2)}.json"}
    assert results.run_changes(rec) == "precision=bf16" and not results.is_protocol_run(rec)
    two = dataclasses.replace(base, alpha=2.0, lam=0.1)
    assert results.run_changes({"path": f"r/{runs.run_name(two, 0)}.json"}) == "alpha=2.0+lam=0.1"
    assert results.run_changes({"method": "kmeans-raw"}) == ""   # a record in memory, no file


def _hadis_record(tmp: Path, dataset, profile, seed, acc, nmi, hsd=True, name=None, epochs=150,
                  minutes=20.0, gpu=None):
    """A HaDis run record as decs.hadis.run writes it (the fields the tables read)."""
    rec = {"dataset": dataset, "method": "hadis", "profile": profile, "seed": seed,
           "variant": hadis.variant_name(hsd),
           "final": {"acc": acc, "nmi": nmi, "ari": 0.1, "clusters_used": 10},
           "config": {"profile": profile, "epochs": epochs, "hsd": hsd},
           "wall_time_s": {"train": minutes * 60, "this_call": minutes * 60},
           "environment": {"cpu_count": 2, **({"gpu": gpu} if gpu else {})}}
    default = f"{profile}-seed{seed}" + ("" if hsd else "+hsd=False")
    path = tmp / dataset / "hadis" / f"{name or default}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec))
    return path


def _decs_dec_raw(tmp: Path):
    for seed, acc in enumerate([0.90, 0.92, 0.94]):
        _record(tmp, "usps", "decs", "cpu", seed, acc, nmi=acc - 0.05, best=acc + 0.01)
    _record(tmp, "usps", "dec", "cpu", 0, 0.80)
    _record(tmp, "usps", "kmeans-raw", "cpu", 0, 0.65)


def test_table_cell_tells_hadis_its_hsd_ablation_and_other_changes_apart():
    cell = results.table_cell
    assert cell({"method": "hadis", "path": "r/usps/hadis/cpu-seed0.json"}) == "hadis"
    assert cell({"method": "hadis", "path": "r/usps/hadis/cpu-seed0+hsd=False.json"}) == "propos"
    assert cell({"method": "hadis", "path": "r/usps/hadis/cpu-seed0+epochs=10+hsd=False.json"}) is None
    assert cell({"method": "hadis", "path": "r/usps/hadis/cpu-seed0+hsd=False+sigma=0.01.json"}) is None
    assert cell({"method": "decs", "path": "r/usps/decs/cpu-seed0+hsd=False.json"}) is None
    assert cell({"method": "decs", "path": "r/usps/decs/cpu-seed0+balance=1.0.json"}) is None
    assert cell({"method": "dec", "path": "r/usps/dec/cpu-seed1.json"}) == "dec"
    assert cell({"method": "kmeans-raw"}) == "kmeans-raw"   # a record in memory, no file


def test_hadis_cells_aggregate_their_own_files(tmp_path):
    _decs_dec_raw(tmp_path)
    hadis = [_hadis_record(tmp_path, "usps", "cpu", 0, 0.70, 0.80, minutes=20.0),
             _hadis_record(tmp_path, "usps", "cpu", 1, 0.80, 0.84, minutes=24.0)]
    propos = [_hadis_record(tmp_path, "usps", "cpu", s, acc, 0.60, hsd=False)
              for s, acc in ((0, 0.50), (1, 0.60), (2, 0.55))]
    # other changes of HaDis's settings, and a HaDis run of another profile: in no usps/cpu cell
    _hadis_record(tmp_path, "usps", "cpu", 0, 0.01, 0.01, name="cpu-seed0+epochs=10", epochs=10)
    _hadis_record(tmp_path, "usps", "cpu", 0, 0.02, 0.02, hsd=False, name="cpu-seed0+hsd=False+sigma=0.1")
    _hadis_record(tmp_path, "usps", "paper", 0, 0.99, 0.98, epochs=1000, gpu="NVIDIA H100")
    rows = results.summary_rows(results.load_records(tmp_path))
    assert [(r["dataset"], r["profile"]) for r in rows] == [("usps", "cpu"), ("usps", "paper")]
    usps, paper = rows
    assert usps["hadis_acc"] == (pytest.approx(0.75), pytest.approx(0.05), 2)
    assert usps["hadis_nmi"] == (pytest.approx(0.82), pytest.approx(0.02), 2)
    assert usps["propos_acc"] == (pytest.approx(0.55), pytest.approx(np.std([0.5, 0.6, 0.55])), 3)
    assert usps["propos_nmi"] == (pytest.approx(0.60), pytest.approx(0.0), 3)
    assert usps["hadis_wall_min"][:1] == (pytest.approx(22.0),)
    assert usps["hadis_epochs"] == [150] and usps["hadis_hardware"] == "2 CPU cores"
    assert set(usps["files"]) >= {str(p) for p in hadis + propos}
    assert not [f for f in usps["files"] if "+epochs" in f or "+sigma" in f]
    assert results.fmt(*usps["hadis_acc"]) == "0.750 ± 0.050 (2)"
    # a HaDis-only row: HaDis cells filled, every DECS and DEC cell empty
    assert paper["hadis_acc"] == (pytest.approx(0.99), 0.0, 1) and paper["propos_acc"][2] == 0
    assert paper["hadis_epochs"] == [1000] and paper["hadis_hardware"] == "NVIDIA H100"
    assert paper["seeds"] == [] and paper["hardware"] == "—"
    assert all(paper[k][2] == 0 for k in ("decs_acc", "decs_nmi", "dec_acc", "dec_nmi",
                                          "decs_best_acc", "kmeans_raw_acc", "decs_wall_min"))


def test_the_hsd_ablation_does_not_leak_into_the_hadis_cells(tmp_path):
    _hadis_record(tmp_path, "usps", "cpu", 0, 0.70, 0.80)
    rows = results.summary_rows(results.load_records(tmp_path))
    before = {k: rows[0][k] for k in ("hadis_acc", "hadis_nmi")}
    _hadis_record(tmp_path, "usps", "cpu", 0, 0.10, 0.20, hsd=False)
    _hadis_record(tmp_path, "usps", "cpu", 1, 0.30, 0.40, hsd=False)
    row = results.summary_rows(results.load_records(tmp_path))[0]
    assert {k: row[k] for k in before} == before == {"hadis_acc": (0.70, 0.0, 1),
                                                     "hadis_nmi": (0.80, 0.0, 1)}
    assert row["propos_acc"] == (pytest.approx(0.20), pytest.approx(0.10), 2)
    assert row["hadis_epochs"] == [150] and row["hadis_wall_min"][2] == 1  # HaDis's own runs only


def test_decs_and_dec_cells_ignore_hadis_and_changed_runs(tmp_path):
    _decs_dec_raw(tmp_path)
    base = results.summary_rows(results.load_records(tmp_path))
    _hadis_record(tmp_path, "usps", "cpu", 0, 0.10, 0.20)
    _hadis_record(tmp_path, "usps", "cpu", 0, 0.30, 0.40, hsd=False)
    _hadis_record(tmp_path, "usps", "cpu", 1, 0.30, 0.40, gpu="NVIDIA H200")
    _record(tmp_path, "usps", "decs", "cpu", 0, 0.10, name="cpu-seed0+balance=1.0")
    _record(tmp_path, "usps", "dec", "cpu", 0, 0.10, name="cpu-seed0+lam=0.0")
    _record(tmp_path, "usps", "decs", "cpu", 1, 0.10, name="cpu-seed1+hsd=False")
    rows = results.summary_rows(results.load_records(tmp_path))
    assert len(rows) == len(base) == 1
    old_keys = ("seeds", "decs_acc", "decs_nmi", "dec_acc", "dec_nmi", "decs_best_acc",
                "kmeans_embedding_acc", "kmeans_raw_acc", "decs_wall_min", "hardware")
    assert {k: rows[0][k] for k in old_keys} == {k: base[0][k] for k in old_keys}
    assert rows[0]["decs_acc"] == (pytest.approx(0.92), pytest.approx(np.std([0.90, 0.92, 0.94])), 3)
    assert rows[0]["hardware"] == "2 CPU cores"   # not the HaDis run's GPU
    assert rows[0]["hadis_hardware"] == "2 CPU cores, NVIDIA H200"
    assert not [f for f in rows[0]["files"] if "+balance" in f or "+lam" in f or "decs/cpu-seed1+" in f]


def test_committed_records_match_their_table():
    """Every number of the committed results table equals the aggregate of its record files."""
    for row in results.summary_rows(results.load_records()):  # as the chapter does
        files = [json.loads(Path(p).read_text()) for p in row["files"]]
        for method in ("decs", "dec"):
            accs = [f["final"]["acc"] for f in files if f["method"] == method]
            m, _, n = row[f"{method}_acc"]
            assert n == len(accs)
            if accs:
                assert m == pytest.approx(np.mean(accs))
        for cell, hsd in (("hadis", True), ("propos", False)):  # told apart by config, not name
            runs = [f for f in files if f["method"] == "hadis" and f["config"]["hsd"] is hsd]
            for metric in ("acc", "nmi"):
                m, _, n = row[f"{cell}_{metric}"]
                assert n == len(runs)
                if runs:
                    assert m == pytest.approx(np.mean([f["final"][metric] for f in runs]))
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
    rec["environment"]["torch_threads"] = 1   # one thread, said in the singular
    (tmp_path / "quiet.json").write_text(json.dumps(rec))
    assert results.load_benchmarks(tmp_path)[0]["hardware"] == "2 CPU cores, 1 thread"
    for row in results.load_benchmarks():  # the committed measurements say where they came from
        assert row["commit"] and row["pretrain_s_per_epoch"] > 0 and row["cluster_s_per_iteration"] > 0


def test_every_committed_record_with_model_files_rescores_to_its_final_accuracy():
    """`python -m decs evaluate --record` for each committed record whose model files are in the
    repository: sha256 checked, final ACC reproduced (within one sample on the CPU that trained it)."""
    from decs import data
    from decs.__main__ import evaluate_record
    from decs.paths import RESULTS
    from decs.results import load_records

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


def test_a_kept_cluster_of_a_few_samples_is_counted_as_nearly_emptied():
    def run(end, method="decs", seed=0):
        rec = _rec("usps", "cpu", method, seed, 0.9, 0.93, end)
        rec["history"].insert(0, {"cluster_sizes": [300, 300, 400]})      # the k-means start
        return rec

    assert results.nearly_emptied(run([598, 2, 400])) == [2]
    assert results.clusters_used(run([598, 2, 400])) == 3                 # in use, yet dying
    assert results.nearly_emptied(run([600, 0, 400])) == []               # emptied, not nearly
    assert results.nearly_emptied(run([290, 310, 400])) == []
    assert results.nearly_emptied(run([295, 5, 700]), share=0.001) == []  # 0.5 % is over 0.1 %
    recs = [run([598, 2, 400]), run([290, 310, 400], seed=1), run([300, 300, 400], "dec"),
            run([300, 300, 400], "dec", 1)]
    text = results.findings(recs)
    assert "0 empty a cluster; 1 keeps a cluster it shrank under 1 % of the images (final size 2)" in text
    assert "shrank" not in results.findings(recs[1:] + [run([290, 310, 400])])

def test_remedy_runs_label_each_run_and_mark_the_seeds_every_method_ran():
    def rec(ds, prof, method, seed, acc, sizes, change=""):
        r = _rec(ds, prof, method, seed, acc, 0.9, sizes)
        r["path"] = f"{prof}-seed{seed}{'+' + change if change else ''}.json"
        r["iterations"], r["wall_time_s"]["cluster"] = 100, 2.0
        return r

    recs = [rec("usps", "cpu", "decs", 0, 0.90, [5, 0, 5]), rec("usps", "cpu", "decs", 1, 0.95, [3, 3, 4]),
            rec("usps", "cpu", "dec", 0, 0.97, [3, 3, 4]), rec("usps", "cpu", "dec", 1, 0.98, [3, 3, 4]),
            rec("usps", "cpu", "decs", 0, 0.96, [4, 2, 4], "balance=1.0"),
            rec("usps", "cpu", "decs", 0, 0.91, [4, 2, 4], "form=paper"),      # an ablation: not a row
            rec("usps", "cpu", "dec", 0, 0.91, [4, 2, 4], "balance=1.0"),      # not a remedy of DEC
            rec("mnist", "cpu", "decs", 0, 0.5, [5, 5]), rec("mnist", "cpu", "dec", 0, 0.6, [5, 5])]
    rows = results.remedy_runs(recs)
    assert {r["dataset"] for r in rows} == {"usps"}              # no remedy run on mnist: no rows
    assert [(r["method"], r["seed"], r["common"]) for r in rows] == [
        ("DECS (as published)", 0, True), ("DECS (as published)", 1, False),
        ("DEC", 0, True), ("DEC", 1, False), ("DECS + balance (ours)", 0, True)]
    assert rows[0]["clusters used"] == 2 and rows[-1]["acc"] == 0.96
    assert rows[0]["ms per iteration"] == pytest.approx(20.0)
    assert results.remedy_runs(recs[:4]) == []


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

    from decs.paths import REPO_ROOT

    tool = subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "sync_results_manifest.py"), "--check"],
                          capture_output=True, text=True)
    assert tool.returncode == 0, tool.stdout + tool.stderr


@pytest.fixture
def results_server(tmp_path):
    """results/ of the checkout, served on 127.0.0.1, plus a folder whose files are all wrong."""
    import http.server
    import threading

    from decs.paths import RESULTS

    bad = tmp_path / "bad"
    for rel, entry in fetch.manifest()["files"].items():
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
    wanted = [w for w in wanted if w in fetch.manifest()["files"]]
    assert wanted
    # a wrong copy first: refused by its checksum, nothing left behind; the next source serves it
    monkeypatch.setattr(fetch, "result_urls",
                        lambda rel: [f"{results_server}/bad/{rel}", f"{results_server}/missing/{rel}",
                                     f"{results_server}/good/{rel}"])
    assert fetch.fetch_results(tmp_path / "r", wanted) == []
    for rel in wanted:
        assert sha256(tmp_path / "r" / rel) == fetch.manifest()["files"][rel]["sha256"]
    # only wrong copies: each failure named, no file written
    monkeypatch.setattr(fetch, "result_urls", lambda rel: [f"{results_server}/bad/{rel}"])
    failures = fetch.fetch_results(tmp_path / "s", wanted)
    assert len(failures) == len(wanted) and all("wrong sha256" in f for f in failures)
    assert not list((tmp_path / "s").rglob("*.json"))
    assert "not in this release's manifest" in fetch.fetch_results(tmp_path / "s", ["nope.json"])[0]


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


def _authors(tmp: Path, name, dataset="usps", weights=None, kept=None):
    rec = {"kind": "authors-tf", "dataset": dataset, "settings": {"pretrained_weights": weights},
           "kept_weights": kept, "start": {"acc": 0.9}, "their_final": {"acc": 0.95}}
    path = tmp / "authors-tf" / dataset / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec))


def test_authors_runs_are_told_apart_by_what_they_are_for(tmp_path):
    _authors(tmp_path, "e200-i3000")
    _authors(tmp_path, "speed-e20-i300")
    _authors(tmp_path, "ours-cpu-seed0-i3000", weights={"file": "w.h5", "ours": {"profile": "cpu", "seed": 0}})
    _authors(tmp_path, "e200-i30-keep", kept={"file": "k.h5"})
    _authors(tmp_path, "e50", dataset="mnist-test")
    _record(tmp_path, "usps", "decs", "cpu", 0, 0.9)          # ours: never among theirs
    runs = results.load_authors_runs(tmp_path)
    assert [(r["dataset"], r["name"], r["kind"]) for r in runs] == [
        ("mnist-test", "e50", "end to end"), ("usps", "e200-i30-keep", "network kept"),
        ("usps", "e200-i3000", "end to end"), ("usps", "ours-cpu-seed0-i3000", "given weights"),
        ("usps", "speed-e20-i300", "speed")]
    assert [r["name"] for r in results.load_authors_runs(tmp_path, "usps", kinds=("end to end",))] == ["e200-i3000"]
    assert results.load_records(tmp_path)[0]["method"] == "decs"   # and theirs never among ours
    with pytest.raises(ValueError, match="unknown kind"):
        results.load_authors_runs(tmp_path, kinds=("end-to-end",))


def test_printed_scores_drop_the_times_so_a_repeated_run_compares_equal():
    a = {"history": [{"iteration": 0, "acc": 0.9, "nmi": 0.8, "ari": 0.7, "time": 1.0},
                     {"iteration": 30, "acc": 0.91, "nmi": 0.81, "ari": 0.71, "time": 2.0}]}
    b = {"history": [{**h, "time": h["time"] + 5} for h in a["history"]]}
    assert results.printed_scores(a) == results.printed_scores(b) == (
        (0, 0.9, 0.8, 0.7), (30, 0.91, 0.81, 0.71))
    assert results.printed_scores(a, 1) == ((0, 0.9, 0.8, 0.7),)
    b["history"][1]["acc"] = 0.92
    assert results.printed_scores(a) != results.printed_scores(b)


def test_wall_seconds_sums_the_stages_a_record_has():
    assert results.wall_seconds({"wall_time_s": {"pretrain": 60.0, "kmeans": 1.0, "cluster": 59.0,
                                                 "this_call": 5.0, "note": "…"}}) == 120.0
    assert results.wall_seconds({"wall_time_s": {"train": 30.0, "this_call": 31.0, "note": "…"}}) == 30.0
    assert results.wall_seconds({"wall_time_s": {"total": 2.5}}) == 2.5
    with pytest.raises(KeyError, match="no wall time"):
        results.wall_seconds({"wall_time_s": {"this_call": 1.0}, "path": "r.json"})


def test_every_committed_record_has_a_wall_time_and_each_authors_run_a_kind():
    assert all(results.wall_seconds(r) > 0 for r in results.load_records())
    assert all(r["kind"] in results.AUTHORS_KINDS for r in results.load_authors_runs())


def _committed_results() -> tuple[Path, list[str]]:
    """The checkout's root and the files under results/ that git tracks (skips outside a checkout)."""
    import shutil
    import subprocess

    root = Path(results.__file__).resolve().parents[1]
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout: which files are committed is unknown")
    files = subprocess.run(["git", "ls-files", "-z", "results"], cwd=root, capture_output=True,
                           check=True).stdout.decode().split("\0")
    return root, [f for f in files if f and (root / f).exists()]


def test_committed_results_stay_under_30_mb():
    """Records and model files travel with every call to a lent GPU, together with the datasets
    and the rest of the tree, inside 64 MiB: the results may take 30 MB of it (DESIGN)."""
    root, files = _committed_results()
    sizes = {f: (root / f).stat().st_size for f in files}
    total = sum(sizes.values())
    largest = sorted(sizes, key=sizes.get)[-3:]
    assert total < 30e6, (f"results/ holds {total / 1e6:.1f} MB (largest: {largest}); keep model "
                          "files for seed 0 and what chapters load, and under 30 MB in all")


def test_record_json_keeps_the_content_and_writes_a_history_entry_per_line():
    from decs.files import record_json

    rec = {"final": {"acc": 0.5, "nmi": float("nan")}, "labels": [1, 2, 3], "empty": [], "none": {},
           "history": [{"iteration": 0, "cluster_sizes": [3, 0, 2], "loss": None},
                       {"iteration": 30, "cluster_sizes": [2, 1, 2], "note": "α"}],
           "nested": [[1, 2], {"a": {"b": [1]}}]}
    text = record_json(rec)
    assert json.dumps(json.loads(text)) == json.dumps(rec)           # NaN, None, unicode kept
    lines = text.splitlines()
    assert ' {"iteration": 0, "cluster_sizes": [3, 0, 2], "loss": null},' in [l[1:] for l in lines]
    assert '  "labels": [1, 2, 3],' not in lines and ' "labels": [1, 2, 3],' in lines
    assert len(text) < len(json.dumps(rec, indent=1))


def test_every_committed_json_file_is_in_the_record_layout():
    """What `python -m decs` writes (decs.files.record_json); an older file is rewritten, content
    unchanged, by tools/format_results.py."""
    from decs.files import record_json

    root, files = _committed_results()
    texts = {f: (root / f).read_text(encoding="utf-8") for f in files if f.endswith(".json")}
    off = [f for f, text in texts.items() if record_json(json.loads(text)) != text]
    assert not off, f"not in the record layout (run python tools/format_results.py): {off[:5]}"


def test_the_verdict_says_per_dataset_whether_decs_reproduces_from_the_protocol_records():
    def paper(ds, method, seed, acc, sizes, stopped=True):
        rec = _rec(ds, "paper", method, seed, acc, 0.9, sizes)
        rec["history"].insert(0, {"cluster_sizes": [300, 300, 400]})
        rec["config"]["maxiter"] = 20000
        rec.update(iterations=20000 if not stopped else 900, stopped_early=stopped,
                   best_label_selected={"acc": 0.95, "iteration": 560})
        return rec

    recs = [paper("usps", "decs", s, 0.985 + 0.002 * s, [300, 300, 400]) for s in range(3)]
    recs += [paper("mnist-test", "decs", 0, 0.885, [598, 2, 400]),
             paper("mnist-test", "dec", 0, 0.701, [300, 300, 400], stopped=False),
             _rec("mnist", "cpu", "decs", 0, 0.99, 0.9, [5, 5, 5])]  # cpu: not the protocol
    text = results.verdict(recs, authors=[], sweep=None)
    lines = {line.split("**")[1]: line for line in text.splitlines() if line.startswith("- **")}
    assert "reproduces** (3 seeds)" in lines["USPS — reproduces"] and "0.987 ± 0.002 (3)" in text
    assert "All 3 clusters kept in 3 of 3 runs" in lines["USPS — reproduces"]
    mt = lines["MNIST-test — does not reproduce"]
    assert "(1 seed so far)" in mt and "In 1 of 1 runs two classes end in one cluster" in mt
    assert "stopping rule never fired in 1 of 1 runs" in mt and "0.950 at iteration 560" in mt
    assert "YTF — not obtainable" in lines
    assert "MNIST, Fashion-MNIST — not run at the protocol yet" in lines   # a cpu record is not the protocol
    assert "± is the standard deviation over seeds" in text
    # within one point of the published ACC is "reproduces"; a point and a half below is not
    assert "MNIST-test — reproduces" in results.verdict(
        [paper("mnist-test", "decs", 0, 0.981, [300, 300, 400])], authors=[], sweep=None)
    assert "MNIST-test — does not reproduce" in results.verdict(
        [paper("mnist-test", "decs", 0, 0.975, [300, 300, 400])], authors=[], sweep=None)


def test_keep_rates_count_one_draw_per_seed_and_give_wilson_intervals():
    def ours(seed, sizes):
        rec = _rec("usps", "cpu", "decs", seed, 0.9, 0.93, sizes)
        rec["history"].insert(0, {"cluster_sizes": [300, 300, 400]})
        return rec

    def theirs(seed, acc, sizes=None):
        rec = {"dataset": "usps", "kind": "end to end", "their_final": {"acc": acc},
               "settings": {"pretrain_epochs": 200, "maxiter": 3000}}
        if seed is not None:
            rec["settings"]["seed_value"] = seed
        if sizes is not None:
            rec["final_cluster_sizes"] = sizes
        return rec

    recs = [ours(0, [598, 2, 400]), ours(1, [300, 300, 400]), ours(2, [600, 0, 400])]
    authors = [theirs(None, 0.986), theirs(None, 0.986),              # 2333 and its repeat: one draw
               theirs(1, 0.90, [300, 300, 400]), theirs(2, 0.80, [700, 0, 300])]
    rows = {r["code"]: r for r in results.keep_rates(recs, authors, class_counts=[300, 300, 400])}
    assert rows["ours"]["seeds"] == [0, 1, 2] and rows["ours"]["kept"] == 1   # a cluster of 2 is not kept
    assert rows["theirs"]["seeds"] == [1, 2, 2333] and rows["theirs"]["kept"] == 2
    # by ACC alone: kept when above 1 − (smallest class − 1 % of n)/n = 1 − (300 − 10)/1000 = 0.71
    assert results.kept_all_clusters(theirs(None, 0.72), [300, 300, 400])
    assert not results.kept_all_clusters(theirs(None, 0.70), [300, 300, 400])
    low, high = rows["ours"]["low"], rows["ours"]["high"]
    assert 0.06 < low < 0.062 and 0.79 < high < 0.793          # Wilson's interval for 1 of 3
    assert rows["ours"]["fisher_p"] == rows["theirs"]["fisher_p"] == 1.0
    with pytest.raises(ValueError, match="class counts"):
        results.kept_all_clusters(theirs(None, 0.9))


def test_the_keep_rate_conclusion_says_only_what_the_draws_allow():
    def rows(k1, n1, k2, n2):
        return [{"code": "ours", "seeds": list(range(n1)), "kept_seeds": list(range(k1)),
                 **results.keep_rate([True] * k1 + [False] * (n1 - k1))},
                {"code": "theirs", "seeds": list(range(n2)), "kept_seeds": list(range(k2)),
                 **results.keep_rate([True] * k2 + [False] * (n2 - k2))}]

    def with_p(r):
        from scipy.stats import fisher_exact

        p = fisher_exact([[r[0]["kept"], r[0]["draws"] - r[0]["kept"]], [r[1]["kept"], r[1]["draws"] - r[1]["kept"]]]).pvalue
        for row in r:
            row["fisher_p"] = p
        return r

    assert "cannot tell chance from cause yet" in results.keep_rate_conclusion(with_p(rows(1, 5, 1, 4)))
    same = results.keep_rate_conclusion(with_p(rows(1, 5, 2, 5)))
    assert "do not differ beyond chance" in same and "1 of 5 draws (95 % interval 0.04–0.62)" in same
    assert "by more than chance" in results.keep_rate_conclusion(with_p(rows(0, 8, 8, 8)))   # p = 0.0002


def test_the_start_or_loop_line_weighs_the_swaps_against_the_keep_rates():
    def ours(ds, seed, acc, sizes, name=None):
        rec = _rec(ds, "cpu", "decs", seed, acc, 0.93, sizes)
        rec["history"].insert(0, {"cluster_sizes": [300, 300, 400]})
        rec["path"] = f"{name or f'cpu-seed{seed}'}.json"
        return rec

    def theirs(ds, seed, acc, sizes=None, weights=None):
        rec = {"dataset": ds, "kind": "given weights" if weights else "end to end", "their_final": {"acc": acc},
               "settings": {"pretrain_epochs": None if weights else 200, "maxiter": 3000, "seed_value": seed,
                            "pretrained_weights": weights}}
        if sizes:
            rec["final_cluster_sizes"] = sizes
        return rec

    lost, kept = [600, 0, 400], [300, 300, 400]
    recs = [ours("usps", s, 0.66, lost) for s in range(4)] + [ours("usps", 4, 0.99, kept)]
    recs += [ours("usps", s, 0.99, kept, name=f"cpu-seed{s}+start=theirs-e200") for s in range(3)]
    recs += [ours("mnist-test", s, 0.66, lost, name=n) for s in range(2) for n in (f"cpu-seed{s}", f"cpu-seed{s}+start=theirs-e200")]
    authors = [theirs("usps", s, 0.66, lost) for s in (1, 2, 3, 4)] + [theirs("usps", 2333, 0.99, kept)]
    authors += [theirs("usps", None, 0.66, weights={"ours": {"seed": 0}}), theirs("mnist-test", 2333, 0.66)]
    line = next(x for x in results.verdict(recs, authors, sweep=None).splitlines() if "Start or loop" in x)
    usps = line.split("on USPS")[1]
    assert "our network in their loop at 0.660 (1)" in usps and "the network decides, not the loop" in usps
    assert "ours keep every cluster in 1 of 5 draws" in usps and "theirs in 1 of 5 draws" in usps
    assert "do not differ beyond chance" in usps and "set_seed(2333), the seed their code runs with" in usps
    mt = line.split("on MNIST-test")[1].split("on USPS")[0]
    assert "all clusters kept in 0 of 2" in mt and "their own loop ends no higher" in mt
    assert "network decides" not in mt   # no swap the other way round on MNIST-test


def test_mixed_clusters_find_a_pair_split_across_two_clusters():
    """Two clusters each holding 4s and 9s (majorities 4 and 9, so no class is without a cluster of its
    own) are found; a cluster with a 20 % minority is not, at the default share of 25 %."""
    conf = np.zeros((4, 10), dtype=int)
    conf[0, 4], conf[0, 9] = 626, 481     # cluster 0: 4s and 9s
    conf[1, 4], conf[1, 9] = 333, 460     # cluster 1: the same pair
    conf[2, 3], conf[2, 5] = 800, 200     # cluster 2: a 20 % minority of 5s
    conf[3, 1] = 1000
    assert results.mixed_clusters(conf) == [(0, 4, 9), (1, 4, 9)]
    assert results.mixed_clusters(conf, share=0.2) == [(0, 4, 9), (1, 4, 9), (2, 3, 5)]
    assert results.mixed_clusters(np.zeros((2, 3))) == []


def test_the_full_length_line_says_what_the_authors_network_reaches_at_the_protocol():
    def paper(seed, acc, sizes, name=None):
        rec = _rec("mnist-test", "paper", "decs", seed, acc, 0.83, sizes)
        rec["history"].insert(0, {"cluster_sizes": [300, 300, 400]})
        rec["path"] = f"{name or f'paper-seed{seed}'}.json"
        return rec

    lost, kept = [600, 0, 400], [300, 300, 400]
    their_pretraining = {"dataset": "mnist-test", "kind": "network kept", "their_final": {"acc": 0.864},
                         "settings": {"pretrain_epochs": 500, "maxiter": 1}, "kept_weights": {"sha256": "e500"}}
    theirs_two_processes = {"dataset": "mnist-test", "kind": "given weights", "their_final": {"acc": 0.889},
                            "settings": {"pretrain_epochs": None, "maxiter": 20000,
                                         "pretrained_weights": {"from": "their run_exp.py, 500 epochs", "ours": None,
                                                                "sha256": "e500"}}}
    from_their_200 = {**theirs_two_processes, "their_final": {"acc": 0.99}, "settings": {
        **theirs_two_processes["settings"], "pretrained_weights": {"ours": None, "sha256": "e200"}}}
    ours_in_theirs = {**theirs_two_processes, "their_final": {"acc": 0.5},
                      "settings": {**theirs_two_processes["settings"], "pretrained_weights": {"ours": {"seed": 1}}}}
    own = [paper(0, 0.885, lost), paper(1, 0.887, lost)]
    # neither ours in their loop nor their loop from weights no 500-epoch run of theirs kept counts
    assert results.at_full_length(own, [ours_in_theirs, from_their_200, their_pretraining]) is None
    same = results.at_full_length(own + [paper(0, 0.886, lost, "paper-seed0+start=theirs-e500")],
                                  [theirs_two_processes, ours_in_theirs, from_their_200, their_pretraining])
    assert "on MNIST-test the authors' network in our loop ends at ACC 0.886 (all clusters kept in 0 of 1)" in same
    assert "their own code (pretraining and clustering as two processes) at 0.889 (1)" in same
    assert "ours at 0.886 ± 0.001 (2)" in same and "no run reaches the published 0.990" in same
    assert "none ends above ours" in same and "differs" not in same
    apart = results.at_full_length(own + [paper(0, 0.991, kept, "paper-seed0+start=theirs-e500")], [])
    assert "1 of 1 runs reach the published 0.990 and none of ours does" in apart
    verdict = results.verdict(own + [paper(0, 0.991, kept, "paper-seed0+start=theirs-e500")], [], sweep=None)
    assert "At the paper's protocol (500 pretraining epochs, 20,000 iterations)" in verdict


def test_threads_used_names_each_process_only_where_they_differ():
    """Issue 27, honest wall time: the threads a run trained on, from wall_time_s.threads."""
    one = {"wall_time_s": {"threads": {"pretrain": [1, 1], "cluster": [1]}}}
    assert results.threads_used(one) == "1 thread"
    mixed = {"wall_time_s": {"threads": {"train": [None, None, 2]}}}
    assert results.threads_used(mixed) == "threads by process, train: ?, ?, 2"
    parts = {"wall_time_s": {"threads": {"pretrain": [1], "cluster": [1, 2]}}}
    assert results.threads_used(parts) == "threads by process, pretrain: 1; cluster: 1, 2"
    # older records: the threads of the process that wrote it
    assert results.threads_used({"wall_time_s": {}, "environment": {"torch_threads": 2}}) == "2 threads"
    assert results.threads_used({"wall_time_s": {}, "environment": {}}) == "threads not recorded"
