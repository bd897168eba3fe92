"""Where the book's code lives and which release of it the notebooks install: written once, here.

Every notebook's first code cell is generated from this module (:func:`install_cell`, written
into the notebooks by ``tools/sync_install_cell.py``); ``_config.yml``'s repository url and
``CITATION.cff`` must name the same repository and release (``tests/test_book.py`` checks all
three). The "How to cite" page (``book/cite.md``) links to the same repository.
"""
from __future__ import annotations

from typing import Sequence

__all__ = ["EXTRA", "RELEASE", "REPOSITORY", "install_cell", "notebook_data", "raw_url", "requirement",
           "site_url"]

REPOSITORY = "https://github.com/decs-book/decs-book"
"""The public repository of the book and of the ``decs`` package."""

# The git tag (or commit) a notebook opened on Colab installs, so that a reader gets the code the
# published pages were built with, not whatever main holds that day. Before the book is
# published, this release must be tagged in REPOSITORY (git tag v0.2.0 && git push origin v0.2.0)
# at the commit the site is built from; until the tag exists, pip on Colab cannot find it.
RELEASE = "v0.2.0"
"""The tag the notebooks' Colab set-up cell installs (must exist before publishing)."""

EXTRA = "notebook"
"""The extra of ``pyproject.toml`` that holds what the notebooks need beyond the package's own
dependencies (progress bars, HDF5 for YTF). Not ``book``: MyST-NB and Sphinx are only needed to
build the book, and :func:`decs.notebook.glue` works without them."""


def raw_url(path: str, release: str = RELEASE) -> str:
    """The address of one file of the repository at ``release``, e.g. a run record that an
    installed package fetches (:func:`decs.fetch.fetch_results`)."""
    owner_repo = REPOSITORY.removeprefix("https://github.com/")
    return f"https://raw.githubusercontent.com/{owner_repo}/{release}/{path}"


def site_url(path: str = "") -> str:
    """The address of the published book (GitHub Pages of REPOSITORY), or of ``path`` on it: the
    student edition, without the solutions, is ``site_url("student/")`` (built and published
    beside the book by ``.github/workflows/pages.yml``; linked from :doc:`/book/01_preface` and
    :doc:`/book/instructors`)."""
    owner, name = REPOSITORY.removeprefix("https://github.com/").split("/")
    return f"https://{owner}.github.io/{name}/{path}"


def requirement(extra: str | None = EXTRA, release: str = RELEASE) -> str:
    """The pip requirement of the package at ``release``, e.g.
    ``decs[notebook] @ git+https://github.com/decs-book/decs-book@v0.2.0``."""
    name = f"decs[{extra}]" if extra else "decs"
    return f"{name} @ git+{REPOSITORY}@{release}"


def notebook_data(metadata: dict) -> list[str]:
    """The datasets a notebook reads, from its metadata (``{"decs": {"data": ["usps"]}}``): what
    its set-up cell asks :func:`decs.notebook.setup` to make available."""
    return list(metadata.get("decs", {}).get("data", []))


def install_cell(data: Sequence[str] = ()) -> str:
    """The source of every notebook's first code cell: on Colab, install the pinned release;
    everywhere, run :func:`decs.notebook.setup` with the datasets the chapter reads (``data``,
    from the notebook's metadata ``decs.data``; setup fetches a missing one)."""
    call = f"setup(seed=0, data={list(data)!r})" if data else "setup(seed=0)"
    return "\n".join([
        "# Set-up: on Colab, install the book's package first (skipped everywhere else).",
        "import sys",
        'if "google.colab" in sys.modules:',
        f'    %pip install -q "{requirement()}"',
        "import decs",
        "from decs.notebook import setup",
        f"S = {call}   # prints profile, device, data root, seed",
    ])
