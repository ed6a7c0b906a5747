"""The package's import graph has no cycles, counting imports inside functions (which only hide a cycle), and a
config is checked before anything heavy is imported."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the installed package's parts, by where they live in the repository (pyproject.toml maps them)
PACKAGES = {
    "nasq": ROOT / "nasq",
    "nasq.search": ROOT / "search",
    "nasq.spaces": ROOT / "spaces",
    "nasq.hardware_profiles": ROOT / "hardware_profiles",
}


def modules() -> dict[str, Path]:
    out = {}
    for package, root in PACKAGES.items():
        for path in root.rglob("*.py"):
            parts = [p for p in path.relative_to(root).with_suffix("").parts if p != "__init__"]
            out[".".join([package, *parts])] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports, anywhere in its code. A package's lazy re-exports (imports
    inside its ``__init__``'s ``__getattr__``) are left out: they run only when that name is asked for."""
    mods = modules()

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        tree = ast.parse(path.read_text())
        lazy = {
            id(n)
            for f in tree.body
            if isinstance(f, ast.FunctionDef) and f.name == "__getattr__" and path.name == "__init__.py"
            for n in ast.walk(f)
        }
        for node in ast.walk(tree):
            if id(node) in lazy:
                continue
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from pkg import sub` imports the submodule sub where there is one, else a name of pkg
                names = [
                    f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in mods else node.module for a in node.names
                ]
            for name in names:
                target = resolve(name) if name.startswith("nasq") else None
                if target and target != mod:
                    graph[mod].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_checker_finds_a_cycle_hidden_in_a_function():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_of_the_package_imports_itself_through_others():
    graph = import_graph()
    assert len(graph) > 40  # the whole package was read
    found = cycles(graph)
    described = ["; ".join(f"{m} -> {sorted(graph[m] & set(c))}" for m in c) for c in found]
    assert not found, "import cycles: " + " | ".join(described)


def test_a_config_is_checked_before_anything_heavy_is_imported():
    """`nasq search` with a typo answers before torch, Ray, Optuna or ONNX Runtime load."""
    code = (
        "import sys\n"
        "from nasq.config import load_config\n"
        f"load_config({str(ROOT / 'configs' / 'quickstart.yaml')!r})\n"
        "heavy = [m for m in ('torch', 'ray', 'optuna', 'onnxruntime', 'onnx', 'torch_pruning') if m in sys.modules]\n"
        "print(' '.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == []


def test_nasq_best_on_a_bad_run_directory_answers_before_anything_heavy_is_imported(tmp_path):
    code = (
        "import sys\n"
        "from nasq.cli import main\n"
        f"rc = main(['best', {str(tmp_path / 'no-run')!r}, '--target', 'bitserial-sim', '--out', "
        f"{str(tmp_path / 'out')!r}])\n"
        "heavy = [m for m in ('torch', 'ray', 'optuna', 'onnxruntime', 'onnx', 'torch_pruning') if m in sys.modules]\n"
        "print(rc, *heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.split() == ["2"], (out.stdout, out.stderr)
    assert "no-run" in out.stderr and not (tmp_path / "out").exists()
