"""Run the authors' TensorFlow code, unmodified, and keep what it printed as a record.

    python benchmarks/authors_tf.py --code ../authors-decs/DECS --python ../tfenv/bin/python \\
        --pretrain-epochs 200 --maxiter 3000 --out results/authors-tf/usps/e200-i3000.json
    python benchmarks/authors_tf.py ... --pretrained-weights ours.h5 --maxiter 3000 --out ...

The authors' repository (ChengZhanwen/DECS) is never copied into this one: ``--code`` points at
its ``DECS/`` folder, unpacked from a snapshot elsewhere (with ``data/usps/usps_train.jf``
gunzipped from the ``.gz`` beside it). Their README asks for tensorflow-gpu 1.10 on Python 3.7;
their code imports ``tensorflow.keras`` only, so it also runs under TensorFlow 2.15 (the last
release with Keras 2) on Python 3.11: ``pip install tensorflow-cpu==2.15.1 scipy scikit-learn
h5py matplotlib "opencv-python-headless<4.11"`` in a virtual environment of its own, plus
torch, which their ``seed.py`` imports (a ``.pth`` file naming this project's site-packages
will do). Their ``run_exp.py`` runs from a copy of ``--code`` in a temporary folder, so what it
writes (``results/temp/...``) stays there.

With ``--pretrained-weights`` it runs their ``main.py`` instead, which skips pretraining and
clusters from the given Keras weights, with ``run_exp.py``'s settings (update interval 30,
batch 256): our pretrained encoder, converted by ``benchmarks/authors_tf_weights.py``, put
through their clustering loop. The record names the weights file, its sha256 and what it holds.

What it printed becomes the record: their pretraining's loss per epoch (from the
``pretrain_log.csv`` their Keras ``CSVLogger`` writes) and the scores of the k-means their
pretraining runs on the embedding every ``epochs/10`` epochs, every ``Iter`` line (ACC, NMI, ARI and loss every 30
iterations, the first at k-means's start), their final and label-selected best scores, their
own timings, and timings taken here from when each line arrived: seconds per pretraining epoch
(from the second epoch on, so TensorFlow's one-off graph building is not counted; once with the
k-means their pretraining runs every ``epochs/10`` epochs, every epoch below 20, and once over
the epochs that ran none, which is what ``benchmarks/speed.py`` times of ours) and seconds per
clustering iteration with the evaluation every 30 (from the ``Iter 0`` line to the last). Their
epoch is ``int(n/256)`` steps (36 on USPS), ours ``ceil(n/256)`` (37).
Their ``run_exp.py`` calls ``set_seed()``, which seeds Python, NumPy and PyTorch (2333) and does not
name TensorFlow; two runs of it here printed the same history to the last digit, so a rerun repeats
a run (their ``main.py`` calls no ``set_seed()``). ``--from-log`` rebuilds the record of a run that
finished but whose record was not written, from the lines this script printed for it (kept beside
the record as ``<name>.log``); the record says so under ``rebuilt_from_log`` and lacks what those
lines lack (the labels, so no cluster sizes). The record has no ``final`` key, so
:func:`decs.results.load_records` never mixes it with this project's runs; the reproducibility
chapter reads it.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# Imported at the start, not when the run ends hours later: by then the package may have been
# edited, and a half-old, half-new package could fail to write the record.
from decs.files import write_record
from decs.paths import record_command

ITER = re.compile(r"Iter (\d+): acc=([\d.]+), nmi=([\d.]+), ari=([-\d.]+); loss=([-\d.naninf]+)")
EPOCH = re.compile(r"^Epoch (\d+)/(\d+)")
TIMES = re.compile(r"Time for pretaining, clustering and total: \((\d+)s, (\d+)s, (\d+)s\)")
FINAL = re.compile(r"Final: acc=([\d.]+), nmi=([\d.]+), ari=([-\d.]+)")
SEED_NOTE = ("their run_exp.py calls set_seed(): Python, NumPy and PyTorch seeded with 2333, "
             "TensorFlow not named; two runs of it printed the same history")
SEED_NOTE_DRAW = ("their run_exp.py's set_seed() seeded Python, NumPy and PyTorch with {seed} instead of "
                  "2333 (through benchmarks/authors_tf_harness.py); TensorFlow not named")
SEED_NOTE_MAIN = "their main.py seeds nothing: k-means and the augmentation are not seeded"
BEST = re.compile(r"Best: Best_acc=([\d.]+), Best_nmi=([\d.]+), Best_ari=([-\d.]+)")
PRETRAIN_KMEANS = re.compile(r"\|==>  acc: ([\d.]+),  nmi: ([\d.]+),  ari: ([-\d.]+)  <==\|")


def parse(lines: list[tuple[float, str]]) -> dict:
    """The record's measurements from the ``(seconds since start, line)`` pairs of a run."""
    iters, epochs, kmeans, out, scores = [], {}, set(), {}, []
    for t, line in lines:
        if m := PRETRAIN_KMEANS.search(line):  # their pretraining's k-means on the embedding (every epochs/10 epochs)
            kmeans.add(max(epochs, default=0))  # it ends the epoch that is running
            scores.append({"epoch": max(epochs, default=0), **dict(zip(("acc", "nmi", "ari"), map(float, m.groups())))})
        if m := ITER.search(line):
            it, acc, nmi, ari, loss = m.groups()
            iters.append({"iteration": int(it), "acc": float(acc), "nmi": float(nmi),
                          "ari": float(ari), "loss": float(loss), "t_s": round(t, 2)})
        elif m := EPOCH.match(line):
            epochs[int(m.group(1))] = t
        elif m := TIMES.search(line):
            out["their_wall_time_s"] = dict(zip(("pretrain", "cluster", "total"), map(int, m.groups())))
        elif m := FINAL.search(line):
            out["their_final"] = dict(zip(("acc", "nmi", "ari"), map(float, m.groups())))
        elif m := BEST.search(line):
            out["their_best_label_selected"] = dict(zip(("acc", "nmi", "ari"), map(float, m.groups())))
    if not iters or "their_final" not in out:
        raise RuntimeError("the authors' code did not finish (no 'Iter' or 'Final' line): see the log")
    out["start"] = {k: iters[0][k] for k in ("acc", "nmi", "ari")}
    if scores:  # k-means (n_init=20) on the embedding while it pretrains, as their callback printed it
        out["pretrain_kmeans"] = scores
    out["history"] = iters
    speed = {}
    if len(epochs) >= 3:  # epoch 1 builds TensorFlow's graph: time from the start of epoch 2
        last = max(epochs)
        end = next(t for t, line in lines if "Pretraining time" in line or "Time for pretraining" in line)
        speed["pretrain_s_per_epoch_with_their_kmeans"] = round((end - epochs[2]) / (last - 1), 3)
        # the epochs whose end ran no k-means: the training alone, as benchmarks/speed.py times ours
        plain = [epochs[k + 1] - epochs[k] for k in range(2, last) if k not in kmeans]
        if plain:
            speed["pretrain_s_per_epoch"] = round(sum(plain) / len(plain), 3)
            speed["pretrain_epochs_timed"] = len(plain)
    if len(iters) >= 2:
        speed["cluster_s_per_iteration_with_eval"] = round(
            (iters[-1]["t_s"] - iters[0]["t_s"]) / (iters[-1]["iteration"] - iters[0]["iteration"]), 4)
    out["speed_measured_here"] = speed
    return out


