"""Tests of decs.data: the real datasets (when their files are under DECS_DATA), the error
messages, the stratified subsets and the two YTF formats (on tiny files made here)."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.server
import os
import socket
import threading
import urllib.error
import urllib.request
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pytest
import torch

from decs import data

try:  # h5py is in the [test] extra; without it only the HDF5 tests are skipped
    import h5py
except ImportError:
    h5py = None
needs_h5py = pytest.mark.skipif(h5py is None, reason="h5py is not installed")
from decs.data import DATASETS, DatasetCorruptError, DatasetNotFoundError

ROOT = data.data_root()  # $DECS_DATA when set

# Published facts each real dataset is checked against: N, C×H×W, samples per class, the
# labels of the first training and the first test sample (which fix the train-then-test order),
# and the mean pixel of the first split that every tutorial normalises with (MNIST train 0.1307,
# MNIST test 0.1325, Fashion-MNIST train 0.2860; none is commonly quoted for USPS).
PUBLISHED = {
    "mnist": dict(n=70_000, shape=(1, 28, 28), n_train=60_000, first=(5, 7), mean=0.1307,
                  counts=[6903, 7877, 6990, 7141, 6824, 6313, 6876, 7293, 6825, 6958]),
    "mnist-test": dict(n=10_000, shape=(1, 28, 28), n_train=0, first=(7, 7), mean=0.1325,
                       counts=[980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]),
    "usps": dict(n=9_298, shape=(1, 16, 16), n_train=7_291, first=(6, 9), mean=None,
                 counts=[1553, 1269, 929, 824, 852, 716, 834, 792, 708, 821]),
    "fashion-mnist": dict(n=70_000, shape=(1, 28, 28), n_train=60_000, first=(9, 9), mean=0.2860,
                          counts=[7000] * 10),
}


def _files_present(name: str, root: Path = ROOT) -> bool:
    return all((root / f.path).is_file() for f in DATASETS[name].files)


@pytest.fixture(scope="module", params=list(PUBLISHED))
def real(request):
    """(name, x, y) of each real dataset, loaded once per module; skipped when absent.

    Only missing files skip: a corrupt file makes the tests fail."""
    name = request.param
    if not _files_present(name):
        pytest.skip(f"{name} files not found under {ROOT}: set DECS_DATA")
    x, y = data.load(name)
    return name, x, y


# --------------------------------------------------------------------------------------------
# Real datasets
# --------------------------------------------------------------------------------------------


def test_real_size_shape_dtype(real):
    name, x, y = real
    facts = PUBLISHED[name]
    assert x.shape == (facts["n"], *facts["shape"])
    assert y.shape == (facts["n"],)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.is_contiguous()
    assert (x.shape[0], *x.shape[1:]) == (DATASETS[name].n_samples, *DATASETS[name].shape)


def test_real_values_span_zero_to_one(real):
    _, x, _ = real
    assert float(x.min()) == pytest.approx(0.0, abs=1e-6)
    assert float(x.max()) == pytest.approx(1.0, abs=1e-6)
    assert torch.isfinite(x).all()


def test_real_labels_and_class_counts(real):
    name, _, y = real
    k = data.n_clusters(name)
    assert int(y.min()) == 0 and int(y.max()) == k - 1
    assert torch.bincount(y, minlength=k).tolist() == PUBLISHED[name]["counts"]


def test_real_train_then_test_order(real):
    name, _, y = real
    facts = PUBLISHED[name]
    assert (int(y[0]), int(y[facts["n_train"]])) == facts["first"]


def test_real_images_are_not_transposed(real):
    """Class 1 (the digit one; Fashion-MNIST's trousers) is a vertical shape: its mean image
    spreads far more along the rows than along the columns. A transposed reader fails this."""
    _, x, y = real
    mean = x[y == 1].mean(0)[0]

    def spread(profile: torch.Tensor) -> float:
        p = profile / profile.sum()
        i = torch.arange(len(p), dtype=p.dtype)
        return float((p * (i - (p * i).sum()) ** 2).sum().sqrt())

    assert spread(mean.sum(1)) > 1.5 * spread(mean.sum(0))


def test_real_mean_pixel(real):
    name, x, _ = real
    facts = PUBLISHED[name]
    if facts["mean"] is None:
        pytest.skip(f"no published mean pixel for {name}")
    first_split = x[: facts["n_train"] or None]
    assert float(first_split.mean()) == pytest.approx(facts["mean"], abs=1e-4)


def test_real_subset_matches_stratified_indices():
    if not _files_present("usps"):
        pytest.skip(f"usps files not found under {ROOT}: set DECS_DATA")
    x, y = data.load("usps")
    xs, ys = data.load("USPS", subset=500, seed=3)
    keep = data.stratified_indices(y, 500, seed=3)
    assert torch.equal(xs, x[keep]) and torch.equal(ys, y[keep])
    counts = torch.bincount(ys, minlength=10).numpy()
    quota = 500 * torch.bincount(y).numpy() / len(y)
    assert np.all(np.abs(counts - quota) < 1)


def test_checksums_are_cached_per_process():
    if not _files_present("mnist-test"):
        pytest.skip(f"mnist files not found under {ROOT}: set DECS_DATA")
    path = ROOT / DATASETS["mnist-test"].files[0].path
    data.sha256(path)
    hits = data._sha256_cached.cache_info().hits
    assert data.sha256(path) == DATASETS["mnist-test"].files[0].sha256
    assert data._sha256_cached.cache_info().hits == hits + 1


# --------------------------------------------------------------------------------------------
# Names, root, metadata
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alias, name", [
    ("MNIST", "mnist"), ("mnist_test", "mnist-test"), ("MNIST-Test", "mnist-test"),
    ("fashion_mnist", "fashion-mnist"), ("FMNIST", "fashion-mnist"),
    ("Fashion-MNIST", "fashion-mnist"),
    ("usps", "usps"), ("YTF", "ytf"), ("youtube_faces", "ytf"),
])
def test_aliases(alias, name):
    assert data.canonical_name(alias) == name


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError) as caught:
        data.load("cifar10")
    for name in DATASETS:
        assert repr(name) in str(caught.value)


def test_metadata():
    assert {n: data.n_clusters(n) for n in DATASETS} == {
        "mnist": 10, "mnist-test": 10, "usps": 10, "fashion-mnist": 10, "ytf": 41}
    for info in DATASETS.values():
        for f in info.files:
            assert len(f.sha256) == 64 and f.path.startswith(info.folder + "/") and f.urls
    assert DATASETS["usps"].n_samples == 9298 and DATASETS["ytf"].shape == (3, 55, 55)


def test_data_root_order(tmp_path, monkeypatch):
    monkeypatch.setenv("DECS_DATA", str(tmp_path / "env"))
    assert data.data_root() == tmp_path / "env"
    assert data.data_root(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("DECS_DATA")
    repo = Path(data.__file__).resolve().parent.parent
    expected = repo / "data" if (repo / "pyproject.toml").is_file() else Path.cwd() / "data"
    assert data.data_root() == expected


# --------------------------------------------------------------------------------------------
# Errors on small files made here
# --------------------------------------------------------------------------------------------


def test_missing_files_are_each_named_with_path_checksum_and_source(tmp_path):
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"present")
    with pytest.raises(DatasetNotFoundError) as caught:
        data.load("mnist", root=tmp_path)
    assert isinstance(caught.value, FileNotFoundError)
    message = str(caught.value)
    assert "3 of 4 files are missing" in message
    for f in DATASETS["mnist"].files:
        assert str(tmp_path / f.path) in message
        assert f.sha256 in message
        assert f.urls[0] in message
    assert "DECS_DATA" in message and "yann.lecun.com" in message


def test_corrupt_file_is_named_with_both_checksums(tmp_path):
    (tmp_path / "usps").mkdir()
    for f in DATASETS["usps"].files:
        (tmp_path / f.path).write_bytes(b"not the USPS file")
    with pytest.raises(DatasetCorruptError) as caught:
        data.load("usps", root=tmp_path)
    assert isinstance(caught.value, ValueError)
    message = str(caught.value)
    wrong = hashlib.sha256(b"not the USPS file").hexdigest()
    for f in DATASETS["usps"].files:
        assert str(tmp_path / f.path) in message and f.sha256 in message
    assert message.count(wrong) == 2
    assert "DECS_DATA" in message
    assert not data.is_available("usps", root=tmp_path)


def test_a_file_rewritten_in_place_is_hashed_again(tmp_path):
    path = tmp_path / "file.bin"
    path.write_bytes(b"one")
    first = data.sha256(path)
    path.write_bytes(b"two!")
    assert data.sha256(path) != first == hashlib.sha256(b"one").hexdigest()


def test_failed_download_falls_through_to_the_usual_error(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network in this test")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DatasetNotFoundError) as caught:
        data.load("usps", root=tmp_path, download=True)
    assert "no network in this test" in str(caught.value)
    assert not list((tmp_path / "usps").glob("*"))  # no partial file left behind


def test_fetch_checks_the_checksum(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(b"payload")
    target = tmp_path / "out" / "file.bin"
    with pytest.raises(ValueError):
        data.fetch_file(source.as_uri(), target, "0" * 64)
    assert not target.parent.exists()  # neither the file nor the folder the failed download made
    data.fetch_file(source.as_uri(), target, hashlib.sha256(b"payload").hexdigest())
    assert target.read_bytes() == b"payload"


# --------------------------------------------------------------------------------------------
# Downloads from a local HTTP server: each way a source can fail, and the fall-back
# --------------------------------------------------------------------------------------------


def test_sources():
    """Every file has a source; MNIST and Fashion-MNIST several; USPS the authors' copy at a
    fixed commit. No source is the RWTH address, which no longer serves USPS."""
    for info in DATASETS.values():
        for f in info.files:
            assert f.urls and all(url.endswith("/" + Path(f.path).name) for url in f.urls)
            assert all(url.startswith(("https://", "http://")) for url in f.urls)
            assert not any("rwth-aachen" in url for url in f.urls + (info.source,))
            if info.name != "usps":
                assert len(f.urls) >= 2, f.path
    for f in DATASETS["usps"].files:
        assert f.urls == ("https://raw.githubusercontent.com/ChengZhanwen/DECS/"
                          f"85f2586deb5a376383a915a772f4fa927e56d0c4/DECS/data/usps/{Path(f.path).name}",)


class _Server(http.server.ThreadingHTTPServer):
    """Serves ``files`` (name -> bytes) under /<behaviour>/<name> and records the paths asked."""
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    # ok: the file; missing: 404; wrong: other bytes of the same length; cut: the right length
    # announced, half of the file sent, then the connection closed
    def do_GET(self):
        self.server.requests.append(self.path)
        behaviour, _, name = self.path.lstrip("/").partition("/")
        body = self.server.files.get(name)
        if behaviour == "missing" or body is None:
            self.send_error(404)
            return
        if behaviour == "wrong":
            body = bytes(len(body))
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if behaviour == "cut":
            self.wfile.write(body[:len(body) // 2])
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    with _Server() as httpd:
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        yield httpd
        httpd.shutdown()


def _refused_url() -> str:
    """An address on which nothing listens: connecting to it is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


TINY_USPS = {"usps_train.jf.gz": "10 4\n3 0 1 2 0\n7 2 2 0 1\n1 0 0 0 2\n-1\n",
             "usps_test.jf.gz": "10 4\n9 1 1 1 1\n-1\n"}


@pytest.fixture
def served_usps(server, monkeypatch):
    """USPS as a tiny pair of .jf.gz files on the local server; ``use(*sources)`` points the
    dataset's mirror list at them (a source: 'ok', 'missing', 'wrong', 'cut' or a base URL)."""
    server.files = {name: gzip.compress(text.encode(), mtime=0) for name, text in TINY_USPS.items()}
    server.requests.clear()

    def use(*sources):
        bases = [s if "://" in s else f"{server.url}/{s}/" for s in sources]
        files = tuple(data.DataFile(f"usps/{name}", hashlib.sha256(body).hexdigest(), len(body),
                                    tuple(base.rstrip("/") + "/" + name for base in bases))
                      for name, body in server.files.items())
        info = dataclasses.replace(DATASETS["usps"], files=files)
        monkeypatch.setattr(data, "DATASETS", MappingProxyType({**DATASETS, "usps": info}))
        return info

    return use


def test_download_from_a_local_mirror(tmp_path, served_usps, server):
    served_usps("ok")
    x, y = data.load("usps", root=tmp_path, download=True)
    assert x.shape == (4, 1, 2, 2) and y.tolist() == [3, 7, 1, 9]
    assert float(x.max()) == 1.0  # [0, 2] halved
    assert sorted(p.name for p in (tmp_path / "usps").iterdir()) == sorted(TINY_USPS)  # no temporary file
    assert data.is_available("usps", root=tmp_path)
    asked = len(server.requests)
    data.load("usps", root=tmp_path, download=True)  # present and intact: nothing is fetched again
    assert len(server.requests) == asked


@pytest.mark.parametrize("failing", ["missing", "wrong", "cut", "refused"])
def test_a_failing_mirror_falls_back_to_the_next(tmp_path, served_usps, server, failing):
    served_usps(_refused_url() if failing == "refused" else failing, "ok")
    x, y = data.load("usps", root=tmp_path, download=True)
    assert y.tolist() == [3, 7, 1, 9]
    if failing != "refused":
        assert [r.split("/")[1] for r in server.requests] == [failing, "ok"] * 2
    assert sorted(p.name for p in (tmp_path / "usps").iterdir()) == sorted(TINY_USPS)


def test_an_interrupted_download_leaves_no_partial_file(tmp_path, served_usps, server):
    info = served_usps("cut")
    f = info.files[0]
    target = tmp_path / f.path
    with pytest.raises(ValueError, match="interrupted: received"):
        data.fetch_file(f.urls[0], target, f.sha256, f.size)
    assert not target.parent.exists()  # no partial file, nor the folder made for it
    # Without the expected size the checksum still refuses the half file; a folder that was there stays.
    target.parent.mkdir()
    with pytest.raises(ValueError, match="wrong sha256"):
        data.fetch_file(f.urls[0], target, f.sha256)
    assert target.parent.is_dir() and not list(target.parent.iterdir())


def test_when_every_mirror_fails_the_error_says_what_was_tried_and_what_to_do(tmp_path, served_usps):
    refused = _refused_url()
    info = served_usps("missing", "wrong", "cut", refused)
    with pytest.raises(DatasetNotFoundError) as caught:
        data.load("usps", root=tmp_path, download=True)
    message = str(caught.value)
    for f in info.files:
        for url in f.urls:
            assert url in message
    for why in ("HTTP Error 404", "wrong sha256", "interrupted: received", "refused"):
        assert message.count(why) >= len(info.files), why
    assert "What to do" in message and "DECS_DATA" in message and str(tmp_path / "usps") in message
    assert "download=True)" not in message.split("download=True could not")[0]  # no "try download=True"
    assert not (tmp_path / "usps").exists()  # nothing partial, no temporary file, no empty folder


# --------------------------------------------------------------------------------------------
# File formats on tiny files
# --------------------------------------------------------------------------------------------


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_read_idx_round_trip_and_errors(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "ok.gz", array)
    assert np.array_equal(data.read_idx(tmp_path / "ok.gz"), array)
    with gzip.open(tmp_path / "short.gz", "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big") + b"12345")
    with pytest.raises(DatasetCorruptError, match="header announces"):
        data.read_idx(tmp_path / "short.gz")
    (tmp_path / "garbage.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DatasetCorruptError, match="cannot read"):
        data.read_idx(tmp_path / "garbage.gz")


def _jf_text(labels, pixels, footer="-1") -> str:
    lines = ["10 256"] + [f"{label} " + " ".join(f"{v:g}" for v in row)
                          for label, row in zip(labels, pixels)]
    return "\n".join(lines + [footer]) + "\n"


def test_read_usps_jf_and_scaling(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.uniform(0, 2, size=(3, 256)).round(3)
    pixels[0, 0], pixels[1, 5] = 0.0, 2.0
    path = tmp_path / "tiny.jf.gz"
    with gzip.open(path, "wt") as f:
        f.write(_jf_text([3, 0, 9], pixels))
    images, labels = data.read_usps_jf(path)
    assert images.shape == (3, 16, 16) and labels.tolist() == [3, 0, 9]
    assert np.allclose(images.reshape(3, -1), pixels)  # row-major 16×16
    assert images[1, 0, 5] == pytest.approx(2.0)
    x, y = data._load_usps([path, path])
    assert x.shape == (6, 1, 16, 16) and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 1.0 and y.tolist() == [3, 0, 9, 3, 0, 9]


@pytest.mark.parametrize("text, why", [
    ("10 256\n1 2 3\n-1\n", "line 2 has 3 values"),
    (_jf_text([1], np.zeros((1, 256)), footer="1 0 0"), "last line"),
    (_jf_text([12], np.zeros((1, 256))), "labels"),
    ("hello world\n-1\n", "first line"),
])
def test_read_usps_jf_rejects_malformed_files(tmp_path, text, why):
    path = tmp_path / "bad.jf"
    path.write_text(text)
    with pytest.raises(DatasetCorruptError, match=why):
        data.read_usps_jf(path)


# --------------------------------------------------------------------------------------------
# Stratified subsets
# --------------------------------------------------------------------------------------------

LABELS = np.repeat(np.arange(4), [500, 300, 150, 50])  # unbalanced, sorted


def test_subset_is_stratified():
    keep = data.stratified_indices(LABELS, 100, seed=0)
    assert len(keep) == len(np.unique(keep)) == 100
    assert np.all(np.diff(keep) > 0)  # deterministic order: the dataset's own
    assert np.bincount(LABELS[keep]).tolist() == [50, 30, 15, 5]


def test_subset_keeps_every_class_when_n_at_least_k():
    labels = np.repeat(np.arange(3), [1000, 1, 1])
    assert np.bincount(labels[data.stratified_indices(labels, 3)]).tolist() == [1, 1, 1]
    assert np.bincount(labels[data.stratified_indices(labels, 10)]).tolist() == [8, 1, 1]
    assert len(data.stratified_indices(labels, 2)) == 2  # n < k: some class must be left out


def test_subset_reproducible_and_seed_dependent():
    a = data.stratified_indices(LABELS, 77, seed=1)
    assert np.array_equal(a, data.stratified_indices(torch.from_numpy(LABELS), 77, seed=1))
    assert not np.array_equal(a, data.stratified_indices(LABELS, 77, seed=2))
    assert np.array_equal(data.stratified_indices(LABELS, len(LABELS)), np.arange(len(LABELS)))


@pytest.mark.parametrize("n", [0, -1, len(LABELS) + 1])
def test_subset_out_of_range(n):
    with pytest.raises(ValueError, match="subset"):
        data.stratified_indices(LABELS, n)


# --------------------------------------------------------------------------------------------
# YTF in its two formats
# --------------------------------------------------------------------------------------------

def _write_h5(path: Path, x: np.ndarray, labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f["data"] = x
        f["labels"] = labels


@pytest.fixture
def ytf_h5(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(12, 3, 55, 55), dtype=np.uint8)
    x[0, 0, 0, 0], x[0, 0, 0, 1] = 0, 255
    labels = np.tile(np.arange(1, 4), 4).astype(np.float64)  # 1..3 as DEPICT stores them
    _write_h5(tmp_path / "ytf" / "data4torch.h5", x, labels)
    return tmp_path, x, labels


@needs_h5py
def test_ytf_from_hdf5(ytf_h5):
    root, raw, labels = ytf_h5
    with pytest.warns(UserWarning, match="the paper's has 10,000 of 41"):
        x, y = data.load("ytf", root=root)
    assert x.shape == (12, 3, 55, 55) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.allclose(x, torch.from_numpy(raw).float() / 255)
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert y.tolist() == (labels - 1).astype(int).tolist()
    assert data.is_available("ytf", root=root)


@needs_h5py
def test_ytf_subset_and_subset_too_large(ytf_h5):
    root, _, _ = ytf_h5
    with pytest.warns(UserWarning):
        _, y = data.load("ytf", root=root, subset=6, seed=0)
    assert torch.bincount(y).tolist() == [2, 2, 2]
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="12 samples"):
        data.load("ytf", root=root, subset=13)


@needs_h5py
def test_ytf_hdf5_channels_last_and_float(tmp_path):
    x = np.random.default_rng(1).uniform(0, 1, size=(4, 55, 55, 3)).astype(np.float32)
    _write_h5(tmp_path / "ytf" / "faces.h5", x, np.array([[7], [7], [9], [9]]))
    with pytest.warns(UserWarning):
        loaded, y = data.load("ytf", root=tmp_path)
    assert torch.allclose(loaded, torch.from_numpy(x.transpose(0, 3, 1, 2)))
    assert y.tolist() == [0, 0, 1, 1]


@needs_h5py
@pytest.mark.parametrize("x, labels, why", [
    (np.zeros((4, 3, 32, 32), np.uint8), np.arange(4), "shape"),
    (np.full((4, 3, 55, 55), -1.0, np.float32), np.arange(4), "pixel values"),
    (np.zeros((4, 3, 55, 55), np.uint8), np.arange(3), "4 images but 3 labels"),
])
def test_ytf_hdf5_rejects_bad_contents(tmp_path, x, labels, why):
    _write_h5(tmp_path / "ytf" / "data4torch.h5", x, labels)
    with pytest.raises(DatasetCorruptError, match=why):
        data.load("ytf", root=tmp_path)


@needs_h5py
def test_ytf_hdf5_without_labels(tmp_path):
    (tmp_path / "ytf").mkdir()
    with h5py.File(tmp_path / "ytf" / "data4torch.h5", "w") as f:
        f["data"] = np.zeros((2, 3, 55, 55), np.uint8)
    with pytest.raises(DatasetCorruptError, match="'labels'"):
        data.load("ytf", root=tmp_path)


def test_ytf_from_image_folder(tmp_path):
    from PIL import Image

    sizes = {"bob": [(55, 55), (80, 60)], "alice": [(30, 40), (100, 100)],
             "carol": [(64, 64), (20, 20)]}
    modes = ["RGB", "L", "RGBA"]
    for i, (subject, shapes) in enumerate(sizes.items()):
        folder = tmp_path / "ytf" / "images" / subject
        folder.mkdir(parents=True)
        for j, (w, h) in enumerate(shapes):
            mode, v = modes[(i + j) % 3], 255 if j else 0  # first file black, second white
            colour = {"L": v, "RGB": (v, v, v), "RGBA": (v, v, v, 255)}[mode]
            Image.new(mode, (w, h), colour).save(folder / f"{j}.png")
    with pytest.warns(UserWarning, match="6 images of 3 subjects"):
        x, y = data.load("ytf", root=tmp_path)
    assert x.shape == (6, 3, 55, 55) and x.dtype == torch.float32
    assert y.tolist() == [0, 0, 1, 1, 2, 2]  # alice, bob, carol: sorted folder names
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert torch.all(x[0::2] == 0) and torch.all(x[1::2] == 1)  # each file's colour survives


def test_ytf_missing_explains_both_formats(tmp_path):
    with pytest.raises(DatasetNotFoundError) as caught:
        data.load("ytf", root=tmp_path)
    message = str(caught.value)
    for needle in ("data4torch.h5", str(tmp_path / "ytf" / "images"), "github.com/herandy/DEPICT",
                   "DECS_DATA", "55×55"):
        assert needle in message
    assert not data.is_available("ytf", root=tmp_path)


@needs_h5py
def test_several_hdf5_files_are_ambiguous(tmp_path):
    for name in ("a.h5", "b.h5"):
        _write_h5(tmp_path / "ytf" / name, np.zeros((1, 3, 55, 55), np.uint8), np.ones(1))
    with pytest.raises(DatasetCorruptError, match="several HDF5 files"):
        data.load("ytf", root=tmp_path)


@needs_h5py
def test_environment_variable_is_used(tmp_path, monkeypatch, ytf_h5):
    root, _, _ = ytf_h5
    monkeypatch.setenv("DECS_DATA", os.fspath(root))
    with pytest.warns(UserWarning):
        x, _ = data.load("ytf")
    assert len(x) == 12


def test_decs_mirror_is_tried_first_and_setup_fetches_what_a_chapter_reads(tmp_path, served_usps, server,
                                                                          monkeypatch, capsys):
    """setup(data=[...]) downloads a missing dataset ($DECS_MIRROR first, laid out like the data
    root), says so, and reports one it cannot get instead of failing."""
    from decs import notebook

    served_usps("missing")  # the published source is dead; the mirror has the files
    server.files = {f"usps/{k}": v for k, v in server.files.items()}  # /ok/usps/<file>
    monkeypatch.setenv("DECS_MIRROR", f"{server.url}/ok")
    monkeypatch.setenv("DECS_DATA", str(tmp_path))
    notebook.setup(data=["usps"])
    assert data.is_available("usps") and "usps: downloaded" in capsys.readouterr().out
    assert server.requests[0].startswith("/ok/usps/")
    monkeypatch.setenv("DECS_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("DECS_DOWNLOAD", "0")
    notebook.setup(data=["usps"])
    assert "usps: NOT AVAILABLE (downloads are off (DECS_DOWNLOAD=0))" in capsys.readouterr().out
