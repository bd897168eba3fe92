"""The book's hand-written tables agree with the code, every toc entry exists, and every notebook
installs the one pinned release named in decs.release."""
import re
import sys
from pathlib import Path

import pytest

from decs.config import PROFILES, get_config

ROOT = Path(__file__).resolve().parent.parent


def test_preface_profile_table_matches_config():
    text = (ROOT / "book" / "01_preface.md").read_text()
    for field in ("pretrain_epochs", "maxiter", "kmeans_n_init"):
        row = re.search(rf"^\| `{field}` \|.*$", text, flags=re.M)
        assert row, f"the preface's profile table has no row for {field}"
        cells = [c.strip() for c in row.group(0).strip("|").split("|")][-3:]
        assert [int(c.replace(",", "")) for c in cells] == [getattr(get_config(p), field) for p in PROFILES], field


def test_readme_profile_table_matches_config():
    text = (ROOT / "README.md").read_text()
    for p in PROFILES:
        row = re.search(rf"^\| `{p}` \|.*$", text, flags=re.M)
        cells = [c.strip() for c in row.group(0).strip("|").split("|")]
        cfg = get_config(p)
        assert int(cells[2].replace(",", "")) == cfg.pretrain_epochs and int(cells[3].replace(",", "")) == cfg.maxiter


def test_every_toc_entry_exists_and_notebooks_use_python3():
    import json

    toc = (ROOT / "_toc.yml").read_text()
    for entry in re.findall(r"file: (\S+)", toc) + re.findall(r"root: (\S+)", toc):
        found = [p for p in (ROOT / f"{entry}.md", ROOT / f"{entry}.ipynb") if p.exists()]
        assert found, f"_toc.yml names {entry}, which does not exist"
        if found[0].suffix == ".ipynb":
            nb = json.loads(found[0].read_text())
            assert nb["metadata"]["kernelspec"]["name"] == "python3", entry
            assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code"), \
                f"{entry} is committed with outputs"



def test_the_index_map_and_the_preface_table_name_every_chapter():
    """A chapter added to _toc.yml must also appear on the index's map and in the preface's table
    of chapters, or a reader of either never learns it exists."""
    toc = (ROOT / "_toc.yml").read_text()
    pages = [e.removeprefix("book/") for e in re.findall(r"file: (\S+)", toc)]
    index = (ROOT / "book" / "index.md").read_text()
    preface = (ROOT / "book" / "01_preface.md").read_text()
    missing_index = [p for p in pages if f"{{doc}}`{p}`" not in index]
    assert "{doc}`instructors`" in preface
    assert not missing_index, f"book/index.md's map does not name {missing_index}"
    chapters = [p for p in pages if p not in ("01_preface", "notation", "api", "reproducibility",
                                               "instructors", "bibliography", "cite")]
    missing_preface = [p for p in chapters if f"| {{doc}}`{p}` |" not in preface]
    assert not missing_preface, f"the preface's table of chapters does not name {missing_preface}"

RESULTS_PAGES = ("03_representation_learning", "04_dec_pseudo_targets", "08_training_usps", "10_ablations",
                 "sensitivity", "embedding_tsne")
DRAWS = ("plt.subplots(", "plt.figure(", "plots.embedding_2d(", "image_grid(", "plots.heatmap(", ".hist(")
NAMES_SCALE = ("SCALE", "LIVE", ".label(", "scale_label(")


def test_every_result_figure_names_its_scale():
    """On the pages that show what the method does, a cell that draws a figure puts the scale
    (profile, n, length: decs.plots.scale_label) in its title, unless it is tagged
    ``illustration`` (a picture of data or of a mechanism, no training result)."""
    import json

    missing = []
    for name in RESULTS_PAGES:
        nb = json.loads((ROOT / "book" / f"{name}.ipynb").read_text())
        for i, cell in enumerate(nb["cells"]):
            src = "".join(cell["source"])
            if cell["cell_type"] != "code" or not any(d in src for d in DRAWS):
                continue
            if "illustration" in cell.get("metadata", {}).get("tags", []):
                continue
            if not any(n in src for n in NAMES_SCALE):
                missing.append(f"{name} cell {i}")
    assert not missing, f"figures without their scale in the title: {missing}"


