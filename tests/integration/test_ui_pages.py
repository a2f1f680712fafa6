"""The web UI through the Flask test client: login, CSRF, every page, escaping, pagination."""
from __future__ import annotations

import base64
import re
import stat
from datetime import datetime, timezone

import pytest
from backend import create_app
from backend.db import get_engine
from backend.workflows import storage as wf
from connector.config import from_dict

KEY = "ui-test-key"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"u:{KEY}".encode()).decode()}
XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'
NOW = datetime(2026, 11, 20, 10, tzinfo=timezone.utc)


def xss_order(oid: str) -> dict:
    """An order whose every free-text field carries markup."""
    return {
        "externalOrderId": oid, "externalCustomerId": "cust" + XSS, "email": "xss@example.com",
        "firstName": XSS, "lastName": XSS, "totalCost": 12.5, "status": "DELIVERED",
        "date": NOW.isoformat(), "currency": "USD", "statusDescription": XSS, "storeId": XSS, "source": XSS,
        "deliveryMethod": XSS, "paymentMethod": XSS, "deliveryAddress": XSS, "restoreUrl": "https://x.example/" + XSS,
        "additionalInfo": {"note": XSS},
        "items": [{"externalItemId": "sku" + XSS, "quantity": 1, "cost": 12.5, "name": XSS, "category": XSS,
                   "url": "https://x.example/" + XSS, "imageUrl": "https://x.example/i.png", "description": XSS}],
    }


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setenv("UI_TEST_PASSWORD", "operator-pw")
    config = from_dict({"backend": {"database": f"sqlite:///{tmp_path}/var/backend.db",
                                    "ui_password_env": "UI_TEST_PASSWORD"}})
    app = create_app(config, test_config={"API_KEYS": [KEY], "RATE_LIMIT": 0})
    return app


@pytest.fixture
def client(app):
    return app.test_client()


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def log_in(client, password=KEY):
    token = csrf_of(client.get("/ui/login").text)
    return client.post("/ui/login", data={"password": password, "csrf_token": token, "next": "/ui/reports"})


@pytest.fixture
def logged_in(client):
    assert log_in(client).status_code == 302
    return client


def post_orders(client, orders):
    r = client.post("/api/v1/orders", json={"orders": orders}, headers=AUTH)
    assert r.status_code == 200 and r.json == {"failedOrders": []}, r.json


def test_pages_need_a_login(client):
    r = client.get("/ui/orders?q=1")
    assert r.status_code == 302 and r.headers["Location"].startswith("/ui/login?next=/ui/orders")


def test_login_with_api_key_or_operator_password(client):
    r = log_in(client)
    assert r.status_code == 302 and r.headers["Location"] == "/ui/reports"
    client.post("/ui/logout", data={"csrf_token": csrf_of(client.get("/ui/orders").text)})
    assert client.get("/ui/orders").status_code == 302
    assert log_in(client, "operator-pw").status_code == 302
    assert client.get("/ui/orders").status_code == 200


def test_a_session_ends_when_its_api_key_is_rotated_out(app, client):
    assert log_in(client).status_code == 302
    app.config["API_KEYS"] = [KEY, "next-key"]                  # a second key added: the session stays
    assert client.get("/ui/orders").status_code == 200
    app.config["API_KEYS"] = ["next-key"]                       # its own key removed: the session ends
    r = client.get("/ui/orders")
    assert r.status_code == 302 and r.headers["Location"].startswith("/ui/login")
    app.config["API_KEYS"] = [KEY]                              # and stays ended if the key comes back
    assert client.get("/ui/orders").status_code == 302
    assert log_in(client, "next-key").status_code == 401


def test_a_session_ends_when_the_operator_password_changes(client, monkeypatch):
    assert log_in(client, "operator-pw").status_code == 302
    assert client.get("/ui/orders").status_code == 200
    monkeypatch.setenv("UI_TEST_PASSWORD", "new-operator-pw")
    assert client.get("/ui/orders").status_code == 302
    assert log_in(client, "new-operator-pw").status_code == 302
    assert client.get("/ui/orders").status_code == 200


def test_the_session_cookie_holds_no_credential(app, client):
    log_in(client, "operator-pw")
    cookie = client.get_cookie(app.config.get("SESSION_COOKIE_NAME", "session")).value
    data = app.session_interface.get_signing_serializer(app).loads(cookie)
    assert data["user"] == "operator" and len(data["cred"]) == 64
    assert "operator-pw" not in repr(data) and KEY not in repr(data)


def test_a_session_from_before_sessions_named_their_credential_ends(app, client):
    with client.session_transaction() as sess:          # a cookie signed by an earlier release
        sess["user"], sess["csrf"] = "operator", "t"
    r = client.get("/ui/orders")
    assert r.status_code == 302 and r.headers["Location"].startswith("/ui/login")


