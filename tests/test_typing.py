"""The project's own rule, which mypy cannot state: every public function is annotated.

mypy checks annotations where they are (and the bodies of unannotated
helpers), but a public function written without any passes it silently; this
test names each one, so what other modules call stays typed.
"""

import ast
from pathlib import Path

import nnrun


def _public(name):
    return not name.startswith("_") or (name.startswith("__") and name.endswith("__"))


def unannotated(root):
    """`file:line name` of each public function or public class's method lacking an annotation."""
    missing = []
    for path in sorted(Path(root).rglob("*.py")):
        nodes = [(node, False) for node in ast.parse(path.read_text(encoding="utf-8")).body]
        while nodes:
            node, in_class = nodes.pop(0)
            if isinstance(node, ast.ClassDef) and _public(node.name):
                nodes += [(child, True) for child in node.body]
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _public(node.name):
                a = node.args
                params = a.posonlyargs + a.args + a.kwonlyargs + [p for p in (a.vararg, a.kwarg) if p]
                static = any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in node.decorator_list)
                if in_class and params and not static:
                    params = params[1:]  # self or cls
                bare = [p.arg for p in params if p.annotation is None]
                if bare or node.returns is None:
                    what = ", ".join([*bare, *(["the return"] if node.returns is None else [])])
                    missing.append(f"{path.relative_to(Path(root).parent)}:{node.lineno} {node.name}: {what}")
    return missing


def test_every_public_function_of_nnrun_is_annotated():
    missing = unannotated(Path(nnrun.__file__).parent)
    assert not missing, "not annotated:\n" + "\n".join(missing)


def test_an_unannotated_public_function_is_named(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text(
        "def ok(x: int) -> int:\n    return x\n\n\n"
        "def _private(x):\n    return x\n\n\n"
        "def bare(x, y: int):\n    return x\n\n\n"
        "class Thing:\n    def method(self, z) -> None:\n        pass\n"
    )
    assert unannotated(tmp_path / "pkg") == ["pkg/mod.py:9 bare: x, the return", "pkg/mod.py:14 method: z"]
