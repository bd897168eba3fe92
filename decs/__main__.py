"""Command line: ``python -m decs {pretrain,train,evaluate,reproduce,sweep} --dataset NAME ...``

Examples::

    python -m decs train --dataset usps                          # DECS, profile from DECS_PROFILE (default cpu)
    python -m decs train --dataset usps --method dec --seed 1
    python -m decs train --dataset usps --profile paper --resume  # continue an interrupted run
    python -m decs train --dataset usps --set maxiter=500 lam=0.2 # change config fields
    python -m decs evaluate --dataset usps                       # score the last checkpoint
    python -m decs evaluate --record results/usps/decs/paper-seed0.json   # re-score a committed record
    python -m decs reproduce --dataset usps --seeds 0 1 2        # every row of the table for USPS
    python -m decs sweep --dataset usps --profile cpu            # DECS over a grid of α and λ
    python -m decs train --dataset usps --start-from theirs.pt   # cluster from a given network
    python -m decs train --dataset usps --method hadis           # HaDis (decs.hadis), no pretraining
    python -m decs train --dataset usps --method hadis --set hsd=False   # HaDis without HSD (ProPos)

Checkpoints go to ``checkpoints/<dataset>/<profile>-seed<seed>/`` (``DECS_CHECKPOINTS``
overrides the root) and run records to ``results/<dataset>/<method>/<profile>-seed<seed>.json``,
with the model files of seed 0 beside them (``--model-files``). HaDis (``--method hadis``, train
only) has its own configuration (:class:`decs.hadis.HaDisConfig`, the fields ``--set`` takes),
records ``results/<dataset>/hadis/<profile>-seed<seed>[+field=value...].json`` and checkpoints
``<checkpoints>/<dataset>/hadis/<run>.pt``. A run never overwrites another
run's record: it refuses before training unless ``--replace`` is given.

A mistake in what was asked (an unknown dataset, a bad ``--set``, a missing or tampered record,
model file, checkpoint or dataset file, a record that exists) ends the command with one line
on stderr, ``python -m decs <command>: error: <what is wrong and what to do>``, and exit status 2,
as argparse's own errors do, before anything is written; other errors keep their traceback.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from . import data, distributed, hadis
from .config import (METHODS, PROFILES, SWEEP_ALPHAS, SWEEP_LAMS, Config, ConfigError, check_for_dataset,
                     get_config)
from .device import get_device
from .files import (CheckpointError, ModelFileError, load_model_files, read_checkpoint, save_model_files,
                    write_record)
from .passes import predict
from .provenance import environment_info
from .runs import (checkpoint_dir, cluster_tag, config_changes, pretrained_autoencoder, pretraining_name, run,
                   run_name)
from .metrics import evaluate
from .paths import REPO_ROOT, in_checkout, record_command

# Re-scoring a record on another kind of device than the one that trained it: float
# arithmetic differs in the last bits, and samples on a boundary between two clusters may
# change sides. 0.002 is 19 USPS images; not yet measured (no record has been re-scored on a
# GPU), so a bound to revisit when one is.
CROSS_DEVICE_TOLERANCE = 0.002


class UsageError(Exception):
    """A mistake in what the command line asked for (a bad ``--set``, a missing record, a record
    that exists...). :func:`main` prints its message as one line on stderr and exits with status 2;
    so it does for the package's own errors of that kind (:data:`USER_ERRORS`)."""


# What a user can get wrong, each with a message that says what to do: the command ends with one
# line and status 2. Anything else is a bug, and keeps its traceback.
USER_ERRORS = (UsageError, ConfigError, data.DatasetNotFoundError, data.DatasetCorruptError, ModelFileError,
               CheckpointError)
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _whole(text: str) -> int:
    number = float(text)
    if not number.is_integer():
        raise ValueError(f"{text} is not a whole number")
    return int(number)


def _parse_value(value: str, default):
    """One ``--set`` value as the type of the field's default (``default``)."""
    if value.lower() == "none":
        return None
    if isinstance(default, bool):
        if value.lower() not in _TRUE + _FALSE:
            raise ValueError(f"{value!r} is neither")
        return value.lower() in _TRUE
    if isinstance(default, tuple):
        kind = type(default[0]) if default else int
        return tuple(_whole(v) if kind is int else kind(v) for v in value.split(","))
    if isinstance(default, int) or default is None:  # None: subset, a whole number
        return _whole(value)
    if isinstance(default, float):
        return float(value)
    return value


