"""Training: autoencoder pretraining, k-means initialisation, and the clustering loop.

One code path for every profile and device. The data lives on the training device; each
mini-batch is augmented there, as a whole batch. Every stage checkpoints, so a run that is
interrupted resumes to the identical result. Walked through in :doc:`/book/08_training_usps`.

The pieces, in the order a run uses them:

* :func:`augment` — random shift and rotation of a batch (on its device)
* :func:`pretrain` — the autoencoder, mean-squared reconstruction error
* :func:`autocast` — bfloat16 forward passes while training, an opt-in (``precision``)
* :func:`kmeans_init` — k-means on the embeddings gives the first centroids
* :func:`cluster` — DECS (instability loss) or DEC (KL to pseudo targets)
* :func:`run` — all of the above with checkpoints and a JSON run record

Under ``torchrun`` (more than one process) the same loop splits each global batch across the
processes and reduces what the loss needs over the whole batch (``decs.distributed``,
:doc:`/book/distributed`); with one process that code is never reached.
"""
from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
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
from .config import METHODS, Config
from .metrics import confusion, evaluate
from .models import ConvAutoencoder, make_autoencoder
from .stability import balance_penalty, determinacy, instability, otsu_threshold, sample_stability, soft_assign

REPO_ROOT = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------- set-up
def get_device(device: str | torch.device | None = None) -> torch.device:
    """The training device: the argument, else ``DECS_DEVICE``, else cuda if available, else cpu."""
    name = device or os.environ.get("DECS_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's global generators (the training code itself
    draws from explicit generators, so this only matters for code that uses the globals)."""
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_generator(device: torch.device, seed: int) -> torch.Generator:
    """An explicit random generator on ``device``: its state is saved in checkpoints."""
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


# ----------------------------------------------------------------------- precision
def autocast(cfg: Config, device: torch.device):
    """The context the network's training forward passes run in: bfloat16 autocast on
    ``device`` when ``cfg.precision == "bf16"`` (convolutions and matrix products in bf16,
    which CPUs with AVX-512 BF16 and recent GPUs run faster), else nothing changes. The caller
    casts the output back to fp32 before any loss, so q, Otsu's threshold and the scores are
    fp32 either way. An opt-in of this book, off in every profile; its speed and its effect on
    the final accuracy are measured in :doc:`/book/reproducibility`."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16,
                          enabled=cfg.precision == "bf16")


# ----------------------------------------------------------------------- augmentation
def augment(x: torch.Tensor, generator: torch.Generator | None = None,
            shift: float = 0.1, rotation: float = 10.0, keep: slice | None = None) -> torch.Tensor:
    """Randomly shift (up to ``shift`` of width and height) and rotate (up to ``rotation``
    degrees) every image of a batch, on the batch's device.

    The same transformations as the authors' Keras ``ImageDataGenerator`` (bilinear
    interpolation, nearest-pixel fill at the border), done as one ``affine_grid`` /
    ``grid_sample`` call for the whole batch instead of image by image on the CPU.
    Shown in :doc:`/book/03_representation_learning`.

    ``keep``: draw the transformations of the whole batch x (the random stream of one process)
    but return only the rows ``x[keep]``, transformed — a process's shard of the global batch
    (:doc:`/book/distributed`).
    """
    if x.ndim != 4:  # the MLP's feature vectors: nothing to shift or rotate
        raise ValueError(f"augment shifts and rotates images N×C×H×W, got shape {tuple(x.shape)}; "
                         "set augment=False and augment_clustering=False for data that are not images.")
    n = x.shape[0]
    if n == 0 or (shift == 0 and rotation == 0):
        return x
    u = torch.rand(n, 3, generator=generator, device=x.device, dtype=x.dtype) * 2 - 1
    angle = u[:, 0] * math.radians(rotation)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # affine_grid works in normalised coordinates [-1, 1]: a shift of s·width pixels is 2·s.
    tx, ty = u[:, 1] * 2 * shift, u[:, 2] * 2 * shift
    if keep is not None:
        x, cos, sin, tx, ty = x[keep], cos[keep], sin[keep], tx[keep], ty[keep]
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


