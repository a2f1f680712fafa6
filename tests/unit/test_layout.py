"""Dependencies point inward (DESIGN.md section 1): each folder imports only what it may."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# folder → top-level packages it must never import
FORBIDDEN = {
    "connector": {"flask", "werkzeug", "apscheduler", "adapters", "daemon", "backend", "jinja2"},
    "adapters": {"daemon", "backend", "apscheduler"},
    "backend": {"adapters", "daemon", "apscheduler", "requests_unused"},
}
# backend may use the add-orders format of connector, never its store, outbox, inbox or client; it shares
# the database plumbing (engine set-up, schema growth: connector/database.py, which holds no tables)
BACKEND_ALLOWED_CONNECTOR = {"connector", "connector.format", "connector.money", "connector.config", "connector.errors",
                             "connector.database"}


def _imports(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if (ROOT / Path(*node.module.split("."))).is_dir():
                # from a package: each name may be a module of it (`from connector import store`)
                for a in node.names:
                    sub = f"{node.module}.{a.name}"
                    yield node.lineno, sub if (ROOT / Path(*sub.split("."))).with_suffix(".py").exists() else node.module
            else:
                yield node.lineno, node.module


def _sources(folder: str):
    return sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_folder_imports_only_what_it_may(folder):
    bad = []
    for path in _sources(folder):
        for line, name in _imports(path):
            top = name.split(".")[0]
            if top in FORBIDDEN[folder]:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
            if folder == "backend" and top == "connector" and name not in BACKEND_ALLOWED_CONNECTOR:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {name} (backend speaks HTTP to the connector)")
    assert not bad, "\n".join(bad)


def test_the_rule_catches_a_violation(tmp_path):
    bad = tmp_path / "x.py"
    bad.write_text("from flask import Flask\nimport daemon.cli\nfrom connector import store, database\n"
                   "from connector import ISO_4217_UNUSED\n")
    assert [n for _, n in _imports(bad)] == ["flask", "daemon.cli", "connector.store", "connector.database", "connector"]
