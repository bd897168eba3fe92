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
from pathlib import Path

import re

from decs.config import get_config
from decs.files import CheckpointError, read_checkpoint
from decs.paths import checkpoints_root


def trained_by(saved: dict) -> str:
    """How many processes trained a stage so far, and the code they ran (decs.files.stage_provenance;
    one process and "not recorded" for a checkpoint older than either)."""
    commits = ", ".join(c[:8] if c else "not recorded" for c in saved.get("commits", [None]))
    n = saved.get("processes", 1)
    return f"; {n} process{'es' * (n != 1)}, code {commits}"


def left(done: int, total: int | None, seconds: float) -> str:
    """The hours still to go at the rate so far ("" when the total or the rate is unknown)."""
    if not total or not done or total <= done:
        return ""
    return f", {(total - done) * seconds / done / 3600:.1f} h left at this rate"


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
        rate = f", {secs / done:.1f} s/epoch" if done else ""
        return (f"{path}: pretraining {done}/{total if total is not None else '?'} epochs{rate}"
                f"{left(done, total, secs)}{trained_by(state)}")
    if "state" in state and "iteration" in state["state"]:  # a DECS or DEC clustering run
        st = state["state"]
        it, secs = st["iteration"], st.get("seconds", 0.0)
        rate = f", {secs / it:.3f} s/iteration" if it else ""
        return (f"{path}: clustering at iteration {it:,}{rate}"
                f"{left(it, clustering_iterations(path), secs)}{trained_by(st)}")
    if "epoch" in state:  # HaDis
        done, secs = state["epoch"], state.get("seconds", 0.0)
        total = (state.get("key") or {}).get("epochs")
        rate = f", {secs / done:.1f} s/epoch" if done else ""
        return (f"{path}: HaDis at epoch {done}/{total if total is not None else '?'}{rate}"
                f"{left(done, total, secs)}{trained_by(state)}")
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
