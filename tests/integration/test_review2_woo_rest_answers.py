"""What the WooCommerce REST client makes of answers that real shops give besides clean JSON.

Each case is one a merchant meets (reference/woocommerce.md §4.1, §4.3): a firewall or security plugin
answering an HTML page, WordPress answering but WooCommerce's route missing, WooCommerce seeing no key at
all (a proxy that hides HTTPS, a redirect that drops the Authorization header), a key whose user may not
read orders, and PHP notices printed in front of the JSON. The error must name the fix; an answer whose
data is intact must be used.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone

import pytest
from flask import Response, jsonify, redirect, request

from adapters.woocommerce import client, poller
from adapters.woocommerce.client import WooClient, check
from connector.errors import FatalAPIError
from connector.store import init_db, make_engine
from tests.fakes.fake_woocommerce import KEY, SECRET, FakeWooCommerce, make_orders, woo_shop

# Real bodies, abridged. Cloudflare's managed challenge page and Wordfence's block page are what those
# products serve to a client they do not trust; the PHP notice is the shape PHP prints with display_errors
# on, as seen in front of a WooCommerce REST answer in woocommerce/woocommerce#17939.
CHALLENGE = ('<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title>'
             '<meta http-equiv="refresh" content="390"></head><body><noscript>Enable JavaScript and cookies '
             'to continue</noscript></body></html>')
WORDFENCE = ('<html><head><title>Your access to this site has been limited by the site owner</title></head>'
             '<body><h1>Your access to this site has been limited by the site owner</h1></body></html>')
NOTICE = ("<br />\n<b>Notice</b>:  Undefined property: stdClass::$post_title in <b>/srv/www/wordpress-default/"
          "public_html/wp-content/plugins/woocommerce/includes/api/v1/class-wc-rest-webhooks-controller.php</b> "
          "on line <b>407</b><br />\n")
DEPRECATED = ("<br />\n<b>Deprecated</b>:  Creation of dynamic property WC_Foo::$bar is deprecated in "
              "<b>/var/www/html/wp-content/plugins/foo/foo.php</b> on line <b>12</b><br />\n")


class Shop(FakeWooCommerce):
    """The fake store with something in front of it: `front(route_args)` may answer instead of WooCommerce."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.front = None
        self.raw_json_prefix = ""       # printed before the JSON of every answer (PHP output, a BOM)

        @self.app.before_request
        def in_front():
            return self.front() if self.front else None

        @self.app.after_request
        def prefix(resp):
            if self.raw_json_prefix and resp.content_type.startswith("application/json"):
                resp.set_data(self.raw_json_prefix.encode() + resp.get_data())
            return resp


@pytest.fixture
def engine(tmp_path):
    e = make_engine(f"sqlite:///{tmp_path}/t.db")
    init_db(e)
    return e


pytestmark = pytest.mark.usefixtures("woo_keys")


def shop_for(url, **kw):
    return woo_shop(url, retry_attempts=1, poll_since="2d", **kw)


def refused(shop) -> FatalAPIError:
    with pytest.raises(FatalAPIError) as e:
        WooClient(shop).get_page("orders", {"per_page": 1})
    assert SECRET not in str(e.value) and KEY not in str(e.value)
    return e.value


# ---- HTML pages from something in front of WordPress -----------------------------------------------

def test_a_challenge_page_answered_with_200_is_named_with_its_title_even_with_rest_route():
    """Before: with rest_route = true the message was only "WooCommerce answered 200 on orders"."""
    with Shop(make_orders(1)) as woo:
        woo.front = lambda: Response(CHALLENGE, 200, content_type="text/html; charset=UTF-8")
        message = str(refused(shop_for(woo.url, rest_route=True)))
    assert "Just a moment..." in message
    assert "firewall" in message and "security plugin" in message
    assert "rest_route = true" not in message            # it is set already


def test_a_200_html_page_without_rest_route_names_the_page_and_both_causes():
    with Shop(make_orders(1)) as woo:
        woo.front = lambda: Response(CHALLENGE, 200, content_type="text/html")
        message = str(refused(shop_for(woo.url)))
    # WordPress without pretty permalinks may serve its home page here (nginx try_files): both are named
    assert "Just a moment..." in message and "rest_route = true" in message and "firewall" in message


def test_a_firewall_403_page_is_not_reported_as_a_refused_key():
    """Before: "WooCommerce refused the REST API key (403 ). Check consumer_key_env ..." sent the merchant
    to regenerate a key that was fine."""
    with Shop(make_orders(1)) as woo:
        woo.front = lambda: Response(WORDFENCE, 403, content_type="text/html")
        message = str(refused(shop_for(woo.url)))
    assert "refused the REST API key" not in message
    assert "Your access to this site has been limited by the site owner" in message and "firewall" in message


# ---- WordPress answers, WooCommerce's route is missing ------------------------------------------------

def test_rest_no_route_says_woocommerce_is_missing_not_permalinks():
    """A JSON 404 rest_no_route comes from the WordPress REST API itself: permalinks work, the wc/v3 route
    does not exist (WooCommerce inactive or older than 3.5, or url names another WordPress site)."""
    with Shop(make_orders(1)) as woo:
        woo.front = lambda: (jsonify({"code": "rest_no_route", "message": "No route was found matching the URL "
                                      "and request method.", "data": {"status": 404}}), 404)
        for shop in (shop_for(woo.url), shop_for(woo.url, rest_route=True)):
            message = str(refused(shop))
            assert "rest_route = true" not in message
            assert "rest_no_route" in message and "WooCommerce" in message and "active" in message


