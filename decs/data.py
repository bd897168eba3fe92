"""The datasets of the DECS paper, loaded the same way every time.

Used in :doc:`/book/02_clustering_and_metrics`.

``load(name)`` returns ``(x, y)``: ``x`` is a float32 tensor N×C×H×W with values in [0, 1] and
``y`` an int64 tensor of labels 0..k-1. The datasets and what they contain:

============== ======= ========= === =================================================
name            N      C×H×W     k   files under the data root
============== ======= ========= === =================================================
mnist           70,000 1×28×28   10  ``mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``
mnist-test      10,000 1×28×28   10  ``mnist/t10k-*`` (MNIST's test split alone)
usps             9,298 1×16×16   10  ``usps/usps_{train,test}.jf.gz``
fashion-mnist   70,000 1×28×28   10  ``fashion_mnist/`` (the same four names as MNIST)
ytf             10,000 3×55×55   41  ``ytf/data4torch.h5`` or ``ytf/images/<subject>/...``
============== ======= ========= === =================================================

Where the files are looked for is decided by :func:`data_root`. Every file with a published
checksum is checked (sha256) before it is parsed, so a truncated download cannot turn into a
silently smaller dataset. A missing or damaged file raises an error that names each expected file,
where it should be, its checksum and where to get it. Nothing is ever substituted.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.client
import math
import os
import urllib.request
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import IO, Mapping

import numpy as np
import torch

__all__ = [
    "DATASETS",
    "DataFile",
    "DatasetCorruptError",
    "DatasetInfo",
    "DatasetNotFoundError",
    "canonical_name",
    "data_root",
    "fetch",
    "is_available",
    "load",
    "n_clusters",
    "read_idx",
    "read_usps_jf",
    "stratified_indices",
]


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not where :func:`load` looks for them.

    Used in :doc:`/book/02_clustering_and_metrics`. The message names each expected file, the
    full path where it should be, its sha256 and where to download it.
    """


class DatasetCorruptError(ValueError):
    """A dataset's file is present but is not the published file (wrong checksum) or cannot
    be parsed.

    Used in :doc:`/book/02_clustering_and_metrics`.
    """


# --------------------------------------------------------------------------------------------
# What each dataset is made of
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataFile:
    """One published file: its path relative to the data root, checksum, size and mirrors.

    Used in :doc:`/book/02_clustering_and_metrics`.
    """

    path: str  # relative to the data root, e.g. "mnist/train-images-idx3-ubyte.gz"
    sha256: str
    size: int  # bytes
    urls: tuple[str, ...]  # where it can be downloaded, first choice first


@dataclass(frozen=True)
class DatasetInfo:
    """Metadata of one dataset, as the paper uses it (see :data:`DATASETS`).

    Used in :doc:`/book/02_clustering_and_metrics`.
    """

    name: str  # canonical name accepted by load()
    title: str  # how the book writes it
    n_samples: int
    shape: tuple[int, int, int]  # C, H, W
    n_classes: int
    folder: str  # sub-folder of the data root
    files: tuple[DataFile, ...]  # empty for YTF, which has no published file
    source: str  # where the original comes from
    licence: str
    aliases: tuple[str, ...] = ()


# Where each file is downloaded from, first choice first; each is checked against the same
# sha256, so a source can be swapped without trusting it. MNIST and Fashion-MNIST: the sources
# torchvision uses (torchvision.datasets.MNIST.mirrors and FashionMNIST.mirrors, 0.29, whose md5s
# name the same files), then for Fashion-MNIST the copy in its authors' repository at a fixed
# commit. USPS: the .jf.gz files in the DECS authors' repository at commit 85f2586, the files
# this book's checksums were taken from (its files' git blobs are the ones checked here).
_GITHUB_RAW = "https://raw.githubusercontent.com/"
_DECS_COMMIT = "85f2586deb5a376383a915a772f4fa927e56d0c4"
_FASHION_COMMIT = "b2617bb6d3ffa2e429640350f613e3291e10b141"
_MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
                  "http://yann.lecun.com/exdb/mnist/")
_FASHION_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                    f"{_GITHUB_RAW}zalandoresearch/fashion-mnist/{_FASHION_COMMIT}/data/fashion/")
_USPS_MIRRORS = (f"{_GITHUB_RAW}ChengZhanwen/DECS/{_DECS_COMMIT}/DECS/data/usps/",)


