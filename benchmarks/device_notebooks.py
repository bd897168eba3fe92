"""Every chapter's code once on a GPU, timed: the per-chapter costs a Colab reader plans from.

The device machine has PyTorch and scikit-learn but no Jupyter kernel and no network, so the
notebooks travel as scripts:

    # here: each notebook's code cells → .device/notebooks/<name>.py (IPython magics become calls
    # to a stand-in; the data comes from `benchmarks/device_table1.sh prepare usps mnist-test`)
    python benchmarks/device_notebooks.py prepare
    # on the device (after the Table 1 queue, if time is left):
    #   run(command="python3 benchmarks/device_notebooks.py run --deadline 240", carry=[".device"], timeout_s=300)
    # back here: <files_at>/notebooks.json → results/benchmarks/notebooks-<card>.json (commit it)

Each script runs in its own process with ``DECS_DEVICE=cuda`` (cpu where no GPU is found, and
the file says so), ``DECS_PROFILE=ci`` and the carried data; a chapter that fails is recorded with
the end of its output, and no new chapter starts after ``--deadline`` seconds. ``notebooks.json``
is rewritten after every chapter, so a command cut short still returns what finished.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / ".device" / "notebooks"

# Runs before each chapter's code: the calls IPython's transformer writes for magics
# (%matplotlib inline, %pip) need a get_ipython(); without a display, figures are closed.
PRELUDE = '''import os, sys
sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), "shim"))  # only if IPython is absent
import matplotlib
matplotlib.use("Agg")


class _NoShell:
    """Stands in for IPython's shell: magics do nothing outside a notebook."""
    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def get_ipython():
    return _NoShell()

'''

# A minimal IPython.display for a device image without IPython (appended last to sys.path).
SHIM = '''def display(*objects, **kwargs):
    for obj in objects:
        print(getattr(obj, "data", obj))


class Markdown:
    def __init__(self, data=""):
        self.data = data


HTML = Markdown
'''


def to_script(notebook: Path) -> str:
    from IPython.core.inputtransformer2 import TransformerManager

    nb = json.loads(notebook.read_text(encoding="utf-8"))
    cells = [TransformerManager().transform_cell("".join(c["source"]))
             for c in nb["cells"] if c["cell_type"] == "code"]
    body = "\n\n".join(f"# ---- cell {i}\n{code}" for i, code in enumerate(cells))
    return PRELUDE + body + '\nimport matplotlib.pyplot as plt\nplt.close("all")\n'


def prepare(notebooks: list[Path]) -> None:
    SCRIPTS.mkdir(parents=True, exist_ok=True)
    (SCRIPTS / "shim" / "IPython").mkdir(parents=True, exist_ok=True)
    (SCRIPTS / "shim" / "IPython" / "__init__.py").write_text("")
    (SCRIPTS / "shim" / "IPython" / "display.py").write_text(SHIM)
    for nb in notebooks:
        (SCRIPTS / f"{nb.stem}.py").write_text(to_script(nb), encoding="utf-8")
    print(f"{len(notebooks)} chapters written to {SCRIPTS.relative_to(ROOT)}/; "
          "the data comes from benchmarks/device_table1.sh prepare usps mnist-test")


def environment() -> dict:
    import torch

    cuda = torch.cuda.is_available()
    return {"gpu": torch.cuda.get_device_name(0) if cuda else None, "device": "cuda" if cuda else "cpu",
            "torch": torch.__version__, "python": platform.python_version(), "cpu_count": os.cpu_count()}


def run(out: Path, deadline: float, names: list[str]) -> int:
    start = time.time()
    env_info = environment()
    env = {**os.environ, "DECS_DEVICE": env_info["device"], "DECS_PROFILE": "ci", "MPLBACKEND": "Agg",
           "DECS_DATA": str(ROOT / ".device" / "data"), "DECS_CHECKPOINTS": str(ROOT / ".device" / "nb-checkpoints"),
           "DECS_DOWNLOAD": "0", "PYTHONPATH": str(ROOT)}
    scripts = sorted(SCRIPTS.glob("*.py"))
    if names:
        scripts = [s for s in scripts if s.stem in names]
    report = {"what": "each chapter's code cells as one script, ci profile", "environment": env_info,
              "chapters": []}
    out.mkdir(parents=True, exist_ok=True)
    for script in scripts:
        if time.time() - start > deadline:
            report["chapters"].append({"chapter": script.stem, "status": "not started (deadline)"})
            continue
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, text=True)
        seconds = round(time.perf_counter() - t0, 1)
        report["chapters"].append({"chapter": script.stem, "status": "ok" if proc.returncode == 0 else "failed",
                                   "seconds": seconds, "tail": (proc.stdout + proc.stderr)[-1500:]})
        print(f"{script.stem}: {report['chapters'][-1]['status']} in {seconds} s", flush=True)
        (out / "notebooks.json").write_text(json.dumps(report, indent=1))
    (out / "notebooks.json").write_text(json.dumps(report, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("prepare", help="here: notebooks → .device/notebooks/*.py")
    p.add_argument("notebooks", nargs="*", type=Path, help="default: book/*.ipynb")
    r = sub.add_parser("run", help="on the device: run the scripts, timed")
    r.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "device-out")))
    r.add_argument("--deadline", type=float, default=240, help="start no chapter after this many seconds")
    r.add_argument("chapters", nargs="*", help="only these (file stems); default: all")
    args = parser.parse_args(argv)
    if args.mode == "prepare":
        prepare(args.notebooks or sorted((ROOT / "book").glob("*.ipynb")))
        return 0
    return run(args.out, args.deadline, args.chapters)


if __name__ == "__main__":
    sys.exit(main())
