"""The book's hand-written tables agree with the code, and every toc entry exists."""
import re
from pathlib import Path


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
