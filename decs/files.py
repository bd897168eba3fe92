"""Files the package writes and reads back: every write atomic, checkpoints with their keys, the
run record's JSON layout. Explained in :doc:`/book/reproducibility`.

* :func:`atomic_write` — the one way a file is written: a temporary file in the same folder,
  flushed and synced, then renamed over the target (``os.replace``). A process killed at any
  moment leaves the old file or the new one, never a torn one. Records, checkpoints, model
  files, manifests and benchmark JSON all go through it.
* :func:`save_checkpoint`, :func:`read_checkpoint`, :func:`load_checkpoint` — checkpoints, each
  holding the ``key`` of the settings it was written with (:func:`checkpoint_key`), so a run
  resumes only from a checkpoint of the same settings.
* :func:`record_json`, :func:`write_record`, :func:`report_record` — run records as the
  repository keeps them.
* :func:`save_model_files`, :func:`load_model_files` — the networks beside a record, each named
  in it with its sha256.
"""
from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import BinaryIO, Callable

import torch

from . import distributed
from .data import sha256
from . import paths


# ------------------------------------------------------------------------------ atomic writes
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path | str, content: bytes | str | Callable[[BinaryIO], None]) -> Path:
    """Write ``content`` (bytes, text as UTF-8, or a function that writes to a binary file) to
    ``path`` atomically: into a temporary file beside it, flushed and fsynced, then renamed over
    ``path``. Readers (and a process killed mid-write) see the old file or the new one, never
    part of one. Creates the folder; a write that fails (``content`` raising included) leaves
    neither its temporary file nor the folders it created. Returns ``path``."""
    path = Path(path)
    created = [p for p in [path.parent, *path.parent.parents] if not p.exists()]  # deepest first
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            if callable(content):
                content(out)
            else:
                out.write(content.encode("utf-8") if isinstance(content, str) else content)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # as an ordinary file would be (mkstemp makes it private)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        for folder in created:
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    return path


def save_torch(obj, path: Path | str) -> Path:
    """``torch.save(obj, path)``, atomically (:func:`atomic_write`)."""
    return atomic_write(path, lambda out: torch.save(obj, out))


# -------------------------------------------------------------------------------- checkpoints
# Settings added after checkpoints existed, with their defaults: a checkpoint's key leaves each
# out while it has its default, so the checkpoints written before it existed stay valid.
ADDED_LATER = {"decoder_alignment": "ours", "network": "conv", "world_size": 1, "precision": "fp32",
               "pretrain_epoch": "full", "pretrain_adam": "pytorch"}


