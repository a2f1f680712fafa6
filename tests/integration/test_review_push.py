"""`orderbridge push` after an outage: says why nothing went, and --retry-now sends what waits for a retry."""
from __future__ import annotations

import json

import responses

from daemon.cli import main
from tests.delivery_helpers import TARGET, FakeTarget, wire_order


def test_push_after_an_outage(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OB_REVIEW_KEY", "k")
    cfg = tmp_path / "orderbridge.toml"
    cfg.write_text(f'[connector]\ndatabase = "sqlite:///{tmp_path}/c.db"\n'
                   f'[target]\nurl = "{TARGET}"\napi_key_env = "OB_REVIEW_KEY"\n')
    ob = lambda *a: main(["--config", str(cfg), *a])   # noqa: E731
    orders = tmp_path / "o.jsonl"
    orders.write_text("\n".join(json.dumps(wire_order(i)) for i in range(3)) + "\n")
    assert ob("enqueue", str(orders)) == 0
    with responses.RequestsMock() as rsps:              # busy for an hour: every order waits for a retry
        rsps.post(f"{TARGET}/orders", status=429, headers={"Retry-After": "3600"})
        assert ob("push", "-q") == 1
    capsys.readouterr()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:   # back up
        target = FakeTarget().install(rsps)
        assert ob("push", "-q") == 0
        out = capsys.readouterr().out
        assert target.ids() == []
        assert "3 pending wait for a retry" in out and "--retry-now" in out
        assert ob("push", "-q", "--retry-now") == 0
        assert sorted(target.ids()) == ["O0", "O1", "O2"]
    assert "sent 3" in capsys.readouterr().out
