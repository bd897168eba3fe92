"""The book's figures, in one style (set once, here).

Every chapter calls :func:`use_style` through :func:`decs.notebook.setup` and draws with the
functions below, so axes, fonts and colours agree across the book.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch

PALETTE = "tab10"


def use_style() -> None:
    """The book's plotting style: seaborn's whitegrid, a readable size, no top/right spines."""
    sns.set_theme(style="whitegrid", context="notebook", palette=PALETTE)
    plt.rcParams.update({"figure.figsize": (6.4, 4.0), "figure.dpi": 100, "axes.spines.top": False,
                         "axes.spines.right": False, "savefig.bbox": "tight", "image.cmap": "viridis"})


def scale_label(profile: str, n: int, iterations: int | None = None, pretrain_epochs: int | None = None,
                source: str | None = None) -> str:
    """The scale a figure shows, for its title: ``"cpu profile · n = 9,298 · 200 epochs + 3,000 it."``,
    with ``source`` (e.g. ``"committed run"`` or ``"trained here"``) when given. Every figure of
    a result names its scale this way (:doc:`/book/08_training_usps`)."""
    parts = [f"{profile} profile", f"n = {n:,}"]
    if pretrain_epochs is not None and iterations is not None:
        parts.append(f"{pretrain_epochs:,} epochs + {iterations:,} it.")
    elif iterations is not None:
        parts.append(f"{iterations:,} it.")
    elif pretrain_epochs is not None:
        parts.append(f"{pretrain_epochs:,} epochs")
    if source:
        parts.append(source)
    return " · ".join(parts)


def _np(a):
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def image_grid(x, y=None, per_class: int = 8, max_classes: int = 10, title: str | None = None, ax=None):
    """A grid of images, one row per class (the first ``per_class`` images of each class).

    x: N×C×H×W in [0, 1]; y: labels (optional: without them, the first images in rows of 8).
    """
    x, y = _np(x), None if y is None else _np(y)
    if y is None:
        rows = [np.arange(min(len(x), per_class * max_classes))[i:i + per_class]
                for i in range(0, min(len(x), per_class * max_classes), per_class)]
    else:
        rows = [np.flatnonzero(y == c)[:per_class] for c in np.unique(y)[:max_classes]]
    c, h, w = x.shape[1:]
    canvas = np.ones((len(rows) * (h + 1), per_class * (w + 1), c))
    for r, idx in enumerate(rows):
        for j, i in enumerate(idx):
            canvas[r * (h + 1):r * (h + 1) + h, j * (w + 1):j * (w + 1) + w] = x[i].transpose(1, 2, 0)
    if ax is None:
        _, ax = plt.subplots(figsize=(per_class * 0.6, len(rows) * 0.6))
    ax.imshow(canvas.squeeze(-1) if c == 1 else canvas, cmap="gray_r" if c == 1 else None, vmin=0, vmax=1)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def training_curves(history: list[dict], keys=("acc", "nmi"), title: str | None = None, ax=None):
    """Metrics of a run record's history against the iteration."""
    if ax is None:
        _, ax = plt.subplots()
    its = [h["iteration"] for h in history]
    for k in keys:
        ax.plot(its, [h.get(k) for h in history], label=k.upper() if len(k) <= 3 else k)
    ax.set_xlabel("iteration")
    ax.set_ylabel("score")
    ax.legend()
    if title:
        ax.set_title(title)
    return ax


def class_colours(labels, n_classes: int | None = None) -> np.ndarray:
    """One colour per class, the same wherever a class appears: ``tab10`` for up to ten classes
    (class c gets the c-th colour), ``nipy_spectral`` spread over ``n_classes`` for more.
    labels: integers 0, ..., n_classes - 1; returns an N×4 RGBA array."""
    labels = _np(labels).astype(int)
    n = int(labels.max()) + 1 if n_classes is None else int(n_classes)
    if n <= 10:
        return plt.get_cmap(PALETTE)(labels)
    return plt.get_cmap("nipy_spectral")(labels / max(n - 1, 1))


def class_key(fig, labels, title: str = "true digit", names=None, **legend_kw):
    """The key to the class colours of :func:`class_colours` (and so of :func:`embedding_2d`):
    one marker per class in a row under the figure, titled ``title``. A figure whose colours
    encode classes needs it, or the reader cannot tell which colour is which digit
    (``tests/test_book.py`` checks the notebooks call it). ``names``: the class names, default
    the class numbers."""
    classes = np.arange(int(_np(labels).max()) + 1)
    colours = class_colours(classes)
    names = [str(c) for c in classes] if names is None else list(names)
    handles = [plt.Line2D([], [], ls="", marker="o", markersize=7, color=colours[c], label=names[c])
               for c in classes]
    kw = {"loc": "upper center", "bbox_to_anchor": (0.5, 0.0), "ncol": min(len(classes), 10),
          "title": title, "frameon": False, "handletextpad": 0.1, "columnspacing": 1.0}
    kw.update(legend_kw)
    return fig.legend(handles=handles, **kw)


def embedding_2d(z, labels, centroids=None, method: str = "tsne", seed: int = 0, max_points: int = 3000,
                 title: str | None = None, ax=None):
    """A 2-D picture of embeddings z coloured by ``labels`` (t-SNE, or PCA with method="pca"),
    centroids marked with black crosses (embedded together with the points). The colours are
    :func:`class_colours`: name them with :func:`class_key` on the figure."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    z, labels = _np(z), _np(labels)
    rng = np.random.default_rng(seed)
    keep = rng.permutation(len(z))[:max_points] if len(z) > max_points else np.arange(len(z))
    pts = z[keep]
    k = 0 if centroids is None else len(centroids)
    if k:
        pts = np.concatenate([pts, _np(centroids)])
    if method == "tsne":
        xy = TSNE(2, init="pca", random_state=seed, perplexity=min(30, max(5, (len(pts) - 1) // 4))).fit_transform(pts)
    else:
        xy = PCA(2, random_state=seed).fit_transform(pts)
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 5))
    pts_xy = xy[:len(keep)]
    ax.scatter(pts_xy[:, 0], pts_xy[:, 1], c=class_colours(labels[keep], labels.max() + 1), s=4, alpha=0.7,
               linewidths=0)
    if k:
        ax.scatter(xy[len(keep):, 0], xy[len(keep):, 1], marker="x", c="black", s=80, linewidths=2, label="centroids")
        ax.legend(loc="best")
    ax.set_xticks([]), ax.set_yticks([])
    ax.set_xlabel(f"{method.upper()} 1"), ax.set_ylabel(f"{method.upper()} 2")
    if title:
        ax.set_title(title)
    return ax


def heatmap(values, row_labels, col_labels, row_name: str, col_name: str, title: str | None = None,
            fmt: str = ".3f", ax=None):
    """A grid of numbers (e.g. ACC over α × λ) with each cell annotated."""
    if ax is None:
        _, ax = plt.subplots(figsize=(0.9 * len(col_labels) + 2, 0.6 * len(row_labels) + 1.5))
    sns.heatmap(_np(values), annot=True, fmt=fmt, xticklabels=col_labels, yticklabels=row_labels,
                cmap="viridis", ax=ax, cbar_kws={"shrink": 0.8})
    ax.set_xlabel(col_name), ax.set_ylabel(row_name)
    if title:
        ax.set_title(title)
    return ax
