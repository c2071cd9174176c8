"""The core knows nobody: no core module imports a server, database or telemetry library."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[1] / "rustqueue_core"
FORBIDDEN = (
    "litestar",
    "uvicorn",
    "sqlalchemy",
    "duckdb",
    "websockets",
    "prometheus_client",
    "opentelemetry",
    "httpx",
    "rustqueue_http",
    "rustqueue_postgres",
)
#: Opt-in test support may import pytest; nothing else of the core may.
PYTEST_ALLOWED = CORE / "testing"


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return found


CORE_FILES = sorted(CORE.rglob("*.py"))


def test_there_are_core_modules_to_check() -> None:
    names = {p.name for p in CORE_FILES}
    assert {"engine.py", "plugins.py", "config.py", "cli.py", "hookspecs.py"} <= names


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: str(p.relative_to(CORE)))
def test_core_module_imports_nothing_heavy(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    bad = [
        f"{path.relative_to(CORE)}:{line}: {module}"
        for line, module in imported_modules(tree)
        if module.split(".")[0] in FORBIDDEN
        or (module.split(".")[0] in ("pytest", "pytest_asyncio") and PYTEST_ALLOWED not in path.parents)
    ]
    assert not bad, "the core must not import these (plugins import them inside hook bodies):\n" + "\n".join(bad)
