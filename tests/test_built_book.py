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
    # each folder with its closing "/": "/work" alone also matches ".github/workflows/"
    needles = {str(ROOT) + "/", str(ROOT.parent) + "/", "site-packages", os.path.expanduser("~") + "/"}
    if os.environ.get("DECS_DATA"):
        needles.add(str(Path(os.environ["DECS_DATA"]).resolve()))
    bad = [(p.name, n) for p, text in _pages() for n in needles if len(n) > 2 and n in text]
    assert not bad, f"pages showing the build machine's paths: {bad}"


def _executed() -> bool:
    """Whether the build executed the notebooks (`make book`), not `make book-check`'s build."""
    return 'class="cell_output' in (HTML / "book" / "02_clustering_and_metrics.html").read_text(errors="replace")


def test_results_pages_say_which_scale_they_show():
    if not _executed():
        pytest.skip("the scale admonitions are outputs: this build did not execute the notebooks")
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


# ------------------------------------------------------------ what a reader sees: classes of defect
# These run on the book-check build too (no executed outputs, glued numbers absent: an absent
# number leaves no markup behind, so they do not fail on it):
#   DECS_BUILT_BOOK=_build/check/_build/html .venv/bin/python -m pytest -q tests/test_built_book.py
from html.parser import HTMLParser  # noqa: E402

# Text a reader should never see: TeX delimiters outside MathJax's containers (a $$ block that
# MyST did not recognise leaves "$" and "\(" in the text), MyST roles and directives that were
# not parsed (`{glue:text}`, `{prf:ref}`, `{doc}`, `{numref}`, `{eq}`, ...), and the backticks
# or fences of code that did not become code.
UNRENDERED = re.compile(
    r"\$|\\[()\[\]]|`|:::|\{glue|\{(?:prf:[a-z]+|numref|doc|math|eq|ref|cite(?::[a-z]+)?|term|"
    r"download|func|class|mod|meth|attr|exc|abbr|sub|sup|index|exercise|solution|admonition|"
    r"figure|code-cell|note|warning|dropdown)\}")
# Elements whose text is not prose: code, scripts, and MathJax's containers (class "math" before
# MathJax runs, mjx-* elements after it).
NOT_PROSE_TAGS = {"script", "style", "pre", "code", "textarea", "math", "svg", "kbd", "samp"}
NOT_PROSE_CLASSES = {"math", "MathJax", "MathJax_Preview", "MathJax_Display", "mjx-container"}
# Known instances outside the book's own files, each with where it comes from (none at present;
# the api page's "N×``embedding_dim``" of decs.models was one: an inline literal of RST needs a
# space before its opening ``). The test fails once one is gone, so that it leaves this set:
# (page, text found).
KNOWN_UNRENDERED: set[tuple[str, str]] = set()


class _Prose(HTMLParser):
    """The text nodes of a page that are prose (outside NOT_PROSE_TAGS / NOT_PROSE_CLASSES)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.skip, self.depth, self.text = None, 0, []

    def handle_starttag(self, tag, attrs):
        if self.skip:
            self.depth += tag == self.skip
            return
        classes = set((dict(attrs).get("class") or "").split())
        if tag in NOT_PROSE_TAGS or tag.startswith("mjx-") or classes & NOT_PROSE_CLASSES:
            self.skip, self.depth = tag, 1

    def handle_endtag(self, tag):
        if self.skip and tag == self.skip:
            self.depth -= 1
            if not self.depth:
                self.skip = None

    def handle_data(self, data):
        if not self.skip:
            self.text.append(data)


def _prose(page: Path) -> list[str]:
    parser = _Prose()
    parser.feed(page.read_text(errors="replace"))
    return parser.text


def _article(page: Path) -> str:
    """The page's main column (the <article>), without the navigation around it."""
    html = page.read_text(errors="replace")
    start = html.find('<article class="bd-article"')
    return html[start:html.find("</article>", start)] if start >= 0 else html


def test_no_page_shows_unrendered_markup():
    """No dollar signs, TeX delimiters, MyST roles or fences in a page's prose: each is markup that
    the build failed to render (display math after a text line, nested backticks around a glue
    role, a wrapped line read as a list item)."""
    found = set()
    for page, _ in _pages():
        for text in _prose(page):
            for m in UNRENDERED.finditer(text):
                found.add((page.name, text[max(0, m.start() - 50):m.end() + 50].strip()))
    known = {(p, t) for p, t in found for kp, kt in KNOWN_UNRENDERED if p == kp and kt in t}
    bad = sorted(found - known)
    assert not bad, "unrendered markup in the pages' text:\n" + "\n".join(f"{p}: {t!r}" for p, t in bad)
    gone = [k for k in KNOWN_UNRENDERED if not any(p == k[0] and k[1] in t for p, t in known)]
    assert not gone, f"{gone} no longer appear: remove them from KNOWN_UNRENDERED"


# A table the page column holds: the column is 650-760 pixels wide on a 1,280-1,400-pixel screen
# (sphinx-book-theme: the article is at most 60em beside a 17rem secondary sidebar), about 80-90
# characters of table text. A word cannot wrap, and neither should a number: "0.912 ± 0.004 (3)"
# broken over lines is what made the old Table 1 unreadable. So a column needs at least its
# longest word or number, and the columns side by side must fit; a word of more than 60
# characters (a file name in code type) takes most of the column by itself.
MAX_TABLE_COLUMNS = 8
MAX_TABLE_CHARACTERS = 90    # the columns' least widths side by side, with a little padding
MAX_TABLE_WORD = 60
# Known instances outside the book's own files: (page, the table's first row). The test fails
# once one fits, so that it leaves this set.
KNOWN_WIDE_TABLES = {
    # decs/data.py's module docstring: its file-name column holds a 53-character name in code type
    ("api.html", "name | N | C×H×W | k | files under the data root"),
}
NUMBER = re.compile(r"[-−+]?[\d.,]+%?(?: ± [\d.,]+%?)?(?: \(\d+\))?(?: / (?:[-−+]?[\d.,]+|—))?")


