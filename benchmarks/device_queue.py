"""The prepared command of a GPU lease: fill the paper's table, most valuable cell first, and stop
cleanly before the lease ends.

A lease gives one command a few minutes on a GPU; what it writes to ``$OUT`` (at most 8 files)
comes back. This script, run there by ``benchmarks/device_table1.sh run``:

1. checks and prints what it runs on: device, torch, free GPU memory, the data found, ``--out``;
2. unpacks what an earlier lease returned (``--resume-from``): checkpoints of unfinished runs
   and records;
3. runs one ``python -m decs reproduce --dataset D --seeds S --skip-done --resume`` per dataset
   and seed (k-means on pixels, DECS, DEC), ``--parallel`` at a time, seed 0 of every dataset
   before seed 1 of any;
   Then HaDis (``python -m decs train --method hadis``) on the datasets of ``--hadis-datasets``
   (default MNIST and Fashion-MNIST, the ones a CPU cannot afford) that are among the datasets
   run, one job per dataset and seed, after every DECS job;
4. at ``--deadline`` minus ``--margin`` seconds interrupts the running jobs (tests stop them at a
   point of the training instead, ``--stop-at-iteration``, not at a time). Checkpoints are
   written atomically, every 10 pretraining epochs and every ``checkpoint_every`` clustering
   iterations: an interrupted run resumes from its last one, to the same result;
5. packs into ``--out``: ``records.tar.gz`` (new records and their model files, paths relative to
   the results folder), ``checkpoints.tar`` (what the unfinished runs need to resume, within a
   size cap), ``log.txt`` and ``summary.json``. It also packs every minute, so a lease cut
   short still returns what was done.

On the CPU, at ci scale (what ``tests/test_device_queue.py`` runs)::

    python benchmarks/device_queue.py --datasets usps --seeds 0 --profile ci \\
        --set subset=300 pretrain_epochs=12 maxiter=60 --deadline 120 --margin 5 --out /tmp/out
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHIMS = Path(__file__).resolve().parent / "device_shims"  # a do-nothing tqdm, used only if tqdm is missing

PRIORITY = ("usps", "mnist-test", "mnist", "fashion-mnist")  # the table's datasets, cheapest first
RECORDS = ("kmeans-raw", "decs", "dec")  # the records one `reproduce` job writes
HADIS_DATASETS = ("mnist", "fashion-mnist")  # HaDis jobs, after the DECS ones: what a CPU cannot afford
UPLOAD_LIMIT = 64 * 2**20  # what one device call may carry, in bytes
UPLOAD_SPARE = 2 * 2**20   # kept free under the limit when sizing checkpoints.tar
MAX_OUT_FILES = 8          # what comes back from $OUT
# Model files (7 MB for one seed's pretrained network, DECS and DEC) fit the 30 MB that results/ may
# take only for the dataset the chapters load; other datasets' records name none by default.
MODEL_FILE_DATASETS = ("usps",)
PACK_EVERY_S = 60          # repack this often while jobs run
GRACE_S = 20               # how long an interrupted job may take to exit before it is killed
GIB = 2**30


# ----------------------------------------------------------------------------------- the log
class Log:
    """Timestamped lines to stdout (the device tool shows its tail) and to ``log.txt``."""

    def __init__(self):
        self.t0 = time.monotonic()
        self.file = None
        self.lock = threading.Lock()

    def open(self, path: Path) -> None:
        """Also write every line to ``path`` from now on."""
        self.file = open(path, "a", buffering=1)

    def __call__(self, message: str) -> None:
        line = f"[{time.monotonic() - self.t0:6.1f}s] {message}"
        with self.lock:
            print(line, flush=True)
            if self.file is not None:
                self.file.write(line + "\n")


LOG = Log()
STOP = threading.Event()  # set by SIGTERM / SIGINT: stop the jobs now and pack


def _on_signal(signum, frame) -> None:
    STOP.set()  # nothing else here: the main loop logs it (a handler must not wait for the log's lock)


# ------------------------------------------------------------------------------- arguments
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring and ``--help``)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--deadline", type=float, default=480,
                   help="seconds from start the whole command may take (default 480)")
    p.add_argument("--margin", type=float, default=45,
                   help="stop the jobs this many seconds before the deadline, to pack (default 45)")
    p.add_argument("--datasets", nargs="+", default=None,
                   help=f"default: those whose files are in the data folder, in the order {' '.join(PRIORITY)}")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--profile", default="paper")
    p.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                   help="config overrides, passed to every job (e.g. a ci-scale test)")
    p.add_argument("--hadis-datasets", nargs="*", default=list(HADIS_DATASETS),
                   help="HaDis jobs (after the DECS ones) for these of the datasets run (default: "
                        f"{' '.join(HADIS_DATASETS)}; none: no HaDis jobs)")
    p.add_argument("--hadis-profile", default=None, help="HaDis's profile (default: --profile)")
    p.add_argument("--hadis-set", nargs="*", default=[], metavar="FIELD=VALUE",
                   help="HaDis config overrides (decs.hadis.HaDisConfig fields), passed to every HaDis job")
    p.add_argument("--model-files", choices=("auto", "all", "none"), default=None,
                   help="passed to every job (auto: seed 0 of protocol runs); default: auto for "
                        f"{' '.join(MODEL_FILE_DATASETS)}, none for the other datasets (the 30 MB budget)")
    p.add_argument("--parallel", type=int, default=None,
                   help="concurrent jobs; default 1 on the CPU, on a GPU from its free memory (at most 6)")
    p.add_argument("--out", default=os.environ.get("OUT"), help="an empty folder; default $OUT")
    p.add_argument("--results", default=str(REPO / "results"), help="where records go (default results/)")
    p.add_argument("--checkpoints", default=os.environ.get("DECS_CHECKPOINTS") or str(REPO / ".device" / "checkpoints"),
                   help="checkpoint root (default $DECS_CHECKPOINTS, else .device/checkpoints)")
    p.add_argument("--resume-from", default=None,
                   help="a folder (or tarball) with checkpoints.tar and/or records.tar.gz an earlier lease returned")
    p.add_argument("--stop-at-iteration", type=int, default=None, metavar="N",
                   help="for tests: stop the jobs, as at the deadline, once a running job's clustering checkpoint "
                        "holds at least N iterations (a stop point that does not depend on the machine's speed)")
    p.add_argument("--checkpoint-cap-mb", type=float, default=None,
                   help="largest checkpoints.tar; default: what keeps the next upload (this one plus the "
                        f"new checkpoints and records) under {UPLOAD_LIMIT // 2**20} MiB")
    args = p.parse_args(argv)
    if not args.out:
        raise SystemExit("give --out DIR (or set OUT): the empty folder the results are packed into.")
    if args.margin >= args.deadline:
        raise SystemExit(f"--margin {args.margin} must be smaller than --deadline {args.deadline}.")
    # absolute: the jobs run in the repository root, whatever the caller's working directory
    args.out, args.results, args.checkpoints = (Path(p).absolute() for p in (args.out, args.results, args.checkpoints))
    return args


# ------------------------------------------------------------------------------ the checks
def check_out(out: Path) -> None:
    """``out`` exists (created if need be), is empty and is writable; the log goes there."""
    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):
        raise SystemExit(f"--out {out} is not empty ({sorted(p.name for p in out.iterdir())[:5]}...): a lease "
                         f"returns at most {MAX_OUT_FILES} files, so the queue packs into an empty folder. "
                         "Give another one.")
    probe = out / ".probe"
    try:
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise SystemExit(f"--out {out} is not writable ({e}).")
    LOG.open(out / "log.txt")
    LOG(f"out: {out} (empty, writable)")


def check_imports() -> str:
    """The packages the jobs import. Returns the ``PYTHONPATH`` entries the jobs need: the
    repository, and the do-nothing tqdm when the real one is missing."""
    missing = [m for m in ("numpy", "torch", "sklearn", "scipy") if importlib.util.find_spec(m) is None]
    if missing:
        raise SystemExit(f"missing Python packages {missing}: this machine cannot run the jobs "
                         "(the device has no network; run on a machine with PyTorch and scikit-learn).")
    paths = [str(REPO)]
    if importlib.util.find_spec("tqdm") is None:
        LOG(f"tqdm is missing: using the do-nothing stand-in in {SHIMS} (jobs run --quiet, so no bar is lost)")
        paths.append(str(SHIMS))
        sys.path.append(str(SHIMS))
    return os.pathsep.join(paths)


def device_info() -> dict:
    """What the jobs will run on: device name, torch version, GPU memory (free and total, GiB)."""
    import torch

    info = {"torch": torch.__version__, "python": platform.python_version(), "cpu_count": os.cpu_count()}
    if torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        info.update(device=torch.cuda.get_device_name(0), cuda=torch.version.cuda,
                    gpu_free_gib=round(free / GIB, 1), gpu_total_gib=round(total / GIB, 1))
    else:
        info["device"] = f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    return info


def find_datasets(requested: list[str] | None) -> list[str]:
    """The datasets to run: ``requested`` (each must be present), else every dataset of
    :data:`PRIORITY` whose files are in the data folder, in that order."""
    from decs import data

    LOG(f"data folder: {data.data_root()} (DECS_DATA={os.environ.get('DECS_DATA', '')!r})")
    found = [name for name in PRIORITY if data.is_available(name)]
    LOG(f"data found (files present, checksums right): {found or 'none'}")
    if requested is None:
        if not found:
            raise SystemExit(f"no dataset under {data.data_root()}: copy them with "
                             "`bash benchmarks/device_table1.sh prepare usps mnist-test` and carry .device.")
        return found
    names = [data.canonical_name(n) for n in requested]
    absent = [n for n in names if not data.is_available(n)]
    if absent:
        raise SystemExit(f"--datasets {absent} not found under {data.data_root()}: copy them with "
                         f"`bash benchmarks/device_table1.sh prepare {' '.join(absent)}` and carry .device.")
    return names


def choose_parallel(info: dict, n_jobs: int) -> int:
    """Concurrent jobs: 1 on the CPU; on a GPU one per 4 GiB free (a job needs about 1-2 GiB),
    at most 6, at most one per two CPU cores, never more than there are jobs."""
    if "gpu_free_gib" not in info:
        return 1
    by_memory = int(info["gpu_free_gib"] // 4)
    return max(1, min(6, by_memory, (info.get("cpu_count") or 2) // 2, n_jobs))


# --------------------------------------------------------------------------------- files
def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root``: relative path → (size, modification time in ns)."""
    if not root.exists():
        return {}
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*") if p.is_file()}


