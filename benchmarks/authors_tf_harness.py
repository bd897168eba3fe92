"""Run the authors' ``run_exp.py`` with a chosen seed and an offline MNIST, leaving their files as they are.

    cd <a copy of their DECS/ folder>
    python authors_tf_harness.py [--seed S] [--mnist-dir DIR] -- --dataset mnist-test --trials 1 ...

``benchmarks/authors_tf.py`` starts this with the authors' Python (TensorFlow 2.15) in a temporary
copy of their folder; nothing here is their code. It changes two things around their code, and the
record written by ``authors_tf.py`` names both:

* ``--seed S``: their ``run_exp.py`` calls ``seed.set_seed()``, which seeds Python, NumPy and PyTorch
  with 2333. Here ``seed.set_seed`` is wrapped before ``run_exp.py`` runs, so that call seeds with
  ``S`` instead: a new draw of the same code (Keras draws its initial weights from Python's
  ``random`` when no TensorFlow seed is set, so the network changes with ``S``).
* ``--mnist-dir DIR``: their ``load_mnist``/``load_mnist_test`` call
  ``tensorflow.keras.datasets.mnist.load_data()``, which downloads ``mnist.npz``. This machine has no
  network, so ``load_data`` is replaced by a reader of the original idx files in ``DIR`` (the same
  70,000 ``uint8`` images and labels, in the same order, as Keras's ``mnist.npz``).

With ``--labels-out FILE`` it also keeps what their clustering loop does not write out: their
``FcDEC.fit`` is wrapped so that the labels of its k-means start and the labels it returns are
saved (``.npz``, with the true labels) after it returns. Their ``KMeans`` is wrapped by a subclass
that remembers its last ``fit_predict``; neither wrapper draws a random number, so the run is the
one it would be without them.
"""
from __future__ import annotations

import argparse
import os
import runpy
import sys
from pathlib import Path


def mnist_from(folder: str):
    """``keras.datasets.mnist.load_data`` read from the original idx files in ``folder``."""
    sys.path.append(str(Path(__file__).resolve().parents[1]))  # this project's decs, after their folder
    from decs.data import read_idx

    def load_data(path: str = "mnist.npz"):
        part = {k: read_idx(os.path.join(folder, f"{k}-ubyte.gz")) for k in (
            "train-images-idx3", "train-labels-idx1", "t10k-images-idx3", "t10k-labels-idx1")}
        return ((part["train-images-idx3"], part["train-labels-idx1"]),
                (part["t10k-images-idx3"], part["t10k-labels-idx1"]))
    return load_data


def keep_labels(out: str) -> None:
    """Wrap their ``FcDEC.fit`` (and the ``KMeans`` it calls) to save the start's and the end's labels."""
    import numpy as np

    import FcDEC  # their FcDEC.py: DECS's base class, whose fit is the clustering loop

    class RememberingKMeans(FcDEC.KMeans):
        last = None

        def fit_predict(self, *a, **kw):
            labels = super().fit_predict(*a, **kw)
            RememberingKMeans.last = np.copy(labels)
            return labels

    their_fit = FcDEC.FcDEC.fit

    def fit(self, x, y=None, *a, **kw):
        y_pred = their_fit(self, x, y, *a, **kw)
        np.savez(out, y=np.asarray(y), start=RememberingKMeans.last, final=np.asarray(y_pred))
        print(f"[harness] saved the start's and the final labels in {out}", flush=True)
        return y_pred

    FcDEC.KMeans = RememberingKMeans
    FcDEC.FcDEC.fit = fit


def main() -> None:
    argv = sys.argv[1:]
    theirs = argv[argv.index("--") + 1:] if "--" in argv else []
    ours = argv[:argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=None, help="the seed their set_seed() uses (theirs: 2333)")
    p.add_argument("--mnist-dir", default=None, help="a folder with MNIST's four original idx .gz files")
    p.add_argument("--script", default="run_exp.py", help="their script to run (in the current folder)")
    p.add_argument("--labels-out", default=None,
                   help="save the start's and the end's cluster labels of their fit here (.npz)")
    args = p.parse_args(ours)
    sys.path.insert(0, os.getcwd())  # their modules import each other from their folder
    if args.seed is not None:
        import seed  # their seed.py

        their_set_seed = seed.set_seed
        seed.set_seed = lambda seed=2333: their_set_seed(args.seed)
        print(f"[harness] their set_seed() seeds with {args.seed} instead of 2333", flush=True)
    if args.mnist_dir is not None:
        from tensorflow.keras.datasets import mnist

        mnist.load_data = mnist_from(args.mnist_dir)
        print(f"[harness] keras.datasets.mnist.load_data reads the idx files in {args.mnist_dir}", flush=True)
    if args.labels_out is not None:
        keep_labels(args.labels_out)
    sys.argv = [args.script, *theirs]
    runpy.run_path(args.script, run_name="__main__")


if __name__ == "__main__":
    main()
