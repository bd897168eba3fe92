"""scikit-learn estimators: ``DECS``, ``DEC`` and ``HaDis``.

    >>> from decs import DECS
    >>> model = DECS(n_clusters=10, random_state=0).fit(x)   # x: N×C×H×W images in [0, 1], or N×D features
    >>> model.labels_, model.cluster_centers_, model.clusters_used_
    >>> model.predict(x_new), model.transform(x_new)          # labels, embeddings

``HaDis`` (:doc:`/book/hadis`) is the contrastive method without pretraining, with the same API.
All are scikit-learn ``BaseEstimator`` and ``ClusterMixin`` subclasses:
parameters are stored unchanged in ``__init__``, ``fit`` does the work, learned state ends in
``_``, and they pass ``sklearn.utils.estimator_checks.check_estimator`` (``tests/test_estimator.py``
lists the checks that cannot apply, with the reasons). Training-length parameters left at
``None`` follow the active profile (``DECS_PROFILE``; see :mod:`decs.config`). Each
parameter's type and range is checked at the start of ``fit``, before any work
(``_parameter_constraints``, scikit-learn's convention), and the configuration a fit makes is
checked as :func:`decs.config.check_config` checks every one.

``network`` picks the autoencoder: "conv" (the authors' convolutional network, for images of at
least 8×8 pixels with values in [0, 1]), "mlp" (DEC's fully-connected d–500–500–2000–10, for
feature vectors N×D of any finite values, trained without augmentation) or "auto" (conv for such
images, the MLP for everything else). A fit that empties clusters says so with a
:class:`UserWarning`; why DECS empties clusters is shown in :doc:`/book/dying_clusters`.
The pretraining is counted in epochs, as the profiles count it; on a few thousand small images
that is few optimiser steps, and the same chapter ("How long the estimator pretrains") measures
what a pretraining as many steps long as USPS's changes, on images that are neither USPS nor MNIST.
"""
from __future__ import annotations

import math
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, ClusterMixin, TransformerMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from .config import FORMS, PROFILES, THRESHOLDS, get_config
from .models import MIN_SIDE
from .stability import soft_assign
from .device import get_device
from .passes import embed
from .runs import fit_clusters

NETWORKS = ("auto", "conv", "mlp")

# The parameters' types and ranges, in scikit-learn's convention (``_parameter_constraints``,
# checked by ``BaseEstimator._validate_params`` at the start of ``fit``, before any work). The
# same ranges as :func:`decs.config.check_config`, which checks the configuration a fit then
# makes, together with the combinations of settings.
_LENGTH = [Interval(Integral, 1, None, closed="left"), None]   # None: the profile's
_RATE = [Interval(Real, 0, None, closed="neither"), None]
_COMMON = {
    "n_clusters": [Interval(Integral, 1, None, closed="left")],
    "batch_size": _LENGTH,
    "lr": _RATE,
    "profile": [StrOptions(set(PROFILES)), None],
    "image_shape": ["array-like", None],
    "device": [str, torch.device, None],
    "random_state": [Interval(Integral, 0, None, closed="left"), None],
    "verbose": ["verbose"],
    "network": [StrOptions(set(NETWORKS))],
}
_TRAINING = {"pretrain_epochs": _LENGTH, "maxiter": _LENGTH, "augment": ["boolean", None],
             "kmeans_n_init": _LENGTH, "update_interval": _LENGTH}
CHAPTER = "book/dying_clusters"  # "Why a cluster dies": what empties a cluster, and the remedies


