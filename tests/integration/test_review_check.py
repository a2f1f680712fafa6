"""`orderbridge check` reaches the target even without a key, and checks each shop's config and API."""
from __future__ import annotations

import socket

import pytest
import responses

from daemon.cli import main
from tests.fakes.fake_shopify import TOKEN, FakeShopify
from tests.fakes.fake_woocommerce import KEY, SECRET, FakeWooCommerce

TARGET = "http://target.example/api/v1"


def write(tmp_path, body: str, target: str = TARGET):
    path = tmp_path / "orderbridge.toml"
    path.write_text(f'[connector]\ndatabase = "sqlite:///{tmp_path}/c.db"\n'
                    f'[target]\nurl = "{target}"\napi_key_env = "OB_REVIEW_KEY"\n' + body)
    return path


def check(path, capsys) -> tuple[int, str]:
    rc = main(["--config", str(path), "check"])
    return rc, capsys.readouterr().out


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_without_a_key_an_unreachable_target_is_still_reported(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("OB_REVIEW_KEY", raising=False)
    rc, out = check(write(tmp_path, "", f"http://127.0.0.1:{closed_port()}/api/v1"), capsys)
    assert rc == 1
    assert "BAD target: cannot reach" in out
    assert "BAD credentials: no API key: set the environment variable OB_REVIEW_KEY" in out


def test_without_a_key_a_reachable_target_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("OB_REVIEW_KEY", raising=False)
    with responses.RequestsMock() as rsps:
        rsps.get(f"{TARGET}/account/info", status=401, json={"error": {"status": 401, "message": "no"}})
        rc, out = check(write(tmp_path, ""), capsys)
    assert rc == 1
    assert f"ok  target: reachable ({TARGET})" in out and "BAD credentials: no API key" in out


def test_a_web_page_at_the_target_url_is_not_an_api_that_accepts_the_key(tmp_path, monkeypatch, capsys):
    # push stops on a 2xx web page (it is not the add-orders API); check must not call that URL good
    monkeypatch.setenv("OB_REVIEW_KEY", "k")
    with responses.RequestsMock() as rsps:
        rsps.get(f"{TARGET}/account/info", status=200, content_type="text/html",
                 body="<!doctype html><html><body>Welcome to our shop</body></html>")
        rc, out = check(write(tmp_path, ""), capsys)
    assert rc == 1
    assert "BAD target: the target answered 200 with a web page, not the add-orders API" in out
    assert "credentials: accepted" not in out


@pytest.fixture
def target_ok(monkeypatch):
    monkeypatch.setenv("OB_REVIEW_KEY", "k")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(f"{TARGET}/account/info", json={"userEmail": "a@b.c", "organisationName": "Acme"})
        rsps.add_passthru("http://127.0.0.1")
        yield rsps


def test_a_bad_status_map_is_reported_by_check(tmp_path, monkeypatch, capsys, target_ok):
    monkeypatch.setenv("OB_REVIEW_SECRET", "s")
    path = write(tmp_path, '[[shops]]\nname = "w"\nplatform = "woocommerce"\nwebhook_secret_env = "OB_REVIEW_SECRET"\n'
                           '[shops.status_map]\n"on-hold" = "PAUSED"\n')
    rc, out = check(path, capsys)
    assert rc == 1
    assert "BAD shop w (woocommerce):" in out and "status_map.on-hold" in out and "PAUSED" in out


def test_a_shop_with_no_way_in_is_bad(tmp_path, capsys, target_ok):
    rc, out = check(write(tmp_path, '[[shops]]\nname = "s"\nplatform = "shopify"\ndomain = "s.myshopify.com"\n'), capsys)
    assert rc == 1
    assert "BAD shop s (shopify):" in out and "neither a webhook secret nor API credentials" in out


def test_woocommerce_credentials_are_tried_against_the_shop(tmp_path, monkeypatch, capsys, target_ok):
    monkeypatch.setenv("OB_REVIEW_CK", KEY)
    monkeypatch.setenv("OB_REVIEW_CS", "cs_wrong")
    with FakeWooCommerce([], key=KEY, secret=SECRET) as woo:
        path = write(tmp_path, f'[[shops]]\nname = "w"\nplatform = "woocommerce"\nurl = "{woo.url}"\n'
                               'consumer_key_env = "OB_REVIEW_CK"\nconsumer_secret_env = "OB_REVIEW_CS"\n')
        rc, out = check(path, capsys)
        assert rc == 1 and "BAD shop w (woocommerce): API: shop w: WooCommerce refused the REST API key" in out
        assert "cs_wrong" not in out
        monkeypatch.setenv("OB_REVIEW_CS", SECRET)
        rc, out = check(path, capsys)
    assert rc == 0 and "ok  shop w (woocommerce): no webhook_secret_env" in out and "REST API reachable" in out


def test_shopify_token_is_tried_and_a_missing_scope_named(tmp_path, monkeypatch, capsys, target_ok):
    monkeypatch.setenv("OB_REVIEW_TOKEN", "shpat_wrong")
    with FakeShopify([], scopes=("read_orders",)) as fake:
        path = write(tmp_path, f'[[shops]]\nname = "s"\nplatform = "shopify"\ndomain = "s.myshopify.com"\n'
                               f'api_url = "{fake.url}"\naccess_token_env = "OB_REVIEW_TOKEN"\n')
        rc, out = check(path, capsys)
        assert rc == 1 and "BAD shop s (shopify): API: Shopify answered 401" in out and "shpat_wrong" not in out
        monkeypatch.setenv("OB_REVIEW_TOKEN", TOKEN)
        rc, out = check(path, capsys)
    assert rc == 0, out
    assert "ok  shop s (shopify):" in out and "Admin API reachable; the token lacks read_all_orders" in out
