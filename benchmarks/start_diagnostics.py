"""What a pretrained network's start looks like to DECS's loss, rather than its k-means ACC.

    python benchmarks/start_diagnostics.py --dataset usps --profile cpu --seed 0 \\
        --network results/usps/pretrained/cpu-seed0.pt --label "ours, cpu seed 0" \\
        --run results/usps/decs/cpu-seed0.json --out results/starts/usps/ours-cpu-seed0.json

(``results/usps/pretrained/cpu-seed0.pt`` is no longer committed: the chapters load the paper
run's network. ``python -m decs train --dataset usps --profile cpu --seed 0 --results /tmp/cpu-seed0``
makes the pretraining checkpoint again, ``checkpoints/usps/cpu-seed0/pretrain.pt``, without
touching the committed record.)
``--network`` is a pretrained autoencoder of ours: a committed model file
(``results/<dataset>/pretrained/*.pt``), a pretraining checkpoint (``checkpoints/.../pretrain.pt``)
or the authors' network converted by ``benchmarks/authors_tf_weights.py --to-ours``. The start is
made exactly as our loop makes it (:func:`decs.runs.pretrained_autoencoder` with the network as
``start``, then :func:`decs.passes.embed` and :func:`decs.train.kmeans_init` with the run's seed), and
described by :func:`decs.stability.start_profile` (the kernel's scale, q's entropy, Otsu's t, the
undecided share, each centroid's pull), its scores and its confusion matrix, with the classes that
share clusters named. ``--run`` names the record of the run that started from this network in our
loop (its k-means ACC must be the one computed here: the same start) and ``--authors-run`` the
authors' record of the run that made it (their loop); what each run ended with is copied beside the
start, so the page can ask which features of a start go with keeping every cluster
(:doc:`/book/dying_clusters`).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from decs import data
from decs.config import get_config
from decs.files import write_record
from decs.metrics import confusion, evaluate
from decs.passes import embed
from decs.paths import record_command
from decs.provenance import environment_info
from decs.runs import pretrained_autoencoder
from decs.stability import start_profile
from decs.train import kmeans_init

ROOT = Path(__file__).resolve().parents[1]


def network_state(path: Path) -> dict:
    """The autoencoder state dict in a model file, a pretraining checkpoint or a converted network."""
    saved = torch.load(path, map_location="cpu", weights_only=False)
    for key in ("autoencoder", "model"):
        if isinstance(saved, dict) and key in saved:
            return saved[key]
    raise SystemExit(f"{path}: no 'autoencoder' or 'model' state dict in it (a model file, a pretrain.pt "
                     "checkpoint or a file of benchmarks/authors_tf_weights.py --to-ours)")


def shared_classes(conf: list[list[int]]) -> dict:
    """Which classes share clusters at a start: each cluster's majority class; the classes that are the
    majority of two or more clusters (split) and of none (merged into another class's cluster), with the
    cluster that holds most of each merged class."""
    w = np.asarray(conf)
    major = w.argmax(1)
    used = w.sum(1) > 0
    counts = np.bincount(major[used], minlength=w.shape[1])
    merged = [int(c) for c in np.flatnonzero(counts == 0)]
    return {"cluster_majority_class": [int(c) if u else None for c, u in zip(major, used)],
            "split_classes": [int(c) for c in np.flatnonzero(counts >= 2)],
            "merged_classes": merged,
            "merged_into_cluster": {str(c): int(w[:, c].argmax()) for c in merged}}


def outcome_ours(path: Path) -> dict:
    rec = json.loads(path.read_text())
    sizes = rec["history"][-1]["cluster_sizes"]
    return {"record": path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name,
            "start_acc": rec["kmeans_on_embedding"]["acc"], "final_acc": rec["final"]["acc"],
            "final_nmi": rec["final"]["nmi"], "clusters_used": int(np.count_nonzero(sizes)),
            "smallest_cluster": int(min(sizes)), "n_clusters": rec["n_clusters"]}


def outcome_authors(path: Path) -> dict:
    rec = json.loads(path.read_text())
    out = {"record": path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name,
           "start_acc": rec["start"]["acc"], "final_acc": rec["their_final"]["acc"],
           "final_nmi": rec["their_final"]["nmi"]}
    if "final_cluster_sizes" in rec:
        out.update(clusters_used=rec["clusters_used"], smallest_cluster=int(min(rec["final_cluster_sizes"])))
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--profile", default="cpu", help="the settings of the loop the start is for")
    p.add_argument("--seed", type=int, default=0, help="k-means's seed, as the run's")
    p.add_argument("--network", required=True, type=Path)
    p.add_argument("--label", required=True, help="whose network, e.g. 'theirs, seed 1' (for the page)")
    p.add_argument("--code", choices=["ours", "authors"], required=True, help="whose pretraining made it")
    p.add_argument("--run", type=Path, default=None, help="the record of our loop's run from this network")
    p.add_argument("--authors-run", type=Path, default=None, help="the authors' record of the run that made it")
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    cfg = get_config(args.profile)
    x, y = data.load(args.dataset)
    y = np.asarray(y)
    k = int(len(np.unique(y)))
    state = network_state(args.network)
    model, _, _ = pretrained_autoencoder(x, cfg, args.seed, start=state)
    z = embed(model.encoder, x, cfg.eval_batch_size)
    centroids, labels = kmeans_init(z, k, cfg.kmeans_n_init, args.seed)
    conf = confusion(y, labels, k)
    rec = {
        "kind": "start-diagnostics", "dataset": args.dataset, "profile": args.profile, "seed": args.seed,
        "network": {"label": args.label, "code": args.code, "file": args.network.name,
                    "sha256": hashlib.sha256(args.network.read_bytes()).hexdigest()},
        "start": {**evaluate(y, labels), "cluster_sizes": np.bincount(labels, minlength=k).tolist(),
                  **shared_classes(conf), "confusion": conf},
        "seen_by_the_loss": start_profile(z.float(), centroids.float(), cfg.alpha, cfg.lam, cfg.batch_size,
                                          cfg.otsu_bins, args.seed),
        "outcome": {},
        "command": record_command("python benchmarks/start_diagnostics.py",
                                  argv if argv is not None else sys.argv[1:]),
        "environment": environment_info(torch.device("cpu")),
        "wall_time_s": None, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if args.run is not None:
        rec["outcome"]["our_loop"] = ours = outcome_ours(args.run)
        if abs(ours["start_acc"] - rec["start"]["acc"]) > 0.002:
            raise SystemExit(f"{args.run} started at k-means ACC {ours['start_acc']}, this start is "
                             f"{rec['start']['acc']}: not the same start (other seed or network?)")
    if args.authors_run is not None:
        rec["outcome"]["their_loop"] = outcome_authors(args.authors_run)
    rec["wall_time_s"] = round(time.perf_counter() - t0, 1)
    write_record(rec, args.out)
    print(json.dumps({"out": str(args.out), "start": rec["start"]["acc"], **{
        k: v for k, v in rec["seen_by_the_loss"].items() if not isinstance(v, list)}}))
    return rec


if __name__ == "__main__":
    main()