def _parse_overrides(pairs: list[str], cls=Config) -> dict:
    """``["maxiter=500", "lam=0.2"]`` → typed values for the fields of ``cls`` (:class:`Config`,
    or :class:`decs.hadis.HaDisConfig` for HaDis). A pair that is not FIELD=VALUE, an unknown
    field or a value of the wrong type raises :class:`UsageError`; ranges are the config's to check."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or name not in fields:
            raise UsageError(f"--set expects FIELD=VALUE with FIELD one of {sorted(fields)}; got {pair!r}")
        default = getattr(cls(), name)
        try:
            out[name] = _parse_value(value, default)
        except ValueError as err:
            example = ",".join(map(str, default)) if isinstance(default, tuple) else default
            kind = ("true or false" if isinstance(default, bool) else "comma-separated values"
                    if isinstance(default, tuple) else "a whole number" if isinstance(default, int)
                    else "a number" if isinstance(default, float) else "a whole number or None")
            raise UsageError(f"--set {pair}: {name} takes {kind} ({err}); e.g. --set {name}={example}") from None
    return out


def record_path(dataset: str, method: str, cfg: Config, seed: int, results: Path, name: str | None = None) -> Path:
    return results / dataset / method / f"{name or run_name(cfg, seed)}.json"


def refuse_overwrite(path: Path, replace: bool) -> None:
    """A run never overwrites another run's record: stop before any training, unless asked."""
    if path.exists() and not replace:
        raise UsageError(f"{path} already holds a run's record; a run never overwrites another. Pass "
                         "--replace to replace it (say why in the commit), or --results DIR to write elsewhere.")


def _load_data(dataset: str, cfg: Config, seed: int):
    x, y = data.load(dataset, subset=cfg.subset, seed=seed)
    return x, y.numpy()


def check_before_work(dataset: str, cfg, checkpoints=()) -> None:
    """What can be checked before any data is loaded or anything written: the settings that
    depend on the dataset (:func:`decs.config.check_for_dataset`), that its files are there and
    whole, and that the checkpoints a run would read can be read."""
    info = data.DATASETS[dataset]
    check_for_dataset(cfg, info.n_samples, info.n_classes, info.title)
    if not data.is_available(dataset):
        data.load(dataset)  # raises DatasetNotFoundError or DatasetCorruptError, naming the files
    for path in checkpoints:
        read_checkpoint(path)  # raises CheckpointError for a truncated or corrupted file


def cmd_pretrain(args, cfg: Config) -> None:
    ck = checkpoint_dir(args.dataset, cfg, args.seed)
    check_before_work(args.dataset, cfg, [ck / "pretrain.pt"])
    x, y = _load_data(args.dataset, cfg, args.seed)
    device = get_device(args.device)
    model, losses, seconds = pretrained_autoencoder(x.to(device), cfg, args.seed, ck, not args.quiet)
    print(json.dumps({"dataset": args.dataset, "epochs": len(losses), "final_mse": losses[-1],
                      "seconds": round(seconds, 1), "checkpoint": str(ck / "pretrain.pt")}))


