"""A committed record names no folder of the machine that made it: its command line gives paths
relative to the repository, or placeholders (``<results>``, ``<authors-code>``)."""
import json
import re
from pathlib import Path

from decs.paths import REPO_ROOT, record_command

RESULTS = Path(__file__).resolve().parent.parent / "results"
ABSOLUTE = re.compile(r"(?<![\w.~<>-])/(work|home|root|tmp|Users)/")


def _strings(value, where=""):
    """(where, string) for every string in a JSON value, keys included."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k, f"{where}.{k} (key)")
            yield from _strings(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{where}[{i}]")
    elif isinstance(value, str):
        yield where or ".", value


def test_no_committed_record_holds_an_absolute_path_of_the_machine_that_made_it():
    found = []
    for path in sorted(RESULTS.rglob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:  # being written by a running job
            continue
        found += [f"{path.relative_to(RESULTS.parent)}: {where} = {s[:120]!r}"
                  for where, s in _strings(record) if ABSOLUTE.search(s)]
    assert not found, "absolute paths in records (write them relative to the repository, or as " \
                      "placeholders):\n" + "\n".join(found)


def test_the_command_a_record_carries_names_paths_relative_to_the_repository_or_as_placeholders():
    argv = ["train", "--dataset", "usps", "--results", str(REPO_ROOT / "results"), "--start-from",
            "/work/weights/theirs.pt", "--set", "subset=300", "--out=/tmp/x/run.json", "--checkpoints", "/home/me/ck"]
    assert record_command("python -m decs", argv) == (
        "python -m decs train --dataset usps --results results --start-from <start-from>/theirs.pt --set "
        "subset=300 --out=<out>/run.json --checkpoints <checkpoints>")
    assert not ABSOLUTE.search(record_command("python", [str(REPO_ROOT / "benchmarks" / "speed.py"), "--seed", "1"]))
