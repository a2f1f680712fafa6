"""`orderbridge up` and `receiver` on a port that is taken: one sentence and exit 2, no stack trace."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("command", ["up", "receiver"])
def test_a_taken_port_is_named(tmp_path, command):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "ORDERBRIDGE_API_KEY": "k", "PYTHONPATH": str(ROOT)}
        p = subprocess.run([sys.executable, "-m", "daemon.cli", command, "--port", str(port)], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=60)
    assert p.returncode == 2, p.stderr
    assert f"cannot listen on 127.0.0.1:{port}: it is already in use" in p.stderr
    assert "Traceback" not in p.stderr
