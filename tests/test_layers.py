"""The package's shape: no import circle, no module over 400 lines (DESIGN.md, Layout).

Which layer may import which is import-linter's contract in pyproject.toml
(`lint-imports`, run by CI); these are what it does not check.
"""

from pathlib import Path

import grimp

import nnrun

MAX_LINES = 400


def circles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, without recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        while work:
            module, imported = work[-1]
            for other in imported:
                if other not in index:
                    index[other] = low[other] = len(index)
                    stack.append(other)
                    work.append((other, iter(sorted(graph.find_modules_directly_imported_by(other)))))
                    break
                if other in stack:
                    low[module] = min(low[module], index[other])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[module])
                if low[module] == index[module]:
                    component = []
                    while True:
                        member = stack.pop()
                        component.append(member)
                        if member == module:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_circles_finds_a_circle_and_only_the_modules_in_it():
    graph = grimp.ImportGraph()
    for importer, imported in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "e"), ("e", "d")]:
        graph.add_import(importer=importer, imported=imported)
    graph.add_module("f")
    assert sorted(circles(graph)) == [["a", "b", "c"], ["d", "e"]]


def test_no_import_circle():
    # grimp reads every import statement: inside functions and under TYPE_CHECKING too.
    graph = grimp.build_graph("nnrun", cache_dir=None)
    found = circles(graph)
    described = []
    for component in found:
        lines = [
            f"  {importer} -> {imported} (line {', '.join(str(d['line_number']) for d in details)})"
            for importer in component
            for imported in sorted(graph.find_modules_directly_imported_by(importer))
            if imported in component and (details := graph.get_import_details(importer=importer, imported=imported))
        ]
        described.append(f"{', '.join(component)}:\n" + "\n".join(lines))
    assert not found, "modules that import each other, directly or around a circle:\n" + "\n".join(described)


def test_no_module_over_400_lines():
    package = Path(nnrun.__file__).parent
    lines = {path: len(path.read_text(encoding="utf-8").splitlines()) for path in sorted(package.rglob("*.py"))}
    long = [f"{path.relative_to(package.parent)} ({n} lines)" for path, n in lines.items() if n > MAX_LINES]
    assert not long, f"modules over {MAX_LINES} lines: {', '.join(long)}"


def test_the_training_story_stays_short():
    """`train()` reads top to bottom in about a screen; a feature is a callback or a module, not a branch there."""
    import ast

    from nnrun.training import train

    tree = ast.parse(Path(train.__file__).read_text(encoding="utf-8"))
    (function,) = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "train"]
    length = function.end_lineno - function.lineno + 1
    assert length < 80, f"nnrun/training/train.py: train() is {length} lines; move what grew into a module of training/"
