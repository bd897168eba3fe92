"""Where the package keeps what is not code: the checkout it may run from, and the user's cache.

A reader runs ``decs`` in one of two ways. From a **checkout** of the book's repository (``make
book``, ``make test``, a course machine) everything lives in the repository: ``data/``,
``results/`` and ``checkpoints/``. As an **installed package** (``pip install``, Colab) the
package sits among the Python environment's packages, which may not be writable and is lost with
the session: checkpoints and the committed results fetched for the chapters then go to a per-user
cache instead. Used in
:doc:`/book/reproducibility`.
"""
from __future__ import annotations

import os
from pathlib import Path

# The repository's root when the package runs from a checkout (the folder above the package). A
# comment, not a docstring: the API page would print the build machine's path as its value.
REPO_ROOT = Path(__file__).resolve().parent.parent


def in_checkout() -> bool:
    """Whether the package runs from a checkout of the book's repository (the folder above it
    holds ``pyproject.toml`` and ``book/``), not from an installed copy."""
    return (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "book").is_dir()


def cache_dir() -> Path:
    """The per-user folder for checkpoints and fetched results of an installed package:
    ``$DECS_CACHE``, else ``$XDG_CACHE_HOME/decs``, else ``~/.cache/decs``. Never inside
    the installed package. (On Colab, point ``DECS_CACHE`` at a mounted Drive folder to keep the
    checkpoints between sessions.)"""
    env = os.environ.get("DECS_CACHE", "").strip()
    if env:
        return Path(env).expanduser().absolute()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return (base / "decs").absolute()


def checkpoints_root() -> Path:
    """Where training checkpoints go: ``$DECS_CHECKPOINTS``, else ``checkpoints/`` in a checkout,
    else ``<cache>/checkpoints`` (:func:`cache_dir`)."""
    env = os.environ.get("DECS_CHECKPOINTS", "").strip()
    if env:
        return Path(env).expanduser().absolute()
    return REPO_ROOT / "checkpoints" if in_checkout() else cache_dir() / "checkpoints"


def results_root() -> Path:
    """Where run records and model files are read and written: ``$DECS_RESULTS``, else
    ``results/`` of the checkout, else the release's copy in the user's cache (fetched by
    :func:`decs.fetch.fetch_results` from the release the notebooks install)."""
    from .release import RELEASE

    env = os.environ.get("DECS_RESULTS", "").strip()
    if env:
        return Path(env).expanduser().absolute()
    return REPO_ROOT / "results" if in_checkout() else cache_dir() / "results" / RELEASE


# The committed run records and model files the chapters read (a comment, not a docstring: the
# API page would print this machine's path as its value).
RESULTS = results_root()


def downloads_allowed() -> bool:
    """False when ``DECS_DOWNLOAD=0``: nothing in the package then touches the network (datasets
    and the release's results are read where they are, or reported missing)."""
    return os.environ.get("DECS_DOWNLOAD", "1").strip().lower() not in ("0", "false", "no")


def record_command(prog: str, argv) -> str:
    """The command line a record carries: ``prog`` (e.g. ``"python -m decs"``) and the arguments
    ``argv``, each absolute path written relative to the repository when it lies inside it
    (``--results results``), else as a placeholder named after its option (``--results
    <results>``, ``--start-from <start-from>/theirs.pt``: a file keeps its name): a record
    never names the folders of the machine that made it. Read in :doc:`/book/reproducibility`."""
    out, option = [], "path"
    for arg in map(str, argv):
        flag, eq, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
        if arg.startswith("--") and not eq:
            option = arg.lstrip("-")
            out.append(arg)
            continue
        name = flag.lstrip("-") if eq else option
        out.append(f"{flag}={_portable(value, name)}" if eq else _portable(value, name))
    return " ".join([prog, *out])


def _portable(value: str, option: str) -> str:
    if not os.path.isabs(value):
        return value
    path = Path(value)
    for root in (REPO_ROOT, REPO_ROOT.resolve()):
        try:
            return path.relative_to(root).as_posix() or "."
        except ValueError:
            pass
    return f"<{option}>/{path.name}" if path.suffix else f"<{option}>"
