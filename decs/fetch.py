"""Results for an installed package. A checkout has ``results/`` beside the package; an installed
package (pip, Colab) has not: it fetches the files of the release it was installed from, listed
with their sha256 in the package's ``results_manifest.json`` (written by
``tools/sync_results_manifest.py``; a test checks it against ``results/``), into the user's cache.
Used by :func:`decs.notebook.setup` in :doc:`/book/reproducibility`.
"""
from __future__ import annotations

import http.client
import json
import os
import warnings
from pathlib import Path

from .data import fetch_file, sha256
from .paths import RESULTS, downloads_allowed, in_checkout

MANIFEST = Path(__file__).with_name("results_manifest.json")


def manifest() -> dict:
    """``{"files": {path under results/: {"sha256": ..., "bytes": ...}}}`` of this release."""
    return json.loads(MANIFEST.read_text())


def result_urls(rel: str) -> list[str]:
    """Where a file of results/ is fetched from, first choice first: ``$DECS_RESULTS_URL`` (a
    mirror, or a local server in the tests), then the release in the book's repository."""
    from .release import RELEASE, raw_url

    urls = [raw_url(f"results/{rel}", RELEASE)]
    mirror = os.environ.get("DECS_RESULTS_URL", "").strip()
    return ([mirror.rstrip("/") + "/" + rel] if mirror else []) + urls


def fetch_results(root: Path | str = RESULTS, paths=None, models: bool = False) -> list[str]:
    """Fetch the release's committed results into ``root`` where missing: ``paths`` (relative to
    results/), else every record, benchmark and theory file (and the model files too when
    ``models``). Each file is checked against the manifest's sha256; an interrupted or wrong
    download leaves nothing behind. Returns one line per failed file (empty: all there).
    Used by :func:`decs.notebook.setup` in :doc:`/book/reproducibility`."""
    root, files = Path(root), manifest()["files"]
    wanted = paths if paths is not None else [p for p in files if models or not p.endswith(".pt")]
    failures = []
    for rel in wanted:
        entry, target = files.get(rel), root / rel
        if entry is None:
            failures.append(f"{rel}: not in this release's manifest")
            continue
        if target.is_file() and sha256(target) == entry["sha256"]:
            continue
        errors = []
        for url in result_urls(rel):
            try:
                fetch_file(url, target, entry["sha256"], entry["bytes"])
                break
            except (OSError, ValueError, http.client.HTTPException) as error:
                errors.append(f"{url}: {error}")
        else:
            failures.append(f"{rel}: " + "; ".join(errors))
    return failures


_FETCHED: set[Path] = set()


def ensure_fetched(root: Path | str = RESULTS) -> None:
    """In an installed package, fetch the release's records once per process before reading
    ``root`` (when it is ``RESULTS`` in the user's cache); a failure is a warning, and the
    tables come out empty; with ``DECS_DOWNLOAD=0`` nothing is fetched (a warning says so). Nothing
    happens in a checkout or when ``DECS_RESULTS`` names a folder."""
    root = Path(root)
    if in_checkout() or os.environ.get("DECS_RESULTS", "").strip() or root != RESULTS or root in _FETCHED:
        return
    _FETCHED.add(root)
    if not downloads_allowed():
        warnings.warn(f"downloads are off (DECS_DOWNLOAD=0), so the release's result files were not fetched "
                      f"into {root} and the tables that read them are empty. Set DECS_RESULTS to a copy of the "
                      "repository's results/ folder to read them from there.", stacklevel=3)
        return
    failures = fetch_results(root)
    if failures:
        warnings.warn(f"{len(failures)} of the release's result files could not be fetched into {root} "
                      f"(offline?), so the tables that read them are incomplete; first: {failures[0]}. "
                      "Set DECS_RESULTS to a copy of the repository's results/ folder to read them from there.",
                      stacklevel=3)
