"""Each command and workflow module imports on its own in a fresh interpreter (no import cycle depends on order)."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("module", ["backend.workflows.executor", "backend.workflows.intake", "backend.workflows.conditions",
                                    "backend.segments", "daemon.commands.workflows", "daemon.commands.check"])
def test_imports_alone(module):
    p = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
