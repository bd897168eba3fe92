"""Hyper-parameters in one typed object, per profile (``ci``, ``cpu``, ``paper``).

The three profiles are three sizes of the *same* code path: they change how long we
train and on how many samples, never what the code does. ``paper`` has the authors' lengths
and hyper-parameters (the training procedure of the authors' code,
github.com/ChengZhanwen/DECS at commit 85f2586), but it runs *our* code, which is not
theirs step for step: every profile, ``paper`` included, has ``recalibrate_bn=True``, a
re-estimation of the batch-norm statistics after pretraining that their code does not do
(``recalibrate_bn=False`` leaves it out). Other differences are not settings here: the decoder's
pixel alignment, the length of a pretraining epoch, Adam's ε and the generators that draw the weights
(:doc:`/book/03_representation_learning`), and when Otsu's pass runs within an iteration
(:doc:`/book/08_training_usps`). Select a profile with ``DECS_PROFILE`` or the ``profile``
argument. Used throughout the book; the table of profiles is in :doc:`/book/01_preface`.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import os
from dataclasses import dataclass

PROFILES = ("ci", "cpu", "paper")
PRECISIONS = ("fp32", "bf16")  # Config.precision: the choices (decs.device.autocast)
PRETRAIN_EPOCHS_FORMS = ("full", "keras")   # Config.pretrain_epoch: the choices (book/03_representation_learning)
PRETRAIN_ADAM_FORMS = ("pytorch", "keras")  # Config.pretrain_adam: the choices (book/03_representation_learning)
METHODS = ("decs", "dec")
FORMS = ("code", "paper")                   # Config.form: the choices (book/07_instability_loss)
THRESHOLDS = ("otsu", "1/k")                # Config.threshold: the choices
DECODER_ALIGNMENTS = ("ours", "keras")      # Config.decoder_alignment: the choices (decs.models)
# The α × λ grid of `python -m decs sweep` (log-spaced, the paper's α = 0.5 and λ = 0.4 among
# them); run in decs.__main__.sweep_order, read in book/sensitivity.ipynb
SWEEP_ALPHAS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
SWEEP_LAMS = (0.01, 0.04, 0.1, 0.4, 1.0, 4.0)


@dataclass(frozen=True)
class Config:
    # --- scale: what the profiles change -------------------------------------------------
    profile: str = "paper"          # which profile these numbers came from
    subset: int | None = None       # train on a class-stratified subset of this many samples (None: all)
    pretrain_epochs: int = 500      # autoencoder pretraining epochs
    maxiter: int = 20_000           # clustering iterations (mini-batch steps)
    # --- the method ------------------------------------------------------------------------
    alpha: float = 0.5              # Student-t degrees of freedom α of q (DECS 0.5; DEC uses 1.0)
    lam: float = 0.4                # λ, weight of the variance of determinacy in the stability s_i
    form: str = "code"              # "code": linear f, L = 1 − (mean s + var s); "paper": quadratic f, L = 1 − mean s
    threshold: str = "otsu"         # "otsu": Otsu's t per batch; "1/k": the fixed threshold 1/k
    otsu_bins: int = 1000           # histogram bins of the Otsu threshold
    otsu_bn_eval: bool = True       # q for Otsu from a forward pass with batch-norm in eval mode (authors' code;
                                    # theirs runs it before the training forward, ours after it)
    variance_reward: bool = True    # code form: reward the batch variance var_i s_i (False: L = 1 − mean s)
    # --- this book's remedies for emptied clusters (not the paper's method; off by default) --
    balance: float = 0.0            # weight of KL(mean_i q_i ‖ uniform) on each batch (cluster balance)
    reseed_empty: bool = False      # at each evaluation, move an emptied centroid into the largest cluster
    # --- optimisation ----------------------------------------------------------------------
    batch_size: int = 256           # mini-batch size, pretraining and clustering
    lr: float = 1e-3                # Adam learning rate, pretraining and clustering
    augment: bool = True            # random shift/rotation of every pretraining batch
    augment_clustering: bool = True  # random shift/rotation of every clustering batch
    shift: float = 0.1              # largest shift, as a fraction of width and height
    rotation: float = 10.0          # largest rotation, in degrees
    shuffle_clustering: bool = False  # authors' code walks the data in a fixed order while clustering
    kmeans_n_init: int = 20         # k-means restarts for the centroid initialisation
    recalibrate_bn: bool = True     # re-estimate batch-norm statistics on clean data after pretraining
                                    # (not in the authors' code, yet on in every profile, paper included;
                                    # changes little after long pretraining, rescues short runs — see
                                    # decs.passes.recalibrate_batchnorm)
    update_interval: int = 30       # evaluate labels on the clean data every this many iterations
    # --- DEC baseline ----------------------------------------------------------------------
    dec_alpha: float = 1.0          # DEC's Student-t α
    dec_update_interval: int = 140  # DEC recomputes its target P on all data every T iterations
    tol: float = 0.001              # DEC stops when fewer than this fraction of labels change
    # --- model -----------------------------------------------------------------------------
    filters: tuple[int, ...] = (32, 64, 128, 256)  # channels of the four convolutions
    embedding_dim: int = 10         # dimension of the embedding z
    decoder_alignment: str = "ours"  # "keras": the decoder's transposed convolutions placed as the
                                    # authors' Keras ones (one pixel off ours; decs.models._up)
    pretrain_epoch: str = "full"    # "keras": an epoch is n // batch_size batches of a stream of
                                    # shuffled passes, as the authors' fit_generator(steps_per_epoch)
    pretrain_adam: str = "pytorch"  # "keras": pretraining's Adam adds ε̂ = 1e-7 to √v_t before the
                                    # bias correction, as Keras's Adam (derived in book/03_representation_learning)
    precision: str = "fp32"         # "bf16": the network's forward passes under bfloat16 autocast
                                    # while training (losses, q and scores stay fp32); this book's
                                    # opt-in for speed, not the paper's (decs.device.autocast)
    # --- bookkeeping -----------------------------------------------------------------------
    eval_batch_size: int = 512      # batch size of full-data passes under no_grad
    checkpoint_every: int = 1000    # save a checkpoint every this many iterations (the pretraining's:
                                    # every 10 epochs, and every 10 minutes, decs.train.SAVE_EVERY_S)

    def __post_init__(self):
        check_config(self)

    def replace(self, **changes) -> "Config":
        """A copy with some fields changed (the object itself is immutable)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"unknown config field(s) {sorted(unknown)}; valid: "
                             f"{[f.name for f in dataclasses.fields(self)]}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def kernel_alpha(self, method: str) -> float:
        """The Student-t α of ``method``'s soft assignment q: DECS's ``alpha``, DEC's ``dec_alpha``
        (:doc:`/book/04_dec_pseudo_targets`)."""
        return self.alpha if method == "decs" else self.dec_alpha


