"""With query_string_auth, the consumer key and secret never reach the logs, even at DEBUG (--verbose)."""
import logging

from adapters.woocommerce.client import WooClient
from connector.config import from_dict
from tests.fakes.fake_woocommerce import KEY, SECRET, FakeWooCommerce


def test_query_string_credentials_are_redacted_from_debug_logs(monkeypatch, caplog):
    monkeypatch.setenv("OB_REVIEW_CK", KEY)
    monkeypatch.setenv("OB_REVIEW_CS", SECRET)
    caplog.set_level(logging.DEBUG)
    with FakeWooCommerce([]) as woo:
        shop = from_dict({"shops": [{"name": "w", "platform": "woocommerce", "url": woo.url, "query_string_auth": True,
                                     "consumer_key_env": "OB_REVIEW_CK", "consumer_secret_env": "OB_REVIEW_CS"}]}).shops[0]
        WooClient(shop, attempts=1).get_page("orders", {"per_page": 1})
    ours = [r for r in caplog.records if r.name.startswith("urllib3")]
    assert any("consumer_secret=[redacted]" in r.getMessage() for r in ours)     # the request was logged
    assert not any(SECRET in r.getMessage() or KEY in r.getMessage() for r in ours)
