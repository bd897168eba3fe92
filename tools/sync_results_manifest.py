"""Write decs/results_manifest.json: every file under results/ with its sha256 and size.

    python tools/sync_results_manifest.py           # rewrite it
    python tools/sync_results_manifest.py --check   # exit 1 if it differs from results/

An installed package (pip, Colab) has no results/ folder: it fetches the files this manifest
lists from the release it was installed from, checking each sha256 (decs.fetch.fetch_results).
Run it after committing a record or a model file; tests/test_results.py fails until it agrees.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "decs" / "results_manifest.json"


def committed(results: Path) -> list[Path]:
    """The files under results/ that git tracks or is about to (untracked but not ignored: a record
    just written is listed before it is staged, so the manifest and the record go in one commit),
    else all of them."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "results"],
                             cwd=ROOT, capture_output=True,
                             check=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return [p for p in results.rglob("*") if p.is_file()]
    return [ROOT / name for name in out.split("\0") if name and (ROOT / name).is_file()]


def listing(results: Path = ROOT / "results") -> dict:
    files = {}
    for path in sorted(committed(results)):
        files[path.relative_to(results).as_posix()] = {
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "bytes": path.stat().st_size}
    return files


def render(files: dict) -> str:
    return json.dumps({"about": "files under results/, fetched by an installed package "
                                "(tools/sync_results_manifest.py writes this file)",
                       "files": files}, indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if it differs")
    args = parser.parse_args(argv)
    text = render(listing())
    if MANIFEST.exists() and MANIFEST.read_text() == text:
        return 0
    if args.check:
        print(f"{MANIFEST} differs from results/: run python tools/sync_results_manifest.py")
        return 1
    sys.path.insert(0, str(ROOT))
    from decs.files import atomic_write

    atomic_write(MANIFEST, text)
    print(f"wrote {MANIFEST}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
