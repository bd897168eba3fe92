"""The set-up every chapter's first code cell runs (seed, device, profile, data root, style).

Used at the top of every notebook of the book, e.g. :doc:`/book/02_clustering_and_metrics`.
"""
from __future__ import annotations

import functools
import os
import platform
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .config import Config, get_config
from .data import data_root
from .paths import REPO_ROOT, downloads_allowed
from .plots import use_style
from .device import get_device, seed_everything


def display_path(path: Path) -> str:
    """A path as a page may print it: relative to the repository when inside it, else only its
    last two parts (a built page never shows the build machine's folders)."""
    path = Path(path).resolve()
    try:
        return path.relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return ".../" + "/".join(path.parts[-2:])


@dataclass(frozen=True)
class Setup:
    """What a chapter runs with; printed by :func:`setup`."""
    profile: str
    config: Config
    device: torch.device
    data_root: Path
    seed: int


def _prepare_data(names: Sequence[str], root: Path) -> list[str]:
    """Make each dataset a chapter reads available, fetching what is missing (when downloads are
    allowed); one line per dataset that was fetched or is still missing."""
    from . import data

    lines = []
    for name in names:
        if data.is_available(name, root):
            continue
        failures = data.fetch(name, root) if downloads_allowed() else ["downloads are off (DECS_DOWNLOAD=0)"]
        if data.is_available(name, root):
            lines.append(f"{name}: downloaded into {display_path(root)} (sha256 checked)")
        else:
            why = failures[-1] if failures else "no published file to download"
            lines.append(f"{name}: NOT AVAILABLE ({why}); the cells that need it will say how to get it")
    return lines


def choose_profile(device: torch.device) -> tuple[str, str]:
    """The profile a chapter runs at, and why: ``DECS_PROFILE`` when the reader set it; else
    ``ci`` on a runtime without a GPU (a Colab CPU runtime, a laptop), where the longer profiles'
    training cells take many minutes each; else ``cpu``. The choice is written into
    ``DECS_PROFILE`` of this process, so that every later :func:`decs.config.get_config` agrees.
    Used by :func:`setup` in every chapter, e.g. :doc:`/book/08_training_usps`."""
    if os.environ.get("DECS_PROFILE", "").strip():
        return get_config().profile, "set by DECS_PROFILE"
    if device.type == "cpu":
        os.environ["DECS_PROFILE"] = "ci"
        return "ci", ("chosen because this runtime has no GPU; set DECS_PROFILE=cpu (or paper) before this "
                      "cell for the longer runs")
    os.environ["DECS_PROFILE"] = "cpu"
    return "cpu", "the default on a GPU; set DECS_PROFILE=paper for the authors' lengths, ci for the shortest"


def skip_long() -> bool:
    """True when ``DECS_SKIP_LONG=1``: the cells that would run for more than a few minutes at the
    active profile (:func:`long_step`) are skipped."""
    return os.environ.get("DECS_SKIP_LONG", "0").strip().lower() in ("1", "true", "yes")


def long_step(what: str, minutes: float, skippable: bool = True) -> bool:
    """Before a cell that trains at the active profile: say how long it will take and whether it
    runs. ``minutes`` is the cell's estimate (:func:`minutes_at`); a step of more than
    ``LONG_MINUTES`` is skipped when ``DECS_SKIP_LONG=1`` (then False: the cell shows what it
    can without it) unless not ``skippable``. Used in :doc:`/book/08_training_usps` and the
    other pages that train."""
    long = skippable and minutes > LONG_MINUTES
    about = f"about {minutes:.0f} min" if minutes >= 1 else "under a minute"
    if long and skip_long():
        print(f"{what}: {about} at the {get_config().profile} profile: SKIPPED (DECS_SKIP_LONG=1)")
        return False
    hint = "; set DECS_SKIP_LONG=1 and rerun to skip it" if long else ""
    print(f"{what}: {about} at the {get_config().profile} profile{hint}", flush=True)
    return True


LONG_MINUTES = 3.0
"""A step estimated to run longer than this many minutes is "long" (:func:`long_step`)."""

# Seconds on 2 CPU cores (2 threads), from results/benchmarks/cpu-2cores.json (a test checks them
# against it; kept here because an installed package may not have the file): pretraining, per
# image and epoch, by image size in pixels; clustering, per iteration with its evaluations.
_PRETRAIN_S_PER_IMAGE = {16 * 16: 2.688 / 9298, 28 * 28: 8.299 / 10000}
_CLUSTER_S_PER_ITERATION = {16 * 16: 0.0523, 28 * 28: 0.2049}


