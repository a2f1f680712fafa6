"""The cost-aware pacer, on an in-memory clock: waits just long enough, never a fixed sleep."""
from __future__ import annotations

import pytest

from adapters.shopify.pacer import Pacer
from adapters.shopify.poller import order_node_cost, page_size


class Clock:
    def __init__(self):
        self.now, self.slept = 0.0, []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def cost(available, maximum=1000, rate=100):
    return {"requestedQueryCost": 500, "actualQueryCost": 300,
            "throttleStatus": {"maximumAvailable": maximum, "currentlyAvailable": available, "restoreRate": rate}}


@pytest.fixture
def clock():
    return Clock()


def test_no_wait_before_the_first_answer(clock):
    p = Pacer(clock, clock.sleep, margin=0)
    p.before(900)
    assert clock.slept == []


def test_waits_exactly_for_the_missing_points(clock):
    p = Pacer(clock, clock.sleep, margin=0)
    p.observe(cost(available=400))
    p.before(900)                         # 500 missing at 100/s
    assert clock.slept == [pytest.approx(5.0)]


def test_time_already_passed_counts(clock):
    p = Pacer(clock, clock.sleep, margin=0)
    p.observe(cost(available=400))
    clock.now += 3                        # 300 points restored meanwhile
    p.before(900)
    assert clock.slept == [pytest.approx(2.0)]


def test_a_request_larger_than_the_bucket_waits_for_a_full_bucket_only(clock):
    p = Pacer(clock, clock.sleep, margin=0)
    p.observe(cost(available=0, maximum=50, rate=10))
    p.before(900)
    assert clock.slept == [pytest.approx(5.0)]


def test_throttled_answer_waits_for_the_requested_cost(clock):
    p = Pacer(clock, clock.sleep, margin=0)
    delay = p.on_throttled(cost(available=100), requested=600)
    assert delay == pytest.approx(5.0) and p.throttled == 1


def test_throttled_without_cost_information_still_pauses(clock):
    assert Pacer(clock, clock.sleep).on_throttled(None, requested=600) == 1.0


def test_page_size_fits_the_single_query_limit():
    assert page_size(1) == 250
    # Shopify counts every object, and each money set is three (MoneyBag, shopMoney, presentmentMoney):
    # 16 for the order itself, 37 for 5 shipping lines, 2 + 10 per line item (review 2; it was 43 here,
    # and the first page of 23 orders was refused as costing 3568)
    per_order = order_node_cost(10)
    assert per_order == 155
    assert page_size(per_order) == 6 and 3 + 6 * per_order <= 1000
    assert page_size(per_order, budget=50) == 1