# --------------------------------------------------------------------- full-data passes
@torch.no_grad()
def embed(encoder: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Embeddings z of all of ``x``, batch by batch, in eval mode (batch norm uses its running
    statistics) and without building a graph. The encoder's mode is restored afterwards."""
    was_training = encoder.training
    encoder.eval()
    z = torch.cat([encoder(x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)])
    encoder.train(was_training)
    return z


def embed_all(encoder: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """:func:`embed` of all of x; with several processes each embeds its ``decs.distributed.shard``
    of the rows and every process receives all of them (``decs.distributed.gather_rows``)."""
    if distributed.world_size() == 1:
        return embed(encoder, x, batch_size)
    return distributed.gather_rows(embed(encoder, x[distributed.shard(x.shape[0])], batch_size), x.shape[0])


@torch.no_grad()
def predict(encoder: nn.Module, centroids: torch.Tensor, x: torch.Tensor, alpha: float,
            batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft assignments q of all of ``x`` and the labels argmax_j q_ij."""
    q = soft_assign(embed(encoder, x, batch_size), centroids, alpha)
    return q, q.argmax(dim=1)


@torch.no_grad()
def recalibrate_batchnorm(module: nn.Module, x: torch.Tensor, batch_size: int = 512) -> nn.Module:
    """Re-estimate every batch-norm layer's running mean and variance from the clean images x,
    with the weights fixed ("precise batch norm").

    Batch norm keeps an exponential average of batch statistics with momentum 0.01 (Keras's
    0.99, as in the authors' code): after s training steps the initial statistics still weigh
    0.99^s. After the paper's 18,500 pretraining steps (500 epochs of 37 batches of USPS; the
    authors' code takes 36 per epoch) that is nothing; after a short run it is most of the
    estimate, and evaluation mode normalises with statistics the network never had.
    ``momentum=None`` makes PyTorch keep a plain average over the batches seen instead; each
    layer's momentum is restored afterwards. Explained in :doc:`/book/03_representation_learning`.
    """
    layers = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
    was_training = module.training
    module.train()
    for i in range(0, x.shape[0], batch_size):
        module(x[i:i + batch_size])
    for m, momentum in zip(layers, momenta):
        m.momentum = momentum
    module.train(was_training)
    return module


# ------------------------------------------------------------------------- checkpoints
def _save(path: Path | str | None, state: dict) -> None:
    if path is None or not distributed.is_main():  # one process writes: every rank holds the same state
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # atomic: an interrupted save never leaves a broken checkpoint


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: truncated or corrupted, or written with other settings.
    The message names the file and what to do."""


def read_checkpoint(path: Path | str | None) -> dict | None:
    """A checkpoint's contents on the CPU, None when there is none; a file that cannot be read
    raises :class:`CheckpointError` saying what to do."""
    if path is None or not Path(path).exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError... for a broken file
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or corrupted: "
                              f"{str(err).split('. ')[0].splitlines()[0] if str(err) else type(err).__name__}); delete it "
                              "to start that stage again.") from err
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a checkpoint of this package (it holds a {type(state).__name__}); "
                              "delete it to start that stage again.")
    return state


def _load_matching(path: Path | str | None, key, what: str) -> dict | None:
    """The checkpoint at ``path`` (None when there is none), after checking that it was written
    with the same settings (``key``); refuses one of other settings, saying what to do."""
    state = read_checkpoint(path)
    if state is not None and state.get("key") != key:
        raise CheckpointError(f"{path} {what} with other settings ({state.get('key')}); delete it or "
                              "use another checkpoint path.")
    return state


def _batches(n: int, batch_size: int):
    """Start and stop of each mini-batch of an epoch; the last one may be smaller."""
    return [(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


# -------------------------------------------------------------------------- pretraining
def pretrain(model: ConvAutoencoder, x: torch.Tensor, cfg: Config, generator: torch.Generator,
             checkpoint: Path | None = None, progress: bool = True,
             on_epoch: Callable[[int, float], None] | None = None, key: dict | None = None,
             snapshots: tuple[int, ...] = ()) -> tuple[list[float], float]:
    """Pretrain the autoencoder: Adam on the mean-squared error of reconstructing each augmented
    image (input and target are the same augmented image), ``cfg.pretrain_epochs`` epochs over
    shuffled data. Returns the mean loss of each epoch and the seconds spent pretraining
    (summed over interrupted sessions). Resumes from ``checkpoint``, which must
    have been written with the same ``key`` (the settings that determine the result).
    At each epoch count in ``snapshots`` a copy of the checkpoint is kept beside it as
    ``pretrain-epoch<E>.pt``, its key saying ``pretrain_epochs=E``: Adam runs at a constant
    learning rate, so it is exactly the end of an E-epoch pretraining with the same seed (the
    pretraining-length study starts DECS from these). ``cfg.pretrain_epoch="keras"`` and
    ``cfg.pretrain_adam="keras"`` take the authors' Keras forms instead: an epoch of n // batch
    batches from a stream of shuffled passes, and Adam's ε̂ added before the bias correction
    (this book's settings for testing whether those differences matter; :doc:`/book/dying_clusters`).
    Derived in :doc:`/book/03_representation_learning`.
    """
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    losses: list[float] = []
    seconds = 0.0
    stream = None  # pretrain_epoch="keras": (the current pass's order, the position in it)
    key = _key(**key) if key is not None else None  # settings added later, at their defaults, drop out
    state = _load_matching(checkpoint, key, "was pretrained")
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        losses, seconds = state["losses"], state["seconds"]
        stream = state.get("stream")
    t0 = time.perf_counter() - seconds
    model.train()
    n = x.shape[0]
    bar = tqdm(range(len(losses), cfg.pretrain_epochs), desc="pretrain", disable=not progress,
               initial=len(losses), total=cfg.pretrain_epochs)
    for epoch in bar:
        if cfg.pretrain_epoch == "keras":  # n // batch_size batches, the passes running on
            steps = []
            for _ in range(max(1, n // cfg.batch_size)):
                if stream is None or stream[1] >= n:
                    stream = (torch.randperm(n, generator=generator, device=x.device), 0)
                steps.append(stream[0][stream[1]:stream[1] + cfg.batch_size])
                stream = (stream[0], stream[1] + cfg.batch_size)
        else:  # one pass over the data, its last batch smaller
            order = torch.randperm(n, generator=generator, device=x.device)
            steps = [order[a:b] for a, b in _batches(n, cfg.batch_size)]
        total = torch.zeros((), device=x.device)
        seen = 0
        for idx in steps:
            if cfg.pretrain_adam == "keras":  # ε̂ = 1e-7 on √v_t is ε̂ / √(1 − β₂ᵗ) on √v̂_t
                t = int(opt.state[opt.param_groups[0]["params"][0]].get("step", 0)) + 1
                opt.param_groups[0]["eps"] = 1e-7 / math.sqrt(1 - opt.param_groups[0]["betas"][1] ** t)
            xb = x[idx]
            if cfg.augment:
                xb = augment(xb, generator, cfg.shift, cfg.rotation)
            with autocast(cfg, x.device):
                out = model(xb)
            loss = F.mse_loss(out.float(), xb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach() * len(idx)
            seen += len(idx)
        losses.append(float(total) / seen)
        bar.set_postfix(mse=f"{losses[-1]:.5f}")
        done = len(losses) == cfg.pretrain_epochs
        if done or len(losses) % 10 == 0 or len(losses) in snapshots:
            state = {"model": model.state_dict(), "optimizer": opt.state_dict(),
                     "generator": generator.get_state(), "losses": losses, "key": key,
                     "seconds": time.perf_counter() - t0, "stream": stream}
            _save(checkpoint, state)
            if checkpoint is not None and len(losses) in snapshots:
                _save(Path(checkpoint).with_name(f"pretrain-epoch{len(losses)}.pt"),
                      {**state, "key": {**(key or {}), "pretrain_epochs": len(losses)}})
        if on_epoch is not None:
            on_epoch(epoch, losses[-1])
    return losses, time.perf_counter() - t0


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
    stages: dict = field(default_factory=dict)  # sample indices, iterations, embeddings z and centroids


class _Trace:
    """What the clustering loop saw at each iteration since the last evaluation, kept on the
    training device (reading a number back every step would stall a GPU) and summarised at the
    evaluation. Cheap: a few operations on the B×k batch.

    * ``t_mean``, ``t_min``, ``t_max``: Otsu's thresholds t of the batches (DECS);
      ``t_clamped``: how many of them hit the clamp of :func:`decs.stability.otsu_threshold`
      (the authors' rule would have returned t = 0 or 1 there);
    * ``neg_weight_share``: the mean share of a batch's samples whose code-form weight
      1 + 2(s_i − s̄) is negative (the loss then pushes their stability *down*; chapter 10);
    * ``centroid_grad_norm``: the mean norm ‖∂L/∂m_j‖ of each centroid's gradient.

    With several processes t and the gradients are the whole batch's, the share of negative
    weights is that of rank 0's shard (with its own s̄).
    """

    def __init__(self, k: int, device: torch.device, bins: int):
        self.k, self.device, self.bins = k, device, bins
        self.reset()

    def state_dict(self) -> dict:  # kept in checkpoints: a resumed run reports the same numbers
        return {"steps": self.steps, "ts": [t.cpu() for t in self.ts], "neg": self.neg.cpu(),
                "grad": self.grad.cpu()}

    def load_state_dict(self, state: dict) -> None:
        self.steps = state["steps"]
        self.ts = [t.to(self.device) for t in state["ts"]]
        self.neg, self.grad = state["neg"].to(self.device), state["grad"].to(self.device)

    def reset(self) -> None:
        self.steps = 0
        self.ts: list[torch.Tensor] = []
        self.neg = torch.zeros((), device=self.device)
        self.grad = torch.zeros(self.k, device=self.device)

    @torch.no_grad()
    def add(self, q: torch.Tensor, t, cfg: Config, grad: torch.Tensor | None) -> None:
        self.steps += 1
        if grad is not None:
            self.grad += grad.norm(dim=1)
        if t is None:  # DEC: no threshold, no stability weights
            return
        self.ts.append(torch.as_tensor(t, dtype=torch.float64, device=self.device).reshape(()))
        if cfg.form == "code":
            s = sample_stability(determinacy(q, t, "linear"), cfg.lam)
            self.neg += (1 + 2 * (s - s.mean()) < 0).float().mean()

    def summary(self) -> dict:
        if self.steps == 0:
            return {}
        out = {"centroid_grad_norm": [float(f"{v:.4g}") for v in (self.grad / self.steps).tolist()]}
        if self.ts:
            t = torch.stack(self.ts)
            half_bin = 0.5 / self.bins
            out.update(t_mean=round(float(t.mean()), 5), t_min=round(float(t.min()), 5),
                       t_max=round(float(t.max()), 5),
                       t_clamped=int(((t <= half_bin + 1e-12) | (t >= 1 - half_bin - 1e-12)).sum()),
                       neg_weight_share=round(float(self.neg) / self.steps, 5))
        self.reset()
        return out


def _threshold(encoder, xb, centroids, cfg: Config, q_train: torch.Tensor) -> torch.Tensor | float:
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


def _batch_loss(encoder: nn.Module, xb: torch.Tensor, centroids: torch.Tensor, cfg: Config, method: str,
                p: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | float | None, torch.Tensor]:
    """One clustering step's (q, t, loss) on the batch xb (DEC: with its targets p). With several
    processes xb is this process's shard and the loss is the whole batch's (``decs.distributed``)."""
    alpha = cfg.alpha if method == "decs" else cfg.dec_alpha
    with autocast(cfg, xb.device):
        z = encoder(xb)
    q = soft_assign(z.float(), centroids, alpha)
    if distributed.world_size() > 1:
        if method == "dec":
            return q, None, distributed.kl_loss(p, q)
        t = _threshold(encoder, xb, centroids, cfg, q)
        loss = distributed.instability(q, t, cfg.lam, cfg.form, cfg.variance_reward)
        if cfg.balance:
            loss = loss + cfg.balance * distributed.balance_penalty(q)
        return q, t, loss
    if method == "dec":
        return q, None, dec_math.kl_loss(p, q)
    t = _threshold(encoder, xb, centroids, cfg, q)
    loss = instability(q, t, cfg.lam, cfg.form, cfg.variance_reward)
    if cfg.balance:
        loss = loss + cfg.balance * balance_penalty(q)
    return q, t, loss


@torch.no_grad()
def _reseed_empty(z: torch.Tensor, centroids: nn.Parameter, labels: np.ndarray,
                  opt: torch.optim.Optimizer) -> list[int]:
    """This book's remedy ``Config.reseed_empty`` (not the paper's method): move the centroid of
    every emptied cluster onto the embedding of the sample of the largest cluster that lies
    farthest from that cluster's centroid (as k-means implementations handle an empty cluster),
    and clear that centroid's Adam moments. Returns the clusters moved."""
    k = centroids.shape[0]
    sizes = np.bincount(labels, minlength=k)
    moved = []
    for j in np.flatnonzero(sizes == 0):
        big = int(sizes.argmax())
        members = np.flatnonzero(labels == big)
        dist = (z[torch.as_tensor(members, device=z.device)] - centroids[big]).norm(dim=1)
        far = members[int(dist.argmax())]
        centroids[j] = z[far]
        labels[far], sizes[big], sizes[j] = j, sizes[big] - 1, 1
        for moment in ("exp_avg", "exp_avg_sq"):
            if moment in opt.state.get(centroids, {}):
                opt.state[centroids][moment][j] = 0
        moved.append(int(j))
    return moved


def cluster(encoder: nn.Module, centroids: torch.Tensor, x: torch.Tensor, cfg: Config,
            generator: torch.Generator, method: str = "decs", y: np.ndarray | None = None,
            checkpoint: Path | None = None, progress: bool = True,
            on_eval: Callable[[dict, torch.Tensor, torch.Tensor], None] | None = None,
            key: dict | None = None, stages: tuple[int, ...] = (), stage_samples: int = 2000
            ) -> ClusterResult:
    """The clustering stage: mini-batch Adam on encoder and centroids, the decoder dropped.

    ``method="decs"``: minimise the instability loss (:func:`decs.stability.instability`)
    for ``cfg.maxiter`` iterations. ``method="dec"``: minimise KL(P‖Q) to DEC's target P,
    recomputed on all data every ``cfg.dec_update_interval`` iterations; stop when fewer than
    ``cfg.tol`` of the labels change between two updates.

    At every evaluation, labels argmax_j q_ij of the clean data are predicted (and scored
    when ``y`` is given) and appended to the history; a last evaluation follows the last
    iteration. ``on_eval(record, z, centroids)`` is called after each evaluation with the
    record, the clean data's embedding and the centroids. At the evaluations in ``stages`` (and
    at the last one) the embedding of a fixed random ``stage_samples`` of the data and the
    centroids are kept in ``ClusterResult.stages`` (the t-SNE stages of chapter 08).

    Every evaluation of a DECS run also records what happened since the last one
    (``_Trace``): Otsu's thresholds, the soft mass of each cluster, the share of
    negative code-form weights and the norm of each centroid's gradient (chapter
    :doc:`/book/08_training_usps` explains why clusters empty).

    Resumes from ``checkpoint``, which must have been written with the same ``key``.
    Derived in :doc:`/book/07_instability_loss` and
    :doc:`/book/04_dec_pseudo_targets`.

    In a process group of more than one process (``torchrun``), each process trains on its
    contiguous shard of every global batch, the loss and Otsu's threshold are the whole batch's,
    gradients and batch-norm statistics are averaged, and only rank 0 writes the checkpoint
    (:doc:`/book/distributed`).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    alpha = cfg.alpha if method == "decs" else cfg.dec_alpha
    interval = cfg.update_interval if method == "decs" else cfg.dec_update_interval
    centroids = nn.Parameter(centroids.detach().clone())
    opt = torch.optim.Adam(list(encoder.parameters()) + [centroids], lr=cfg.lr)
    n = x.shape[0]
    batches = _batches(n, cfg.batch_size)
    # Everything besides weights and optimiser that the loop needs to continue exactly.
    state = {"iteration": 0, "history": [], "labels_last": None, "order": torch.arange(n),
             "loss_sum": 0.0, "target": None, "stopped_early": False, "seconds": 0.0,
             "stages": {"indices": torch.from_numpy(np.sort(np.random.default_rng(0).choice(
                 n, min(n, stage_samples), replace=False))), "iterations": [], "z": [], "centroids": []}}
    key = _key(**key) if key is not None else None  # settings added later, at their defaults, drop out
    saved = _load_matching(checkpoint, key, "holds a clustering run")
    if saved is not None:
        encoder.load_state_dict(saved["encoder"])
        with torch.no_grad():
            centroids.copy_(saved["centroids"])
        opt.load_state_dict(saved["optimizer"])
        generator.set_state(saved["generator"])
        state = saved["state"]
    order = state["order"].to(x.device)
    target = None if state["target"] is None else state["target"].to(x.device)  # DEC's P
    loss_sum = torch.tensor(state["loss_sum"], device=x.device)
    trace = _Trace(centroids.shape[0], x.device, cfg.otsu_bins)  # per-iteration diagnostics since the last evaluation
    if "trace" in state:
        trace.load_state_dict(state["trace"])
    t0 = time.perf_counter() - state["seconds"]

    def snapshot(it: int) -> None:
        state.update(iteration=it, order=order.cpu(), loss_sum=float(loss_sum),
                     seconds=time.perf_counter() - t0, trace=trace.state_dict(),
                     target=None if target is None else target.cpu())
        _save(checkpoint, {"encoder": encoder.state_dict(), "centroids": centroids.detach().cpu(),
                           "optimizer": opt.state_dict(), "generator": generator.get_state(),
                           "state": state, "key": key})

    def keep_stage(it: int, z_all: torch.Tensor) -> None:
        keep = state["stages"]
        keep["iterations"].append(it)
        keep["z"].append(z_all[keep["indices"].to(x.device)].cpu())
        keep["centroids"].append(centroids.detach().cpu().clone())

    def evaluate_all(it: int) -> tuple[torch.Tensor, float]:
        z_all = embed_all(encoder, x, cfg.eval_batch_size)
        q_all = soft_assign(z_all, centroids.detach(), alpha)
        labels = q_all.argmax(dim=1).cpu().numpy()
        last = state["labels_last"]
        delta = 1.0 if last is None else float(np.mean(labels != last))
        steps = it - (state["history"][-1]["iteration"] if state["history"] else 0)
        record = {"iteration": it, "loss": round(float(loss_sum) / steps, 6) if steps > 0 else None,
                  "delta_label": round(delta, 6),
                  # an emptied cluster is how DECS degrades (nothing in its loss resists one)
                  "cluster_sizes": np.bincount(labels, minlength=centroids.shape[0]).tolist(),
                  "soft_mass": [round(v, 2) for v in q_all.sum(0).tolist()], **trace.summary()}
        if method == "decs" and cfg.reseed_empty:
            moved = _reseed_empty(z_all, centroids, labels.copy(), opt)
            if moved:
                record["reseeded"] = moved
        if y is not None:
            record.update(evaluate(y, labels))
            bar.set_postfix(acc=record["acc"], nmi=record["nmi"])
        state["history"].append(record)
        state["labels_last"] = labels
        loss_sum.zero_()
        if it in stages or it >= cfg.maxiter:
            keep_stage(it, z_all)
        if on_eval is not None:
            on_eval(record, z_all, centroids.detach())
        return q_all, delta

    it = start = state["iteration"]
    if start > cfg.maxiter:
        raise ValueError(f"{checkpoint} is at iteration {start}, past maxiter={cfg.maxiter}; delete it or "
                         "ask for at least as many iterations.")
    bar = tqdm(total=cfg.maxiter, initial=start, desc=method, disable=not progress or not distributed.is_main())
    world = distributed.world_size()
    encoder.train()
    while it < cfg.maxiter and not state["stopped_early"]:
        if it > start and it % cfg.checkpoint_every == 0:
            snapshot(it)
        if it % interval == 0:
            if state["history"] and state["history"][-1]["iteration"] == it:
                # resumed where an earlier call ended and was evaluated: same model, same record
                delta = state["history"][-1]["delta_label"]
                q_all = (soft_assign(embed_all(encoder, x, cfg.eval_batch_size), centroids.detach(), alpha)
                         if method == "dec" else None)
            else:
                q_all, delta = evaluate_all(it)
            if method == "dec":
                if it > 0 and delta < cfg.tol:
                    state["stopped_early"] = True
                    break
                target = dec_math.target_distribution(q_all)
        b = it % len(batches)
        if b == 0 and cfg.shuffle_clustering:
            order = torch.randperm(n, generator=generator, device=x.device)
        idx = order[batches[b][0]:batches[b][1]]
        if world == 1:
            xb = augment(x[idx], generator, cfg.shift, cfg.rotation) if cfg.augment_clustering else x[idx]
        else:  # this process's rows of the global batch, augmented as one process would
            rows = distributed.shard(idx.shape[0])
            xb = augment(x[idx], generator, cfg.shift, cfg.rotation, keep=rows) if cfg.augment_clustering \
                else x[idx[rows]]
            idx = idx[rows]
        q, t, loss = _batch_loss(encoder, xb, centroids, cfg, method, target[idx] if method == "dec" else None)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if world > 1:  # every rank takes the same step: the whole batch's gradient
            distributed.average_gradients(list(encoder.parameters()) + [centroids])
        trace.add(q.detach(), t, cfg, centroids.grad)
        opt.step()
        if world > 1:  # batch norm saw only this rank's shard: keep the ranks' statistics equal
            distributed.average_buffers(encoder)
        loss_sum += loss.detach()
        it += 1
        bar.update(1)
    if not state["history"] or state["history"][-1]["iteration"] != it:
        evaluate_all(it)
    if state["stages"]["iterations"][-1:] != [it]:  # DEC stopped early: keep where it ended
        keep_stage(it, embed_all(encoder, x, cfg.eval_batch_size))
    bar.close()
    snapshot(it)
    return ClusterResult(encoder=encoder, centroids=centroids.detach(), labels=state["labels_last"],
                         history=state["history"], iterations=it, stopped_early=state["stopped_early"],
                         seconds=state["seconds"], stages=state["stages"])


# ---------------------------------------------------------------------------- a full run
def _git(*args) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _code_version() -> dict:
    changed = _git("diff", "--name-only", "HEAD")  # tracked files, staged or not
    files = changed.splitlines() if changed else []
    return {"commit": _git("rev-parse", "HEAD"), "dirty": bool(files), "dirty_files": files}


# Taken once, when this module is imported: the code a process runs is the code it imported,
# whatever is edited or committed while a long run goes on.
CODE_VERSION = _code_version()


def environment_info(device: torch.device) -> dict:
    """Provenance for a run record: the commit this process imported (and the files that
    differed from it then), device, number of processes and their backend (1 and "none" in one
    process; :doc:`/book/distributed`), versions, host."""
    info = {**CODE_VERSION, "device": str(device), "world_size": distributed.world_size(),
            "backend": distributed.backend(), "python": sys.version.split()[0],
            "torch": torch.__version__, "numpy": np.__version__, "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    else:
        info["cpu"] = platform.processor() or platform.machine()
    return info


@dataclass
class RunResult:
    """Everything a run produced; ``record`` is what is written as JSON."""
    model: ConvAutoencoder
    centroids: torch.Tensor
    labels: np.ndarray
    record: dict
    pretrained: dict  # the autoencoder's state dict after pretraining
    stages: dict      # embeddings of a sample of the data at a few evaluations (ClusterResult.stages)


# The settings that determine a pretrained autoencoder: runs that agree on them share it.
PRETRAIN_FIELDS = ("subset", "pretrain_epochs", "batch_size", "lr", "augment", "shift", "rotation",
                   "filters", "embedding_dim", "decoder_alignment", "precision", "pretrain_epoch",
                   "pretrain_adam")


# Pretraining lengths kept as snapshots of a longer pretraining (the cpu profile's 200 among them).
PRETRAIN_SNAPSHOTS = (50, 100, 200, 300)


# Settings added after checkpoints existed, with their defaults: a checkpoint's key leaves each
# out while it has its default, so the checkpoints written before it existed stay valid.
ADDED_LATER = {"decoder_alignment": "ours", "network": "conv", "world_size": 1, "precision": "fp32",
               "pretrain_epoch": "full", "pretrain_adam": "pytorch"}


def _key(**fields) -> dict:
    """A checkpoint's key: ``fields`` less those of ``ADDED_LATER`` at their defaults (so a key
    built from a whole ``Config.to_dict()``, as chapter 10's, still matches an older checkpoint)."""
    return {k: v for k, v in fields.items() if k not in ADDED_LATER or v != ADDED_LATER[k]}


def _pretrain_key(cfg: Config, seed: int, n: int, shape, network: str = "conv") -> dict:
    return _key(seed=seed, n=n, shape=list(shape), **{k: getattr(cfg, k) for k in PRETRAIN_FIELDS},
                network=network)


def pretrained_autoencoder(x: torch.Tensor, cfg: Config, seed: int = 0,
                           checkpoint_dir: Path | str | None = None, progress: bool = True,
                           network: str = "conv", start: dict | None = None) -> tuple[nn.Module, list[float], float]:
    """A pretrained autoencoder for ``x`` (already on the training device): loaded from
    ``checkpoint_dir/pretrain.pt`` when that holds a pretraining with the same settings,
    resumed when it holds an unfinished one, else trained from scratch. DECS and DEC runs
    with the same settings and seed share it, so their comparison starts from one network.
    With ``cfg.recalibrate_bn`` the batch-norm statistics are then re-estimated on the clean
    data (:func:`recalibrate_batchnorm`). ``network``: "conv" (:class:`decs.models.ConvAutoencoder`)
    or "mlp" (:class:`decs.models.MLPAutoencoder`, for N×D data, with augmentation off).
    ``start``: a state dict of the same network given from outside (e.g. the authors' pretrained
    network converted by ``benchmarks/authors_tf_weights.py --to-ours``), used in place of
    pretraining (no losses, no time; :doc:`/book/dying_clusters`)."""
    torch.manual_seed(seed)  # weight initialisation
    model = make_autoencoder(network, tuple(x.shape[1:]), cfg.filters, cfg.embedding_dim,
                             cfg.decoder_alignment).to(x.device)
    if start is None:
        path = Path(checkpoint_dir) / "pretrain.pt" if checkpoint_dir is not None else None
        key = _pretrain_key(cfg, seed, x.shape[0], x.shape[1:], network)
        keep = tuple(e for e in PRETRAIN_SNAPSHOTS if e < cfg.pretrain_epochs)
        losses, seconds = pretrain(model, x, cfg, make_generator(x.device, seed), checkpoint=path,
                                   progress=progress, key=key, snapshots=keep)
    else:
        try:
            model.load_state_dict(start)
        except RuntimeError as err:
            raise CheckpointError(f"the given start is not a {network} autoencoder for inputs of shape "
                                  f"{tuple(x.shape[1:])} with the configured filters {cfg.filters} and embedding "
                                  f"dimension {cfg.embedding_dim}: {str(err).splitlines()[0]}") from err
        losses, seconds = [], 0.0
    if cfg.recalibrate_bn:
        recalibrate_batchnorm(model, x, cfg.eval_batch_size)
    return model, losses, seconds


@dataclass
class Fitted:
    """The outcome of :func:`fit_clusters`: the trained network and what each stage produced."""
    model: ConvAutoencoder
    result: ClusterResult
    pretrained: dict  # the autoencoder's state dict after pretraining (on the CPU), before clustering
    pretrain_loss: list[float]
    pretrain_seconds: float
    kmeans_labels: np.ndarray
    kmeans_seconds: float


def fit_clusters(x: torch.Tensor, n_clusters: int, cfg: Config, method: str = "decs", seed: int = 0,
                 y: np.ndarray | None = None, checkpoint_dir: Path | str | None = None,
                 progress: bool = True, on_eval: Callable[[dict, torch.Tensor, torch.Tensor], None] | None = None,
                 tag: str = "", stages: tuple[int, ...] = (), network: str = "conv",
                 start: dict | None = None) -> Fitted:
    """The whole method on images ``x`` (already on the training device): pretrain (or reuse a
    pretrained autoencoder), initialise the centroids with k-means on the embedding, cluster.
    ``y`` is only used to score the evaluations. The clustering checkpoint is
    ``checkpoint_dir/<method><tag>.pt``: runs that share a pretraining but differ in the
    clustering settings use different tags. ``network`` is passed to :func:`pretrained_autoencoder`.
    ``start``: an autoencoder state dict to cluster from instead of pretraining (passed to
    :func:`pretrained_autoencoder`). Used by :func:`run` and :mod:`decs.estimator`."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    distributed.init_from_env(x.device)  # under torchrun: join the other processes
    world = distributed.world_size()
    progress = progress and distributed.is_main()
    ckdir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    # Several processes: each pretrains the same network (same seed, same data; rank 0 alone
    # writes the checkpoint), and rank 0's copy is handed to all, so they start exactly equal.
    model, losses, t_pre = pretrained_autoencoder(x, cfg, seed, ckdir, progress, network, start)
    distributed.broadcast_module(model)
    pretrained = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    t0 = time.perf_counter()
    if world == 1:
        z = embed(model.encoder, x, cfg.eval_batch_size)
        centroids, km_labels = kmeans_init(z, n_clusters, cfg.kmeans_n_init, seed)
    else:  # k-means once, on rank 0, and its answer broadcast
        z = embed_all(model.encoder, x, cfg.eval_batch_size)
        if distributed.is_main():
            centroids, km_labels = kmeans_init(z, n_clusters, cfg.kmeans_n_init, seed)
            labels_t = torch.as_tensor(km_labels, dtype=torch.int64, device=z.device)
        else:
            centroids = z.new_empty(n_clusters, z.shape[1])
            labels_t = torch.empty(z.shape[0], dtype=torch.int64, device=z.device)
        distributed.broadcast(centroids)
        km_labels = distributed.broadcast(labels_t).cpu().numpy()
    t_km = time.perf_counter() - t0
    gen = make_generator(x.device, seed + 1)  # the clustering stage's own stream
    # maxiter is not part of the key: a finished run may be continued for more iterations
    bookkeeping = set(PRETRAIN_FIELDS) | {"profile", "eval_batch_size", "checkpoint_every", "maxiter"}
    # world_size: batch norm over shards, so a run continues exactly only with as many processes
    key = _key(method=method, seed=seed, n_clusters=n_clusters,
               **{k: v for k, v in cfg.to_dict().items() if k not in bookkeeping},
               network=network, world_size=world)
    res = cluster(model.encoder, centroids, x, cfg, gen, method=method, y=y,
                  checkpoint=ckdir / f"{method}{tag}.pt" if ckdir else None, progress=progress,
                  on_eval=on_eval, key=key, stages=stages)
    return Fitted(model, res, pretrained, losses, t_pre, km_labels, t_km)


def run(x: torch.Tensor, y: np.ndarray, cfg: Config, method: str = "decs", seed: int = 0,
        device: str | torch.device | None = None, checkpoint_dir: Path | str | None = None,
        dataset: str | None = None, progress: bool = True,
        on_eval: Callable[[dict, torch.Tensor, torch.Tensor], None] | None = None, tag: str = "",
        start: dict | None = None) -> RunResult:
    """A scored run on a labelled dataset: :func:`fit_clusters` plus a run record.

    With ``checkpoint_dir``, the pretrained autoencoder is saved there as ``pretrain.pt``
    (shared by DECS and DEC runs with the same settings and seed) and the clustering state as
    ``<method>.pt``; calling again with the same arguments resumes where the last call
    stopped, to the identical result. ``start``: cluster from this autoencoder state dict instead
    of pretraining (:func:`fit_clusters`). Walked through in :doc:`/book/08_training_usps`.
    """
    if y is None:
        raise ValueError("run() needs labels y to score the clustering; use decs.DECS for unlabelled data.")
    y = np.asarray(y)
    device = get_device(device)
    distributed.init_from_env(device)  # under torchrun: join the other processes
    t_start = time.perf_counter()
    environment = environment_info(device)
    x = x.to(device)
    n_clusters = int(len(np.unique(y)))
    every = cfg.update_interval if method == "decs" else cfg.dec_update_interval
    stages = tuple(0 if f == 0 else max(every, round(cfg.maxiter * f / every) * every) for f in (0, 1 / 3, 2 / 3))
    fitted = fit_clusters(x, n_clusters, cfg, method, seed, y, checkpoint_dir, progress, on_eval, tag, stages,
                          start=start)
    res = fitted.result
    evals = [h for h in res.history if "acc" in h]
    best = max(evals, key=lambda h: h["acc"])
    record = {
        "dataset": dataset, "method": method, "profile": cfg.profile, "seed": seed,
        "n_samples": int(x.shape[0]), "n_clusters": n_clusters,
        "final": {**{k: res.history[-1][k] for k in ("acc", "nmi", "ari")},
                  "clusters_used": int(np.count_nonzero(res.history[-1]["cluster_sizes"]))},
        "best_label_selected": {"iteration": best["iteration"], "acc": best["acc"],
                                "nmi": best["nmi"], "ari": best["ari"],
                                "note": "chosen with the ground-truth labels; not a fair result"},
        "kmeans_on_embedding": evaluate(y, fitted.kmeans_labels),
        "confusion": {"rows": "cluster", "columns": "class",
                      "start": confusion(y, fitted.kmeans_labels, n_clusters),
                      "final": confusion(y, res.labels, n_clusters)},
        "iterations": res.iterations, "stopped_early": res.stopped_early,
        "history": res.history, "pretrain_loss": fitted.pretrain_loss,
        "config": cfg.to_dict(),
        "wall_time_s": {"pretrain": round(fitted.pretrain_seconds, 1), "kmeans": round(fitted.kmeans_seconds, 1),
                        "cluster": round(res.seconds, 1), "this_call": round(time.perf_counter() - t_start, 1),
                        "note": "pretrain and cluster are summed over interrupted and resumed sessions; "
                                "a pretraining reused from a checkpoint reports its original time"},
        "environment": environment,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return RunResult(model=fitted.model, centroids=res.centroids, labels=res.labels, record=record,
                     pretrained=fitted.pretrained, stages=res.stages)


def _scalar(value) -> bool:
    return not isinstance(value, (dict, list))


def _one_line(entry: dict) -> bool:
    """A dict whose values are scalars or lists of scalars (one ``history`` entry): written on
    one line when it is an element of a list."""
    return all(_scalar(v) or (isinstance(v, list) and all(map(_scalar, v))) for v in entry.values())


def _json_lines(value, level: int) -> str:
    """``value`` as :func:`record_json` lays it out, its closing bracket indented ``level``."""
    if _scalar(value) or (isinstance(value, list) and all(map(_scalar, value))):
        return json.dumps(value, ensure_ascii=False)
    if not value:
        return json.dumps(value)
    pad, end = " " * (level + 1), " " * level
    if isinstance(value, list):
        parts = [json.dumps(v, ensure_ascii=False) if isinstance(v, dict) and _one_line(v)
                 else _json_lines(v, level + 1) for v in value]
        return "[\n" + ",\n".join(pad + part for part in parts) + "\n" + end + "]"
    parts = [f"{json.dumps(k, ensure_ascii=False)}: {_json_lines(v, level + 1)}" for k, v in value.items()]
    return "{\n" + ",\n".join(pad + part for part in parts) + "\n" + end + "}"


def record_json(record: dict) -> str:
    """A run record as the repository keeps it: JSON indented one space per level, except that a
    list of numbers stays on one line and so does each entry of a list of flat dicts (one line
    per evaluation of ``history``). ``json.loads`` gives the record back unchanged; the file is
    about a quarter smaller than ``json.dumps(record, indent=1)``, which puts every number of
    every cluster-size list on its own line. Used by :func:`write_record`
    (:doc:`/book/reproducibility`)."""
    return _json_lines(record, 0) + "\n"


def write_record(record: dict, path: Path | str) -> Path:
    """Write a run record as :func:`record_json` (the book's results chapter reads these). With
    several processes only rank 0 writes (:doc:`/book/distributed`)."""
    path = Path(path)
    if not distributed.is_main():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(record_json(record), encoding="utf-8")
    return path


def benchmark_command(script: str, args) -> str:
    """The command line that gives a benchmark's record again, from its parsed arguments: each
    option that was set as ``--name value`` (a list's values separated by spaces), ``--out`` left
    out because it names where the record went, not what it measured. ``script`` is the path from
    the repository root, e.g. ``"benchmarks/speed.py"`` (:doc:`/book/reproducibility`)."""
    options = (f"--{k} {' '.join(map(str, v)) if isinstance(v, list) else v}"
               for k, v in vars(args).items() if v is not None and k != "out")
    return " ".join(["python", script, *options])


def report_record(record: dict, out: Path | str | None = None) -> None:
    """Print a benchmark's record as :func:`record_json` lays it out and, when ``out`` is given,
    also write it there with :func:`write_record` (:doc:`/book/reproducibility`)."""
    print(record_json(record), end="")
    if out is not None:
        write_record(record, out)
