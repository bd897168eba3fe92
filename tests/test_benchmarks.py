"""benchmarks/speed.py runs and writes the JSON the reproducibility chapter reads."""
import json
import runpy
import sys
from pathlib import Path

import pytest

from decs import data, results

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "speed.py"


@pytest.mark.skipif(not data.is_available("usps"), reason="USPS files not found under DECS_DATA (see data/README.md)")
def test_speed_script_writes_its_json(tmp_path, monkeypatch, one_thread):
    out = tmp_path / "speed.json"
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), "--datasets", "usps", "--epochs", "1",
                                      "--iterations", "3", "--device", "cpu", "--subset", "600", "--out", str(out)])
    runpy.run_path(str(SCRIPT), run_name="__main__")
    report = json.loads(out.read_text())
    assert report["command"].startswith("python benchmarks/speed.py --datasets usps --epochs 1")
    assert report["environment"]["device"] == "cpu"
    (row,) = results.load_benchmarks(tmp_path)
    assert row["dataset"] == "usps" and row["n"] == 600
    for key in ("pretrain_s_per_epoch", "full_data_eval_s", "cluster_s_per_iteration_with_eval"):
        assert row[key] > 0


def test_every_chapter_becomes_a_script_the_device_can_run(tmp_path):
    """benchmarks/device_notebooks.py: each notebook's code compiles as plain Python (magics turned
    into calls to a stand-in shell), and the stand-in IPython.display works without IPython."""
    tool = runpy.run_path(str(SCRIPT.parent / "device_notebooks.py"))
    notebooks = sorted((SCRIPT.parents[1] / "book").glob("*.ipynb"))
    assert len(notebooks) > 10
    for nb in notebooks:
        code = tool["to_script"](nb)
        compile(code, nb.name, "exec")
        assert "get_ipython().run_line_magic" not in code or "def get_ipython" in code
    shim = {}
    exec(tool["SHIM"], shim)
    shim["display"](shim["Markdown"]("**x**"))
