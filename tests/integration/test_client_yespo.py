"""The add-orders client's outcome table against Yespo's documented response shapes (faked with responses)."""
from __future__ import annotations

import json

import pytest
import requests
import responses

from connector.client import (CREDENTIALS_REFUSED, Action, AddOrdersClient, BatchRejected, CredentialsRefused, FailedOrder,
                              RetryPolicy, action_for, parse_failed_orders, retry_after_seconds)
from connector.errors import RetriableAPIError

BASE = "https://yespo.example/api/v1"
FAST = RetryPolicy(attempts=3, max_wait=0.01, max_total=5)


@pytest.fixture
def docs_order(fixtures_dir) -> dict:
    return json.loads((fixtures_dir / "yespo" / "add-orders.request.docs-example.json").read_text())["orders"][0]


def client(**kw) -> AddOrdersClient:
    return AddOrdersClient(BASE, "secret-key", retry=kw.pop("retry", FAST), **kw)


def failed_entry(order: dict, error: str = "phone: wrong format") -> dict:
    # FailedOrder in the OpenAPI spec: {"order": Order, "error": string}, both required.
    return {"order": order, "error": error}


@pytest.mark.parametrize("body, expected", [
    ("", 0),                                      # full success may come back empty (L-OSS)
    ("{}", 0),                                    # or without failedOrders (the Shopify app's reading)
    ('{"failedOrders": []}', 0),
    ("OK", 0),                                    # plain text, as legacy endpoints answered
])
@responses.activate
def test_success_shapes_mean_no_failures(docs_order, body, expected):
    responses.post(f"{BASE}/orders", body=body, status=200)
    result = client().add_orders([docs_order])
    assert len(result.failed) == expected


@responses.activate
def test_failed_orders_as_list_and_as_single_object(docs_order):
    other = {**docs_order, "externalOrderId": "100501"}
    responses.post(f"{BASE}/orders", json={"failedOrders": [failed_entry(docs_order), failed_entry(other, "date: bad")]})
    responses.post(f"{BASE}/orders", json={"failedOrders": failed_entry(other, "date: bad")})   # one failure: an object
    c = client()
    assert c.add_orders([docs_order, other]).failed_by_id() == {"100500": "phone: wrong format", "100501": "date: bad"}
    assert c.add_orders([docs_order, other]).failed_by_id() == {"100501": "date: bad"}


@responses.activate
def test_basic_auth_carries_the_key_as_password_and_the_body_is_the_batch(docs_order):
    responses.post(f"{BASE}/orders", json={"failedOrders": []})
    client().add_orders([docs_order])
    req = responses.calls[0].request
    user, _, password = __import__("base64").b64decode(req.headers["Authorization"].split()[1]).decode().partition(":")
    assert password == "secret-key"
    assert json.loads(req.body) == {"orders": [docs_order]}


@pytest.mark.parametrize("status, body", [(409, "Conflict"), (400, '{"message": "Duplicated request"}')])
@responses.activate
def test_conflict_or_duplicated_request_is_already_applied(docs_order, status, body):
    responses.post(f"{BASE}/orders", body=body, status=status)
    assert client().add_orders([docs_order]).already_applied


@pytest.mark.parametrize("status", [401, 403])
@responses.activate
def test_refused_credentials_stop_without_retrying(docs_order, status):
    responses.post(f"{BASE}/orders", body="Unauthorized", status=status)
    with pytest.raises(CredentialsRefused) as e:
        client().add_orders([docs_order])
    assert str(e.value) == CREDENTIALS_REFUSED
    assert "secret-key" not in str(e.value)
    assert len(responses.calls) == 1


@responses.activate
def test_bad_request_is_a_rejected_batch_with_the_response_text(docs_order):
    responses.post(f"{BASE}/orders", body="orders[0].date: not a date", status=400)
    with pytest.raises(BatchRejected) as e:
        client().add_orders([docs_order])
    assert e.value.status == 400 and "not a date" in e.value.body
    assert len(responses.calls) == 1       # a 400 is never retried as it is


@responses.activate
def test_503_burst_is_retried_in_place_then_succeeds(docs_order):
    for _ in range(2):
        responses.post(f"{BASE}/orders", body="busy", status=503)
    responses.post(f"{BASE}/orders", body="")
    seen = []
    c = client(on_attempt=seen.append)
    assert c.add_orders([docs_order]).failed == []
    assert [a.status_code for a in seen] == [503, 503, 200]


@responses.activate
def test_long_retry_after_goes_back_to_the_outbox(docs_order):
    responses.post(f"{BASE}/orders", body="slow down", status=429, headers={"Retry-After": "120"})
    with pytest.raises(RetriableAPIError) as e:
        client().add_orders([docs_order])
    assert e.value.retry_after == 120 and e.value.status == 429
    assert len(responses.calls) == 1       # not slept on: the outbox schedule takes it from here


@responses.activate
def test_connection_refused_is_retriable_and_bounded(docs_order):
    responses.post(f"{BASE}/orders", body=requests.ConnectionError("refused"))
    with pytest.raises(RetriableAPIError):
        client().add_orders([docs_order])
    assert len(responses.calls) == FAST.attempts


@responses.activate
def test_account_info_checks_credentials():
    responses.get(f"{BASE}/account/info", json={"userEmail": "a@b.c", "organisationName": "Shop"})
    assert client().account_info()["organisationName"] == "Shop"
    responses.replace(responses.GET, f"{BASE}/account/info", status=401)
    with pytest.raises(CredentialsRefused):
        client().account_info()


def test_outcome_table():
    assert action_for(200) is Action.ACCEPTED
    assert action_for(204) is Action.ACCEPTED
    assert action_for(409) is Action.ALREADY_APPLIED
    assert action_for(429) is Action.RETRY
    assert action_for(500) is Action.RETRY and action_for(503) is Action.RETRY
    assert action_for(401) is Action.STOP and action_for(403) is Action.STOP and action_for(415) is Action.STOP
    assert action_for(400) is Action.SPLIT and action_for(413) is Action.SPLIT
    assert action_for(None, exc=requests.ConnectionError()) is Action.RETRY
    assert action_for(None, exc=requests.ReadTimeout()) is Action.RETRY


def test_failed_orders_parsing_edge_cases():
    assert parse_failed_orders("   ") == []
    assert parse_failed_orders('{"failedOrders": null}') == []
    one = parse_failed_orders('{"failedOrders": {"order": {"externalOrderId": 7}, "error": "x"}}')
    assert one[0].external_order_id == "7" and one[0].error == "x"
    assert parse_failed_orders('{"failedOrders": "currency is required"}') == [FailedOrder(None, "currency is required")]


def test_retry_after_header_forms():
    assert retry_after_seconds("3") == 3
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470) == 10
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("100000000000000") == 7 * 86400          # honoured as a week, not a crash
    assert retry_after_seconds("Fri, 31 Dec 9999 23:59:59 GMT", now=0) == 7 * 86400
    assert retry_after_seconds("inf") is None and retry_after_seconds("1e5") is None   # not delta-seconds
