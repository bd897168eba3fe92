"""Where a pretraining step's time goes: one pretraining epoch under ``torch.profiler``, each
operator's own time summed into a few named parts (convolutions forward and backward, batch
norm, augmentation, Adam, ...), per precision, as JSON.

    python benchmarks/step_profile.py --out results/benchmarks/step-profile-cpu-2cores.json
    python benchmarks/step_profile.py --precisions fp32 --epochs 1 --subset 600   # a quick look

It profiles :func:`decs.train.pretrain` itself (the `paper` settings: batch 256, augmentation
on), so what it splits is exactly the step every run takes. Each part is the sum of the
operators' *self* time (time in the operator, not in the operators it calls), so the parts add
up to the profiled time; the profiler's own overhead is in that total, and the epoch's seconds
without the profiler are recorded beside it. It profiles the CPU (on a GPU the time that
matters is the kernels', which this does not split). Shown in :doc:`/book/reproducibility`.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from decs.config import get_config
from decs.data import load
from decs.device import get_device, make_generator
from decs.files import report_record
from decs.models import ConvAutoencoder
from decs.provenance import benchmark_command, environment_info
from decs.train import pretrain

# The parts a step is split into. An operator's own time goes to the first part whose pattern
# its name contains; an operator that matches none goes to the part of the nearest operator it
# was called from that does (Adam's arithmetic is called from "Optimizer.step#Adam.step"), and
# to "everything else" when none does. Backward before forward: "ConvolutionBackward0" contains
# "convolution".
PARTS = [
    ("convolutions, backward", ("convolution_backward", "convolutionbackward")),
    ("convolutions, forward", ("convolution", "conv2d", "conv_transpose")),
    ("batch norm", ("batch_norm", "batchnorm")),
    ("max pooling", ("max_pool", "maxpool")),
    ("fully connected", ("addmm", "aten::mm", "linear")),
    ("ReLU", ("relu", "threshold", "clamp_min")),
    ("augmentation", ("grid_sampler", "affine_grid")),
    ("Adam", ("optimizer.", "adam")),
    ("copies and casts", ("_to_copy", "aten::to", "copy_")),
    ("loss", ("mse_loss", "mseloss")),
]
OTHER = "everything else (indexing, reshapes, autograd bookkeeping, ...)"


def part_of(event) -> str:
    """The part of :data:`PARTS` a profiled operator's own time is counted in."""
    while event is not None:
        name = event.name.lower()
        for part, patterns in PARTS:
            if any(p in name for p in patterns):
                return part
        event = event.cpu_parent
    return OTHER


def profile_epoch(x: torch.Tensor, precision: str, epochs: int, device: torch.device) -> dict:
    cfg = get_config("paper", pretrain_epochs=epochs, checkpoint_every=10**9, precision=precision)
    model = ConvAutoencoder(tuple(x.shape[1:])).to(device)
    gen = make_generator(device, 0)
    pretrain(model, x[:1024], cfg.replace(pretrain_epochs=1), gen, progress=False)  # warm-up
    t0 = time.perf_counter()
    pretrain(model, x, cfg, gen, progress=False)
    plain = (time.perf_counter() - t0) / epochs
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        pretrain(model, x, cfg, gen, progress=False)
    parts: dict[str, float] = {}
    for ev in prof.events():
        part = part_of(ev)
        parts[part] = parts.get(part, 0.0) + ev.self_cpu_time_total / 1e6 / epochs
    total = sum(parts.values())
    top = sorted(((ev.key, ev.self_cpu_time_total / 1e6 / epochs) for ev in prof.key_averages()),
                 key=lambda kv: -kv[1])[:12]
    return {"precision": precision, "n": int(x.shape[0]), "epochs": epochs,
            "s_per_epoch_without_profiler": round(plain, 3),
            "s_per_epoch_profiled": round(total, 3),
            "parts_s_per_epoch": {k: round(v, 4) for k, v in sorted(parts.items(), key=lambda kv: -kv[1])},
            "top_operators_s_per_epoch": {k: round(v, 4) for k, v in top}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="usps")
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    p.add_argument("--epochs", type=int, default=2, help="epochs timed, then profiled (each)")
    p.add_argument("--subset", type=int, default=None, help="a class-stratified subset (a quick check)")
    p.add_argument("--device", default=None, help="default cpu")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON to this file")
    args = p.parse_args()
    device = get_device(args.device or "cpu")
    x, _ = load(args.dataset, subset=args.subset)
    x = x.to(device)
    t0 = time.perf_counter()
    rows = [profile_epoch(x, prec, args.epochs, device) for prec in args.precisions]
    report = {"command": benchmark_command("benchmarks/step_profile.py", args),
              "dataset": args.dataset, "batch_size": get_config("paper").batch_size,
              "environment": environment_info(device),
              "wall_time_s": round(time.perf_counter() - t0, 1), "profiles": rows}
    report_record(report, args.out)


if __name__ == "__main__":
    main()