def read_json(path: Path) -> dict | None:
    """The JSON at ``path``, or None when it is missing or incomplete (being written)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def upload_bytes(root: Path = REPO) -> int:
    """Bytes a device call carries from this checkout: git's tracked and untracked-but-not-ignored
    files plus ``.device/``. Where there is no git (the device's copy is exactly what was
    carried), every file but ``.git/``."""
    out = None
    if (root / ".git").exists():
        try:
            out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                 cwd=root, capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            out = None
    if out is not None:
        files = [root / f for f in out.split("\0") if f]
        device = [p for p in (root / ".device").rglob("*")] if (root / ".device").exists() else []
        return sum(p.stat().st_size for p in files + device if p.is_file())
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and ".git" not in p.relative_to(root).parts)


def _add_file(tar: tarfile.TarFile, path: Path, arcname: str) -> None:
    """Add one file, its size taken from the open file: a checkpoint replaced meanwhile (they
    are replaced atomically) is read whole, the old or the new one."""
    with open(path, "rb") as f:
        info = tar.gettarinfo(arcname=arcname, fileobj=f)
        tar.addfile(info, f)


def write_tar(dest: Path, files: dict[str, Path], gzip: bool) -> None:
    """Write ``files`` (name in the archive → path) to ``dest``, replacing it only when done
    (:func:`decs.files.atomic_write`)."""
    from decs.files import atomic_write  # imported late, as every decs import here (check_imports)

    def write(out) -> None:
        with tarfile.open(fileobj=out, mode="w:gz" if gzip else "w") as tar:
            for arcname, path in files.items():
                _add_file(tar, path, arcname)

    atomic_write(dest, write)


def write_json(dest: Path, obj) -> None:
    """Write JSON to ``dest``, replacing it only when done (:func:`decs.files.atomic_write`)."""
    from decs.files import atomic_write

    atomic_write(dest, json.dumps(obj, indent=1) + "\n")


def unpack(archive: Path, root: Path, overwrite: bool) -> list[str]:
    """Extract the regular files of ``archive`` under ``root`` (names that would leave it are
    refused); an existing file is kept unless ``overwrite``. Returns the names extracted."""
    from decs.files import atomic_write

    done = []
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            dest = (root / member.name).resolve()
            if not member.isfile() or root.resolve() not in dest.parents:
                continue
            if dest.exists() and not overwrite:
                LOG(f"  kept the existing {dest} (not replaced by the one in {archive.name})")
                continue
            atomic_write(dest, tar.extractfile(member).read())
            done.append(member.name)
    return done


def resume_archives(path: Path | None) -> dict[str, Path]:
    """The archives an earlier lease returned, found in ``path`` (a folder or one tarball)."""
    if path is None:
        return {}
    if not path.exists():
        raise SystemExit(f"--resume-from {path} does not exist.")
    candidates = [path] if path.is_file() else [path / "checkpoints.tar", path / "records.tar.gz"]
    found = {p.name: p for p in candidates if p.is_file() and p.name in ("checkpoints.tar", "records.tar.gz")}
    if not found:
        raise SystemExit(f"--resume-from {path}: expected checkpoints.tar and/or records.tar.gz there.")
    return found


def checkpoint_cap(cap_mb: float | None, uploaded: int, archives: dict[str, Path]) -> tuple[int, bool]:
    """The largest checkpoints.tar in bytes, and whether it was computed: ``cap_mb`` when given,
    else what keeps the next lease's upload under :data:`UPLOAD_LIMIT` (this upload again, less
    the archives in it that the new ones replace, plus :data:`UPLOAD_SPARE`). :func:`pack` also
    subtracts the new records, which will be committed and so travel next time."""
    if cap_mb is not None:
        return int(cap_mb * 2**20), False
    replaced = sum(a.stat().st_size for a in archives.values() if REPO in a.absolute().parents)
    return UPLOAD_LIMIT - UPLOAD_SPARE - (uploaded - replaced), True


def prepared_commit() -> str | None:
    """The commit ``device_table1.sh prepare`` noted in ``.device/commit.txt`` (a copy of the
    working tree without ``.git`` writes records whose ``commit`` is null; this says which code
    travelled). Logged with the files that differed from it."""
    path = REPO / ".device" / "commit.txt"
    if not path.exists():
        return None
    commit, *changed = path.read_text().split("\n")
    changed = [line[3:] for line in changed if line.strip()]
    LOG(f"code: commit {commit}" + (f", with changes to {' '.join(changed)}" if changed else ""))
    return commit


# ----------------------------------------------------------------------------------- jobs
@dataclass
class Job:
    """One ``reproduce`` run: k-means on pixels, DECS and DEC for one dataset and seed; or, with
    ``kind="hadis"``, one HaDis run (``train --method hadis``; its only record and checkpoint
    are called "hadis")."""
    dataset: str
    seed: int
    records: dict[str, Path]         # RECORDS entry → record path
    checkpoint_dir: Path             # pretrain.pt and the clustering checkpoints
    cluster_files: dict[str, Path]   # "decs"/"dec" → clustering checkpoint
    batch_size: int
    status: str = "pending"          # pending, running, done, already_done, unfinished, failed, not_started
    proc: subprocess.Popen | None = None
    started: float | None = None     # time.monotonic()
    ended: float | None = None
    tail: deque = field(default_factory=lambda: deque(maxlen=40))
    kind: str = "reproduce"          # "reproduce" (k-means, DECS, DEC) or "hadis"

    @property
    def name(self) -> str:
        """``dataset/seedS``, ``hadis:dataset/seedS`` for a HaDis job."""
        return f"{'hadis:' if self.kind == 'hadis' else ''}{self.dataset}/seed{self.seed}"

    def missing(self) -> list[str]:
        """The records this job has not written yet (complete JSON files only count)."""
        return [m for m, p in self.records.items() if read_json(p) is None]


def make_jobs(datasets: list[str], seeds: list[int], profile: str, sets: list[str], results: Path,
              checkpoints: Path, hadis_datasets: list[str] | tuple[str, ...] = (), hadis_profile: str | None = None,
              hadis_sets: list[str] | None = None) -> list[Job]:
    """One job per (seed, dataset), seed 0 of every dataset first: the most valuable cells of
    the table are filled first. Then one HaDis job per (seed, dataset) for the datasets that are
    both run and in ``hadis_datasets``. Names and paths come from ``decs.__main__`` and
    ``decs.hadis``, as the jobs use them."""
    from decs.__main__ import _parse_overrides, cluster_tag, pretraining_name, record_path
    from decs.config import get_config

    cfg = get_config(profile, **_parse_overrides(sets))
    jobs = []
    for seed in seeds:
        for dataset in datasets:
            ck = checkpoints / dataset / pretraining_name(cfg, seed)
            jobs.append(Job(dataset, seed,
                            records={m: record_path(dataset, m, cfg, seed, results) for m in RECORDS},
                            checkpoint_dir=ck,
                            cluster_files={m: ck / f"{m}{cluster_tag(cfg)}.pt" for m in ("decs", "dec")},
                            batch_size=cfg.batch_size))
    from decs import hadis

    hcfg = hadis.get_hadis_config(hadis_profile or profile, **_parse_overrides(hadis_sets or [], hadis.HaDisConfig))
    for seed in seeds:
        for dataset in [d for d in datasets if d in hadis_datasets]:
            name = hadis.run_name(hcfg, seed)
            ck = checkpoints / dataset / "hadis"
            jobs.append(Job(dataset, seed, records={"hadis": results / dataset / "hadis" / f"{name}.json"},
                            checkpoint_dir=ck, cluster_files={"hadis": ck / f"{name}.pt"},
                            batch_size=hcfg.batch_size, kind="hadis"))
    return jobs


def model_files(job: Job, args: argparse.Namespace) -> str:
    """``--model-files`` for ``job``: what the call asked for, else auto for the datasets of
    :data:`MODEL_FILE_DATASETS` and none for the others."""
    return args.model_files or ("auto" if job.dataset in MODEL_FILE_DATASETS else "none")


def start(job: Job, args: argparse.Namespace, env: dict) -> None:
    """Start ``job`` as a ``python -m decs reproduce`` (or ``train --method hadis``) subprocess;
    its output goes to the log."""
    if job.kind == "hadis":
        cmd = [sys.executable, "-m", "decs", "train", "--method", "hadis", "--dataset", job.dataset,
               "--profile", args.hadis_profile or args.profile, "--seed", str(job.seed), "--skip-done", "--resume",
               "--quiet", "--results", str(args.results), "--model-files", model_files(job, args)]
        if args.hadis_set:
            cmd += ["--set", *args.hadis_set]
    else:
        cmd = [sys.executable, "-m", "decs", "reproduce", "--dataset", job.dataset, "--profile", args.profile,
               "--seeds", str(job.seed), "--skip-done", "--resume", "--quiet", "--results", str(args.results),
               "--model-files", model_files(job, args)]
        if args.set:
            cmd += ["--set", *args.set]
    LOG(f"{job.name}: start: {' '.join(cmd[1:])}")
    job.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1)
    job.started, job.status = time.monotonic(), "running"

    def relay():  # one thread per job: its output lines, prefixed with its name, into the log
        for line in job.proc.stdout:
            job.tail.append(line.rstrip())
            LOG(f"{job.name}| {line.rstrip()}")

    threading.Thread(target=relay, daemon=True).start()


def finish(job: Job, stopped: bool) -> None:
    """Record how ``job`` ended: done when every record is there, else unfinished (we stopped
    it) or failed (it stopped by itself)."""
    job.ended = job.ended or time.monotonic()
    rc = job.proc.returncode
    missing = job.missing()
    job.status = "done" if not missing else "unfinished" if stopped else "failed"
    LOG(f"{job.name}: {job.status} after {job.ended - job.started:.0f} s (exit code {rc}"
        f"{', missing ' + ', '.join(missing) if missing else ''})")


def stop(jobs: list[Job]) -> None:
    """Interrupt the running jobs (SIGINT: Python unwinds; checkpoints on disk are whole),
    wait up to :data:`GRACE_S` seconds, then kill what is left."""
    running = [j for j in jobs if j.status == "running"]
    for job in running:
        LOG(f"{job.name}: interrupting")
        job.proc.send_signal(signal.SIGINT)
    end = time.monotonic() + GRACE_S
    for job in running:
        try:
            job.proc.wait(timeout=max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            LOG(f"{job.name}: still running after {GRACE_S} s: killed")
            job.proc.kill()
            job.proc.wait()
        finish(job, stopped=True)
    for job in jobs:
        if job.status == "pending":
            job.status = "not_started"


# ------------------------------------------------------------------------------- progress
def _load_state(path: Path) -> dict | None:
    """A checkpoint's contents (on the CPU), or None when it is absent or unreadable."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError, ValueError):
        return None


