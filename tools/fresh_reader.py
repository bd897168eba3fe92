"""A fresh reader's first minutes, simulated here: the package as pip installs it, no checkout.

    python tools/fresh_reader.py [--data DIR] [--notebooks book/02_*.ipynb ...]

What it does, and what each step stands for:
1. builds a wheel of the package (``pip wheel --no-deps``) and installs it, not editable, into an
   import path of its own (``pip install --no-deps --target``): the reader's ``pip install``. The
   dependencies (PyTorch, ...) are the ones already installed here: reinstalling several GB of
   them would test pip, not this book;
2. serves the real datasets (``--data``, default ``$DECS_DATA``) and this checkout's ``results/``
   from a local HTTP server on 127.0.0.1, standing in for the dataset mirrors and the release's
   files (``DECS_MIRROR``, ``DECS_RESULTS_URL``): nothing here reaches the internet;
3. in a new process per notebook, with the working directory outside the repository, ``HOME`` a
   new empty folder, no ``DECS_DATA``/``DECS_CHECKPOINTS``/``DECS_RESULTS``, and the checkout
   kept off the import path, runs the notebook's first code cell (the set-up cell a reader runs
   first: it downloads the chapter's datasets and the release's records), then checks what the
   chapters read next: the records, the committed model files (fetched on demand and checked
   against their sha256), and the datasets.

Exit status 0 when every notebook's set-up ran and found its data. Run by ``make fresh-reader``
(part of ``make test``).

    python tools/fresh_reader.py --offline [--data DIR] [--whole book/theorem1.ipynb ...]

The same reader **offline, or before the release is published**: no server, every download
refused (the proxy variables point at a closed local port), so the release's records cannot be
fetched; the datasets are on the machine (``DECS_DATA``, as a reader who has them), and so are
the ci networks the chapters train (the checkout's ``checkpoints/``: not trained again). Each
notebook's set-up cell must run; the notebooks named by ``--whole`` (the ones that read records
and train little) run to their end, and each must say that something is "NOT AVAILABLE" instead
of failing (a ``StopIteration`` in theorem1 was how this began).
"""
from __future__ import annotations

import argparse
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def say(*args) -> None:
    print(*args, flush=True)  # progress as it happens, also through make

# What a reader's process runs after the set-up cell: the chapters' next steps, checked.
CHECK = r"""
import json, sys
from pathlib import Path
import decs, decs.paths, decs.results as R
from decs import data
from decs.release import notebook_data

nb = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
assert not decs.paths.in_checkout(), f"imported the checkout's decs: {decs.__file__}"
assert Path(decs.__file__).is_relative_to(Path(sys.argv[2])), decs.__file__
for name in notebook_data(nb["metadata"]):
    assert data.is_available(name), f"{name} was not made available by setup()"
records = R.load_records()
assert len(records) == int(sys.argv[3]), (len(records), sys.argv[3])
assert str(R.RESULTS).startswith(str(decs.paths.cache_dir())), R.RESULTS
print(f"ok: {len(records)} records in the user's cache; data {notebook_data(nb['metadata'])}")
"""

# Offline: what a reader's process runs after the set-up cell: no records, and it says so.
CHECK_OFFLINE = r"""
import sys
from pathlib import Path
import decs, decs.paths, decs.results as R

assert not decs.paths.in_checkout(), f"imported the checkout's decs: {decs.__file__}"
assert Path(decs.__file__).is_relative_to(Path(sys.argv[2])), decs.__file__
assert R.load_records() == [], "records were fetched: this is not offline"
print("ok: offline, no records; the set-up ran")
"""

