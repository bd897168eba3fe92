"""The package stays readable: the loops fit on a screen, and no module reaches into another's
private names (issue 30; CONTRIBUTING.md has the map)."""
import ast
import inspect
from pathlib import Path

import decs.train

PACKAGE = Path(decs.train.__file__).parent


def _imports_of_private_names(path: Path, root: Path = PACKAGE.parent) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.level > 0 or (node.module or "").startswith("decs")):
            found += [f"{path.relative_to(root)}: from {'.' * node.level}{node.module or ''} "
                      f"import {alias.name}" for alias in node.names
                      if alias.name.startswith("_") and not alias.name.startswith("__")]
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__") \
                and isinstance(node.value, ast.Name) and node.value.id in {p.stem for p in PACKAGE.glob("*.py")}:
            found.append(f"{path.relative_to(root)}: {node.value.id}.{node.attr}")
    return found


def test_no_module_of_the_package_imports_another_modules_private_names():
    found = [hit for path in sorted(PACKAGE.rglob("*.py")) for hit in _imports_of_private_names(path)]
    assert found == []


def test_the_private_name_check_finds_one(tmp_path):
    bad = tmp_path / "probe.py"
    bad.write_text("from .train import _hidden\nfrom . import train\nx = train._batches\n")
    assert _imports_of_private_names(bad, tmp_path) == ["probe.py: from .train import _hidden",
                                                        "probe.py: train._batches"]


def test_the_loops_fit_on_one_screen():
    for fn in (decs.train.pretrain, decs.train.cluster):
        lines = len(inspect.getsource(fn).splitlines())
        assert lines <= 60, f"{fn.__name__} is {lines} lines"
