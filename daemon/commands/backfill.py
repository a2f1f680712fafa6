"""`orderbridge backfill SHOP [--since DATE]`: pull a shop's order history into the outbox, resumable."""
from __future__ import annotations

HELP = "pull a shop's order history into the outbox (resumable: run it again after an interruption)"

# An explicit registry: platform → module exposing run(engine, shop, since=..., progress=...).
BACKFILLS = {
    "shopify": "adapters.shopify.backfill",
    "woocommerce": "adapters.woocommerce.backfill",
}


def add_arguments(parser) -> None:
    parser.add_argument("shop", help="the shop's name in the config")
    parser.add_argument("--since", metavar="DATE", help="only orders updated on or after this date (YYYY-MM-DD or ISO 8601)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def parse_since(text: str | None):
    from datetime import date, datetime

    from connector.errors import InvalidInput
    if not text:
        return None
    try:
        return date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"--since {text!r}: expected a date such as 2024-01-31 or 2024-01-31T00:00:00+00:00") from None


def run(args, config) -> int:
    import importlib

    from connector.errors import ConfigError
    from connector.store import init_db, make_engine

    shop = config.shop(args.shop)
    module = BACKFILLS.get(shop.platform)
    if module is None:
        raise ConfigError(f"shop {shop.name!r} has platform {shop.platform!r}, which has no backfill "
                          "(CSV shops: use import-csv)")
    backfill = importlib.import_module(module)
    engine = make_engine(config.database)
    init_db(engine)
    n = backfill.run(engine, shop, since=parse_since(args.since), progress=not args.quiet)
    print(f"backfill {shop.name}: {n} order versions enqueued; `orderbridge push` (or the daemon) sends them")
    return 0