def check_images(X, image_shape=None) -> torch.Tensor:
    """Validate image data (the convolutional network's input) and return it as a float32
    tensor N×C×H×W.

    Accepts numpy arrays or tensors shaped N×C×H×W (C = 1 or 3; N×H×W×C is transposed),
    N×H×W (one channel), or flat N×D together with ``image_shape`` = (C, H, W) or (H, W)
    (without it, D must be a perfect square: one square channel). Values must be finite
    floats in [0, 1]. Every problem raises a ValueError that says what to do.
    """
    if isinstance(X, torch.Tensor):
        arr = X.detach().cpu().numpy()
    else:
        try:
            arr = np.asarray(X)
        except Exception as exc:  # ragged lists and the like
            raise ValueError(f"X could not be read as an array ({exc}); pass an N×C×H×W array.") from exc
    if arr.dtype == object:
        raise ValueError("X could not be read as a numeric array; pass an N×C×H×W float array.")
    if arr.size == 0 or arr.shape[0] == 0:
        raise ValueError(f"X is empty (shape {arr.shape}); pass at least one image.")
    if np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool:
        raise ValueError(f"X holds integers ({arr.dtype}); convert pixels to floats in [0, 1], "
                         "e.g. X.astype('float32') / 255.")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"X must hold real floats in [0, 1], got dtype {arr.dtype}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError("X contains NaN or inf; remove or impute those images first.")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"pixel values must lie in [0, 1], found [{lo:.4g}, {hi:.4g}]; rescale, e.g. "
                         "(X - X.min()) / (X.max() - X.min()), or X / 255 for 8-bit images.")
    if arr.ndim == 2:
        d = arr.shape[1]
        if image_shape is None:
            side = math.isqrt(d)
            if side * side != d:
                raise ValueError(f"flat X has {d} features, not a square image; pass image_shape=(C, H, W).")
            image_shape = (1, side, side)
        image_shape = tuple(int(v) for v in image_shape)
        if len(image_shape) == 2:
            image_shape = (1, *image_shape)
        if len(image_shape) != 3 or math.prod(image_shape) != d:
            raise ValueError(f"image_shape {image_shape} does not hold {d} features; give (C, H, W) with C·H·W = {d}.")
        arr = arr.reshape(len(arr), *image_shape)
    elif arr.ndim == 3:
        arr = arr[:, None]
    elif arr.ndim == 4:
        if arr.shape[1] not in (1, 3) and arr.shape[-1] in (1, 3):
            arr = arr.transpose(0, 3, 1, 2)  # N×H×W×C → N×C×H×W
    else:
        raise ValueError(f"X must be N×C×H×W, N×H×W or N×D (with image_shape); got {arr.ndim} dimensions "
                         f"(shape {arr.shape}).")
    return torch.from_numpy(np.array(arr, dtype=np.float32, order="C"))  # a copy: read-only input stays so


def check_tabular(X, estimator=None, reset: bool = True) -> torch.Tensor:
    """Validate feature vectors (the MLP network's input) and return them as a float32 tensor N×D.

    Accepts whatever :func:`sklearn.utils.check_array` reads as a dense 2-D numeric array (numpy,
    lists, pandas, or a tensor), of any scale: the [0, 1] rule is only for images. Integers are
    converted to floats. NaN, inf, complex numbers, 1-D or empty input raise a ValueError, sparse
    matrices a TypeError, each saying what to do. With ``estimator``,
    :func:`sklearn.utils.validation.validate_data` also records (``reset=True``, in ``fit``) or
    checks (``reset=False``) ``n_features_in_`` and ``feature_names_in_``.
    """
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    options = dict(dtype=(np.float32, np.float64), ensure_2d=True, ensure_all_finite=True)
    arr = (check_array(X, **options) if estimator is None
           else validate_data(estimator, X, reset=reset, **options))
    with np.errstate(over="ignore"):  # overflow is reported below, as an error
        arr = arr.astype(np.float32)  # a copy: read-only input stays untouched
    if not np.all(np.isfinite(arr)):
        raise ValueError("X holds values beyond float32's range (about ±3.4e38); rescale the features, "
                         "e.g. with sklearn.preprocessing.StandardScaler.")
    return torch.from_numpy(arr)


def _ndim(X) -> int:
    """The number of dimensions of X without converting it (arrays, tensors, pandas, sparse)."""
    if hasattr(X, "ndim"):
        return int(X.ndim)
    try:
        return np.asarray(X).ndim  # lists, and objects with __array__
    except (ValueError, TypeError):  # a ragged list, say: check_tabular says what is wrong with it
        return 2