def minutes_at(dataset: str, cfg: Config | None = None, runs: int = 1, pretrain: bool = True,
               iterations: int | None = None) -> float:
    """About how many minutes ``runs`` runs of :func:`decs.runs.run` on ``dataset`` take at
    ``cfg`` (default: the active profile) on 2 CPU cores, from the speed benchmark of
    :doc:`/book/reproducibility`; ``pretrain=False`` when the runs share a pretrained network,
    ``iterations`` when they cluster for other than ``cfg.maxiter`` iterations (0: pretraining
    only). An upper bound where checkpoints already hold part of the work, and far more than a
    GPU takes. What :func:`long_step` prints before a chapter trains."""
    from .data import DATASETS, canonical_name

    cfg = cfg or get_config()
    info = DATASETS[canonical_name(dataset)]
    pixels = info.shape[0] * info.shape[1] * info.shape[2]
    size = min(_PRETRAIN_S_PER_IMAGE, key=lambda p: abs(p - pixels))  # the nearest benchmarked size
    scale = pixels / size
    n = min(cfg.subset or info.n_samples, info.n_samples)
    its = cfg.maxiter if iterations is None else iterations
    seconds = runs * its * _CLUSTER_S_PER_ITERATION[size] * scale
    if pretrain:
        seconds += runs * cfg.pretrain_epochs * n * _PRETRAIN_S_PER_IMAGE[size] * scale
    return seconds / 60


def setup(seed: int = 0, data: Sequence[str] = ()) -> Setup:
    """Seed everything, choose device and profile, find the data, set the plot style, and say so.

    The profile comes from ``DECS_PROFILE`` (``ci``, ``cpu`` or ``paper``); when it is not set,
    ``ci`` on a runtime without a GPU and ``cpu`` on one with a GPU (:func:`choose_profile`). The
    device comes from ``DECS_DEVICE`` (default: cuda if available), the data from ``DECS_DATA``.
    ``data`` names the datasets the chapter reads: a missing one is downloaded (checksummed;
    ``DECS_DOWNLOAD=0`` turns that off) and one that stays missing is reported, not fatal. An
    installed package (Colab) also fetches the release's committed results into the user's cache
    (:func:`decs.fetch.ensure_fetched`); a checkout reads its own ``results/``.
    """
    from .fetch import ensure_fetched

    seed_everything(seed)
    # MyST-NB's glue formats numbers from their text repr; NumPy 2 writes scalars as
    # "np.float64(0.42)", which it cannot format. The 1.25 repr is the plain number.
    np.set_printoptions(legacy="1.25")
    device = get_device()
    _, why = choose_profile(device)
    cfg = get_config()
    root = data_root()
    use_style()
    _register_magics()
    hw = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{os.cpu_count()} CPU cores"
    notes = _prepare_data(data, root)
    if downloads_allowed():
        ensure_fetched()
    # lines that fit the page (100 characters), as the notebooks' code does
    print(f"profile={cfg.profile} | device={device} ({hw}) | data={display_path(root)} | seed={seed}")
    print(f"  torch {torch.__version__}, python {platform.python_version()}")
    for line in [f"profile {cfg.profile}: {why}", *notes]:
        print(textwrap.fill(line, 100, initial_indent="  ", subsequent_indent="    "))
    return Setup(cfg.profile, cfg, device, root, seed)


# ------------------------------------------------------------- without the committed results
# A checkout reads results/; an installed package the release's copy, fetched by setup() into the
# user's cache. Offline, or before the release is published, that copy is missing or partial:
# the pages then say what they cannot show (as book/02_clustering_and_metrics does for a dataset) and go on.
def results_note() -> str:
    """Why committed results may be missing on this machine, for a "not available" line."""
    from .paths import in_checkout
    from .paths import RESULTS

    if os.environ.get("DECS_RESULTS", "").strip():
        return f"DECS_RESULTS names {display_path(RESULTS)}, which does not hold it"
    if in_checkout():
        return "this checkout's results/ does not hold it"
    return ("the release's results could not be fetched into the user's cache (offline, or the release "
            "is not published yet); set DECS_RESULTS to a copy of the repository's results/ folder")


def _present(found) -> bool:
    if found is None:
        return False
    if isinstance(found, Path):   # a folder counts when it holds a file (a failed fetch leaves it empty)
        return found.is_file() or found.is_dir() and any(p.is_file() for p in found.rglob("*"))
    try:
        return len(found) > 0
    except TypeError:
        return bool(found)


