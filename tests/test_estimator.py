"""The scikit-learn estimators: API, input validation, the choice of network, and the warning
about emptied clusters."""
import warnings

import numpy as np
import pytest
import torch
from sklearn.utils import get_tags
from sklearn.utils.estimator_checks import check_estimator

import decs.estimator as estimator_module
from decs import DEC, DECS, data
from decs.estimator import HaDis, check_images, check_tabular, degenerate_clusters
from decs.models import ConvAutoencoder, MLPAutoencoder

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = dict(pretrain_epochs=3, maxiter=20, update_interval=5, kmeans_n_init=2, batch_size=32, profile="ci")
needs_usps = pytest.mark.skipif(not data.is_available("usps"),
                                reason=f"usps files not found under {data.data_root()}: set DECS_DATA")


def _no_collapse_warning(record) -> bool:
    return not any("clusters empty" in str(w.message) or "under 1 %" in str(w.message) for w in record)


# ------------------------------------------------------------------ scikit-learn's own checks
# The checks of sklearn.utils.estimator_checks that cannot apply to DECS and DEC, each with its
# reason. None: every check runs and passes, the input-validation checks included. (scikit-learn
# itself skips check_array_api_input unless SCIPY_ARRAY_API=1 is set; that is not an exclusion.)
EXPECTED_FAILED_CHECKS: dict[str, str] = {}

# The shortest training that still exercises every stage: one pretraining epoch, k-means with one
# restart, four clustering iterations with evaluations at 0, 2 and 4.
TINY = dict(pretrain_epochs=1, maxiter=4, update_interval=2, kmeans_n_init=1, batch_size=16, profile="ci")


# HaDis's shortest training: one epoch (no warm-up), batches of 16.
TINY_HADIS = dict(epochs=1, warmup_epochs=0, batch_size=16, profile="ci")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::sklearn.exceptions.SkipTestWarning")
@pytest.mark.parametrize("cls", [DECS, DEC, HaDis])
def test_check_estimator(cls):
    results = check_estimator(cls(**(TINY_HADIS if cls is HaDis else TINY)),
                              expected_failed_checks=EXPECTED_FAILED_CHECKS)
    passed = {r["check_name"] for r in results if r["status"] == "passed"}
    assert {"check_clustering", "check_estimators_nan_inf", "check_complex_data", "check_fit1d",
            "check_estimators_empty_data_messages", "check_n_features_in_after_fitting", "check_dtype_object",
            "check_estimator_sparse_matrix", "check_fit_idempotent", "check_transformer_general"} <= passed
    assert {r["check_name"] for r in results if r["status"] not in ("passed", "skipped")} == set()


@pytest.mark.parametrize("cls", [DECS, DEC])
def test_tags_and_html_repr(cls):
    tags = get_tags(cls())
    assert tags.estimator_type == "clusterer" and tags.transformer_tags.preserves_dtype == ["float32"]
    assert not tags.input_tags.allow_nan and not tags.input_tags.sparse
    html = cls(n_clusters=4)._repr_html_()
    assert cls.__name__ in html and "n_clusters" in html


# --------------------------------------------------------------------------------- the API
@pytest.mark.parametrize("cls", [DECS, DEC])
def test_fit_predict_transform(blobs, cls):
    x, y = blobs
    est = cls(n_clusters=3, random_state=0, **FAST)
    assert est.fit(x) is est
    assert est.network_ == "conv" and isinstance(est.autoencoder_, ConvAutoencoder)
    assert est.labels_.shape == (len(x),)
    assert est.cluster_centers_.shape == (3, 10)
    assert est.clusters_used_ == len(np.unique(est.labels_))
    assert est.n_features_in_ == 64
    assert np.array_equal(est.predict(x), est.labels_)
    assert est.transform(x).shape == (len(x), 10)
    proba = est.predict_proba(x)
    assert np.allclose(proba.sum(1), 1, atol=1e-5)
    assert np.array_equal(cls(n_clusters=3, random_state=0, **FAST).fit_predict(x), est.labels_)


