"""The import graph, read from the source (every import, also those inside functions).

* no circle between modules;
* layers only import downwards: core < check < bench < advise < report < api < cli
  (``kmbench/__init__`` is the facade: it may name any layer);
* a backend (``impls/``) imports only ``kmbench.core`` and ``impls`` itself;
* nothing in ``kmbench`` imports ``impls`` or ``benchmarks`` (backends are reached through the registry).

Checked by parsing with ``ast``, so an import hidden inside a function counts as much as one at the top.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("core", "check", "bench", "advise", "report", "api", "cli")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sources() -> dict[str, Path]:
    files = [p for folder in ("kmbench", "impls") for p in (ROOT / folder).rglob("*.py")]
    return {module_name(p): p for p in files}


def imported(path: Path, name: str, known: set[str]) -> set[str]:
    """Project modules that ``path`` (module ``name``) imports, resolved to the longest known module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for target in targets:
            parts = target.split(".")
            for i in range(len(parts), 0, -1):
                candidate = ".".join(parts[:i])
                if candidate in known:
                    if candidate != name:
                        out.add(candidate)
                    break
    return out


def graph(files=None) -> dict[str, set[str]]:
    files = files or sources()
    known = set(files)
    return {name: imported(path, name, known) for name, path in files.items()}


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan), i.e. import circles."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "impls":
        return "impls"
    if parts[0] == "kmbench" and len(parts) > 1 and parts[1] in LAYERS:
        return parts[1]
    return None




def test_the_checker_sees_a_circle_and_a_hidden_import(tmp_path):
    (tmp_path / "a.py").write_text("def f():\n    from b import g\n")
    (tmp_path / "b.py").write_text("import a\n")
    files = {"a": tmp_path / "a.py", "b": tmp_path / "b.py"}
    assert circles(graph(files)) == [["a", "b"]]


def test_no_module_imports_itself_around_a_circle():
    found = circles(graph())
    assert not found, "import circles: " + "; ".join(" <-> ".join(c) for c in found)


def test_no_circle_between_layers():
    edges = graph()
    between = {}
    for source, targets in edges.items():
        for target in targets:
            a, b = layer(source), layer(target)
            if a and b and a != b:
                between.setdefault(a, set()).add(b)
    found = circles(between)
    assert not found, f"layers import each other: {found}"


@pytest.mark.parametrize("module", sorted(m for m in sources() if layer(m) not in (None, "impls")))
def test_layers_import_only_downwards(module):
    edges = graph()
    mine = LAYERS.index(layer(module))
    upward = sorted(t for t in edges[module]
                    if layer(t) == "impls" or (layer(t) in LAYERS and LAYERS.index(layer(t)) > mine)
                    or t == "kmbench")
    assert not upward, f"{module} (layer {LAYERS[mine]}) imports {upward}"


@pytest.mark.parametrize("module", sorted(m for m in sources() if layer(m) == "impls"))
def test_backends_import_only_the_core(module):
    beyond = sorted(t for t in graph()[module] if layer(t) not in ("core", "impls"))
    assert not beyond, f"backend module {module} imports harness modules beyond kmbench.core: {beyond}"


def test_every_folder_is_a_layer():
    folders = sorted(p.name for p in (ROOT / "kmbench").iterdir() if p.is_dir() and (p / "__init__.py").exists())
    assert folders == sorted(LAYERS)
    loose = sorted(p.name for p in (ROOT / "kmbench").glob("*.py") if p.name != "__init__.py")
    assert not loose, f"modules outside every layer: {loose}"
