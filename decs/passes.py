"""What the loops do to the data: augment a batch, cut an epoch into mini-batches, and pass the whole
set through a network (embeddings, predictions, batch-norm statistics). On the data's device, a
whole batch at a time. Shown in :doc:`/book/03_representation_learning` and
:doc:`/book/08_training_usps`.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import distributed
from .config import Config
from .stability import soft_assign


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


# ------------------------------------------------------------------------------ mini-batches
def batches(n: int, batch_size: int) -> list[tuple[int, int]]:
    """Start and stop of each mini-batch of an epoch; the last one may be smaller."""
    return [(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


def epoch_batches(n: int, cfg: Config, generator: torch.Generator, device: torch.device,
                  stream: tuple | None = None) -> tuple[list[torch.Tensor], tuple | None]:
    """The sample indices of each mini-batch of one pretraining epoch, and the stream to pass to
    the next call. ``cfg.pretrain_epoch="full"``: one shuffled pass, its last batch smaller.
    ``"keras"``: the authors' Keras epoch, n // batch_size full batches cut from a stream of
    shuffled passes that runs on across epochs (``stream`` = the current pass and the position
    in it). :doc:`/book/03_representation_learning`."""
    if cfg.pretrain_epoch != "keras":
        order = torch.randperm(n, generator=generator, device=device)
        return [order[a:b] for a, b in batches(n, cfg.batch_size)], stream
    steps = []
    for _ in range(max(1, n // cfg.batch_size)):
        if stream is None or stream[1] >= n:
            stream = (torch.randperm(n, generator=generator, device=device), 0)
        steps.append(stream[0][stream[1]:stream[1] + cfg.batch_size])
        stream = (stream[0], stream[1] + cfg.batch_size)
    return steps, stream


def clustering_batch(x: torch.Tensor, idx: torch.Tensor, generator: torch.Generator, cfg: Config
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """The images of the mini-batch ``idx`` as a clustering step sees them (augmented when
    ``cfg.augment_clustering``) and their indices. With several processes: this process's rows of
    the global batch, augmented as one process would augment the whole batch
    (:doc:`/book/distributed`)."""
    if distributed.world_size() == 1:
        return (augment(x[idx], generator, cfg.shift, cfg.rotation) if cfg.augment_clustering else x[idx]), idx
    rows = distributed.shard(idx.shape[0])
    xb = augment(x[idx], generator, cfg.shift, cfg.rotation, keep=rows) if cfg.augment_clustering else x[idx[rows]]
    return xb, idx[rows]
