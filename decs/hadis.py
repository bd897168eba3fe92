"""HaDis: contrastive deep clustering without pretraining, adapted to grey digits.

"Deep Clustering with Diffused Sampling and Hardness-aware Self-distillation" (Zhang & Huang,
arXiv 2401.14038), as its authors' code defines it (github.com/Regan-Zhang/HaDis, built on
ProPos). Derived and checked in :doc:`/book/hadis`; every function here is written out there
first and then ``assert``-ed equal to this one.

Two augmented views x^A, x^B of each image; a *student* (encoder f, projector g, predictor h)
and a *teacher* (f̄, ḡ), an exponential moving average of (f, g). With q = g(f(x^A)) and
k = normalize(ḡ(f̄(x^B))) (no gradient), p = h(q + σε):

* :func:`dsa_loss` — diffused sampling alignment, −2·mean_i cos(p_i, k_i);
* :func:`hsd_loss` — hardness-aware self-distillation on the hardest positive and negative;
* :func:`pcl_loss` — prototypical contrastive loss between per-batch cluster prototypes,
  with pseudo-labels from k-means on the teacher's features of the whole data set;
* :func:`ema_update` — the teacher's update, θ̄ ← m·θ̄ + (1 − m)·θ.

The loss of a step is symmetric in A ↔ B with weights ½ (:func:`step_losses`):
L = ½ΣL_DSA + ½ΣL_HSD + λ·[after warm-up]·½ΣL_PCL. ``hsd=False`` drops HSD: that is ProPos.

**The adaptation** (this book's, not the authors'): the authors train a ResNet-18 on 32×32
colour images for 1000 epochs. Here the images are 16×16 (USPS) or 28×28 (MNIST,
Fashion-MNIST) grey digits, and the book's profiles must fit two CPU cores, so

* the backbone is :class:`DigitEncoder`, four 3×3 convolutions (32–64–128–128 channels, two of
  stride 2) and a global average pool, instead of a ResNet-18; projector and predictor keep
  the authors' form (Linear–BN–ReLU–Linear) with 512 hidden units instead of 4096 and 128
  output dimensions instead of 256;
* the augmentations are :func:`augment_digits`: a random resized crop of 60–100 % of the area
  (the authors: 8–100 %, which cuts most of a digit away; USPS digits fill their 16×16 frame, so
  even 50 % cut strokes off), a rotation of up to ±15°, and a half-strength thinning or
  thickening of the strokes; no horizontal flip (a mirrored digit is not
  the same digit), no colour jitter and no grey-scale conversion (the images are grey);
* k-means for the pseudo-labels is scikit-learn's (k-means++ start) on the L2-normalised
  features — Euclidean k-means on the unit sphere, where the authors run a cosine k-means;
* the ``cpu`` profile trains 150 epochs (``decs.hadis.PROFILES``), which is what fits about 30 minutes
  per USPS run on one CPU core; the ``paper`` profile keeps the authors' 1000 epochs and batch 256.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans
from torch import nn

from .config import ConfigError, check_flag, check_real, check_subset, check_whole
from .metrics import evaluate
from .device import get_device, make_generator
from .files import load_checkpoint, save_checkpoint, save_torch, stage_provenance
from .provenance import RunClock, environment_info, tick

CHAPTER = "book/hadis"
HADIS_PROFILES = ("ci", "cpu", "paper")


# ------------------------------------------------------------------------ configuration
@dataclass(frozen=True)
class HaDisConfig:
    """HaDis's hyper-parameters, one typed object per profile (:func:`get_hadis_config`).
    Shown in :doc:`/book/hadis`."""
    # --- scale: what the profiles change ---------------------------------------------------
    profile: str = "paper"           # which profile these numbers came from
    subset: int | None = None        # train on a class-stratified subset of this many samples (None: all)
    epochs: int = 1000               # training epochs (authors: 1000)
    warmup_epochs: int = 50          # epochs without PCL and without latent noise, lr rising linearly (authors: 50)
    # --- the method --------------------------------------------------------------------------
    hsd: bool = True                 # hardness-aware self-distillation (False: ProPos)
    sigma: float = 0.001             # σ, std of the latent noise of diffused sampling after warm-up
    hsd_tau: float = 0.5             # τ of HSD's softplus
    pcl_tau: float = 0.5             # τ of PCL's softmax
    pcl_weight: float = 0.1          # λ, weight of PCL after warm-up
    ema: float = 0.996               # momentum m of the teacher's moving average
    # --- optimisation ------------------------------------------------------------------------
    batch_size: int = 256            # images per step (two views each)
    lr: float = 0.05                 # SGD learning rate at batch 256 (scaled by batch_size/256)
    predictor_lr_scale: float = 10.0  # the predictor learns this many times faster
    momentum: float = 0.9            # SGD momentum
    weight_decay: float = 5e-4       # SGD weight decay
    # --- augmentation (grey digits) -----------------------------------------------------------
    crop_scale: tuple[float, float] = (0.6, 1.0)  # area kept by the random resized crop
    rotation: float = 15.0           # largest rotation, degrees
    stroke: float = 0.3              # probability of thinning or thickening the strokes (half each)
    # --- network -----------------------------------------------------------------------------
    widths: tuple[int, ...] = (32, 64, 128)  # channels of DigitEncoder (the last one twice)
    hidden_dim: int = 512            # hidden units of projector and predictor (authors: 4096)
    feat_dim: int = 128              # dimension of q and k (authors: 256)
    # --- clustering and bookkeeping ------------------------------------------------------------
    kmeans_n_init: int = 1           # k-means restarts for each epoch's pseudo-labels (authors: 1)
    final_n_init: int = 10           # k-means restarts for the final labels
    eval_batch_size: int = 512       # batch size of full-data passes under no_grad
    checkpoint_every: int = 1        # save a checkpoint every this many epochs (and at the end)

    def __post_init__(self):
        _check_config(self)

    def replace(self, **changes) -> "HaDisConfig":
        """A copy with some fields changed (the object itself is immutable)."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - names
        if unknown:
            raise ConfigError(f"unknown HaDis config field(s) {sorted(unknown)}; valid: {sorted(names)}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# What each profile changes relative to the authors' settings. ``cpu``: 150 epochs is what fits
# about 30 minutes per USPS run (9,298 images, 36 steps of 256) on one CPU core with DigitEncoder.
# Measured (torch 2.14.1, 1 thread, nice 19, on a 2-core machine shared with another training
# job): 0.20 s per step, 12-13 s per epoch with the full-data teacher pass and k-means, so 150
# epochs ≈ 32 min. The warm-up keeps the authors' share of the run (50 of 1000 epochs = 5 %,
# rounded up); ci shrinks the network too, to run in seconds.
PROFILES = {
    "paper": {},
    "cpu": {"epochs": 150, "warmup_epochs": 8},
    "ci": {"subset": 400, "epochs": 4, "warmup_epochs": 1, "batch_size": 64, "widths": (16, 32, 32),
           "hidden_dim": 64, "feat_dim": 32, "final_n_init": 2},
}


def get_hadis_config(profile: str | None = None, **overrides) -> HaDisConfig:
    """HaDis's configuration of a profile (the argument, else ``DECS_PROFILE``, else ``cpu``),
    with optional field overrides. Explained in :doc:`/book/hadis`.

    >>> get_hadis_config("paper").epochs
    1000
    """
    name = (profile or os.environ.get("DECS_PROFILE") or "cpu").strip().lower()
    if name not in HADIS_PROFILES:
        raise ConfigError(f"unknown profile {name!r}; choose one of {HADIS_PROFILES}.")
    cfg = HaDisConfig(profile=name).replace(**PROFILES[name])
    cfg = cfg.replace(**overrides) if overrides else cfg
    _check_config(cfg)
    return cfg


def _check_config(cfg: HaDisConfig) -> None:
    """Every field of a :class:`HaDisConfig` in its type and range (as :func:`decs.config.check_config`
    does for DECS): lengths are whole numbers ≥ 1 (``warmup_epochs`` ≥ 0: 0 is no warm-up),
    batches of at least 2 (batch norm), rates and temperatures > 0, σ, weights
    ≥ 0, the momenta in [0, 1], the crop's area in (0, 1]. Raises :class:`decs.config.ConfigError`
    when the configuration is made, before any data is loaded."""
    if cfg.profile not in HADIS_PROFILES:
        raise ConfigError(f"profile must be one of {HADIS_PROFILES}, got {cfg.profile!r}.")
    check_whole(cfg, "batch_size", 2, " (batch norm needs two samples per batch)")
    check_subset(cfg)
    for name in ("epochs", "hidden_dim", "feat_dim", "kmeans_n_init", "final_n_init", "eval_batch_size",
                 "checkpoint_every"):
        check_whole(cfg, name, 1)
    check_whole(cfg, "warmup_epochs", 0, " (0: no warm-up)")
    for name in ("hsd_tau", "pcl_tau", "lr", "predictor_lr_scale"):
        check_real(cfg, name, 0.0, closed=False)
    for name in ("sigma", "pcl_weight", "weight_decay", "rotation"):
        check_real(cfg, name, 0.0, closed=True)
    for name in ("ema", "momentum", "stroke"):
        check_real(cfg, name, 0.0, closed=True, high=1.0)
    check_flag(cfg, "hsd")
    w = cfg.widths
    if not isinstance(w, tuple) or len(w) != 3 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in w):
        raise ConfigError(f"widths must be three whole numbers ≥ 1 (the channels of DigitEncoder), got {w!r}.")
    crop = cfg.crop_scale
    if not (isinstance(crop, tuple) and len(crop) == 2 and all(isinstance(v, (int, float)) for v in crop)
            and 0 < crop[0] <= crop[1] <= 1):
        raise ConfigError(f"crop_scale must be (lo, hi) with 0 < lo ≤ hi ≤ 1, got {crop!r}.")


