"""Every import of the project's own modules, anywhere in the repository, names something that exists.

Scripts in benchmarks/ and tools/ are not imported by the suite, so a module that moved would
otherwise break them silently; imports inside functions are read too.
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OWN = ("kmbench", "impls")
FILES = sorted(p for folder in ("kmbench", "impls", "benchmarks", "tools", "tests")
               for p in (ROOT / folder).rglob("*.py"))


def own_imports(path: Path):
    """(line, module, name or None) for each import of a project module in ``path``."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in OWN:
                    yield node.lineno, alias.name, None
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] in OWN:
            for alias in node.names:
                yield node.lineno, node.module, alias.name


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_own_imports_resolve(path):
    missing = []
    for line, module, name in own_imports(path):
        spec = importlib.util.find_spec(module)
        if spec is None:
            missing.append(f"line {line}: no module {module}")
        elif name not in (None, "*"):
            is_submodule = (spec.submodule_search_locations is not None
                            and importlib.util.find_spec(f"{module}.{name}") is not None)
            if not is_submodule and not hasattr(importlib.import_module(module), name):
                missing.append(f"line {line}: {module} has no {name}")
    assert not missing, missing
