"""Tests of decs.stability: the chain z, m → q → f(q) → s → L_c, Otsu's threshold and Theorem 1's M.

Every expected value is either computed here from the defining formula (PAPER.md §1–§6), by an
independent brute force, or worked out by hand in a comment.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from decs import stability
from decs.stability import (determinacy, gradient_bound, instability, instability_loss, otsu_threshold,
                            sample_stability, soft_assign, squared_distances)

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BINS = 1000


pytestmark = pytest.mark.usefixtures("one_thread")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _grad_inputs(seed: int, n: int = 6, k: int = 4, d: int = 3):
    g = _gen(seed)
    z = torch.randn(n, d, generator=g, dtype=torch.float64)
    c = 1.5 * torch.randn(k, d, generator=g, dtype=torch.float64)
    return z, c


def _t_away_from(q: torch.Tensor, margin: float = 1e-3) -> float:
    """A fixed threshold none of the q lies within ``margin`` of (so finite differences never
    cross the kink of the piecewise determinacy)."""
    for t in np.linspace(0.05, 0.6, 56):
        if (q - t).abs().min() > margin:
            return float(t)
    raise AssertionError("no threshold away from every q; change the seed")


# --------------------------------------------------------------------------- gradchecks


@pytest.mark.parametrize("form", ["code", "paper"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_instability_loss_gradcheck_wrt_z_and_centroids(form, seed):
    z, c = _grad_inputs(seed)
    t = _t_away_from(soft_assign(z, c, 0.5))
    z.requires_grad_(True)
    c.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda z_, c_: instability_loss(z_, c_, alpha=0.5, lam=0.4, t=t, form=form), (z, c),
        eps=1e-6, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("form", ["code", "paper"])
def test_instability_gradcheck_wrt_q(form):
    g = _gen(3)
    q = torch.rand(5, 4, generator=g, dtype=torch.float64)
    t = _t_away_from(q)
    q.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda q_: instability(q_, t=t, lam=0.4, form=form), (q,),
                                    eps=1e-6, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 3.0])
def test_soft_assign_gradcheck(alpha):
    z, c = _grad_inputs(4, n=5, k=3, d=2)
    z[0] = c[1]  # a sample exactly on a centroid: the kernel is smooth there too
    z.requires_grad_(True)
    c.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z_, c_: soft_assign(z_, c_, alpha), (z, c), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("form", ["code", "paper"])
def test_otsu_t_is_a_constant_for_the_gradient(form):
    """t=None (Otsu) gives the same gradient as passing that same t as a fixed number."""
    z, c = _grad_inputs(5, n=16, k=3)
    t = otsu_threshold(soft_assign(z, c, 0.5))
    grads = []
    for tt in (None, float(t)):
        zz, cc = z.clone().requires_grad_(True), c.clone().requires_grad_(True)
        instability_loss(zz, cc, t=tt, form=form).backward()
        grads.append((zz.grad, cc.grad))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=0, atol=0)
    torch.testing.assert_close(grads[0][1], grads[1][1], rtol=0, atol=0)


# --------------------------------------------------------------------------- soft_assign


def _literal_q(z: np.ndarray, c: np.ndarray, alpha: float) -> np.ndarray:
    d2 = ((z[:, None, :] - c[None, :, :]) ** 2).sum(-1)
    kern = (1.0 + d2 / alpha) ** (-(alpha + 1.0) / 2.0)
    return kern / kern.sum(1, keepdims=True)


@pytest.mark.parametrize("alpha", [0.25, 0.5, 1.0, 2.0, 10.0])
def test_soft_assign_matches_literal_formula(alpha):
    rng = np.random.default_rng(int(alpha * 100))
    z, c = rng.normal(size=(7, 4)), 2 * rng.normal(size=(5, 4))
    q = soft_assign(torch.from_numpy(z), torch.from_numpy(c), alpha)
    np.testing.assert_allclose(q.numpy(), _literal_q(z, c, alpha), rtol=1e-12, atol=1e-15)
    assert (q > 0).all()
    torch.testing.assert_close(q.sum(1), torch.ones(7, dtype=torch.float64))


def test_squared_distances_by_hand():
    z = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    c = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    # 0, 1; 25, 4 + 16 = 20
    torch.testing.assert_close(squared_distances(z, c), torch.tensor([[0.0, 1.0], [25.0, 20.0]]))
    with pytest.raises(ValueError):
        squared_distances(z, torch.zeros(2, 3))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_soft_assign_extreme_inputs_are_finite(dtype):
    c = torch.tensor([[0.0, 0.0], [1.0, 1.0], [-1.0, 2.0]], dtype=dtype)
    # huge distances from every centroid, a sample on a centroid, one far from all but one
    z = torch.tensor([[1e6, 1e6], [1.0, 1.0], [-1e6, 3.0], [0.0, 0.0]], dtype=dtype, requires_grad=True)
    far_c = torch.tensor([[0.0, 0.0], [1e6, 0.0]], dtype=dtype)
    for cc in (c, far_c):
        q = soft_assign(z, cc, 0.5)
        assert torch.isfinite(q).all() and (q >= 0).all()
        torch.testing.assert_close(q.sum(1), torch.ones(4, dtype=dtype))
        (gz,) = torch.autograd.grad(q[:, 0].sum(), z)
        assert torch.isfinite(gz).all()
    # the sample on centroid 1 is assigned to it; the far sample (1e6,1e6) is near-uniform
    q = soft_assign(z, c, 0.5)
    assert q[1].argmax() == 1
    assert (q[0] - 1 / 3).abs().max() < 1e-3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_soft_assign_preserves_dtype_and_device(dtype):
    z, c = torch.randn(4, 3, dtype=dtype), torch.randn(2, 3, dtype=dtype)
    q = soft_assign(z, c)
    assert q.dtype == dtype and q.device == z.device and q.shape == (4, 2)
    zm, cm = z.to("meta"), c.to("meta")  # the device follows the input (no hidden .cpu())
    assert soft_assign(zm, cm).device.type == "meta"


@pytest.mark.parametrize("alpha", [0.0, -1.0])
def test_soft_assign_rejects_bad_alpha(alpha):
    with pytest.raises(ValueError):
        soft_assign(torch.zeros(2, 2), torch.ones(2, 2), alpha)


# --------------------------------------------------------------------------- determinacy


@pytest.mark.parametrize("t", [0.05, 0.1, 0.37, 0.5, 0.9])
def test_determinacy_anchor_points_range_and_quadratic(t):
    q = torch.cat([torch.linspace(0, 1, 1001, dtype=torch.float64), torch.tensor([t], dtype=torch.float64)])
    lin, quad = determinacy(q, t, "linear"), determinacy(q, t, "quadratic")
    assert float(determinacy(torch.tensor(t, dtype=torch.float64), t)) == pytest.approx(0.0, abs=1e-15)
    torch.testing.assert_close(determinacy(torch.tensor([0.0, 1.0], dtype=torch.float64), t),
                               torch.tensor([1.0, 1.0], dtype=torch.float64))
    assert (lin >= 0).all() and (lin <= 1 + 1e-15).all()
    assert (quad >= 0).all() and (quad <= 1 + 1e-15).all()
    torch.testing.assert_close(quad, lin ** 2)
    # the literal piecewise definition of PAPER.md §3
    expected = [(t - v) / t if v < t else (v - t) / (1 - t) for v in q.tolist()]
    np.testing.assert_allclose(lin.numpy(), expected, rtol=1e-12, atol=1e-15)
    # decreasing below t, increasing above
    below, above = lin[q < t], lin[q > t]
    assert (below.diff() <= 1e-15).all() and (above.diff() >= -1e-15).all()


@pytest.mark.parametrize("t", [0, 1, -0.1, 1.5, float("nan"), [0.2, 0.3]])
def test_determinacy_rejects_bad_threshold(t):
    with pytest.raises(ValueError):
        determinacy(torch.tensor([0.2, 0.8]), t)


def test_determinacy_rejects_bad_form():
    with pytest.raises(ValueError):
        determinacy(torch.tensor([0.2, 0.8]), 0.5, "cubic")
    with pytest.raises(ValueError):
        instability(torch.tensor([[0.2, 0.8]]), 0.5, form="linear")


# --------------------------------------------------------------------------- sample stability & loss


def test_sample_stability_by_hand():
    fq = torch.tensor([[0.0, 1.0], [0.5, 0.5], [0.2, 0.4]], dtype=torch.float64)
    # means 0.5, 0.5, 0.3; population variances 0.25, 0, 0.01
    expected = torch.tensor([0.5 - 0.4 * 0.25, 0.5, 0.3 - 0.4 * 0.01], dtype=torch.float64)
    torch.testing.assert_close(sample_stability(fq, 0.4), expected)
    torch.testing.assert_close(sample_stability(fq, 0.0), torch.tensor([0.5, 0.5, 0.3], dtype=torch.float64))
    with pytest.raises(ValueError):
        sample_stability(torch.zeros(3))


def test_instability_both_forms_by_hand():
    q = torch.tensor([[0.2, 0.8], [0.5, 0.5]], dtype=torch.float64)
    t = 0.4
    # linear f: 0.2 → (0.4-0.2)/0.4 = 1/2; 0.8 → 0.4/0.6 = 2/3; 0.5 → 0.1/0.6 = 1/6
    f = [[0.5, 2 / 3], [1 / 6, 1 / 6]]
    s = [sum(r) / 2 - 0.4 * ((r[0] - r[1]) / 2) ** 2 for r in f]
    mean_s, var_s = sum(s) / 2, ((s[0] - s[1]) / 2) ** 2
    assert float(instability(q, t, 0.4, "code")) == pytest.approx(1 - (mean_s + var_s), abs=1e-14)
    fq = [[v * v for v in r] for r in f]
    s2 = [sum(r) / 2 - 0.4 * ((r[0] - r[1]) / 2) ** 2 for r in fq]
    assert float(instability(q, t, 0.4, "paper")) == pytest.approx(1 - sum(s2) / 2, abs=1e-14)


def _far_apart(dtype):
    c = torch.tensor([[0.0, 0.0], [1e3, 0.0], [0.0, 1e3]], dtype=dtype)
    z = c[[0, 1, 2, 0, 1]] + 1e-3
    return z, c


CASES = {
    "near_one_hot": lambda dt: _far_apart(dt),
    "k2": lambda dt: (torch.randn(8, 3, generator=_gen(0)).to(dt), torch.randn(2, 3, generator=_gen(1)).to(dt)),
    "n1": lambda dt: (torch.randn(1, 3, generator=_gen(2)).to(dt), torch.randn(4, 3, generator=_gen(3)).to(dt)),
    "identical_z": lambda dt: (torch.ones(6, 3, dtype=dt), torch.randn(4, 3, generator=_gen(4)).to(dt)),
    "z_on_centroids": lambda dt: (torch.eye(3, dtype=dt).repeat(2, 1), torch.eye(3, dtype=dt)),
    "identical_centroids": lambda dt: (torch.randn(5, 3, generator=_gen(5)).to(dt), torch.zeros(3, 3, dtype=dt)),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("t", [None, 0.3])
@pytest.mark.parametrize("form", ["code", "paper"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_loss_and_gradients_are_finite_in_edge_cases(case, form, t, dtype):
    z, c = CASES[case](dtype)
    z, c = z.clone().requires_grad_(True), c.clone().requires_grad_(True)
    loss = instability_loss(z, c, t=t, form=form)
    assert loss.dtype == dtype and loss.ndim == 0
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(z.grad).all() and torch.isfinite(c.grad).all()


def test_loss_is_low_for_confident_and_high_for_undecided_samples():
    z, c = _far_apart(torch.float64)
    assert float(instability_loss(z, c, t=0.3, form="paper")) < 0.01
    q_mid = torch.full((4, 2), 0.5, dtype=torch.float64)  # every relation next to the threshold
    assert float(instability(q_mid, 0.49, form="paper")) > 0.99


# --------------------------------------------------------------------------- Otsu


def _hist(values: np.ndarray) -> np.ndarray:
    """Histogram on [0, 1] with bin b = [b/BINS, (b+1)/BINS), the edges being the float64 numbers
    b/BINS that t is reported as; values ≥ 1 go to the last bin."""
    edges = np.arange(BINS + 1) / BINS
    idx = np.clip(np.searchsorted(edges, values.reshape(-1).astype(np.float64), side="right") - 1, 0, BINS - 1)
    return np.bincount(idx, minlength=BINS).astype(np.float64)


def _between_class_variances(hist: np.ndarray) -> np.ndarray:
    """ω0·ω1·(μ0 − μ1)² for each of the 999 splits 'bins 0..b low, b+1.. high', straight from
    the definition (NaN where one class is empty)."""
    p = hist / hist.sum()
    levels = np.arange(BINS) + 0.5  # bin centres (any affine map of levels has the same argmax)
    out = np.full(BINS - 1, np.nan)
    for b in range(BINS - 1):
        w0, w1 = p[: b + 1].sum(), p[b + 1:].sum()
        if w0 == 0 or w1 == 0:
            continue
        mu0 = (levels[: b + 1] * p[: b + 1]).sum() / w0
        mu1 = (levels[b + 1:] * p[b + 1:]).sum() / w1
        out[b] = w0 * w1 * (mu0 - mu1) ** 2
    return out


def _check_otsu_against_brute_force(values: np.ndarray, dtype=torch.float64) -> None:
    q = torch.from_numpy(values).to(dtype)
    t = otsu_threshold(q)
    assert 0.0 < float(t) < 1.0
    hist = _hist(q.double().numpy())
    between = _between_class_variances(hist)
    if np.all(np.isnan(between)):  # all values in one bin: documented fallback, middle of bin 0
        assert float(t) == pytest.approx(0.5 / BINS)
        return
    # the winning split ending at bin 0 is reported as the middle of bin 0 (never t = 0)
    b = 0 if float(t) == pytest.approx(0.5 / BINS) else round(float(t) * BINS)
    if b:
        assert float(t) == pytest.approx(b / BINS, abs=1e-7)
    best = np.nanmax(between)
    assert between[b] >= best * (1 - 1e-9), (b, between[b], best, int(np.nanargmax(between)))
    # the left edge of a bin that holds values (ties over empty bins resolve to the first)
    assert hist[b] > 0


probabilities = arrays(np.float64, st.integers(1, 300),
                       elements=st.floats(0.0, 1.0, allow_nan=False, allow_subnormal=False))


@FAST
@given(probabilities)
def test_otsu_matches_brute_force_on_arbitrary_values(values):
    _check_otsu_against_brute_force(values)


@FAST
@given(st.integers(0, 2**32 - 1), st.integers(1, 64), st.integers(2, 12),
       st.sampled_from([0.05, 0.3, 1.0, 3.0, 20.0]), st.sampled_from([torch.float32, torch.float64]))
def test_otsu_matches_brute_force_on_softmax_rows(seed, n, k, temperature, dtype):
    logits = np.random.default_rng(seed).normal(size=(n, k))
    q = torch.softmax(torch.from_numpy(logits) / temperature, dim=1).to(dtype)
    _check_otsu_against_brute_force(q.double().numpy(), dtype)


def _bin(v: float) -> int:
    return int(np.flatnonzero(_hist(np.array([v])))[0])


@FAST
@given(st.floats(0.0, 0.9985), st.floats(0.002, 0.998), st.integers(1, 50), st.integers(1, 50))
def test_otsu_of_two_values_is_the_left_edge_of_the_lower_ones_bin(a, gap, na, nb):
    b = min(a + gap, 1.0)
    if _bin(b) == _bin(a):  # same bin: not a two-class case
        return
    t = float(otsu_threshold(torch.tensor([a] * na + [b] * nb, dtype=torch.float64)))
    if _bin(a) == 0:
        assert t == 0.5 / BINS
    else:
        assert t == _bin(a) / BINS
        assert t <= a < t + 1.0 / BINS + 1e-12


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_otsu_left_edge_is_consistent_at_bin_edges(dtype):
    """t is the left edge of the bin of the low values: never above them. A value one ulp below
    the edge b/1000 lies in bin b−1; a value exactly on the edge opens bin b and is t itself."""
    for edge in range(2, BINS - 1):  # the high values sit in the last bin, 999
        e = torch.tensor(edge / BINS, dtype=dtype)
        below = torch.nextafter(e, torch.tensor(0.0, dtype=dtype))
        for a in (below, e):
            t = otsu_threshold(torch.stack([a] * 3 + [torch.tensor(0.9995, dtype=dtype)] * 3))
            assert t <= a, (edge, float(a), float(t))
            assert float(a) - float(t) < 1.0 / BINS + 1e-7
        if dtype == torch.float64:
            assert float(otsu_threshold(torch.stack([e] * 3 + [torch.tensor(0.9995, dtype=dtype)] * 3))) == float(e)


@pytest.mark.parametrize("values", [
    [0.0] * 10,                       # all in the first bin
    [0.0004, 0.0001, 0.0009],         # all in the first bin, not equal
    [1.0] * 7,                        # all in the last bin (q = 1 exactly)
    [0.9995, 0.9999, 1.0],            # all in the last bin
    [0.37] * 5,                       # all equal
    [0.42],                           # a single value
    [1e-9] * 9 + [1.0 - 1e-9] * 1,    # bimodal, low mode in the first bin (near one-hot q)
    [1e-12, 1.0],                     # the two extremes
    [0.0] * 5 + [0.9995] * 5,         # first and last bin
])
def test_otsu_never_returns_zero_or_one(values):
    for dtype in (torch.float32, torch.float64):
        t = float(otsu_threshold(torch.tensor(values, dtype=dtype)))
        assert 0.0 < t < 1.0
        # usable as a threshold: no division by zero in the loss
        q = torch.tensor(values, dtype=dtype).reshape(1, -1)
        assert torch.isfinite(determinacy(q, t)).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_otsu_is_detached_scalar_same_dtype_and_device(dtype):
    z = torch.randn(20, 3, dtype=dtype, requires_grad=True)
    q = soft_assign(z, torch.randn(4, 3, dtype=dtype))
    assert q.requires_grad
    t = otsu_threshold(q)
    assert not t.requires_grad and t.grad_fn is None
    assert t.ndim == 0 and t.dtype == dtype and t.device == q.device


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_everything_stays_on_the_gpu():
    z = torch.randn(32, 10, device="cuda", requires_grad=True)
    c = torch.randn(5, 10, device="cuda", requires_grad=True)
    q = soft_assign(z, c)
    t = otsu_threshold(q)
    assert q.device.type == t.device.type == "cuda"
    loss = instability_loss(z, c, t=t)
    loss.backward()
    assert loss.device.type == "cuda" and torch.isfinite(z.grad).all()
    cpu_loss = instability_loss(z.detach().cpu(), c.detach().cpu(), t=t.cpu())
    torch.testing.assert_close(loss.detach().cpu(), cpu_loss, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("bad", [torch.tensor([]), torch.tensor([0.2, float("nan")]), torch.tensor([float("inf")])])
def test_otsu_rejects_empty_and_nan(bad):
    with pytest.raises(ValueError):
        otsu_threshold(bad)


def test_otsu_separates_two_clear_groups():
    q = torch.tensor([0.05, 0.06, 0.07, 0.08, 0.6, 0.7, 0.8], dtype=torch.float64)
    t = float(otsu_threshold(q))
    assert 0.08 <= t < 0.6  # and, being the left edge of the low class' last bin, t = 0.08
    assert t == pytest.approx(0.08)


# --------------------------------------------------------------------------- Theorem 1's constant


def test_gradient_bound_by_hand():
    z = torch.tensor([[0.0, 0.0], [3.0, 4.0]], dtype=torch.float64)
    c = torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    # max distance 5 (from (3,4) to (0,0)); n = k = 2, α = 0.5, λ = 0.4, t = 0.25:
    # 2·1.8·1.5 / (4·2·2·0.0625·0.5) · 5 = 5.4 / 0.5 · 5 = 54
    assert float(gradient_bound(z, c, 0.5, 0.4, 0.25)) == pytest.approx(54.0, rel=1e-12)
    # general formula for other parameters
    for alpha, lam, t in [(1.0, 0.0, 0.5), (2.0, 1.0, 0.1)]:
        expected = 2 * (1 + 2 * lam) * (alpha + 1) / (4 * 2 * 2 * t**2 * alpha) * 5.0
        assert float(gradient_bound(z, c, alpha, lam, t)) == pytest.approx(expected, rel=1e-12)


def test_gradient_bound_duplicating_the_data_halves_it():
    """Duplicating z doubles n but keeps the largest distance, so M halves (M ∝ 1/n)."""
    z, c = _grad_inputs(7, n=9, k=3)
    m1 = gradient_bound(z, c, 0.5, 0.4, 0.2)
    m2 = gradient_bound(torch.cat([z, z]), c, 0.5, 0.4, 0.2)
    m3 = gradient_bound(torch.cat([z, z, z]), c, 0.5, 0.4, 0.2)
    torch.testing.assert_close(m2, m1 / 2)
    torch.testing.assert_close(m3, m1 / 3)
    # scaling every distance by 2 (z and m together) doubles M
    torch.testing.assert_close(gradient_bound(2 * z, 2 * c, 0.5, 0.4, 0.2), 2 * m1)
    with pytest.raises(ValueError):
        gradient_bound(z, c, 0.5, 0.4, 0.0)
    with pytest.raises(ValueError):
        gradient_bound(z, c, 0.0, 0.4, 0.2)


def test_balance_penalty_is_kl_of_the_mean_assignment_from_uniform():
    q = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]], dtype=torch.float64)
    mean = q.mean(0)
    by_hand = sum(float(m) * math.log(float(m) * 3) for m in mean)
    assert math.isclose(float(stability.balance_penalty(q)), by_hand, rel_tol=1e-12)
    assert float(stability.balance_penalty(torch.full((4, 5), 0.2, dtype=torch.float64))) == pytest.approx(0, abs=1e-15)
    one = torch.zeros(6, 4, dtype=torch.float64)
    one[:, 2] = 1  # every sample in one cluster: the largest value, log k, and finite
    assert float(stability.balance_penalty(one)) == pytest.approx(math.log(4))


def test_without_the_variance_reward_the_code_form_is_one_minus_mean_stability():
    q = torch.softmax(torch.randn(32, 5, dtype=torch.float64), 1)
    t = stability.otsu_threshold(q)
    s = stability.sample_stability(stability.determinacy(q, t, "linear"), 0.4)
    assert torch.allclose(stability.instability(q, t, 0.4, "code", variance_reward=False), 1 - s.mean())
    assert torch.allclose(stability.instability(q, t, 0.4, "code"), 1 - s.mean() - s.var(unbiased=False))


def test_start_profile_reads_what_the_loss_sees_at_a_start():
    from decs.stability import start_profile

    torch.manual_seed(0)
    centroids = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    z = centroids.repeat_interleave(20, 0) + 0.3 * torch.randn(60, 2)
    prof = start_profile(z, centroids, alpha=0.5, lam=0.4, batch_size=60)
    # one batch holding every sample: the pull is the norm of the loss's gradient on each centroid
    m = centroids.clone().requires_grad_(True)
    q = soft_assign(z[torch.randperm(60, generator=torch.Generator().manual_seed(0))], m, 0.5)
    instability(q, otsu_threshold(q), 0.4, "code").backward()
    assert prof["centroid_pull"] == pytest.approx(m.grad.norm(dim=1).tolist(), rel=1e-3)
    q_all = soft_assign(z, centroids, 0.5)
    assert prof["q_max_mean"] == pytest.approx(float(q_all.max(1).values.mean()), rel=1e-3)
    assert prof["soft_mass"] == pytest.approx(q_all.sum(0).tolist(), abs=0.06)
    t = float(otsu_threshold(q_all))
    assert prof["undecided_share"] == pytest.approx(float(((q_all >= t).sum(1) == 0).float().mean()), abs=1e-4)
    # centroids on top of one another: q is uniform, its entropy is log k, nobody is decided
    flat = start_profile(z, torch.zeros(3, 2), batch_size=60)
    assert flat["q_entropy_mean"] == pytest.approx(1.0)
    assert flat["q_max_mean"] == pytest.approx(1 / 3, rel=1e-3)  # four significant digits
    assert prof["q_entropy_mean"] < flat["q_entropy_mean"]