def _files(folder: str, mirrors: tuple[str, ...],
           table: dict[str, tuple[str, int]]) -> tuple[DataFile, ...]:
    """DataFile records from a table {file name: (sha256, bytes)} of one folder."""
    return tuple(DataFile(f"{folder}/{name}", sha256, size, tuple(m + name for m in mirrors))
                 for name, (sha256, size) in table.items())


# The order of files matters: (train images, train labels, test images, test labels) for the
# idx datasets, (train, test) for USPS. The checksums are those in data/README.md.
_MNIST_TRAIN = _files("mnist", _MNIST_MIRRORS, {
    "train-images-idx3-ubyte.gz":
        ("440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9_912_422),
    "train-labels-idx1-ubyte.gz":
        ("3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28_881),
})
_MNIST_TEST = _files("mnist", _MNIST_MIRRORS, {
    "t10k-images-idx3-ubyte.gz":
        ("8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1_648_877),
    "t10k-labels-idx1-ubyte.gz":
        ("f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4_542),
})
_FASHION = _files("fashion_mnist", _FASHION_MIRRORS, {
    "train-images-idx3-ubyte.gz":
        ("3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", 26_421_880),
    "train-labels-idx1-ubyte.gz":
        ("a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", 29_515),
    "t10k-images-idx3-ubyte.gz":
        ("346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", 4_422_102),
    "t10k-labels-idx1-ubyte.gz":
        ("67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", 5_148),
})
_USPS = _files("usps", _USPS_MIRRORS, {
    "usps_train.jf.gz":
        ("5b73274db884db90c888291f9d58d777ec5d9487f84ff9039ccb0f4d6d766125", 1_441_158),
    "usps_test.jf.gz":
        ("29e95113f390aeb4a8327c3e0ff0b49a7f0dfd1a3fb44aba6377d64df223ed20", 399_796),
})

DATASETS: Mapping[str, DatasetInfo] = MappingProxyType({
    "mnist": DatasetInfo(
        "mnist", "MNIST", 70_000, (1, 28, 28), 10, "mnist", _MNIST_TRAIN + _MNIST_TEST,
        "http://yann.lecun.com/exdb/mnist", "CC BY-SA 3.0",
        aliases=("mnist-full", "mnist-70k", "mnist-all")),
    "mnist-test": DatasetInfo(
        "mnist-test", "MNIST-test", 10_000, (1, 28, 28), 10, "mnist", _MNIST_TEST,
        "http://yann.lecun.com/exdb/mnist", "CC BY-SA 3.0",
        aliases=("mnist-t10k", "mnist-10k")),
    "usps": DatasetInfo(
        "usps", "USPS", 9_298, (1, 16, 16), 10, "usps", _USPS,
        f"https://github.com/ChengZhanwen/DECS/tree/{_DECS_COMMIT}/DECS/data/usps "
        "(Hull 1994, as the .jf files of DEC, IDEC and DECS)", "research use"),
    "fashion-mnist": DatasetInfo(
        "fashion-mnist", "Fashion-MNIST", 70_000, (1, 28, 28), 10, "fashion_mnist", _FASHION,
        "https://github.com/zalandoresearch/fashion-mnist", "MIT",
        aliases=("fmnist", "fashionmnist", "fashion")),
    "ytf": DatasetInfo(
        "ytf", "YTF", 10_000, (3, 55, 55), 41, "ytf", (),
        "https://github.com/herandy/DEPICT (YouTube Faces subset of Wolf et al. 2011)",
        "research use", aliases=("youtube-faces", "youtubefaces")),
})
"""Metadata of every dataset :func:`load` knows, keyed by canonical name (read-only).

Used in :doc:`/book/02_clustering_and_metrics`.
"""


def canonical_name(name: str) -> str:
    """The canonical name of a dataset: case, ``_`` and spaces are ignored, aliases accepted.

    Used in :doc:`/book/02_clustering_and_metrics`. ``"Fashion_MNIST"`` and ``"fmnist"`` both
    give ``"fashion-mnist"``; an unknown name raises ``ValueError`` listing the valid ones.
    """
    key = str(name).strip().lower().replace("_", "-").replace(" ", "-")
    for info in DATASETS.values():
        if key == info.name or key in info.aliases:
            return info.name
    valid = ", ".join(repr(n) for n in DATASETS)
    raise ValueError(f"unknown dataset {name!r}; valid names are {valid} "
                     "(case, '_' and '-' do not matter)")


def n_clusters(name: str) -> int:
    """The number of classes k of a dataset, the number of clusters the paper asks for.

    Used in :doc:`/book/02_clustering_and_metrics`.
    """
    return DATASETS[canonical_name(name)].n_classes


# --------------------------------------------------------------------------------------------
# Where the files are
# --------------------------------------------------------------------------------------------


def _repository_root() -> Path | None:
    """The source checkout this package lives in, if it is one (it holds pyproject.toml)."""
    candidate = Path(__file__).resolve().parent.parent
    return candidate if (candidate / "pyproject.toml").is_file() else None


def _resolve_root(root: str | os.PathLike[str] | None) -> tuple[Path, str]:
    """The data root and a few words on why it was chosen (for error messages)."""
    if root is not None:
        return Path(root).expanduser().absolute(), "the root argument"
    env = os.environ.get("DECS_DATA", "").strip()
    if env:
        return Path(env).expanduser().absolute(), "$DECS_DATA"
    repo = _repository_root()
    if repo is not None:
        return repo / "data", "the default: data/ in the repository (DECS_DATA is not set)"
    return Path.cwd() / "data", "the default: data/ in the working directory (DECS_DATA is not set)"


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The folder the dataset folders (``mnist/``, ``usps/``, ...) are looked for in.

    Used in :doc:`/book/02_clustering_and_metrics`. In order of preference:

    1. ``root``, when given;
    2. the environment variable ``DECS_DATA``, when set and not empty;
    3. ``data/`` in the repository, when the package runs from a source checkout (the folder
       holding ``pyproject.toml`` next to ``decs/``) — so notebooks in ``book/`` and scripts
       anywhere in the checkout find the same folder;
    4. otherwise ``data/`` in the current working directory (an installed package).

    The folder need not exist; :func:`load` says so when it reads from it.
    """
    return _resolve_root(root)[0]


# --------------------------------------------------------------------------------------------
# Checksums
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=128)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    # size and mtime_ns are only part of the cache key: a file rewritten in place gets hashed
    # again, an unchanged one is hashed once per process.
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256(path: Path | str) -> str:
    """The sha256 of a file, in hex (hashed once per process while its size and modification time
    stay the same). Checks the datasets here and the model files in :mod:`decs.results`."""
    path = Path(path)
    stat = path.stat()
    return _sha256_cached(str(path), stat.st_size, stat.st_mtime_ns)


def _check_files(info: DatasetInfo, root: Path, why_root: str,
                 failures: Sequence[str] = ()) -> list[Path]:
    """The paths of ``info``'s files, after checking that each exists and has its checksum
    (``failures``: the download attempts that failed, for the error message)."""
    paths = [root / f.path for f in info.files]
    missing = [not p.is_file() for p in paths]
    if any(missing):
        raise DatasetNotFoundError(_missing_message(info, root, why_root, paths, missing, failures))
    found = [sha256(p) for p in paths]
    if any(h != f.sha256 for h, f in zip(found, info.files)):
        raise DatasetCorruptError(_corrupt_message(info, root, why_root, paths, found))
    return paths


def _how_to_get(info: DatasetInfo, root: Path, why_root: str) -> str:
    return (
        "How to get them:\n"
        f"  - download each file above into {root / info.folder}{os.sep}\n"
        f"    (the dataset's home: {info.source});\n"
        f"  - or set DECS_DATA to the folder holding them (the one that contains {info.folder}/);\n"
        f"  - or, with internet access, call decs.data.load({info.name!r}, download=True).\n"
        f"The data root {root} was chosen by {why_root}"
        + ("." if root.is_dir() else "; that folder does not exist.")
    )


def _file_lines(status: str, path: Path, f: DataFile) -> list[str]:
    pad = " " * 10
    lines = [f"  {status:<8}{path}",
             f"{pad}sha256 {f.sha256} ({f.size:,} bytes)"]
    lines += [f"{pad}from   {url}" for url in f.urls]
    return lines


def _missing_message(info: DatasetInfo, root: Path, why_root: str, paths: Sequence[Path],
                     missing: Sequence[bool], failures: Sequence[str] = ()) -> str:
    n_missing = sum(missing)
    lines = [f"{info.title} is not available on this machine: {n_missing} of {len(paths)} "
             f"files are missing from {root / info.folder}", ""]
    for path, f, gone in zip(paths, info.files, missing):
        lines += _file_lines("missing" if gone else "found", path, f)
    how = (_download_failed_message(info, root, why_root, failures) if failures
           else _how_to_get(info, root, why_root))
    return "\n".join(lines + ["", how])


def _download_failed_message(info: DatasetInfo, root: Path, why_root: str,
                             failures: Sequence[str]) -> str:
    """What :func:`load` says when ``download=True`` could not fetch every file."""
    from .release import REPOSITORY

    folder = root / info.folder
    return "\n".join([
        "download=True could not fetch the missing files above: each of their sources failed.",
        "Tried, in order (a file is kept only if its sha256 is the published one):",
        *(f"  {line}" for line in failures),
        "",
        "What to do:",
        "  - 'Connection refused', 'timed out' or 'Name or service not known' everywhere: this",
        "    machine is offline or behind a proxy (set https_proxy). Download the files on another",
        f"    machine from one of the addresses above and copy them into {folder}{os.sep},",
        "    or set DECS_DATA to a folder that holds them (its subfolder "
        f"{info.folder}{os.sep});",
        "  - 'interrupted': the connection broke; run the same call again;",
        "  - 'Permission denied': the data root is not writable; pass root= or set DECS_DATA to",
        "    a folder you can write to;",
        "  - 'wrong sha256' or 'HTTP Error 404' from every source: a source changed or moved its",
        f"    file; please report it at {REPOSITORY}/issues.",
        f"The data root {root} was chosen by {why_root}.",
    ])


def _corrupt_message(info: DatasetInfo, root: Path, why_root: str,
                     paths: Sequence[Path], found: Sequence[str]) -> str:
    lines = [f"{info.title}: some files under {root / info.folder} are not the published files "
             "(their sha256 differs; a partial download or another version of the file?)", ""]
    for path, f, h in zip(paths, info.files, found):
        ok = h == f.sha256
        lines += _file_lines("ok" if ok else "corrupt", path, f)
        if not ok:
            lines.append(f"{' ' * 10}found  sha256 {h} ({path.stat().st_size:,} bytes)")
    return "\n".join(lines + ["", "Delete the corrupt files and get them again.",
                              _how_to_get(info, root, why_root)])


# --------------------------------------------------------------------------------------------
# Optional download (never needed when the files are there)
# --------------------------------------------------------------------------------------------


def fetch_file(url: str, target: Path, expected: str, size: int | None = None) -> None:
    """Download ``url`` to ``target`` with :func:`decs.files.atomic_write`: the file appears under
    ``target``'s name only when complete (``size`` bytes, when given) and of sha256 ``expected``.

    An interrupted or wrong download never leaves a file under ``target``'s name, nor a temporary
    file or a folder this call created (``ValueError`` for a short or wrong file, ``OSError`` or
    ``http.client.HTTPException`` for the network).
    """
    from . import __version__
    from .files import atomic_write  # decs.files imports this module
    from .release import REPOSITORY

    # Some servers refuse Python's default User-Agent (torchvision sends its own, too).
    request = urllib.request.Request(url, headers={"User-Agent": f"decs/{__version__} (+{REPOSITORY})"})

    def download(out: IO[bytes]) -> None:
        digest, received = hashlib.sha256(), 0
        with urllib.request.urlopen(request, timeout=30) as response:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
        # http.client ends a body cut short by the server without an error: count the bytes.
        if size is not None and received < size:
            raise ValueError(f"interrupted: received {received:,} of {size:,} bytes")
        if digest.hexdigest() != expected:
            raise ValueError(f"wrong sha256 {digest.hexdigest()} (expected {expected}): not the published file")

    atomic_write(target, download)


def _download(info: DatasetInfo, root: Path) -> list[str]:
    """Fetch ``info``'s missing files into ``root``, each from its sources in order until one
    gives the published file. Returns one line per failed attempt, those a later source made up
    for included (:func:`load` shows them only when a file is still missing)."""
    failures: list[str] = []
    mirror = os.environ.get("DECS_MIRROR", "").strip().rstrip("/")
    for f in info.files:
        target = root / f.path
        # $DECS_MIRROR (a folder laid out like the data root, served over http): tried first
        for url in ((f"{mirror}/{f.path}",) if mirror else ()) + f.urls:
            if target.is_file():
                break
            try:
                fetch_file(url, target, f.sha256, f.size)
            except (OSError, ValueError, http.client.HTTPException) as error:
                # No network, a dead source (404, refused), an interrupted or wrong file, a
                # read-only root: try the next source and, in the end, say what was tried.
                failures.append(f"{f.path}: {url}: {error}")
    return failures


def fetch(name: str, root: str | os.PathLike[str] | None = None) -> list[str]:
    """Download a dataset's missing files into ``root`` (see :func:`data_root`), each from its
    sources in order (``$DECS_MIRROR`` first when set, then ``DataFile.urls``) until one gives the
    file with the published sha256. Returns one line per failed attempt; the dataset is ready
    when :func:`is_available` says so. YTF has no published file: nothing is fetched.

    Used by :func:`decs.notebook.setup`, which fetches what a chapter needs
    (:doc:`/book/02_clustering_and_metrics`).
    """
    info = DATASETS[canonical_name(name)]
    return _download(info, _resolve_root(root)[0]) if info.files else []


# --------------------------------------------------------------------------------------------
# File formats
# --------------------------------------------------------------------------------------------


def _open(path: Path, mode: str = "rb") -> IO:
    """Open a file, gunzipping on the fly when its name ends in .gz."""
    if path.suffix == ".gz":
        return gzip.open(path, mode)
    return open(path, mode)


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one idx file of unsigned bytes (MNIST's format) into a uint8 array.

    Used in :doc:`/book/02_clustering_and_metrics`. The format: two zero bytes, the type code
    ``0x08`` (unsigned byte), the number of dimensions d, then d big-endian uint32 sizes, then
    the values in row-major order. Images files have d = 3 (N×28×28), label files d = 1.
    """
    path = Path(path)
    try:
        with _open(path) as f:
            raw = f.read()
    except (OSError, EOFError) as error:  # gzip.BadGzipFile is an OSError
        raise DatasetCorruptError(f"cannot read {path}: {error}") from error
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise DatasetCorruptError(f"{path} is not an idx file of unsigned bytes "
                                  f"(first bytes {raw[:4].hex() or 'none'}, expected 000008..)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    n_values = math.prod(shape)
    if len(raw) != header + n_values:
        raise DatasetCorruptError(f"{path}: header announces shape {shape} ({n_values:,} bytes of "
                                  f"data) but the file holds {len(raw) - header:,}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def read_usps_jf(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read a USPS ``.jf`` text file (gzipped or not): images in the file's own scale, labels.

    Used in :doc:`/book/02_clustering_and_metrics`. The format, as used by DEC, IDEC and DECS:
    a first line ``k d`` (``10 256``: classes, pixels), one line ``label v1 .. vd`` per sample
    with the 16×16 pixels row-major and values in [0, 2], and a last line ``-1``. Returns
    float32 images N×16×16 (values as in the file) and int64 labels N.
    """
    path = Path(path)
    try:
        with _open(path, "rt") as f:
            lines = [line.split() for line in f if line.strip()]
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise DatasetCorruptError(f"cannot read {path}: {error}") from error

    def bad(why: str) -> DatasetCorruptError:
        return DatasetCorruptError(f"{path} is not a USPS .jf file: {why}")

    if len(lines) < 2:
        raise bad("it has fewer than two lines")
    try:
        n_classes, n_pixels = (int(v) for v in lines[0])
    except ValueError:
        raise bad(f"first line is {' '.join(lines[0])!r}, expected '10 256'") from None
    side = math.isqrt(n_pixels)
    if side * side != n_pixels:
        raise bad(f"{n_pixels} pixels per sample is not a square image")
    if lines[-1] != ["-1"]:
        raise bad("last line is not '-1' (truncated file?)")
    rows = lines[1:-1]
    for number, row in enumerate(rows, start=2):
        if len(row) != 1 + n_pixels:
            raise bad(f"line {number} has {len(row)} values, expected 1 + {n_pixels}")
    try:
        table = np.array(rows, dtype=np.float32)
    except ValueError as error:
        raise bad(f"a value is not a number ({error})") from None
    labels = table[:, 0]
    if not np.all((labels == np.round(labels)) & (labels >= 0) & (labels < n_classes)):
        raise bad(f"labels must be whole numbers 0..{n_classes - 1}")
    images = table[:, 1:].reshape(-1, side, side)
    return images, labels.astype(np.int64)


# --------------------------------------------------------------------------------------------
# Loaders, one per format; each returns numpy arrays (images N×C×H×W in [0, 1], labels int64)
# --------------------------------------------------------------------------------------------


def _load_idx(paths: Sequence[Path]) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) pairs of idx files, concatenated in the order given (train, then test)."""
    images, labels = [], []
    for image_path, label_path in zip(paths[0::2], paths[1::2]):
        x, y = read_idx(image_path), read_idx(label_path)
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DatasetCorruptError(f"{image_path} ({x.shape}) and {label_path} ({y.shape}) "
                                      "do not hold one label per image")
        images.append(x)
        labels.append(y)
    x = np.concatenate(images)[:, None].astype(np.float32)
    x /= 255.0
    return x, np.concatenate(labels).astype(np.int64)


def _load_usps(paths: Sequence[Path]) -> tuple[np.ndarray, np.ndarray]:
    """USPS train + test. The files' values lie in [0, 2]; halved and clipped to [0, 1]."""
    parts = [read_usps_jf(p) for p in paths]
    x = np.concatenate([images for images, _ in parts])[:, None]
    x = np.clip(x / 2.0, 0.0, 1.0).astype(np.float32)
    return x, np.concatenate([labels for _, labels in parts])


_YTF_SIDE = 55
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
_YTF_PREFERRED_H5 = ("data4torch.h5", "data.h5")


def _ytf_missing_message(folder: Path, why_root: str) -> str:
    return (
        f"YTF is not available on this machine: {folder} holds neither an HDF5 file nor an "
        "images/ folder.\n\n"
        "YTF (the 41-subject, 10,000-face subset of YouTube Faces used by DEPICT and DECS) has\n"
        "no public download with a checksum; DEPICT's authors distribute it (see\n"
        "https://github.com/herandy/DEPICT, whose code reads it as datasets/YTF/data.h5).\n"
        "Two formats are read:\n"
        f"  (a) an HDF5 file {folder / 'data4torch.h5'} (or data.h5, DEPICT's name, or any\n"
        "      single *.h5 there) with datasets 'data' (N×3×55×55 or N×55×55×3; uint8 0..255,\n"
        "      or float in [0, 1] or [0, 255]) and 'labels'\n"
        "      (subject ids, e.g. 1..41, renumbered 0..k-1 in sorted order);\n"
        f"  (b) a folder {folder / 'images'}{os.sep}<subject>{os.sep}<image files> (png/jpg,\n"
        "      any size; resized to 55×55 RGB; subjects numbered in sorted folder-name order).\n"
        "Put one of them there, or set DECS_DATA to the folder that contains ytf/.\n"
        f"The data root {folder.parent} was chosen by {why_root}."
    )


def _find_ytf_h5(folder: Path) -> Path | None:
    for name in _YTF_PREFERRED_H5:
        if (folder / name).is_file():
            return folder / name
    candidates = sorted(p for p in folder.glob("*.h5") if p.is_file())
    if len(candidates) > 1:
        names = ", ".join(p.name for p in candidates)
        raise DatasetCorruptError(f"{folder} holds several HDF5 files ({names}) and none is named "
                                  "data4torch.h5: rename the one to use, or move the others away")
    return candidates[0] if candidates else None


def _ytf_pixels(data: np.ndarray, where: str) -> np.ndarray:
    """YTF pixels as float32 N×3×55×55 in [0, 1]; accepts channels first or last."""
    if data.ndim == 4 and data.shape[1:] == (3, _YTF_SIDE, _YTF_SIDE):
        pass
    elif data.ndim == 4 and data.shape[1:] == (_YTF_SIDE, _YTF_SIDE, 3):
        data = data.transpose(0, 3, 1, 2)
    else:
        side = _YTF_SIDE
        raise DatasetCorruptError(f"{where}: 'data' has shape {data.shape}, expected "
                                  f"N×3×{side}×{side} (or N×{side}×{side}×3)")
    if data.dtype == np.uint8:
        return data.astype(np.float32) / 255.0
    data = data.astype(np.float32)
    low, high = (float(data.min()), float(data.max())) if data.size else (0.0, 0.0)
    if not (np.isfinite(low) and np.isfinite(high)) or low < 0.0 or high > 255.0:
        raise DatasetCorruptError(f"{where}: pixel values lie in [{low}, {high}]; expected "
                                  "0..255 or [0, 1]")
    # Floats up to 1 are taken as [0, 1] already; larger ones as 0..255.
    return data if high <= 1.0 else data / 255.0


def _renumber(labels: np.ndarray, where: str) -> np.ndarray:
    """Labels as 0..k-1 in sorted order of the original ids (1..41 becomes 0..40)."""
    labels = np.asarray(labels).reshape(-1)
    if labels.dtype.kind == "f" and not np.all(labels == np.round(labels)):
        raise DatasetCorruptError(f"{where}: labels are not whole numbers")
    _, renumbered = np.unique(labels, return_inverse=True)
    return renumbered.reshape(-1).astype(np.int64)


def _read_ytf_h5(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        import h5py
    except ImportError as error:  # h5py is in the [book] and [test] extras
        raise ImportError(f"reading {path} needs h5py: pip install h5py") from error
    try:
        with h5py.File(path, "r") as f:
            absent = [key for key in ("data", "labels") if key not in f]
            if absent:
                raise DatasetCorruptError(
                    f"{path} has no dataset {' or '.join(map(repr, absent))} (it holds "
                    f"{sorted(f.keys())}); expected 'data' and 'labels'")
            data, labels = np.asarray(f["data"]), np.asarray(f["labels"])
    except OSError as error:
        raise DatasetCorruptError(f"cannot read {path} as HDF5: {error}") from error
    x = _ytf_pixels(data, str(path))
    if labels.size != len(x):
        raise DatasetCorruptError(f"{path}: {len(x)} images but {labels.size} labels")
    return x, _renumber(labels, str(path))


def _read_image_folder(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image, UnidentifiedImageError  # Pillow comes with torchvision

    subjects = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subjects:
        raise DatasetCorruptError(f"{folder} has no subject folders; expected "
                                  f"{folder}{os.sep}<subject>{os.sep}<image files>")
    images: list[np.ndarray] = []
    labels: list[int] = []
    for label, subject in enumerate(subjects):
        # Subfolders (YouTube Faces keeps one per video) belong to the same subject.
        files = sorted(p for p in subject.rglob("*") if p.is_file()
                       and p.suffix.lower() in _IMAGE_SUFFIXES and not p.name.startswith("."))
        if not files:
            raise DatasetCorruptError(f"subject folder {subject} holds no images "
                                      f"({', '.join(_IMAGE_SUFFIXES)})")
        for file in files:
            try:
                with Image.open(file) as image:
                    rgb = image.convert("RGB").resize((_YTF_SIDE, _YTF_SIDE), Image.BILINEAR)
            except (OSError, UnidentifiedImageError) as error:
                raise DatasetCorruptError(f"cannot read image {file}: {error}") from error
            images.append(np.asarray(rgb, dtype=np.uint8))
            labels.append(label)
    x = np.stack(images).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    return x, np.asarray(labels, dtype=np.int64)


def _load_ytf(folder: Path, why_root: str) -> tuple[np.ndarray, np.ndarray]:
    """YTF from an HDF5 file in ``folder`` if there is one, else from ``folder/images``."""
    h5 = _find_ytf_h5(folder) if folder.is_dir() else None
    if h5 is not None:
        x, y = _read_ytf_h5(h5)
    elif (folder / "images").is_dir():
        x, y = _read_image_folder(folder / "images")
    else:
        raise DatasetNotFoundError(_ytf_missing_message(folder, why_root))
    info = DATASETS["ytf"]
    k = int(y.max()) + 1 if len(y) else 0
    if (len(y), k) != (info.n_samples, info.n_classes):
        # YTF has no checksum; this is the one check left that it is the paper's version.
        warnings.warn(f"YTF from {h5 or folder / 'images'} has {len(y):,} images of {k} subjects; "
                      f"the paper's has {info.n_samples:,} of {info.n_classes}", stacklevel=3)
    return x, y


# --------------------------------------------------------------------------------------------
# Subsets
# --------------------------------------------------------------------------------------------


def _allocate(counts: np.ndarray, n: int) -> np.ndarray:
    """How many of n samples to take per class: proportional to ``counts`` (largest remainders),
    at least one per class when n >= k, never more than a class has."""
    quota = n * counts / counts.sum()
    take = np.floor(quota).astype(np.int64)
    floor = 1 if n >= len(counts) else 0
    take = np.maximum(take, np.minimum(floor, counts))
    # Hand out the remaining samples (or take back the excess the minimum of one created) one
    # at a time, always to the class furthest below (above) its exact quota.
    while take.sum() < n:
        room = np.where(take < counts, quota - take, -np.inf)
        take[np.argmax(room)] += 1
    while take.sum() > n:
        excess = np.where(take > floor, take - quota, -np.inf)
        take[np.argmax(excess)] -= 1
    return take


def stratified_indices(labels: torch.Tensor | np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Indices of a class-stratified random subset of n samples, in increasing order.

    Used in :doc:`/book/02_clustering_and_metrics`. Each class gets a share of n proportional to
    its frequency (largest-remainder rounding), at least one sample per class when n >= k.
    Which samples is drawn with ``numpy.random.default_rng(seed)``: the same seed gives the same
    subset. Sorting the indices keeps the dataset's own order.
    """
    labels = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels).reshape(-1)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"subset must be a whole number of samples, got {n!r}")
    if not 1 <= n <= len(labels):
        raise ValueError(f"subset={n} is not possible: the dataset has {len(labels):,} samples "
                         "(ask for 1 to that many, or subset=None for all)")
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    take = _allocate(counts, int(n))
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(np.flatnonzero(inverse == c), size=int(t), replace=False)
              for c, t in enumerate(take) if t > 0]
    return np.sort(np.concatenate(chosen))


# --------------------------------------------------------------------------------------------
# The entry points
# --------------------------------------------------------------------------------------------


def is_available(name: str, root: str | os.PathLike[str] | None = None) -> bool:
    """Whether :func:`load` would find the dataset's files (checksums included, except YTF).

    Used in :doc:`/book/02_clustering_and_metrics`: the book shows a dataset that is not
    available as "not available on this machine" instead of running on something else.
    """
    info = DATASETS[canonical_name(name)]
    root_path, why_root = _resolve_root(root)
    if info.name == "ytf":
        folder = root_path / info.folder
        try:
            return folder.is_dir() and (_find_ytf_h5(folder) is not None
                                        or (folder / "images").is_dir())
        except DatasetCorruptError:
            return False
    try:
        _check_files(info, root_path, why_root)
    except (DatasetNotFoundError, DatasetCorruptError):
        return False
    return True


def load(name: str, root: str | os.PathLike[str] | None = None, subset: int | None = None,
         seed: int = 0, *, download: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a dataset of the paper as ``(x, y)``.

    Used in :doc:`/book/02_clustering_and_metrics`.

    Args:
        name: ``"mnist"`` (train + test, 70,000), ``"mnist-test"`` (10,000), ``"usps"``
            (train + test, 9,298), ``"fashion-mnist"`` (70,000) or ``"ytf"`` (10,000); case,
            ``_`` and common aliases such as ``"fmnist"`` are accepted.
        root: the data root; see :func:`data_root` for the default (``$DECS_DATA``, then
            ``data/`` in the repository).
        subset: if given, a class-stratified random subset of this many samples
            (:func:`stratified_indices`), in the dataset's order.
        seed: the seed of that subset.
        download: fetch missing files (not YTF) into ``root`` first, each from its sources
            in order (``DataFile.urls``) until one gives the file with the published
            sha256; an interrupted or wrong download leaves no file behind. Off by default: the
            offline path never touches the network.

    Returns:
        ``x``: float32 tensor N×C×H×W with values in [0, 1] (MNIST and Fashion-MNIST /255,
        USPS /2 from its [0, 2] scale, YTF /255); ``y``: int64 tensor of labels 0..k-1.

    Raises:
        ValueError: unknown name, or ``subset`` larger than the dataset.
        DatasetNotFoundError: files missing; the message says which, where and how to get them
            (after a failed download: every source tried, why each failed, and what to do).
        DatasetCorruptError: a file has the wrong checksum or cannot be parsed.
    """
    info = DATASETS[canonical_name(name)]
    root_path, why_root = _resolve_root(root)
    if info.name == "ytf":
        x, y = _load_ytf(root_path / info.folder, why_root)
    else:
        failures: list[str] = []
        if download:
            failures = _download(info, root_path)
        paths = _check_files(info, root_path, why_root, failures)
        loader = _load_usps if info.name == "usps" else _load_idx
        x, y = loader(paths)
    if subset is not None:
        keep = stratified_indices(y, subset, seed)
        x, y = x[keep], y[keep]
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), torch.from_numpy(y)
