"""For the delivery e2e tests: the real backend as a process, and a small fault-injecting HTTP proxy."""
from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

KEY = "e2e-delivery-key"
EXE = str(Path(sys.executable).parent / "orderbridge")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(d: Path, target: str, connector_db: str | None = None, **daemon) -> Path:
    extra = "\n".join(f'{k} = {json.dumps(v)}' for k, v in daemon.items())
    cfg = d / "orderbridge.toml"
    cfg.write_text(f"""
[connector]
database = "{connector_db or f'sqlite:///{d}/connector.db'}"

[target]
url = "{target}"
api_key_env = "ORDERBRIDGE_API_KEY"
timeout = "10s"

[daemon]
{extra}

[backend]
database = "sqlite:///{d}/backend.db"
api_keys_env = "ORDERBRIDGE_API_KEY"
rate_limit = 0
""")
    return cfg


def start(args: list[str], cwd: Path, log: str) -> subprocess.Popen:
    return subprocess.Popen([EXE, *args], cwd=cwd, env={**os.environ, "ORDERBRIDGE_API_KEY": KEY},
                            stdout=open(cwd / log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)


def stop(p: subprocess.Popen, sig=signal.SIGTERM) -> None:
    if p.poll() is None:
        os.killpg(p.pid, sig)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def wait_http(url: str, timeout: float = 30) -> None:
    end = time.time() + timeout
    while time.time() < end:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except Exception:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer in {timeout} s")


class Backend:
    def __init__(self, d: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api/v1"
        cfg = write_config(d, self.url)
        self.proc = start(["--config", str(cfg), "backend", "--host", "127.0.0.1", "--port", str(self.port)], d, "backend.log")
        wait_http(f"http://127.0.0.1:{self.port}/healthz")

    def get_all(self, path: str, field: str, params: str = "") -> list:
        out, cursor, s = [], None, requests.Session()
        s.auth = ("t", KEY)
        while True:
            r = s.get(f"{self.url}{path}?limit=1000{params}" + (f"&cursor={cursor}" if cursor else ""), timeout=30)
            r.raise_for_status()
            body = r.json()
            out += body[field]
            cursor = body.get("next")
            if not cursor:
                return out

    def event_keys(self, prefix: str) -> list[str]:
        return [e["key"] for e in self.get_all("/events", "events") if str(e["key"]).startswith(prefix)]


class FaultProxy:
    """Forwards to the backend; `faults` holds answers to give instead, in turn:
    an int status (with `Retry-After: 1` for 429), "drop" (close without answering), or a delay in
    seconds as a float. `pushed` records every order forwarded, as (externalOrderId, status)."""

    def __init__(self, upstream: str):
        self.upstream, self.faults, self.pushed, self.lock = upstream, [], [], threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                self._forward(None)

            def do_POST(self):
                self._forward(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

            def _forward(self, body):
                with proxy.lock:
                    fault = proxy.faults.pop(0) if proxy.faults else None
                if fault == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if isinstance(fault, int):
                    self.send_response(fault)
                    if fault == 429:
                        self.send_header("Retry-After", "1")
                    self.send_header("Content-Length", "4")
                    self.end_headers()
                    self.wfile.write(b"busy")
                    return
                if isinstance(fault, float):
                    time.sleep(fault)
                r = requests.request(self.command, proxy.upstream + self.path.removeprefix("/api/v1"), data=body,
                                     headers={"Authorization": self.headers["Authorization"],
                                              "Content-Type": "application/json"}, timeout=30)
                if body and r.status_code == 200:
                    with proxy.lock:
                        proxy.pushed += [(o["externalOrderId"], o["status"]) for o in json.loads(body)["orders"]]
                self.send_response(r.status_code)
                self.send_header("Content-Length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def basic(key: str = KEY) -> str:
    return "Basic " + base64.b64encode(f"u:{key}".encode()).decode()