# ------------------------------------------------- one repository address, one pinned release
BOOK_SOURCES = ("book/*.md", "book/*.ipynb", "README.md", "CITATION.cff", "LICENSE-text", "_config.yml")


def _notebooks():
    return sorted((ROOT / "book").glob("*.ipynb"))


def test_every_notebook_starts_with_the_generated_install_cell():
    import json

    from decs.release import install_cell, notebook_data

    differ = []
    for path in _notebooks():
        nb = json.loads(path.read_text(encoding="utf-8"))
        first = next(c for c in nb["cells"] if c["cell_type"] == "code")
        if "".join(first["source"]) != install_cell(notebook_data(nb["metadata"])):
            differ.append(path.name)
    assert not differ, (f"the first code cell of {differ} is not decs.release.install_cell(): "
                        "run python tools/sync_install_cell.py")


def test_the_sync_tool_agrees_with_the_test(tmp_path):
    """tools/sync_install_cell.py rewrites only the first code cell's source."""
    import importlib.util
    import json

    from decs.release import install_cell

    spec = importlib.util.spec_from_file_location("sync_install_cell", ROOT / "tools" / "sync_install_cell.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    nb = {"cells": [{"cell_type": "markdown", "id": "m", "metadata": {}, "source": ["# Title"]},
                    {"cell_type": "code", "id": "c1", "metadata": {"tags": ["hide-input"]}, "execution_count": None,
                     "outputs": [], "source": ["%pip install decs\n", "import decs"]},
                    {"cell_type": "code", "id": "c2", "metadata": {}, "execution_count": None, "outputs": [],
                     "source": ["%pip install decs"]}],
          "metadata": {"kernelspec": {"name": "python3"}}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    assert tool.main(["--check", str(path)]) == 1
    assert tool.main([str(path)]) == 0 and tool.main(["--check", str(path)]) == 0
    after = json.loads(path.read_text(encoding="utf-8"))
    assert "".join(after["cells"][1]["source"]) == install_cell()
    after["cells"][1]["source"] = nb["cells"][1]["source"]
    assert after == nb  # nothing else changed: ids, metadata, the other cells
    nb["cells"][1]["source"] = ["x = 1  # a chapter's own code"]
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="not a set-up cell"):
        tool.main([str(path)])
    assert json.loads(path.read_text(encoding="utf-8")) == nb


def test_config_names_the_release_module_s_repository():
    import yaml

    from decs.release import RELEASE, REPOSITORY

    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["repository"]["url"] == REPOSITORY
    # the launch buttons open the notebooks of the release the set-up cell installs
    assert config["repository"]["branch"] == RELEASE


def test_the_requirement_pins_the_release_and_names_an_extra_that_exists():
    from packaging.requirements import Requirement

    from decs.release import EXTRA, RELEASE, REPOSITORY, requirement

    tomllib = pytest.importorskip("tomllib")
    req = Requirement(requirement())
    assert req.name == "decs" and req.extras == {EXTRA}
    assert req.url == f"git+{REPOSITORY}@{RELEASE}"
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert EXTRA in extras
    assert Requirement(requirement(extra=None)).extras == set()


def test_every_link_to_the_repository_uses_the_release_module_s_address():
    """A copy of the address elsewhere (a link in a page) must change with decs.release."""
    from decs.release import REPOSITORY

    here = REPOSITORY.split("://", 1)[1]
    stray = []
    for pattern in BOOK_SOURCES:
        for path in sorted(ROOT.glob(pattern)):
            for found in re.findall(r"github\.com/[\w.-]+/decs-book[\w.-]*", path.read_text(encoding="utf-8")):
                if found != here:
                    stray.append(f"{path.relative_to(ROOT)}: {found}")
    assert not stray, f"links to another address than decs.release.REPOSITORY: {stray}"


# ------------------------------------------------- glue without MyST-NB (Colab, plain Jupyter)
def test_notebooks_import_glue_from_decs_not_myst_nb():
    import json

    direct = []
    for path in _notebooks():
        nb = json.loads(path.read_text(encoding="utf-8"))
        for i, cell in enumerate(nb["cells"]):
            if cell["cell_type"] == "code" and "myst_nb" in "".join(cell["source"]):
                direct.append(f"{path.name} cell {i}")
    assert not direct, f"use `from decs.notebook import glue` (MyST-NB is not installed on Colab): {direct}"


