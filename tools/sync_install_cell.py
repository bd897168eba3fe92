"""Write the Colab set-up cell (decs.release.install_cell) into every notebook under book/.

    python tools/sync_install_cell.py           # rewrite the first code cell where it differs
    python tools/sync_install_cell.py --check   # only list the notebooks that differ (exit 1)

The cell passes the datasets the notebook reads (its metadata ``decs.data``, e.g.
``{"decs": {"data": ["usps"]}}``) to setup(), which downloads a missing one.
A new notebook starts with an empty code cell, which this fills in; a first code cell that is
neither empty nor a set-up cell is never overwritten. Only the first code cell's source changes:
its id, metadata and every other cell stay as they are, and the notebook is written back in the
format Jupyter writes (indent 1, UTF-8). Run it after changing decs/release.py;
tests/test_book.py fails until every notebook agrees.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the checkout's decs, also where it is not installed

from decs.release import install_cell, notebook_data  # noqa: E402


SETUP_MARKS = ("%pip install", "from decs.notebook import setup")


def as_source_lines(text: str) -> list[str]:
    """A cell source as Jupyter stores it: one string per line, each but the last ending in \\n."""
    lines = text.split("\n")
    return [line + "\n" for line in lines[:-1]] + [lines[-1]]


def first_code_cell(nb: dict) -> dict:
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            return cell
    raise ValueError("the notebook has no code cell")


def sync(path: Path, check: bool = False) -> bool:
    """Whether ``path``'s first code cell differed from the generated one (rewritten unless
    ``check``)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    cell = first_code_cell(nb)
    wanted = as_source_lines(install_cell(notebook_data(nb.get("metadata", {}))))
    source = cell["source"] if isinstance(cell["source"], list) else as_source_lines(cell["source"])
    if source == wanted:
        return False
    text = "".join(source)
    if text.strip() and not any(mark in text for mark in SETUP_MARKS):
        # Never overwrite a chapter's own code: the cell must be empty or an older set-up cell.
        raise SystemExit(f"{path}: the first code cell is not a set-up cell (it has none of "
                         f"{SETUP_MARKS}); insert an empty code cell before it and run again")
    if not check:
        cell["source"] = wanted
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a notebook differs")
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: book/*.ipynb")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "book").glob("*.ipynb"))
    changed = [p for p in paths if sync(p, check=args.check)]
    for p in changed:
        print(f"{'differs' if args.check else 'rewrote'}: {p}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
