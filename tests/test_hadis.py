"""HaDis (decs.hadis): each loss against a hand computation, gradients against gradcheck, the
EMA teacher, the augmentations, the training loop's resume to the identical result, bad inputs."""
import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

import decs.files
from decs import data, hadis
from decs.hadis import (augment_digits, dsa_loss, ema_update, fit_hadis, get_hadis_config, hsd_loss, hsd_terms,
                        learning_rate, pcl_loss, prototypes, run_name)
from decs.device import make_generator

pytestmark = pytest.mark.usefixtures("one_thread")


def _unit(deg: float) -> list[float]:
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]


def _chord(deg: float) -> float:
    """Distance between two unit vectors deg degrees apart."""
    return 2 * math.sin(math.radians(abs(deg)) / 2)


# ------------------------------------------------------------------------------------ DSA
def test_dsa_hand_computation():
    p = torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    k = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    # cosines 1, 0, 1/√2 → −(2/3)(1 + 0 + 1/√2)
    assert dsa_loss(p, k).item() == pytest.approx(-(2 / 3) * (1 + 1 / math.sqrt(2)), abs=1e-6)
    assert dsa_loss(k, k).item() == pytest.approx(-2.0, abs=1e-6)  # perfect alignment: the minimum


# ------------------------------------------------------------------------------------ HSD
def _hsd_reference(k, p, tau):
    """HSD row by row in plain Python, from the issue's definitions."""
    k = [[v / math.hypot(*r) for v in r] for r in k]
    p = [[v / math.hypot(*r) for v in r] for r in p]
    dist = lambda a, b: math.sqrt(max(sum((x - y) ** 2 for x, y in zip(a, b)), 1e-12))
    total = 0.0
    for i in range(len(k)):
        dt = [dist(k[i], k[j]) for j in range(len(k))]
        d = [dist(k[i], p[j]) for j in range(len(k))]
        neg = [j for j in range(len(k)) if dt[j] > d[i]]
        pos = [j for j in range(len(k)) if j not in neg]
        w_n = d_an = 0.0
        if neg:
            an = min(neg, key=lambda j: d[j])
            d_an, w_n = d[an], max(0.0, dt[an] - d[an])
        ap = max(pos, key=lambda j: d[j])
        d_ap, w_p = d[ap], max(0.0, d[ap] - dt[ap])
        x = (w_p * d_ap - w_n * d_an) / tau
        total += math.log1p(math.exp(x))
    return total / len(k)


