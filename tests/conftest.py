"""Shared fixtures: small synthetic image sets (for code paths, never passed off as a dataset)."""
import os

import numpy as np
import pytest
import torch
from hypothesis import settings

# CI runs the same examples every time (HYPOTHESIS_PROFILE=ci, set by .ci/run), so a red run is
# reproducible; locally each run draws new examples and keeps searching.
settings.register_profile("ci", derandomize=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def blob_images(n_per_class: int = 40, side: int = 8, seed: int = 0):
    """Three easy classes of side×side images: a bright bar at the top, middle, or bottom,
    with noise. Synthetic test input for the estimator and training loop."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c, row in enumerate((1, side // 2, side - 2)):
        img = rng.uniform(0, 0.2, size=(n_per_class, 1, side, side))
        img[:, :, row - 1:row + 1, 1:-1] += rng.uniform(0.6, 0.8, size=(n_per_class, 1, 2, side - 2))
        xs.append(np.clip(img, 0, 1))
        ys.append(np.full(n_per_class, c))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys)


@pytest.fixture
def blobs():
    return blob_images()


@pytest.fixture
def tiny_cfg():
    from decs.config import get_config

    return get_config("ci", pretrain_epochs=2, maxiter=12, update_interval=4, kmeans_n_init=2,
                      batch_size=32, checkpoint_every=5)


@pytest.fixture
def one_thread():
    """Tiny tensors: one intra-op thread. On a shared 2-core machine two threads spend most of
    the time in barriers (a gradcheck: 0.5 s with 2 threads, 6 ms with 1). Opt in per module
    with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
