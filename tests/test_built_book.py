"""Tests on the executed, built book (``make book`` writes ``_build/html``; ``make test`` builds it
and runs these with ``DECS_BUILT_BOOK`` set). What a reader sees: no internal notes, no paths
of the machine that built it."""
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HTML = Path(os.environ.get("DECS_BUILT_BOOK", ROOT / "_build" / "html"))
pytestmark = pytest.mark.skipif(not (HTML / "index.html").exists() or "DECS_BUILT_BOOK" not in os.environ,
                                reason="needs an executed build: `make test` builds the book and sets DECS_BUILT_BOOK")


def _pages():
    pages = sorted(HTML.glob("book/*.html")) + [HTML / "index.html"]
    assert len(pages) > 10, f"only {len(pages)} pages under {HTML}"
    return [(p, re.sub(r"<[^>]+>", " ", p.read_text(errors="replace"))) for p in pages]


def test_no_page_cites_the_internal_notes():
    bad = [p.name for p, text in _pages() if "PAPER.md" in text]
    assert not bad, f"pages citing PAPER.md, which readers cannot see: {bad}"


def test_no_page_shows_a_path_of_the_build_machine():
    needles = {str(ROOT), str(ROOT.parent), "site-packages", os.path.expanduser("~") + "/"}
    if os.environ.get("DECS_DATA"):
        needles.add(str(Path(os.environ["DECS_DATA"]).resolve()))
    bad = [(p.name, n) for p, text in _pages() for n in needles if len(n) > 2 and n in text]
    assert not bad, f"pages showing the build machine's paths: {bad}"


def test_results_pages_say_which_scale_they_show():
    for name in ("03_representation_learning", "04_dec_pseudo_targets", "08_training_usps", "embedding_tsne"):
        text = (HTML / "book" / f"{name}.html").read_text(errors="replace")
        assert "What scale this page shows" in text, f"{name} has no scale admonition"
        assert re.search(r"the <code[^>]*><span[^>]*>(ci|cpu|paper)</span></code> profile", text), name


def test_math_renders_without_the_network_when_mathjax_was_vendored():
    """`make book` copies MathJax into _static/mathjax (tools/vendor_mathjax.py) when it can reach
    the npm registry; then no page may still load it from a CDN."""
    if not (HTML / "_static" / "mathjax" / "tex-mml-chtml.js").is_file():
        pytest.skip("MathJax was not vendored in this build (offline): the pages use the CDN")
    cdn = [p.name for p in HTML.rglob("*.html") if "cdn.jsdelivr.net/npm/mathjax" in p.read_text(errors="replace")]
    assert not cdn, f"pages still loading MathJax from the CDN: {cdn}"
    page = (HTML / "book" / "07_instability_loss.html").read_text(errors="replace")
    assert 'src="../_static/mathjax/tex-mml-chtml.js"' in page
