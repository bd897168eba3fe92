"""Tests of decs.theory: the hand-derived gradients of L_c, the corrected bound of Theorem 1
(property-based, over random admissible inputs), the region where the paper's bound is proved to
hold, and the saved counterexamples to the paper's bound (book chapter book/theorem1)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from decs import theory as T
from decs.stability import gradient_bound, otsu_threshold, soft_assign

RESULTS = Path(__file__).resolve().parent.parent / "results" / "theory"
COUNTEREXAMPLES = RESULTS / "counterexamples"
TOL = 1e-9  # relative slack for floating point in "≤" checks


def log_uniform(lo, hi):
    return st.floats(math.log(lo), math.log(hi)).map(math.exp)


@st.composite
def cases(draw, n_max: int = 40, t_strategy=None):
    """An admissible input: n ≥ 2, 2 ≤ k ≤ 50, α in [0.01, 100], λ in {0} ∪ [0.004, 10], t in (0, 1),
    both forms, one of the sampler's geometries (one-hot, uniform, mixed, kink, otsu)."""
    n = draw(st.integers(2, n_max))
    k = draw(st.integers(2, 50))
    d = draw(st.integers(1, 10))
    alpha = draw(log_uniform(0.01, 100.0))
    lam = draw(st.one_of(st.just(0.0), log_uniform(0.004, 10.0)))
    t = draw(t_strategy if t_strategy is not None else st.floats(1e-3, 1 - 1e-3))
    form = draw(st.sampled_from(["paper", "code"]))
    regime = draw(st.sampled_from(T.REGIMES))
    seed = draw(st.integers(0, 2**32 - 1))
    return T.sample_case(np.random.default_rng(seed), n=n, k=k, d=d, form=form, regime=regime,
                         alpha=alpha, lam=lam, t=t)


# ------------------------------------------------------------------------------------ gradients
@settings(max_examples=40, deadline=None)
@given(cases(n_max=24))
def test_hand_derived_gradients_equal_autograd(c):
    _, gz, gm = T.autograd_gradients(c.z, c.m, c.alpha, c.lam, c.t, c.form)
    az, am = T.analytic_gradients(c.z, c.m, c.alpha, c.lam, c.t, c.form)
    # L is O(1): below 1e-15 a gradient entry is round-off (e.g. a sample 200 units from every
    # centroid, whose gradient autograd gives as 0 and the formula as 3e-19).
    scale = float(max(gz.abs().max(), gm.abs().max()))
    assert torch.allclose(az, gz, rtol=1e-7, atol=1e-9 * scale + 1e-15)
    assert torch.allclose(am, gm, rtol=1e-7, atol=1e-9 * scale + 1e-15)


def test_gradients_sum_to_zero():
    # L_c depends only on differences z_i − m_j: moving everything together changes nothing.
    c = T.sample_case(np.random.default_rng(3), n=9, k=4, d=3, form="code", regime="mixed")
    _, gz, gm = T.autograd_gradients(c.z, c.m, c.alpha, c.lam, c.t, c.form)
    assert torch.allclose(gz.sum(0) + gm.sum(0), torch.zeros(3, dtype=torch.float64), atol=1e-12)


# --------------------------------------------------------------------------- the corrected bound
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_corrected_bound_holds_for_every_block(c):
    rep = T.bound_report(c.z, c.m, c.alpha, c.lam, c.t, c.form)
    for block in T.BLOCKS:
        assert rep["ratio_corrected"][block] <= 1.0 + TOL, (block, c.params(), rep["ratio_corrected"])


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(n_max=20_000))
def test_corrected_bound_holds_for_large_batches(c):
    rep = T.bound_report(c.z, c.m, c.alpha, c.lam, c.t, c.form)
    assert max(rep["ratio_corrected"].values()) <= 1.0 + TOL, (c.params(), rep["ratio_corrected"])


@settings(max_examples=40, deadline=None)
@given(cases(n_max=24))
def test_envelope_bounds_each_embedding(c):
    """||∂L/∂z_i|| / M ≤ ρ(q_i) for every sample: the α-free envelope is an upper bound."""
    _, gz, _ = T.autograd_gradients(c.z, c.m, c.alpha, c.lam, c.t, c.form)
    big_m = float(gradient_bound(c.z, c.m, c.alpha, c.lam, c.t))
    rho = T.z_ratio_envelope(soft_assign(c.z, c.m, c.alpha), c.t, c.lam, c.form, c.n)
    assert torch.all(gz.norm(dim=1) / big_m <= rho * (1 + TOL) + 1e-12)   # (1e-12: round-off where ρ = 0)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(cases(t_strategy=log_uniform(1e-3, 0.6)))
