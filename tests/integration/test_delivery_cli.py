"""The delivery commands in-process: enqueue, outbox status/failed/requeue, inbox replay, check, push."""
from __future__ import annotations

import io
import json

import pytest
import responses
from sqlalchemy.orm import Session

from connector.inbox import record_delivery
from connector.store import init_db, make_engine
from daemon.cli import main
from tests.delivery_helpers import TARGET, FakeTarget, wire_order


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    monkeypatch.setenv("OB_TEST_KEY", "k-123")
    monkeypatch.setenv("OB_WOO_SECRET", "s")
    path = tmp_path / "orderbridge.toml"
    path.write_text(f"""
[connector]
database = "sqlite:///{tmp_path}/c.db"
[target]
url = "{TARGET}"
api_key_env = "OB_TEST_KEY"
[[shops]]
name = "woo"
platform = "woocommerce"
url = "https://shop.example"
webhook_secret_env = "OB_WOO_SECRET"
""")
    return path


def ob(cfg, *args) -> int:
    return main(["--config", str(cfg), *args])


def engine_of(cfg):
    eng = make_engine(f"sqlite:///{cfg.parent}/c.db")
    init_db(eng)
    return eng


def test_enqueue_json_lines_reports_each_invalid_order(cfg, tmp_path, capsys):
    lines = [json.dumps(wire_order(1)), json.dumps({**wire_order(2), "date": "2025-06-01T12:00:00"}),
             "{not json", json.dumps(wire_order(3)), json.dumps(wire_order(1))]
    f = tmp_path / "orders.jsonl"
    f.write_text("\n".join(lines) + "\n")
    assert ob(cfg, "enqueue", str(f)) == 1
    out, err = capsys.readouterr()
    assert "line 2 (externalOrderId O2): date: needs a UTC offset" in err
    assert "line 3: not valid JSON" in err
    assert "enqueued 2, unchanged 1, invalid 2" in out


def test_enqueue_orders_document_from_stdin(cfg, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"orders": [wire_order(i) for i in range(3)]})))
    assert ob(cfg, "enqueue", "-", "--shop", "erp") == 0
    assert "enqueued 3, unchanged 0, invalid 0" in capsys.readouterr().out
    assert ob(cfg, "outbox", "status") == 0
    assert "pending 3 (due now 3)" in capsys.readouterr().out


def test_enqueue_bad_document_names_the_problem(cfg, tmp_path, capsys):
    f = tmp_path / "x.json"
    f.write_text('{"orders": [{"externalOrderId": "A1", "totalCost": 1, "status": "NOPE", "date": "2025-01-01T00:00:00Z", '
                 '"currency": "USD", "email": "a@b.cd"}]}')
    assert ob(cfg, "enqueue", str(f)) == 1
    assert "order #0 (externalOrderId A1): status: must be one of" in capsys.readouterr().err


def test_push_then_failed_then_requeue(cfg, tmp_path, capsys):
    f = tmp_path / "o.jsonl"
    f.write_text("\n".join(json.dumps(wire_order(i)) for i in range(5)))
    ob(cfg, "enqueue", str(f))
    with responses.RequestsMock() as rsps:
        target = FakeTarget(poison={"O2"}).install(rsps)
        assert ob(cfg, "push", "-q") == 0
    assert sorted(target.ids()) == ["O0", "O1", "O3", "O4"]
    capsys.readouterr()
    ob(cfg, "outbox", "failed")
    out = capsys.readouterr().out
    assert "O2" in out and "cannot read order O2" in out
    row_id = int(out.split("\t")[0])
    assert ob(cfg, "outbox", "requeue", str(row_id)) == 0
    assert "requeued 1" in capsys.readouterr().out
    with responses.RequestsMock() as rsps:
        target = FakeTarget().install(rsps)
        assert ob(cfg, "push", "-q") == 0
    assert target.ids() == ["O2"]


def test_push_stops_when_the_credentials_are_refused(cfg, tmp_path, capsys):
    f = tmp_path / "o.jsonl"
    f.write_text(json.dumps(wire_order(1)))
    ob(cfg, "enqueue", str(f))
    with responses.RequestsMock() as rsps:
        FakeTarget(faults=[(401, "no", {})]).install(rsps)
        assert ob(cfg, "push", "-q") == 1
    assert "the target refused the credentials" in capsys.readouterr().out


