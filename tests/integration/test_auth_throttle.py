"""Guessing API keys or the operator password: one address is refused after too many wrong ones, others are not."""
from __future__ import annotations

import base64
import logging
import re

import pytest
from backend import create_app
from connector.config import from_dict
from connector.errors import ConfigError

KEY = "the-real-key"
ATTACKER, CONNECTOR = "203.0.113.66", "198.51.100.10"


def basic(password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"u:{password}".encode()).decode()}


class Clock:
    def __init__(self, now: float = 5000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def app(tmp_path, monkeypatch, clock):
    monkeypatch.setenv("UI_TEST_PASSWORD", "operator-pw")
    config = from_dict({"backend": {"database": f"sqlite:///{tmp_path}/backend.db", "ui_password_env": "UI_TEST_PASSWORD",
                                    "auth_fail_limit": 5, "auth_fail_window": "1m"}})
    app = create_app(config, test_config={"API_KEYS": [KEY], "RATE_LIMIT": 0})
    app.extensions["orderbridge.auth_throttle"].clock = clock
    yield app
    app.extensions["orderbridge.engine"].dispose()


def api(client, password: str, addr: str):
    return client.get("/api/v1/account/info", headers=basic(password), environ_base={"REMOTE_ADDR": addr})


def test_guessing_keys_gets_429_with_retry_after_and_the_key_is_not_checked(app, caplog):
    c = app.test_client()
    with caplog.at_level(logging.WARNING, logger="backend.throttle"):
        tries = [api(c, f"guess-{i}", ATTACKER).status_code for i in range(5)]
    assert tries == [401] * 5
    r = api(c, "guess-5", ATTACKER)
    assert r.status_code == 429 and r.headers["Retry-After"] == "60"
    assert r.get_json() == {"message": "too many wrong API keys from this address; retry in 60 s",
                          "error": {"status": 429, "message": "too many wrong API keys from this address; retry in 60 s"}}
    assert api(c, KEY, ATTACKER).status_code == 429            # even the right key: nothing is checked
    assert [rec.getMessage() for rec in caplog.records if ATTACKER in rec.getMessage()]
    assert not any("guess-" in rec.getMessage() for rec in caplog.records)


def test_a_valid_key_from_another_address_keeps_working(app):
    c = app.test_client()
    for i in range(6):
        api(c, f"guess-{i}", ATTACKER)
    assert api(c, "guess-6", ATTACKER).status_code == 429
    ok = [api(c, KEY, CONNECTOR).status_code for _ in range(50)]
    assert ok == [200] * 50                                     # valid requests are never counted


def test_the_block_ends_with_the_window(app, clock):
    c = app.test_client()
    clock.now = 5000
    for i in range(5):
        api(c, f"guess-{i}", ATTACKER)
    clock.now = 5045
    r = api(c, KEY, ATTACKER)
    assert r.status_code == 429 and r.headers["Retry-After"] == "15"
    clock.now = 5060
    assert api(c, KEY, ATTACKER).status_code == 200
    assert api(c, "guess-again", ATTACKER).status_code == 401   # a fresh window: 5 more tries, not one


def test_posting_orders_is_throttled_too_and_requests_without_credentials_are_not_counted(app):
    c = app.test_client()
    for _ in range(20):
        assert c.get("/api/v1/account/info", environ_base={"REMOTE_ADDR": ATTACKER}).status_code == 401
    assert api(c, KEY, ATTACKER).status_code == 200
    for i in range(5):
        c.post("/api/v1/orders", json={"orders": []}, headers=basic(f"g{i}"), environ_base={"REMOTE_ADDR": ATTACKER})
    r = c.post("/api/v1/orders", json={"orders": []}, headers=basic(KEY), environ_base={"REMOTE_ADDR": ATTACKER})
    assert r.status_code == 429 and "Retry-After" in r.headers


def ui_login(client, password: str, addr: str):
    page = client.get("/ui/login", environ_base={"REMOTE_ADDR": addr}).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    return client.post("/ui/login", data={"password": password, "csrf_token": token, "next": "/ui/orders"},
                       environ_base={"REMOTE_ADDR": addr})


def test_ui_login_says_how_long_to_wait_and_does_not_check_the_password(app, clock):
    c = app.test_client()
    assert [ui_login(c, f"pw-{i}", ATTACKER).status_code for i in range(5)] == [401] * 5
    r = ui_login(c, "operator-pw", ATTACKER)
    assert r.status_code == 429 and r.headers["Retry-After"] == "60"
    assert "Too many failed attempts from your address: try again in 60 seconds." in r.text
    assert "/ui/login" in c.get("/ui/orders", environ_base={"REMOTE_ADDR": ATTACKER}).headers["Location"]
    other = app.test_client()
    assert ui_login(other, "operator-pw", CONNECTOR).status_code == 302
    clock.now += 60
    assert ui_login(c, "operator-pw", ATTACKER).status_code == 302


def test_api_and_ui_share_one_count(app):
    c = app.test_client()
    for i in range(3):
        api(c, f"guess-{i}", ATTACKER)
    for i in range(2):
        ui_login(c, f"pw-{i}", ATTACKER)
    assert api(c, KEY, ATTACKER).status_code == 429


def test_zero_turns_it_off(tmp_path):
    app = create_app(from_dict({"backend": {"database": f"sqlite:///{tmp_path}/b.db", "auth_fail_limit": 0}}),
                     test_config={"API_KEYS": [KEY], "RATE_LIMIT": 0})
    c = app.test_client()
    assert {api(c, f"guess-{i}", ATTACKER).status_code for i in range(30)} == {401}
    assert api(c, KEY, ATTACKER).status_code == 200
    app.extensions["orderbridge.engine"].dispose()


def proxied_app(tmp_path, hops):
    config = from_dict({"backend": {"database": f"sqlite:///{tmp_path}/p.db", "auth_fail_limit": 3,
                                    "trusted_proxies": hops}})
    return create_app(config, test_config={"API_KEYS": [KEY], "RATE_LIMIT": 0})


def via_proxy(client, password: str, forwarded_for: str):
    return client.get("/api/v1/account/info", headers={**basic(password), "X-Forwarded-For": forwarded_for},
                      environ_base={"REMOTE_ADDR": "127.0.0.1"})


def test_behind_a_trusted_proxy_each_client_is_counted_by_its_own_address(tmp_path):
    app = proxied_app(tmp_path, 1)
    c = app.test_client()
    for i in range(3):
        via_proxy(c, f"guess-{i}", f"192.0.2.1, {ATTACKER}")      # the first entry is the client's to write
    assert via_proxy(c, KEY, f"192.0.2.1, {ATTACKER}").status_code == 429
    assert via_proxy(c, KEY, CONNECTOR).status_code == 200
    assert api(c, KEY, "127.0.0.1").status_code == 200            # straight to the backend, no header
    app.extensions["orderbridge.engine"].dispose()


def test_without_trusted_proxies_x_forwarded_for_is_ignored(tmp_path):
    app = proxied_app(tmp_path, 0)
    c = app.test_client()
    for i in range(3):
        via_proxy(c, f"guess-{i}", f"192.0.2.{i}")                # a new made-up address each time
    assert via_proxy(c, KEY, "192.0.2.200").status_code == 429
    app.extensions["orderbridge.engine"].dispose()


def test_trusted_proxies_must_be_a_small_whole_number(tmp_path):
    with pytest.raises(ConfigError, match="trusted_proxies"):
        proxied_app(tmp_path, "yes")
