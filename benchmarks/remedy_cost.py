"""What this book's remedies cost per DECS iteration, as JSON.

    python benchmarks/remedy_cost.py --out results/benchmarks/remedy-cost-cpu.json

Times DECS clustering iterations on all of USPS (batch 256, augmentation, no evaluation
between the first and the last) for the protocol's settings and for each remedy of
:doc:`/book/dying_clusters` (``balance=1.0``, ``reseed_empty=true``), from one network and one
set of centroids. The variants take turns, ``--repeats`` times, so that a machine that slows
down or speeds up during the measurement affects each of them alike; the record keeps every
timing and reports each variant's median and its ratio to the protocol's median.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from decs.config import get_config
from decs.data import load
from decs.device import get_device, make_generator
from decs.files import report_record
from decs.models import ConvAutoencoder
from decs.passes import predict
from decs.paths import record_command
from decs.provenance import environment_info
from decs.train import cluster

VARIANTS = {"protocol": {}, "balance=1.0": {"balance": 1.0}, "reseed_empty=true": {"reseed_empty": True}}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="usps")
    p.add_argument("--iterations", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--subset", type=int, default=None, help="a class-stratified subset (a quick check)")
    p.add_argument("--device", default=None)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    device = get_device(args.device)
    x, y = load(args.dataset, subset=args.subset)
    x = x.to(device)
    k = int(y.max()) + 1
    torch.manual_seed(0)
    model = ConvAutoencoder(tuple(x.shape[1:])).to(device)
    # centroids on k samples' embeddings, so that no cluster starts empty
    base = get_config("paper", maxiter=args.iterations, update_interval=10**9, checkpoint_every=10**9)
    with torch.no_grad():
        model.eval()
        centroids0 = model.encoder(x[torch.randperm(len(x))[:k]]).clone()
    predict(model.encoder, centroids0, x, base.alpha, base.eval_batch_size)  # warm-up
    state0 = {n: t.clone() for n, t in model.encoder.state_dict().items()}
    cluster(model.encoder, centroids0.clone(), x, base.replace(maxiter=5), make_generator(device, 0),
            progress=False)  # warm-up: one-off costs (allocations, kernel selection) are not timed
    seconds = {v: [] for v in VARIANTS}
    t_all = time.perf_counter()
    for _ in range(args.repeats):
        for name, changes in VARIANTS.items():
            model.encoder.load_state_dict(state0)
            cfg = base.replace(**changes)
            gen = make_generator(device, 0)
            t0 = time.perf_counter()
            cluster(model.encoder, centroids0.clone(), x, cfg, gen, progress=False)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds[name].append(time.perf_counter() - t0)
    per_it = {v: statistics.median(s) / args.iterations for v, s in seconds.items()}
    report = {
        "command": record_command("python benchmarks/remedy_cost.py", argv if argv is not None else []),
        "environment": environment_info(device),
        "dataset": args.dataset, "n": int(x.shape[0]), "iterations": args.iterations,
        "repeats": args.repeats, "wall_time_s": round(time.perf_counter() - t_all, 1),
        "note": "each timing includes the two full-data evaluations every run makes (first, last)",
        "seconds": {v: [round(t, 3) for t in s] for v, s in seconds.items()},
        "s_per_iteration_median": {v: round(t, 5) for v, t in per_it.items()},
        "ratio_to_protocol": {v: round(t / per_it["protocol"], 3) for v, t in per_it.items()},
    }
    report_record(report, args.out)
    return report


if __name__ == "__main__":
    import sys
    main(sys.argv[1:])
