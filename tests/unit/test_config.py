"""Config: defaults, durations, shops, secrets from the environment, clear errors."""
from __future__ import annotations

import pytest

from connector.config import from_dict, load_config, parse_duration
from connector.errors import ConfigError


def test_defaults_need_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    c = load_config(None)
    assert c.database == "sqlite:///var/connector.db"
    assert c.target.url.endswith("/api/v1") and c.target.batch_size == 1000
    assert c.daemon.flush_every == 10 and c.shops == ()


@pytest.mark.parametrize("text,seconds", [("500ms", 0.5), ("10s", 10), ("15m", 900), ("2h", 7200), ("14d", 14 * 86400), (3, 3)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_bad_duration_names_the_key():
    with pytest.raises(ConfigError, match=r"\[daemon\] flush_every: '10 parsecs'"):
        from_dict({"daemon": {"flush_every": "10 parsecs"}})


def test_shop_secrets_come_from_the_environment(monkeypatch):
    c = from_dict({"shops": [{"name": "main", "platform": "shopify", "domain": "x.myshopify.com",
                              "access_token_env": "T_ENV", "webhook_secret_env": "W_ENV", "order_id_prefix": "s1-"}]})
    monkeypatch.setenv("T_ENV", "tok")
    monkeypatch.setenv("W_ENV", "sec")
    shop = c.shop("main")
    assert (shop.secret_of("access_token"), shop.webhook_secret, shop.get("domain")) == ("tok", "sec", "x.myshopify.com")
    assert shop.order_id_prefix == "s1-"


def test_unknown_shop_and_bad_platform_are_named():
    with pytest.raises(ConfigError, match="no shop named 'nope'"):
        from_dict({}).shop("nope")
    with pytest.raises(ConfigError, match="platform must be one of"):
        from_dict({"shops": [{"name": "a", "platform": "magento"}]})


def test_invalid_toml_is_a_config_error(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[target\nurl=1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(p)


def test_backend_keys_split_on_commas(monkeypatch):
    monkeypatch.setenv("KEYS", " a, b ,,c")
    assert from_dict({"backend": {"api_keys_env": "KEYS"}}).backend.api_keys == ["a", "b", "c"]


def test_the_documented_example_loads():
    from pathlib import Path
    c = load_config(Path(__file__).parents[2] / "config.example.toml")
    assert c.daemon.retry_schedule[0] == 30 and c.daemon.retry_schedule[-1] == 86400
    assert c.backend.max_body == 32 * 1024 * 1024 and c.target.timeout == 60
