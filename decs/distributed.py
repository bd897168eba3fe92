"""DECS and DEC on several processes (``torchrun``), exact across ranks.

Each process (a *rank*) holds the whole data set and the same network; the global mini-batch
of ``Config.batch_size`` images is cut into contiguous shards, one per rank. What is computed
per sample needs no care. What the loss computes over the *batch* does, and each such quantity
is a sum, so one all-reduce of a few numbers gives every rank the whole batch's value:

* Otsu's threshold t depends only on the 1,000-bin histogram of q (:func:`otsu_threshold`);
* the code form's batch variance var_i s_i needs Σ s_i and Σ s_i², with gradients flowing back
  to every rank (:func:`global_sum`, :func:`instability`);
* DEC's target needs the column sums f_j = Σ_i q_ij (:func:`target_distribution`), its loss
  the sum of the per-sample KL terms (:func:`kl_loss`);
* the gradients are averaged over ranks (:func:`average_gradients`), the batch-norm running
  statistics too (:func:`average_buffers`); full-data embeddings are gathered
  (:func:`gather_rows`) and k-means runs once and is broadcast (:func:`broadcast`).

With one process every function here is never called: :mod:`decs.train` keeps its
single-process path unchanged. Derived and checked in :doc:`/book/distributed`.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn

from .stability import determinacy, otsu_threshold as _otsu_threshold, sample_stability


# ------------------------------------------------------------------------------ who am I
def init_from_env(device: torch.device | str | None = None) -> bool:
    """Join the process group ``torchrun`` describes (``WORLD_SIZE``, ``RANK``, ``MASTER_ADDR``…
    in the environment), once: backend ``nccl`` for a CUDA device (each rank on GPU
    ``LOCAL_RANK``), ``gloo`` on the CPU. Does nothing in a single process (no ``WORLD_SIZE`` or
    ``WORLD_SIZE=1``) or when a group exists already. Returns whether more than one process runs.
    Used in :doc:`/book/distributed`."""
    if dist.is_available() and not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        cuda = torch.device(device).type == "cuda" if device is not None else torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if cuda else "gloo")
    return world_size() > 1


def world_size() -> int:
    """Number of processes (1 without a process group). :doc:`/book/distributed`."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank: the process group's; before the group is joined, ``RANK`` when
    ``torchrun`` started several processes (so only rank 0 ever writes files); else 0.
    :doc:`/book/distributed`."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return int(os.environ.get("RANK", "0"))
    return 0


def is_main() -> bool:
    """Whether this is rank 0, the one process that writes checkpoints and records.
    :doc:`/book/distributed`."""
    return rank() == 0


def backend() -> str:
    """The process group's backend (``"gloo"``, ``"nccl"``), ``"none"`` in one process.
    :doc:`/book/distributed`."""
    return str(dist.get_backend()) if world_size() > 1 else "none"