def test_wrong_password_is_refused(client):
    r = log_in(client, "guess")
    assert r.status_code == 401 and "not valid" in r.text
    assert client.get("/ui/orders").status_code == 302


def test_forms_without_the_csrf_token_are_refused(client):
    r = client.post("/ui/login", data={"password": KEY})
    assert r.status_code == 400 and "reload the page" in r.text
    log_in(client)
    assert client.post("/ui/logout", data={"csrf_token": "forged"}).status_code == 400
    assert client.get("/ui/orders").status_code == 200          # still logged in


def test_login_never_redirects_off_site(client):
    token = csrf_of(client.get("/ui/login").text)
    r = client.post("/ui/login", data={"password": KEY, "csrf_token": token, "next": "//evil.example/"})
    assert r.headers["Location"] == "/ui/orders"


def test_secret_key_is_generated_under_var(app, tmp_path):
    key_file = tmp_path / "var" / "ui-secret.key"
    assert key_file.exists() and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert app.secret_key == key_file.read_text().strip().encode()


def test_every_free_text_field_renders_as_text(app, logged_in):
    post_orders(logged_in, [xss_order("X1" + XSS)])
    with app.app_context(), get_engine().begin() as conn:
        conn.execute(wf.definitions.insert(), [dict(id=1, name=XSS, start_event="orderDELIVERED",
                                                    definition='{"name": "x"}', created_at=NOW, updated_at=NOW)])
        conn.execute(wf.runs.insert(), [dict(id=1, workflow_id=1, event_id=1, key="X1" + XSS, contact_id=1,
                                             state="error", context="{}", error=XSS, started_at=NOW)])
        conn.execute(wf.messages.insert(), [dict(workflow_id=1, run_id=1, step_row_id=1, contact_id=1,
                                                 channel="store", to_address=XSS, subject=XSS, body="<p>Hi</p>" + XSS,
                                                 status="stored", created_at=NOW)])
    pages = ["/ui/orders", "/ui/orders/1", "/ui/events", "/ui/contacts", "/ui/contacts/1", "/ui/workflows",
             "/ui/workflows/1?tab=error", "/ui/runs/1", "/ui/messages", "/ui/messages/1", "/ui/reports",
             "/ui/contacts?rfm=0-0"]
    for page in pages:
        r = logged_in.get(page)
        assert r.status_code == 200, page
        assert "<script>window.__xss" not in r.text and "<img src=x" not in r.text, page
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in logged_in.get("/ui/orders/1").text
    message = logged_in.get("/ui/messages/1").text
    assert 'sandbox=""' in message and "srcdoc=\"&lt;p&gt;Hi&lt;/p&gt;&lt;script&gt;" in message


def test_orders_page_finds_an_order_and_shows_json_and_contact(logged_in):
    post_orders(logged_in, [{"externalOrderId": f"ord-{i}", "email": f"p{i}@example.com", "firstName": f"Pat{i}",
                             "totalCost": 10 + i, "status": "DELIVERED", "date": NOW.isoformat(), "currency": "USD"}
                            for i in range(60)])
    page = logged_in.get("/ui/orders?q=ord-7").text
    assert page.count('data-order="') == 1 and "ord-7" in page
    assert "&#34;externalOrderId&#34;: &#34;ord-7&#34;" in page or '"externalOrderId": "ord-7"' in page
    assert "p7@example.com" in page and "Open contact" in page


