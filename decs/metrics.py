"""Scores for a clustering against ground-truth classes: ACC (Hungarian), NMI and ARI.

Derived in :doc:`/book/02_clustering_and_metrics`.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score


def _labels(y, name: str) -> np.ndarray:
    if hasattr(y, "detach"):
        y = y.detach().cpu().numpy()
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of labels, got shape {y.shape}.")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError(f"{name} must hold integer labels, got values like {y[:3]}.")
        y = y.astype(np.int64)
    return y


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {y_true.size} and {y_pred.size}.")
    if y_true.size == 0:
        raise ValueError("cannot score an empty clustering.")
    return y_true, y_pred


def contingency(y_true, y_pred) -> np.ndarray:
    """The square count matrix w[j, c]: how many samples of class c were placed in cluster j."""
    y_true, y_pred = _pair(y_true, y_pred)
    _, t = np.unique(y_true, return_inverse=True)
    _, p = np.unique(y_pred, return_inverse=True)
    size = max(t.max(), p.max()) + 1
    w = np.zeros((size, size), dtype=np.int64)
    np.add.at(w, (p, t), 1)
    return w


def confusion(y_true, y_pred, n_clusters: int) -> list[list[int]]:
    """The run record's confusion matrix: row j counts the samples of each class (columns, in sorted
    class order) that cluster j holds, for every cluster id 0..n_clusters-1, emptied ones included
    (a row of zeros). Which classes share a cluster is read off a row (:doc:`/book/dying_clusters`)."""
    y_true, y_pred = _pair(y_true, y_pred)
    _, t = np.unique(y_true, return_inverse=True)
    if y_pred.min() < 0 or y_pred.max() >= n_clusters:
        raise ValueError(f"cluster ids must lie in 0..{n_clusters - 1}, got {y_pred.min()}..{y_pred.max()}.")
    w = np.zeros((n_clusters, t.max() + 1), dtype=np.int64)
    np.add.at(w, (y_pred.astype(np.int64), t), 1)
    return w.tolist()


def cluster_acc(y_true, y_pred) -> float:
    """Clustering accuracy: the fraction of samples correct under the best one-to-one map of
    clusters to classes, found with the Hungarian algorithm (``linear_sum_assignment``).

    Derived in :doc:`/book/02_clustering_and_metrics`.
    """
    w = contingency(y_true, y_pred)
    rows, cols = linear_sum_assignment(w, maximize=True)
    return float(w[rows, cols].sum() / w.sum())


def cluster_to_class(y_true, y_pred) -> dict[int, int]:
    """The one-to-one map of cluster labels to class labels that ACC scores: ``{cluster: class}``.

    Found, as in :func:`cluster_acc`, by the Hungarian algorithm on the contingency counts.
    Labels keep their own values (a cluster called 7 stays 7). With more clusters than
    classes the surplus clusters map to no class and are absent from the dictionary.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    classes, clusters = np.unique(y_true), np.unique(y_pred)
    w = contingency(y_true, y_pred)  # rows: clusters in sorted order, columns: classes (padded)
    rows, cols = linear_sum_assignment(w, maximize=True)
    return {int(clusters[r]): int(classes[c]) for r, c in zip(rows, cols)
            if r < len(clusters) and c < len(classes)}


def matched_labels(y_true, y_pred, unmatched: int = -1) -> np.ndarray:
    """Each sample's cluster renamed to the class it is matched to (:func:`cluster_to_class`).

    Samples of a cluster that maps to no class get ``unmatched``. The fraction of samples where
    the result equals ``y_true`` is :func:`cluster_acc`.
    """
    mapping = cluster_to_class(y_true, y_pred)
    y_pred = _labels(y_pred, "y_pred")
    return np.array([mapping.get(int(c), unmatched) for c in y_pred], dtype=np.int64)


def nmi(y_true, y_pred) -> float:
    """Normalised mutual information (arithmetic-mean normalisation, scikit-learn's default)."""
    y_true, y_pred = _pair(y_true, y_pred)
    return float(normalized_mutual_info_score(y_true, y_pred))


def ari(y_true, y_pred) -> float:
    """Adjusted Rand index."""
    y_true, y_pred = _pair(y_true, y_pred)
    return float(adjusted_rand_score(y_true, y_pred))


def evaluate(y_true, y_pred) -> dict[str, float]:
    """ACC, NMI and ARI in one dictionary, rounded to 5 decimals as the run records store them."""
    return {"acc": round(cluster_acc(y_true, y_pred), 5),
            "nmi": round(nmi(y_true, y_pred), 5),
            "ari": round(ari(y_true, y_pred), 5)}


def max_acc_with_empty_cluster(y_true) -> float:
    """The highest ACC that a clustering into k clusters can score when one of them is empty:
    1 − n_min / n, with n_min the size of the smallest class.

    With at most k − 1 clusters in use, the one-to-one map of :func:`cluster_acc` reaches at most
    k − 1 classes, so every sample of some class is counted wrong; at best that class is the
    smallest. A final ACC above this bound therefore proves that all k clusters were in use, for
    runs whose logs hold no cluster sizes (the authors' code). Derived in
    :doc:`/book/dying_clusters`.
    """
    y_true = _labels(y_true, "y_true")
    if y_true.size == 0:
        raise ValueError("cannot bound the ACC of an empty set of labels.")
    counts = np.unique(y_true, return_counts=True)[1]
    return float(1 - counts.min() / counts.sum())
