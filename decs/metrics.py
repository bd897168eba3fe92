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


def cluster_acc(y_true, y_pred) -> float:
    """Clustering accuracy: the fraction of samples correct under the best one-to-one map of
    clusters to classes, found with the Hungarian algorithm (``linear_sum_assignment``).

    Derived in :doc:`/book/02_clustering_and_metrics`.
    """
    w = contingency(y_true, y_pred)
    rows, cols = linear_sum_assignment(w, maximize=True)
    return float(w[rows, cols].sum() / w.sum())


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