def test_orders_are_paged_newest_first(logged_in):
    post_orders(logged_in, [{"externalOrderId": f"ord-{i:02d}", "email": "same@example.com", "totalCost": 1,
                             "status": "DELIVERED", "date": NOW.isoformat(), "currency": "USD"} for i in range(60)])
    first = logged_in.get("/ui/orders").text
    ids = re.findall(r'data-order="(ord-\d+)"', first)
    assert len(ids) == 50 and ids[0] == "ord-59"
    nxt = re.search(r'class="next" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    rest = re.findall(r'data-order="(ord-\d+)"', logged_in.get(nxt).text)
    assert rest == [f"ord-{i:02d}" for i in range(9, -1, -1)]


def test_events_filter_by_type_key_and_contact(logged_in):
    post_orders(logged_in, [{"externalOrderId": "e1", "email": "e@example.com", "totalCost": 1, "status": s,
                             "date": NOW.isoformat(), "currency": "USD"} for s in ("INITIALIZED", "DELIVERED")])
    post_orders(logged_in, [{"externalOrderId": "e2", "email": "f@example.com", "totalCost": 1,
                             "status": "DELIVERED", "date": NOW.isoformat(), "currency": "USD"}])
    table = lambda html: html.split('id="events"')[1]
    assert table(logged_in.get("/ui/events?type=orderDELIVERED").text).count("<tr>") == 3   # head + 2
    assert table(logged_in.get("/ui/events?key=e1").text).count("<tr>") == 3
    assert table(logged_in.get("/ui/events?contact=2").text).count("<tr>") == 2
    bad = logged_in.get("/ui/events?contact=abc")
    assert bad.status_code == 400 and "contact: expected a whole number" in bad.text


@pytest.mark.parametrize("window, status", [("0", 400), ("abc", 400), ("3651", 400), (" 7 ", 200), ("1.5", 200)])
def test_reports_page_checks_the_window_as_the_api_does(logged_in, window, status):
    r = logged_in.get(f"/ui/reports?windowDays={window}")
    api = logged_in.get(f"/api/v1/reports/revenue?currency=USD&windowDays={window}", headers=AUTH)
    assert r.status_code == api.status_code == status
    if status == 400:
        assert "windowDays: expected a number of days above 0" in r.text
        assert api.json["error"]["message"] in r.text.replace("&#39;", "'")


def test_reports_page_draws_the_rfm_grid_and_links_cells(logged_in):
    post_orders(logged_in, [{"externalOrderId": "r1", "email": "r@example.com", "totalCost": 20, "status": "DELIVERED",
                             "date": datetime.now(timezone.utc).isoformat(), "currency": "USD"},
                            {"externalOrderId": "r2", "email": "q@example.com", "totalCost": 5, "status": "CANCELLED",
                             "date": NOW.isoformat(), "currency": "USD"}])
    html = logged_in.get("/ui/reports").text
    assert html.count("data-cell=") == 24
    loyal = re.search(r'<td class="(rfm-[a-z]+-?\d?)" data-cell="&lt;2w\|1">', html)
    assert loyal and loyal.group(1) == "rfm-green-1"
    assert 'data-cell="&gt;12m|1"' in html and 'class="rfm-grey" data-cell="&gt;12m|1"' in html
    assert '<span class="n" id="no-purchase">1</span>' in html
    cell = logged_in.get("/ui/contacts?rfm=0-0").text
    assert "r@example.com" in cell and "q@example.com" not in cell


def test_an_rfm_cell_says_how_many_erased_contacts_it_counts_but_cannot_list(logged_in):
    """Erased contacts stay in the report (anonymous, so counts do not change when a person is forgotten);
    the cell's contact list cannot show them, and used to come up short without a word."""
    now = datetime.now(timezone.utc).isoformat()
    post_orders(logged_in, [{"externalOrderId": f"e{i}", "email": f"e{i}@example.com", "externalCustomerId": f"ce{i}",
                             "totalCost": 20, "status": "DELIVERED", "date": now, "currency": "USD"} for i in range(3)])
    r = logged_in.delete("/api/v1/contact?externalCustomerId=ce1&erase=true", headers=AUTH)
    assert r.status_code == 200, r.text
    rfm = logged_in.get("/api/v1/reports/rfm", headers=AUTH).json
    assert sum(c["contacts"] for c in rfm["cells"]) == 3
    page = logged_in.get("/ui/contacts?rfm=0-0").text
    assert "e0@example.com" in page and "e2@example.com" in page and "e1@example.com" not in page
    assert "The report counts 1 erased contact(s) in this cell; they are not listed." in page
    assert "erased contact" not in logged_in.get("/ui/contacts").text


def test_contacts_page_labels_average_checks_with_their_currency(logged_in):
    post_orders(logged_in, [{"externalOrderId": f"m{i}", "email": "mixed@example.com", "totalCost": 10 * (i + 1),
                             "status": "DELIVERED", "date": NOW.isoformat(), "currency": cur}
                            for i, cur in enumerate(("USD", "EUR"))])
    page = logged_in.get("/ui/contacts?orderCountMin=1").text
    assert "several currencies" in page and "15.00" not in page
    page = logged_in.get("/ui/contacts?orderCountMin=1&currency=EUR").text
    assert "20.00 EUR" in page and "several currencies" not in page


def test_save_a_segment_from_the_contacts_page_and_delete_it(app, logged_in):
    post_orders(logged_in, [{"externalOrderId": f"s{i}", "email": f"s{i}@example.com", "totalCost": 10 * (i + 1),
                             "status": "DELIVERED", "date": NOW.isoformat(), "currency": "USD"} for i in range(3)])
    page = logged_in.get("/ui/contacts?avgCheckMin=20&currency=USD").text
    assert "s1@example.com" in page and "s0@example.com" not in page
    token = csrf_of(page)
    r = logged_in.post("/ui/segments", data={"csrf_token": token, "name": "<b>big</b>", "avgCheckMin": "20",
                                             "currency": "USD"}, follow_redirects=True)
    assert "Segment &#39;&lt;b&gt;big&lt;/b&gt;&#39; saved." in r.text
    assert logged_in.post("/ui/segments", data={"csrf_token": token, "name": "<b>big</b>",
                                                "avgCheckMin": "20", "currency": "USD"}).status_code == 409
    r = logged_in.post("/ui/segments", data={"csrf_token": token, "name": "no currency", "avgCheckMin": "20"})
    assert r.status_code == 400 and "add currency" in r.text
    assert logged_in.post("/ui/segments", data={"csrf_token": token, "name": "empty"}).status_code == 400
    saved = logged_in.get("/api/v1/segments/saved", headers=AUTH).json["segments"]
    assert [(s["name"], s["filters"]) for s in saved] == [("<b>big</b>", {"avgCheckMin": 20.0, "currency": "USD"})]
    r = logged_in.post(f"/ui/segments/{saved[0]['id']}/delete", data={"csrf_token": token}, follow_redirects=True)
    assert "Segment deleted." in r.text
    assert logged_in.get("/api/v1/segments/saved", headers=AUTH).json["segments"] == []


def test_every_page_title_is_plain_text(logged_in):
    """A block left open in a template once put the saved-segments table into the contacts page's <title>."""
    import re
    for path, title in (("/ui/orders", "Orders"), ("/ui/events", "Event history"), ("/ui/contacts", "Contacts"),
                        ("/ui/workflows", "Workflows"), ("/ui/messages", "Messages"), ("/ui/reports", "Reports")):
        html = logged_in.get(path).get_data(as_text=True)
        assert re.search(r"<title>(.*?)</title>", html, re.S).group(1).strip() == f"{title} · orderbridge", path
        assert html.count('id="saved-segments"') <= 1, path


def test_login_never_redirects_off_site_through_a_tab_or_line_break(client):
    for target in ("/\t/evil.example", "/\n/evil.example", "/ /evil.example", "/\\evil.example", "https://evil.example"):
        token = csrf_of(client.get("/ui/login").text)
        r = client.post("/ui/login", data={"password": KEY, "csrf_token": token, "next": target})
        assert r.status_code == 302 and r.headers["Location"] == "/ui/orders", target
        client.post("/ui/logout", data={"csrf_token": csrf_of(client.get("/ui/orders").text)})


@pytest.mark.parametrize("url", ["/ui/orders?contact=%C2%B2", "/ui/orders?before=%C2%B2", "/ui/contacts?rfm=%C2%B2-1",
                                 "/ui/contacts?after=99999999999999999999999", "/ui/reports?at=0001-01-01",
                                 "/ui/contacts?rfm=0-0&at=0001-01-01", "/ui/events?since=9999-12-31"])
def test_odd_query_values_are_a_400_that_names_them(logged_in, url):
    r = logged_in.get(url)
    assert r.status_code == 400, (url, r.status_code)


def test_query_arguments_are_never_taken_for_url_options(logged_in):
    post_orders(logged_in, [{"externalOrderId": f"u{i}", "email": "u@example.com", "totalCost": 1, "status": "DELIVERED",
                             "date": NOW.isoformat(), "currency": "USD"} for i in range(3)])
    r = logged_in.get("/ui/orders?_method=DELETE&_external=1&_anchor=x")
    assert r.status_code == 200 and "http://localhost" not in r.text


def test_the_revenue_report_to_a_date_counts_that_whole_day(app, logged_in):
    """'Orders dated from 2026-05-01 to 2026-05-31' includes an order at noon on the 31st."""
    post_orders(logged_in, [{"externalOrderId": "R-31", "email": "r@example.com", "totalCost": 10, "status": "DELIVERED",
                             "date": "2026-05-31T12:00:00+00:00", "currency": "USD"}])
    with app.app_context(), get_engine().begin() as conn:
        conn.execute(wf.definitions.insert(), [dict(id=1, name="thanks", start_event="orderDELIVERED",
                                                    definition='{"name": "x"}', created_at=NOW, updated_at=NOW)])
        conn.execute(wf.messages.insert(), [dict(workflow_id=1, run_id=1, step_row_id=1, contact_id=1, channel="store",
                                                 to_address="r@example.com", subject="s", body="b", status="stored",
                                                 created_at=datetime(2026, 5, 30, tzinfo=timezone.utc))])
    html = logged_in.get("/ui/reports?currency=USD&since=2026-05-01&until=2026-05-31").text
    row = re.search(r'<table class="list" id="revenue">.*?</table>', html, re.S).group(0)
    assert "10.00" in row
    row = re.search(r'<table class="list" id="revenue">.*?</table>',
                    logged_in.get("/ui/reports?currency=USD&since=2026-05-01&until=2026-05-30").text, re.S).group(0)
    assert "10.00" not in row