def test_hsd_weights_on_a_constructed_case():
    # teacher at 0° and 60° (chord 1); student predictions at 30° and 40°
    k = torch.tensor([_unit(0), _unit(60)], dtype=torch.float64)
    p = torch.tensor([_unit(30), _unit(40)], dtype=torch.float64)
    t = hsd_terms(k, p)
    # row 0: D_00 = chord(30°) < D^t_01 = 1, so sample 1 is a negative; it sits at D_01 = chord(40°),
    # nearer than in the teacher (1): w_n = 1 − chord(40°) > 0, HSD pushes it away.
    assert t["negatives"][0].tolist() == [False, True]
    assert t["an"][0] == 1 and t["d_an"][0].item() == pytest.approx(_chord(40))
    assert t["w_n"][0].item() == pytest.approx(1 - _chord(40))
    # its only positive is itself, at chord(30°) in the student and 0 in the teacher: pulled in
    assert t["ap"][0] == 0 and t["w_p"][0].item() == pytest.approx(_chord(30) - 1e-6)
    # row 1: D_11 = chord(20°) < D^t_10 = 1: sample 0 is a negative at D_10 = chord(30°)
    assert t["w_n"][1].item() == pytest.approx(1 - _chord(30))
    assert t["w_p"][1].item() == pytest.approx(_chord(20) - 1e-6)
    expected = np.mean([math.log1p(math.exp(((_chord(30) - 1e-6) * _chord(30) - (1 - _chord(40)) * _chord(40)) / 0.5)),
                        math.log1p(math.exp(((_chord(20) - 1e-6) * _chord(20) - (1 - _chord(30)) * _chord(30)) / 0.5))])
    assert hsd_loss(k, p, 0.5).item() == pytest.approx(expected, abs=1e-9)
    assert hsd_loss(k, p, 0.5).item() == pytest.approx(_hsd_reference(k.tolist(), p.tolist(), 0.5), abs=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_hsd_against_row_by_row_reference(seed):
    g = torch.Generator().manual_seed(seed)
    k, p = torch.randn(7, 3, generator=g, dtype=torch.float64), torch.randn(7, 3, generator=g, dtype=torch.float64)
    for tau in (0.5, 0.2):
        assert hsd_loss(k, p, tau).item() == pytest.approx(_hsd_reference(k.tolist(), p.tolist(), tau), abs=1e-9)


def test_hsd_stops_pulling_and_pushing_when_the_student_matches_the_teacher():
    k = torch.tensor([_unit(0), _unit(60), _unit(150)], dtype=torch.float64)
    p = k.clone().requires_grad_(True)
    t = hsd_terms(k, p)
    assert torch.all(t["w_p"] < 1e-5) and torch.all(t["w_n"] == 0)
    loss = hsd_loss(k, p)
    loss.backward()
    assert loss.item() == pytest.approx(math.log(2), abs=1e-5)  # softplus(0)
    assert p.grad.abs().max() < 1e-5  # nothing pulled, nothing pushed


def test_hsd_stops_pushing_a_negative_already_farther_than_in_the_teacher():
    # teacher 0° and 60°; student's prediction for sample 1 at 120°, farther from k_0 than k_1 is
    k = torch.tensor([_unit(0), _unit(60)], dtype=torch.float64)
    p = torch.tensor([_unit(0), _unit(120)], dtype=torch.float64)
    t = hsd_terms(k, p)
    assert t["an"][0] == 1 and t["w_n"][0] == 0  # D_01 = chord(120°) > D^t_01 = 1
    # and pulls a positive that is farther than in the teacher, pushes a negative that is nearer
    p2 = torch.tensor([_unit(20), _unit(10)], dtype=torch.float64, requires_grad=True)
    t2 = hsd_terms(k, p2)
    assert t2["w_p"][0] > 0 and t2["w_n"][0] > 0
    hsd_loss(k, p2).backward()
    with torch.no_grad():  # a small gradient step moves p_0 towards k_0 and p_1 away from k_0
        q = F.normalize(p2 - 0.01 * p2.grad, dim=1)
        assert torch.dist(q[0], k[0]) < torch.dist(F.normalize(p2[0], dim=0), k[0])
        assert torch.dist(q[1], k[0]) > torch.dist(F.normalize(p2[1], dim=0), k[0])


def test_hsd_row_without_negatives_contributes_only_its_pull():
    k = torch.tensor([_unit(0), _unit(1)], dtype=torch.float64)  # teacher: both nearly the same
    p = torch.tensor([_unit(90), _unit(91)], dtype=torch.float64)  # student: far from both
    t = hsd_terms(k, p)
    assert not t["negatives"].any() and torch.all(t["w_n"] == 0)
    assert hsd_loss(k, p).item() == pytest.approx(_hsd_reference(k.tolist(), p.tolist(), 0.5), abs=1e-9)


# ------------------------------------------------------------------------------------ PCL
def test_pcl_hand_computation():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]], dtype=torch.float64)
    k = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, -1.0]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1])
    cq = prototypes(q, labels, 3)
    s = 1 / math.sqrt(2)
    assert torch.allclose(cq, torch.tensor([[s, s], [-s, -s], [0, 0]], dtype=torch.float64))
    # each present cluster: positive c^q_l·c^k_l/τ = (1/√2)/0.5 = √2, negative c^q_0·c^q_1/τ = −2;
    # cluster 2 is absent from the batch and left out
    expected = math.log(1 + math.exp(-2 - math.sqrt(2)))
    assert pcl_loss(q, k, labels, 3, 0.5).item() == pytest.approx(expected, abs=1e-12)
    # the authors' code keeps the absent cluster in the denominator with logit −10
    authors = math.log(math.exp(math.sqrt(2)) + math.exp(-2) + math.exp(-10)) - math.sqrt(2)
    assert pcl_loss(q, k, labels, 3, 0.5, absent_logit=-10).item() == pytest.approx(authors, abs=1e-12)


def test_pcl_single_cluster_batch_is_zero():
    q, k = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    assert pcl_loss(q, k, torch.full((5,), 2), 4).item() == pytest.approx(0.0, abs=1e-12)


