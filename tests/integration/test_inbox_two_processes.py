"""Two processes working one SQLite inbox (`outbox replay` beside `up`, two cron runs of `daemon --once`)
handle each delivery once: each order version is enqueued once, each compliance request recorded once."""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connector.inbox import store_delivery
from connector.store import ComplianceRequest, InboxDelivery, OutboxRow, init_db, make_engine
from tests.conftest import FIXTURES

ROOT = Path(__file__).resolve().parents[2]
N = 120


def test_two_processes_never_handle_one_delivery_twice(tmp_path):
    cfg = tmp_path / "ob.toml"
    cfg.write_text(f'[connector]\ndatabase = "sqlite:///{tmp_path}/c.db"\n[target]\nurl = "http://127.0.0.1:9/api/v1"\n'
                   '[[shops]]\nname = "s"\nplatform = "shopify"\nwebhook_secret_env = "OB_TEST_SECRET"\n')
    engine = make_engine(f"sqlite:///{tmp_path}/c.db")
    init_db(engine)
    order = json.loads((FIXTURES / "shopify" / "webhook_orders_create_guest_hkd_discounts.json").read_text())
    compliance = json.loads((FIXTURES / "shopify" / "webhook_compliance_payloads_docs_2026-07.json").read_text())
    for i in range(N):
        o = copy.deepcopy(order)
        o["id"] = 1000 + i
        store_delivery(engine, platform="shopify", shop="s", topic="orders/create", headers={},
                       body=json.dumps(o).encode(), delivery_id=f"o{i}")
        store_delivery(engine, platform="shopify", shop="s", topic="customers/data_request", headers={},
                       body=json.dumps(compliance["customers/data_request"]).encode(), delivery_id=f"c{i}")
    code = ("from connector.config import load_config; from daemon.jobs import Runtime, process_inbox; "
            f"print(process_inbox(Runtime.create(load_config({str(cfg)!r}))).total)")
    env = dict(os.environ, ORDERBRIDGE_API_KEY="k", OB_TEST_SECRET="x")
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    handled = [int(p.communicate(timeout=300)[0].split()[-1]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum(handled) == 2 * N
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(OutboxRow)) == N
        assert s.scalar(select(func.count()).select_from(ComplianceRequest)) == N
        assert s.scalar(select(func.count()).select_from(InboxDelivery).where(InboxDelivery.attempts > 1)) == 0
    engine.dispose()