class ConfigError(ValueError):
    """A setting that cannot work: of the wrong type, out of its range, not one of its choices, or
    in a combination with another that cannot work. Raised when the configuration is made, before
    any data is loaded; the message names the field, what it got and what it takes. A
    ``ValueError``, so code that catches those keeps working."""


# The checks of one field each. ``check_whole``: an int (not a bool) ≥ low; ``check_real``: a finite number
# (an int is accepted) above ``low`` (or at least ``low`` when ``closed``) and at most ``high``.
def check_whole(obj, name: str, low: int, hint: str = "") -> None:
    """Refuse ``obj.name`` unless it is a whole number ≥ ``low`` (:doc:`/book/reproducibility`)."""
    value = getattr(obj, name)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ConfigError(f"{name} must be a whole number ≥ {low}, got {value!r}{hint}.")


def check_real(obj, name: str, low: float, closed: bool, high: float = math.inf) -> None:
    """Refuse ``obj.name`` unless it is a finite number above ``low`` (at least, when ``closed``), at most ``high``."""
    value = getattr(obj, name)
    ok = (not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)
          and (value >= low if closed else value > low) and value <= high)
    if not ok:
        where = (f"{'≥' if closed else '>'} {low}" if high == math.inf
                 else f"in {'[' if closed else '('}{low}, {high}]")
        raise ConfigError(f"{name} must be a finite number {where}, got {value!r}.")


def check_flag(obj, name: str) -> None:
    """Refuse ``obj.name`` unless it is True or False."""
    value = getattr(obj, name)
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be True or False, got {value!r}.")


def check_choice(obj, name: str, choices) -> None:
    """Refuse ``obj.name`` unless it is one of ``choices``."""
    value = getattr(obj, name)
    if value not in choices:
        raise ConfigError(f"{name} must be one of {choices}, got {value!r}.")


def check_subset(obj) -> None:
    """Refuse a ``subset`` that is not a whole number ≥ 1 (or None), or is smaller than the batch."""
    if obj.subset is not None:
        check_whole(obj, "subset", 1, " (or None: all samples)")
        if obj.batch_size > obj.subset:
            raise ConfigError(f"batch_size={obj.batch_size} is larger than subset={obj.subset}, the number of "
                              f"samples; set batch_size to at most {obj.subset} (e.g. --set batch_size={obj.subset}).")