def test_a_retry_after_shows_in_the_status_and_holds_the_next_push(cfg, tmp_path, capsys):
    f = tmp_path / "o.jsonl"
    f.write_text("\n".join(json.dumps(wire_order(i)) for i in range(3)))
    ob(cfg, "enqueue", str(f))
    with responses.RequestsMock() as rsps:
        target = FakeTarget(faults=[(429, "slow down", {"Retry-After": "3600"})]).install(rsps)
        ob(cfg, "push", "-q")
        capsys.readouterr()
        assert ob(cfg, "push", "-q") == 0       # the next run, from cron: it does not knock again
        assert target.requests == 1
        out = capsys.readouterr().out
        assert "paused: the target asked to wait (Retry-After) until" in out and "--retry-now" in out
        assert ob(cfg, "outbox", "status") == 0
        assert "pushing paused: the target asked to wait (Retry-After) until" in capsys.readouterr().out
        assert ob(cfg, "push", "-q", "--retry-now") == 0      # the operator knows better: sent now
        assert target.requests == 2 and len(target.received) == 3


def test_outbox_requires_ids_for_requeue(cfg, capsys):
    assert ob(cfg, "outbox", "requeue") == 2
    assert "give ids, or --all-failed" in capsys.readouterr().err


def test_check_reports_each_part_on_one_line(cfg, capsys):
    with responses.RequestsMock() as rsps:
        rsps.get(f"{TARGET}/account/info", json={"userEmail": "a@b.c", "organisationName": "Acme"})
        assert ob(cfg, "check") == 0
    out = capsys.readouterr().out
    assert "ok  credentials: Acme, a@b.c" in out and "ok  connector store" in out
    with responses.RequestsMock() as rsps:
        rsps.get(f"{TARGET}/account/info", status=401)
        assert ob(cfg, "check") == 1
    assert "BAD credentials: the target refused the credentials (key from OB_TEST_KEY)" in capsys.readouterr().out


def test_failed_inbox_deliveries_are_listed_and_replayed(cfg, fixtures_dir, capsys):
    eng = engine_of(cfg)
    body = (fixtures_dir / "woocommerce" / "webhook_order_76_eur_created.body.raw").read_bytes()
    with Session(eng) as s:
        unknown = record_delivery(s, platform="woocommerce", shop="gone", topic="order.created", headers={}, body=body, delivery_id="1")
        record_delivery(s, platform="woocommerce", shop="woo", topic="order.created", headers={}, body=body, delivery_id="2")
        s.commit()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        target = FakeTarget().install(rsps)
        assert ob(cfg, "daemon", "--once") == 0
    assert target.ids() == ["76"]
    capsys.readouterr()
    ob(cfg, "outbox", "inbox-failed")
    out = capsys.readouterr().out
    assert f"{unknown}\twoocommerce/gone" in out and "no shop named 'gone'" in out
    assert [line.split("\t")[0] for line in out.splitlines()] == [str(unknown)]
    assert ob(cfg, "outbox", "replay", str(unknown)) == 1      # still unknown: failed again, body kept
    assert "failed again" in capsys.readouterr().out


def test_replay_reports_the_replayed_deliveries_apart_from_others_processed_with_them(cfg, fixtures_dir, capsys):
    """Replaying one delivery also processes the new ones behind it (oldest first, as the daemon would);
    its report and exit code are about the replayed one, and the others are counted on their own line."""
    eng = engine_of(cfg)
    body = (fixtures_dir / "woocommerce" / "webhook_order_76_eur_created.body.raw").read_bytes()
    with Session(eng) as s:
        gone = record_delivery(s, platform="woocommerce", shop="gone", topic="order.created", headers={}, body=body, delivery_id="1")
        s.commit()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        FakeTarget().install(rsps)
        ob(cfg, "daemon", "--once")
    with Session(eng) as s:                 # arrive after the failure, wait as new
        for n in (2, 3):
            record_delivery(s, platform="woocommerce", shop="woo", topic="order.created", headers={}, body=body, delivery_id=str(n))
        record_delivery(s, platform="woocommerce", shop="gone", topic="order.created", headers={}, body=body, delivery_id="4")
        s.commit()
    capsys.readouterr()
    assert ob(cfg, "outbox", "replay", str(gone)) == 1
    out = capsys.readouterr().out
    assert "replayed 1: 0 done, 0 ignored, 1 failed again" in out
    assert "also processed 3 other new deliveries (2 done, 0 ignored, 1 failed)" in out