# Offline: a whole notebook, executed in a kernel of the reader's environment, then checked.
WHOLE = r"""
import sys
from pathlib import Path
import nbformat
from nbclient import NotebookClient

nb = nbformat.read(sys.argv[1], as_version=4)
# last, the checks that this ran the installed package with nothing fetched
nb.cells.append(nbformat.v4.new_code_cell(
    "import decs, decs.results as R\n"
    f"assert decs.__file__.startswith({sys.argv[2]!r}), decs.__file__\n"
    "assert R.load_records() == []"))
NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": "."}}).execute()
said = [o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
        if o.get("output_type") == "stream"]
missing = [line for text in said for line in text.splitlines() if "NOT AVAILABLE" in line]
assert missing, "ran to its end without saying what is not available: did it read no records?"
print(f"ok: ran to its end; {len(missing)} 'not available' lines, first: {missing[0][:160]}")
"""

MODELS = r"""
from decs.files import load_model_files
from decs.notebook import committed_record
rec = committed_record("usps", "decs", 0)
assert rec is not None, "no committed USPS network reachable from the installed package"
nets = load_model_files(rec)
print("ok: model files of", rec["path"].split("results")[-1], "fetched and checked;", nets["centroids"].shape)
"""


def build_wheel(out: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                    "-w", str(out), str(ROOT)], check=True)
    return next(out.glob("decs-*.whl"))


def install(wheel: Path, target: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                    str(wheel)], check=True)


def serve(folders: dict[str, Path]) -> tuple[http.server.ThreadingHTTPServer, str]:
    """A static server on 127.0.0.1 with each folder at /<name>/; returns it and its base URL."""
    class Handler(http.server.SimpleHTTPRequestHandler):
        def translate_path(self, path):
            parts = path.split("?")[0].lstrip("/").split("/", 1)
            if parts[0] in folders and len(parts) == 2:
                return str(folders[parts[0]] / parts[1])
            return "/nonexistent"

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def first_code_cell(path: Path) -> str:
    nb = json.loads(path.read_text(encoding="utf-8"))
    source = next(c for c in nb["cells"] if c["cell_type"] == "code")["source"]
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell("".join(source))  # %pip → get_ipython() call


# Offline: every download goes through this proxy, a local port nothing listens on (refused at once)
NO_NETWORK = "http://127.0.0.1:9"


