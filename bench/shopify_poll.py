"""Shopify polling throughput against the fake shop's cost bucket (1,000 points, 100 points/s).

The floor is the bucket itself: orders can come no faster than the points they cost, i.e. at most
(bucket + restore rate × T) / cost per order in T seconds. The run prints orders/s achieved, that
theoretical maximum for the same duration, their ratio, and how many requests were THROTTLED
(each one waited out and re-sent: none is lost). Prints figures; passes or fails nothing.

    python bench/shopify_poll.py [--orders 300] [--bucket 1000] [--rate 100]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.shopify.client import ShopifyClient  # noqa: E402
from adapters.shopify.poller import poll  # noqa: E402
from connector.config import from_dict  # noqa: E402
from connector.store import init_db, make_engine  # noqa: E402
from tests.fakes.fake_shopify import TOKEN, FakeShopify, generated_orders, node_cost  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=300)
    ap.add_argument("--bucket", type=float, default=1000)
    ap.add_argument("--rate", type=float, default=100)
    ap.add_argument("--line-items-per-order", type=int, default=10, help="the shop option of that name (default 10)")
    args = ap.parse_args()

    orders = generated_orders(args.orders)            # 1, 2 or 3 line items each
    per_order = sum(node_cost(n) for n in orders) / len(orders)
    os.environ["BENCH_SHOP_TOKEN"] = TOKEN
    db = Path(tempfile.mkdtemp(prefix="ob-bench-poll-")) / "connector.db"
    engine = make_engine(f"sqlite:///{db}")
    init_db(engine)
    with FakeShopify(orders, bucket_size=args.bucket, restore_rate=args.rate) as fake:
        shop = from_dict({"shops": [{"name": "bench", "platform": "shopify", "domain": "bench.myshopify.com",
                                     "api_url": fake.url, "access_token_env": "BENCH_SHOP_TOKEN", "poll_lookback": "3650d",
                                     "enrich_products": False, "poll_checkouts": False,
                                     "line_items_per_order": args.line_items_per_order}]}).shop("bench")
        client = ShopifyClient.for_shop(shop)
        t0 = time.perf_counter()
        n = poll(engine, shop, now=datetime(2027, 1, 1, tzinfo=timezone.utc), client=client)
        elapsed = time.perf_counter() - t0
        stats = dict(fake.stats)
    achieved = n / elapsed
    sustained = args.rate / per_order
    best = (args.bucket + args.rate * elapsed) / per_order / elapsed
    print(f"bucket {args.bucket:.0f} points restoring {args.rate:.0f}/s; {args.orders} orders costing {per_order:.1f} points "
          f"each on average; line_items_per_order={args.line_items_per_order}")
    print(f"enqueued {n} orders in {elapsed:.1f}s with {stats['served']} served requests, "
          f"{stats['throttled']} THROTTLED (each re-sent; pacer waited {client.pacer.waited:.1f}s in all)")
    print(f"theoretical maximum: {sustained:.2f} orders/s sustained; {best:.2f} orders/s over {elapsed:.1f}s "
          f"counting the full bucket at the start")
    print(f"RESULT {achieved:.2f} orders/s = {achieved / best:.0%} of the maximum for this run "
          f"({achieved / sustained:.0%} of the sustained rate); lost: {args.orders - n}")


if __name__ == "__main__":
    main()