def test_glue_uses_myst_nb_where_installed_and_shows_or_skips_elsewhere(monkeypatch):
    import sys
    import types

    import IPython.display

    from decs import notebook

    shown, glued = [], []
    monkeypatch.setattr(IPython.display, "display", lambda value, **kw: shown.append(value))
    fake = types.ModuleType("myst_nb")
    fake.glue = lambda name, value, display=True: glued.append((name, value, display))
    monkeypatch.setitem(sys.modules, "myst_nb", fake)
    notebook._myst_nb_glue.cache_clear()
    try:
        notebook.glue("acc", 0.5, display=False)
        assert glued == [("acc", 0.5, False)] and shown == []
        monkeypatch.setitem(sys.modules, "myst_nb", None)  # what `import myst_nb` sees without it
        notebook._myst_nb_glue.cache_clear()
        assert notebook.glue("acc", 0.5, display=False) is None and shown == []
        notebook.glue("acc", 0.75)
        assert shown == [0.75] and len(glued) == 1
    finally:
        notebook._myst_nb_glue.cache_clear()


# ------------------------------------------------- citation and licences
def test_citation_file_names_the_repository_release_licences_and_the_paper():
    import yaml

    from decs.release import RELEASE, REPOSITORY

    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert cff["cff-version"] == "1.2.0" and cff["authors"] and cff["message"]
    assert cff["repository-code"] == REPOSITORY
    assert cff["version"] == RELEASE.removeprefix("v")
    assert set(cff["license"]) == {"MIT", "CC-BY-4.0"}
    bib = (ROOT / "book" / "references.bib").read_text(encoding="utf-8")
    paper = re.search(r"@inproceedings\{cheng2024decs,.*?title\s*=\s*\{(.+?)\},", bib, flags=re.S).group(1)
    assert [r["title"] for r in cff["references"]] == [paper]
    assert [a["family-names"] for a in cff["references"][0]["authors"]] == ["Cheng", "Li", "Wang", "Qian"]


def test_licence_files_match_pyproject_and_the_cite_page():
    from decs.release import RELEASE

    import decs

    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE", "LICENSE-text"]
    # the package a notebook installs from the release tag says it is that release
    assert project["version"] == decs.__version__ == RELEASE.removeprefix("v")
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")
    assert "CC BY 4.0" in (ROOT / "LICENSE-text").read_text()
    cite = (ROOT / "book" / "cite.md").read_text(encoding="utf-8")
    assert re.search(r"version\s*=\s*\{(.+?)\}", cite).group(1) == RELEASE.removeprefix("v")
    for named in ("MIT", "CC BY 4.0", "LICENSE", "LICENSE-text", "data/README.md", "{cite:t}`cheng2024decs`"):
        assert named in cite, named
    assert re.search(r"^\s+- file: book/cite$", (ROOT / "_toc.yml").read_text(), flags=re.M)


def test_the_install_cell_is_valid_ipython_that_pip_installs_the_requirement():
    """The %pip line sits inside an if: IPython must still turn it into a magic call."""
    from IPython.core.inputtransformer2 import TransformerManager

    from decs.release import install_cell, requirement

    python = TransformerManager().transform_cell(install_cell())
    compile(python, "install_cell", "exec")
    assert f"""run_line_magic('pip', 'install -q "{requirement()}"')""" in python