def load_start(path: Path | str) -> dict:
    """A network to cluster from (``train --start-from FILE``): a file written by
    ``benchmarks/authors_tf_weights.py --to-ours``, holding ``{"model": state dict, "from": what it
    is}``. Returns the state dict with the file's name, sha256 and description for the record."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--start-from {path}: no such file (write one with "
                         "benchmarks/authors_tf_weights.py --to-ours)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, corrupted, or not a torch file
        why = f"{type(err).__name__}: {str(err).split('. ')[0].splitlines()[0]}"
        raise UsageError(f"--start-from {path}: not a readable network file ({why}); "
                         "write it again with benchmarks/authors_tf_weights.py --to-ours") from err
    if not isinstance(payload, dict) or not isinstance(payload.get("model"), dict):
        raise UsageError(f"--start-from {path}: expected a dict with a 'model' state dict, as "
                         "benchmarks/authors_tf_weights.py --to-ours writes")
    return {"model": payload["model"], "file": path.name, "name": path.stem,
            "sha256": data.sha256(path), "from": payload.get("from")}


def cmd_train(args, cfg: Config, method: str | None = None, seed: int | None = None,
              name: str | None = None) -> dict:
    method, seed = method or args.method, args.seed if seed is None else seed
    start = load_start(args.start_from) if getattr(args, "start_from", None) else None
    if start is not None:  # its own record and clustering checkpoint, beside the protocol run's
        name = f"{name or run_name(cfg, seed)}+start={start['name']}"
    path = record_path(args.dataset, method, cfg, seed, Path(args.results), name)
    if args.skip_done and path.exists() and not args.replace:
        print(f"[decs] {path} exists: skipped", file=sys.stderr)
        return json.loads(path.read_text())
    refuse_overwrite(path, args.replace)
    ck = checkpoint_dir(args.dataset, cfg, seed)
    tag = cluster_tag(cfg) + (f"+start={start['name']}" if start else "")
    check_before_work(args.dataset, cfg, [ck / "pretrain.pt"] + ([ck / f"{method}{tag}.pt"] if args.resume else []))
    x, y = _load_data(args.dataset, cfg, seed)
    if not args.resume:  # a fresh clustering run; a finished, matching pretraining is reused
        (ck / f"{method}{tag}.pt").unlink(missing_ok=True)
    print(f"[decs] {method} on {args.dataset} (n={len(y)}), profile={cfg.profile}, seed={seed}, "
          f"device={get_device(args.device)}, checkpoints in {ck}", file=sys.stderr)
    result = run(x, y, cfg, method=method, seed=seed, device=args.device, checkpoint_dir=ck,
                 dataset=args.dataset, progress=not args.quiet, tag=tag,
                 start=start["model"] if start else None)
    rec = result.record
    if start is not None:
        rec["start_network"] = {k: start[k] for k in ("file", "sha256", "from")}
        rec["wall_time_s"]["note"] += "; this run started from a given network (start_network): no pretraining"
    if not distributed.is_main():  # under torchrun, rank 0 alone writes the model files and the record
        return rec
    rec["command"] = record_command("python -m decs", args.argv)
    protocol_seed0 = seed == 0 and "+" not in path.stem
    if args.model_files == "all" or args.model_files == "auto" and protocol_seed0:
        save_model_files(result, path, pretraining_name(cfg, seed), Path(args.results), args.replace)
    write_record(rec, path)
    print(json.dumps({"record": str(path), "final": rec["final"], "kmeans_on_embedding": rec["kmeans_on_embedding"],
                      "wall_time_s": rec["wall_time_s"]}))
    return rec


def cmd_train_hadis(args, cfg: hadis.HaDisConfig) -> dict:
    """``train --method hadis``: one HaDis run (:func:`decs.hadis.run`) and its record."""
    name = hadis.run_name(cfg, args.seed)
    path = Path(args.results) / args.dataset / "hadis" / f"{name}.json"
    if args.skip_done and path.exists() and not args.replace:
        print(f"[decs] {path} exists: skipped", file=sys.stderr)
        return json.loads(path.read_text())
    refuse_overwrite(path, args.replace)
    ck = hadis.checkpoint_path(args.dataset, cfg, args.seed)
    check_before_work(args.dataset, cfg, [ck] if args.resume else [])
    x, y = data.load(args.dataset, subset=cfg.subset, seed=args.seed)
    if not args.resume:  # a fresh run
        ck.unlink(missing_ok=True)
    print(f"[decs] hadis{'' if cfg.hsd else ' without HSD'} on {args.dataset} (n={len(y)}), profile={cfg.profile}, "
          f"seed={args.seed}, device={get_device(args.device)}, checkpoint {ck}", file=sys.stderr)
    res, rec = hadis.run(x, y.numpy(), cfg, seed=args.seed, device=args.device, checkpoint=ck,
                         dataset=args.dataset, progress=not args.quiet)
    rec["command"] = record_command("python -m decs", args.argv)
    if args.model_files == "all" or args.model_files == "auto" and args.seed == 0 and "+" not in name:
        hadis.save_model_file(res, rec, path, Path(args.results))
    write_record(rec, path)
    print(json.dumps({"record": str(path), "final": rec["final"], "wall_time_s": rec["wall_time_s"]}))
    return rec


RECORD_KEYS = ("dataset", "method", "seed", "config", "final", "environment")


def read_record(path: Path) -> dict:
    """A run record, for ``evaluate --record``: a missing file, a file that is not JSON or a
    JSON without a record's keys raises :class:`UsageError` saying what to do."""
    if not path.is_file():
        raise UsageError(f"no record at {path}: give the path of a run's record, e.g. "
                         "--record results/usps/decs/paper-seed0.json")
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UsageError(f"{path} is not a run record: not valid JSON ({err}); restore it with "
                         f"`git checkout -- {path}` or give another record") from None
    missing = [k for k in RECORD_KEYS if not isinstance(rec, dict) or k not in rec]
    if missing:
        raise UsageError(f"{path} is not a run record: it lacks {missing}; give the JSON that a "
                         "`python -m decs train` run wrote")
    return rec


