"""The import graph of irnet_core, read from the source with ``ast``: no module imports itself through others,
and the dataset layer stays below the stages that use it.

An edge ``a -> b`` is any ``import`` or ``from ... import`` in module ``a`` that names module ``b`` of the
package, at module level or inside a function or class: an import moved into a function still couples the two
modules, and moving one there only to break a cycle would hide the cycle, not remove it.
"""

from __future__ import annotations

import ast
from collections.abc import Collection, Mapping
from pathlib import Path

import irnet_core

PACKAGE = "irnet_core"
PACKAGE_DIR = Path(irnet_core.__file__).parent

# The layer rule. The dataset layer (irnet_core.data: formats, image decoding, id lists, conversions) reads and
# writes datasets and knows nothing of what is done with them. Besides its own modules it may use only these
# foundation modules (errors, atomic writes, palette PNGs, id checks and shard storage, and the plain-value
# conversion of settings that the storage uses), and what they use must be foundation modules too: never a stage
# (inference, relations, IRNet, random walk, instances, training, final models), the pipeline that runs the
# stages, the torch Datasets that feed the networks, or the tools that write datasets.
DATA_LAYER = f"{PACKAGE}.data"
FOUNDATION = frozenset(f"{PACKAGE}{suffix}" for suffix in ("", ".atomic", ".errors", ".palette", ".settings", ".store"))


def package_modules(package_dir: Path = PACKAGE_DIR, package: str = PACKAGE) -> dict[str, Path]:
    """Dotted name -> source file of every module under the package (a package is named by its __init__.py)."""
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = [package, *path.relative_to(package_dir).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _known_prefix(name: str, known: Collection[str]) -> str | None:
    """The longest leading part of a dotted name that is a known module (``a.b.attr`` -> ``a.b``)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in known:
            return candidate
    return None


def imports_of(source: str, module: str, *, is_package: bool, known: Collection[str]) -> set[str]:
    """The known modules that ``source`` (module ``module``) imports anywhere in its body; relative imports are
    resolved, and ``from p import x`` names module ``p.x`` where that is a module, else ``p``."""
    package_of_module = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package_of_module.split(".")
                base = ".".join(anchor[: len(anchor) - (node.level - 1)])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        found.update(target for name in names if (target := _known_prefix(name, known)) is not None)
    found.discard(module)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = package_modules()
    return {
        name: imports_of(path.read_text(), name, is_package=path.name == "__init__.py", known=modules.keys())
        for name, path in modules.items()
    }


def find_cycle(graph: Mapping[str, Collection[str]]) -> list[str] | None:
    """One cycle of the graph as ``[a, b, ..., a]``, or None (depth-first search, iterative)."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" once fully explored
    for start in sorted(graph):
        if start in state:
            continue
        path, pending = [start], [iter(sorted(graph[start]))]
        state[start] = "open"
        while pending:
            successor = next(pending[-1], None)
            if successor is None:
                state[path.pop()] = "done"
                pending.pop()
            elif state.get(successor) == "open":
                return [*path[path.index(successor) :], successor]
            elif successor not in state:
                state[successor] = "open"
                path.append(successor)
                pending.append(iter(sorted(graph.get(successor, ()))))
    return None


def reachable(graph: Mapping[str, Collection[str]], start: str) -> dict[str, str]:
    """Every module ``start`` imports directly or indirectly, each with the module that imports it."""
    via, stack = {}, [start]
    while stack:
        module = stack.pop()
        for target in graph.get(module, ()):
            if target not in via and target != start:
                via[target] = module
                stack.append(target)
    return via


def _in_layer(module: str, layer: str) -> bool:
    return module == layer or module.startswith(layer + ".")


# ---- the reader itself, on sources written for it


def test_reader_resolves_relative_and_function_level_imports():
    known = {"pkg", "pkg.a", "pkg.sub", "pkg.sub.b", "pkg.sub.c", "pkg.d"}
    source = (
        "import numpy\n"
        "from . import c\n"  # a sibling module
        "from .. import d\n"
        "from ..a import name\n"  # a name of a module: the module
        "def later():\n"
        "    import pkg.sub.c.attribute\n"
        "    from pkg import missing\n"  # not a module: the package
    )
    assert imports_of(source, "pkg.sub.b", is_package=False, known=known) == {"pkg", "pkg.a", "pkg.d", "pkg.sub.c"}
    assert imports_of("from . import b\nfrom .b import x", "pkg.sub", is_package=True, known=known) == {"pkg.sub.b"}


def test_find_cycle_reports_the_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"a"}}) == ["a", "a"]


# ---- the package


def test_every_module_is_read():
    graph = import_graph()
    assert {f"{PACKAGE}.data.base", f"{PACKAGE}.data.dataset", f"{PACKAGE}.pipeline.final"} <= graph.keys()
    assert f"{PACKAGE}.data.base" in graph[f"{PACKAGE}.data.voc"]


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_data_layer_imports_nothing_above_it():
    graph = import_graph()
    for module in sorted(m for m in graph if _in_layer(m, DATA_LAYER)):
        via = reachable(graph, module)
        for target in sorted(via):
            assert _in_layer(target, DATA_LAYER) or target in FOUNDATION, (
                f"{module} imports {target} (through {via[target]}): the dataset layer may import only its own "
                f"modules and {sorted(FOUNDATION)}"
            )
