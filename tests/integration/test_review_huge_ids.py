"""An id or number beyond any database column's range is a 404 or a 400 that says so, never a 500."""
from __future__ import annotations

import pytest

from tests.integration.test_ui_pages import AUTH, app, client, logged_in  # noqa: F401 (fixtures)

HUGE = "9" * 25


@pytest.mark.parametrize("path", [f"/ui/orders/{HUGE}", f"/ui/contacts/{HUGE}", f"/ui/workflows/{HUGE}",
                                  f"/ui/runs/{HUGE}", f"/ui/messages/{HUGE}"])
def test_ui_pages_for_huge_ids_are_404(logged_in, path):   # noqa: F811
    assert logged_in.get(path).status_code == 404


@pytest.mark.parametrize("path", [f"/ui/orders?contact={HUGE}", f"/ui/orders?before={HUGE}",
                                  f"/ui/events?contact={HUGE}", f"/ui/contacts?after={HUGE}"])
def test_ui_filters_with_huge_numbers_are_400(logged_in, path):   # noqa: F811
    r = logged_in.get(path)
    assert r.status_code == 400 and "expected a whole number" in r.text


@pytest.mark.parametrize("path", [f"/api/v1/workflows/{HUGE}", f"/api/v1/workflows/{HUGE}/runs",
                                  f"/api/v1/segments/saved/{HUGE}"])
def test_api_routes_for_huge_ids_are_404(client, path):   # noqa: F811
    r = client.get(path, headers=AUTH)
    assert r.status_code == 404 and r.json == {"message": "no such resource", "error": {"status": 404, "message": "no such resource"}}
    assert client.get(path).status_code == 401          # the auth check still comes first


def test_segment_counts_beyond_range_are_400(client):   # noqa: F811
    r = client.get(f"/api/v1/segments?orderCountMin={HUGE}", headers=AUTH)
    assert r.status_code == 400 and "orderCountMin" in r.json["error"]["message"]


def test_a_huge_id_is_still_a_login_redirect_when_logged_out(client):   # noqa: F811
    r = client.get(f"/ui/orders/{HUGE}")
    assert r.status_code == 302 and "/ui/login" in r.headers["Location"]


def test_connector_status_page_ignores_an_out_of_range_page_marker(tmp_path):
    from backend import create_app
    from connector.config import from_dict
    from connector.store import init_db, make_engine
    from daemon.status_ui import register_status_ui
    from tests.integration.test_ui_pages import KEY, csrf_of
    engine = make_engine(f"sqlite:///{tmp_path}/connector.db")
    init_db(engine)
    config = from_dict({"backend": {"database": f"sqlite:///{tmp_path}/backend.db"}})
    app = create_app(config, test_config={"API_KEYS": [KEY], "RATE_LIMIT": 0})
    register_status_ui(app, config, engine)
    c = app.test_client()
    assert c.post("/ui/login", data={"password": KEY, "csrf_token": csrf_of(c.get("/ui/login").text)}).status_code == 302
    assert c.get(f"/ui/connector/?before={HUGE}").status_code == 200
    token = csrf_of(c.get("/ui/connector/").text)
    assert c.post("/ui/connector/requeue", data={"id": HUGE, "csrf_token": token}).status_code == 302
    engine.dispose()
