"""What `up` and `daemon` say when they start: the webhook URLs of the configured shops, where orders go and
which shops are polled (an operator should not have to read the config to know)."""
from connector.config import from_dict
from daemon.commands.up import _banner
from daemon.jobs import Runtime
from daemon.scheduler import started_line

SHOPS = [{"name": "main", "platform": "shopify", "domain": "main.myshopify.com", "access_token_env": "OB_T_TOKEN"},
         {"name": "woo", "platform": "woocommerce", "url": "https://shop.example"},
         {"name": "legacy", "platform": "csv"}]


def test_the_banner_lists_the_webhook_url_of_each_configured_shop():
    banner = _banner("127.0.0.1", 8080, "k", None, from_dict({"shops": SHOPS}).shops)
    assert "webhooks:               http://127.0.0.1:8080/webhooks/shopify/main\n" \
           "                          http://127.0.0.1:8080/webhooks/woocommerce/woo\n" in banner
    assert "legacy" not in banner
    assert "/webhooks/<shopify|woocommerce>/<shop name>" in _banner("127.0.0.1", 8080, "k", None, [])


def test_the_daemon_says_where_it_pushes_and_what_it_polls(tmp_path, monkeypatch):
    monkeypatch.setenv("OB_T_TOKEN", "shpat_x")
    config = from_dict({"connector": {"database": f"sqlite:///{tmp_path}/c.db"},
                        "target": {"url": "https://yespo.io/api/v1"}, "shops": SHOPS})
    rt = Runtime.create(config)
    try:
        line = started_line(rt)
    finally:
        rt.engine.dispose()
    assert line.startswith("daemon started: pushing to https://yespo.io/api/v1 every ")
    assert "polling main every " in line and "woo" not in line      # woo has no consumer key set
    monkeypatch.delenv("OB_T_TOKEN")
    rt = Runtime.create(config)
    try:
        assert "polling no shop (none has API credentials set)" in started_line(rt)
    finally:
        rt.engine.dispose()