class _Tables(_Prose):
    """The tables of a page: for each, its rows, each a list of (colspan, rowspan, cell text); math
    is left out of the text (its TeX source is longer than what MathJax draws)."""

    def __init__(self):
        super().__init__()
        self.tables, self.stack = [], []

    def handle_starttag(self, tag, attrs):
        if self.skip or tag in NOT_PROSE_TAGS - {"code"} or tag.startswith("mjx-") or (
                set((dict(attrs).get("class") or "").split()) & NOT_PROSE_CLASSES):
            return super().handle_starttag(tag, attrs)
        if tag == "table":
            self.stack.append([])
        elif self.stack and tag == "tr":
            self.stack[-1].append([])
        elif self.stack and tag in ("td", "th") and self.stack[-1]:
            spans = [dict(attrs).get(a) or "1" for a in ("colspan", "rowspan")]
            self.stack[-1][-1].append([*(int(n) if n.isdigit() else 1 for n in spans), ""])

    def handle_endtag(self, tag):
        if self.skip:
            return super().handle_endtag(tag)
        if tag == "table" and self.stack:
            self.tables.append(self.stack.pop())

    def handle_data(self, data):
        if not self.skip and self.stack and self.stack[-1] and self.stack[-1][-1]:
            self.stack[-1][-1][-1][2] += data


def _tables(page: Path):
    parser = _Tables()
    parser.feed(_article(page))
    return parser.tables


def _table_faults(rows) -> list[str]:
    """rows: lists of (colspan, rowspan, text), as _Tables reads them."""
    faults, placed, below = [], [], {}   # below: column -> rows a rowspan above still covers
    for row in rows:   # each cell's column, the cells spanned from the rows above skipped
        col, cells = 0, []
        for span, down, text in row:
            while below.get(col, 0) > 0:
                col += 1
            cells.append((col, span, text))
            for c in range(col, col + span):
                below[c] = max(below.get(c, 0), down)
            col += span
        below = {c: n - 1 for c, n in below.items() if n > 1}
        placed.append(cells)
    columns = max((c + span for cells in placed for c, span, _ in cells), default=0)
    if columns > MAX_TABLE_COLUMNS:
        faults.append(f"{columns} columns (at most {MAX_TABLE_COLUMNS})")
    widest: dict[int, int] = {}   # column -> the least width it can take
    for cells in placed:
        for col, span, text in cells:
            word = max((len(w) for w in text.split()), default=0)
            if word > MAX_TABLE_WORD:
                faults.append(f"a cell with a {word}-character word: {text.strip()[:60]!r}")
            least = len(text.strip()) if NUMBER.fullmatch(text.strip()) else word
            if span == 1:
                widest[col] = max(widest.get(col, 0), least)
    least = sum(widest.values()) + 2 * len(widest)   # and a little padding per column
    if least > MAX_TABLE_CHARACTERS:
        faults.append(f"its columns need at least {least} characters side by side "
                      f"(at most {MAX_TABLE_CHARACTERS})")
    return faults


def test_every_table_fits_the_page_column():
    """A static proxy of "the table is wider than the page column": too many columns, a word too
    long to wrap, or columns whose longest words alone are wider than the column (the browser
    cannot make the table narrower than that, and cuts off the right-hand columns)."""
    bad, known = [], set()
    for page, _ in _pages():
        for i, rows in enumerate(_tables(page), start=1):
            head = " | ".join(" ".join(t.split()) for *_, t in (rows[0] if rows else []))
            faults = _table_faults(rows)
            if faults and (page.name, head) in KNOWN_WIDE_TABLES:
                known.add((page.name, head))
            else:
                bad += [f"{page.name}, table {i} ({head[:80]}): {f}" for f in faults]
    assert not bad, "tables wider than the page column:\n" + "\n".join(bad)
    fixed = KNOWN_WIDE_TABLES - known
    assert not fixed, f"{fixed} now fit (or are gone): remove them from KNOWN_WIDE_TABLES"


def test_code_and_outputs_wrap_instead_of_being_clipped():
    """Every page loads _static/decs.css, whose rule wraps long lines of code and of outputs, and
    every <pre> of a page's main column is one that rule reaches."""
    css = (HTML / "_static" / "decs.css")
    assert css.is_file(), "the build has no _static/decs.css (the book's own CSS)"
    rule = re.search(r"([^{}]+)\{[^}]*white-space:\s*pre-wrap", css.read_text())
    assert rule, "decs.css has no rule with white-space: pre-wrap"
    selectors = rule.group(1)
    for needed in ("div.highlight pre", "div.cell_output pre", "pre.literal-block"):
        assert needed in selectors, f"decs.css's wrapping rule does not reach {needed}"
    unwrapped = []
    for page, _ in _pages():
        html = page.read_text(errors="replace")
        if "<article" not in html:   # the root index.html only redirects to book/index.html
            continue
        if "_static/decs.css" not in html:
            unwrapped.append(f"{page.name} does not load decs.css")
        # a <pre> is reached when it is a literal block or sits right inside div.highlight
        for m in re.finditer(r"<pre\b([^>]*)>", _article(page)):
            before = _article(page)[max(0, m.start() - 40):m.start()]
            if "literal-block" not in m.group(1) and not re.search(r'<div class="highlight">\s*$', before):
                unwrapped.append(f"{page.name}: a <pre{m.group(1)}> outside div.highlight")
    assert not unwrapped, "\n".join(sorted(set(unwrapped)))
