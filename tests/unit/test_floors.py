"""An app imports only from apps on its own floor or below (DESIGN.md, "Floors")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FLOORS = {"scheduling": 1, "notifications": 1, "ledger": 2, "billing": 3, "receivables": 4}


def imported_apps(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names & set(FLOORS)


@pytest.mark.parametrize("app", sorted(FLOORS))
def test_app_imports_nothing_above_its_floor(app):
    offending = []
    for path in sorted((ROOT / app).rglob("*.py")):
        for other in imported_apps(path):
            if FLOORS[other] > FLOORS[app] or (FLOORS[app] == 1 and other != app):
                offending.append(f"{path.relative_to(ROOT)} imports {other}")

    assert not offending, "\n".join(offending)