def test_paper_bound_holds_for_one_embedding_in_the_proved_region(c):
    """Where 2kt²·A·κ_f(k, t) ≤ 1 the paper's M does bound ||∂L/∂z_i|| (any α, positions)."""
    assume(T.paper_bound_holds_for_z(c.k, c.lam, c.t, c.form, c.n))
    assert T.ratios(c.z, c.m, c.alpha, c.lam, c.t, c.form)["z_i"] <= 1.0 + TOL


@pytest.mark.parametrize("branch", ["low", "high"])
def test_corrected_bound_at_the_kink_on_both_branches(branch):
    """At q_ij = t the linear determinacy has a kink; both one-sided gradients are bounded."""
    c = T.sample_case(np.random.default_rng(7), n=6, k=3, d=2, form="code", regime="mixed", alpha=0.5, lam=0.4)
    q = float(soft_assign(c.z, c.m, c.alpha)[0, 0])
    t = q if branch == "high" else float(np.nextafter(q, 1.0))   # q < t selects the low branch
    rep = T.bound_report(c.z, c.m, c.alpha, c.lam, t, "code")
    assert max(rep["ratio_corrected"].values()) <= 1.0 + TOL


@pytest.mark.parametrize("form", ["paper", "code"])
def test_replicating_the_batch_scales_the_ratios(form):
    """r copies of every embedding: ratio(m_j) × r, ratio(Z) × √r, ratio(z_i) unchanged."""
    c = T.sample_case(np.random.default_rng(11), n=5, k=4, d=3, form=form, regime="mixed", t=0.4)
    base = T.ratios(c.z, c.m, c.alpha, c.lam, c.t, form)
    big = T.ratios(T.replicate(c.z, 7), c.m, c.alpha, c.lam, c.t, form)
    assert big["z_i"] == pytest.approx(base["z_i"], rel=1e-9)
    assert big["Z"] == pytest.approx(base["Z"] * math.sqrt(7), rel=1e-9)
    assert big["m_j"] == pytest.approx(base["m_j"] * 7, rel=1e-9)


def test_gaussian_limit_reaches_the_envelope():
    """The explicit configuration attains ρ(q) within 0.5 %: the envelope is the supremum."""
    qs = torch.linspace(1e-4, 1 - 1e-4, 20001, dtype=torch.float64)
    env = T.z_ratio_envelope(torch.stack([qs, 1 - qs], 1), 0.9, 0.0, "paper")
    rho, q1 = float(env.max()), float(qs[env.argmax()])
    assert T.sup_z_envelope(2, 0.9, 0.0, "paper", restarts=8, steps=60)[0] == pytest.approx(rho, rel=1e-3)
    z, m = T.gaussian_limit_configuration([q1, 1 - q1], 0.9, 0.0)
    ratio = T.ratios(z, m, 1e8, 0.0, 0.9, "paper")["z_i"]
    assert rho > 1.0 and ratio == pytest.approx(rho, rel=5e-3)


def test_two_centroid_supremum_is_attained():
    sup, (r1, r2) = T.two_centroid_sup(50.0, 0.0, 0.9, grid=200)
    z, m = T.two_centroid_configuration(r1, r2)
    assert T.ratios(z, m, 50.0, 0.0, 0.9, "paper")["z_i"] == pytest.approx(sup, rel=1e-8)
    assert sup > 1.0   # the paper's bound fails for one embedding at α = 50, t = 0.9, k = 2


def test_bad_threshold_is_refused():
    z, m = torch.zeros(2, 2), torch.ones(2, 2)
    for t in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="strictly between 0 and 1"):
            T.corrected_bound(z, m, 0.5, 0.4, t, "code")


# ------------------------------------------------------------------------------------ the encoder
def test_encoder_gradient_obeys_the_jacobian_bound_and_not_M():
    torch.manual_seed(0)
    enc = torch.nn.Sequential(torch.nn.Linear(5, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3))
    x = torch.randn(7, 5, dtype=torch.float64)
    m = torch.randn(3, 3, dtype=torch.float64)
    r = T.encoder_jacobian_check(enc, x, m, 0.5, 0.4, 0.3, "code")
    assert r["chain_rule_check"] < 1e-12
    assert r["norm_theta"] <= r["bound"] * (1 + TOL)
    # same embeddings and centroids (hence the same M), encoder gradient 1000 times larger
    w = torch.randn(3, 5, dtype=torch.float64)
    r1 = T.linear_encoder_gradient(w, x, m, 0.5, 0.4, 0.3, "code")
    r2 = T.linear_encoder_gradient(w / 1000, x * 1000, m, 0.5, 0.4, 0.3, "code")
    assert r2["M"] == pytest.approx(r1["M"], rel=1e-9)
    assert r2["ratio"] == pytest.approx(1000 * r1["ratio"], rel=1e-9)


