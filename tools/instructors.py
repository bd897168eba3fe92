"""Writes book/instructors.md: each chapter's exercises, what each needs, how long the coding ones run.

    python tools/instructors.py           # write the page
    python tools/instructors.py --check   # exit 1 when the page is not what this writes

The exercises, their numbers (chapter number from the toc's numbered parts, then the order on the
page: what sphinx-exercise prints) and their chapters are read from the pages themselves; what an
exercise needs is the one judgment typed here (NEEDS, by label), and the time of a coding exercise
that trains is computed from what it runs (:func:`decs.notebook.minutes_at` at the ``ci``
profile). An exercise with no entry in NEEDS, or an entry for an exercise that no longer exists,
is an error: the page cannot go stale (tests/test_book.py runs --check).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "book" / "instructors.md"

PAPER, CODE, RECORDS, TRAINS = "pen and paper", "code", "code and the committed records", "code, trains"
# What each exercise needs. TRAINS: (what it runs, runs of decs.runs.run on USPS, pretraining
# included?) for the estimate; HaDis and the multi-process runs are timed as their chapter's cell.
NEEDS = {
    "ex-02-1": PAPER, "ex-02-2": CODE, "ex-02-3": CODE, "ex-02-4": CODE,
    "ex-03-1": CODE, "ex-03-2": (TRAINS, "one pretraining without augmentation", 1, True),
    "ex-03-3": PAPER, "ex-03-4": PAPER,
    "ex-04-1": PAPER, "ex-04-2": CODE, "ex-04-3": PAPER, "ex-04-4": CODE,
    "ex-05-1": PAPER, "ex-05-2": CODE, "ex-05-3": PAPER, "ex-05-4": CODE,
    "ex-06-1": PAPER, "ex-06-2": CODE, "ex-06-3": CODE, "ex-06-4": PAPER,
    "ex-07-1": PAPER, "ex-07-2": CODE, "ex-07-3": PAPER, "ex-07-4": CODE,
    "ex-th1-1": PAPER, "ex-th1-2": PAPER, "ex-th1-3": CODE, "ex-th1-4": CODE,
    "ex-08-1": PAPER, "ex-08-2": CODE, "ex-08-3": PAPER, "ex-08-4": PAPER, "ex-08-5": PAPER,
    "ex-09-1": PAPER, "ex-09-2": CODE, "ex-09-3": PAPER,
    "ex-10-1": PAPER, "ex-10-2": (TRAINS, "the new variant on the chapter's two seeds", 2, False),
    "ex-10-3": PAPER, "ex-10-4": PAPER,
    "ex-dc-1": PAPER, "ex-dc-2": RECORDS,
    "ex-five-1": PAPER, "ex-five-2": RECORDS, "ex-five-3": PAPER, "ex-five-4": RECORDS,
    "ex-dist-1": PAPER, "ex-dist-2": CODE, "ex-dist-3": PAPER,
    "ex-sens-1": PAPER, "ex-sens-2": PAPER, "ex-sens-3": (TRAINS, "three cells of the live grid", 3, False),
    "ex-tsne-1": CODE, "ex-tsne-2": CODE, "ex-tsne-3": PAPER,
    "ex-hadis-1": PAPER, "ex-hadis-2": CODE, "ex-hadis-3": PAPER,
    "ex-hadis-4": (TRAINS, "six HaDis trainings, three times the chapter's live cell", None, None),
    "ex-hadis-5": PAPER, "ex-hadis-6": PAPER,
}

EXERCISE = re.compile(r"^(`{3,}|:{3,})\{exercise\}[^\n]*\n((?::[\w-]+:[^\n]*\n)*)", re.M)


def chapters() -> list[tuple[int, str]]:
    """(number, page) of every chapter of the toc's numbered parts, in order."""
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [c["file"] for part in toc["parts"] if part.get("numbered") for c in part["chapters"]]
    return list(enumerate(pages, start=1))


