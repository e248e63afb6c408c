"""The package's shape (docs/layout.md): the stages import one way, charts import nothing of the
package, and the layout page names every module.

The imports are read from the source with `ast`, every one of them: those inside functions and
under `TYPE_CHECKING` too, since a lazy import that goes back up is still a cycle in the design.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "reportgen"
LEAVES = ("reportgen.charts",)  # packages that import nothing of reportgen but themselves
SHARED = {"errors", "progress", "threads", "versions", "csv_safety", "charts"}  # serve every stage
STAGES = ("inputs", "capture", "analysis", "render", "runs", "cli")  # each imports only earlier ones
TRAINING = {"inputs", "capture", "training"}  # training sits beside the chain, not in it


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that `path` imports: `from a import b` names `a.b` when b is a
    module, else `a`; relative imports are resolved against the module's package."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            found.update(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                         for alias in node.names)
    return {module for module in found if module in known and module != name}


def import_graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imported_modules(name, path, set(found)) for name, path in found.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as [a, b, ..., a], or [] when the graph has none (depth-first search)."""
    state: dict[str, str] = {}  # "open" while on the path, "done" after

    def visit(node: str, path: list[str]) -> list[str]:
        path = [*path, node]
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target, path)):
                return cycle
        state[node] = "done"
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node, [])):
            return cycle
    return []


def test_the_package_imports_run_one_way() -> None:
    assert find_cycle(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle_and_the_graph_reads_imports() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []
    graph = import_graph()
    assert "reportgen.capture.core" in graph["reportgen.runs.report"]  # a known import is seen
    assert "reportgen.render.pages" in graph["reportgen.render.site"]


def stage_of(module: str) -> str:
    """`reportgen.capture.core` -> `capture`; the package itself and `__main__` -> ``."""
    parts = module.split(".")
    return "" if len(parts) < 2 or parts[1] == "__main__" else parts[1]


def may_import(importer: str, imported: str) -> bool:
    """Whether a module of stage `importer` may import one of stage `imported`."""
    if importer in SHARED:
        return imported in SHARED
    if imported in SHARED or imported == importer:
        return True
    if importer == "training":
        return imported in TRAINING
    if imported == "training":
        return importer in ("runs", "cli")
    return STAGES.index(imported) < STAGES.index(importer)


def backward_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted((name, target) for name, targets in graph.items() if stage_of(name)
                  for target in targets if not may_import(stage_of(name), stage_of(target)))


def test_every_stage_imports_only_earlier_stages() -> None:
    graph = import_graph()
    assert {stage_of(name) for name in graph} - {""} == {*STAGES, "training", *SHARED}
    assert backward_imports(graph) == []


def test_the_stage_rule_catches_an_import_that_runs_back_up() -> None:
    graph = {"reportgen.analysis.x": {"reportgen.render.site", "reportgen.capture.core"},
             "reportgen.training.train": {"reportgen.analysis.x"},
             "reportgen.errors": {"reportgen.inputs.corpus"},
             "reportgen.runs.report": {"reportgen.training.train", "reportgen.errors"}}
    assert backward_imports(graph) == [
        ("reportgen.analysis.x", "reportgen.render.site"),
        ("reportgen.errors", "reportgen.inputs.corpus"),
        ("reportgen.training.train", "reportgen.analysis.x")]


@pytest.mark.parametrize("leaf", LEAVES)
def test_charts_import_nothing_of_the_package_but_themselves(leaf: str) -> None:
    outside = {name: sorted(m for m in targets if not (m == leaf or m.startswith(leaf + ".")))
               for name, targets in import_graph().items()
               if name == leaf or name.startswith(leaf + ".")}
    assert outside and all(not targets for targets in outside.values()), outside


def test_the_layout_page_names_every_module() -> None:
    section = (PACKAGE.parent / "docs" / "layout.md").read_text(encoding="utf-8")
    expected = {"`charts/`" if path.parent.name == "charts" else f"`{path.relative_to(PACKAGE)}`"
                for path in PACKAGE.rglob("*.py") if not path.name.startswith("__")}
    assert {name for name in expected if name not in section} == set()
