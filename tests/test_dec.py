"""Tests of decs.dec: DEC's soft assignment (α = 1), target distribution and KL loss (PAPER.md §10)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from decs import dec, stability

FAST = settings(max_examples=40, deadline=None)


pytestmark = pytest.mark.usefixtures("one_thread")


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * torch.log(p.clamp_min(1e-300))).sum(-1)


def _rows(n_min=1, n_max=12, k_min=2, k_max=6):
    """n×k matrices of positive rows summing to 1 (softmax of drawn logits)."""
    return st.integers(n_min, n_max).flatmap(
        lambda n: st.integers(k_min, k_max).flatmap(
            lambda k: arrays(np.float64, (n, k), elements=st.floats(-6, 6)).map(
                lambda a: torch.softmax(torch.from_numpy(a), dim=1))))


# --------------------------------------------------------------------------- soft assignment


def test_soft_assign_is_the_student_t_kernel_with_alpha_one():
    g = torch.Generator().manual_seed(0)
    z, c = torch.randn(6, 3, generator=g, dtype=torch.float64), torch.randn(4, 3, generator=g, dtype=torch.float64)
    d2 = ((z[:, None] - c[None]) ** 2).sum(-1)
    kern = 1.0 / (1.0 + d2)  # (1 + d²/1)^(-(1+1)/2)
    torch.testing.assert_close(dec.soft_assign(z, c), kern / kern.sum(1, keepdim=True))
    torch.testing.assert_close(dec.soft_assign(z, c), stability.soft_assign(z, c, alpha=1.0))
    # and is not the DECS default α = 0.5
    assert not torch.allclose(dec.soft_assign(z, c), stability.soft_assign(z, c))


# --------------------------------------------------------------------------- target distribution


def test_target_distribution_by_hand():
    q = torch.tensor([[0.5, 0.5], [0.8, 0.2], [0.9, 0.1]], dtype=torch.float64)
    # f = column sums = (2.2, 0.8); weights q²/f:
    #   row 0: (0.25/2.2, 0.25/0.8), row 1: (0.64/2.2, 0.04/0.8), row 2: (0.81/2.2, 0.01/0.8)
    w = torch.tensor([[0.25 / 2.2, 0.25 / 0.8], [0.64 / 2.2, 0.04 / 0.8], [0.81 / 2.2, 0.01 / 0.8]],
                     dtype=torch.float64)
    torch.testing.assert_close(dec.target_distribution(q), w / w.sum(1, keepdim=True))
    # row 0 is tied in q, but the small cluster 1 wins in p: 0.25/0.8 > 0.25/2.2
    assert dec.target_distribution(q)[0].argmax() == 1


@FAST
@given(_rows())
def test_target_distribution_rows_are_distributions_and_follow_the_formula(q):
    p = dec.target_distribution(q)
    assert p.shape == q.shape and torch.isfinite(p).all() and (p >= 0).all()
    torch.testing.assert_close(p.sum(1), torch.ones(q.shape[0], dtype=q.dtype))
    # the defining formula, written elementwise
    n, k = q.shape
    f = [sum(float(q[i, j]) for i in range(n)) for j in range(k)]
    for i in range(n):
        w = [float(q[i, j]) ** 2 / f[j] for j in range(k)]
        np.testing.assert_allclose(p[i].numpy(), np.array(w) / sum(w), rtol=1e-10)


@FAST
@given(arrays(np.float64, st.integers(2, 6), elements=st.floats(-5, 5)))
def test_target_distribution_sharpens_when_clusters_are_balanced(logits):
    """With equal cluster frequencies f_j, p_i ∝ q_i², and squaring lowers the entropy:
    d/dβ H(q^β / Σ q^β) = −β·Var(log q) ≤ 0, strictly unless q_i is uniform.
    The rows below are all cyclic shifts of one distribution, so every f_j is the same."""
    r = torch.softmax(torch.from_numpy(logits), 0)
    k = r.numel()
    q = torch.stack([torch.roll(r, s) for s in range(k)])
    p = dec.target_distribution(q)
    torch.testing.assert_close(p, q**2 / (q**2).sum(1, keepdim=True))
    spread = float(r.max() - r.min())
    if spread < 1e-5:  # the entropy drop is second order in the spread: below round-off
        assert float((p - q).abs().max()) <= 2 * spread + 1e-15
    else:
        assert (_entropy(p) < _entropy(q) - 1e-12).all()
        assert (p.max(1).values >= q.max(1).values).all()
        # the most probable cluster stays a most probable one (ties may resolve either way)
        torch.testing.assert_close(q.gather(1, p.argmax(1, keepdim=True)).squeeze(1), q.max(1).values)


def test_target_distribution_does_not_always_sharpen_a_row():
    """With unequal cluster sizes a row can get *more* uncertain, even flip its argmax: the
    division by f_j favours small clusters (worked out by hand: f = (3.4, 0.6), last row
    q = (0.7, 0.3) → p ∝ (0.49/3.4, 0.09/0.6) = (0.144, 0.15))."""
    q = torch.tensor([[0.9, 0.1]] * 3 + [[0.7, 0.3]], dtype=torch.float64)
    p = dec.target_distribution(q)
    assert _entropy(p[3]) > _entropy(q[3])
    assert p[3].argmax() == 1 and q[3].argmax() == 0
    # the confident rows do sharpen
    assert (_entropy(p[:3]) < _entropy(q[:3])).all()


def test_target_distribution_rejects_non_matrix_and_handles_empty_cluster():
    with pytest.raises(ValueError):
        dec.target_distribution(torch.tensor([0.5, 0.5]))
    q = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    p = dec.target_distribution(q)
    assert torch.isfinite(p).all()
    torch.testing.assert_close(p, q)


# --------------------------------------------------------------------------- KL loss


@FAST
@given(_rows(k_min=2, k_max=5).flatmap(
    lambda q: st.tuples(st.just(q), arrays(np.float64, tuple(q.shape), elements=st.floats(-6, 6)))))
def test_kl_loss_is_nonnegative_and_equals_torch_kl_div(pair):
    q, logits = pair
    p = torch.softmax(torch.from_numpy(logits), dim=1)
    loss = dec.kl_loss(p, q)
    assert loss.ndim == 0 and float(loss) >= -1e-12
    torch.testing.assert_close(loss, F.kl_div(q.log(), p, reduction="batchmean"))
    expected = sum(float(p[i, j] * np.log(float(p[i, j] / q[i, j])))
                   for i in range(q.shape[0]) for j in range(q.shape[1])) / q.shape[0]
    assert float(loss) == pytest.approx(expected, rel=1e-9, abs=1e-12)


@FAST
@given(_rows())
def test_kl_loss_is_zero_iff_p_equals_q(q):
    assert float(dec.kl_loss(q, q)) == pytest.approx(0.0, abs=1e-12)
    p = dec.target_distribution(q)
    if (p - q).abs().max() > 1e-6:
        assert float(dec.kl_loss(p, q)) > 0


def test_kl_loss_handles_zeros_in_p_and_rejects_shape_mismatch():
    p = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    q = torch.tensor([[0.5, 0.5], [0.25, 0.75]], dtype=torch.float64)
    # 0·log 0 = 0: (log 2 + log(4/3)) / 2
    assert float(dec.kl_loss(p, q)) == pytest.approx((np.log(2) + np.log(4 / 3)) / 2, rel=1e-12)
    torch.testing.assert_close(dec.kl_loss(p, q), F.kl_div(q.log(), p, reduction="batchmean"))
    with pytest.raises(ValueError):
        dec.kl_loss(p, q[:1])


def test_kl_loss_gradient_flows_into_q():
    q = dec.soft_assign(torch.randn(5, 3, dtype=torch.float64, requires_grad=True),
                        torch.randn(2, 3, dtype=torch.float64))
    p = dec.target_distribution(q).detach()
    q_leaf = q.detach().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: dec.kl_loss(p, x), (q_leaf,))