def available(what: str, found) -> bool:
    """Whether ``found`` (records, table rows, a file, a value a cell read from ``results/``) is
    there; when it is not (None, empty, a missing path), print ``what: NOT AVAILABLE ...`` with
    the reason (:func:`results_note`) and return False, so the page says what it cannot show
    instead of failing. Used with the ``%%needs`` cell magic (:func:`needs`), e.g. in
    :doc:`/book/theorem1`. In a checkout reading its own ``results/`` (no ``DECS_RESULTS``) the
    files are committed, so a miss there is a bug and raises (the tests fail on it)."""
    from .paths import in_checkout

    if _present(found):
        return True
    if in_checkout() and not os.environ.get("DECS_RESULTS", "").strip():
        raise AssertionError(f"{what}: missing from this checkout's results/, where it is committed")
    print(f"{what}: NOT AVAILABLE on this machine ({results_note()}); the cells that need it are skipped")
    return False


def first_file(*paths: Path) -> Path | None:
    """The first of ``paths`` that is there (a file, or a folder holding one), or None (then
    :func:`available` says so)."""
    return next((Path(p) for p in paths if _present(Path(p))), None)


def needs(line: str, cell: str) -> None:
    """The ``%%needs NAME [NAME ...]`` cell magic, registered by :func:`setup`: run the cell only
    when each named variable holds something (:func:`available`'s test: not None, not empty, an
    existing path); else print one line saying what it would show and skip it. An error inside
    the cell is an error of the cell, as without the magic. Used where a page reads committed
    results, e.g. :doc:`/book/theorem1`."""
    from IPython import get_ipython

    shell = get_ipython()
    missing = [name for name in line.split() if not _present(shell.user_ns.get(name))]
    if missing:
        print(f"skipped: this cell needs {', '.join(missing)}, which is not here (see above: not available, "
              "or a long step skipped)")
        return
    result = shell.run_cell(cell)
    result.raise_error()


def _register_magics() -> None:
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        shell.register_magic_function(needs, magic_kind="cell", magic_name="needs")


@functools.cache
def _myst_nb_glue():
    """MyST-NB's glue, or None where MyST-NB is not installed (looked up once per process)."""
    try:
        from myst_nb import glue
    except ImportError:
        return None
    return glue


def glue(name: str, variable, display: bool = True) -> None:
    """Put a value the code computed into the page's prose (a ``{glue:text}`` role names it).

    Used in every chapter, e.g. :doc:`/book/02_clustering_and_metrics`. Where MyST-NB is
    installed (building the book: the ``book`` extra) this is ``myst_nb.glue``. Where it is not
    (Colab, or Jupyter with only the ``notebook`` extra) nothing is stored, since there is no page
    to fill in: with ``display=True`` the value is shown as the cell's output, as MyST-NB shows it
    in a notebook, and with ``display=False`` nothing happens. Either way the notebook runs.
    """
    myst_glue = _myst_nb_glue()
    if myst_glue is not None:
        myst_glue(name, variable, display)
    elif display:
        from IPython.display import display as show

        show(variable)


# ------------------------------------------------------------- real scale: load, else train
# The pages that teach what the method does show committed full-data runs ("load the
# pretrained model if present, else train", as the UvA notebooks do): the largest scale whose
# model files are in the repository, else a run trained here at the active profile.
SCALES = ("paper", "cpu")


def use_committed() -> bool:
    """False when ``DECS_COMMITTED=0``: the chapters then take their "else train" branch (a test
    checks that it still runs)."""
    return os.environ.get("DECS_COMMITTED", "1").strip().lower() not in ("0", "false", "no")


@dataclass
class Run:
    """A run a chapter shows: its record and networks, the data it ran on, where it came from."""
    record: dict                # the run record: history, final scores, config, provenance
    pretrained: torch.nn.Module  # the autoencoder after pretraining (batch norm recalibrated)
    encoder: torch.nn.Module    # the encoder after clustering
    centroids: torch.Tensor     # the centroids after clustering
    alpha: float                # the Student-t α of its soft assignments
    stages: dict                # embeddings of a sample of the data kept during the run
    x: torch.Tensor             # the images it ran on (on the chapter's device)
    y: np.ndarray               # their labels
    source: str                 # "committed run" or "trained here"

    @property
    def profile(self) -> str:
        return self.record["profile"]

    @property
    def config(self) -> Config:
        c = self.record["config"]
        return Config(**{**c, "filters": tuple(c["filters"])})

    def label(self, with_source: bool = True) -> str:
        """The run's scale for a figure title (:func:`decs.plots.scale_label`)."""
        from .plots import scale_label

        c = self.record["config"]
        return scale_label(self.profile, len(self.y), self.record["iterations"], c["pretrain_epochs"],
                           self.source if with_source else None)


