"""DEC (Xie, Girshick & Farhadi, ICML 2016): the pseudo-target method DECS replaces.

DEC sharpens its own soft assignments into a target distribution P and pulls Q towards it
with KL(P || Q). Where Q is confidently wrong, so is P: the book's chapter
:doc:`/book/04_dec_pseudo_targets` shows this on real data.
"""
from __future__ import annotations

import torch

from .stability import soft_assign as _student_t


def soft_assign(z: torch.Tensor, centroids: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """DEC's soft assignment: the Student-t kernel of :func:`decs.stability.soft_assign` with α = 1.

    Derived in :doc:`/book/04_dec_pseudo_targets`.
    """
    return _student_t(z, centroids, alpha)


def target_distribution(q: torch.Tensor) -> torch.Tensor:
    """DEC's target p_ij = (q_ij² / f_j) / Σ_j' (q_ij'² / f_j'), with cluster frequency f_j = Σ_i q_ij.

    Squaring sharpens confident assignments; dividing by f_j keeps large clusters from
    absorbing everything. Computed on the full data, then held fixed for T iterations.
    Derived in :doc:`/book/04_dec_pseudo_targets`.
    """
    if q.ndim != 2:
        raise ValueError(f"q must be n×k, got shape {tuple(q.shape)}.")
    weight = q.pow(2) / q.sum(dim=0).clamp_min(torch.finfo(q.dtype).tiny)
    return weight / weight.sum(dim=1, keepdim=True)


def kl_loss(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(P || Q) = (1/n) Σ_i Σ_j p_ij log(p_ij / q_ij), DEC's clustering loss (mean over the batch).

    Derived in :doc:`/book/04_dec_pseudo_targets`.
    """
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same shape, got {tuple(p.shape)} and {tuple(q.shape)}.")
    tiny = torch.finfo(q.dtype).tiny
    return torch.sum(p * (torch.log(p.clamp_min(tiny)) - torch.log(q.clamp_min(tiny)))) / q.shape[0]