def degenerate_clusters(sizes, start_sizes, share: float = 0.01, factor: float = 5.0
                        ) -> tuple[np.ndarray, np.ndarray]:
    """The clusters a fit emptied, and those it shrank to under ``share`` of the samples while
    the k-means start gave them at least ``factor`` times as many, as two index arrays.
    ``sizes`` and ``start_sizes`` are the cluster sizes at the end and at the k-means start.
    How DECS empties clusters is shown in :doc:`/book/dying_clusters`."""
    sizes, start_sizes = np.asarray(sizes), np.asarray(start_sizes)
    empty = np.flatnonzero(sizes == 0)
    small = np.flatnonzero((sizes > 0) & (sizes < share * sizes.sum()) & (start_sizes >= factor * sizes))
    return empty, small


class _DeepClustering(ClassNamePrefixFeaturesOutMixin, TransformerMixin, ClusterMixin, BaseEstimator):
    """Shared machinery of :class:`DECS` and :class:`DEC` (they differ in the clustering loss).
    A clusterer, and a transformer whose ``transform`` gives the embedding z."""

    _method = "decs"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]  # the embedding is float32 for any input
        return tags

    @property
    def _n_features_out(self) -> int:  # names the embedding's columns: get_feature_names_out()
        return self.cluster_centers_.shape[1]

    def _config(self, network: str):
        overrides = {k: v for k, v in {
            "pretrain_epochs": self.pretrain_epochs, "maxiter": self.maxiter,
            "batch_size": self.batch_size, "lr": self.lr, "augment": self.augment,
            "kmeans_n_init": self.kmeans_n_init, "update_interval": self.update_interval,
        }.items() if v is not None}
        overrides.update(self._method_overrides())
        if network == "mlp":  # shifts and rotations mean nothing for feature vectors
            if self.augment:
                raise ValueError("augment=True shifts and rotates images, but this fit uses the MLP network "
                                 f"(network={self.network!r}; 'auto' picks it for anything but images of at "
                                 f"least {MIN_SIDE}×{MIN_SIDE} pixels); leave augment=None or set augment=False.")
            overrides.update(augment=False, augment_clustering=False)
        return get_config(self.profile, subset=None, **overrides)

    def _method_overrides(self) -> dict:
        return {}

    def _check_n_clusters(self, n: int) -> None:
        k = self.n_clusters
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise ValueError(f"n_clusters must be an integer ≥ 1, got {k!r}.")
        if n < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 samples to learn from, got n_samples={n}.")
        if k > n:
            raise ValueError(f"n_clusters={k} is larger than the number of samples (n_samples={n}); "
                             "use fewer clusters or more data.")

    def _check_input(self, X, reset: bool) -> tuple[torch.Tensor, str]:
        """Validate ``X`` and choose the network: in ``fit`` (``reset=True``) from the
        ``network`` parameter and the shape of X; afterwards the one ``fit`` chose."""
        network = self.network if reset else self.network_
        if network not in NETWORKS:
            raise ValueError(f"network must be one of {NETWORKS}, got {network!r}.")
        ndim = _ndim(X)
        if network == "auto":
            if ndim >= 3 or (ndim == 2 and self.image_shape is not None):  # image-shaped
                x = check_images(X, self.image_shape)
                if min(x.shape[-2:]) >= MIN_SIDE:
                    return x, "conv"
                X, ndim = x.numpy(), x.ndim  # too small for three poolings: the MLP on the pixels
            network = "mlp"
        if network == "conv":
            return check_images(X, self.image_shape), "conv"
        if ndim >= 3:  # images given to the MLP: one vector of pixels each
            X = (X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X)).reshape(len(X), -1)
        return check_tabular(X, self, reset), "mlp"

    def fit(self, X, y=None):
        """Learn the embedding and the centroids from ``X``: images N×C×H×W, N×H×W, or N×D with
        ``image_shape`` (values in [0, 1]), or feature vectors N×D (any finite values), with the
        network that ``network`` picks. ``y`` is ignored (accepted for scikit-learn
        compatibility). Warns when the fit emptied clusters (:doc:`/book/dying_clusters`).
        Returns ``self``."""
        self._validate_params()  # the parameters' types and ranges, before any work
        x, network = self._check_input(X, reset=True)
        self._check_n_clusters(len(x))
        cfg = self._config(network)
        seed = 0 if self.random_state is None else int(self.random_state)
        device = get_device(self.device)
        k = int(self.n_clusters)
        fitted = fit_clusters(x.to(device), k, cfg, self._method, seed, progress=bool(self.verbose),
                              network=network)
        self.network_ = network
        self.config_ = cfg
        self.autoencoder_ = fitted.model
        self.encoder_ = fitted.model.encoder
        self.centroids_ = fitted.result.centroids
        self.cluster_centers_ = self.centroids_.cpu().numpy()
        self.labels_ = fitted.result.labels
        self.history_ = fitted.result.history
        self.n_iter_ = fitted.result.iterations
        self.input_shape_ = tuple(x.shape[1:])
        if network == "conv":  # check_tabular records them for the MLP
            self.n_features_in_ = math.prod(self.input_shape_)
            if hasattr(self, "feature_names_in_"):  # from an earlier fit on a data frame
                del self.feature_names_in_
        sizes = np.bincount(self.labels_, minlength=k)
        self.clusters_used_ = int(np.count_nonzero(sizes))
        self._warn_if_degenerate(sizes, np.bincount(fitted.kmeans_labels, minlength=k))
        return self

    # what gave the clusters their first sizes, as the degenerate-fit warning names it
    _start_name = "the k-means start"

    def _warn_if_degenerate(self, sizes: np.ndarray, start_sizes: np.ndarray) -> None:
        """A UserWarning when the fit emptied or nearly emptied clusters (:func:`degenerate_clusters`)."""
        empty, small = degenerate_clusters(sizes, start_sizes)
        if len(empty) == 0 and len(small) == 0:
            return
        k = len(sizes)
        what = [f"{len(empty)} of its {k} clusters empty"] if len(empty) else []
        if len(small):
            what.append(f"{len(small)} holding under 1 % of the samples ({self._start_name} gave "
                        f"{'them' if len(small) > 1 else 'it'} at least 5× as many)")
        warnings.warn(f"{type(self).__name__} ended with {' and '.join(what)}: labels_ use "
                      f"{self.clusters_used_} of {k} clusters. {self._degenerate_advice()}",
                      UserWarning, stacklevel=3)

    def _degenerate_advice(self) -> str:
        """What the degenerate-fit warning tells the user to read and try."""
        if self._method == "decs":
            remedy = "this book's remedies (not the paper's method): reseed_empty=True, or balance>0"
            used = [f"{p}={getattr(self, p)!r}" for p in ("reseed_empty", "balance") if getattr(self, p)]
            remedy += f" (this fit used {' and '.join(used)})" if used else ""
        else:
            remedy = ("DEC has no remedy parameter; this book's remedies (not the paper's method) are the "
                      "DECS parameters reseed_empty=True and balance>0")
        return f"Why clusters empty, and what helps: the book's chapter {CHAPTER}; {remedy}."

    def _check_fitted(self, X) -> torch.Tensor:
        check_is_fitted(self)
        x, _ = self._check_input(X, reset=False)
        if tuple(x.shape[1:]) != self.input_shape_:
            raise ValueError(f"samples of shape {tuple(x.shape[1:])} given, but the model was fitted on "
                             f"{self.input_shape_}.")
        return x.to(self.centroids_.device)

    def transform(self, X) -> np.ndarray:
        """The embeddings z of ``X`` (N×d)."""
        x = self._check_fitted(X)
        return embed(self.encoder_, x, self.config_.eval_batch_size).cpu().numpy()

    def predict_proba(self, X) -> np.ndarray:
        """The soft assignments q of ``X`` to the learned centroids (N×k)."""
        x = self._check_fitted(X)
        z = embed(self.encoder_, x, self.config_.eval_batch_size)
        return soft_assign(z, self.centroids_, self.alpha).cpu().numpy()

    def predict(self, X) -> np.ndarray:
        """Cluster labels argmax_j q_ij of ``X``."""
        return self.predict_proba(X).argmax(axis=1)