def test_vendored_mathjax_is_unpacked_and_every_page_points_at_it(tmp_path):
    """tools/vendor_mathjax.py: the kept files copied, the CDN address replaced by a relative path."""
    import importlib.util
    import io
    import tarfile

    spec = importlib.util.spec_from_file_location("vendor_mathjax", ROOT / "tools" / "vendor_mathjax.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tarball = tmp_path / "mj.tgz"
    with tarfile.open(tarball, "w:gz") as tar:
        for name in ("package/es5/tex-mml-chtml.js", "package/es5/output/chtml/fonts/woff-v2/a.woff",
                     "package/es5/sre/speech.js", "package/README.md"):
            data = name.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    html = tmp_path / "html"
    (html / "book").mkdir(parents=True)
    cdn = '<script async="async" src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"></script>'
    (html / "index.html").write_text(cdn)
    (html / "book" / "ch.html").write_text(cdn)
    (html / "book" / "plain.html").write_text("<p>no math</p>")
    assert tool.unpack(tarball, html / "_static" / "mathjax") == 2  # the speech rule engine is left out
    assert (html / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2" / "a.woff").is_file()
    assert tool.point_pages_at(html) == 2
    assert 'src="_static/mathjax/tex-mml-chtml.js"' in (html / "index.html").read_text()
    assert 'src="../_static/mathjax/tex-mml-chtml.js"' in (html / "book" / "ch.html").read_text()


def test_the_pages_workflow_is_valid_and_builds_and_tests_the_book(tmp_path):
    """.github/workflows/pages.yml against GitHub's workflow schema (check-jsonschema's vendored
    copy: no network), and a broken copy is refused, so the check can fail."""
    import shutil
    import subprocess

    import yaml

    exe = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    workflow = ROOT / ".github" / "workflows" / "pages.yml"

    def check(path):
        return subprocess.run([exe, "--builtin-schema", "vendor.github-workflows", str(path)],
                              capture_output=True, text=True)

    ok = check(workflow)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    flow = yaml.safe_load(workflow.read_text())
    steps = [s.get("run", "") + s.get("uses", "") for s in flow["jobs"]["build"]["steps"]]
    assert "make book" in steps and any("test_built_book" in s for s in steps)
    assert any(s.startswith("actions/deploy-pages") for s in
               [s.get("uses", "") for s in flow["jobs"]["deploy"]["steps"]])
    broken = tmp_path / "broken.yml"
    broken.write_text(workflow.read_text().replace("runs-on: ubuntu-latest", "runs_on: ubuntu-latest"))
    assert check(broken).returncode != 0


# ------------------------------------------------- code that fits the rendered page
PAGE_WIDTH = 100  # characters of code the book's page shows without a horizontal scroll bar
# Chapters committed by their authors before this test, not yet wrapped (none at present):
# their long lines are allowed until they are, and the test fails once a chapter here has none,
# so that it leaves this set.
NOT_YET_WRAPPED = set()


def test_notebook_code_lines_fit_the_page():
    """Every line of every code cell of every notebook is at most PAGE_WIDTH characters. The
    generated set-up cell (decs.release.install_cell) is held to it too: it is shorter."""
    import json

    long, wrapped = [], []
    for path in _notebooks():
        nb = json.loads(path.read_text(encoding="utf-8"))
        found = []
        for i, cell in enumerate(nb["cells"]):
            if cell["cell_type"] != "code":
                continue
            for j, line in enumerate("".join(cell["source"]).split("\n"), start=1):
                if len(line) > PAGE_WIDTH:
                    found.append(f"{path.name} cell {i} line {j} ({len(line)} characters): {line}")
        if path.name not in NOT_YET_WRAPPED:
            long += found
        elif not found:
            wrapped.append(path.name)
    assert not long, (f"{len(long)} code lines are longer than {PAGE_WIDTH} characters (wrap them "
                      "inside brackets):\n" + "\n".join(long))
    assert not wrapped, f"{wrapped} now fit the page: remove them from NOT_YET_WRAPPED"


def test_the_printed_set_up_lines_fit_the_page(monkeypatch, capsys, tmp_path):
    """What every notebook's first cell prints is held to PAGE_WIDTH like its code: a reader's
    first look at a page is that line, and its end (torch and python versions, why this profile)
    is what a clipped line hides. As a reader on a CPU-only Colab runtime sees it (no
    DECS_PROFILE; a data folder outside the repository, as the book's build uses)."""
    from decs import notebook

    monkeypatch.setenv("DECS_PROFILE", "")   # unset as setup sees it; restored afterwards
    monkeypatch.setenv("DECS_DEVICE", "cpu")
    monkeypatch.setenv("DECS_DOWNLOAD", "0")
    (tmp_path / "shared" / "data").mkdir(parents=True)
    monkeypatch.setenv("DECS_DATA", str(tmp_path / "shared" / "data"))
    notebook.setup(seed=0)
    long = [line for line in capsys.readouterr().out.splitlines() if len(line) > PAGE_WIDTH]
    assert not long, f"set-up lines longer than {PAGE_WIDTH} characters: {long}"


# ------------------------------------------------- a course can adopt it
def _chapters() -> list[str]:
    """The numbered chapters: every file of the toc's numbered parts (Parts I-IV), in order."""
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [c["file"] for part in toc["parts"] if part.get("numbered") for c in part["chapters"]]


def test_chapters_are_numbered_and_their_objects_per_chapter():
    """Exercise 4.2, Theorem 6.1, Figure 9.3: the toc numbers the chapters (Parts I-IV, not the
    appendix) and Sphinx prefixes figures, tables, theorems and exercises with the chapter's number."""
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    numbered = [p["caption"] for p in toc["parts"] if p.get("numbered")]
    assert numbered == [p["caption"] for p in toc["parts"] if p["caption"].startswith("Part ")], numbered
    assert not any(p.get("numbered") for p in toc["parts"] if p["caption"] == "Appendix")
    sphinx = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]
    assert sphinx["config"]["numfig"] is True and sphinx["config"]["numfig_secnum_depth"] == 1
    assert "book/01_preface" in _chapters() and "book/hadis" in _chapters()


def test_theorems_known_by_the_paper_s_number_are_unnumbered_theorems():
    """The paper's Theorem 1 and the book's Theorem 1′ keep those names (book/_ext/paper_numbers.py):
    each label of proof_paper_numbers is a {prf:theorem} with :nonumber:, found exactly once."""
    import json

    import yaml

    sphinx = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]
    assert (ROOT / sphinx["local_extensions"]["paper_numbers"] / "paper_numbers.py").is_file()
    names = sphinx["config"]["proof_paper_numbers"]
    assert names == {"th1-paper": "1", "th1-corrected": "1′"}
    text = "".join("".join(c["source"]) for p in _notebooks() for c in json.loads(p.read_text())["cells"]
                   if c["cell_type"] == "markdown")
    for label in names:
        found = re.findall(rf"```\{{prf:theorem\}}[^\n]*\n:label: {label}\n:nonumber:\n", text)
        assert len(found) == 1, f"{label} is not one {{prf:theorem}} written with :nonumber:"