def evaluate_record(path: Path | str, device: str | None = None, results: Path | None = None) -> dict:
    """Re-score a record from its model files (sha256 checked): the final ACC/NMI/ARI now and
    in the record, and whether the ACC agrees — within one sample (1/n) on the kind of device
    that trained it, within :data:`CROSS_DEVICE_TOLERANCE` on another (NMI and ARI are shown;
    one sample moved changes them by a little more than 1/n)."""
    path = Path(path)
    rec = read_record(path)
    root = Path(results) if results is not None else path.resolve().parents[2]
    dev = get_device(device)
    if rec["method"] == "hadis":  # the teacher's normalised features, each to its nearest k-means centre
        try:
            net, centers = hadis.load_model_file(rec, root, dev)
        except (FileNotFoundError, ValueError) as err:  # missing, or not the file the record names
            raise ModelFileError(str(err)) from err
        x, y = data.load(rec["dataset"], subset=rec["config"].get("subset"), seed=rec["seed"])
        labels = torch.cdist(net.features(x.to(dev)).double(), centers.double()).argmin(dim=1)
    else:
        nets = load_model_files(rec, root, dev)
        cfg = Config(**{**rec["config"], "filters": tuple(rec["config"]["filters"])})
        x, y = _load_data(rec["dataset"], cfg, rec["seed"])
        _, labels = predict(nets["encoder"], nets["centroids"], x.to(dev), nets["alpha"], cfg.eval_batch_size)
    now = evaluate(y, labels.cpu().numpy())
    trained_on = torch.device(rec["environment"]["device"]).type
    tol = 1.0 / len(y) if trained_on == dev.type else CROSS_DEVICE_TOLERANCE
    diff = abs(now["acc"] - rec["final"]["acc"])
    return {"record": str(path), "device": str(dev), "trained_on": rec["environment"]["device"],
            "recorded": {k: rec["final"][k] for k in ("acc", "nmi", "ari")}, "now": now,
            "acc_difference": round(diff, 6), "tolerance": round(tol, 6), "agrees": diff <= tol + 1e-12}


def cmd_evaluate(args, cfg: Config) -> None:
    if args.record:
        out = evaluate_record(args.record, args.device)
        print(json.dumps(out))
        if not out["agrees"]:
            raise SystemExit(f"{args.record}: re-scored {out['now']} differs from the record's {out['recorded']} "
                             f"in ACC by {out['acc_difference']} > {out['tolerance']} (tolerance on "
                             f"{'the same kind of device' if out['device'].split(':')[0] == out['trained_on'].split(':')[0] else 'another device'}).")
        return
    if not args.dataset:
        raise UsageError("evaluate needs --dataset (to score the last checkpoint) or --record RECORD.json.")
    ck = checkpoint_dir(args.dataset, cfg, args.seed)
    state_path = ck / f"{args.method}{cluster_tag(cfg)}.pt"
    if not state_path.exists():
        raise UsageError(f"no checkpoint at {state_path}: run `python -m decs train --dataset {args.dataset} "
                         f"--method {args.method} --profile {cfg.profile} --seed {args.seed}` first.")
    check_before_work(args.dataset, cfg, [ck / "pretrain.pt", state_path])
    x, y = _load_data(args.dataset, cfg, args.seed)
    device = get_device(args.device)
    model, _, _ = pretrained_autoencoder(x.to(device), cfg, args.seed, ck, progress=False)
    saved = read_checkpoint(state_path)
    model.encoder.load_state_dict(saved["encoder"])
    alpha = cfg.kernel_alpha(args.method)
    _, labels = predict(model.encoder, saved["centroids"].to(device), x.to(device), alpha, cfg.eval_batch_size)
    print(json.dumps({"dataset": args.dataset, "method": args.method, "iteration": saved["state"]["iteration"],
                      **evaluate(y, labels.cpu().numpy())}))