def committed_record(dataset: str, method: str = "decs", seed: int = 0, scales=SCALES) -> dict | None:
    """The protocol record of the largest committed scale whose model files are present and
    intact (sha256 checked), or None (also when ``DECS_COMMITTED=0``)."""
    from .files import ModelFileError, load_model_files
    from .paths import RESULTS
    from .results import is_protocol_run, load_records

    if not use_committed():
        return None
    for profile in scales:
        for rec in load_records(RESULTS, dataset=dataset, method=method, profile=profile):
            if rec["seed"] != seed or not is_protocol_run(rec) or "model_files" not in rec:
                continue
            try:
                load_model_files(rec, RESULTS)
            except ModelFileError:
                continue
            return rec
    return None


def load_or_train(dataset: str, S: Setup, method: str = "decs", seed: int = 0,
                  progress: bool = False, skippable: bool = False) -> Run | None:
    """The run of ``method`` on ``dataset`` a chapter shows: the committed run at the largest
    scale (paper, then cpu) when its model files are here, else one trained now at the active
    profile (checkpoints shared by every chapter and by ``python -m decs``, so it is trained once).
    Before training it says how long that takes (:func:`long_step`); with ``skippable`` (a page
    whose later cells do without the run) None when the training is long and
    ``DECS_SKIP_LONG=1`` skips it. Used in :doc:`/book/08_training_usps`."""
    from . import data
    from .runs import checkpoint_dir, cluster_tag
    from .models import ConvAutoencoder
    from .files import load_model_files
    from .paths import RESULTS
    from .runs import run

    rec = committed_record(dataset, method, seed)
    if rec is not None:
        nets = load_model_files(rec, RESULTS, S.device)
        x, y = data.load(dataset, subset=rec["config"]["subset"], seed=seed)
        return Run(rec, nets["pretrained"], nets["encoder"], nets["centroids"], nets["alpha"], nets["stages"],
                   x.to(S.device), y.numpy(), "committed run")
    cfg = S.config
    what = f"training {method.upper()} on {dataset} (no committed run here)"
    if not long_step(what, minutes_at(dataset, cfg), skippable):
        return None
    x, y = data.load(dataset, subset=cfg.subset, seed=seed)
    x, y = x.to(S.device), y.numpy()
    result = run(x, y, cfg, method=method, seed=seed, device=S.device, dataset=dataset, progress=progress,
                 checkpoint_dir=checkpoint_dir(dataset, cfg, seed), tag=cluster_tag(cfg))
    pretrained = ConvAutoencoder(tuple(x.shape[1:]), cfg.filters, cfg.embedding_dim,
                                 cfg.decoder_alignment).to(S.device)
    pretrained.load_state_dict(result.pretrained)
    pretrained.eval()
    result.model.eval()
    alpha = cfg.kernel_alpha(method)
    return Run(result.record, pretrained, result.model.encoder, result.centroids, alpha, result.stages, x, y,
               "trained here")


def protocol_records(dataset: str, profile: str, method: str | None = None) -> list[dict]:
    """Every committed protocol record (all seeds) of one dataset and profile, e.g. for the
    curves of three seeds in :doc:`/book/08_training_usps`; empty when ``DECS_COMMITTED=0``."""
    from .paths import RESULTS
    from .results import is_protocol_run, load_records

    if not use_committed():
        return []
    return [r for r in load_records(RESULTS, dataset=dataset, method=method, profile=profile) if is_protocol_run(r)]


def scale_note(runs: dict[str, Run], live: str | None = None) -> None:
    """Show, at the top of a results page, which scale produced what: each run's profile, data
    size, length, hardware and commit, and what the page computes live at the active profile.
    A MyST admonition, generated from the files the page loaded (never static prose)."""
    from IPython.display import Markdown, display

    from .results import hardware

    lines = []
    for what, r in runs.items():
        env = r.record.get("environment", {})
        c = r.record["config"]
        when = (f"trained on {hardware(env)} at commit `{(env.get('commit') or '?')[:8]}`"
                if r.source == "committed run" else "trained on this machine when the page was built")
        lines.append(f"- **{what}**: the `{r.profile}` profile, {r.record['dataset']} with n = {len(r.y):,}, "
                     f"{c['pretrain_epochs']:,} pretraining epochs and {r.record['iterations']:,} clustering "
                     f"iterations ({r.source}; {when}).")
    if live:
        lines.append(f"- **Computed live**: {live}")
    scale = "real scale" if all(r.profile in SCALES for r in runs.values()) else "toy scale"
    display(Markdown(f":::{{admonition}} What scale this page shows: {scale}\n:class: note\n" + "\n".join(lines)
                     + "\n:::\n"))
