"""A whole run: pretrain (or reuse the pretraining of the same settings), start from k-means,
cluster, and write what happened as a run record. Also the names that keep runs apart: a run's
record, checkpoint folder and model files are named from its profile, seed and the settings it
changed. Walked through in :doc:`/book/08_training_usps`; ``python -m decs train`` is a call of
:func:`run`.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from . import distributed
from .config import Config, get_config
from .device import get_device, make_generator
from .files import CheckpointError, checkpoint_key, read_checkpoint, stage_provenance
from .metrics import confusion, evaluate
from .models import ConvAutoencoder, make_autoencoder
from .passes import embed, embed_all, recalibrate_batchnorm
from .paths import checkpoints_root
from .provenance import RunClock, environment_info
from .train import ClusterResult, check_method, cluster, kmeans_init, pretrain


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


def pretrain_key(cfg: Config, seed: int, n: int, shape, network: str = "conv") -> dict:
    """The key of a pretraining checkpoint: what determines the pretrained network."""
    return checkpoint_key(seed=seed, n=n, shape=list(shape), **{k: getattr(cfg, k) for k in PRETRAIN_FIELDS},
                network=network)


def pretrained_autoencoder(x: torch.Tensor, cfg: Config, seed: int = 0,
                           checkpoint_dir: Path | str | None = None, progress: bool = True,
                           network: str = "conv", start: dict | None = None) -> tuple[nn.Module, list[float], float]:
    """A pretrained autoencoder for ``x`` (already on the training device): loaded from
    ``checkpoint_dir/pretrain.pt`` when that holds a pretraining with the same settings,
    resumed when it holds an unfinished one, else trained from scratch. DECS and DEC runs
    with the same settings and seed share it, so their comparison starts from one network.
    With ``cfg.recalibrate_bn`` the batch-norm statistics are then re-estimated on the clean
    data (:func:`decs.passes.recalibrate_batchnorm`). ``network``: "conv" (:class:`decs.models.ConvAutoencoder`)
    or "mlp" (:class:`decs.models.MLPAutoencoder`, for N×D data, with augmentation off).
    ``start``: a state dict of the same network given from outside (e.g. the authors' pretrained
    network converted by ``benchmarks/authors_tf_weights.py --to-ours``), used in place of
    pretraining (no losses, no time; :doc:`/book/dying_clusters`)."""
    torch.manual_seed(seed)  # weight initialisation
    model = make_autoencoder(network, tuple(x.shape[1:]), cfg.filters, cfg.embedding_dim,
                             cfg.decoder_alignment).to(x.device)
    if start is None:
        path = Path(checkpoint_dir) / "pretrain.pt" if checkpoint_dir is not None else None
        key = pretrain_key(cfg, seed, x.shape[0], x.shape[1:], network)
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
    pretrain_processes: int = 1  # how many processes the pretraining took (0: given, not trained)
    pretrain_commits: list = field(default_factory=list)  # the code that pretrained it ([]: given)
    pretrain_threads: list = field(default_factory=list)  # each of its processes' torch threads


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
    check_method(method)
    distributed.init_from_env(x.device)  # under torchrun: join the other processes
    progress = progress and distributed.is_main()
    ckdir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    # Several processes: each pretrains the same network (same seed, same data; rank 0 alone
    # writes the checkpoint), and rank 0's copy is handed to all, so they start exactly equal.
    model, losses, t_pre = pretrained_autoencoder(x, cfg, seed, ckdir, progress, network, start)
    saved = read_checkpoint(ckdir / "pretrain.pt") if ckdir is not None and start is None else None
    pretrained_here = saved is None and start is None  # no checkpoint: this process pretrained it
    pre_processes, pre_commits, pre_threads = stage_provenance(saved, pretrained_here, "the pretraining")
    distributed.broadcast_module(model)
    pretrained = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    km_clock = RunClock()
    centroids, km_labels = kmeans_start(model.encoder, x, n_clusters, cfg, seed)
    t_km = km_clock.seconds()
    gen = make_generator(x.device, seed + 1)  # the clustering stage's own stream
    res = cluster(model.encoder, centroids, x, cfg, gen, method=method, y=y,
                  checkpoint=ckdir / f"{method}{tag}.pt" if ckdir else None, progress=progress,
                  on_eval=on_eval, key=clustering_key(cfg, method, seed, n_clusters, network), stages=stages)
    return Fitted(model, res, pretrained, losses, t_pre, km_labels, t_km, pre_processes, pre_commits,
                  pre_threads)


def kmeans_start(encoder: nn.Module, x: torch.Tensor, n_clusters: int, cfg: Config, seed: int
                 ) -> tuple[torch.Tensor, np.ndarray]:
    """:func:`decs.train.kmeans_init` on the embedding of all of x. With several processes k-means
    runs once, on rank 0, and its centroids and labels are broadcast (:doc:`/book/distributed`)."""
    if distributed.world_size() == 1:
        return kmeans_init(embed(encoder, x, cfg.eval_batch_size), n_clusters, cfg.kmeans_n_init, seed)
    z = embed_all(encoder, x, cfg.eval_batch_size)
    if distributed.is_main():
        centroids, km_labels = kmeans_init(z, n_clusters, cfg.kmeans_n_init, seed)
        labels_t = torch.as_tensor(km_labels, dtype=torch.int64, device=z.device)
    else:
        centroids = z.new_empty(n_clusters, z.shape[1])
        labels_t = torch.empty(z.shape[0], dtype=torch.int64, device=z.device)
    distributed.broadcast(centroids)
    return centroids, distributed.broadcast(labels_t).cpu().numpy()


def clustering_key(cfg: Config, method: str, seed: int, n_clusters: int, network: str = "conv") -> dict:
    """The key of a clustering checkpoint: every setting but the pretraining's (the pretraining
    has its own checkpoint) and the bookkeeping. ``maxiter`` is left out, so a finished run may be
    continued for more iterations; the number of processes is in (batch norm over shards: a run
    continues exactly only with as many processes)."""
    bookkeeping = set(PRETRAIN_FIELDS) | {"profile", "eval_batch_size", "checkpoint_every", "maxiter"}
    return checkpoint_key(method=method, seed=seed, n_clusters=n_clusters,
                          **{k: v for k, v in cfg.to_dict().items() if k not in bookkeeping},
                          network=network, world_size=distributed.world_size())


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
    this_call = RunClock()
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
                        "cluster": round(res.seconds, 1), "this_call": round(this_call.seconds(), 1),
                        "processes": {"pretrain": fitted.pretrain_processes, "cluster": res.processes},
                        "threads": {"pretrain": fitted.pretrain_threads, "cluster": res.threads},
                        "note": "pretrain and cluster are summed over interrupted and resumed sessions, less "
                                "any time a process was stopped (kill -STOP ... -CONT); processes says how many "
                                "each took (a run resumed twice took 3) and threads the torch threads of each "
                                "of them in order (null: not recorded); a pretraining reused from a checkpoint "
                                "reports its original time and count"},
        "environment": {**environment, "commits": {"pretrain": fitted.pretrain_commits, "cluster": res.commits}},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return RunResult(model=fitted.model, centroids=res.centroids, labels=res.labels, record=record,
                     pretrained=fitted.pretrained, stages=res.stages)


# ------------------------------------------------------------------------------ run names
# A run's record, checkpoint folder and model files are named from its profile, seed and the
# settings it changed, so that no run takes another's name.

def config_changes(cfg: Config, fields=None) -> str:
    """``+field=value`` for each field (of ``fields``, default all) that differs from the profile."""
    base = get_config(cfg.profile)
    names = fields or [f.name for f in dataclasses.fields(Config)]
    tag = "".join(f"+{n}={getattr(cfg, n)}" for n in names if getattr(cfg, n) != getattr(base, n))
    return tag.replace(" ", "").replace("/", "_").replace("(", "").replace(")", "")


def run_name(cfg: Config, seed: int) -> str:
    """``<profile>-seed<seed>``, followed by every field that differs from the profile, so a
    changed run never overwrites (or resumes) a run of the profile itself."""
    return f"{cfg.profile}-seed{seed}{config_changes(cfg)}"


def pretraining_name(cfg: Config, seed: int) -> str:
    """``<profile>-seed<seed>`` and the pretraining settings that differ from the profile: the
    name of one pretraining (its checkpoint folder and its model file)."""
    return f"{cfg.profile}-seed{seed}{config_changes(cfg, PRETRAIN_FIELDS)}"


def checkpoint_dir(dataset: str, cfg: Config, seed: int) -> Path:
    """One folder per pretraining, ``<checkpoints>/<dataset>/<pretraining name>/`` (the root is
    :func:`decs.paths.checkpoints_root`: ``DECS_CHECKPOINTS``, else the checkout's ``checkpoints/``,
    else the user's cache): runs that change only clustering settings share it, and so do
    ``python -m decs`` and every chapter (:doc:`/book/03_representation_learning`)."""
    return checkpoints_root() / dataset / pretraining_name(cfg, seed)


def cluster_tag(cfg: Config) -> str:
    """The clustering settings that differ from the profile (part of the checkpoint's file name)."""
    return config_changes(cfg, [f.name for f in dataclasses.fields(Config) if f.name not in PRETRAIN_FIELDS])

