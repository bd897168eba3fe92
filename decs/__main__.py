"""Command line: ``python -m decs {pretrain,train,evaluate,reproduce} --dataset NAME ...``

Examples::

    python -m decs train --dataset usps                          # DECS, profile from DECS_PROFILE (default cpu)
    python -m decs train --dataset usps --method dec --seed 1
    python -m decs train --dataset usps --profile paper --resume  # continue an interrupted run
    python -m decs train --dataset usps --set maxiter=500 lam=0.2 # change config fields
    python -m decs evaluate --dataset usps                       # score the last checkpoint
    python -m decs reproduce --dataset usps --seeds 0 1 2        # every row of the table for USPS
    python -m decs sweep --dataset usps --profile cpu            # DECS over a grid of α and λ

Checkpoints go to ``checkpoints/<dataset>/<profile>-seed<seed>/`` (``DECS_CHECKPOINTS``
overrides the root) and run records to ``results/<dataset>/<method>/<profile>-seed<seed>.json``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from . import data
from .config import METHODS, PROFILES, Config, get_config
from .metrics import evaluate
from .train import (PRETRAIN_FIELDS, REPO_ROOT, environment_info, get_device, predict, pretrained_autoencoder,
                    run, write_record)


def _parse_overrides(pairs: list[str]) -> dict:
    """``["maxiter=500", "lam=0.2"]`` → typed values for :class:`Config` fields."""
    fields = {f.name: f for f in dataclasses.fields(Config)}
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or name not in fields:
            raise SystemExit(f"--set expects FIELD=VALUE with FIELD one of {sorted(fields)}; got {pair!r}")
        default = getattr(Config(), name)
        if value.lower() == "none":
            out[name] = None
        elif isinstance(default, bool):
            out[name] = value.lower() in ("1", "true", "yes")
        elif isinstance(default, tuple):
            out[name] = tuple(int(v) for v in value.split(","))
        elif isinstance(default, (int, float)) and not isinstance(default, bool):
            out[name] = type(default)(float(value)) if isinstance(default, int) else float(value)
        elif default is None:  # subset
            out[name] = int(value)
        else:
            out[name] = value
    return out


def _changes(cfg: Config, fields=None) -> str:
    """``+field=value`` for each field (of ``fields``, default all) that differs from the profile."""
    base = get_config(cfg.profile)
    names = fields or [f.name for f in dataclasses.fields(Config)]
    tag = "".join(f"+{n}={getattr(cfg, n)}" for n in names if getattr(cfg, n) != getattr(base, n))
    return tag.replace(" ", "").replace("/", "_").replace("(", "").replace(")", "")


def run_name(cfg: Config, seed: int) -> str:
    """``<profile>-seed<seed>``, followed by every field that differs from the profile, so a
    changed run never overwrites (or resumes) a run of the profile itself."""
    return f"{cfg.profile}-seed{seed}{_changes(cfg)}"


def checkpoint_dir(dataset: str, cfg: Config, seed: int) -> Path:
    """One folder per pretraining: runs that change only clustering settings share it."""
    root = Path(os.environ.get("DECS_CHECKPOINTS", REPO_ROOT / "checkpoints"))
    return root / dataset / f"{cfg.profile}-seed{seed}{_changes(cfg, PRETRAIN_FIELDS)}"


def cluster_tag(cfg: Config) -> str:
    """The clustering settings that differ from the profile (part of the checkpoint's file name)."""
    return _changes(cfg, [f.name for f in dataclasses.fields(Config) if f.name not in PRETRAIN_FIELDS])


def record_path(dataset: str, method: str, cfg: Config, seed: int, results: Path) -> Path:
    return results / dataset / method / f"{run_name(cfg, seed)}.json"


def _load_data(dataset: str, cfg: Config, seed: int):
    x, y = data.load(dataset, subset=cfg.subset, seed=seed)
    return x, y.numpy()


def cmd_pretrain(args, cfg: Config) -> None:
    x, y = _load_data(args.dataset, cfg, args.seed)
    device = get_device(args.device)
    ck = checkpoint_dir(args.dataset, cfg, args.seed)
    model, losses, seconds = pretrained_autoencoder(x.to(device), cfg, args.seed, ck, not args.quiet)
    print(json.dumps({"dataset": args.dataset, "epochs": len(losses), "final_mse": losses[-1],
                      "seconds": round(seconds, 1), "checkpoint": str(ck / "pretrain.pt")}))


def cmd_train(args, cfg: Config, method: str | None = None, seed: int | None = None) -> dict:
    method, seed = method or args.method, args.seed if seed is None else seed
    x, y = _load_data(args.dataset, cfg, seed)
    ck = checkpoint_dir(args.dataset, cfg, seed)
    tag = cluster_tag(cfg)
    if not args.resume:  # a fresh clustering run; a finished, matching pretraining is reused
        (ck / f"{method}{tag}.pt").unlink(missing_ok=True)
    print(f"[decs] {method} on {args.dataset} (n={len(y)}), profile={cfg.profile}, seed={seed}, "
          f"device={get_device(args.device)}, checkpoints in {ck}", file=sys.stderr)
    result = run(x, y, cfg, method=method, seed=seed, device=args.device, checkpoint_dir=ck,
                 dataset=args.dataset, progress=not args.quiet, tag=tag)
    rec = result.record
    rec["command"] = "python -m decs " + " ".join(sys.argv[1:])
    path = write_record(rec, record_path(args.dataset, method, cfg, seed, Path(args.results)))
    print(json.dumps({"record": str(path), "final": rec["final"], "kmeans_on_embedding": rec["kmeans_on_embedding"],
                      "wall_time_s": rec["wall_time_s"]}))
    return rec


def cmd_evaluate(args, cfg: Config) -> None:
    x, y = _load_data(args.dataset, cfg, args.seed)
    device = get_device(args.device)
    ck = checkpoint_dir(args.dataset, cfg, args.seed)
    state_path = ck / f"{args.method}{cluster_tag(cfg)}.pt"
    if not state_path.exists():
        raise SystemExit(f"no checkpoint at {state_path}: run `python -m decs train --dataset {args.dataset} "
                         f"--method {args.method} --profile {cfg.profile} --seed {args.seed}` first.")
    model, _, _ = pretrained_autoencoder(x.to(device), cfg, args.seed, ck, progress=False)
    saved = torch.load(state_path, map_location=device, weights_only=False)
    model.encoder.load_state_dict(saved["encoder"])
    alpha = cfg.alpha if args.method == "decs" else cfg.dec_alpha
    _, labels = predict(model.encoder, saved["centroids"].to(device), x.to(device), alpha, cfg.eval_batch_size)
    print(json.dumps({"dataset": args.dataset, "method": args.method, "iteration": saved["state"]["iteration"],
                      **evaluate(y, labels.cpu().numpy())}))


def kmeans_raw(dataset: str, cfg: Config, seed: int, results: Path) -> dict:
    """The reference row every deep-clustering table has: k-means on raw pixels."""
    from sklearn.cluster import KMeans

    x, y = _load_data(dataset, cfg, seed)
    t0 = time.perf_counter()
    km = KMeans(n_clusters=len(np.unique(y)), n_init=cfg.kmeans_n_init, random_state=seed)
    labels = km.fit_predict(x.reshape(len(x), -1).numpy())
    rec = {"dataset": dataset, "method": "kmeans-raw", "profile": cfg.profile, "seed": seed,
           "n_samples": len(y), "final": evaluate(y, labels), "config": cfg.to_dict(),
           "wall_time_s": {"total": round(time.perf_counter() - t0, 1)},
           "environment": environment_info(torch.device("cpu")),
           "command": "python -m decs " + " ".join(sys.argv[1:]),
           "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    write_record(rec, record_path(dataset, "kmeans-raw", cfg, seed, results))
    return rec


def cmd_reproduce(args, cfg: Config) -> None:
    """Every row of the results table for one dataset: k-means on pixels, then DECS and DEC
    (which share each seed's pretrained autoencoder; its k-means row is in their records)."""
    for seed in args.seeds:
        rec = kmeans_raw(args.dataset, cfg, seed, Path(args.results))
        print(json.dumps({"kmeans-raw": rec["final"], "seed": seed}))
        for method in args.methods:
            cmd_train(args, cfg, method=method, seed=seed)


def cmd_sweep(args, cfg: Config) -> None:
    """DECS over a grid of α and λ from one pretrained autoencoder (the paper's Figure 4)."""
    for alpha in args.alphas:
        for lam in args.lams:
            cmd_train(args, cfg.replace(alpha=alpha, lam=lam), method="decs")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m decs", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("pretrain", "train", "evaluate", "reproduce", "sweep"):
        p = sub.add_parser(name)
        p.add_argument("--dataset", required=True, help=f"one of {list(data.DATASETS)}")
        p.add_argument("--profile", choices=PROFILES, default=None, help="default: DECS_PROFILE, else cpu")
        p.add_argument("--device", default=None, help="default: DECS_DEVICE, else cuda if available, else cpu")
        p.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="override config fields")
        p.add_argument("--results", default=str(REPO_ROOT / "results"), help="where run records go")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        if name == "sweep":
            p.add_argument("--alphas", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0])
            p.add_argument("--lams", type=float, nargs="+", default=[0.01, 0.04, 0.1, 0.4, 1.0, 4.0])
        if name == "reproduce":
            p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
            p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
        else:
            p.add_argument("--seed", type=int, default=0)
            p.add_argument("--method", choices=METHODS, default="decs")
        p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    args = parser.parse_args(argv)
    args.dataset = data.canonical_name(args.dataset)
    cfg = get_config(args.profile, **_parse_overrides(args.set))
    {"pretrain": cmd_pretrain, "train": cmd_train, "evaluate": cmd_evaluate,
     "reproduce": cmd_reproduce, "sweep": cmd_sweep}[args.command](args, cfg)


if __name__ == "__main__":
    main()