class DECS(_DeepClustering):
    """Deep embedding clustering driven by sample stability :cite:p:`cheng2024decs`.

    Parameters (stored unchanged by ``__init__``):

    - ``n_clusters``: number of clusters k (≥ 1, ≤ number of samples).
    - ``alpha``: Student-t degrees of freedom α of the co-association probability (0.5).
    - ``lam``: λ, weight of the variance of determinacy in the sample stability (0.4).
    - ``form``: "code" (authors' code: linear determinacy, L = 1 − (mean s + var s)) or "paper".
    - ``threshold``: "otsu" (per batch) or "1/k".
    - ``pretrain_epochs``, ``maxiter``, ``batch_size``, ``lr``, ``augment``, ``kmeans_n_init``,
      ``update_interval``: training settings; None follows the active profile (``DECS_PROFILE``).
      ``augment`` (random shifts and rotations) is for images: the MLP always trains without it.
    - ``profile``: "ci", "cpu" or "paper"; None reads ``DECS_PROFILE`` (default cpu).
    - ``image_shape``: (C, H, W) of flat N×D images (for ``network`` "conv" or "auto").
    - ``device``: "cpu", "cuda", ...; None reads ``DECS_DEVICE``, else cuda if available.
    - ``random_state``: seed (None: 0).
    - ``verbose``: show progress bars.
    - ``network``: "conv", the authors' convolutional autoencoder
      (:class:`decs.models.ConvAutoencoder`; images of at least 8×8 pixels, values in [0, 1]);
      "mlp", DEC's fully-connected d–500–500–2000–10 (:class:`decs.models.MLPAutoencoder`;
      N×D feature vectors of any finite values, images flattened; no augmentation); or
      "auto" (default): conv for image-shaped input (N×C×H×W, N×H×W, or N×D with
      ``image_shape``) of at least 8×8 pixels, the MLP for everything else (N×D without
      ``image_shape``, smaller images).
    - ``balance``, ``reseed_empty``: this book's remedies for emptied clusters, *not the paper's
      method*, both off by default (:doc:`/book/dying_clusters`). ``balance`` > 0 adds that
      weight times KL(mean_i q_i ‖ uniform) of each batch to the loss; ``reseed_empty=True``
      moves each emptied centroid into the largest cluster at every evaluation. They set
      ``Config.balance`` and ``Config.reseed_empty``.

    Attributes (after ``fit``): ``labels_``, ``cluster_centers_`` (k×d numpy),
    ``clusters_used_`` (how many clusters hold at least one sample), ``history_`` (one entry per
    evaluation, with its ``cluster_sizes``), ``n_iter_``, ``network_`` ("conv" or "mlp"),
    ``encoder_``, ``autoencoder_``, ``config_``, ``input_shape_``, ``n_features_in_`` (and
    ``feature_names_in_`` after a fit on a data frame).

    ``fit`` warns (:class:`UserWarning`) when it ends with clusters emptied, or holding under
    1 % of the samples after the k-means start gave them at least 5× as many: chapter
    :doc:`/book/dying_clusters` shows why DECS empties clusters and what the remedies do.
    """

    _method = "decs"
    _parameter_constraints: dict = {
        **_COMMON, **_TRAINING,
        "alpha": [Interval(Real, 0, None, closed="neither")],
        "lam": [Interval(Real, 0, None, closed="left")],
        "form": [StrOptions(set(FORMS))],
        "threshold": [StrOptions(set(THRESHOLDS))],
        "balance": [Interval(Real, 0, None, closed="left")],
        "reseed_empty": ["boolean"],
    }

    def __init__(self, n_clusters: int = 10, alpha: float = 0.5, lam: float = 0.4, form: str = "code",
                 threshold: str = "otsu", pretrain_epochs: int | None = None, maxiter: int | None = None,
                 batch_size: int | None = None, lr: float | None = None, augment: bool | None = None,
                 kmeans_n_init: int | None = None, update_interval: int | None = None,
                 profile: str | None = None, image_shape=None, device=None, random_state: int | None = None,
                 verbose: bool = False, network: str = "auto", balance: float = 0.0,
                 reseed_empty: bool = False):
        self.n_clusters = n_clusters
        self.alpha = alpha
        self.lam = lam
        self.form = form
        self.threshold = threshold
        self.pretrain_epochs = pretrain_epochs
        self.maxiter = maxiter
        self.batch_size = batch_size
        self.lr = lr
        self.augment = augment
        self.kmeans_n_init = kmeans_n_init
        self.update_interval = update_interval
        self.profile = profile
        self.image_shape = image_shape
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.network = network
        self.balance = balance
        self.reseed_empty = reseed_empty

    def _method_overrides(self) -> dict:
        return {"alpha": self.alpha, "lam": self.lam, "form": self.form, "threshold": self.threshold,
                "balance": self.balance, "reseed_empty": self.reseed_empty}


