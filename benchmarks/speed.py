"""Seconds per pretraining epoch and per clustering iteration on this machine, as JSON.

    python benchmarks/speed.py                      # USPS and MNIST-test, on the default device
    python benchmarks/speed.py --datasets usps --epochs 2 --iterations 60
    python benchmarks/speed.py --datasets usps --precisions fp32 bf16 --rounds 2   # bf16 autocast beside fp32

Pretraining: full epochs over the dataset (batch 256, augmentation on). Clustering: DECS
iterations (batch 256, augmentation, Otsu pass), timed with and without the full-data
evaluation every 30 iterations ("without" subtracts the two evaluations every run makes, at
its start and end, using the measured time of one full-data pass). Each pretraining row also
holds the operations of one step on a batch of 256 (:func:`decs.device.pretrain_step_flops`) and
the GFLOP/s that makes; the environment names the CPU, so the reproducibility page can set them
beside its float32 peak. ``--out FILE`` also writes the JSON to a file (the committed ones are
under ``results/benchmarks/``).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from decs.config import get_config
from decs.data import load
from decs.device import get_device, make_generator, pretrain_step_flops
from decs.files import report_record
from decs.models import ConvAutoencoder
from decs.passes import predict
from decs.provenance import benchmark_command, environment_info
from decs.train import cluster, pretrain


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench(dataset: str, epochs: int, iterations: int, device: torch.device, subset: int | None = None,
          precision: str = "fp32") -> dict:
    x, y = load(dataset, subset=subset)
    x = x.to(device)
    cfg = get_config("paper", pretrain_epochs=epochs, maxiter=iterations, checkpoint_every=10**9,
                     precision=precision)
    model = ConvAutoencoder(tuple(x.shape[1:])).to(device)
    gen = make_generator(device, 0)
    # warm-up: one epoch on a slice, so one-off costs (allocations, kernel selection) are not timed
    pretrain(model, x[:1024], cfg.replace(pretrain_epochs=1), gen, progress=False)
    _sync(device)
    t0 = time.perf_counter()
    pretrain(model, x, cfg, gen, progress=False)
    _sync(device)
    per_epoch = (time.perf_counter() - t0) / epochs
    centroids = torch.randn(int(y.max()) + 1, cfg.embedding_dim, device=device)
    per_step = per_epoch / -(-x.shape[0] // cfg.batch_size)
    flop = pretrain_step_flops(ConvAutoencoder(tuple(x.shape[1:])).to(device), x[:cfg.batch_size])
    out = {"dataset": dataset, "n": int(x.shape[0]), "precision": precision,
           "pretrain_s_per_epoch": round(per_epoch, 3), "pretrain_s_per_step": round(per_step, 4),
           "pretrain_gflop_per_step": round(flop / 1e9, 3), "pretrain_gflops": round(flop / 1e9 / per_step, 1)}
    predict(model.encoder, centroids, x, cfg.alpha, cfg.eval_batch_size)  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    predict(model.encoder, centroids, x, cfg.alpha, cfg.eval_batch_size)
    _sync(device)
    eval_s = time.perf_counter() - t0
    out["full_data_eval_s"] = round(eval_s, 3)
    for label, interval, evals_not_counted in (("cluster_s_per_iteration", 10**9, 2),
                                               ("cluster_s_per_iteration_with_eval", 30, 0)):
        c = cfg.replace(update_interval=interval)
        cluster(model.encoder, centroids, x, c.replace(maxiter=5), gen, progress=False)  # warm-up
        _sync(device)
        t0 = time.perf_counter()
        cluster(model.encoder, centroids, x, c, gen, progress=False)
        _sync(device)
        out[label] = round((time.perf_counter() - t0 - evals_not_counted * eval_s) / iterations, 4)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["usps", "mnist-test"])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--iterations", type=int, default=150)
    p.add_argument("--device", default=None)
    p.add_argument("--subset", type=int, default=None, help="time on a class-stratified subset (a quick check)")
    p.add_argument("--precisions", nargs="+", default=None, choices=["fp32", "bf16"],
                   help="time each (Config.precision), alternating, --rounds times; default fp32")
    p.add_argument("--rounds", type=int, default=None, help="repeat the alternation (default 1)")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON to this file")
    args = p.parse_args()
    device = get_device(args.device)
    t0 = time.perf_counter()
    results = [bench(d, args.epochs, args.iterations, device, args.subset, prec)
               for d in args.datasets for _ in range(args.rounds or 1)
               for prec in (args.precisions or ["fp32"])]
    report = {"command": benchmark_command("benchmarks/speed.py", args),
              "environment": environment_info(device),
              "wall_time_s": round(time.perf_counter() - t0, 1), "results": results}
    report_record(report, args.out)


if __name__ == "__main__":
    main()
