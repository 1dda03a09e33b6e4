"""The package's layers: every import points down (or within its own layer), with no circle,
imports made only for type checking and inside functions included."""

import ast
from pathlib import Path

import networkx as nx

import search_by_image

PACKAGE = Path(search_by_image.__file__).parent
#: Rank of each layer: a module may import its own layer's modules and lower ones only.
RANKS = {
    "base": 0,
    "images": 1,
    "model": 2,
    "catalog": 2,
    "index": 3,
    "ranking": 4,
    "indexing": 4,
    "serving": 5,
    "evaluation": 6,
    "api": 6,
    "cli": 7,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in RANKS) else "base"


def imports_of(path: Path, modules: set[str]) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name for name in names if name in modules}
    return found


def graph() -> nx.DiGraph:
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    edges = nx.DiGraph()
    edges.add_nodes_from(paths)
    for module, path in paths.items():
        for target in imports_of(path, set(paths)):
            package_of_module = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
            if target != module and target != package_of_module and not module.startswith(target + "."):
                edges.add_edge(module, target)
    return edges


def test_no_module_imports_a_higher_layer():
    upward = [
        f"{source} -> {target}"
        for source, target in graph().edges
        if RANKS[layer(target)] > RANKS[layer(source)]
    ]
    assert not upward, "\n".join(sorted(upward))


def test_no_import_circle():
    circles = [
        sorted(component) for component in nx.strongly_connected_components(graph()) if len(component) > 1
    ]
    assert not circles, circles


def test_modules_are_short_and_the_top_level_is_small():
    long = {module_name(p): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 300}
    assert not long, long
    assert len(list(PACKAGE.glob("*.py"))) <= 10
