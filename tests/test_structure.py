"""The shape of the package, checked: module size, import cycles, layering.

Run by anyone with ``pytest tests/test_structure.py``. The rules (issue 14):

- no module over :data:`MAX_LINES` lines;
- no import cycle between modules, lazy (in-function) imports included (imports under
  ``if TYPE_CHECKING:`` never run, so they count for the layers but not for cycles);
- no import running back up the layers below: a module imports only from its own layer or
  the layers under it. The library never imports the CLI, and ``core`` is pure;
- no test file imports another test file: shared helpers live in plain modules beside them
  (tests/model_repos.py, tiny_images.py, ...) and shared fixtures in tests/conftest.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "hf_stdembed"
MAX_LINES = 600

# Bottom to top. A module's layer is that of the longest prefix listed here.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("hf_stdembed", "errors", "_files", "_hashing", "_text", "_vectors", "_yaml", "progress"),
    ("core", "_cache"),
    ("extractors", "weight_files", "data", "zoo", "features", "standards"),
    ("embeddings", "pipeline", "card", "plausibility"),
    ("index", "registry", "resolve", "selection"),
    ("crawl", "publish", "verify", "rerank", "embed_many", "outcome_log", "evaluation", "demo"),
    ("cli", "__main__"),
)


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _type_only(tree: ast.Module) -> set[int]:
    """The ids of the import nodes under ``if TYPE_CHECKING:`` (never run)."""
    found: set[int] = set()
    for node in ast.walk(tree):
        test = node.test if isinstance(node, ast.If) else None
        if isinstance(test, ast.Name | ast.Attribute) and ast.unparse(test).endswith(
            "TYPE_CHECKING"
        ):
            found.update(id(sub) for stmt in node.body for sub in ast.walk(stmt))
    return found


def _imports(
    name: str, path: Path, modules: dict[str, Path], *, type_only: bool = True
) -> set[str]:
    """The package's modules that ``name`` imports, at top level or inside functions; with
    ``type_only=False``, not those imported under ``if TYPE_CHECKING:`` alone."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    targets: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = set() if type_only else _type_only(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            targets.update(a.name for a in node.names if a.name.split(".")[0] == "hf_stdembed")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == "hf_stdembed":
                source = node.module
            else:
                continue
            subs = [f"{source}.{a.name}" for a in node.names if f"{source}.{a.name}" in modules]
            targets.update(subs or [source])
    resolved = set()
    for target in targets:
        while target not in modules and "." in target:  # a name inside a module
            target = target.rpartition(".")[0]
        if target in modules and target != name:
            resolved.add(target)
    return resolved


def _layer(name: str) -> int:
    parts = name.split(".")
    local = parts[1] if len(parts) > 1 else "hf_stdembed"
    for level, group in enumerate(LAYERS):
        if local in group:
            return level
    raise AssertionError(f"{name} is in no layer: add it to LAYERS in {__file__}")


MODULES = _modules()
GRAPH = {name: _imports(name, path, MODULES) for name, path in MODULES.items()}
RUNTIME_GRAPH = {  # the imports that run: what a cycle is made of
    name: _imports(name, path, MODULES, type_only=False) for name, path in MODULES.items()
}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_size(name: str) -> None:
    lines = MODULES[name].read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{name} has {lines} lines (at most {MAX_LINES}): split it"


def test_no_import_runs_back_up() -> None:
    upward = [
        f"{name} (layer {_layer(name)}) imports {target} (layer {_layer(target)})"
        for name, targets in GRAPH.items()
        for target in sorted(targets)
        if _layer(target) > _layer(name)
    ]
    assert not upward, "\n".join(upward)


def test_core_is_pure() -> None:
    impure = [
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        if name.startswith("hf_stdembed.core")
        for target in targets
        if not target.startswith("hf_stdembed.core")
    ]
    assert not impure, "\n".join(impure)


def test_no_import_cycle() -> None:
    # A package's __init__ re-exports its submodules; a submodule importing its package's
    # __init__ back would be a cycle, and is one here too.
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        stack.append(name)
        for target in sorted(RUNTIME_GRAPH[name]):
            if state.get(target) == 1:
                return stack[stack.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[name] = 2
        return None

    for name in sorted(RUNTIME_GRAPH):
        if name not in state and (cycle := visit(name)):
            pytest.fail("import cycle: " + " -> ".join(cycle))


def test_the_checker_sees_imports() -> None:
    """The graph is not empty by accident: the CLI's select command imports the index."""
    assert "hf_stdembed.index" in GRAPH["hf_stdembed.cli._select"]
    assert _layer("hf_stdembed.cli._select") == len(LAYERS) - 1
    # a type-only import is a dependency but no cycle: the index's importer names the store
    assert "hf_stdembed.index.store" in GRAPH["hf_stdembed.index.importing"]
    assert "hf_stdembed.index.store" not in RUNTIME_GRAPH["hf_stdembed.index.importing"]


def test_no_test_file_imports_another() -> None:
    """A ``test_*.py`` imports helpers and fixtures from the plain modules and conftest.py, never
    from another test file (its fixtures would run twice, its tests be collected twice)."""
    tests = Path(__file__).resolve().parent
    offences = []
    for path in sorted(tests.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            offences += [
                f"{path.name}:{node.lineno} imports {name}"
                for name in names
                if name.split(".")[0].startswith("test_") or name.split(".")[0] == "conftest"
            ]
    assert not offences, "\n".join(offences)