# ------------------------------------------------------------------------ the batch split
def shard(n: int, rank_: int | None = None, world: int | None = None) -> slice:
    """This rank's contiguous rows of n: sizes differ by at most one, lower ranks take the extra
    rows (as ``numpy.array_split``). Rank r of W gets rows ⌊rn/W⌋ … ⌊(r+1)n/W⌋ − 1.
    :doc:`/book/distributed`."""
    r = rank() if rank_ is None else rank_
    w = world_size() if world is None else world
    return slice(r * n // w, (r + 1) * n // w)


# ----------------------------------------------------------------------------- reductions
class _GlobalSum(torch.autograd.Function):
    """Σ over ranks, forward *and* backward (the gradient of a sum is handed to every term)."""

    @staticmethod
    def forward(ctx, x):
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def global_sum(x: torch.Tensor) -> torch.Tensor:
    """Σ over ranks of x, differentiable: every rank gets the sum, and in the backward pass every
    rank's x receives the sum over ranks of the gradients that reach the result.

    Every rank computes the same loss L from the sum, so that backward sum is W·∂L/∂sum, and
    :func:`average_gradients` divides by W again: each rank ends with its own samples' exact
    share of ∂L, and the average is the whole batch's gradient. A gather without a summing
    backward (``torch.distributed.all_gather``) gives each rank only ∂L through its own samples
    *once*; averaged, that is ∂L/W. Derived in :doc:`/book/distributed`."""
    if world_size() == 1:
        return x
    return _GlobalSum.apply(x)


def otsu_threshold(q_local: torch.Tensor, bins: int = 1000) -> torch.Tensor:
    """Otsu's threshold t of the whole batch, from this rank's rows q_local: the 1,000 bin counts
    are summed over ranks before the split, so t is exactly
    :func:`decs.stability.otsu_threshold` of the whole batch's q (the same binning, the same
    split). :doc:`/book/distributed`."""
    def summed(hist: torch.Tensor) -> torch.Tensor:
        dist.all_reduce(hist)  # integer counts: exact in any order
        return hist

    return _otsu_threshold(q_local, bins, reduce=summed if world_size() > 1 else None)


def instability(q_local: torch.Tensor, t, lam: float = 0.4, form: str = "code",
                variance_reward: bool = True) -> torch.Tensor:
    """The instability loss L_c of the whole batch (:func:`decs.stability.instability`), from this
    rank's rows: s_i per sample, then the batch mean and (code form) population variance from
    Σ s_i, Σ s_i² and n summed over ranks,

        mean = Σ s_i / n,   var = Σ s_i² / n − mean²,   L_c = 1 − (mean + var)   (code form)

    Every rank returns the same L_c; with :func:`average_gradients` the averaged gradient is the
    whole batch's. :doc:`/book/distributed`."""
    s = sample_stability(determinacy(q_local, t, "linear" if form == "code" else "quadratic"), lam)
    n = global_sum(torch.tensor(float(s.shape[0]), dtype=s.dtype, device=s.device))
    sums = global_sum(torch.stack([s.sum(), (s * s).sum()]))
    mean = sums[0] / n
    if form == "code" and variance_reward:
        return 1.0 - (mean + (sums[1] / n - mean * mean))
    return 1.0 - mean


def balance_penalty(q_local: torch.Tensor) -> torch.Tensor:
    """:func:`decs.stability.balance_penalty` of the whole batch: its mean assignment q̄_j from
    the column sums Σ_i q_ij and n summed over ranks. :doc:`/book/distributed`."""
    n = global_sum(torch.tensor(float(q_local.shape[0]), dtype=q_local.dtype, device=q_local.device))
    mean = global_sum(q_local.sum(dim=0)) / n
    return (mean * torch.log(mean * q_local.shape[1]).clamp_min(-1e4)).sum()


def kl_loss(p_local: torch.Tensor, q_local: torch.Tensor) -> torch.Tensor:
    """DEC's KL(P‖Q) averaged over the whole batch (:func:`decs.dec.kl_loss`), from this rank's
    rows: the per-sample terms and n are summed over ranks. :doc:`/book/distributed`."""
    tiny = torch.finfo(q_local.dtype).tiny
    local = torch.sum(p_local * (torch.log(p_local.clamp_min(tiny)) - torch.log(q_local.clamp_min(tiny))))
    n = global_sum(torch.tensor(float(q_local.shape[0]), dtype=q_local.dtype, device=q_local.device))
    return global_sum(local) / n


def target_distribution(q_local: torch.Tensor) -> torch.Tensor:
    """DEC's target p_ij = (q_ij²/f_j) / Σ_j' (q_ij'²/f_j') for this rank's rows, with the
    cluster frequencies f_j = Σ_i q_ij summed over *all* ranks' rows: k numbers to all-reduce
    instead of the N×k soft assignments (:func:`decs.dec.target_distribution`).
    :doc:`/book/distributed`."""
    f = q_local.sum(dim=0)
    if world_size() > 1:
        dist.all_reduce(f)
    weight = q_local.pow(2) / f.clamp_min(torch.finfo(q_local.dtype).tiny)
    return weight / weight.sum(dim=1, keepdim=True)


# ------------------------------------------------------------------- keeping ranks equal
def average_gradients(params) -> None:
    """Replace each parameter's gradient by its mean over ranks, with one all-reduce of all
    gradients laid end to end (what ``DistributedDataParallel`` does in buckets).
    :doc:`/book/distributed`."""
    params = [p for p in params if p.grad is not None]
    if world_size() == 1 or not params:
        return
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat)
    flat /= world_size()
    for p, g in zip(params, flat.split([p.numel() for p in params])):
        p.grad.copy_(g.view_as(p.grad))


def average_buffers(module: nn.Module) -> None:
    """Average the floating-point buffers (batch norm's running mean and variance) over ranks.

    Each rank's batch norm normalises its own shard in training mode and updates its running
    statistics from it; averaging them after each step keeps every rank's network identical
    (so a checkpoint of rank 0 is every rank's state). The mean of the shards' means is the
    batch mean; the mean of their variances misses the spread between shard means, so this is
    close to, not equal to, one process. :doc:`/book/distributed`."""
    bufs = [b for b in module.buffers() if b.is_floating_point()]
    if world_size() == 1 or not bufs:
        return
    flat = torch.cat([b.reshape(-1) for b in bufs])
    dist.all_reduce(flat)
    flat /= world_size()
    for b, v in zip(bufs, flat.split([b.numel() for b in bufs])):
        b.copy_(v.view_as(b))


def broadcast(x: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Rank ``src``'s x on every rank (in place; x must have the same shape and dtype everywhere).
    :doc:`/book/distributed`."""
    if world_size() > 1:
        dist.broadcast(x, src)
    return x


def broadcast_module(module: nn.Module, src: int = 0) -> nn.Module:
    """Copy rank ``src``'s parameters and buffers into every rank's module.
    :doc:`/book/distributed`."""
    if world_size() > 1:
        with torch.no_grad():
            for t in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(t.data, src)
    return module


def gather_rows(local: torch.Tensor, n: int) -> torch.Tensor:
    """The n rows every rank computed a :func:`shard` of, on every rank: each rank writes its
    rows into zeros and the ranks sum. Exact, since x + 0 = x in floating point.
    :doc:`/book/distributed`."""
    if world_size() == 1:
        return local
    full = local.new_zeros((n, *local.shape[1:]))
    full[shard(n)] = local
    dist.all_reduce(full)
    return full


def barrier() -> None:
    """Wait for every rank (nothing in one process). :doc:`/book/distributed`."""
    if world_size() > 1:
        dist.barrier()
