"""`orderbridge backfill` on a shop that cannot use the Admin API says what to add to the config, in its words
(it used to say "the environment variable <unset> holding the token")."""
from daemon.cli import main


def backfill(tmp_path, capsys, shop_lines: str) -> str:
    cfg = tmp_path / "orderbridge.toml"
    cfg.write_text(f'[connector]\ndatabase = "sqlite:///{tmp_path}/c.db"\n'
                   f'[[shops]]\nname = "main"\nplatform = "shopify"\n{shop_lines}')
    assert main(["--config", str(cfg), "backfill", "main"]) == 2
    return capsys.readouterr().err


def test_a_shop_with_neither_domain_nor_token_variable_names_both(tmp_path, capsys):
    err = backfill(tmp_path, capsys, "")
    assert 'add domain = "<shop>.myshopify.com" and access_token_env = ' in err and "<unset>" not in err


def test_a_named_variable_that_is_unset_is_named(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("OB_TEST_SHOPIFY_TOKEN", raising=False)
    err = backfill(tmp_path, capsys, 'domain = "x.myshopify.com"\naccess_token_env = "OB_TEST_SHOPIFY_TOKEN"\n')
    assert "set the environment variable OB_TEST_SHOPIFY_TOKEN to the access token" in err
    assert "add " not in err
