"""decs — Deep Embedding Clustering driven by Sample Stability, as a small library.

The helper package of the decs-book tutorial (Cheng, Li, Wang & Qian, IJCAI 2024). Each
mathematical piece lives here once; the book's chapters derive it and import it.

    >>> from decs import DECS
    >>> model = DECS(n_clusters=10).fit(x)          # x: N×C×H×W images in [0, 1]
    >>> model.labels_
"""
from .config import Config, get_config
from .stability import (determinacy, gradient_bound, instability, instability_loss, otsu_threshold,
                        sample_stability, soft_assign)

__version__ = "0.2.0"

__all__ = ["Config", "get_config", "soft_assign", "otsu_threshold", "determinacy", "sample_stability",
           "instability", "instability_loss", "gradient_bound", "DECS", "DEC", "HaDis",
           "__version__"]


def __getattr__(name):
    # The estimators pull in scikit-learn and the training code: import them on first use.
    if name in ("DECS", "DEC", "HaDis"):
        from . import estimator

        return getattr(estimator, name)
    raise AttributeError(f"module 'decs' has no attribute {name!r}")
