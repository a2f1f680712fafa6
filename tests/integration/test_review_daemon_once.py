"""`orderbridge daemon --once` names every shop it could not poll in its one summary line (cron sees only that)."""
from __future__ import annotations

from daemon.cli import main
from tests.fakes.fake_woocommerce import KEY, FakeWooCommerce


def test_a_failed_poll_is_named_in_the_summary(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OB_REVIEW_KEY", "k")
    monkeypatch.setenv("OB_REVIEW_CK", KEY)
    monkeypatch.setenv("OB_REVIEW_CS", "cs_wrong")
    with FakeWooCommerce([]) as woo:
        cfg = tmp_path / "orderbridge.toml"
        cfg.write_text(f'[connector]\ndatabase = "sqlite:///{tmp_path}/c.db"\n'
                       '[target]\nurl = "http://127.0.0.1:9/api/v1"\napi_key_env = "OB_REVIEW_KEY"\n'
                       f'[[shops]]\nname = "w"\nplatform = "woocommerce"\nurl = "{woo.url}"\n'
                       'consumer_key_env = "OB_REVIEW_CK"\nconsumer_secret_env = "OB_REVIEW_CS"\n')
        rc = main(["--config", str(cfg), "daemon", "--once"])
    out = capsys.readouterr().out
    assert rc == 0                                   # nothing was due: the target was not needed
    assert "polled 0 shops; poll failed for w (" in out and "refused the REST API key" in out
    assert "cs_wrong" not in out