def run_name(cfg: HaDisConfig, seed: int) -> str:
    """``<profile>-seed<seed>`` followed by ``+field=value`` for every field that differs from
    the profile (``cpu-seed0+hsd=False`` is the ProPos ablation), as DECS's runs are named.
    See :doc:`/book/hadis`."""
    base = get_hadis_config(cfg.profile)
    tag = "".join(f"+{f.name}={getattr(cfg, f.name)}" for f in dataclasses.fields(cfg)
                  if getattr(cfg, f.name) != getattr(base, f.name))
    return f"{cfg.profile}-seed{seed}" + tag.replace(" ", "").replace("(", "").replace(")", "")


def variant_name(hsd: bool) -> str:
    """The name a run's tables and records give it: ``"HaDis"``, or ``"ProPos (HaDis without
    HSD)"`` for the ablation without the HSD loss. See :doc:`/book/hadis`."""
    return "HaDis" if hsd else "ProPos (HaDis without HSD)"


LENGTH_FIELDS = ("profile", "epochs", "warmup_epochs")  # what sets a run's length, and nothing else


def differ_only_in(a: dict, b: dict, fields: tuple[str, ...]) -> bool:
    """Whether two HaDis records are of one dataset and seed and their settings (``config``) differ
    in nothing but ``fields``. See :doc:`/book/hadis`."""
    def rest(r: dict) -> dict:
        return {k: v for k, v in r["config"].items() if k not in fields}

    return (a["dataset"], a["seed"]) == (b["dataset"], b["seed"]) and rest(a) == rest(b)


