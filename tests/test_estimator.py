"""The scikit-learn style estimators and their input validation."""
import numpy as np
import pytest
import torch

from decs import DEC, DECS
from decs.estimator import check_images

FAST = dict(pretrain_epochs=3, maxiter=20, update_interval=5, kmeans_n_init=2, batch_size=32, profile="ci")


@pytest.mark.parametrize("cls", [DECS, DEC])
def test_fit_predict_transform(blobs, cls):
    x, y = blobs
    est = cls(n_clusters=3, random_state=0, **FAST)
    assert est.fit(x) is est
    assert est.labels_.shape == (len(x),)
    assert est.cluster_centers_.shape == (3, 10)
    assert np.array_equal(est.predict(x), est.labels_)
    assert est.transform(x).shape == (len(x), 10)
    proba = est.predict_proba(x)
    assert np.allclose(proba.sum(1), 1, atol=1e-5)
    assert np.array_equal(cls(n_clusters=3, random_state=0, **FAST).fit_predict(x), est.labels_)


def test_input_layouts_agree(blobs):
    x, _ = blobs
    base = DECS(n_clusters=3, random_state=1, **FAST).fit(x).labels_
    flat = DECS(n_clusters=3, random_state=1, image_shape=(1, 8, 8), **FAST).fit(x.reshape(len(x), -1)).labels_
    square = DECS(n_clusters=3, random_state=1, **FAST).fit(x.reshape(len(x), -1)).labels_  # 64 = 8×8
    no_channel = DECS(n_clusters=3, random_state=1, **FAST).fit(x[:, 0]).labels_
    tensor = DECS(n_clusters=3, random_state=1, **FAST).fit(torch.as_tensor(x)).labels_
    for other in (flat, square, no_channel, tensor):
        assert np.array_equal(base, other)


def test_params_stored_unchanged():
    est = DECS(n_clusters=4, lam=0.2, maxiter=7)
    assert est.get_params()["lam"] == 0.2 and est.maxiter == 7 and est.pretrain_epochs is None
    assert not hasattr(est, "labels_")
    est.set_params(lam=0.3)
    assert est.lam == 0.3
    with pytest.raises(ValueError, match="unknown parameter"):
        est.set_params(beta=1)
    assert "DECS(n_clusters=4" in repr(est)


def test_predict_before_fit_and_wrong_shape(blobs):
    x, _ = blobs
    with pytest.raises(ValueError, match="not fitted"):
        DECS(n_clusters=3).predict(x)
    est = DECS(n_clusters=3, random_state=0, **FAST).fit(x)
    with pytest.raises(ValueError, match="fitted on"):
        est.predict(np.random.rand(4, 1, 16, 16).astype(np.float32))


@pytest.mark.parametrize("bad, match", [
    (np.full((10, 1, 8, 8), np.nan, dtype=np.float32), "NaN or inf"),
    (np.full((10, 1, 8, 8), np.inf, dtype=np.float32), "NaN or inf"),
    (np.zeros((0, 1, 8, 8), dtype=np.float32), "empty"),
    (np.zeros((10, 2, 1, 8, 8), dtype=np.float32), "dimensions"),
    (np.zeros(10, dtype=np.float32), "dimensions"),
    (np.zeros((10, 1, 8, 8), dtype=np.uint8), "integers"),
    (np.full((10, 1, 8, 8), 2.0, dtype=np.float32), r"\[0, 1\]"),
    (np.full((10, 1, 8, 8), -0.5, dtype=np.float32), r"\[0, 1\]"),
    (np.zeros((10, 50), dtype=np.float32), "image_shape"),
])
def test_bad_input_raises_clear_error(bad, match):
    with pytest.raises(ValueError, match=match):
        DECS(n_clusters=2, **FAST).fit(bad)


def test_bad_image_shape_and_small_images():
    with pytest.raises(ValueError, match="does not hold"):
        check_images(np.zeros((4, 50), dtype=np.float32), image_shape=(1, 7, 7))
    with pytest.raises(ValueError, match="at least 8"):
        DECS(n_clusters=2, **FAST).fit(np.zeros((10, 1, 6, 6), dtype=np.float32))


@pytest.mark.parametrize("k, match", [(1, "≥ 2"), (0, "≥ 2"), (2.5, "integer"), (500, "larger than")])
def test_bad_n_clusters(blobs, k, match):
    with pytest.raises(ValueError, match=match):
        DECS(n_clusters=k, **FAST).fit(blobs[0])


def test_nhwc_is_transposed():
    x = np.random.default_rng(0).uniform(size=(5, 8, 8, 3)).astype(np.float32)
    assert check_images(x).shape == (5, 3, 8, 8)
    assert torch.equal(check_images(x)[:, 1], torch.as_tensor(x[..., 1]))