# ---- WooCommerce saw no key, or a key it will not let read orders ------------------------------------

def test_no_key_seen_with_query_string_auth_already_on_names_https_detection():
    """WooCommerce reads consumer_key/consumer_secret (header or query) only when WordPress's is_ssl() is
    true; behind a TLS-terminating proxy that does not say so it looks for OAuth 1.0a only and answers
    401 woocommerce_rest_cannot_view. Before: the advice was to set query_string_auth = true, already set."""
    with Shop(make_orders(1)) as woo:
        woo.front = lambda: (jsonify({"code": "woocommerce_rest_cannot_view", "message": "Sorry, you cannot list "
                                      "resources.", "data": {"status": 401}}), 401)
        message = str(refused(shop_for(woo.url, query_string_auth=True)))
    assert "set query_string_auth = true" not in message
    assert "HTTPS" in message and "is_ssl" in message and "Sorry, you cannot list resources." in message


def test_a_redirect_to_another_host_that_dropped_the_key_names_the_url_to_use():
    """requests drops the Authorization header when a redirect leads to another host (a www redirect by
    the host or a CDN), so WooCommerce sees no key. The message must name the address to configure."""
    with Shop(make_orders(1)) as woo:
        target = woo.url.replace("127.0.0.1", "localhost")
        def front():
            if request.host.startswith("127.0.0.1"):
                return redirect(target + request.full_path, 301)
            return None
        woo.front = front
        message = str(refused(shop_for(woo.url)))
    assert f"url = \"{target}\"" in message and "redirect" in message


def test_a_key_whose_user_may_not_read_orders_names_the_role():
    """403 woocommerce_rest_cannot_view: the key is valid (WooCommerce knows the user) but that user lacks
    the capability; a new key for a Shop manager or Administrator fixes it."""
    with Shop(make_orders(1)) as woo:
        woo.front = lambda: (jsonify({"code": "woocommerce_rest_cannot_view", "message": "Sorry, you cannot list "
                                      "resources.", "data": {"status": 403}}), 403)
        message = str(refused(shop_for(woo.url)))
    assert "Shop manager" in message and "Administrator" in message
    assert "query_string_auth" not in message


def test_woocommerce_s_own_reason_is_quoted():
    """A read-only key is fine, a write-only key is not: WooCommerce says which in its message."""
    with Shop(make_orders(1)) as woo:
        woo.front = lambda: (jsonify({"code": "woocommerce_rest_authentication_error", "message": "The API key "
                                      "provided does not have read permissions.", "data": {"status": 401}}), 401)
        message = str(refused(shop_for(woo.url)))
    assert "does not have read permissions" in message and "Read" in message


# ---- PHP output in front of the JSON ---------------------------------------------------------------

@pytest.mark.parametrize("prefix", [NOTICE, NOTICE + DEPRECATED, "\ufeff"], ids=["notice", "two", "bom"])
def test_php_notices_or_a_bom_before_the_json_do_not_stop_polling(engine, prefix, caplog, monkeypatch):
    """Before: requests' .json() raised JSONDecodeError ("Expecting value: line 1 column 1"), the poll of
    that shop failed every 15 minutes, and nothing said why."""
    monkeypatch.setattr(client, "_PHP_OUTPUT_WARNED", {})      # warned at most hourly per shop
    with Shop(make_orders(3)) as woo:
        woo.raw_json_prefix = prefix
        with caplog.at_level(logging.WARNING, logger="adapters.woocommerce.client"):
            assert poller.poll(engine, shop_for(woo.url), now=datetime(2026, 1, 2, tzinfo=timezone.utc)) == 3
            assert check(shop_for(woo.url)) == "REST API reachable, 3 orders visible"
    if prefix.strip("\ufeff"):
        assert any("display_errors" in r.getMessage() and "Undefined property" in r.getMessage()
                   for r in caplog.records)


def test_a_body_that_is_not_json_at_all_says_so_with_its_start():
    with Shop(make_orders(1)) as woo:
        woo.front = lambda: Response(NOTICE + "<b>Fatal error</b>: Allowed memory size exhausted", 200,
                                     content_type="application/json; charset=UTF-8")
        message = str(refused(shop_for(woo.url)))
    assert "did not answer JSON" in message and "Undefined property" in message and "display_errors" in message


def test_a_block_page_that_echoes_the_request_url_does_not_put_the_secret_in_the_error():
    """With query_string_auth the key and secret are in the URL, and some firewall pages print it."""
    with Shop(make_orders(1)) as woo:
        woo.front = lambda: Response(f"<html><body>Request blocked: {request.full_path}</body></html>", 406,
                                     content_type="text/html")
        e = refused(shop_for(woo.url, query_string_auth=True))     # refused() checks the message
    assert "406" in str(e) and "Request blocked" in str(e)
    assert SECRET not in e.body and KEY not in e.body


def test_a_redirect_loop_is_named():
    """http and https sending each other back (a proxy that hides HTTPS from the server, the server's own
    redirect to https) is a loop; before, requests' TooManyRedirects went up as it was, with no shop name."""
    with Shop(make_orders(1)) as woo:
        woo.front = lambda: redirect(request.full_path, 302)
        message = str(refused(shop_for(woo.url)))
    assert "redirect" in message and "loop" in message and woo.url in message