def longer_runs(records: list[dict]) -> list[tuple[dict, dict]]:
    """Pairs ``(longer, shorter)`` of HaDis records of one dataset and seed whose settings differ
    only in length (``LENGTH_FIELDS``: the epochs, the warm-up that goes with them, the profile
    that sets both), e.g. the ``paper`` profile's 1,000 epochs beside the ``cpu`` profile's 150 or a
    ``cpu`` run with ``--set epochs=450 warmup_epochs=23``. Each longer run is paired with the
    longest shorter one; a run with no shorter partner is left out. See :doc:`/book/hadis`."""
    pairs = []
    for r in records:
        shorter = [b for b in records if b["epochs"] < r["epochs"] and differ_only_in(r, b, LENGTH_FIELDS)]
        if shorter:
            pairs.append((r, max(shorter, key=lambda b: b["epochs"])))
    return pairs


def more_restarts(records: list[dict]) -> list[tuple[dict, dict]]:
    """Pairs ``(more, one)`` of HaDis records of one dataset and seed whose settings differ only in
    ``kmeans_n_init``: the first with more than one k-means restart per epoch (e.g. ``--set
    kmeans_n_init=10``), the second with the authors' one. See :doc:`/book/hadis`."""
    def restarts(r: dict) -> int:
        return r["config"].get("kmeans_n_init", 1)

    return [(r, b) for r in records if restarts(r) > 1 for b in records
            if restarts(b) == 1 and differ_only_in(r, b, ("kmeans_n_init",))]


# ------------------------------------------------------------------------------- losses
def _check_pair(a: torch.Tensor, b: torch.Tensor, names: str) -> None:
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"{names} must be two B×d matrices of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}.")
    if a.shape[0] == 0:
        raise ValueError(f"{names} are empty; pass at least one sample.")


