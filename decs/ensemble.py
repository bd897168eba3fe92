"""Sample stability from a clustering ensemble (Li et al., 2019): the O(n²) idea DECS starts from.

Given m base clusterings of the same n samples, the co-association matrix A (Fred & Jain, 2005)
says for every pair of samples how often the ensemble put them together:

    A_ij = (1/m) · #{r : π_r(i) = π_r(j)}

Each A_ij is then judged by how *decided* it is, with the same threshold and determinacy
functions DECS uses on sample–centroid probabilities (:mod:`decs.stability`), and averaged over
the sample's n − 1 partners into a stability s_i. Samples above an Otsu threshold of s form the
cluster core, the others the cluster halo.

Everything here is n×n in time and memory; :func:`decs.stability.soft_assign` replaces the n
partners of a sample by k centroids. Derived in :doc:`/book/05_ensembles_to_centroids`; timed against DECS in
:doc:`/book/09_linear_complexity`.
"""
from __future__ import annotations

import numpy as np
import torch

from .stability import determinacy, otsu_split, otsu_threshold, sample_stability

__all__ = ["co_association", "ensemble_stability", "stability_from_co_association", "core_halo"]


def _labels_matrix(labels_matrix) -> torch.Tensor:
    """The base clusterings as an n×m int64 tensor (one column per base clustering)."""
    if isinstance(labels_matrix, torch.Tensor):
        lab = labels_matrix.detach()
    else:
        lab = torch.as_tensor(np.asarray(labels_matrix))
    if lab.ndim != 2 or lab.shape[0] == 0 or lab.shape[1] == 0:
        raise ValueError(
            f"labels_matrix must be n×m (one row per sample, one column per base clustering, "
            f"both at least 1), got shape {tuple(lab.shape)}; stack label vectors with "
            "np.column_stack(list_of_labels)."
        )
    if lab.dtype.is_floating_point:
        if not torch.equal(lab, lab.round()):
            raise ValueError("labels_matrix must hold integer cluster labels; got non-integer values.")
    elif lab.dtype == torch.bool or lab.dtype.is_complex:
        raise ValueError(f"labels_matrix must hold integer cluster labels, got dtype {lab.dtype}.")
    return lab.to(torch.int64)


def co_association(labels_matrix, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The co-association matrix A (n×n) of an ensemble of m base clusterings.

        A_ij = (1/m) · #{r : π_r(i) = π_r(j)}

    ``labels_matrix`` is n×m: row i holds the labels sample i received from the m base
    clusterings (any integers; the labels of different clusterings need not correspond).
    A is symmetric with ones on the diagonal. Computed as H Hᵀ / m with H the n×(Σ_r k_r)
    one-hot matrix of all base clusterings, so every entry is an exact count before the
    division. O(n² Σ_r k_r) time and O(n²) memory. Derived in :doc:`/book/05_ensembles_to_centroids`.
    """
    lab = _labels_matrix(labels_matrix)
    n, m = lab.shape
    blocks = []
    for r in range(m):
        _, inverse = torch.unique(lab[:, r], return_inverse=True)
        blocks.append(torch.nn.functional.one_hot(inverse).to(dtype))
    h = torch.cat(blocks, dim=1)
    return (h @ h.T) / m


def _off_diagonal(a: torch.Tensor) -> torch.Tensor:
    """Row i of the n×n matrix a without its diagonal entry, as an n×(n−1) matrix."""
    n = a.shape[0]
    return a.masked_select(~torch.eye(n, dtype=torch.bool, device=a.device)).reshape(n, n - 1)


def stability_from_co_association(a: torch.Tensor, lam: float = 0.0, form: str = "linear", t=None,
                                  include_self: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Stability s_i of every sample from a co-association matrix a (n×n), and the threshold t.

        f_ij = determinacy(a_ij, t, form),    s_i = mean_j f_ij − λ · var_j f_ij

    over the partners j ≠ i (``include_self=False``, default) or over all j. ``t=None`` takes
    Otsu's threshold (:func:`decs.stability.otsu_threshold`) of the same entries. λ = 0 gives
    the plain mean determinacy of a sample's relations; λ > 0 is the DECS form of
    :func:`decs.stability.sample_stability`. Returns ``(s, t)``.
    Derived in :doc:`/book/05_ensembles_to_centroids`.
    """
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"the co-association matrix must be square n×n, got shape {tuple(a.shape)}.")
    if a.shape[0] < 2 and not include_self:
        raise ValueError("stability needs at least two samples (each is judged by its partners).")
    rel = a if include_self else _off_diagonal(a)
    if t is None:
        t = otsu_threshold(rel)
    t = torch.as_tensor(t, dtype=a.dtype, device=a.device)
    fq = determinacy(rel, t, form)
    return sample_stability(fq, lam), t


def ensemble_stability(labels_matrix, lam: float = 0.0, form: str = "linear", t=None,
                       include_self: bool = False, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Sample stability s (length n) of an ensemble of base clusterings (n×m labels).

    :func:`co_association` followed by :func:`stability_from_co_association` (see there for
    ``lam``, ``form``, ``t`` and ``include_self``). O(n²) time and memory: the cost DECS avoids.
    Derived in :doc:`/book/05_ensembles_to_centroids`.
    """
    a = co_association(labels_matrix, dtype=dtype)
    s, _ = stability_from_co_association(a, lam=lam, form=form, t=t, include_self=include_self)
    return s


def core_halo(stability, threshold=None, bins: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """Split samples into the cluster core (stable) and the cluster halo (the rest).

    A sample is in the core when s_i ≥ threshold. ``threshold=None`` takes Otsu's split of the
    stabilities after rescaling them to [0, 1] (min–max): the bins Otsu puts in the low class
    are the halo, the others the core, and the threshold returned is the right edge of the
    last halo bin, mapped back to the scale of s. (Not the left edge that
    :func:`decs.stability.otsu_threshold` returns: that edge would move the samples of the
    winning bin, which Otsu counted as low, into the core.)
    Returns ``(core, threshold)``: a boolean mask of length n and a 0-d tensor.
    If all stabilities are equal, every sample is core. Derived in :doc:`/book/05_ensembles_to_centroids`.
    """
    s = torch.as_tensor(stability)
    if s.ndim != 1 or s.numel() == 0:
        raise ValueError(f"stability must be a non-empty 1-D tensor (one value per sample), got shape {tuple(s.shape)}.")
    if not s.dtype.is_floating_point:
        s = s.to(torch.float64)
    if threshold is None:
        lo, hi = s.min(), s.max()
        if not hi > lo:
            return torch.ones_like(s, dtype=torch.bool), lo
        scaled = ((s - lo) / (hi - lo)).to(torch.float64)
        index, last_low_bin = otsu_split(scaled, bins)
        core = index > last_low_bin
        return core, (lo + (last_low_bin + 1).to(torch.float64) / bins * (hi - lo)).to(s.dtype)
    threshold = torch.as_tensor(threshold, dtype=s.dtype, device=s.device)
    return s >= threshold, threshold