# ------------------------------------------------------------------------------ gradients
def test_gradcheck_all_losses():
    g = torch.Generator().manual_seed(0)
    p = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    k = F.normalize(torch.randn(6, 4, generator=g, dtype=torch.float64), dim=1)
    q = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    kq = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1, 2, 0])
    assert gradcheck(lambda a: dsa_loss(a, k), (p,))
    # HSD's weights carry no gradient (stop-gradient), so a finite difference of hsd_loss itself
    # would also move them: check the surrogate with the weights and indices frozen, and that
    # autograd through hsd_loss gives exactly that surrogate's gradient.
    t = hsd_terms(k, p)
    rows = torch.arange(6)

    def frozen(a):
        a = F.normalize(a, dim=1)
        d_an = (k - a[t["an"]]).norm(dim=1)
        d_ap = (k - a[t["ap"]]).norm(dim=1)
        keep = t["negatives"].any(1)  # rows without negatives: w_n = 0, and the 10⁵ fill has no gradient
        return F.softplus((t["w_p"] * d_ap - torch.where(keep, t["w_n"] * d_an, 0 * d_an)) / 0.5).mean()

    assert gradcheck(frozen, (p,))
    (g1,) = torch.autograd.grad(hsd_loss(k, p, 0.5), p)
    (g2,) = torch.autograd.grad(frozen(p), p)
    assert torch.allclose(g1, g2, atol=1e-10)
    assert gradcheck(lambda a, b: pcl_loss(a, b, labels, 4, 0.5), (q, kq))
    assert gradcheck(lambda a, b: pcl_loss(a, b, labels, 4, 0.5, absent_logit=-10.0), (q, kq))


# ------------------------------------------------------------------------------------ EMA
def test_ema_update():
    torch.manual_seed(0)
    student, teacher = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2)), None
    teacher = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    teacher[1].running_mean.fill_(7.0)
    before = [p.clone() for p in teacher.parameters()]
    ema_update(teacher, student, 0.9)
    for b, t, s in zip(before, teacher.parameters(), student.parameters()):
        assert torch.allclose(t, 0.9 * b + 0.1 * s)
    assert torch.all(teacher[1].running_mean == 7.0)  # the teacher keeps its own statistics
    ema_update(teacher, student, 1.0)
    assert all(torch.allclose(t, 0.9 * b + 0.1 * s) for b, t, s in zip(before, teacher.parameters(), student.parameters()))
    ema_update(teacher, student, 0.0)
    assert all(torch.equal(t, s) for t, s in zip(teacher.parameters(), student.parameters()))
    with pytest.raises(ValueError, match="same architecture"):
        ema_update(torch.nn.Linear(3, 3), student, 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ema_update(teacher, student, 1.5)


# ---------------------------------------------------------------------------- augmentation
def test_augment_digits_is_per_image_seeded_and_in_range():
    x = torch.zeros(64, 1, 16, 16)
    x[:, :, 4:12, 6:10] = 1.0
    a1 = augment_digits(x, make_generator(torch.device("cpu"), 3))
    a2 = augment_digits(x, make_generator(torch.device("cpu"), 3))
    assert torch.equal(a1, a2) and a1.shape == x.shape
    assert a1.min() >= 0 and a1.max() <= 1
    assert len({tuple(v.flatten().tolist()) for v in a1}) > 32  # each image its own draw
    ident = augment_digits(x, None, crop_scale=(1.0, 1.0), rotation=0.0, stroke=0.0, ratio=(1.0, 1.0))
    assert torch.allclose(ident, x, atol=1e-5)
    with pytest.raises(ValueError, match="N×C×H×W"):
        augment_digits(torch.zeros(4, 16))


# ------------------------------------------------------------------- schedule and profiles
def test_schedule_and_profiles():
    cfg = get_hadis_config("paper")
    assert (cfg.epochs, cfg.batch_size, cfg.warmup_epochs, cfg.ema, cfg.pcl_weight) == (1000, 256, 50, 0.996, 0.1)
    assert learning_rate(cfg, 0) == 0 and learning_rate(cfg, 25) == pytest.approx(0.025)
    assert learning_rate(cfg, 50) == pytest.approx(0.05)
    assert learning_rate(cfg, 1050) == pytest.approx(0.0, abs=1e-12)
    assert get_hadis_config("cpu").epochs == 150
    assert run_name(get_hadis_config("cpu", hsd=False), 2) == "cpu-seed2+hsd=False"
    assert run_name(get_hadis_config("ci"), 0) == "ci-seed0"


# ------------------------------------------------------------------------ training loop
def _tiny(**changes):
    return get_hadis_config("ci", **{"epochs": 3, "warmup_epochs": 1, "batch_size": 40, "final_n_init": 1, **changes})


class _Interrupt(Exception):
    pass


def test_interrupted_run_resumes_to_identical_result(blobs, tmp_path):
    x, y = torch.as_tensor(blobs[0]), blobs[1]
    cfg = _tiny()
    full = fit_hadis(x, 3, cfg, seed=1, y=y, checkpoint=tmp_path / "a.pt", progress=False)
    assert [h["epoch"] for h in full.history] == [0, 1, 2, 3]
    assert {"acc", "nmi", "cluster_sizes", "dsa", "hsd", "pcl", "lr"} <= set(full.history[-1])

    def stop(rec):
        if rec["epoch"] == 2:
            raise _Interrupt

    with pytest.raises(_Interrupt):  # after the checkpoint of epoch 1, before that of epoch 2
        fit_hadis(x, 3, cfg, seed=1, y=y, checkpoint=tmp_path / "b.pt", progress=False, on_epoch=stop)
    resumed = fit_hadis(x, 3, cfg, seed=1, y=y, checkpoint=tmp_path / "b.pt", progress=False)
    assert full.history == resumed.history
    assert (full.processes, resumed.processes) == (1, 2)   # the record's wall_time_s.processes
    assert full.commits == resumed.commits == [decs.files.this_commit()]   # environment.commits
    n = torch.get_num_threads()
    assert (full.threads, resumed.threads) == ([n], [n, n])   # wall_time_s.threads
    assert np.array_equal(full.labels, resumed.labels)
    for (name, a), b in zip(full.net.state_dict().items(), resumed.net.state_dict().values()):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match="other settings"):
        fit_hadis(x, 3, cfg.replace(hsd=False), seed=1, checkpoint=tmp_path / "b.pt", progress=False)