class DEC(_DeepClustering):
    """Deep embedded clustering with pseudo targets :cite:p:`xie2016dec`, on the same
    convolutional autoencoder as DECS (as in DEC-DA :cite:p:`guo2018decda`), or on DEC's own
    fully-connected one for data that are not images (:doc:`/book/04_dec_pseudo_targets`).

    Parameters as :class:`DECS` (``network`` included; not ``lam``, ``form``, ``threshold``,
    ``balance``, ``reseed_empty``), with ``alpha`` = 1 by default, and ``tol`` (stop when fewer
    than this fraction of labels change between target updates) and ``target_interval`` (T:
    iterations between recomputing the target distribution). Attributes, and the warning about
    emptied clusters, as :class:`DECS` (:doc:`/book/dying_clusters`).
    """

    _method = "dec"
    _parameter_constraints: dict = {
        **_COMMON, **_TRAINING,
        "alpha": [Interval(Real, 0, None, closed="neither")],
        "tol": [Interval(Real, 0, 1, closed="both")],
        "target_interval": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, n_clusters: int = 10, alpha: float = 1.0, tol: float = 0.001,
                 target_interval: int = 140, pretrain_epochs: int | None = None, maxiter: int | None = None,
                 batch_size: int | None = None, lr: float | None = None, augment: bool | None = None,
                 kmeans_n_init: int | None = None, update_interval: int | None = None,
                 profile: str | None = None, image_shape=None, device=None, random_state: int | None = None,
                 verbose: bool = False, network: str = "auto"):
        self.n_clusters = n_clusters
        self.alpha = alpha
        self.tol = tol
        self.target_interval = target_interval
        self.pretrain_epochs = pretrain_epochs
        self.maxiter = maxiter
        self.batch_size = batch_size
        self.lr = lr
        self.augment = augment
        self.kmeans_n_init = kmeans_n_init
        self.update_interval = update_interval
        self.profile = profile
        self.image_shape = image_shape
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.network = network

    def _method_overrides(self) -> dict:
        return {"dec_alpha": self.alpha, "tol": self.tol, "dec_update_interval": self.target_interval}


