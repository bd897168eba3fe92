"""Tests of decs.ensemble: co-association, ensemble stability, core and halo."""
import itertools

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from decs.ensemble import co_association, core_halo, ensemble_stability, stability_from_co_association
from decs.stability import determinacy, otsu_split, otsu_threshold

# Three samples, two base clusterings:  {0,1},{2}  and  {0},{1,2}
HAND = np.array([[0, 5],
                 [0, 7],
                 [1, 7]])


def brute_force_co_association(labels):
    n, m = labels.shape
    a = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            a[i, j] = sum(labels[i, r] == labels[j, r] for r in range(m)) / m
    return a


def random_ensemble(n=40, m=7, seed=0):
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.integers(0, rng.integers(2, 6), size=n) for _ in range(m)])


def test_hand_example():
    a = co_association(HAND, dtype=torch.float64)
    expected = torch.tensor([[1.0, 0.5, 0.0],
                             [0.5, 1.0, 0.5],
                             [0.0, 0.5, 1.0]], dtype=torch.float64)
    assert torch.equal(a, expected)


def test_hand_stability():
    # off-diagonal relations: sample 0 -> (0.5, 0), sample 1 -> (0.5, 0.5), sample 2 -> (0, 0.5)
    s = ensemble_stability(HAND, t=0.25, dtype=torch.float64)
    # linear determinacy at t = 1/4: f(0.5) = (0.5-0.25)/0.75 = 1/3, f(0) = 1
    expected = torch.tensor([(1 / 3 + 1) / 2, 1 / 3, (1 + 1 / 3) / 2], dtype=torch.float64)
    assert torch.allclose(s, expected, atol=1e-12)
    # with λ: variance of (1/3, 1) is (1/3)^2, of (1/3, 1/3) is 0
    s_lam = ensemble_stability(HAND, lam=0.4, t=0.25, dtype=torch.float64)
    assert torch.allclose(s_lam, expected - 0.4 * torch.tensor([1 / 9, 0.0, 1 / 9], dtype=torch.float64))


def test_labels_are_names_not_numbers():
    # relabelling a base clustering (a permutation of its label names) changes nothing
    lab = random_ensemble()
    renamed = lab.copy()
    renamed[:, 0] = 100 - 3 * renamed[:, 0]
    assert torch.equal(co_association(lab), co_association(renamed))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_symmetry_diagonal_range(seed):
    a = co_association(random_ensemble(seed=seed))
    assert torch.equal(a, a.T)
    assert torch.equal(torch.diagonal(a), torch.ones(a.shape[0]))
    assert a.min() >= 0 and a.max() <= 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_brute_force(seed):
    lab = random_ensemble(n=25, m=5, seed=seed)
    a = co_association(lab, dtype=torch.float64).numpy()
    np.testing.assert_allclose(a, brute_force_co_association(lab), rtol=0, atol=1e-12)


def test_stability_agrees_with_loop():
    lab = random_ensemble(n=30, m=6, seed=3)
    a = brute_force_co_association(lab)
    n = len(a)
    rel = torch.tensor([[a[i, j] for j in range(n) if j != i] for i in range(n)])
    t = otsu_threshold(rel)
    for form, lam in itertools.product(("linear", "quadratic"), (0.0, 0.4)):
        s = ensemble_stability(lab, lam=lam, form=form, dtype=torch.float64)
        for i in range(n):
            f = [float(determinacy(torch.tensor(a[i, j]), t, form)) for j in range(n) if j != i]
            expected = np.mean(f) - lam * np.var(f)
            assert abs(float(s[i]) - expected) < 1e-12


def test_include_self_counts_the_diagonal():
    a = co_association(HAND, dtype=torch.float64)
    s, _ = stability_from_co_association(a, t=0.25, include_self=True)
    # the diagonal relation (A_ii = 1) is fully decided: f = 1
    assert torch.allclose(s[1], torch.tensor((1 / 3 + 1 / 3 + 1) / 3, dtype=torch.float64))


def test_unanimous_ensemble_is_perfectly_stable():
    lab = np.column_stack([np.repeat([0, 1, 2], 5)] * 4)
    s = ensemble_stability(lab)
    assert torch.allclose(s, torch.ones(15))
    core, _ = core_halo(s)
    assert core.all()


def test_core_halo_separates_two_groups():
    s = torch.tensor([0.9, 0.95, 0.92, 0.2, 0.25, 0.3])
    core, thr = core_halo(s)
    assert core.tolist() == [True, True, True, False, False, False]
    assert 0.3 < thr <= 0.9
    core, thr = core_halo(s, threshold=0.5)
    assert core.sum() == 3 and float(thr) == 0.5


# Values just below a bin edge k/1000 whose product with 1000 rounds up to k in float64:
# floor(v·bins) puts them in bin k although v < k/1000, the edge a threshold is reported as.
_BELOW_EDGE = [v for v in (np.nextafter(k / 1000, 0.0) for k in range(1, 1000)) if np.floor(v * 1000) == round(v * 1000)]
assert len(_BELOW_EDGE) >= 10  # 15 of the 999 edges


@given(st.lists(st.sampled_from(_BELOW_EDGE) | st.floats(0.0, 1.0), min_size=3, max_size=60))
def test_core_halo_split_agrees_with_its_threshold_and_otsu(values):
    s = torch.tensor([0.0, 1.0] + values, dtype=torch.float64)  # min 0, max 1: no rescaling
    core, thr = core_halo(s)
    # "core when s ≥ threshold", exactly, also for values a hair below the threshold
    assert torch.equal(core, s >= thr)
    # and the halo is Otsu's low class of the same histogram
    index, last_low = otsu_split(s, 1000)
    assert int((~core).sum()) == int((index <= last_low).sum())
    assert float(otsu_threshold(s)) <= float(thr)


def test_wrong_inputs_say_what_to_do():
    with pytest.raises(ValueError, match="n×m"):
        co_association(np.arange(5))
    with pytest.raises(ValueError, match="integer"):
        co_association(np.array([[0.5, 1.0], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="square"):
        stability_from_co_association(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="1-D"):
        core_halo(torch.zeros(2, 2))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_core_halo_threshold_matches_mask(seed):
    s = torch.rand(200, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) ** 2
    core, thr = core_halo(s)
    assert torch.equal(core, s >= thr)
    assert 0 < core.sum() < len(s)