def _git(code: Path, *args: str) -> str | None:
    r = subprocess.run(["git", "-C", str(code), *args], capture_output=True, text=True)
    return r.stdout.strip() or None if r.returncode == 0 else None


def _versions(python: str) -> dict:
    probe = ("import json, sys, numpy, sklearn, tensorflow as tf; print(json.dumps({'python': "
             "sys.version.split()[0], 'tensorflow': tf.__version__, 'numpy': numpy.__version__, "
             "'scikit-learn': sklearn.__version__}))")
    r = subprocess.run([python, "-c", probe], capture_output=True, text=True,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if r.returncode != 0:
        raise SystemExit(f"{python} cannot import TensorFlow, numpy and scikit-learn:\n{r.stderr[-2000:]}\n"
                         "Install them in that environment first (see this script's docstring).")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _keep_weights(work: Path, folder: Path, stem: str) -> Path | None:
    """Copy their pretrained autoencoder's ``ae_weights.h5`` out of the temporary folder, as soon as it is
    written: a run stopped during clustering keeps its pretraining for ``--pretrained-weights``."""
    found = sorted(work.glob("results/**/ae_weights.h5"))
    if not found:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    kept = folder / f"{stem}-ae_weights.h5"
    shutil.copy(found[0], kept)
    print(f"[authors-tf] kept their pretrained weights in {kept}", flush=True)
    return kept


def _labels(path: Path) -> dict:
    """The final cluster sizes and the confusion matrices of start and end, from the labels the harness
    saved (empty when it saved none)."""
    if not path.is_file():
        return {}
    from decs.metrics import confusion

    saved = np.load(path)
    y = saved["y"].astype(np.int64)
    k = len(np.unique(y))
    final = saved["final"].astype(np.int64)
    return {"final_cluster_sizes": np.bincount(final, minlength=k).tolist(),
            "clusters_used": int(np.count_nonzero(np.bincount(final, minlength=k))),
            "confusion": {"rows": "cluster", "columns": "class",
                          "start": confusion(y, saved["start"].astype(np.int64), k),
                          "final": confusion(y, final, k)}}


def _pretrain_losses(work: Path) -> list[float] | None:
    """Their pretraining's mean squared error after each epoch, from the ``pretrain_log.csv`` their
    Keras ``CSVLogger`` writes (None when the run did not pretrain)."""
    found = sorted(work.glob("results/**/pretrain_log.csv"))
    if not found:
        return None
    rows = found[0].read_text().splitlines()[1:]   # epoch,loss,val_loss
    return [float(row.split(",")[1]) for row in rows if row.strip()]


def _run(args, launch: list[str], their_cmd: list[str], env: dict, lines: list) -> tuple:
    """Run their code from a copy of ``--code`` in a temporary folder, appending what it printed to
    ``lines``; return the wall time, the kept weights, the labels the harness saved and their
    pretraining's loss per epoch."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "DECS"
        shutil.copytree(args.code, work, ignore=shutil.ignore_patterns("results", "__pycache__"))
        if args.pretrained_weights is not None:
            shutil.copy(args.pretrained_weights, work / "pretrained.h5")
        t0 = time.perf_counter()
        proc = subprocess.Popen([args.python, "-u", *launch, *their_cmd[1:]], cwd=work, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        kept = None
        for raw in proc.stdout:
            for line in raw.replace("\r", "\n").splitlines():  # Keras's progress bar rewrites its line
                if line.strip():
                    lines.append((time.perf_counter() - t0, line))
                    if EPOCH.match(line) or ITER.search(line) or "Time for" in line or "Final" in line \
                            or PRETRAIN_KMEANS.search(line) or line.startswith("[harness]"):
                        print(f"[authors-tf {lines[-1][0]:7.1f}s] {line}", flush=True)
                    if "Pretrained weights are saved" in line and args.keep_weights is not None:
                        kept = _keep_weights(work, args.keep_weights, args.out.stem)  # before clustering starts
        wall = time.perf_counter() - t0
        if proc.wait() != 0:
            tail = "\n".join(line for _, line in lines[-30:])
            raise SystemExit(f"the authors' code exited with {proc.returncode}:\n{tail}")
        labels = _labels(work / "labels.npz")
        losses = _pretrain_losses(work)
    return wall, kept, labels, losses


LOG_LINE = re.compile(r"^\[authors-tf\s+([\d.]+)s\] (.*)$")


def _read_log(path: Path) -> list[tuple[float, str]]:
    """The ``(seconds, line)`` pairs this script printed while a run went (``[authors-tf  Ns] line``)."""
    lines = [(float(m.group(1)), m.group(2)) for m in map(LOG_LINE.match, path.read_text().splitlines()) if m]
    if not lines:
        raise SystemExit(f"{path} holds no '[authors-tf  Ns] ...' lines: is it this script's output?")
    return lines


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--code", required=True, type=Path, help="the DECS/ folder of the authors' repository")
    p.add_argument("--commit", default=None, help="their commit, when --code is not inside a git checkout")
    p.add_argument("--python", required=True, help="a Python with TensorFlow 2.15 (see the docstring)")
    p.add_argument("--dataset", default="usps", choices=["usps", "mnist-test", "mnist"],
                   help="their dataset name; MNIST is read offline from DECS_DATA through the harness")
    p.add_argument("--seed", type=int, default=None,
                   help="seed their set_seed() with this instead of 2333, through benchmarks/authors_tf_harness.py "
                        "(a new draw of their code; their files unchanged)")
    p.add_argument("--pretrain-epochs", type=int, default=None,
                   help="their pretraining (run_exp.py); or give --pretrained-weights")
    p.add_argument("--pretrained-weights", type=Path, default=None,
                   help="start their clustering (main.py) from these Keras weights instead of pretraining "
                        "(e.g. ours, converted by benchmarks/authors_tf_weights.py)")
    p.add_argument("--weights-from", default=None, help="what --pretrained-weights holds, for the record")
    p.add_argument("--weights-profile", default=None,
                   help="when --pretrained-weights is one of our pretrainings: its profile (e.g. cpu)")
    p.add_argument("--weights-seed", type=int, default=None,
                   help="... and its seed; the record keeps both as pretrained_weights.ours")
    p.add_argument("--maxiter", type=int, required=True)
    p.add_argument("--threads", type=int, default=None, help="OMP/TF threads (default: TensorFlow's choice)")
    p.add_argument("--out", required=True, type=Path, help="the record to write (JSON)")
    p.add_argument("--replace", action="store_true", help="replace an existing record")
    p.add_argument("--keep-weights", type=Path, default=None,
                   help="a folder (outside the repository) to keep their pretrained autoencoder's "
                        "ae_weights.h5 in, named after --out, for our loop to start from")
    p.add_argument("--from-log", type=Path, default=None,
                   help="do not run: rebuild the record of a run that finished but whose record was not "
                        "written, from the lines this script printed for it ('[authors-tf  Ns] ...'), given "
                        "with that run's own arguments; the record says so and lacks what the log lacks")
    p.add_argument("--project-commit", default=None,
                   help="with --from-log: this project's commit when that run started")
    args = p.parse_args(argv)
    if (args.from_log is None) != (args.project_commit is None):
        raise SystemExit("give --from-log and --project-commit together (the log, and the commit it ran at)")
    if (args.pretrain_epochs is None) == (args.pretrained_weights is None):
        raise SystemExit("give exactly one of --pretrain-epochs (their pretraining) and "
                         "--pretrained-weights (their clustering from given weights)")
    if args.pretrained_weights is not None and not args.pretrained_weights.is_file():
        raise SystemExit(f"{args.pretrained_weights} does not exist: write it with "
                         "benchmarks/authors_tf_weights.py")
    if (args.weights_profile is None) != (args.weights_seed is None):
        raise SystemExit("give --weights-profile and --weights-seed together (which pretraining of ours)")
    if args.weights_seed is not None and args.pretrained_weights is None:
        raise SystemExit("--weights-profile/--weights-seed describe --pretrained-weights: give that too")
    if args.out.exists() and not args.replace:
        raise SystemExit(f"{args.out} exists: a run never overwrites another run's record "
                         "(choose another --out, or pass --replace to redo this one)")
    commit = args.commit or _git(args.code, "rev-parse", "HEAD")
    if not commit:
        raise SystemExit(f"{args.code} is not inside a git checkout: pass --commit <their commit> "
                         "(the record names it; this book runs 85f2586deb5a376383a915a772f4fa927e56d0c4)")
    if not (args.code / "run_exp.py").is_file():
        raise SystemExit(f"{args.code} has no run_exp.py: point --code at the DECS/ folder of the "
                         "authors' repository")
    if args.dataset == "usps" and not (args.code / "data/usps/usps_train.jf").is_file():
        raise SystemExit(f"{args.code}/data/usps/usps_train.jf is missing: gunzip the usps_train.jf.gz beside it")
    if args.seed is not None and args.pretrained_weights is not None:
        raise SystemExit("--seed seeds their run_exp.py (with pretraining); their main.py, which "
                         "--pretrained-weights runs, calls no set_seed()")
    mnist_dir = None
    if args.dataset.startswith("mnist"):  # their loader downloads mnist.npz: read the idx files instead
        from decs.data import data_root

        mnist_dir = data_root() / "mnist"
        if not (mnist_dir / "t10k-images-idx3-ubyte.gz").is_file():
            raise SystemExit(f"{mnist_dir} has no MNIST idx files: set DECS_DATA (see data/README.md)")
    versions = _versions(args.python)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    if args.threads:
        env.update(OMP_NUM_THREADS=str(args.threads), TF_NUM_INTRAOP_THREADS=str(args.threads),
                   TF_NUM_INTEROP_THREADS="1")
    if args.pretrained_weights is None:
        their_cmd = ["run_exp.py", "--dataset", args.dataset, "--trials", "1",
                     "--pretrain-epochs", str(args.pretrain_epochs), "--maxiter", str(args.maxiter)]
    else:  # main.py with run_exp.py's settings (update interval 30, batch 256); pretraining skipped
        their_cmd = ["main.py", "--dataset", args.dataset, "--pretrained-weights", "pretrained.h5",
                     "-i", "30", "--maxiter", str(args.maxiter), "--batch-size", "256"]
    harness_args, changes = [], []
    if args.seed is not None:
        harness_args += ["--seed", str(args.seed)]
        changes.append(f"their set_seed() wrapped by benchmarks/authors_tf_harness.py to seed Python, NumPy "
                       f"and PyTorch with {args.seed} instead of 2333 (their files unchanged)")
    if mnist_dir is not None:
        harness_args += ["--mnist-dir", str(mnist_dir)]
        changes.append("tensorflow.keras.datasets.mnist.load_data replaced by benchmarks/authors_tf_harness.py's "
                       "reader of MNIST's original idx files (DECS_DATA/mnist): the same uint8 images and labels "
                       "as Keras's mnist.npz, which this offline machine cannot download")
    if args.pretrained_weights is None:  # their run_exp.py: keep the labels their loop does not write out
        harness_args += ["--labels-out", "labels.npz"]
        changes.append("their FcDEC.fit and the KMeans it calls wrapped by benchmarks/authors_tf_harness.py to "
                       "save the k-means start's and the final labels (no random number drawn; the record's "
                       "cluster sizes and confusion matrices come from them)")
    launch = [their_cmd[0]] if not harness_args else [
        str(Path(__file__).with_name("authors_tf_harness.py")), *harness_args, "--script", their_cmd[0], "--"]
    lines: list[tuple[float, str]] = []
    if args.from_log is None:
        wall, kept, labels, losses = _run(args, launch, their_cmd, env, lines)
    else:  # a run that finished, rebuilt from what it printed: no labels, no timing beyond the log's
        lines, kept, labels, losses = _read_log(args.from_log), None, {}, None
        wall = lines[-1][0]
        if args.keep_weights is not None and (args.keep_weights / f"{args.out.stem}-ae_weights.h5").is_file():
            kept = args.keep_weights / f"{args.out.stem}-ae_weights.h5"
    rec = {
        "kind": "authors-tf",
        "dataset": args.dataset,
        "code": {"repository": "ChengZhanwen/DECS", "commit": commit,
                 "modified": False},
        "their_command": "python " + " ".join(their_cmd),
        "command": record_command("python benchmarks/authors_tf.py", argv if argv is not None else sys.argv[1:]),
        "environment_changes": changes,
        "settings": {"pretrain_epochs": args.pretrain_epochs, "maxiter": args.maxiter, "batch_size": 256,
                     "update_interval": 30, "augment": True,
                     "seed": (SEED_NOTE_MAIN if args.pretrained_weights is not None else SEED_NOTE
                              if args.seed is None else SEED_NOTE_DRAW.format(seed=args.seed)),
                     "seed_value": 2333 if args.seed is None and args.pretrained_weights is None else args.seed,
                     "threads": args.threads,
                     "pretrained_weights": None if args.pretrained_weights is None else {
                         "file": args.pretrained_weights.name, "from": args.weights_from,
                         "ours": None if args.weights_seed is None else {
                             "profile": args.weights_profile, "seed": args.weights_seed},
                         "sha256": hashlib.sha256(args.pretrained_weights.read_bytes()).hexdigest()}},
        "environment": {**versions, "platform": platform.platform(), "cpu_count": os.cpu_count(),
                        "cpu": platform.processor() or platform.machine(),
                        "this_project_commit": args.project_commit or _git(Path(__file__).parent, "rev-parse", "HEAD")},
        "wall_time_s": round(wall, 1),
        "kept_weights": None if kept is None else {
            "file": kept.name, "sha256": hashlib.sha256(kept.read_bytes()).hexdigest()},
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **parse(lines),
        **labels,
        # their MSE per pretraining epoch (their CSVLogger's file), beside our records' pretrain_loss
        "pretrain_loss": losses,
    }
    if args.from_log is not None:
        # the log holds only the lines printed above: not their pretraining's k-means lines, so the
        # epochs that ran none cannot be told apart, and not the labels (no sizes, no confusion)
        for key in ("pretrain_s_per_epoch", "pretrain_epochs_timed"):
            rec["speed_measured_here"].pop(key, None)
        rec["date"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(args.from_log.stat().st_mtime))
        rec["rebuilt_from_log"] = {
            "log": args.from_log.name, "sha256": hashlib.sha256(args.from_log.read_bytes()).hexdigest(),
            "why": "the run finished, but writing its record failed; this record was rebuilt from what this "
                   "script printed while it ran (the same command without --from-log/--project-commit)",
            "missing": "the harness's labels (cluster sizes, confusion matrices), their best label-selected "
                       "scores and the per-epoch time without their k-means; date is the log's last write"}
    write_record(rec, args.out)  # atomically, in the layout of every file under results/
    print(json.dumps({"record": str(args.out), "start": rec["start"], "their_final": rec["their_final"],
                      "speed_measured_here": rec["speed_measured_here"], "wall_time_s": rec["wall_time_s"]}))


if __name__ == "__main__":
    main()
