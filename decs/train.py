"""The three stages of DECS and DEC, each a loop that reads as the algorithm: the autoencoder's
pretraining, the k-means start, and the clustering loop. Walked through in
:doc:`/book/08_training_usps`.

* :func:`pretrain` — Adam on the mean-squared error of reconstructing augmented images
* :func:`kmeans_init` — k-means on the embeddings gives the first centroids
* :func:`cluster` — DECS (instability loss) or DEC (KL to pseudo targets)
* :func:`batch_loss` — one clustering step's q, Otsu's threshold t and loss

The pieces they call live where they belong: batches and augmentation in :mod:`decs.passes`,
device and precision in :mod:`decs.device`, checkpoints in :mod:`decs.files`, what the clustering
loop carries from one evaluation to the next in :mod:`decs.bookkeeping`. A whole run with its
record is :func:`decs.runs.run`. Under ``torchrun`` the same loop splits each global batch across
the processes (:mod:`decs.distributed`, :doc:`/book/distributed`); with one process that code is
never reached.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans
from torch import nn
from tqdm.auto import tqdm

from . import dec as dec_math
from . import distributed
from .bookkeeping import LoopState
from .config import METHODS, Config
from .device import autocast
from .files import checkpoint_key, load_checkpoint, save_checkpoint, stage_provenance
from .models import ConvAutoencoder
from .passes import augment, clustering_batch, epoch_batches
from .provenance import RunClock, tick
from .stability import balance_penalty, instability, otsu_threshold, soft_assign


# -------------------------------------------------------------------------- pretraining
# The pretraining checkpoint is written every 10 epochs, and after any epoch that ends this many
# seconds after the last write: a 70,000-image epoch takes minutes on one CPU thread, and a process
# that ends with its session would otherwise lose up to ten of them. Where it is written changes
# nothing in the result (a resumed run is identical to an unbroken one).
SAVE_EVERY_S = 600.0


def pretrain(model: ConvAutoencoder, x: torch.Tensor, cfg: Config, generator: torch.Generator,
             checkpoint: Path | None = None, progress: bool = True,
             on_epoch: Callable[[int, float], None] | None = None, key: dict | None = None,
             snapshots: tuple[int, ...] = ()) -> tuple[list[float], float]:
    """Pretrain the autoencoder: Adam on the mean-squared error of reconstructing each augmented
    image (input and target are the same augmented image), ``cfg.pretrain_epochs`` epochs over
    shuffled data. Returns the mean loss of each epoch and the seconds spent pretraining (summed
    over interrupted sessions). Resumes from ``checkpoint``, which must have been written with
    the same ``key``; it is written every 10 epochs and after any epoch that ends
    ``SAVE_EVERY_S`` seconds after the last write. At each epoch count in ``snapshots`` a copy of the checkpoint is kept as
    ``pretrain-epoch<E>.pt`` (Adam runs at a constant rate: exactly an E-epoch pretraining).
    ``cfg.pretrain_epoch="keras"`` and ``cfg.pretrain_adam="keras"`` take the authors' Keras forms
    (:func:`decs.passes.epoch_batches`, :func:`keras_epsilon`; :doc:`/book/dying_clusters`).
    Derived in :doc:`/book/03_representation_learning`.
    """
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    key = checkpoint_key(**key) if key is not None else None  # settings added later, at their defaults, drop out
    state = load_checkpoint(checkpoint, key, "was pretrained")
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
    losses, stream = (state["losses"], state.get("stream")) if state else ([], None)
    processes, commits, threads = stage_provenance(state, len(losses) < cfg.pretrain_epochs, "the pretraining")
    clock = RunClock(state["seconds"] if state else 0.0)  # less any time the process was stopped
    model.train()
    saved_at = time.monotonic()
    bar = tqdm(range(len(losses), cfg.pretrain_epochs), desc="pretrain", disable=not progress,
               initial=len(losses), total=cfg.pretrain_epochs)
    for epoch in bar:
        steps, stream = epoch_batches(x.shape[0], cfg, generator, x.device, stream)
        total, seen = torch.zeros((), device=x.device), 0
        for idx in steps:
            if cfg.pretrain_adam == "keras":
                keras_epsilon(opt)
            xb = augment(x[idx], generator, cfg.shift, cfg.rotation) if cfg.augment else x[idx]
            with autocast(cfg, x.device):
                out = model(xb)
            loss = F.mse_loss(out.float(), xb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tick()
            total += loss.detach() * len(idx)
            seen += len(idx)
        losses.append(float(total) / seen)
        bar.set_postfix(mse=f"{losses[-1]:.5f}")
        if (len(losses) == cfg.pretrain_epochs or len(losses) % 10 == 0 or len(losses) in snapshots
                or time.monotonic() - saved_at >= SAVE_EVERY_S):
            state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "generator": generator.get_state(),
                     "losses": losses, "key": key, "seconds": clock.seconds(), "stream": stream,
                     "processes": processes, "commits": commits, "threads": threads}
            save_pretraining(checkpoint, state, snapshots)
            saved_at = time.monotonic()
        if on_epoch is not None:
            on_epoch(epoch, losses[-1])
    return losses, clock.seconds()


def keras_epsilon(opt: torch.optim.Adam) -> None:
    """Set Adam's ε for the coming step as Keras applies it: Keras adds ε̂ = 1e-7 to √v_t before
    the bias correction, which is ε̂ / √(1 − β₂ᵗ) added to √v̂_t (:doc:`/book/dying_clusters`)."""
    t = int(opt.state[opt.param_groups[0]["params"][0]].get("step", 0)) + 1
    opt.param_groups[0]["eps"] = 1e-7 / math.sqrt(1 - opt.param_groups[0]["betas"][1] ** t)


def save_pretraining(checkpoint: Path | None, state: dict, snapshots: tuple[int, ...] = ()) -> None:
    """Save the pretraining checkpoint and, at an epoch count in ``snapshots``, a copy beside it
    as ``pretrain-epoch<E>.pt`` whose key says ``pretrain_epochs=E``."""
    save_checkpoint(checkpoint, state)
    epochs = len(state["losses"])
    if checkpoint is not None and epochs in snapshots:
        save_checkpoint(Path(checkpoint).with_name(f"pretrain-epoch{epochs}.pt"),
                        {**state, "key": {**(state["key"] or {}), "pretrain_epochs": epochs}})


# ----------------------------------------------------------------------- k-means start
def kmeans_init(z: torch.Tensor, n_clusters: int, n_init: int = 20, seed: int = 0
                ) -> tuple[torch.Tensor, np.ndarray]:
    """k-means (``n_init`` restarts, scikit-learn) on the embeddings: the first centroids
    (a k×d tensor on z's device and dtype) and the k-means labels."""
    km = KMeans(n_clusters=n_clusters, n_init=n_init, random_state=seed)
    labels = km.fit_predict(z.detach().cpu().double().numpy())
    centers = torch.as_tensor(km.cluster_centers_, dtype=z.dtype, device=z.device)
    return centers, labels


# ------------------------------------------------------------------------- clustering
@dataclass
class ClusterResult:
    """What :func:`cluster` learned and what it saw on the way."""
    encoder: nn.Module
    centroids: torch.Tensor
    labels: np.ndarray
    history: list[dict] = field(default_factory=list)
    iterations: int = 0
    stopped_early: bool = False
    seconds: float = 0.0  # time spent clustering, summed over interrupted sessions
    processes: int = 1  # how many processes the clustering took (files.stage_provenance)
    commits: list = field(default_factory=list)  # the code that trained it (files.stage_provenance)
    threads: list = field(default_factory=list)  # each process's torch threads (files.stage_provenance)
    stages: dict = field(default_factory=dict)  # sample indices, iterations, embeddings z and centroids


def threshold(encoder, xb, centroids, cfg: Config, q_train: torch.Tensor) -> torch.Tensor | float:
    """The threshold t of this batch: Otsu's (on an eval-mode pass if configured) or 1/k."""
    if cfg.threshold == "1/k":
        return 1.0 / centroids.shape[0]
    if cfg.threshold != "otsu":
        raise ValueError(f"threshold must be 'otsu' or '1/k', got {cfg.threshold!r}.")
    # with several processes, the histogram is summed over them: the whole batch's t on every rank
    otsu = distributed.otsu_threshold if distributed.world_size() > 1 else otsu_threshold
    if not cfg.otsu_bn_eval:
        return otsu(q_train, cfg.otsu_bins)
    with torch.no_grad(), autocast(cfg, xb.device):
        encoder.eval()
        q = soft_assign(encoder(xb).float(), centroids, cfg.alpha)
        encoder.train()
    return otsu(q, cfg.otsu_bins)


def batch_loss(encoder: nn.Module, xb: torch.Tensor, centroids: torch.Tensor, cfg: Config, method: str,
                p: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | float | None, torch.Tensor]:
    """One clustering step's (q, t, loss) on the batch xb (DEC: with its targets p). With several
    processes xb is this process's shard and the loss is the whole batch's (``decs.distributed``)."""
    alpha = cfg.kernel_alpha(method)
    with autocast(cfg, xb.device):
        z = encoder(xb)
    q = soft_assign(z.float(), centroids, alpha)
    if distributed.world_size() > 1:
        if method == "dec":
            return q, None, distributed.kl_loss(p, q)
        t = threshold(encoder, xb, centroids, cfg, q)
        loss = distributed.instability(q, t, cfg.lam, cfg.form, cfg.variance_reward)
        if cfg.balance:
            loss = loss + cfg.balance * distributed.balance_penalty(q)
        return q, t, loss
    if method == "dec":
        return q, None, dec_math.kl_loss(p, q)
    t = threshold(encoder, xb, centroids, cfg, q)
    loss = instability(q, t, cfg.lam, cfg.form, cfg.variance_reward)
    if cfg.balance:
        loss = loss + cfg.balance * balance_penalty(q)
    return q, t, loss


def cluster(encoder: nn.Module, centroids: torch.Tensor, x: torch.Tensor, cfg: Config,
            generator: torch.Generator, method: str = "decs", y: np.ndarray | None = None,
            checkpoint: Path | None = None, progress: bool = True,
            on_eval: Callable[[dict, torch.Tensor, torch.Tensor], None] | None = None,
            key: dict | None = None, stages: tuple[int, ...] = (), stage_samples: int = 2000
            ) -> ClusterResult:
    """The clustering stage: mini-batch Adam on encoder and centroids, the decoder dropped.

    ``method="decs"``: minimise the instability loss (:func:`decs.stability.instability`) for
    ``cfg.maxiter`` iterations. ``method="dec"``: minimise KL(P‖Q) to DEC's target P, recomputed
    on all data every ``cfg.dec_update_interval`` iterations; stop when fewer than ``cfg.tol`` of
    the labels change between two updates. Every ``update_interval`` iterations (and after the
    last) the clean data are labelled argmax_j q_ij, scored when ``y`` is given, and the record
    (with the diagnostics since the last one: :class:`decs.bookkeeping.Trace`) appended to the
    history; ``on_eval(record, z, centroids)`` is then called. At the evaluations in ``stages``
    the embedding of a fixed sample of ``stage_samples`` is kept (the t-SNE stages of :doc:`/book/embedding_tsne`).
    Resumes from ``checkpoint``, which must have been written with the same ``key``
    (:class:`decs.bookkeeping.LoopState`). Under ``torchrun`` each process trains on its shard of
    every global batch; loss, threshold and gradients are the whole batch's (:doc:`/book/distributed`).
    Derived in :doc:`/book/07_instability_loss` and :doc:`/book/04_dec_pseudo_targets`.
    """
    check_method(method)
    interval = cfg.update_interval if method == "decs" else cfg.dec_update_interval
    centroids = nn.Parameter(centroids.detach().clone())
    params = list(encoder.parameters()) + [centroids]
    opt = torch.optim.Adam(params, lr=cfg.lr)
    loop = LoopState(encoder, centroids, opt, generator, x, cfg, method, y, checkpoint, key, stages,
                     stage_samples, on_eval, progress)  # resumed from the checkpoint, if any
    several = distributed.world_size() > 1
    encoder.train()
    while loop.it < cfg.maxiter and not loop.stopped_early:
        if loop.it > loop.start and loop.it % cfg.checkpoint_every == 0:
            loop.save()
        if loop.it % interval == 0:
            q_all, delta = loop.evaluation()
            if method == "dec":
                if loop.it > 0 and delta < cfg.tol:
                    loop.stopped_early = True
                    break
                loop.target = dec_math.target_distribution(q_all)
        xb, idx = clustering_batch(x, loop.next_batch(), generator, cfg)
        q, t, loss = batch_loss(encoder, xb, centroids, cfg, method, loop.target[idx] if method == "dec" else None)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if several:  # every rank takes the same step: the whole batch's gradient
            distributed.average_gradients(params)
        loop.trace.add(q.detach(), t, cfg, centroids.grad)
        opt.step()
        if several:  # batch norm saw only this rank's shard: keep the ranks' statistics equal
            distributed.average_buffers(encoder)
        loop.step_done(loss)
    loop.finish()
    return ClusterResult(encoder=encoder, centroids=centroids.detach(), labels=loop.state["labels_last"],
                         history=loop.state["history"], iterations=loop.it, stopped_early=loop.stopped_early,
                         seconds=loop.state["seconds"], processes=loop.state["processes"],
                         commits=loop.state["commits"], threads=loop.state["threads"],
                         stages=loop.state["stages"])


def check_method(method: str) -> None:
    """Refuse a method other than ``"decs"`` or ``"dec"``, saying which there are."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