# ------------------------------------------------------------------------ the saved counterexamples
REQUIRED = ["z_paper_form.npz", "centroid_authors_setting.npz", "encoder_linear.npz"]


def test_the_counterexamples_are_committed():
    for name in REQUIRED:
        assert (COUNTEREXAMPLES / name).exists(), f"{name} missing: run benchmarks/theory_sweep.py --profile cpu"


@pytest.mark.parametrize("path", sorted(COUNTEREXAMPLES.glob("*.npz")), ids=lambda p: p.stem)
def test_counterexample_exceeds_the_paper_bound(path):
    d = np.load(path)
    alpha, lam, t, form = float(d["alpha"]), float(d["lam"]), float(d["t"]), str(d["form"])
    rep = T.bound_report(torch.as_tensor(d["z"]), torch.as_tensor(d["m"]), alpha, lam, t, form)
    for i, block in enumerate(T.BLOCKS):
        assert rep["ratio_M"][block] == pytest.approx(float(d["ratios_M"][i]), rel=1e-6)
        assert rep["ratio_corrected"][block] <= 1.0 + TOL      # the corrected bound holds there
    for block in d["blocks"].tolist():
        assert rep["ratio_M"][block] > 1.0, (path.name, block, rep["ratio_M"][block])
    if "w" in d:   # the encoder: z = x Wᵀ reproduces the stored z, and ||∂L/∂W|| > M
        x, w = torch.as_tensor(d["x"]), torch.as_tensor(d["w"])
        assert torch.allclose(x @ w.T, torch.as_tensor(d["z"]), rtol=1e-10, atol=1e-10)
        r = T.linear_encoder_gradient(w, x, torch.as_tensor(d["m"]), alpha, lam, t, form)
        assert r["ratio"] > 1.0 and r["ratio"] == pytest.approx(float(d["ratio_encoder"]), rel=1e-6)
    if path.name == "centroid_authors_setting.npz":   # t is what training would use on this batch
        q = soft_assign(torch.as_tensor(d["z"]), torch.as_tensor(d["m"]), alpha)
        assert float(otsu_threshold(q)) == pytest.approx(t, abs=1e-12)
        assert (alpha, lam, form, len(d["z"])) == (0.5, 0.4, "code", 256)


def test_committed_sweep_is_consistent():
    path = RESULTS / "sweep_cpu.json"
    assert path.exists(), "run benchmarks/theory_sweep.py --profile cpu"
    s = json.loads(path.read_text())
    for key in ("command", "seed", "environment", "wall_s"):
        assert key in s["meta"]
    cols, rows = s["random"]["columns"], s["random"]["rows"]
    for block in T.BLOCKS:
        i = cols.index(f"C_{block}")
        assert max(r[i] for r in rows) <= 1.0 + 1e-3    # (values rounded to 4 digits)
    assert all(r["ratio_corrected"][r["block"]] <= 1.0 + 1e-3 for r in s["adversarial"])


# ------------------------------------------------------------------------------- the package's map
def test_every_public_name_is_in_the_package():
    """decs.theory re-exports every public name of its modules; no module imports another's
    private (underscore) name."""
    import ast
    import importlib
    import inspect

    for name in T.__all__:
        assert hasattr(T, name), name
    for part in ("gradients", "search", "convergence", "sweep"):
        module = importlib.import_module(f"decs.theory.{part}")
        defined = [n for n, v in vars(module).items() if not n.startswith("_")
                   and (inspect.isfunction(v) or inspect.isclass(v)) and v.__module__ == module.__name__]
        assert defined and set(defined) <= set(T.__all__), (part, set(defined) - set(T.__all__))
        for node in ast.walk(ast.parse(Path(module.__file__).read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                assert not [a.name for a in node.names if a.name.startswith("_")], (part, node.module)


def test_sweep_files_are_written_whole(tmp_path):
    """write_json and save_counterexample write through decs.files.atomic_write: the file reads
    back, and no temporary file is left beside it."""
    T.write_json({"a": [1, 2], "b": {"c": 0.5}}, tmp_path / "sub" / "s.json")
    assert json.loads((tmp_path / "sub" / "s.json").read_text(encoding="utf-8")) == {"a": [1, 2], "b": {"c": 0.5}}
    z, m = T.two_centroid_configuration(1.0, 2.0, d=3)
    T.save_counterexample(tmp_path / "c.npz", z, m, 0.5, 0.4, 0.5, "paper", ["z_i"], "a note", extra=[1.0])
    d = np.load(tmp_path / "c.npz")
    assert np.array_equal(d["z"], z.numpy()) and str(d["note"]) == "a note" and d["extra"].tolist() == [1.0]
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["c.npz", "s.json"]
