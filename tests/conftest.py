"""Shared test fixtures: paths to the copied platform payloads and the optional PostgreSQL URL."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
PG_URL_ENV = "ORDERBRIDGE_TEST_DATABASE_URL"


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


def load_fixture(rel: str) -> bytes:
    return (FIXTURES / rel).read_bytes()


@pytest.fixture
def pg_url():
    """A PostgreSQL URL with a fresh schema for this test; skips when none is configured."""
    url = os.environ.get(PG_URL_ENV)
    if not url:
        pytest.skip(f"PostgreSQL tests need {PG_URL_ENV} (e.g. postgresql://postgres@127.0.0.1:5432/test)")
    import sqlalchemy as sa
    schema = "t_" + uuid.uuid4().hex[:10]
    base = url.replace("postgresql://", "postgresql+psycopg://", 1) if url.startswith("postgresql://") else url
    eng = sa.create_engine(base)
    with eng.begin() as c:
        c.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    yield f"{base}{sep}options=-csearch_path%3D{schema}"
    with eng.begin() as c:
        c.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    eng.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    """Each storage test runs on SQLite and, when configured, on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/test.db"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def engine(db_url):
    """The connector store (inbox, outbox, cursors) on SQLite and, when configured, PostgreSQL."""
    from connector.store import init_db, make_engine
    e = make_engine(db_url)
    init_db(e)
    yield e
    e.dispose()


@pytest.fixture
def make_shop(monkeypatch):
    """make(fake, **options): Shopify shop `main` of the config, polling the fake Shopify `fake` (its token in
    SHOP_TOKEN), looking back far enough for any fixture, no product look-ups unless asked."""
    from connector.config import from_dict
    from tests.fakes.fake_shopify import TOKEN
    monkeypatch.setenv("SHOP_TOKEN", TOKEN)

    def make(fake, **options):
        raw = {"name": "main", "platform": "shopify", "domain": "fake.myshopify.com", "api_url": fake.url,
               "access_token_env": "SHOP_TOKEN", "poll_lookback": "9000d", "enrich_products": False, **options}
        return from_dict({"shops": [raw]}).shop(raw["name"])
    return make


def outbox_rows(engine) -> list:
    """Every outbox row, oldest first."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from connector.store import OutboxRow
    with Session(engine) as s:
        return list(s.scalars(select(OutboxRow).order_by(OutboxRow.id)))


@pytest.fixture
def woo_keys(monkeypatch):
    """The fake WooCommerce's REST keys in the variables `tests.fakes.fake_woocommerce.woo_shop` names."""
    from tests.fakes.fake_woocommerce import KEY, SECRET
    monkeypatch.setenv("WOO_CK", KEY)
    monkeypatch.setenv("WOO_CS", SECRET)


@pytest.fixture
def import_csv_cli(tmp_path, capsys):
    """`orderbridge import-csv ARGS` through the real CLI, into a fresh SQLite outbox; returns (exit code,
    stdout, stderr). Shops: `legacy` (platform csv) and `main` (shopify, order_id_prefix `s1-`)."""
    from daemon.cli import main
    cfg = tmp_path / "orderbridge.toml"
    cfg.write_text(f'[connector]\ndatabase = "sqlite:///{tmp_path}/c.db"\n\n'
                   '[[shops]]\nname = "legacy"\nplatform = "csv"\n\n'
                   '[[shops]]\nname = "main"\nplatform = "shopify"\norder_id_prefix = "s1-"\n')

    def run(*args):
        code = main(["--config", str(cfg), "import-csv", *map(str, args)])
        out, err = capsys.readouterr()
        return code, out, err
    return run


def wait_until(condition, timeout: float = 30.0, step: float = 0.02) -> bool:
    """Wait for `condition()` to hold, up to `timeout` seconds (a loaded machine may be slow; tests assert
    that it happened, never how fast); returns its last value."""
    import time
    end = time.monotonic() + timeout
    while not condition() and time.monotonic() < end:
        time.sleep(step)
    return condition()
