"""How far each long run of the CPU queue is, read from its checkpoints (printed when the queue starts).

    python benchmarks/queue_status.py [--checkpoints checkpoints]

For every checkpoint folder ``<dataset>/<profile>-seed<s>[+changes]/`` it prints the pretraining's epochs
done, its seconds per epoch so far (summed seconds over the epochs done, across every process that
resumed it) and each clustering checkpoint's iteration and seconds per iteration; for HaDis
(``<dataset>/hadis/<run>.pt``) the epochs done and seconds per epoch; for each, the hours left at
that rate (to the pretraining's epochs, the profile's ``maxiter`` or HaDis's epochs: a session of
about three hours finishes a stage only where this is under it), how many processes trained it and the
commits of their code (a record lists them under ``environment.commits``). Rates differ between
machines of the same kind (a replaced machine can be slower), so they are read from each checkpoint,
not assumed. A folder the machine lost (a new machine) simply is not there: the queue then starts those
runs again from the beginning, and the note of the session says so.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from decs.config import get_config
from decs.files import CheckpointError, read_checkpoint
from decs.paths import checkpoints_root


def trained_by(saved: dict) -> str:
    """How many processes trained a stage so far, the threads of each ("?" where not recorded) and the
    code they ran (decs.files.stage_provenance; one process and "not recorded" for a checkpoint older
    than either)."""
    commits = ", ".join(c[:8] if c else "not recorded" for c in saved.get("commits", [None]))
    n = saved.get("processes", 1)
    threads = ", ".join("?" if t is None else str(t) for t in saved.get("threads", [None] * n))
    return f"; {n} process{'es' * (n != 1)} (threads {threads}), code {commits}"


def pace(done: int, total: int | None, seconds: float, unit: str, digits: int = 1) -> str:
    """The seconds per epoch or iteration so far, and the hours still to go at that rate (each left
    out where it is unknown: nothing done yet, or no total)."""
    if not done:
        return ""
    text = f", {seconds / done:.{digits}f} s/{unit}"
    if total and total > done:
        text += f", {(total - done) * seconds / done / 3600:.1f} h left at this rate"
    return text


def clustering_iterations(path: Path) -> int | None:
    """The iterations a clustering checkpoint runs to: ``maxiter=N`` in its file name, else its
    profile's (the folder is ``<profile>-seed<s>[+changes]``); None for a profile not known."""
    named = re.search(r"maxiter=(\d+)", path.stem)
    if named:
        return int(named.group(1))
    try:
        return get_config(path.parent.name.split("-seed")[0]).maxiter
    except ValueError:
        return None


def describe(path: Path) -> str:
    """One line about one checkpoint file."""
    try:
        state = read_checkpoint(path)
    except CheckpointError as err:
        return f"{path}: unreadable ({err})"
    if state is None:
        return f"{path}: gone"
    if "losses" in state:  # pretraining
        done, secs = len(state["losses"]), state.get("seconds", 0.0)
        total = (state.get("key") or {}).get("pretrain_epochs")
        return (f"{path}: pretraining {done}/{total if total is not None else '?'} epochs"
                f"{pace(done, total, secs, 'epoch')}{trained_by(state)}")
    if "state" in state and "iteration" in state["state"]:  # a DECS or DEC clustering run
        st = state["state"]
        it, secs = st["iteration"], st.get("seconds", 0.0)
        return (f"{path}: clustering at iteration {it:,}"
                f"{pace(it, clustering_iterations(path), secs, 'iteration', 3)}{trained_by(st)}")
    if "epoch" in state:  # HaDis
        done, secs = state["epoch"], state.get("seconds", 0.0)
        total = (state.get("key") or {}).get("epochs")
        return (f"{path}: HaDis at epoch {done}/{total if total is not None else '?'}"
                f"{pace(done, total, secs, 'epoch')}{trained_by(state)}")
    return f"{path}: a checkpoint of unknown kind"


def main(argv: list[str] | None = None) -> list[str]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoints", type=Path, default=None, help="default: decs.paths.checkpoints_root()")
    args = p.parse_args(argv)
    root = args.checkpoints or checkpoints_root()
    files = sorted(f for f in root.glob("*/*/*.pt") if "-epoch" not in f.name) if root.is_dir() else []
    lines = [describe(f) for f in files] or [f"no checkpoints under {root}: every run starts from the beginning"]
    for line in lines:
        print(f"[queue_status] {line}", flush=True)
    return lines


if __name__ == "__main__":
    main()