def progress(job: Job) -> dict:
    """How far ``job``'s checkpoints are: pretraining epochs, clustering iterations, and the
    seconds of training they hold (what resuming from them saves)."""
    out, seconds = {}, 0.0
    pre = _load_state(job.checkpoint_dir / "pretrain.pt")
    if pre is not None:
        n = pre["key"]["n"] if pre.get("key") else None
        out["pretrain_epochs"] = len(pre["losses"])
        seconds += pre["seconds"]
        if n and pre["seconds"] > 0:
            out["pretrain_steps_per_s"] = round(len(pre["losses"]) * math.ceil(n / job.batch_size) / pre["seconds"], 1)
    for method, path in job.cluster_files.items():
        state = _load_state(path) if path.exists() else None
        if state is not None and job.kind == "hadis":  # decs.hadis.fit_hadis's checkpoint: per epoch
            out["hadis_epochs"] = state["epoch"]
            seconds += state["seconds"]
            if state["seconds"] > 0:
                out["hadis_epochs_per_min"] = round(60 * state["epoch"] / state["seconds"], 2)
        elif state is not None:
            s = state["state"]
            out[f"{method}_iterations"] = s["iteration"]
            seconds += s["seconds"]
            if s["seconds"] > 0:
                out[f"{method}_steps_per_s"] = round(s["iteration"] / s["seconds"], 1)
    out["checkpointed_seconds"] = round(seconds, 1)
    return out