def checkpoint_key(**fields) -> dict:
    """A checkpoint's key: ``fields`` less those of ``ADDED_LATER`` at their defaults (so a key
    built from a whole ``Config.to_dict()``, as book/10_ablations does, still matches an older checkpoint)."""
    return {k: v for k, v in fields.items() if k not in ADDED_LATER or v != ADDED_LATER[k]}


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: truncated or corrupted, or written with other settings.
    The message names the file and what to do."""


def save_checkpoint(path: Path | str | None, state: dict) -> None:
    """Save a checkpoint atomically; nothing when ``path`` is None. With several processes only
    rank 0 writes (every rank holds the same state; :doc:`/book/distributed`)."""
    if path is None or not distributed.is_main():
        return
    save_torch(state, path)


def read_checkpoint(path: Path | str | None) -> dict | None:
    """A checkpoint's contents on the CPU, None when there is none; a file that cannot be read
    raises :class:`CheckpointError` saying what to do."""
    if path is None or not Path(path).exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError... for a broken file
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or corrupted: "
                              f"{str(err).split('. ')[0].splitlines()[0] if str(err) else type(err).__name__}); delete it "
                              "to start that stage again.") from err
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a checkpoint of this package (it holds a {type(state).__name__}); "
                              "delete it to start that stage again.")
    return state


def this_commit() -> str | None:
    """The commit of the code this process imported (``decs.provenance.CODE_VERSION``), with
    ``+dirty`` when tracked files differed from it; None outside a git checkout."""
    from .provenance import CODE_VERSION
    commit = CODE_VERSION["commit"]
    return f"{commit}+dirty" if commit and CODE_VERSION["dirty"] else commit


def stage_provenance(saved: dict | None, trains_here: bool,
                     what: str = "stage") -> tuple[int, list[str | None], list[int | None]]:
    """Who trained a resumable stage, as its record keeps it (:doc:`/book/reproducibility`):

    - how many processes it has taken, this one included: those its checkpoint ``saved`` counted
      (one, for a checkpoint written before the count existed), plus this process when it trains (a
      finished stage read back adds none; the ranks of a multi-process run count once), kept under
      ``wall_time_s.processes``;
    - the commits of the code that trained it, oldest first: those ``saved`` lists (``None``, "not
      recorded", for a checkpoint written before the list existed), then this process's
      (:func:`this_commit`) when it trains and the last one differs, kept under
      ``environment.commits``;
    - the torch threads of each of those processes, in order (``None``, "not recorded", for the
      processes of a checkpoint written before the list existed), kept under
      ``wall_time_s.threads``: a stage's seconds mean little without them when a resumed process
      ran on more cores than the one before.

    Resuming with other code warns, naming both commits, so a stage trained by two versions of the
    code says so. ``what`` names the stage in the warning, e.g. ``"the pretraining"``."""
    processes = (0 if saved is None else saved.get("processes", 1)) + int(trains_here)
    commits = [] if saved is None else list(saved.get("commits", [None]))
    here = this_commit()
    if trains_here and (not commits or commits[-1] != here):
        if commits:
            warnings.warn(f"{what} resumes from a checkpoint written by "
                          f"{commits[-1] or 'code that did not record its commit'} with the code at {here}; "
                          "the record names both (environment.commits). To keep one version, check out "
                          f"{commits[-1] or 'the commit that wrote it'} or delete the checkpoint.", stacklevel=2)
        commits.append(here)
    threads = [] if saved is None else list(saved.get("threads", [None] * (processes - int(trains_here))))
    if trains_here:
        threads.append(torch.get_num_threads())
    return processes, commits, threads


def load_checkpoint(path: Path | str | None, key, what: str) -> dict | None:
    """The checkpoint at ``path`` (None when there is none), after checking that it was written
    with the same settings (``key``); refuses one of other settings, saying what to do. ``what``
    completes the message, e.g. ``"was pretrained"``."""
    state = read_checkpoint(path)
    if state is not None and state.get("key") != key:
        raise CheckpointError(f"{path} {what} with other settings ({state.get('key')}); delete it or "
                              "use another checkpoint path.")
    return state


# -------------------------------------------------------------------------------- run records
def _scalar(value) -> bool:
    return not isinstance(value, (dict, list))


def _one_line(entry: dict) -> bool:
    """A dict whose values are scalars or lists of scalars (one ``history`` entry): written on
    one line when it is an element of a list."""
    return all(_scalar(v) or (isinstance(v, list) and all(map(_scalar, v))) for v in entry.values())


def _json_lines(value, level: int) -> str:
    """``value`` as :func:`record_json` lays it out, its closing bracket indented ``level``."""
    if _scalar(value) or (isinstance(value, list) and all(map(_scalar, value))):
        return json.dumps(value, ensure_ascii=False)
    if not value:
        return json.dumps(value)
    pad, end = " " * (level + 1), " " * level
    if isinstance(value, list):
        parts = [json.dumps(v, ensure_ascii=False) if isinstance(v, dict) and _one_line(v)
                 else _json_lines(v, level + 1) for v in value]
        return "[\n" + ",\n".join(pad + part for part in parts) + "\n" + end + "]"
    parts = [f"{json.dumps(k, ensure_ascii=False)}: {_json_lines(v, level + 1)}" for k, v in value.items()]
    return "{\n" + ",\n".join(pad + part for part in parts) + "\n" + end + "}"


def record_json(record: dict) -> str:
    """A run record as the repository keeps it: JSON indented one space per level, except that a
    list of numbers stays on one line and so does each entry of a list of flat dicts (one line
    per evaluation of ``history``). ``json.loads`` gives the record back unchanged; the file is
    about a quarter smaller than ``json.dumps(record, indent=1)``, which puts every number of
    every cluster-size list on its own line. Used by :func:`write_record`
    (:doc:`/book/reproducibility`)."""
    return _json_lines(record, 0) + "\n"


def write_record(record: dict, path: Path | str) -> Path:
    """Write a run record as :func:`record_json`, atomically (the book's results chapter reads
    these). With several processes only rank 0 writes (:doc:`/book/distributed`)."""
    path = Path(path)
    if distributed.is_main():
        atomic_write(path, record_json(record))
    return path


def report_record(record: dict, out: Path | str | None = None) -> None:
    """Print a benchmark's record as :func:`record_json` lays it out and, when ``out`` is given,
    also write it there with :func:`write_record` (:doc:`/book/reproducibility`)."""
    print(record_json(record), end="")
    if out is not None:
        write_record(record, out)


# ------------------------------------------------------------------------------ model files
# Beside a record the book shows: the final encoder and centroids (``<run>.pt``, with the
# embeddings kept at a few stages of the run) and the pretrained autoencoder it started from
# (``<dataset>/pretrained/<run>.pt``, shared by the DECS and DEC runs of one pretraining).
# State dicts only, no optimiser state; the record names each with its sha256.
MODEL_FORMAT = 1


class ModelFileError(RuntimeError):
    """A record's model file is missing, or is not the file the record was written with."""


def _same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _write_model_file(payload: dict, path: Path, root: Path, replace: bool, compare: str) -> dict:
    """Save ``payload`` at ``path`` unless the file there already holds the same tensors
    (``payload[compare]``): then the existing file is kept. A different file there is another
    run's: refused unless ``replace``. Returns ``{"path": relative to root, "sha256": ...}``."""
    if path.exists() and not replace:
        old = torch.load(path, map_location="cpu", weights_only=False)
        if not _same_tensors(old[compare], payload[compare]):
            raise FileExistsError(f"{path} holds another run's network; pass --replace to replace it "
                                  "(and its records), or write the run elsewhere with --results.")
    else:
        save_torch(payload, path)
    return {"path": path.relative_to(root).as_posix(), "sha256": sha256(path), "bytes": path.stat().st_size}


def save_model_files(result, record_path: Path | str, pretrained_name: str, root: Path | str | None = None,
                     replace: bool = False) -> dict:
    """Write a finished run's model files and name them in its record (``record["model_files"]``).

    ``result`` is a :class:`decs.runs.RunResult`; the final file goes beside ``record_path``
    (same name, ``.pt``), the pretrained autoencoder to ``<root>/<dataset>/pretrained/<pretrained_name>.pt``
    (``root``: default the results folder, :func:`decs.paths.results_root`). Call before
    :func:`write_record`. Used by ``python -m decs train``; loaded by :func:`load_model_files`
    (:doc:`/book/08_training_usps` and ``python -m decs evaluate --record``).
    """
    root, record_path = Path(root if root is not None else paths.RESULTS), Path(record_path)
    rec = result.record
    net = {"input_shape": list(result.model.input_shape), "filters": list(rec["config"]["filters"]),
           "embedding_dim": rec["config"]["embedding_dim"]}
    alpha = rec["config"]["alpha"] if rec["method"] == "decs" else rec["config"]["dec_alpha"]
    final = {"format": MODEL_FORMAT, **net, "alpha": alpha,
             "encoder": {k: v.detach().cpu() for k, v in result.model.encoder.state_dict().items()},
             "centroids": result.centroids.detach().cpu(), "stages": result.stages}
    pre = {"format": MODEL_FORMAT, **net, "autoencoder": result.pretrained}
    files = {"pretrained": _write_model_file(pre, root / rec["dataset"] / "pretrained" / f"{pretrained_name}.pt",
                                             root, replace, "autoencoder"),
             "final": _write_model_file(final, record_path.with_suffix(".pt"), root, True, "encoder")}
    rec["model_files"] = files
    return files


def _checked(entry: dict, root: Path) -> Path:
    path = root / entry["path"]
    if not path.exists() and root == paths.RESULTS and not paths.in_checkout():
        from .fetch import fetch_results

        fetch_results(root, [entry["path"]])  # an installed package fetches the release's file
    if not path.exists():
        raise ModelFileError(f"{path} is missing: the record names it (sha256 {entry['sha256']}) but it is not "
                             "on this machine. Only seed 0 of each protocol run has its model files in "
                             "the repository; re-run the record's command to make the others.")
    digest = sha256(path)
    if digest != entry["sha256"]:
        raise ModelFileError(f"{path} has sha256 {digest}, the record says {entry['sha256']}: it is not "
                             "the network this record was written with.")
    return path


def load_model_files(record: dict, root: Path | str | None = None, device="cpu") -> dict:
    """The networks a record's model files hold, each file checked against its sha256:
    ``pretrained`` (the :class:`decs.models.ConvAutoencoder` after pretraining), ``encoder`` (the
    final encoder), ``centroids``, ``alpha`` and ``stages`` (embeddings kept during the run).
    Raises :class:`ModelFileError` with what to do when a file is missing or differs.
    Used in :doc:`/book/08_training_usps`."""
    from .models import ConvAutoencoder

    if "model_files" not in record:
        dropped = record.get("model_files_dropped")
        if dropped:  # named once, then taken out of results/ (the record says why)
            raise ModelFileError(f"the model files of {record.get('path', 'this record')} are no longer in "
                                 f"results/: {dropped['why']} (`{record.get('command', '')}`).")
        raise ModelFileError(f"the record {record.get('path', '')} names no model files (written before "
                             "they existed, or a seed whose files were not kept).")
    root = Path(root if root is not None else paths.RESULTS)
    files = record["model_files"]
    pre = torch.load(_checked(files["pretrained"], root), map_location=device, weights_only=False)
    fin = torch.load(_checked(files["final"], root), map_location=device, weights_only=False)
    shape = (tuple(pre["input_shape"]), tuple(pre["filters"]), pre["embedding_dim"],
             record.get("config", {}).get("decoder_alignment", "ours"))
    pretrained = ConvAutoencoder(*shape).to(device)
    pretrained.load_state_dict(pre["autoencoder"])
    final = ConvAutoencoder(*shape).to(device)
    final.encoder.load_state_dict(fin["encoder"])
    for net in (pretrained, final):
        net.eval()
    return {"pretrained": pretrained, "encoder": final.encoder, "centroids": fin["centroids"].to(device),
            "alpha": fin["alpha"], "stages": fin["stages"]}