def page_text(entry: str) -> str:
    path = next(p for p in (ROOT / f"{entry}.md", ROOT / f"{entry}.ipynb") if p.exists())
    if path.suffix == ".md":
        return path.read_text(encoding="utf-8")
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def exercises(text: str) -> list[tuple[str, bool]]:
    """(label, numbered) of every {exercise} of a page, in order."""
    out = []
    for m in EXERCISE.finditer(text):
        label = re.search(r"^:label: (\S+)", m.group(2), flags=re.M)
        if not label:
            raise ValueError(f"an exercise without a :label: ({m.group(0)[:60]!r}): give it one")
        out.append((label.group(1), ":nonumber:" not in m.group(2)))
    return out


def needs(label: str) -> tuple[str, str]:
    """What an exercise needs, and how long it runs at the ci profile."""
    from decs.config import get_config
    from decs.notebook import minutes_at

    entry = NEEDS[label]
    if entry == PAPER:
        return PAPER, "—"
    if entry in (CODE, RECORDS):
        return entry, "seconds"
    _, what, runs, pretrain = entry
    if runs is None:
        return f"{TRAINS}: {what}", "a few minutes"
    minutes = minutes_at("usps", get_config("ci"), runs=runs, pretrain=pretrain)
    return f"{TRAINS}: {what}", "under a minute" if minutes < 1 else f"about {minutes:.0f} min"


def render() -> str:
    from decs.release import site_url

    found, rows = set(), []
    for number, entry in chapters():
        listed = exercises(page_text(entry))
        if not listed:
            continue
        rows += ["", f"## Chapter {number}: {{doc}}`{entry.removeprefix('book/')}`", "",
                 "| exercise | needs | time at `ci` |", "|---|---|---|"]
        for label, numbered in listed:
            if label not in NEEDS:
                raise KeyError(f"{label} ({entry}) has no entry in tools/instructors.py's NEEDS: say what it needs")
            what, time = needs(label)
            # {numref} prints the number Sphinx gives it (Exercise 4.2), the same as on the chapter
            shown = f"{{numref}}`{label}`" if numbered else f"{{ref}}`{label}`"
            rows.append(f"| {shown} | {what} | {time} |")
            found.add(label)
    stale = sorted(set(NEEDS) - found)
    if stale:
        raise KeyError(f"NEEDS names exercises no chapter has: {stale}")
    n_code = sum(1 for v in NEEDS.values() if v != PAPER)
    head = f"""# For instructors

<!-- Written by tools/instructors.py from the chapters' exercises; do not edit by hand
     (tests/test_book.py fails when this page and the chapters disagree). -->

Every chapter ends with exercises: {len(NEEDS)} in all, {len(NEEDS) - n_code} with pen and paper
and {n_code} at the keyboard. Their solutions are in the book, in a folded box under each
exercise. For assignments, the **student edition** is the same book without the solutions and
without the page sources that hold them, at <{site_url("student/")}> (`make book-student` builds
it locally).

What the columns mean:

* **needs**: *{PAPER}*; *{CODE}* (a few lines in the chapter's notebook, using what it
  computed); *{RECORDS}* (reads the run records of `results/`, which a checkout has and an
  installed package fetches; offline they may be missing); *{TRAINS}* (runs the training loop
  again). No exercise needs a GPU: at the `ci` profile every one runs on a laptop's CPU.
* **time at `ci`**: how long a coding exercise runs at the `ci` profile on 2 CPU cores (the
  profile a runtime without a GPU chooses), estimated from the speed benchmark of
  {{doc}}`reproducibility`; a GPU takes less, the `cpu` and `paper` profiles much longer. The
  chapter's notebook must have run first (each runs in under two minutes at `ci`).
"""
    return head + "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when book/instructors.md is stale")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    text = render()
    if args.check:
        if not PAGE.exists() or PAGE.read_text(encoding="utf-8") != text:
            print(f"{PAGE.relative_to(ROOT)} is stale: run python tools/instructors.py")
            return 1
        return 0
    PAGE.write_text(text, encoding="utf-8")
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
