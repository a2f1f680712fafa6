"""The web UI in a real headless Chromium against `orderbridge up` started as a process.

Logs in, finds an order by its id, opens its JSON, opens its contact, sees the RFM grid,
requeues a failed order on the connector page, and checks that markup sent in every free-text
order field shows as text and never runs. A screenshot of each page goes to tests/artifacts/.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
from sqlalchemy.orm import Session

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "",
                             shutil.which("chromium-browser") or "") if p and os.path.exists(p)), None)
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
KEY, PASSWORD = "browser-test-key", "operator-password"
XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'
ORDERBRIDGE = Path(sys.executable).with_name("orderbridge")


def order(oid: str, email: str, status: str, total: float, days_ago: int, **extra) -> dict:
    when = datetime.now(timezone.utc) - timedelta(days=days_ago)
    return {"externalOrderId": oid, "email": email, "status": status, "totalCost": total, "currency": "USD",
            "date": when.isoformat(timespec="seconds"), **extra}


def xss_order() -> dict:
    fields = ("firstName", "lastName", "statusDescription", "storeId", "source", "deliveryMethod",
              "paymentMethod", "deliveryAddress")
    return order("xss-1" + XSS, "xss@example.com", "DELIVERED", 9.5, 2, externalCustomerId="cust" + XSS,
                 restoreUrl="https://shop.example/" + XSS, additionalInfo={"note": XSS},
                 items=[{"externalItemId": "sku" + XSS, "quantity": 1, "cost": 9.5, "name": XSS,
                         "category": XSS, "description": XSS, "url": "https://shop.example/" + XSS}],
                 **{f: XSS for f in fields})


def seed_failed_order(workdir: Path) -> None:
    """A failed row in the connector store of `up` (./var/connector.db), as a bad webhook leaves one."""
    from connector.outbox import enqueue_failed
    from connector.store import init_db, make_engine
    engine = make_engine(f"sqlite:///{workdir}/var/connector.db")
    init_db(engine)
    with Session(engine) as s:
        enqueue_failed(s, "main", "5001", {"externalOrderId": "5001"}, "order 5001: no email, phone or customer id")
        s.commit()
    engine.dispose()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if CHROMIUM is None:
        pytest.skip("no Chromium found at /usr/bin/chromium or on PATH (Debian: apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    workdir = tmp_path_factory.mktemp("up")
    (workdir / "orderbridge.toml").write_text(
        '[backend]\nui_password_env = "OB_TEST_UI_PASSWORD"\n\n'
        '[[shops]]\nname = "main"\nplatform = "csv"\n')
    seed_failed_order(workdir)
    env = {**os.environ, "ORDERBRIDGE_API_KEY": KEY, "OB_TEST_UI_PASSWORD": PASSWORD}
    log = open(workdir / "up.log", "w+")
    proc = subprocess.Popen([str(ORDERBRIDGE), "--config", "orderbridge.toml", "up", "--port", "0"],
                            cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = wait_for_banner(workdir / "up.log", proc)
        post_orders(base)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def wait_for_banner(path: Path, proc, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(r"orderbridge is up on (http://[\d.]+:\d+)", path.read_text())
        if m:
            return m.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    pytest.fail(f"orderbridge up did not start:\n{path.read_text()[-3000:]}")


def post_orders(base: str) -> None:
    orders = [order("1001", "ann@example.com", "DELIVERED", 40, 3, firstName="Ann", lastName="Lee",
                    items=[{"externalItemId": "tea", "quantity": 2, "cost": 20, "name": "Green tea"}]),
              order("1002", "ann@example.com", "DELIVERED", 25, 1),
              order("1003", "bob@example.com", "CANCELLED", 30, 5),
              order("1004", "old@example.com", "DELIVERED", 80, 200),
              xss_order()]
    r = requests.post(f"{base}/api/v1/orders", json={"orders": orders}, auth=("any", KEY), timeout=10)
    assert r.status_code == 200 and r.json() == {"failedOrders": []}, r.text


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        pg = browser.new_page(viewport={"width": 1400, "height": 900})
        dialogs: list[str] = []
        pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        pg.dialogs = dialogs
        yield pg
        browser.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"browser_{name}.png"), full_page=True)


def no_script_ran(page) -> None:
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.dialogs == []


def test_1_login(server, page):
    page.goto(f"{server}/")
    assert "/ui/login" in page.url
    shot(page, "login")
    page.fill("#password", "wrong")
    page.click("#login")
    assert page.locator("p.error").inner_text() == "That password or API key is not valid."
    page.fill("#password", PASSWORD)
    page.click("#login")
    page.wait_for_url("**/ui/orders")
    assert page.locator("nav.top").is_visible()


def test_2_find_an_order_and_open_its_json(server, page):
    page.goto(f"{server}/ui/orders")
    shot(page, "orders")
    page.fill("#q", "1001")
    page.click("#search")
    rows = page.locator("#orders tbody tr")
    assert rows.count() == 1
    row = rows.first
    assert "DELIVERED" in row.inner_text() and "40.00" in row.inner_text()
    row.locator("details.json summary").click()
    json_text = row.locator("details.json pre").inner_text()
    assert '"externalOrderId": "1001"' in json_text and '"name": "Green tea"' in json_text
    shot(page, "order_json")


def test_3_open_the_contact(server, page):
    page.goto(f"{server}/ui/orders?q=1001")
    page.locator("#orders details.preview summary").click()
    card = page.locator("#orders details.preview .card")
    assert "ann@example.com" in card.inner_text()
    card.locator("a.open-contact").click()
    page.wait_for_url(re.compile(r".*/ui/contacts/\d+$"))
    assert "ann@example.com" in page.locator("#identifiers").inner_text()
    assert page.locator("#contact-orders tbody tr").count() == 2
    assert "2 delivered order(s)" in page.locator("#rfm-cell").inner_text()
    shot(page, "contact")


def test_4_rfm_grid(server, page):
    page.goto(f"{server}/ui/reports")
    grid = page.locator("#rfm-grid")
    assert grid.is_visible()
    assert page.locator("#rfm-grid td[data-cell]").count() == 24
    loyal = page.locator('#rfm-grid td[data-cell="<2w|2"]')
    assert "1" in loyal.locator(".n").inner_text() and "rfm-green" in loyal.get_attribute("class")
    at_risk = page.locator('#rfm-grid td[data-cell="6m-12m|1"]')
    assert at_risk.locator(".n").inner_text() == "1" and "rfm-red" in at_risk.get_attribute("class")
    assert "rfm-grey" in page.locator('#rfm-grid td[data-cell=">12m|5+"]').get_attribute("class")
    shot(page, "reports")
    loyal.locator("a").click()
    assert "ann@example.com" in page.locator("#contacts").inner_text()
    shot(page, "rfm_cell_contacts")


def test_5_requeue_a_failed_order(server, page):
    page.goto(f"{server}/ui/connector/")
    row = page.locator('#failed tr[data-order="5001"]')
    assert "no email, phone or customer id" in row.inner_text()
    shot(page, "connector")
    row.locator("input[type=checkbox]").check()
    page.click("#requeue-selected")
    assert "1 order version(s) requeued." in page.locator(".flash").inner_text()
    shot(page, "connector_requeued")


def test_6_markup_in_order_fields_shows_as_text(server, page):
    page.goto(f"{server}/ui/orders?q=" + requests.utils.quote("xss-1" + XSS))
    row = page.locator("#orders tbody tr").first
    assert "xss-1<script>window.__xss=1</script>" in row.inner_text()
    row.locator("details.json summary").click()
    assert '"statusDescription": "<script>window.__xss=1</script>' in row.locator("details.json pre").inner_text()
    no_script_ran(page)
    row.locator("a").first.click()
    assert "<script>window.__xss=1</script>" in page.locator("#order-json").inner_text()
    no_script_ran(page)
    shot(page, "order_xss")
    page.goto(f"{server}/ui/orders")
    page.locator("#orders details.preview summary").first.click()
    no_script_ran(page)
    for path, name in (("/ui/events", "events"), ("/ui/contacts", "contacts"), ("/ui/workflows", "workflows"),
                       ("/ui/messages", "messages")):
        page.goto(f"{server}{path}")
        no_script_ran(page)
        shot(page, name)
