"""Property: any order the schema accepts round-trips through the backend (POST, then GET /orders/<id>) unchanged."""
from __future__ import annotations

from urllib.parse import quote

import base64
from datetime import timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend import create_app
from connector.format import InvalidOrder, order_to_wire, parse_order

KEY = "k"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"u:{KEY}".encode()).decode()}

ids = st.one_of(st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=20)
                .filter(lambda s: s.strip() and s.strip() not in (".", "..")), st.integers(0, 10**12))
amounts = st.decimals(0, 10**7, places=4)
money = st.one_of(amounts.map(str), amounts.map(lambda d: float(round(d, 2))), st.integers(0, 10**7))
offsets = st.sampled_from([timezone.utc, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))])
dates = st.one_of(st.datetimes(timezones=offsets).map(lambda d: d.isoformat()),
                  st.datetimes().map(lambda d: d.isoformat()))        # no offset: read as UTC
text = st.text(max_size=30)
item = st.fixed_dictionaries({"externalItemId": ids, "quantity": st.one_of(st.integers(1, 50), st.just("1.5"))},
                             optional={"name": text, "cost": money, "category": text, "url": text, "imageUrl": text,
                                       "description": text})
orders = st.fixed_dictionaries(
    {"externalOrderId": ids, "totalCost": money, "currency": st.sampled_from(["USD", "eur", "JPY", "KWD", "UAH"]),
     "status": st.sampled_from(["INITIALIZED", "in_progress", "DELIVERED", "CANCELLED", "ABANDONED_SHOPPING_CART"]),
     "date": dates, "email": st.emails()},
    optional={"externalCustomerId": ids, "phone": st.sampled_from(["+38 (050) 123-45-67", "380942583691", "12"]),
              "firstName": text, "lastName": text, "shipping": money, "discount": money, "taxes": money,
              "restoreUrl": text, "statusDescription": text, "storeId": ids, "source": text, "deliveryMethod": text,
              "paymentMethod": text, "deliveryAddress": text,
              "additionalInfo": st.dictionaries(st.text(max_size=8), st.one_of(text, st.integers(), st.booleans()), max_size=3),
              "items": st.lists(item, max_size=3)})


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    db = tmp_path_factory.mktemp("roundtrip") / "backend.db"
    app = create_app(test_config={"DATABASE_URL": f"sqlite:///{db}", "API_KEYS": [KEY], "RATE_LIMIT": 0})
    yield app.test_client()
    app.extensions["orderbridge.engine"].dispose()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(orders)
def test_any_accepted_order_reads_back_as_its_strict_wire_form(client, raw):
    try:
        expected = order_to_wire(parse_order(raw, naive_dates_as_utc=True))
    except InvalidOrder:
        return      # not an order the schema accepts (e.g. an email the schema finds odd)
    r = client.post("/api/v1/orders", json={"orders": [raw]}, headers=AUTH)
    assert r.status_code == 200 and r.get_json() == {"failedOrders": []}
    got = client.get(f"/api/v1/orders/{quote(expected['externalOrderId'], safe='')}", headers=AUTH)
    assert got.status_code == 200 and got.get_json() == expected