def test_without_hsd_is_propos(blobs):
    x, y = torch.as_tensor(blobs[0]), blobs[1]
    res = fit_hadis(x, 3, _tiny(hsd=False, epochs=1), seed=0, y=y, progress=False)
    assert res.history[-1]["hsd"] is None and res.labels.shape == (len(x),)


def test_bad_inputs():
    k = torch.randn(4, 3)
    with pytest.raises(ValueError, match="same shape"):
        dsa_loss(torch.randn(4, 2), k)
    with pytest.raises(ValueError, match="same shape"):
        hsd_loss(k, torch.randn(3, 3))
    with pytest.raises(ValueError, match="tau must be positive"):
        hsd_loss(k, k, tau=0)
    with pytest.raises(ValueError, match="lie in"):
        pcl_loss(k, k, torch.tensor([0, 1, 2, 5]), 3)
    with pytest.raises(ValueError, match="integer pseudo-labels"):
        pcl_loss(k, k, torch.tensor([0.0, 1, 2, 2]), 3)
    with pytest.raises(ValueError, match="empty"):
        dsa_loss(torch.zeros(0, 3), torch.zeros(0, 3))
    with pytest.raises(ValueError, match="unknown HaDis config"):
        get_hadis_config("ci", maxiter=3)
    with pytest.raises(ValueError, match="unknown profile"):
        get_hadis_config("gpu")
    with pytest.raises(ValueError, match="crop_scale"):
        get_hadis_config("ci", crop_scale=(0.0, 1.0))
    with pytest.raises(ValueError, match="n_clusters"):
        fit_hadis(torch.rand(10, 1, 8, 8), 11, _tiny(), progress=False)
    with pytest.raises(ValueError, match="images N×C×H×W or feature vectors"):
        hadis.make_network((8, 8), _tiny())
    with pytest.raises(ValueError, match="needs labels"):
        hadis.run(torch.rand(10, 1, 8, 8), None, _tiny())


@pytest.mark.skipif(not data.is_available("usps"), reason=f"usps files not found under {data.data_root()}: set DECS_DATA")
def test_command_line_writes_a_record_and_refuses_to_overwrite(tmp_path):
    env = {**os.environ, "DECS_CHECKPOINTS": str(tmp_path / "ck"), "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-m", "decs", "train", "--dataset", "usps", "--profile", "ci", "--method", "hadis",
            "--set", "subset=200", "epochs=2", "hsd=False", "--results", str(tmp_path / "res"), "--quiet",
            "--model-files", "all"]
    repo = Path(__file__).resolve().parent.parent
    out = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True, timeout=3600)
    assert out.returncode == 0, out.stderr
    path = tmp_path / "res" / "usps" / "hadis" / "ci-seed0+subset=200+epochs=2+hsd=False.json"
    rec = json.loads(path.read_text())
    assert rec["method"] == "hadis" and rec["config"]["hsd"] is False and rec["n_samples"] == 200
    assert [h["epoch"] for h in rec["history"]] == [0, 1, 2] and rec["command"].startswith("python -m decs train")
    assert {"commit", "device", "torch"} <= set(rec["environment"]) and rec["wall_time_s"]["train"] > 0
    # the model file re-scores the record: teacher features, nearest k-means centre
    net, centers = hadis.load_model_file(rec, tmp_path / "res")
    x, y = data.load("usps", subset=200, seed=0)
    labels = torch.cdist(net.features(x), centers).argmin(1).numpy()
    from decs.metrics import evaluate
    assert evaluate(y.numpy(), labels)["acc"] == rec["final"]["acc"]
    (tmp_path / "res" / rec["model_files"]["final"]["path"]).write_bytes(b"changed")
    with pytest.raises(ValueError, match="sha256"):
        hadis.load_model_file(rec, tmp_path / "res")
    again = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True, timeout=3600)
    assert again.returncode != 0 and "--replace" in again.stderr


