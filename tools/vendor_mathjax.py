"""Make the built book's math render offline: MathJax copied into the HTML, not loaded from a CDN.

    python tools/vendor_mathjax.py _build/html

Sphinx writes every page with ``<script src="https://cdn.jsdelivr.net/npm/mathjax@3/...">``: a
reader who saved the HTML, or reads it on a machine without the internet, sees raw LaTeX. This
fetches MathJax's release from the npm registry (sha256 checked; kept in the user's cache, so
once per machine), copies what the CHTML renderer needs (the combined TeX component, its fonts
and the extensions it loads on demand) into ``_static/mathjax/``, and points every page at that
copy through a relative path. ``make book`` runs it after the build; when it cannot (offline),
it says so and the pages keep the CDN address, as Sphinx wrote them.
"""
from __future__ import annotations

import argparse
import re
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VERSION = "3.2.2"
URL = f"https://registry.npmjs.org/mathjax/-/mathjax-{VERSION}.tgz"
SHA256 = "1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09"
SIZE = 6_132_118
COMPONENT = "tex-mml-chtml.js"  # what sphinx.ext.mathjax loads (its default mathjax_path)
# Inside the package's es5/ folder: the component, and what it loads relative to itself.
KEEP = (COMPONENT, "output/chtml/", "input/", "a11y/", "ui/", "adaptors/")
CDN = re.compile(r'src="https://cdn\.jsdelivr\.net/npm/mathjax@3/es5/' + re.escape(COMPONENT) + '"')


def fetch(cache: Path) -> Path:
    """The release tarball, downloaded into ``cache`` once (checked against its sha256)."""
    from decs.data import fetch_file, sha256

    path = cache / f"mathjax-{VERSION}.tgz"
    if not (path.is_file() and sha256(path) == SHA256):
        fetch_file(URL, path, SHA256, SIZE)
    return path


def unpack(tarball: Path, target: Path) -> int:
    """Copy the kept part of ``package/es5/`` into ``target``; returns the number of files."""
    n = 0
    with tarfile.open(tarball) as tar:
        for member in tar.getmembers():
            rel = member.name.removeprefix("package/es5/")
            if rel == member.name or not member.isfile() or not rel.startswith(KEEP):
                continue
            out = target / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(tar.extractfile(member).read())
            n += 1
    return n


def point_pages_at(html: Path) -> int:
    """Replace the CDN address in every page by the relative path of the copy; returns the count."""
    n = 0
    for page in html.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        depth = len(page.relative_to(html).parts) - 1
        local = f'src="{"../" * depth}_static/mathjax/{COMPONENT}"'
        new, count = CDN.subn(local, text)
        if count:
            page.write_text(new, encoding="utf-8")
            n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    from decs.paths import cache_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path, help="the built HTML folder, e.g. _build/html")
    parser.add_argument("--cache", type=Path, default=None, help="where the tarball is kept (default: the user's cache)")
    args = parser.parse_args(argv)
    try:
        tarball = fetch(args.cache or cache_dir())
    except Exception as error:  # offline, or the registry answered with something else
        print(f"MathJax not vendored ({error}): the pages load it from the CDN")
        return 1
    files = unpack(tarball, args.html / "_static" / "mathjax")
    pages = point_pages_at(args.html)
    print(f"MathJax {VERSION} vendored into {args.html / '_static' / 'mathjax'} ({files} files); "
          f"{pages} pages now load it from there")
    return 0


if __name__ == "__main__":
    sys.exit(main())