class HaDis(_DeepClustering):
    """HaDis, contrastive deep clustering without pretraining (Zhang & Huang, arXiv 2401.14038), in this
    book's adaptation to grey digits (:mod:`decs.hadis`, :doc:`/book/hadis`): a student and an
    EMA teacher trained on two augmented views of each sample with the DSA, HSD and PCL losses;
    the labels are k-means on the teacher's L2-normalised features.

    Parameters (stored unchanged by ``__init__``):

    - ``n_clusters``: number of clusters k (≥ 1, ≤ number of samples).
    - ``hsd``: use hardness-aware self-distillation (False: ProPos, HaDis without HSD).
    - ``epochs``, ``warmup_epochs``, ``batch_size``, ``lr``: training settings; None follows the
      active profile (``DECS_PROFILE``; :func:`decs.hadis.get_hadis_config`).
    - ``profile``: "ci", "cpu" or "paper"; None reads ``DECS_PROFILE`` (default cpu).
    - ``image_shape``: (C, H, W) of flat N×D images (for ``network`` "conv" or "auto").
    - ``device``: "cpu", "cuda", ...; None reads ``DECS_DEVICE``, else cuda if available.
    - ``random_state``: seed (None: 0).
    - ``verbose``: show a progress bar.
    - ``network``: "conv" (:class:`decs.hadis.DigitEncoder`, images of at least 8×8 pixels with
      values in [0, 1], crop / rotation / stroke augmentations), "mlp"
      (:class:`decs.hadis.FeatureEncoder`, N×D feature vectors of any finite values, masking and
      noise augmentations), or "auto" (default: conv for such images, the MLP for everything else).

    Attributes (after ``fit``): ``labels_``, ``cluster_centers_`` (k×d numpy: the k-means centres
    in the teacher's feature space), ``clusters_used_``, ``history_`` (one entry per epoch, with
    its ``cluster_sizes``), ``n_iter_`` (epochs), ``network_``, ``net_`` (:class:`decs.hadis.HaDisNet`),
    ``config_``, ``input_shape_``, ``n_features_in_`` (and ``feature_names_in_`` after a fit on a
    data frame). ``transform`` gives the teacher's normalised features, ``predict`` the nearest
    centre, ``predict_proba`` the Student-t soft assignment (α = 1) to the centres.

    ``fit`` warns (:class:`UserWarning`) when it ends with clusters emptied, or holding under 1 %
    of the samples while the first k-means (on the untrained teacher) gave them at least 5× as many.
    """

    _method = "hadis"
    _parameter_constraints: dict = {
        **_COMMON,
        "hsd": ["boolean"],
        "epochs": _LENGTH,
        "warmup_epochs": [Interval(Integral, 0, None, closed="left"), None],
        "batch_size": [Interval(Integral, 2, None, closed="left"), None],  # batch norm
    }

    def __init__(self, n_clusters: int = 10, hsd: bool = True, epochs: int | None = None,
                 warmup_epochs: int | None = None, batch_size: int | None = None, lr: float | None = None,
                 profile: str | None = None, image_shape=None, device=None, random_state: int | None = None,
                 verbose: bool = False, network: str = "auto"):
        self.n_clusters = n_clusters
        self.hsd = hsd
        self.epochs = epochs
        self.warmup_epochs = warmup_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.profile = profile
        self.image_shape = image_shape
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.network = network

    def _config(self, network: str):
        from .hadis import get_hadis_config

        overrides = {k: v for k, v in {"epochs": self.epochs, "warmup_epochs": self.warmup_epochs,
                                       "batch_size": self.batch_size, "lr": self.lr}.items() if v is not None}
        return get_hadis_config(self.profile, subset=None, hsd=bool(self.hsd), **overrides)

    def fit(self, X, y=None):
        """Train HaDis on ``X`` (images N×C×H×W, N×H×W, or N×D with ``image_shape``, values in
        [0, 1]; or feature vectors N×D) and cluster the teacher's features. ``y`` is ignored.
        Warns when the fit emptied clusters. Returns ``self``."""
        from .hadis import fit_hadis

        self._validate_params()  # the parameters' types and ranges, before any work
        x, network = self._check_input(X, reset=True)
        self._check_n_clusters(len(x))
        cfg = self._config(network)
        seed = 0 if self.random_state is None else int(self.random_state)
        device = get_device(self.device)
        k = int(self.n_clusters)
        res = fit_hadis(x.to(device), k, cfg, seed, progress=bool(self.verbose))
        self.network_ = network
        self.config_ = cfg
        self.net_ = res.net
        self.cluster_centers_ = res.centers
        self.centroids_ = torch.as_tensor(res.centers, device=device)
        self.labels_ = res.labels
        self.history_ = res.history
        self.n_iter_ = res.epochs
        self.input_shape_ = tuple(x.shape[1:])
        if network == "conv":  # check_tabular records them for the MLP
            self.n_features_in_ = math.prod(self.input_shape_)
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        sizes = np.bincount(self.labels_, minlength=k)
        self.clusters_used_ = int(np.count_nonzero(sizes))
        self._warn_if_degenerate(sizes, np.asarray(res.history[0]["cluster_sizes"]))
        return self

    _start_name = "the first k-means"

    def _degenerate_advice(self) -> str:
        return ("The final labels are k-means on the teacher's features: a longer training (epochs) or a "
                "larger batch usually separates them better; see the book's chapter book/hadis.")

    def _features(self, X) -> torch.Tensor:
        x = self._check_fitted(X)
        return self.net_.features(x, self.config_.eval_batch_size)

    def transform(self, X) -> np.ndarray:
        """The teacher's L2-normalised features of ``X`` (N×d)."""
        return self._features(X).cpu().numpy()

    def predict_proba(self, X) -> np.ndarray:
        """Student-t soft assignments (α = 1) of ``X``'s features to the k-means centres (N×k)."""
        return soft_assign(self._features(X), self.centroids_.to(torch.float32), 1.0).cpu().numpy()

    def predict(self, X) -> np.ndarray:
        """The nearest k-means centre of each sample's teacher features (as ``KMeans.predict``)."""
        f = self._features(X)
        return torch.cdist(f, self.centroids_.to(f.dtype)).argmin(dim=1).cpu().numpy()
