"""Seconds per DECS clustering iteration with 1 and with 2 (or more) processes, as JSON.

    python benchmarks/distributed_speed.py results/benchmarks/distributed-cpu.json
    python benchmarks/distributed_speed.py /tmp/d.json --worlds 1 2 --iterations 100 --threads 1

Every world size trains on the same global batch (``--batch-size``, default 256, cut into one
shard per process) from the same randomly initialised encoder and centroids: the work per
iteration is the same, only how many processes share it changes. Each world size runs as its
own ``torch.distributed.run`` (torchrun) job: with backend gloo on the CPU, nccl on CUDA
(:mod:`decs.distributed`). Seconds per iteration are (t(w + N) − t(w)) / N for a short run of w
iterations and a longer one of w + N, after an untimed run of w, so start-up, the two
full-data evaluations every run makes and the first slow iterations cancel. ``--threads`` sets each process's intra-op
threads (OMP_NUM_THREADS too): compare world sizes at the same total cores, and say so.
Read by :doc:`/book/distributed`.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve()


def _worker(args) -> None:
    """One world size: time ``cluster`` twice (w and w + N iterations), rank 0 writes the result."""
    torch.set_num_threads(args.threads)
    from decs import distributed
    from decs.config import get_config
    from decs.data import load
    from decs.device import get_device, make_generator
    from decs.models import ConvAutoencoder
    from decs.train import cluster

    device = get_device(args.device)
    distributed.init_from_env(device)
    x, y = load(args.dataset, subset=args.subset)
    x = x.to(device)
    cfg = get_config("paper", batch_size=args.batch_size, checkpoint_every=10**9, update_interval=10**9)
    torch.manual_seed(0)
    model = ConvAutoencoder(tuple(x.shape[1:]), cfg.filters, cfg.embedding_dim).to(device)
    centroids = torch.randn(int(y.max()) + 1, cfg.embedding_dim, generator=torch.Generator().manual_seed(1)).to(device)
    seconds = []
    # an untimed run first (allocations, kernel selection, the process group's first messages)
    for maxiter in (args.warmup, args.warmup, args.warmup + args.iterations):
        encoder = ConvAutoencoder(tuple(x.shape[1:]), cfg.filters, cfg.embedding_dim).to(device).encoder
        encoder.load_state_dict(model.encoder.state_dict())
        distributed.barrier()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        cluster(encoder, centroids, x, cfg.replace(maxiter=maxiter), make_generator(device, 0), progress=False)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        distributed.barrier()
        seconds.append(time.perf_counter() - t0)
    if distributed.is_main():
        Path(args.worker_out).write_text(json.dumps({
            "world_size": distributed.world_size(), "backend": distributed.backend(), "n": int(x.shape[0]),
            "s_per_iteration": round((seconds[2] - seconds[1]) / args.iterations, 5),
            "seconds": [round(s, 2) for s in seconds[1:]]}))


def _run_world(world: int, args, tmp: Path) -> dict:
    out = tmp / f"world{world}.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(world),
           str(HERE), "--worker-out", str(out), "--dataset", args.dataset, "--iterations", str(args.iterations),
           "--warmup", str(args.warmup), "--batch-size", str(args.batch_size), "--threads", str(args.threads)]
    cmd += ["--subset", str(args.subset)] if args.subset else []
    cmd += ["--device", args.device] if args.device else []
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    subprocess.run(cmd, check=True, env=env, cwd=HERE.parent.parent)
    return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", nargs="?", type=Path, help="where the JSON record goes")
    p.add_argument("--worlds", type=int, nargs="+", default=[1, 2], help="numbers of processes to time")
    p.add_argument("--dataset", default="usps")
    p.add_argument("--subset", type=int, default=None, help="a class-stratified subset (a quick check)")
    p.add_argument("--iterations", type=int, default=100, help="N: iterations timed")
    p.add_argument("--warmup", type=int, default=10, help="w: iterations of the short run subtracted")
    p.add_argument("--batch-size", type=int, default=256, help="the global batch, shared by the processes")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads of each process")
    p.add_argument("--device", default=None, help="default: DECS_DEVICE, else cuda if available, else cpu")
    p.add_argument("--worker-out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker_out:
        return _worker(args)
    if args.out is None:
        p.error("give the path of the JSON record to write")
    from decs.device import get_device
    from decs.paths import record_command
    from decs.provenance import environment_info

    with tempfile.TemporaryDirectory() as tmp:
        rows = [_run_world(w, args, Path(tmp)) for w in args.worlds]
    base = next((r["s_per_iteration"] for r in rows if r["world_size"] == 1), None)
    for r in rows:
        r["speedup_vs_1"] = round(base / r["s_per_iteration"], 3) if base and r["s_per_iteration"] > 0 else None
    env = environment_info(get_device(args.device))
    env.update(world_size=None, backend=None)  # this driver runs alone; each row names its own
    record = {"benchmark": "DECS clustering iterations, 1 vs several processes, same global batch",
              "command": record_command("python benchmarks/distributed_speed.py", argv if argv is not None else sys.argv[1:]),
              "dataset": args.dataset, "subset": args.subset, "batch_size": args.batch_size,
              "iterations": args.iterations, "warmup": args.warmup, "threads_per_process": args.threads,
              "rows": rows, "environment": env,
              "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from decs.files import write_record

    write_record(record, args.out)
    print(json.dumps(rows))
    return record


if __name__ == "__main__":
    main()