def test_every_chapter_opens_with_prerequisites_and_learning_objectives():
    """Each numbered chapter says, before its first section, what it assumes and what a reader can
    do after it (an admonition "Prerequisites" and one "Learning objectives", or the two in one)."""
    import json

    missing = []
    for entry in _chapters():
        path = next(p for p in (ROOT / f"{entry}.md", ROOT / f"{entry}.ipynb") if p.exists())
        if path.suffix == ".ipynb":
            text = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"]
                             if c["cell_type"] == "markdown")
        else:
            text = path.read_text()
        opening = re.split(r"^## ", text, maxsplit=1, flags=re.M)[0]
        if not (re.search(r"\{admonition\} Prerequisites", opening)
                and re.search(r"[Ll]earning objectives|\*After this chapter you can\*", opening)):
            missing.append(entry)
    assert not missing, f"these chapters do not open with prerequisites and learning objectives: {missing}"


# ------------------------------------------------------------------ markup MyST renders as meant
def _markdown_sources():
    """(where, text) of every markdown cell of every notebook and of every page in markdown."""
    import json

    for path in _notebooks():
        nb = json.loads(path.read_text(encoding="utf-8"))
        for i, cell in enumerate(nb["cells"]):
            if cell["cell_type"] == "markdown":
                yield f"{path.name} cell {i}", "".join(cell["source"])
    for path in sorted((ROOT / "book").glob("*.md")):
        yield path.name, path.read_text(encoding="utf-8")


def test_display_math_is_set_off_by_blank_lines_and_no_line_starts_a_list_by_accident():
    """A ``$$`` block right after a line of text (or with text right after its closing ``$$``) is
    not display math inside a directive such as ``{prf:proof}``: the page shows dollar signs and
    TeX. A wrapped line that begins with ``+ `` after a line of text becomes a list item (the
    book writes its lists with ``*``, so a ``+`` there is always a wrapped formula). Either shows up in the built HTML (tests/test_built_book.py); this catches it
    before a build."""
    bad = []
    for where, text in _markdown_sources():
        lines, in_math, fences = text.split("\n"), False, []   # fences: (backticks, is code)
        for j, line in enumerate(lines):
            s, prev = line.strip(), (lines[j - 1].strip() if j else "")
            nxt = lines[j + 1].strip() if j + 1 < len(lines) else ""
            fence = re.match(r"(`{3,})\s*(.*)", s)
            if fence and not in_math:
                ticks, info = len(fence.group(1)), fence.group(2)
                if not info and fences and fences[-1][0] == ticks:
                    fences.pop()
                else:   # ```{directive} holds markdown; ```python (or a bare ```) holds code
                    fences.append((ticks, not info.startswith("{")))
                continue
            if any(code for _, code in fences):
                continue
            if s.startswith("$$"):
                one_line = len(s) > 2 and s.endswith("$$")
                if not in_math and prev and not prev.startswith((":", "```")):
                    bad.append(f"{where} line {j + 1}: $$ right after text: {prev[-60:]!r}")
                if (in_math or one_line) and nxt and not nxt.startswith((":", "```")):
                    bad.append(f"{where} line {j + 1}: text right after the closing $$: {nxt[:60]!r}")
                if not one_line:
                    in_math = not in_math
                continue
            if not in_math and re.match(r"\s*\+\s", line) and prev and not re.match(r"[-+*]\s", prev):
                bad.append(f"{where} line {j + 1}: a wrapped line begins with '+' (a list item): {s[:60]!r}")
    assert not bad, "markup that MyST renders as something else:\n" + "\n".join(bad)