def reader_env(site: Path, home: Path, base: str | None, data: Path | None = None) -> dict:
    """The reader's environment: with ``base``, data and records from the local server; without
    (offline), the datasets in ``data`` and no way to download anything."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("DECS_") and k.lower() not in ("pythonpath", "xdg_cache_home", "http_proxy",
                                                             "https_proxy", "no_proxy", "all_proxy")}
    env.update(PYTHONPATH=str(site), HOME=str(home), MPLBACKEND="Agg", DECS_PROFILE="ci",
               OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"))
    if base is not None:
        env.update(DECS_MIRROR=f"{base}/data", DECS_RESULTS_URL=f"{base}/results")
    else:
        # the checkout's checkpoints (make notebooks, earlier in make test, trained the ci networks
        # there): this mode is about the missing records, and need not train every chapter again
        env.update(DECS_DATA=str(data), DECS_CHECKPOINTS=str(ROOT / "checkpoints"), http_proxy=NO_NETWORK,
                   https_proxy=NO_NETWORK, HTTP_PROXY=NO_NETWORK, HTTPS_PROXY=NO_NETWORK)
    return env


def run_notebook(path: Path, site: Path, work: Path, base: str, n_records: int) -> tuple[bool, str, float]:
    """A fresh HOME and working folder per notebook: each starts as a new reader would."""
    home = Path(tempfile.mkdtemp(prefix="home-", dir=work))
    script = home / "setup_cell.py"
    script.write_text(first_code_cell(path) + "\n" + CHECK)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-P", str(script), str(path), str(site), str(n_records)],
                          cwd=home, env=reader_env(site, home, base), capture_output=True, text=True)
    return proc.returncode == 0, (proc.stdout + proc.stderr).strip(), time.perf_counter() - start


def run_offline(path: Path, site: Path, work: Path, data: Path, whole: bool) -> tuple[bool, str, float]:
    """Offline: the set-up cell and its check, or (``whole``) the whole notebook in a kernel."""
    home = Path(tempfile.mkdtemp(prefix="home-", dir=work))
    if whole:
        script = home / "whole.py"
        script.write_text(WHOLE)
    else:
        script = home / "setup_cell.py"
        script.write_text(first_code_cell(path) + "\n" + CHECK_OFFLINE)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-P", str(script), str(path), str(site)], cwd=home,
                          env=reader_env(site, home, None, data), capture_output=True, text=True)
    return proc.returncode == 0, (proc.stdout + proc.stderr).strip(), time.perf_counter() - start


def main_offline(notebooks: list[Path], whole: list[Path], data: Path) -> int:
    whole = {p.absolute() for p in whole}
    failed = []
    with tempfile.TemporaryDirectory(prefix="fresh-reader-offline-") as tmp:
        work = Path(tmp)
        site = work / "site"
        install(build_wheel(work / "wheel"), site)
        say(f"offline: the installed package, no server, downloads refused; data from {data.name}/")
        for path in notebooks:
            ok, out, seconds = run_offline(path, site, work, data, path in whole)
            say(f"{'ok  ' if ok else 'FAIL'} {path.name} ({'whole notebook' if path in whole else 'set-up'}, "
                f"{seconds:.1f} s)" + ("" if ok else "\n     " + out.replace("\n", "\n     ")[-3000:]))
            if not ok:
                failed.append(path.name)
    say(f"fresh reader offline: {len(notebooks) - len(failed)} of {len(notebooks)} notebooks ran"
        + (f"; failed: {failed}" if failed else ""))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=os.environ.get("DECS_DATA") or ROOT / "data",
                        help="the real datasets to serve (default: $DECS_DATA)")
    parser.add_argument("--notebooks", nargs="*", type=Path, help="default: book/*.ipynb")
    parser.add_argument("--offline", action="store_true",
                        help="no server and no downloads: the release's records cannot be fetched")
    parser.add_argument("--whole", nargs="*", type=Path, default=[],
                        help="with --offline: the notebooks to run to their end (the others: set-up)")
    args = parser.parse_args(argv)
    notebooks = [p.absolute() for p in args.notebooks or sorted((ROOT / "book").glob("*.ipynb"))]
    if args.offline:
        return main_offline(notebooks, args.whole, Path(args.data).absolute())
    sys.path.insert(0, str(ROOT))
    from decs.results import load_records

    n_records = len(load_records(ROOT / "results"))
    with tempfile.TemporaryDirectory(prefix="fresh-reader-") as tmp:
        work = Path(tmp)
        wheel = build_wheel(work / "wheel")
        site = work / "site"
        install(wheel, site)
        say(f"installed {wheel.name} into an import path of its own ({len(list(site.rglob('*.py')))} modules)")
        server, base = serve({"data": Path(args.data).absolute(), "results": ROOT / "results"})
        failed = []
        try:
            for path in notebooks:
                ok, out, seconds = run_notebook(path, site, work, base, n_records)
                say(f"{'ok  ' if ok else 'FAIL'} {path.name} ({seconds:.1f} s)")
                if not ok:
                    failed.append(path.name)
                    say("     " + out.replace("\n", "\n     ")[-3000:])
            home = Path(tempfile.mkdtemp(prefix="home-", dir=work))
            proc = subprocess.run([sys.executable, "-P", "-c", MODELS], cwd=home, capture_output=True, text=True,
                                  env=reader_env(site, home, base))
            say(("ok   " if proc.returncode == 0 else "FAIL ") + (proc.stdout + proc.stderr).strip()[-3000:])
            if proc.returncode:
                failed.append("model files")
        finally:
            server.shutdown()
    say(f"fresh reader: {len(notebooks) - len([f for f in failed if f != 'model files'])} of "
          f"{len(notebooks)} notebooks set up" + (f"; failed: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