def check_config(cfg: "Config") -> None:
    """Every field of ``cfg`` in its type and range, and the combinations that cannot work; raises
    :class:`ConfigError` naming the first that fails. :class:`Config` runs it when it is made, so a
    configuration that exists is one that can run. The ranges: lengths (epochs, iterations,
    intervals, batch sizes, restarts) are whole numbers ≥ 1 — a run without pretraining is asked
    for with ``train --start-from FILE``, not with ``pretrain_epochs=0``; the learning rate and the
    Student-t α are > 0; λ, the balance weight and the augmentation ranges ≥ 0; the batch is no
    larger than the subset. Called by the estimators too (:mod:`decs.estimator`)."""
    check_choice(cfg, "profile", PROFILES)
    check_whole(cfg, "batch_size", 1)
    check_subset(cfg)
    check_whole(cfg, "pretrain_epochs", 1, "; to cluster from a network without pretraining it, use "
                                      "`python -m decs train --start-from FILE`")
    for name in ("maxiter", "otsu_bins", "kmeans_n_init", "update_interval", "dec_update_interval",
                 "embedding_dim", "eval_batch_size", "checkpoint_every"):
        check_whole(cfg, name, 2 if name == "otsu_bins" else 1)
    for name in ("alpha", "lr", "dec_alpha"):
        check_real(cfg, name, 0.0, closed=False)
    for name in ("lam", "balance", "rotation"):
        check_real(cfg, name, 0.0, closed=True)
    check_real(cfg, "shift", 0.0, closed=True, high=1.0)
    check_real(cfg, "tol", 0.0, closed=True, high=1.0)
    for name in ("otsu_bn_eval", "variance_reward", "reseed_empty", "augment", "augment_clustering",
                 "shuffle_clustering", "recalibrate_bn"):
        check_flag(cfg, name)
    for name, choices in (("form", FORMS), ("threshold", THRESHOLDS), ("decoder_alignment", DECODER_ALIGNMENTS),
                          ("precision", PRECISIONS), ("pretrain_epoch", PRETRAIN_EPOCHS_FORMS),
                          ("pretrain_adam", PRETRAIN_ADAM_FORMS)):
        check_choice(cfg, name, choices)
    f = cfg.filters
    if (not isinstance(f, tuple) or len(f) != 4
            or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1 for v in f)):
        raise ConfigError(f"filters must be four whole numbers ≥ 1 (the channels of the four convolutions), "
                          f"got {f!r}.")


def check_for_dataset(cfg, n_samples: int, n_classes: int, dataset: str = "the dataset") -> None:
    """The settings that depend on the data, checked before it is loaded: a subset no larger than
    the dataset and holding at least one sample per cluster, a batch no larger than the data.
    ``cfg`` is a :class:`Config` or a :class:`decs.hadis.HaDisConfig`. Raises :class:`ConfigError`."""
    n = n_samples if cfg.subset is None else cfg.subset
    if cfg.subset is not None and cfg.subset > n_samples:
        raise ConfigError(f"subset={cfg.subset} is larger than {dataset} ({n_samples:,} samples); ask for at "
                          f"most {n_samples:,}, or subset=None for all.")
    if n < n_classes:
        raise ConfigError(f"subset={n} holds fewer samples than the {n_classes} clusters of {dataset} "
                          f"(k larger than n); ask for at least {n_classes} samples.")
    if cfg.batch_size > n:
        raise ConfigError(f"batch_size={cfg.batch_size} is larger than the {n:,} samples of {dataset}; "
                          f"set batch_size to at most {n}.")


# What each profile changes relative to the paper's settings. Measured on 2 CPU cores
# (see the book's reproducibility page for timings).
_PROFILE_CHANGES = {
    "paper": {},
    "cpu": {"pretrain_epochs": 200, "maxiter": 3000},
    "ci": {"subset": 1000, "pretrain_epochs": 8, "maxiter": 150, "kmeans_n_init": 4},
}


def active_profile(profile: str | None = None) -> str:
    """The profile to use: the argument, else ``DECS_PROFILE``, else ``cpu``."""
    name = (profile or os.environ.get("DECS_PROFILE") or "cpu").strip().lower()
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {PROFILES} "
                         "(argument or DECS_PROFILE environment variable).")
    return name


def get_config(profile: str | None = None, **overrides) -> Config:
    """The configuration of a profile, with optional field overrides.

    >>> get_config("paper").pretrain_epochs
    500

    Raises :class:`ConfigError` (a ``ValueError``) for a setting that cannot work, before any
    data is loaded (:func:`check_config`).
    """
    name = active_profile(profile)
    cfg = Config(profile=name).replace(**_PROFILE_CHANGES[name])
    return cfg.replace(**overrides) if overrides else cfg