# a scatter plot whose colours come from the data (c=labels, c=truth, ...) or a 2-D embedding
# picture: colours encode classes
CLASS_COLOURS = re.compile(r"\.scatter\([^)]*\bc=(?![\"'])|embedding_2d\(")
# what names the colours: a key of the classes, a colour bar, or a legend given its handles
COLOUR_KEY = re.compile(r"class_key\(|colorbar\(|\.legend\([^)]*handles=")


def test_figures_whose_colours_encode_classes_have_a_key():
    """A code cell that colours points by class (t-SNE of the digits, toy blobs) also draws the
    key to those colours (:func:`decs.plots.class_key`, a colour bar, or a legend with a handle
    per class); without it the reader cannot tell which colour is which digit. A cell that only
    draws for an exercise's solution is held to it too."""
    import json

    missing = []
    for path in _notebooks():
        nb = json.loads(path.read_text(encoding="utf-8"))
        for i, cell in enumerate(nb["cells"]):
            src = "".join(cell["source"])
            if cell["cell_type"] == "code" and CLASS_COLOURS.search(src) and not COLOUR_KEY.search(src):
                missing.append(f"{path.name} cell {i}")
    assert not missing, f"figures colouring points by class with no key to the colours: {missing}"


def test_the_instructors_page_lists_every_exercise_and_is_what_its_tool_writes():
    """book/instructors.md is written by tools/instructors.py from the chapters' exercise blocks:
    a new, renamed or removed exercise makes it stale, and then this fails."""
    import subprocess

    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "instructors.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    page = (ROOT / "book" / "instructors.md").read_text()
    labels = set()
    for path in _notebooks() + sorted((ROOT / "book").glob("*.md")):
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".ipynb":
            import json

            text = "\n".join("".join(c["source"]) for c in json.loads(text)["cells"] if c["cell_type"] == "markdown")
        for block in re.findall(r"^(?:`{3,}|:{3,})\{exercise\}[^\n]*\n((?::[\w-]+:[^\n]*\n)*)", text, flags=re.M):
            labels.add(re.search(r":label: (\S+)", block).group(1))
    assert len(labels) >= 50
    missing = sorted(label for label in labels if f"`{label}`" not in page)
    assert not missing, f"exercises not on the instructors' page: {missing}"
    assert "book/instructors" in (ROOT / "_toc.yml").read_text()


def test_the_student_edition_is_linked_and_published():
    """The preface and the instructors' page link the student edition where the Pages workflow
    publishes it (decs.release.site_url("student/"))."""
    import yaml

    from decs.release import site_url

    for page in ("01_preface.md", "instructors.md"):
        assert site_url("student/") in (ROOT / "book" / page).read_text(), page
    flow = yaml.safe_load((ROOT / ".github" / "workflows" / "pages.yml").read_text())
    steps = [s for job in flow["jobs"].values() for s in job.get("steps", [])]
    assert any("make book-student" in s.get("run", "") for s in steps)
    assert any(s.get("uses", "").startswith("actions/download-artifact") and s["with"]["path"] == "_build/html/student"
               for s in steps), "the student edition is not put under /student/ of the published site"
    assert flow["jobs"]["deploy"]["needs"] == "pages" and set(flow["jobs"]["pages"]["needs"]) == {"build", "student"}