def kmeans_raw(dataset: str, cfg: Config, seed: int, results: Path, replace: bool = False,
               skip_done: bool = False, argv: list[str] | None = None) -> dict:
    """The reference row every deep-clustering table has: k-means on raw pixels."""
    from sklearn.cluster import KMeans

    path = record_path(dataset, "kmeans-raw", cfg, seed, results)
    if skip_done and path.exists() and not replace:
        return json.loads(path.read_text())
    refuse_overwrite(path, replace)
    check_before_work(dataset, cfg)
    x, y = _load_data(dataset, cfg, seed)
    t0 = time.perf_counter()
    km = KMeans(n_clusters=len(np.unique(y)), n_init=cfg.kmeans_n_init, random_state=seed)
    labels = km.fit_predict(x.reshape(len(x), -1).numpy())
    rec = {"dataset": dataset, "method": "kmeans-raw", "profile": cfg.profile, "seed": seed,
           "n_samples": len(y), "final": evaluate(y, labels), "config": cfg.to_dict(),
           "wall_time_s": {"total": round(time.perf_counter() - t0, 1)},
           "environment": environment_info(torch.device("cpu")),
           "command": record_command("python -m decs", argv),
           "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    write_record(rec, path)
    return rec


def cmd_reproduce(args, cfg: Config) -> None:
    """Every row of the results table for one dataset: k-means on pixels, then DECS and DEC
    (which share each seed's pretrained autoencoder; its k-means row is in their records)."""
    for seed in args.seeds:
        rec = kmeans_raw(args.dataset, cfg, seed, Path(args.results), args.replace, args.skip_done, args.argv)
        print(json.dumps({"kmeans-raw": rec["final"], "seed": seed}))
        for method in args.methods:
            cmd_train(args, cfg, method=method, seed=seed)


def sweep_name(cfg: Config, seed: int) -> str:
    """A grid cell's record name: both α and λ always written, so no cell (the profile's own
    α and λ included) takes the protocol run's name."""
    rest = config_changes(cfg, [f.name for f in dataclasses.fields(Config) if f.name not in ("alpha", "lam")])
    return f"{cfg.profile}-seed{seed}+alpha={cfg.alpha}+lam={cfg.lam}{rest}"


def sweep_order(alphas, lams, alpha: float, lam: float) -> list[tuple[float, float]]:
    """The cells of an α × λ grid in the order a sweep runs them: the profile's own (α, λ)
    first, then the cells that change one of the two (the λ row and the α column through it),
    nearest first, then the rest. A sweep stopped part-way (it takes hours on a CPU) has
    thus left two whole one-dimensional curves through the protocol before any corner of the
    grid; ``--skip-done`` resumes it. Read in :doc:`/book/sensitivity`."""
    def steps(axis, value):   # each index's distance from the protocol's (off the grid: all far)
        return [abs(i - axis.index(value)) if value in axis else len(axis) for i in range(len(axis))]
    da, dl = steps(alphas, alpha), steps(lams, lam)
    cells = [(i, j) for i in range(len(alphas)) for j in range(len(lams))]
    cells.sort(key=lambda c: ((alphas[c[0]] != alpha) + (lams[c[1]] != lam), da[c[0]] + dl[c[1]], c))
    return [(alphas[i], lams[j]) for i, j in cells]


def cmd_sweep(args, cfg: Config) -> None:
    """DECS over a grid of α and λ from one pretrained autoencoder (the paper's Figure 4), in
    :func:`sweep_order`."""
    for alpha, lam in sweep_order(list(args.alphas), list(args.lams), cfg.alpha, cfg.lam):
        c = cfg.replace(alpha=alpha, lam=lam)
        cmd_train(args, c, method="decs", name=sweep_name(c, args.seed))


def _one_line(err: BaseException) -> str:
    """The first line of an error's message, and for the data's longer messages (each file, its
    sha256 and source) what to do in a few words."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [type(err).__name__]
    hint = ""
    if len(lines) > 1 and isinstance(err, data.DatasetNotFoundError):
        hint = ("; put the files there or set DECS_DATA to the folder holding them (data/README.md, "
                "or decs.data.load() in Python, lists each file with its sha256 and source)")
    elif len(lines) > 1 and isinstance(err, data.DatasetCorruptError):
        hint = ("; delete the corrupt files and get them again (data/README.md, or decs.data.load() in "
                "Python, lists each file with its sha256 and source)")
    return lines[0] + hint


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line, as the package's own (the usage is one --help away)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def main(argv: list[str] | None = None) -> None:
    """The command line; a user's mistake (:data:`USER_ERRORS`) ends it with one line on stderr
    and exit status 2, before anything is written."""
    parser = _Parser(prog="python -m decs", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("pretrain", "train", "evaluate", "reproduce", "sweep"):
        p = sub.add_parser(name)
        p.add_argument("--dataset", required=name != "evaluate", help=f"one of {list(data.DATASETS)}")
        p.add_argument("--profile", choices=PROFILES, default=None, help="default: DECS_PROFILE, else cpu")
        p.add_argument("--device", default=None, help="default: DECS_DEVICE, else cuda if available, else cpu")
        p.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="override config fields")
        p.add_argument("--results", default=str(REPO_ROOT / "results") if in_checkout() else "results",
                       help="where run records go (default: results/ of the checkout; ./results for an "
                            "installed package)")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        if name in ("train", "reproduce", "sweep"):
            p.add_argument("--replace", action="store_true", help="replace an existing record of the same name")
            p.add_argument("--model-files", choices=("auto", "all", "none"), default="auto",
                           help="write the run's model files beside its record: auto = protocol runs of seed 0")
        if name == "evaluate":
            p.add_argument("--record", default=None, help="re-score this record from its model files")
        if name in ("train", "reproduce", "sweep"):
            p.add_argument("--skip-done", action="store_true", help="skip a run whose record exists")
        if name == "sweep":
            p.add_argument("--alphas", type=float, nargs="+", default=list(SWEEP_ALPHAS))
            p.add_argument("--lams", type=float, nargs="+", default=list(SWEEP_LAMS))
        if name == "reproduce":
            p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
            p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
        else:
            p.add_argument("--seed", type=int, default=0)
            p.add_argument("--method", choices=(*METHODS, "hadis") if name == "train" else METHODS,
                           default="decs")
        if name == "train":
            p.add_argument("--start-from", default=None, metavar="FILE",
                           help="cluster from this network instead of pretraining (a file of "
                                "benchmarks/authors_tf_weights.py --to-ours); record <run>+start=<file>")
        p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the record's command line
    try:
        _run(args)
    except USER_ERRORS as err:
        print(f"{parser.prog} {args.command}: error: {_one_line(err)}", file=sys.stderr)
        raise SystemExit(2) from None


def _run(args: argparse.Namespace) -> None:
    if args.dataset:
        try:
            args.dataset = data.canonical_name(args.dataset)
        except ValueError as err:  # an unknown name: the message lists the known ones
            raise UsageError(str(err)) from None
    if getattr(args, "method", None) == "hadis":
        if getattr(args, "start_from", None):
            raise UsageError("--start-from gives DECS or DEC a pretrained autoencoder; HaDis trains its own network")
        cfg = hadis.get_hadis_config(args.profile, **_parse_overrides(args.set, hadis.HaDisConfig))
        cmd_train_hadis(args, cfg)
        return
    cfg = get_config(args.profile, **_parse_overrides(args.set))
    {"pretrain": cmd_pretrain, "train": cmd_train, "evaluate": cmd_evaluate,
     "reproduce": cmd_reproduce, "sweep": cmd_sweep}[args.command](args, cfg)


if __name__ == "__main__":
    main()