def test_input_layouts_agree(blobs):
    x, _ = blobs
    base = DECS(n_clusters=3, random_state=1, **FAST).fit(x).labels_
    flat = DECS(n_clusters=3, random_state=1, image_shape=(1, 8, 8), **FAST).fit(x.reshape(len(x), -1)).labels_
    # flat without image_shape is an image only when asked for: a square one (64 = 8×8)
    square = DECS(n_clusters=3, random_state=1, network="conv", **FAST).fit(x.reshape(len(x), -1)).labels_
    no_channel = DECS(n_clusters=3, random_state=1, **FAST).fit(x[:, 0]).labels_
    tensor = DECS(n_clusters=3, random_state=1, **FAST).fit(torch.as_tensor(x)).labels_
    for other in (flat, square, no_channel, tensor):
        assert np.array_equal(base, other)


def test_params_stored_unchanged():
    est = DECS(n_clusters=4, lam=0.2, maxiter=7, balance=0.5, reseed_empty=True)
    params = est.get_params()
    assert params["lam"] == 0.2 and est.maxiter == 7 and est.pretrain_epochs is None
    assert params["network"] == "auto" and params["balance"] == 0.5 and params["reseed_empty"] is True
    assert "network" in DEC().get_params() and "balance" not in DEC().get_params()
    assert not hasattr(est, "labels_")
    est.set_params(lam=0.3)
    assert est.lam == 0.3
    with pytest.raises(ValueError, match="Invalid parameter 'beta'"):
        est.set_params(beta=1)
    assert repr(est).startswith("DECS(") and "n_clusters=4" in repr(est)


def test_remedies_reach_the_config(blobs):
    est = DECS(n_clusters=3, random_state=0, balance=0.25, reseed_empty=True, **FAST).fit(blobs[0])
    assert est.config_.balance == 0.25 and est.config_.reseed_empty is True
    default = DECS(n_clusters=3, random_state=0, **FAST).fit(blobs[0])
    assert default.config_.balance == 0.0 and default.config_.reseed_empty is False


def test_predict_before_fit_and_wrong_shape(blobs):
    x, _ = blobs
    with pytest.raises(ValueError, match="not fitted"):
        DECS(n_clusters=3).predict(x)
    est = DECS(n_clusters=3, random_state=0, **FAST).fit(x)
    with pytest.raises(ValueError, match="fitted on"):
        est.predict(np.random.rand(4, 1, 16, 16).astype(np.float32))


# ---------------------------------------------------------------------- input validation
@pytest.mark.parametrize("bad, match", [
    (np.full((10, 1, 8, 8), np.nan, dtype=np.float32), "NaN or inf"),
    (np.full((10, 1, 8, 8), np.inf, dtype=np.float32), "NaN or inf"),
    (np.zeros((0, 1, 8, 8), dtype=np.float32), "empty"),
    (np.zeros((10, 2, 1, 8, 8), dtype=np.float32), "dimensions"),
    (np.zeros(10, dtype=np.float32), "2D array"),
    (np.zeros((10, 1, 8, 8), dtype=np.uint8), "integers"),
    (np.full((10, 1, 8, 8), 2.0, dtype=np.float32), r"\[0, 1\]"),
    (np.full((10, 1, 8, 8), -0.5, dtype=np.float32), r"\[0, 1\]"),
    (np.full((10, 3), np.nan, dtype=np.float32), "NaN"),
    (np.full((10, 3), np.inf), "infinity"),
    (np.zeros((0, 3)), "0 sample"),
    (np.full((10, 3), 1e39), "float32's range"),
])
def test_bad_input_raises_clear_error(bad, match):
    with pytest.raises(ValueError, match=match):
        DECS(n_clusters=2, **FAST).fit(bad)


def test_bad_image_shape_and_small_images():
    with pytest.raises(ValueError, match="does not hold"):
        check_images(np.zeros((4, 50), dtype=np.float32), image_shape=(1, 7, 7))
    with pytest.raises(ValueError, match="image_shape"):  # flat, not square, and asked to be an image
        DECS(n_clusters=2, network="conv", **FAST).fit(np.zeros((10, 50), dtype=np.float32))
    with pytest.raises(ValueError, match="at least 8"):
        DECS(n_clusters=2, network="conv", **FAST).fit(np.zeros((10, 1, 6, 6), dtype=np.float32))


@pytest.mark.parametrize("k, match", [(0, r"range \[1, inf\)"), (2.5, "must be an int"), (500, "larger than")])
def test_bad_n_clusters(blobs, k, match):
    with pytest.raises(ValueError, match=match):
        DECS(n_clusters=k, **FAST).fit(blobs[0])


