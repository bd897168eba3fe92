"""Rewrite JSON files under results/ in the layout of decs.files.record_json (one line per
history entry and per list of numbers), leaving their content unchanged.

    python tools/format_results.py                  # every .json under results/
    python tools/format_results.py FILE [FILE ...]  # only these (a record an older checkout wrote)
    python tools/format_results.py --check          # exit 1 if a file is not in that layout

Records written by `python -m decs` are already in it; this is for files written by older code
(or by a device run of an older commit). tests/test_results.py checks every committed file.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from decs.files import atomic_write, record_json  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="*", type=Path)
    p.add_argument("--check", action="store_true")
    args = p.parse_args(argv)
    files = args.files or sorted((ROOT / "results").rglob("*.json"))
    off = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        obj = json.loads(text)
        new = record_json(obj)
        if new == text:
            continue
        off.append(path)
        if not args.check:
            assert json.dumps(json.loads(new)) == json.dumps(obj), path   # the content is unchanged
            atomic_write(path, new)
    verb = "not in the layout" if args.check else "rewritten"
    print(f"{len(off)} of {len(files)} files {verb}" + "".join(f"\n  {p}" for p in off[:20]))
    return 1 if args.check and off else 0


if __name__ == "__main__":
    sys.exit(main())
