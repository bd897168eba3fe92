"""How long the estimator's pretraining has to be on a few thousand small images, as JSON.

    python benchmarks/estimator_length.py --steps 1600 7400 --seeds 0 1 2 \\
        --out results/benchmarks/estimator-length-digits.json

Fits ``decs.DECS(n_clusters=10, random_state=seed)`` as a user would, on scikit-learn's 8 × 8
handwritten digits (1,797 images, shipped with scikit-learn, neither USPS nor MNIST), with the
active profile's settings (``--profile``, default cpu) except the pretraining, which is given in
optimiser steps and run as the whole epochs that hold them (``ceil(steps / batches per epoch)``).
On 1,797 images an epoch is 8 steps of 256, so the profile's 200 epochs are 1,600 steps; USPS's
200 epochs are 7,400 (37 per epoch), the length at which the book's USPS runs keep their clusters as
often as the authors' code does (:doc:`/book/dying_clusters`). Each fit's final ACC, NMI, clusters
in use, smallest cluster (and at iteration 0, the k-means start) and its seconds are kept, beside k-means on the
pixels. ``--reseed-empty`` or ``--balance B`` fits with one of this book's remedies, which the
estimator's warning names (not the paper's method). Read in :doc:`/book/dying_clusters` ("How long the estimator pretrains").
"""
from __future__ import annotations

import argparse
import math
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from decs import DECS
from decs.config import get_config
from decs.files import report_record
from decs.metrics import evaluate
from decs.paths import record_command
from decs.provenance import environment_info


def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's handwritten digits as N×1×8×8 images in [0, 1] (their values are 0–16), and labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype(np.float32)[:, None], d.target


def fit(x: np.ndarray, y: np.ndarray, seed: int, epochs: int, profile: str, maxiter: int | None,
        **params) -> dict:
    """One user's fit (``params``: further DECS parameters, e.g. a remedy the warning names): its
    scores, clusters and time, and the warning it gave (if any)."""
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = DECS(n_clusters=10, random_state=seed, profile=profile, pretrain_epochs=epochs,
                     maxiter=maxiter, **params).fit(x)
    sizes = np.bincount(model.labels_, minlength=10)
    return {"seed": seed, "pretrain_epochs": epochs, **evaluate(y, model.labels_),
            "clusters_used": model.clusters_used_, "smallest_cluster": int(sizes.min()),
            "smallest_cluster_at_iteration_0": int(min(model.history_[0]["cluster_sizes"])),
            "warning": next((str(w.message).split(":")[0] for w in caught if issubclass(w.category, UserWarning)),
                            None),
            "seconds": round(time.perf_counter() - t0, 1)}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, nargs="+", default=[1600, 7400], help="pretraining lengths in steps")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--profile", default="cpu")
    p.add_argument("--maxiter", type=int, default=None, help="clustering iterations (default: the profile's)")
    p.add_argument("--reseed-empty", action="store_true", help="the remedy reseed_empty=True (not the paper's)")
    p.add_argument("--balance", type=float, default=0.0, help="the remedy balance=B (not the paper's)")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    params = {k: v for k, v in {"reseed_empty": args.reseed_empty, "balance": args.balance}.items() if v}
    torch.set_num_threads(1)
    x, y = digits()
    cfg = get_config(args.profile)
    per_epoch = math.ceil(len(x) / cfg.batch_size)
    t_all = time.perf_counter()
    runs = [fit(x, y, seed, math.ceil(steps / per_epoch), args.profile, args.maxiter, **params)
            for steps in args.steps for seed in args.seeds]
    for r in runs:
        r["pretrain_steps"] = r["pretrain_epochs"] * per_epoch
    from sklearn.cluster import KMeans

    pixels = [evaluate(y, KMeans(10, n_init=cfg.kmeans_n_init, random_state=s).fit_predict(x.reshape(len(x), -1)))
              for s in args.seeds]
    report = {
        "command": record_command("python benchmarks/estimator_length.py", argv if argv is not None else []),
        "environment": environment_info(torch.device("cpu")),
        "dataset": "sklearn digits (load_digits: 1,797 images of 8 × 8, values / 16)", "n": len(x),
        "profile": args.profile, "batch_size": cfg.batch_size, "steps_per_epoch": per_epoch,
        "maxiter": args.maxiter or cfg.maxiter, "threads": 1,
        "estimator_params": {"n_clusters": 10, **params},
        "runs": runs, "kmeans_on_pixels": [{"seed": s, **e} for s, e in zip(args.seeds, pixels)],
        "wall_time_s": round(time.perf_counter() - t_all, 1),
    }
    report_record(report, args.out)
    return report


if __name__ == "__main__":
    import sys
    main(sys.argv[1:])
