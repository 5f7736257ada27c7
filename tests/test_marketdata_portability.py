"""marketdata modules are embedded in every exported module, which imports them in a small
Lambda or container: they import only the standard library, a few third-party packages and
each other, and importing them does nothing but define names (checked statically).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "marketdata"
THIRD_PARTY = {"pandas", "numpy", "pyarrow", "yfinance", "exchange_calendars"}


def _modules():
    return {p.name: ast.parse(p.read_text(), filename=str(p)) for p in PACKAGE.glob("*.py")}


def test_imports_are_portable():
    for name, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    root = alias.name.split(".")[0]
                    assert root != "marketdata", f"{name}: use 'from marketdata.x import y'"
                    assert root in sys.stdlib_module_names or root in THIRD_PARTY, (
                        f"{name}: imports {alias.name}"
                    )
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{name}: relative import"
                root = (node.module or "").split(".")[0]
                if root == "marketdata":
                    assert node.module.count(".") == 1, f"{name}: from {node.module}"
                    assert all(a.asname is None for a in node.names), f"{name}: aliased import"
                else:
                    assert (
                        root in sys.stdlib_module_names
                        or root in THIRD_PARTY
                        or (root == "__future__")
                    ), f"{name}: imports from {node.module}"


def test_no_module_level_side_effects():
    allowed = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)
    for name, tree in _modules().items():
        for i, node in enumerate(tree.body):
            if i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
                continue  # module docstring
            assert isinstance(node, allowed), f"{name}:{node.lineno}: {type(node).__name__}"
            if _extends_package_path(node):
                continue  # a user's package named marketdata merges with ours
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                calls = [n for n in ast.walk(node.value) if isinstance(n, ast.Call)]
                ok = all(
                    isinstance(c.func, ast.Attribute)
                    and c.func.attr in {"compile", "Timedelta", "getLogger"}
                    for c in calls
                )
                assert ok, f"{name}:{node.lineno}: module-level call"


def _extends_package_path(node: ast.stmt) -> bool:
    """``__path__ = pkgutil.extend_path(__path__, __name__)`` (in any import spelling)."""
    if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)):
        return False
    targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
    func = node.value.func
    return (
        targets == ["__path__"] and isinstance(func, ast.Attribute) and (func.attr == "extend_path")
    )