def stop_point_reached(jobs: list[Job], iterations: int | None) -> bool:
    """Whether a running job's clustering checkpoint holds at least ``iterations`` iterations
    (``--stop-at-iteration``; never when it is None). Checkpoints are replaced atomically, so a
    file read here is whole."""
    if iterations is None:
        return False
    for job in jobs:
        if job.status != "running" or job.kind == "hadis":
            continue
        for path in job.cluster_files.values():
            state = _load_state(path) if path.exists() else None
            if state is not None and state["state"]["iteration"] >= iterations:
                return True
    return False


def job_summary(job: Job, device: str, prog: dict | None) -> dict:
    """One row of summary.json: status, wall time, final ACC/NMI of each record written, and
    steps per second (from the records, else from the checkpoints; with ``--parallel`` > 1
    the jobs share the device, so these are per-job rates). ``prog``: :func:`progress` of an
    unfinished job. ``started_s``: when it started, in seconds from the queue's start."""
    row = {"dataset": job.dataset, "seed": job.seed, "status": job.status, "device": device,
           "started_s": round(job.started - LOG.t0, 1) if job.started else None,
           "wall_s": round((job.ended or time.monotonic()) - job.started, 1) if job.started else None,
           "exit_code": job.proc.returncode if job.proc else None, "final": {}, "steps_per_s": {}}
    for method, path in job.records.items():
        rec = read_json(path)
        if rec is None:
            continue
        row["final"][method] = {k: rec["final"][k] for k in ("acc", "nmi")}
        wall = rec.get("wall_time_s", {})
        if method == "hadis" and wall.get("train"):
            row["steps_per_s"]["hadis"] = round(rec["epochs"] * (rec["n_samples"] // job.batch_size) / wall["train"], 1)
        if method != "kmeans-raw" and wall.get("pretrain") and wall.get("cluster"):
            steps = len(rec["pretrain_loss"]) * math.ceil(rec["n_samples"] / job.batch_size)
            row["steps_per_s"]["pretrain"] = round(steps / wall["pretrain"], 1)
            row["steps_per_s"][method] = round(rec["iterations"] / wall["cluster"], 1)
    if prog is not None:
        row["progress"] = prog
    if job.status == "failed":
        row["log_tail"] = list(job.tail)[-15:]
    return row


# ---------------------------------------------------------------------------------- packing
def record_files(results: Path, before: dict) -> dict[str, Path]:
    """New or changed files under ``results`` that a lease returns: complete JSON records, the
    model files they name, and any other new file; not half-written records, temporary files,
    or model files no record names (a run stopped before writing its record)."""
    changed = sorted(rel for rel, sig in snapshot(results).items() if before.get(rel) != sig)
    keep, named = {}, set()
    for rel in changed:
        if rel.endswith(".json"):
            rec = read_json(results / rel)
            if rec is None:
                continue
            keep[rel] = results / rel
            named.update(f["path"] for f in rec.get("model_files", {}).values())
    for rel in changed:
        if (rel.endswith(".pt") and rel in named) or not rel.endswith((".json", ".pt", ".tmp", ".partial")):
            keep[rel] = results / rel
    return keep


def checkpoint_files(jobs: list[Job], root: Path, cap: int, prog: dict[str, dict]) -> dict[str, Path]:
    """What the unfinished jobs need to resume: ``pretrain.pt`` and the clustering checkpoints
    of methods without a record. Jobs whose checkpoints hold the most training time come first;
    a job that does not fit under ``cap`` bytes is left out (and logged). Pretraining snapshots
    (``pretrain-epochNNN.pt``, for the pretraining-length study) only go in with room to spare.
    ``prog``: job name → :func:`progress`."""
    rows = []
    for i, job in enumerate(jobs):
        if job.status in ("done", "already_done"):
            continue
        need = [job.checkpoint_dir / "pretrain.pt"] + [job.cluster_files[m] for m in job.missing()
                                                         if m in job.cluster_files]
        need = [p for p in need if p.exists()]
        if need:
            rows.append((-prog[job.name]["checkpointed_seconds"], i, job, need))
    chosen, total = {}, 0
    for _, _, job, need in sorted(rows, key=lambda r: r[:2]):
        size = sum(p.stat().st_size for p in need)
        if total + size > cap:
            LOG(f"{job.name}: checkpoints ({size / 2**20:.1f} MB) do not fit the cap of {cap / 2**20:.1f} MB: not returned")
            continue
        chosen.update({p.relative_to(root).as_posix(): p for p in need})
        total += size
    for _, _, job, _ in sorted(rows, key=lambda r: r[:2]):
        for p in sorted(job.checkpoint_dir.glob("pretrain-epoch*.pt")):
            rel = p.relative_to(root).as_posix()
            if rel in chosen or not any(c.parent == p.parent for c in chosen.values()):
                continue
            if total + p.stat().st_size <= cap:
                chosen[rel] = p
                total += p.stat().st_size
    return chosen


def pack(jobs: list[Job], args: argparse.Namespace, context: dict, final: bool) -> None:
    """Write summary.json, records.tar.gz and checkpoints.tar into ``--out`` (each replaced
    whole, so a lease cut short returns the last complete ones)."""
    out, device = args.out, context["device"]["device"]
    records = record_files(args.results, context["results_before"])
    if records:
        write_tar(out / "records.tar.gz", records, gzip=True)
    new_json = sum(p.stat().st_size for rel, p in records.items() if rel.endswith(".json"))
    cap = context["checkpoint_cap"] - (new_json if context["cap_is_auto"] else 0)
    prog = {job.name: progress(job) for job in jobs if job.status not in ("done", "already_done")}
    ckpts = checkpoint_files(jobs, args.checkpoints, max(0, cap), prog)
    if ckpts:
        write_tar(out / "checkpoints.tar", ckpts, gzip=False)
    elif (out / "checkpoints.tar").exists():
        (out / "checkpoints.tar").unlink()  # every job finished since the last pack
    summary = {**{k: v for k, v in context.items() if k not in ("results_before",)},
               "final_pack": final, "elapsed_s": round(time.monotonic() - LOG.t0, 1),
               "records_returned": sorted(records), "checkpoints_returned": sorted(ckpts),
               "checkpoints_bytes": sum(p.stat().st_size for p in ckpts.values()),
               "jobs": [job_summary(job, device, prog.get(job.name)) for job in jobs]}
    write_json(out / "summary.json", summary)
    if final:
        LOG(f"packed: {len(records)} result files in records.tar.gz, {len(ckpts)} checkpoint files "
            f"({summary['checkpoints_bytes'] / 2**20:.1f} MB) in checkpoints.tar")


# ------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    """Check, resume, run the queue until done or the deadline, pack. Exit code 0 unless a
    job failed (an unfinished job is not a failure: the next lease resumes it)."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    stop_at = LOG.t0 + args.deadline - args.margin
    check_out(args.out)
    pythonpath = check_imports()
    sys.path.insert(0, str(REPO))
    archives = resume_archives(Path(args.resume_from) if args.resume_from else None)
    uploaded = upload_bytes()
    info = device_info()
    LOG(f"device: {info['device']}; torch {info['torch']}; python {info['python']}; {info['cpu_count']} CPU cores"
        + (f"; GPU memory free {info['gpu_free_gib']} of {info['gpu_total_gib']} GiB" if "gpu_free_gib" in info else ""))
    datasets = find_datasets(args.datasets)
    for name, archive in archives.items():  # before the jobs are listed: their records may be here
        into = args.checkpoints if name == "checkpoints.tar" else args.results
        got = unpack(archive, into, overwrite=name == "checkpoints.tar")
        LOG(f"resumed from {archive}: {len(got)} files into {into}")
    jobs = make_jobs(datasets, args.seeds, args.profile, args.set, args.results, args.checkpoints,
                     args.hadis_datasets, args.hadis_profile, args.hadis_set)
    for job in jobs:
        if not job.missing():
            job.status = "already_done"
            LOG(f"{job.name}: every record exists already: skipped")
    todo = [j for j in jobs if j.status == "pending"]
    parallel = args.parallel or choose_parallel(info, len(todo))
    cap, auto = checkpoint_cap(args.checkpoint_cap_mb, uploaded, archives)
    LOG(f"{len(todo)} jobs to run ({', '.join(j.name for j in todo) or 'none'}), {parallel} at a time; "
        f"stop at {args.deadline - args.margin:.0f} s; upload was {uploaded / 2**20:.1f} MB, "
        f"checkpoints.tar cap {cap / 2**20:.1f} MB")
    env = {**os.environ, "PYTHONPATH": pythonpath + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else ""),
           "DECS_CHECKPOINTS": str(args.checkpoints.absolute())}
    # CPU threads per job (k-means, metrics): the cores shared out, unless the caller chose.
    # MKL follows OMP_NUM_THREADS when MKL_NUM_THREADS is unset.
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // parallel)))
    context = {"command": "python benchmarks/device_queue.py " + " ".join(sys.argv[1:] if argv is None else argv),
               "code_prepared_at": prepared_commit(),
               "device": info, "profile": args.profile, "set": args.set, "datasets": datasets, "seeds": args.seeds,
               "parallel": parallel, "deadline_s": args.deadline, "margin_s": args.margin,
               "checkpoint_cap": cap, "cap_is_auto": auto, "results_before": snapshot(args.results)}

    last_pack = time.monotonic()
    while True:
        for job in jobs:
            if job.status == "running" and job.proc.poll() is not None:
                finish(job, stopped=STOP.is_set())  # a Ctrl-C reaches the jobs too
                pack(jobs, args, context, final=False)
        at_stop_point = stop_point_reached(jobs, args.stop_at_iteration)
        if STOP.is_set() or time.monotonic() >= stop_at or at_stop_point:
            if any(j.status in ("running", "pending") for j in jobs):
                LOG("signal received (SIGTERM/SIGINT): stopping" if STOP.is_set() else
                    f"stop point reached (a checkpoint holds {args.stop_at_iteration} iterations): stopping"
                    if at_stop_point else "deadline reached: stopping")
            break
        pending = [j for j in jobs if j.status == "pending"]
        while pending and sum(j.status == "running" for j in jobs) < parallel:
            start(pending.pop(0), args, env)
        if not any(j.status in ("running", "pending") for j in jobs):
            break
        if time.monotonic() - last_pack >= PACK_EVERY_S:
            pack(jobs, args, context, final=False)
            last_pack = time.monotonic()
        STOP.wait(0.5 if args.stop_at_iteration is None else 0.05)
    stop(jobs)
    pack(jobs, args, context, final=True)
    for job in jobs:
        LOG(f"{job.name}: {job.status}")
    files = sorted(p.name for p in args.out.iterdir())
    LOG(f"{len(files)} files in {args.out}: {', '.join(files)}")
    if len(files) > MAX_OUT_FILES:
        LOG(f"WARNING: more than {MAX_OUT_FILES} files: only {MAX_OUT_FILES} come back")
    return 1 if any(j.status == "failed" for j in jobs) else 0


if __name__ == "__main__":
    sys.exit(main())