def test_one_sample_is_refused():
    with pytest.raises(ValueError, match="n_samples=1"):
        DECS(n_clusters=1, **FAST).fit(np.zeros((1, 1, 8, 8), dtype=np.float32))


def test_nhwc_is_transposed():
    x = np.random.default_rng(0).uniform(size=(5, 8, 8, 3)).astype(np.float32)
    assert check_images(x).shape == (5, 3, 8, 8)
    assert torch.equal(check_images(x)[:, 1], torch.as_tensor(x[..., 1]))


def test_check_tabular_accepts_any_finite_values():
    x = np.array([[-1e6, 3], [2.5, 0], [7, -8]])
    out = check_tabular(x)
    assert out.dtype == torch.float32 and out.shape == (3, 2) and out[0, 0] == -1e6
    assert torch.equal(check_tabular([[1, 2], [3, 4]]), torch.tensor([[1.0, 2], [3, 4]]))  # integers are fine
    with pytest.raises(ValueError, match="Complex"):
        check_tabular(np.ones((3, 2), dtype=complex))


# ------------------------------------------------------------------------- the network
@pytest.mark.filterwarnings("ignore:DECS ended with:UserWarning")  # uniform noise: clusters merge
@pytest.mark.parametrize("shape", [(40, 5), (40, 64), (40, 1, 2, 2), (40, 2, 2), (40, 7, 7), (40, 3, 7, 30)])
def test_auto_gives_tabular_data_and_small_images_to_the_mlp(shape):
    x = np.random.default_rng(0).uniform(size=shape).astype(np.float32)
    est = DECS(n_clusters=2, random_state=0, **FAST).fit(x)
    assert est.network_ == "mlp" and isinstance(est.autoencoder_, MLPAutoencoder)
    d = int(np.prod(shape[1:]))
    assert est.input_shape_ == (d,) and est.n_features_in_ == d
    assert not est.config_.augment and not est.config_.augment_clustering  # no shifts of feature vectors
    assert np.array_equal(est.predict(x), est.labels_)


@pytest.mark.filterwarnings("ignore:DECS ended with:UserWarning")  # uniform noise: clusters merge
@pytest.mark.parametrize("shape, image_shape", [((40, 1, 8, 8), None), ((40, 8, 9), None),
                                                 ((40, 3 * 8 * 12), (3, 8, 12))])
def test_auto_gives_images_of_at_least_8x8_to_the_conv_network(shape, image_shape):
    x = np.random.default_rng(0).uniform(size=shape).astype(np.float32)
    est = DECS(n_clusters=2, random_state=0, image_shape=image_shape, **FAST).fit(x)
    assert est.network_ == "conv" and isinstance(est.autoencoder_, ConvAutoencoder)
    assert est.config_.augment_clustering  # the profile's setting, images are augmented


@pytest.mark.parametrize("cls", [DECS, DEC])
def test_mlp_on_tabular_data_of_any_scale(blobs, cls):
    x, y = blobs
    tab = x.reshape(len(x), -1).astype(np.float64) * 500 - 100  # outside [0, 1], float64
    est = cls(n_clusters=3, random_state=0, **FAST).fit(tab)
    assert est.network_ == "mlp" and est.autoencoder_.input_shape == (64,)
    assert np.array_equal(est.predict(tab), est.labels_)
    assert est.transform(tab).shape == (len(x), 10) and est.transform(tab).dtype == np.float32
    with pytest.raises(ValueError, match="X has 5 features, but"):
        est.predict(tab[:, :5])


def test_explicit_network_choice(blobs):
    x, _ = blobs
    mlp = DECS(n_clusters=3, random_state=0, network="mlp", **FAST).fit(x)  # images, flattened
    assert mlp.network_ == "mlp" and mlp.input_shape_ == (64,)
    assert np.array_equal(mlp.predict(x), mlp.labels_)
    with pytest.raises(ValueError, match="at least 8"):
        DECS(n_clusters=2, network="conv", **FAST).fit(x[:, :, :2, :2])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):  # the conv network is for images
        DECS(n_clusters=2, network="conv", image_shape=(1, 8, 8), **FAST).fit(x.reshape(len(x), -1) - 1)
    with pytest.raises(ValueError, match="'network' parameter of DECS must be a str among"):
        DECS(n_clusters=2, network="cnn", **FAST).fit(x)


