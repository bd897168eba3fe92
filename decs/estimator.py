"""scikit-learn style estimators: ``DECS`` and ``DEC``.

    >>> from decs import DECS
    >>> model = DECS(n_clusters=10, random_state=0).fit(x)   # x: N×C×H×W, N×H×W, or N×D with image_shape
    >>> model.labels_, model.cluster_centers_
    >>> model.predict(x_new), model.transform(x_new)          # labels, embeddings

Parameters are stored unchanged in ``__init__``; ``fit`` does the work; learned state ends in
``_``. Training-length parameters left at ``None`` follow the active profile
(``DECS_PROFILE``; see :mod:`decs.config`). Used in :doc:`/book/08_training_usps`.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .config import get_config
from .stability import soft_assign
from .train import embed, fit_clusters, get_device


def check_images(X, image_shape=None) -> torch.Tensor:
    """Validate image data and return it as a float32 tensor N×C×H×W.

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
    return torch.as_tensor(np.ascontiguousarray(arr), dtype=torch.float32)


class _DeepClustering:
    """Shared machinery of :class:`DECS` and :class:`DEC` (they differ in the clustering loss)."""

    _method = "decs"

    def _config(self):
        overrides = {k: v for k, v in {
            "pretrain_epochs": self.pretrain_epochs, "maxiter": self.maxiter,
            "batch_size": self.batch_size, "lr": self.lr, "augment": self.augment,
            "kmeans_n_init": self.kmeans_n_init, "update_interval": self.update_interval,
        }.items() if v is not None}
        overrides.update(self._method_overrides())
        return get_config(self.profile, subset=None, **overrides)

    def _method_overrides(self) -> dict:
        return {}

    def _check_n_clusters(self, n: int) -> None:
        k = self.n_clusters
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 2:
            raise ValueError(f"n_clusters must be an integer ≥ 2, got {k!r}.")
        if k > n:
            raise ValueError(f"n_clusters={k} is larger than the number of samples ({n}); "
                             "use fewer clusters or more data.")

    def fit(self, X, y=None):
        """Learn the embedding and the centroids from images ``X``. ``y`` is ignored (it is only
        accepted for scikit-learn compatibility). Returns ``self``."""
        x = check_images(X, self.image_shape)
        self._check_n_clusters(len(x))
        cfg = self._config()
        seed = 0 if self.random_state is None else int(self.random_state)
        device = get_device(self.device)
        fitted = fit_clusters(x.to(device), int(self.n_clusters), cfg, self._method, seed,
                              progress=bool(self.verbose))
        self.config_ = cfg
        self.autoencoder_ = fitted.model
        self.encoder_ = fitted.model.encoder
        self.centroids_ = fitted.result.centroids
        self.cluster_centers_ = self.centroids_.cpu().numpy()
        self.labels_ = fitted.result.labels
        self.history_ = fitted.result.history
        self.n_iter_ = fitted.result.iterations
        self.input_shape_ = tuple(x.shape[1:])
        return self

    def _check_fitted(self, X) -> torch.Tensor:
        if not hasattr(self, "encoder_"):
            raise ValueError(f"this {type(self).__name__} is not fitted yet; call fit(X) first.")
        x = check_images(X, self.image_shape)
        if tuple(x.shape[1:]) != self.input_shape_:
            raise ValueError(f"images of shape {tuple(x.shape[1:])} given, but the model was fitted on "
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
        return soft_assign(z, self.centroids_, self._alpha()).cpu().numpy()

    def predict(self, X) -> np.ndarray:
        """Cluster labels argmax_j q_ij of ``X``."""
        return self.predict_proba(X).argmax(axis=1)

    def fit_predict(self, X, y=None) -> np.ndarray:
        """``fit(X)`` and return ``labels_``."""
        return self.fit(X).labels_

    def get_params(self, deep: bool = True) -> dict:
        import inspect

        return {name: getattr(self, name) for name in inspect.signature(type(self).__init__).parameters
                if name != "self"}

    def set_params(self, **params):
        valid = self.get_params()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"unknown parameter {name!r} for {type(self).__name__}; valid: {sorted(valid)}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


class DECS(_DeepClustering):
    """Deep embedding clustering driven by sample stability :cite:p:`cheng2024decs`.

    Parameters (stored unchanged by ``__init__``):

    - ``n_clusters``: number of clusters k (≥ 2, ≤ number of samples).
    - ``alpha``: Student-t degrees of freedom α of the co-association probability (0.5).
    - ``lam``: λ, weight of the variance of determinacy in the sample stability (0.4).
    - ``form``: "code" (authors' code: linear determinacy, L = 1 − (mean s + var s)) or "paper".
    - ``threshold``: "otsu" (per batch) or "1/k".
    - ``pretrain_epochs``, ``maxiter``, ``batch_size``, ``lr``, ``augment``, ``kmeans_n_init``,
      ``update_interval``: training settings; None follows the active profile (``DECS_PROFILE``).
    - ``profile``: "ci", "cpu" or "paper"; None reads ``DECS_PROFILE`` (default cpu).
    - ``image_shape``: (C, H, W) for flat N×D input.
    - ``device``: "cpu", "cuda", ...; None reads ``DECS_DEVICE``, else cuda if available.
    - ``random_state``: seed (None: 0).
    - ``verbose``: show progress bars.

    Attributes (after ``fit``): ``labels_``, ``cluster_centers_`` (k×d numpy), ``history_``,
    ``n_iter_``, ``encoder_``, ``autoencoder_``, ``config_``.
    """

    _method = "decs"

    def __init__(self, n_clusters: int = 10, alpha: float = 0.5, lam: float = 0.4, form: str = "code",
                 threshold: str = "otsu", pretrain_epochs: int | None = None, maxiter: int | None = None,
                 batch_size: int | None = None, lr: float | None = None, augment: bool | None = None,
                 kmeans_n_init: int | None = None, update_interval: int | None = None,
                 profile: str | None = None, image_shape=None, device=None, random_state: int | None = None,
                 verbose: bool = False):
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

    def _method_overrides(self) -> dict:
        return {"alpha": self.alpha, "lam": self.lam, "form": self.form, "threshold": self.threshold}

    def _alpha(self) -> float:
        return self.alpha


class DEC(_DeepClustering):
    """Deep embedded clustering with pseudo targets :cite:p:`xie2016dec`, on the same
    convolutional autoencoder (as in DEC-DA :cite:p:`guo2018decda`).

    Parameters as :class:`DECS`, with ``alpha`` = 1 by default, and
    ``tol`` (stop when fewer than this fraction of labels change between target updates) and
    ``target_interval`` (T: iterations between recomputing the target distribution).
    """

    _method = "dec"

    def __init__(self, n_clusters: int = 10, alpha: float = 1.0, tol: float = 0.001,
                 target_interval: int = 140, pretrain_epochs: int | None = None, maxiter: int | None = None,
                 batch_size: int | None = None, lr: float | None = None, augment: bool | None = None,
                 kmeans_n_init: int | None = None, update_interval: int | None = None,
                 profile: str | None = None, image_shape=None, device=None, random_state: int | None = None,
                 verbose: bool = False):
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

    def _method_overrides(self) -> dict:
        return {"dec_alpha": self.alpha, "tol": self.tol, "dec_update_interval": self.target_interval}

    def _alpha(self) -> float:
        return self.alpha
