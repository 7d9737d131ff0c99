"""The layering docs/architecture.md describes, checked over src/flowforge with `ast`.

(1) only the command line (flowforge.cli) and `python -m flowforge` import flowforge.cli;
(2) module-level imports among flowforge's modules form no cycle;
(3) no module imports another module's private (_underscore) name.
"""
from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
APP = "flowforge.cli"
# Private helpers the model builders share; the coupling rework of flows/builders (issue 18) makes
# them public. Each entry is a test failure to fix, not a licence: delete it when that lands.


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted((SRC / "flowforge").rglob("*.py"))}


def _is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and isinstance(test, (ast.Name, ast.Attribute)) and ast.unparse(test).endswith("TYPE_CHECKING")


def _statements(tree: ast.Module, top_level: bool) -> list[ast.Import | ast.ImportFrom]:
    """Import statements: all of them, or those that run on import (not in functions or TYPE_CHECKING blocks)."""
    if not top_level:
        return [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
    found, pending = [], list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, (ast.If, ast.Try, ast.With)) and not _is_type_checking(node):
            pending += [child for child in ast.iter_child_nodes(node) if isinstance(child, ast.stmt)]
            pending += [s for handler in getattr(node, "handlers", []) for s in handler.body]
    return found


def _imports(module: str, top_level: bool) -> list[tuple[str, str | None]]:
    """(imported flowforge module, name imported from it or None) for each import in `module`."""
    tree = ast.parse(MODULES[module].read_text())
    package = module if _is_package(module) else module.rpartition(".")[0]
    found = []
    for node in _statements(tree, top_level):
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
            continue
        base = importlib.util.resolve_name("." * node.level + (node.module or ""), package) if node.level else node.module
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            found.append((submodule, None) if submodule in MODULES else (base, alias.name))
    return [(target, name) for target, name in found if target.split(".")[0] == "flowforge"]


def test_the_tree_is_found() -> None:
    assert {"flowforge", "flowforge.cli", "flowforge.train.loop", "flowforge.cli.train"} <= set(MODULES)


@pytest.mark.parametrize("module", [m for m in MODULES if m != APP and not m.startswith(APP + ".") and m != "flowforge.__main__"])
def test_only_the_command_line_imports_it(module: str) -> None:
    bad = sorted({target for target, _ in _imports(module, top_level=False) if target == APP or target.startswith(APP + ".")})
    assert not bad, f"{module} imports {', '.join(bad)}: the library never imports the command line"


def test_no_import_cycles() -> None:
    graph = {module: sorted({target for target, _ in _imports(module, top_level=True) if target in MODULES and target != module})
             for module in MODULES}
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in graph[module]:
            if state.get(target) == "open":
                cycle = path[path.index(target):] + [target]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in MODULES:
        if module not in state:
            visit(module, [module])


@pytest.mark.parametrize("module", list(MODULES))
def test_no_private_names_imported_across_modules(module: str) -> None:
    private = sorted(f"{target}.{name}" for target, name in _imports(module, top_level=False)
                     if name is not None and name.startswith("_") and not name.startswith("__"))
    assert not private, f"{module} imports private names: {', '.join(private)}"