def test_augmentation_is_refused_for_the_mlp():
    x = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    with pytest.raises(ValueError, match="augment=True"):
        DECS(n_clusters=2, augment=True, **FAST).fit(x)
    assert not DECS(n_clusters=2, augment=False, **FAST).fit(x).config_.augment


def test_data_frame_feature_names(blobs):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(blobs[0].reshape(120, -1), columns=[f"p{i}" for i in range(64)])
    est = DECS(n_clusters=3, random_state=0, **FAST).fit(df)
    assert list(est.feature_names_in_) == list(df.columns)
    assert list(est.get_feature_names_out()) == [f"decs{i}" for i in range(10)]


# --------------------------------------------------------------------- emptied clusters
def test_degenerate_clusters():
    start = np.array([300, 300, 200, 200])
    empty, small = degenerate_clusters([600, 0, 398, 2], start)
    assert list(empty) == [1] and list(small) == [3]
    # under 1 % but the k-means start gave it as few: not shrunk by the fit
    assert [list(v) for v in degenerate_clusters([500, 496, 2, 2], [500, 492, 4, 4])] == [[], []]


def _forced(monkeypatch, labels_from):
    """Make the estimator's clustering end with the labels ``labels_from(labels)``."""
    real = estimator_module.fit_clusters

    def fit_clusters(*args, **kwargs):
        fitted = real(*args, **kwargs)
        fitted.result.labels = labels_from(fitted.result.labels)
        return fitted

    monkeypatch.setattr(estimator_module, "fit_clusters", fit_clusters)


@pytest.mark.parametrize("cls", [DECS, DEC])
def test_warning_when_clusters_are_emptied(blobs, monkeypatch, cls):
    _forced(monkeypatch, np.zeros_like)  # every sample in cluster 0
    with pytest.warns(UserWarning, match="2 of its 3 clusters empty") as record:
        est = cls(n_clusters=3, random_state=0, **FAST).fit(blobs[0])
    message = next(str(w.message) for w in record if "clusters empty" in str(w.message))
    assert "book/dying_clusters" in message and "reseed_empty=True" in message and "balance>0" in message
    assert est.clusters_used_ == 1 and np.array_equal(est.labels_, np.zeros(120))


def test_warning_when_a_cluster_nearly_empties(blobs, monkeypatch):
    def one_left(labels):  # cluster 2 keeps one of its samples: under 1 % of 120
        out = np.where(labels == 2, 0, labels)
        out[0] = 2
        return out

    _forced(monkeypatch, one_left)
    with pytest.warns(UserWarning, match="1 holding under 1 %"):
        est = DECS(n_clusters=3, random_state=0, **FAST).fit(blobs[0])
    assert est.clusters_used_ == 3


def test_no_warning_when_every_cluster_keeps_its_samples(blobs):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        est = DECS(n_clusters=3, random_state=0, **FAST).fit(blobs[0])
    assert est.clusters_used_ == 3 and _no_collapse_warning(record)


@pytest.fixture(scope="module")
def usps_collapse():
    """DECS on 1,000 USPS digits at the ci profile's lengths (8 pretraining epochs, 150
    iterations): it ends with one cluster (chapter 08 shows the same on the full data)."""
    x, _ = data.load("usps", subset=1000, seed=0)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        est = DECS(n_clusters=10, profile="ci", random_state=0).fit(x)
    return x, est, [str(w.message) for w in record if issubclass(w.category, UserWarning)]


@needs_usps
@pytest.mark.slow
def test_usps_collapse_warns(usps_collapse):
    x, est, messages = usps_collapse
    sizes = np.bincount(est.labels_, minlength=10)
    assert (sizes == 0).sum() >= 5 and est.clusters_used_ == np.count_nonzero(sizes)
    expected = f"{(sizes == 0).sum()} of its 10 clusters empty"
    assert any(expected in m and "book/dying_clusters" in m and "reseed_empty=True" in m for m in messages)


@needs_usps
@pytest.mark.slow
def test_usps_reseeding_keeps_more_clusters(usps_collapse):
    x, collapsed, _ = usps_collapse
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        est = DECS(n_clusters=10, profile="ci", random_state=0, reseed_empty=True).fit(x)
    assert any("reseeded" in h for h in est.history_)
    assert not any("reseeded" in h for h in collapsed.history_)
    assert est.clusters_used_ > collapsed.clusters_used_
