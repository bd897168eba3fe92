"""Tests of decs.metrics: ACC against a brute force over all one-to-one maps, NMI/ARI against
scikit-learn, and the input checks."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from decs.metrics import (ari, cluster_acc, cluster_to_class, confusion, contingency, evaluate, matched_labels,
                          max_acc_with_empty_cluster, nmi)

FAST = settings(max_examples=60, deadline=None)


def brute_force_acc(y_true, y_pred) -> float:
    """Best fraction correct over every one-to-one map of clusters to classes.

    With more clusters than classes the extra clusters map to no class (their samples count as
    wrong); with fewer, some classes get no cluster. Both are covered by padding the smaller
    label set with "nothing" and trying every permutation of the padded sets."""
    y_true, y_pred = list(y_true), list(y_pred)
    classes, clusters = sorted(set(y_true)), sorted(set(y_pred))
    size = max(len(classes), len(clusters))
    classes += [None] * (size - len(classes))
    clusters += [None] * (size - len(clusters))
    best = 0
    for perm in itertools.permutations(range(size)):
        mapping = {clusters[i]: classes[perm[i]] for i in range(size)}
        best = max(best, sum(mapping[p] == t for t, p in zip(y_true, y_pred)))
    return best / len(y_true)


@st.composite
def label_pairs(draw, max_k=6, values=None):
    n = draw(st.integers(1, 40))
    k_true, k_pred = draw(st.integers(1, max_k)), draw(st.integers(1, max_k))
    if values is None:
        y_true = draw(st.lists(st.integers(0, k_true - 1), min_size=n, max_size=n))
        y_pred = draw(st.lists(st.integers(0, k_pred - 1), min_size=n, max_size=n))
    else:  # arbitrary, non-contiguous label values (e.g. −1 for noise, 17, 1000)
        tv = draw(st.lists(st.sampled_from(values), min_size=k_true, max_size=k_true, unique=True))
        pv = draw(st.lists(st.sampled_from(values), min_size=k_pred, max_size=k_pred, unique=True))
        y_true = draw(st.lists(st.sampled_from(tv), min_size=n, max_size=n))
        y_pred = draw(st.lists(st.sampled_from(pv), min_size=n, max_size=n))
    return np.array(y_true), np.array(y_pred)


@FAST
@given(label_pairs())
def test_cluster_acc_equals_brute_force(pair):
    y_true, y_pred = pair
    assert cluster_acc(y_true, y_pred) == pytest.approx(brute_force_acc(y_true, y_pred), abs=1e-12)


@FAST
@given(label_pairs(values=[-1, 0, 3, 17, 1000, 5, 2]))
def test_cluster_acc_equals_brute_force_for_arbitrary_label_values(pair):
    y_true, y_pred = pair
    assert cluster_acc(y_true, y_pred) == pytest.approx(brute_force_acc(y_true, y_pred), abs=1e-12)


@FAST
@given(label_pairs(), st.randoms(use_true_random=False))
def test_cluster_acc_is_invariant_under_relabelling_the_clusters(pair, rnd):
    y_true, y_pred = pair
    labels = sorted(set(y_pred.tolist()))
    new = rnd.sample(range(-5, 50), len(labels))
    relabelled = np.array([new[labels.index(v)] for v in y_pred])
    assert cluster_acc(y_true, relabelled) == pytest.approx(cluster_acc(y_true, y_pred), abs=1e-12)
    # and the scores are in [1/n, 1], with 1 for any relabelling of the truth itself
    acc = cluster_acc(y_true, y_pred)
    assert 1 / len(y_true) - 1e-12 <= acc <= 1.0
    assert cluster_acc(y_true, [1000 - 3 * v for v in y_true.tolist()]) == 1.0


@FAST
@given(label_pairs(values=[-1, 0, 3, 17, 1000, 5, 2]))
def test_matched_labels_score_exactly_cluster_acc(pair):
    y_true, y_pred = pair
    mapping = cluster_to_class(y_true, y_pred)
    assert len(set(mapping.values())) == len(mapping)  # one-to-one
    assert set(mapping) <= set(y_pred.tolist()) and set(mapping.values()) <= set(y_true.tolist())
    assert len(mapping) == min(len(set(y_true.tolist())), len(set(y_pred.tolist())))
    assert np.mean(matched_labels(y_true, y_pred, unmatched=-999) == y_true) == pytest.approx(
        cluster_acc(y_true, y_pred), abs=1e-12)


def test_cluster_to_class_by_hand():
    # clusters 7 and 3 hold classes 0 and 1 (one sample of 3 is a 0); cluster 9 is a stray 1
    y_true = np.array([0, 0, 0, 1, 1, 0, 1])
    y_pred = np.array([7, 7, 7, 3, 3, 3, 9])
    assert cluster_to_class(y_true, y_pred) == {7: 0, 3: 1}
    assert matched_labels(y_true, y_pred).tolist() == [0, 0, 0, 1, 1, 1, -1]


def test_cluster_acc_known_examples_by_hand():
    # clusters 1→class 0, 0→class 1, 2→class 2: samples 0-4 right, the last (class 2 in cluster 0) wrong
    assert cluster_acc([0, 0, 1, 1, 2, 2], [1, 1, 0, 0, 2, 0]) == pytest.approx(5 / 6)
    # more clusters than classes: the best two clusters are matched, the third counts as wrong
    assert cluster_acc([0, 0, 0, 1, 1, 1], [0, 0, 2, 1, 1, 1]) == pytest.approx(5 / 6)
    # fewer clusters than classes: one class is necessarily all wrong
    assert cluster_acc([0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 1, 1]) == pytest.approx(4 / 6)
    # everything in one cluster: the size of the largest class
    assert cluster_acc([0, 1, 1, 2, 2, 2], [7] * 6) == pytest.approx(3 / 6)


def test_contingency_counts_clusters_by_classes():
    w = contingency([0, 0, 1, 1, 2, 2], [1, 1, 0, 0, 2, 0])
    # rows: clusters 0,1,2; columns: classes 0,1,2
    np.testing.assert_array_equal(w, [[0, 2, 1], [2, 0, 0], [0, 0, 1]])


@FAST
@given(label_pairs())
def test_nmi_and_ari_equal_scikit_learn(pair):
    y_true, y_pred = pair
    assert nmi(y_true, y_pred) == pytest.approx(normalized_mutual_info_score(y_true, y_pred), abs=1e-12)
    assert ari(y_true, y_pred) == pytest.approx(adjusted_rand_score(y_true, y_pred), abs=1e-12)


@pytest.mark.parametrize("convert", [
    list, np.array, torch.tensor,
    lambda v: torch.tensor(v, dtype=torch.float32),   # integer-valued floats are labels too
    lambda v: np.array(v, dtype=np.int32),
])
def test_accepts_lists_numpy_arrays_and_torch_tensors(convert):
    y_true, y_pred = [0, 0, 1, 1, 2, 2], [1, 1, 0, 0, 2, 0]
    scores = evaluate(convert(y_true), convert(y_pred))
    assert scores["acc"] == round(5 / 6, 5)
    assert scores["nmi"] == round(normalized_mutual_info_score(y_true, y_pred), 5)
    assert scores["ari"] == round(adjusted_rand_score(y_true, y_pred), 5)
    # one numpy, one torch
    assert cluster_acc(np.array(y_true), torch.tensor(y_pred)) == pytest.approx(5 / 6)


@pytest.mark.parametrize("fn", [cluster_acc, nmi, ari, evaluate])
@pytest.mark.parametrize("y_true, y_pred", [
    ([0, 1, 2], [0, 1]),                       # mismatched lengths
    ([], []),                                  # empty
    (np.zeros((2, 3), int), np.zeros((2, 3), int)),  # 2-D
    ([[0, 1]], [0, 1]),                        # 2-D truth
    ([0.5, 1.0], [0, 1]),                      # non-integer labels
    ([0, float("nan")], [0, 1]),               # NaN label
])
def test_bad_inputs_raise_value_error(fn, y_true, y_pred):
    with pytest.raises(ValueError):
        fn(y_true, y_pred)


def test_tensor_on_autograd_graph_is_accepted():
    y = torch.tensor([0.0, 1.0, 1.0], requires_grad=True) * 1  # a non-leaf float tensor
    assert cluster_acc(y, [1, 0, 0]) == 1.0


@FAST
@given(st.lists(st.integers(0, 4), min_size=2, max_size=40), st.data())
def test_a_clustering_with_a_cluster_missing_scores_at_most_the_bound(y, data):
    """Any labelling that uses fewer clusters than there are classes scores ≤ 1 − n_min/n; the
    bound is reached by putting the smallest class into another's cluster."""
    y = np.array(y)
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        return
    bound = max_acc_with_empty_cluster(y)
    assert bound == pytest.approx(1 - counts.min() / len(y))
    k_used = data.draw(st.integers(1, len(classes) - 1))
    pred = np.array(data.draw(st.lists(st.integers(0, k_used - 1), min_size=len(y), max_size=len(y))))
    assert cluster_acc(y, pred) <= bound + 1e-12
    smallest, other = classes[counts.argmin()], classes[counts.argmin() - 1]
    merged = np.where(y == smallest, other, y)
    assert cluster_acc(y, merged) == pytest.approx(bound)


def test_the_bound_refuses_no_labels():
    with pytest.raises(ValueError, match="empty"):
        max_acc_with_empty_cluster([])


def test_confusion_keeps_emptied_clusters_as_zero_rows_and_counts_classes_per_cluster():
    y = np.array([3, 3, 5, 7, 7, 7])
    pred = np.array([2, 2, 0, 0, 0, 2])  # cluster 1 emptied; cluster 0 holds a 5 and two 7s
    w = confusion(y, pred, 3)
    assert w == [[0, 1, 2], [0, 0, 0], [2, 0, 1]]
    assert sum(map(sum, w)) == len(y)
    with pytest.raises(ValueError, match="cluster ids must lie in 0..1"):
        confusion(y, pred, 2)