# ------------------------------------------------------------------------------ estimator
def test_estimator_api(blobs):
    from decs.estimator import HaDis

    x, _ = blobs
    est = HaDis(n_clusters=3, random_state=0, epochs=2, warmup_epochs=1, batch_size=40, profile="ci")
    assert est.fit(x) is est and est.get_params()["hsd"] is True
    assert est.network_ == "conv" and est.labels_.shape == (len(x),) and est.n_iter_ == 2
    assert est.cluster_centers_.shape == (3, 32) and est.transform(x).shape == (len(x), 32)
    assert np.allclose(np.linalg.norm(est.transform(x), axis=1), 1, atol=1e-5)
    assert np.array_equal(est.predict(x), est.labels_)
    assert np.allclose(est.predict_proba(x).sum(1), 1, atol=1e-5)
    assert len(est.history_) == 3 and est.clusters_used_ == len(np.unique(est.labels_))
    with pytest.warns(UserWarning, match="HaDis ended with 1 of its 3 clusters empty"):
        est._warn_if_degenerate(np.array([60, 60, 0]), np.array([40, 40, 40]))
    with pytest.raises(ValueError, match="n_clusters"):
        HaDis(n_clusters=0, profile="ci").fit(x)


def test_longer_runs_pairs_runs_that_differ_only_in_length():
    """hadis.longer_runs: the paper profile's 1,000 epochs pair with the longest shorter run of the
    same dataset, seed and settings; another seed, the ablation without HSD and a run with a
    changed learning rate are not length-only pairs."""
    def rec(profile, epochs, warmup, seed=0, **changes):
        cfg = {**dataclasses.asdict(hadis.get_hadis_config(profile, epochs=epochs, warmup_epochs=warmup)),
               **changes}
        return {"dataset": "usps", "seed": seed, "epochs": epochs, "config": cfg, "name": (profile, epochs, changes)}

    cpu, cpu450, paper = rec("cpu", 150, 8), rec("cpu", 450, 23), rec("paper", 1000, 50)
    others = [rec("cpu", 150, 8, seed=1), rec("paper", 1000, 50, hsd=False), rec("paper", 1000, 50, lr=0.1)]
    pairs = hadis.longer_runs([paper, cpu, cpu450, *others])
    assert [(a["name"], b["name"]) for a, b in pairs] == [(paper["name"], cpu450["name"]),
                                                          (cpu450["name"], cpu["name"])]
    assert hadis.longer_runs([paper, *others]) == []


def test_more_restarts_pairs_runs_that_differ_only_in_kmeans_restarts():
    """hadis.more_restarts: a run with ten k-means restarts per epoch pairs with the run of one
    restart of the same dataset, seed and settings, and with nothing else (another seed, another
    length, the ablation without HSD)."""
    def rec(seed=0, **changes):
        cfg = {**dataclasses.asdict(hadis.get_hadis_config("cpu")), **changes}
        return {"dataset": "usps", "seed": seed, "config": cfg, "name": (seed, tuple(sorted(changes)))}

    one, ten = rec(), rec(kmeans_n_init=10)
    others = [rec(seed=1), rec(epochs=450), rec(hsd=False)]
    pairs = hadis.more_restarts([one, ten, *others])
    assert [(a["name"], b["name"]) for a, b in pairs] == [(ten["name"], one["name"])]
    assert hadis.more_restarts([ten, *others]) == []
    ten_off = rec(kmeans_n_init=10, hsd=False)   # the ablation pairs with the ablation only
    assert [(a["name"], b["name"]) for a, b in hadis.more_restarts([one, ten_off, *others])] == [
        (ten_off["name"], others[2]["name"])]