def dsa_loss(p: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Diffused sampling alignment, L = −(2/B) Σ_i cos(p_i, k_i), with p = h(q + σε) the
    predictor's output for the noisy projection and k the teacher's (normalised) features.
    Derived in :doc:`/book/hadis`."""
    _check_pair(p, k, "p and k")
    return -2 * F.cosine_similarity(p, k, dim=1).mean()


def _distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """‖a_i − b_j‖ as the authors compute it: √max(‖a_i‖² + ‖b_j‖² − 2 a_i·b_j, 10⁻¹²)."""
    sq = (a * a).sum(1, keepdim=True) + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return sq.clamp(min=1e-12).sqrt()


def hsd_terms(k: torch.Tensor, p: torch.Tensor) -> dict:
    """The pieces of HSD for teacher features k and predictions p (both normalised here):
    ``D_t`` (‖k_i − k_j‖), ``D`` (‖k_i − p_j‖), the negatives mask (D^t_ij > D_ii), the hardest
    negative ``an`` (nearest negative in D) and hardest positive ``ap`` (farthest positive),
    their distances ``d_an``, ``d_ap`` (with gradient) and the weights ``w_n`` = max(0, D^t_an −
    D_an), ``w_p`` = max(0, D_ap − D^t_ap) (without). A row without negatives gets w_n = 0.
    Derived in :doc:`/book/hadis`."""
    _check_pair(k, p, "k and p")
    k, p = F.normalize(k, dim=1), F.normalize(p, dim=1)
    d_t = _distances(k, k).detach()  # the teacher's geometry: a target, never trained
    d = _distances(k.detach(), p)
    neg = d_t > d.diagonal()[:, None].detach()
    # the authors fill non-negatives with 10⁵ and positives' complement with 0 before min / max
    d_an, an = d.masked_fill(~neg, 1e5).min(dim=1)
    d_ap, ap = d.masked_fill(neg, 0.0).max(dim=1)
    rows = torch.arange(len(k), device=k.device)
    w_n = (d_t[rows, an] - d_an.detach()).clamp(min=0)  # 0 where a row has no negative (d_an = 10⁵)
    w_p = (d_ap.detach() - d_t[rows, ap]).clamp(min=0)
    return {"D_t": d_t, "D": d, "negatives": neg, "an": an, "ap": ap, "d_an": d_an, "d_ap": d_ap,
            "w_n": w_n, "w_p": w_p}


def hsd_loss(k: torch.Tensor, p: torch.Tensor, tau: float = 0.5) -> torch.Tensor:
    """Hardness-aware self-distillation, L = mean_i softplus((w^p_i D_{i,ap} − w^n_i D_{i,an})/τ)
    (:func:`hsd_terms`). A hardest positive already nearer to the student than to the teacher
    gets w^p = 0: HSD stops pulling it; a hardest negative already farther gets w^n = 0: HSD
    stops pushing it. Derived in :doc:`/book/hadis`."""
    if tau <= 0:
        raise ValueError(f"tau must be positive, got {tau}.")
    t = hsd_terms(k, p)
    return F.softplus((t["w_p"] * t["d_ap"] - t["w_n"] * t["d_an"]) / tau).mean()


def prototypes(v: torch.Tensor, labels: torch.Tensor, n_clusters: int) -> torch.Tensor:
    """Cluster prototypes of a batch: for each cluster l, the normalised mean of the normalised
    rows of ``v`` labelled l (a zero row for a cluster absent from the batch).
    Derived in :doc:`/book/hadis`."""
    onehot = F.one_hot(labels, n_clusters).to(v.dtype).T  # k×B
    weight = onehot / onehot.sum(1, keepdim=True).clamp(min=1)
    return F.normalize(weight @ F.normalize(v, dim=1), dim=1)


def pcl_loss(q: torch.Tensor, k: torch.Tensor, labels: torch.Tensor, n_clusters: int, tau: float = 0.5,
             absent_logit: float | None = None) -> torch.Tensor:
    """Prototypical contrastive loss. With prototypes c^q_l, c^k_l of q and k (:func:`prototypes`),
    over the clusters l present in the batch:
    L = mean_l −log(e^{c^q_l·c^k_l/τ} / (e^{c^q_l·c^k_l/τ} + Σ_{j≠l present} e^{c^q_l·c^q_j/τ})).
    ``absent_logit``: the authors' code also keeps each absent cluster in the denominator with
    logit −10 (``absent_logit=-10``); None (default) leaves them out, as the issue writes it.
    Derived in :doc:`/book/hadis`."""
    _check_pair(q, k, "q and k")
    if labels.shape != (q.shape[0],) or labels.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"labels must be B integer pseudo-labels, got shape {tuple(labels.shape)}, {labels.dtype}.")
    if labels.min() < 0 or labels.max() >= n_clusters:
        raise ValueError(f"pseudo-labels must lie in [0, {n_clusters}), got [{int(labels.min())}, {int(labels.max())}].")
    if tau <= 0:
        raise ValueError(f"tau must be positive, got {tau}.")
    labels = labels.long()
    cq, ck = prototypes(q, labels, n_clusters), prototypes(k, labels, n_clusters)
    present = torch.bincount(labels, minlength=n_clusters) > 0
    rows = present.nonzero().squeeze(1)  # the clusters in this batch
    pos = (cq[rows] * ck[rows]).sum(1) / tau  # c^q_l·c^k_l/τ
    logits = cq[rows] @ cq.T / tau  # c^q_l·c^q_j/τ, one row per present l
    logits = logits.masked_fill(~present[None, :], -math.inf if absent_logit is None else absent_logit)
    logits = logits.scatter(1, rows[:, None], pos[:, None])  # the positive replaces j = l
    return (torch.logsumexp(logits, dim=1) - pos).mean()


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """The teacher's update θ̄ ← m·θ̄ + (1 − m)·θ, parameter by parameter (not the batch-norm
    statistics: the teacher keeps its own, as in the authors' code). Derived in :doc:`/book/hadis`."""
    if not 0 <= momentum <= 1:
        raise ValueError(f"momentum must lie in [0, 1], got {momentum}.")
    pt, ps = list(teacher.parameters()), list(student.parameters())
    if len(pt) != len(ps) or any(a.shape != b.shape for a, b in zip(pt, ps)):
        raise ValueError("teacher and student must have the same architecture (same parameters, same shapes).")
    for a, b in zip(pt, ps):
        a.mul_(momentum).add_(b.detach(), alpha=1 - momentum)


# ----------------------------------------------------------------------------- networks
def _conv(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class DigitEncoder(nn.Module):
    """The backbone f for small grey images: 3×3 convolutions with batch norm and ReLU,
    ``widths`` = (a, b, c) gives a (stride 1), b (stride 2), c (stride 2), c (stride 1), then a
    global average pool: a c-dimensional feature for any image of at least 4×4 pixels. A stride-1
    stem like the authors' ResNet-18 for 32×32 images, with two downsamplings instead of three
    (a 16×16 USPS digit ends at 4×4). Chosen in :doc:`/book/hadis`."""

    def __init__(self, in_channels: int = 1, widths: tuple[int, ...] = (32, 64, 128)):
        super().__init__()
        a, b, c = widths
        self.net = nn.Sequential(_conv(in_channels, a, 1), _conv(a, b, 2), _conv(b, c, 2), _conv(c, c, 1),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out_dim = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The features f(x), N × ``out_dim``, of images N×C×H×W."""
        return self.net(x)


class FeatureEncoder(nn.Module):
    """The backbone f for feature vectors N×D (the estimator's non-image input): two
    Linear–BN–ReLU layers of ``width`` units. See :doc:`/book/hadis`."""

    def __init__(self, in_dim: int, width: int = 128):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, width), nn.BatchNorm1d(width), nn.ReLU(inplace=True),
                                 nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(inplace=True))
        self.out_dim = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The features f(x), N × ``out_dim``, of feature vectors N×D."""
        return self.net(x)


def _mlp(cin: int, hidden: int, cout: int) -> nn.Sequential:
    """Projector and predictor: Linear–BN–ReLU–Linear, the authors' form."""
    return nn.Sequential(nn.Linear(cin, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, cout))


class HaDisNet(nn.Module):
    """Student (encoder f, projector g, predictor h) and teacher (f̄, ḡ, a copy of f and g
    updated only by :func:`ema_update`). ``features`` gives the teacher's normalised features
    used for the pseudo-labels and the final clustering. Shown in :doc:`/book/hadis`."""

    def __init__(self, encoder: nn.Module, hidden_dim: int = 512, feat_dim: int = 128):
        super().__init__()
        self.student = nn.Sequential(encoder, _mlp(encoder.out_dim, hidden_dim, feat_dim))
        self.predictor = _mlp(feat_dim, hidden_dim, feat_dim)
        for m in self.predictor.modules():  # the authors' initialisation of the predictor
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)
        self.teacher = copy.deepcopy(self.student)
        for p in self.teacher.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def features(self, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """The teacher's normalised features of all of ``x`` (eval mode, batch by batch)."""
        was = self.teacher.training
        self.teacher.eval()
        out = torch.cat([F.normalize(self.teacher(x[i:i + batch_size]), dim=1)
                         for i in range(0, len(x), batch_size)])
        self.teacher.train(was)
        return out


def make_network(input_shape: tuple[int, ...], cfg: HaDisConfig) -> HaDisNet:
    """HaDisNet for images C×H×W (:class:`DigitEncoder`) or feature vectors of D values
    (:class:`FeatureEncoder`). See :doc:`/book/hadis`."""
    if len(input_shape) == 3:
        encoder = DigitEncoder(input_shape[0], cfg.widths)
    elif len(input_shape) == 1:
        encoder = FeatureEncoder(input_shape[0], cfg.widths[-1])
    else:
        raise ValueError(f"HaDis takes images N×C×H×W or feature vectors N×D, got samples of shape {input_shape}.")
    return HaDisNet(encoder, cfg.hidden_dim, cfg.feat_dim)


# ------------------------------------------------------------------------- augmentation
def augment_digits(x: torch.Tensor, generator: torch.Generator | None = None,
                   crop_scale: tuple[float, float] = (0.6, 1.0), rotation: float = 15.0,
                   stroke: float = 0.3, ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> torch.Tensor:
    """A random view of every image of a batch N×C×H×W, each image with its own draw, on the
    batch's device: a resized crop (area share in ``crop_scale``, aspect ratio in ``ratio``,
    anywhere inside the image) rotated by up to ``rotation`` degrees, resampled to the full size
    in one ``affine_grid`` / ``grid_sample`` call (zeros outside: the digits' background), then,
    with probability ``stroke``, the strokes thickened or thinned (half each), at half strength:
    the average of the image and its 3×3 max-pool (min-pool). A full 3×3 max-pool turns a 16×16
    USPS digit into a blob, a full min-pool erases its thin strokes. torchvision's ``transforms.v2.RandomResizedCrop`` draws one crop per call from the
    global generator, so on a batch every image would get the same crop; this draws per image from
    ``generator``. Chosen in :doc:`/book/hadis`."""
    if x.ndim != 4:
        raise ValueError(f"augment_digits takes images N×C×H×W, got shape {tuple(x.shape)}.")
    n = x.shape[0]
    if n == 0:
        return x
    u = torch.rand(n, 6, generator=generator, device=x.device, dtype=x.dtype)
    area = crop_scale[0] + (crop_scale[1] - crop_scale[0]) * u[:, 0]
    log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u[:, 1]
    r = torch.exp(log_r)
    sw, sh = torch.sqrt(area * r).clamp(max=1), torch.sqrt(area / r).clamp(max=1)  # crop size / image size
    cx, cy = (1 - sw) * (2 * u[:, 2] - 1), (1 - sh) * (2 * u[:, 3] - 1)  # crop centre, inside the image
    angle = (2 * u[:, 4] - 1) * math.radians(rotation)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([sw * cos, -sh * sin, cx], 1), torch.stack([sw * sin, sh * cos, cy], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if stroke > 0:
        thick = 0.5 * (out + F.max_pool2d(out, 3, 1, 1))
        thin = 0.5 * (out - F.max_pool2d(-out, 3, 1, 1))
        pick = u[:, 5].view(n, 1, 1, 1)
        out = torch.where(pick < stroke / 2, thick, torch.where(pick < stroke, thin, out))
    return out


def augment_features(x: torch.Tensor, generator: torch.Generator | None = None, drop: float = 0.2,
                     noise: float = 0.1) -> torch.Tensor:
    """A random view of feature vectors N×D (the estimator's non-image input): each value
    zeroed with probability ``drop`` and the rest shifted by Gaussian noise of ``noise`` times
    the batch's per-feature standard deviation. See :doc:`/book/hadis`."""
    keep = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) >= drop
    std = x.std(0, keepdim=True) if len(x) > 1 else torch.ones_like(x[:1])
    eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (x + noise * std * eps) * keep


def make_views(x: torch.Tensor, cfg: HaDisConfig, generator: torch.Generator) -> torch.Tensor:
    """One random view of a batch: :func:`augment_digits` for images, :func:`augment_features`
    for feature vectors. See :doc:`/book/hadis`."""
    if x.ndim == 4:
        return augment_digits(x, generator, cfg.crop_scale, cfg.rotation, cfg.stroke)
    return augment_features(x, generator)


# --------------------------------------------------------------------------- one step
def step_losses(net: HaDisNet, xa: torch.Tensor, xb: torch.Tensor, labels: torch.Tensor, n_clusters: int,
                cfg: HaDisConfig, sigma: float, generator: torch.Generator | None = None) -> dict:
    """The three losses of one step, each the average of its A→B and B→A directions (weights ½):
    ``dsa``, ``hsd`` (None when ``cfg.hsd`` is False) and ``pcl``. The student sees one view,
    the teacher the other. Derived in :doc:`/book/hadis`."""
    out = {"dsa": 0.0, "hsd": 0.0 if cfg.hsd else None, "pcl": 0.0}
    for x1, x2 in ((xa, xb), (xb, xa)):
        q = net.student(x1)
        with torch.no_grad():
            k = F.normalize(net.teacher(x2), dim=1)
        eps = torch.randn(q.shape, generator=generator, device=q.device, dtype=q.dtype)
        p = net.predictor(q + sigma * eps)
        out["dsa"] = out["dsa"] + 0.5 * dsa_loss(p, k)
        if cfg.hsd:
            out["hsd"] = out["hsd"] + 0.5 * hsd_loss(k, p, cfg.hsd_tau)
        out["pcl"] = out["pcl"] + 0.5 * pcl_loss(q, k, labels, n_clusters, cfg.pcl_tau)
    return out


def learning_rate(cfg: HaDisConfig, epoch: float) -> float:
    """The authors' schedule at (fractional) epoch e: linear warm-up 0 → lr over the warm-up,
    then lr·½(1 + cos(π(e − w)/E)) (their code divides by all E epochs, not E − w, so the rate
    does not reach 0). lr is scaled by batch_size/256, as the authors do. See :doc:`/book/hadis`."""
    base = cfg.lr * cfg.batch_size / 256
    if epoch < cfg.warmup_epochs:
        return base * epoch / cfg.warmup_epochs
    return base * 0.5 * (1 + math.cos(math.pi * (epoch - cfg.warmup_epochs) / cfg.epochs))


def pseudo_labels(features: torch.Tensor, n_clusters: int, n_init: int, seed: int) -> np.ndarray:
    """k-means (k-means++ start, scikit-learn) on the teacher's normalised features: the
    pseudo-labels of PCL, every epoch. See :doc:`/book/hadis`."""
    km = KMeans(n_clusters=n_clusters, n_init=n_init, random_state=seed)
    return km.fit_predict(features.detach().cpu().double().numpy()).astype(np.int64)


# ------------------------------------------------------------------------ training loop
@dataclass
class HaDisResult:
    """What :func:`fit_hadis` learned: the network, the final labels (k-means on the teacher's
    normalised features), their centres, and one history entry per epoch. See :doc:`/book/hadis`."""
    net: HaDisNet
    labels: np.ndarray
    centers: np.ndarray
    features: torch.Tensor
    history: list[dict] = field(default_factory=list)
    epochs: int = 0
    seconds: float = 0.0
    processes: int = 1  # how many processes the training took (files.stage_provenance)
    commits: list = field(default_factory=list)  # the code that trained it (files.stage_provenance)
    threads: list = field(default_factory=list)  # each process's torch threads (files.stage_provenance)


def _key(cfg: HaDisConfig, seed: int, n: int, shape, n_clusters: int) -> dict:
    # epochs stays in the key: the learning-rate schedule depends on it, so a longer run is another run
    skip = {"checkpoint_every", "eval_batch_size", "final_n_init"}
    return {"seed": seed, "n": n, "shape": list(shape), "n_clusters": n_clusters,
            **{k: v for k, v in cfg.to_dict().items() if k not in skip}}


def fit_hadis(x: torch.Tensor, n_clusters: int, cfg: HaDisConfig, seed: int = 0, y: np.ndarray | None = None,
              checkpoint: Path | str | None = None, progress: bool = True,
              on_epoch: Callable[[dict], None] | None = None) -> HaDisResult:
    """Train HaDis on ``x`` (images N×C×H×W or feature vectors N×D, already on the training
    device) for ``cfg.epochs`` epochs: each epoch one pass of SGD over shuffled batches (the last
    incomplete batch dropped, as the authors' loader does), then k-means on the teacher's features
    for the next epoch's pseudo-labels, scored against ``y`` when given. Resumes from
    ``checkpoint`` (saved every ``cfg.checkpoint_every`` epochs, written with the same settings) to
    the identical result. Walked through in :doc:`/book/hadis`."""
    _check_config(cfg)
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"HaDis needs at least 2 samples, got {n}.")
    if not 1 <= n_clusters <= n:
        raise ValueError(f"n_clusters must lie in [1, n_samples={n}], got {n_clusters}.")
    torch.manual_seed(seed)  # weight initialisation
    net = make_network(tuple(x.shape[1:]), cfg).to(x.device)
    pred_ids = {id(p) for p in net.predictor.parameters()}
    opt = torch.optim.SGD([{"params": list(net.student.parameters()), "name": "student"},
                           {"params": list(net.predictor.parameters()), "name": "predictor"}],
                          lr=0.0, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    assert not pred_ids & {id(p) for p in net.student.parameters()}
    gen = make_generator(x.device, seed + 1)
    key = _key(cfg, seed, n, x.shape[1:], n_clusters)
    bs = min(cfg.batch_size, n)
    batches = [(a, a + bs) for a in range(0, n - bs + 1, bs)]  # drop the last incomplete batch

    def evaluate_epoch(epoch: int, sums: dict | None, steps: int) -> tuple[dict, np.ndarray]:
        feats = net.features(x, cfg.eval_batch_size)
        labels = pseudo_labels(feats, n_clusters, cfg.kmeans_n_init, seed + epoch)
        rec = {"epoch": epoch, "cluster_sizes": np.bincount(labels, minlength=n_clusters).tolist()}
        if sums is not None:
            rec.update({name: (None if v is None else round(float(v) / steps, 6)) for name, v in sums.items()})
            rec["lr"] = round(learning_rate(cfg, epoch), 6)
        if y is not None:
            rec.update(evaluate(y, labels))
        return rec, labels

    state = load_checkpoint(checkpoint, key, "was trained")
    if state is not None:
        if state["epoch"] > cfg.epochs:
            raise ValueError(f"{checkpoint} is at epoch {state['epoch']}, past epochs={cfg.epochs}; delete it or "
                             "ask for at least as many epochs.")
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        history, labels_np, seconds, start = state["history"], state["labels"], state["seconds"], state["epoch"]
    else:
        rec, labels_np = evaluate_epoch(0, None, 0)
        history, seconds, start = [rec], 0.0, 0
    processes, commits, threads = stage_provenance(state, start < cfg.epochs, "the HaDis training")
    clock = RunClock(seconds)  # less any time the process was stopped

    def save(epoch: int) -> None:
        save_checkpoint(checkpoint, {"net": net.state_dict(), "optimizer": opt.state_dict(), "generator": gen.get_state(),
                                     "history": history, "labels": labels_np, "epoch": epoch,
                                     "seconds": clock.seconds(), "processes": processes, "commits": commits,
                                     "threads": threads, "key": key})

    from tqdm.auto import tqdm
    bar = tqdm(range(start, cfg.epochs), desc="hadis" if cfg.hsd else "propos", disable=not progress,
               initial=start, total=cfg.epochs)
    net.train()
    for epoch in bar:
        warm = epoch < cfg.warmup_epochs
        sigma = 0.0 if warm else cfg.sigma
        labels = torch.as_tensor(labels_np, device=x.device)
        order = torch.randperm(n, generator=gen, device=x.device)
        sums = {"loss": 0.0, "dsa": 0.0, "hsd": 0.0 if cfg.hsd else None, "pcl": 0.0}
        for b, (a, e) in enumerate(batches):
            lr = learning_rate(cfg, epoch + b / len(batches))
            for group in opt.param_groups:
                group["lr"] = lr * (cfg.predictor_lr_scale if group["name"] == "predictor" else 1.0)
            idx = order[a:e]
            xb = x[idx]
            xa, xv = make_views(xb, cfg, gen), make_views(xb, cfg, gen)
            parts = step_losses(net, xa, xv, labels[idx], n_clusters, cfg, sigma, gen)
            loss = parts["dsa"] + (parts["hsd"] if cfg.hsd else 0.0) + (0.0 if warm else cfg.pcl_weight) * parts["pcl"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            ema_update(net.teacher, net.student, cfg.ema)
            tick()
            sums["loss"] += loss.detach()
            for name in ("dsa", "hsd", "pcl"):
                if sums[name] is not None:
                    sums[name] += parts[name].detach()
        rec, labels_np = evaluate_epoch(epoch + 1, sums, len(batches))
        history.append(rec)
        if "acc" in rec:
            bar.set_postfix(acc=rec["acc"], nmi=rec["nmi"])
        if on_epoch is not None:
            on_epoch(rec)
        if (epoch + 1) % cfg.checkpoint_every == 0 or epoch + 1 == cfg.epochs:
            save(epoch + 1)
    bar.close()
    seconds = clock.seconds()
    feats = net.features(x, cfg.eval_batch_size)
    km = KMeans(n_clusters=n_clusters, n_init=cfg.final_n_init, random_state=seed)
    final = km.fit_predict(feats.cpu().double().numpy()).astype(np.int64)
    return HaDisResult(net=net, labels=final, centers=km.cluster_centers_.astype(np.float32), features=feats,
                       history=history, epochs=cfg.epochs, seconds=seconds, processes=processes,
                       commits=commits, threads=threads)


def checkpoint_path(dataset: str, cfg: HaDisConfig, seed: int) -> Path:
    """``<checkpoints>/<dataset>/hadis/<run name>.pt`` (the root is
    :func:`decs.paths.checkpoints_root`): apart from DECS's folders. See :doc:`/book/hadis`."""
    from .paths import checkpoints_root

    return checkpoints_root() / dataset / "hadis" / f"{run_name(cfg, seed)}.pt"


def run(x: torch.Tensor, y: np.ndarray, cfg: HaDisConfig, seed: int = 0, device: str | torch.device | None = None,
        checkpoint: Path | str | None = None, dataset: str | None = None, progress: bool = True,
        on_epoch: Callable[[dict], None] | None = None) -> tuple[HaDisResult, dict]:
    """A scored HaDis run on a labelled data set: :func:`fit_hadis` and its run record (the
    same fields as DECS's: final ACC/NMI/ARI and clusters used, the history, the config, seed,
    commit, hardware and wall time). Walked through in :doc:`/book/hadis`."""
    if y is None:
        raise ValueError("run() needs labels y to score the clustering; use decs.estimator.HaDis for unlabelled data.")
    y = np.asarray(y)
    device = get_device(device)
    this_call = RunClock()
    environment = environment_info(device)
    x = x.to(device)
    k = int(len(np.unique(y)))
    res = fit_hadis(x, k, cfg, seed, y, checkpoint, progress, on_epoch)
    final = evaluate(y, res.labels)
    record = {
        "dataset": dataset, "method": "hadis", "variant": variant_name(cfg.hsd),
        "profile": cfg.profile,
        "seed": seed, "n_samples": int(x.shape[0]), "n_clusters": k, "input_shape": list(x.shape[1:]),
        "final": {**{m: final[m] for m in ("acc", "nmi", "ari")},
                  "clusters_used": int(np.count_nonzero(np.bincount(res.labels, minlength=k)))},
        "final_labels": "k-means (final_n_init restarts) on the teacher's L2-normalised features",
        "epochs": res.epochs, "history": res.history, "config": cfg.to_dict(),
        "adaptation": "this book's adaptation of HaDis to grey digits (decs.hadis): DigitEncoder backbone, "
                      "crop/rotation/stroke augmentations; not the authors' ResNet-18 and colour augmentations",
        "wall_time_s": {"train": round(res.seconds, 1), "this_call": round(this_call.seconds(), 1),
                        "processes": {"train": res.processes}, "threads": {"train": res.threads},
                        "note": "train is summed over interrupted and resumed sessions, less any time a "
                                "process was stopped (kill -STOP ... -CONT), and includes each epoch's k-means; "
                                "processes says how many it took (a run resumed twice took 3) and threads the "
                                "torch threads of each of them in order (null: not recorded)"},
        "environment": {**environment, "commits": {"train": res.commits}},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return res, record


# ------------------------------------------------------------------------------ model files
MODEL_FORMAT = 1


def save_model_file(res: HaDisResult, record: dict, record_path: Path | str, root: Path | str) -> dict:
    """Write the run's teacher (f̄, ḡ: all the final labels need) and its k-means centres beside
    the record (same name, ``.pt``; about 2 MB at the cpu profile) and name the file, with its
    sha256, in ``record["model_files"]["final"]``. Call before writing the record. Loaded by
    :func:`load_model_file`; shown in :doc:`/book/hadis`."""
    from .data import sha256

    root, path = Path(root), Path(record_path).with_suffix(".pt")
    payload = {"format": MODEL_FORMAT, "input_shape": record["input_shape"],
               "config": record["config"], "n_clusters": record["n_clusters"],
               "teacher": {k: v.detach().cpu() for k, v in res.net.teacher.state_dict().items()},
               "centers": torch.as_tensor(res.centers)}
    save_torch(payload, path)
    entry = {"path": path.relative_to(root).as_posix(), "sha256": sha256(path), "bytes": path.stat().st_size}
    record["model_files"] = {"final": entry}
    return entry


def load_model_file(record: dict, root: Path | str, device: str | torch.device = "cpu") -> tuple[HaDisNet, torch.Tensor]:
    """The network (its teacher loaded; the student is left untrained) and the k-means centres of a
    record's model file, after checking its sha256. ``net.features(x)`` and the nearest centre
    give the record's final labels again. See :doc:`/book/hadis`."""
    from .data import sha256

    entry = record.get("model_files", {}).get("final")
    if entry is None:
        raise FileNotFoundError("this record names no model file (only seed-0 protocol runs keep one, "
                                "or runs trained with --model-files all).")
    path = Path(root) / entry["path"]
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the record names it ({entry['sha256'][:12]}...).")
    if sha256(path) != entry["sha256"]:
        raise ValueError(f"{path} is not the file the record was written with (sha256 differs).")
    payload = torch.load(path, map_location="cpu", weights_only=False)
    cfg = HaDisConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in payload["config"].items()})
    net = make_network(tuple(payload["input_shape"]), cfg)
    net.teacher.load_state_dict(payload["teacher"])
    return net.to(device).eval(), payload["centers"].to(device)
