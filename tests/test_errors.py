"""Bad requests answer with a page in the user's language, never a traceback."""

from __future__ import annotations

import sqlalchemy as sa

from bladi_cases.models import Role

from .conftest import login, text_of


def test_garbled_and_unknown_ids_are_404_in_arabic(client, make_user):
    login(client, make_user(Role.ADMIN))
    for url in ("/admin/users/not-a-uuid", "/admin/users/00000000-0000-0000-0000-000000000000",
                "/admin/sites/%00/edit", "/admin/organizations/NOPE/edit", "/nowhere"):
        response = client.get(url)
        assert response.status_code == 404, url
        assert "الصفحة غير موجودة" in text_of(response), url


def test_404_page_in_french(client):
    response = client.get("/nowhere", headers={"Accept-Language": "fr"})
    assert response.status_code == 404 and 'lang="fr"' in response.get_data(as_text=True)


def test_csrf_failure_is_a_400_that_says_to_reload(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)
    response = client.post("/login", data={"email": "a@b.tn", "password": "whatever-123"})
    assert response.status_code == 400
    assert "أعد تحميل الصفحة" in text_of(response)


def test_csrf_token_from_the_page_is_accepted(app, client, make_user, monkeypatch):
    import re

    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)
    make_user(Role.DONOR, email="csrf@example.tn")
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    response = client.post("/login", data={"email": "csrf@example.tn",
                                           "password": "Correct-Horse-Battery-9",
                                           "csrf_token": token})
    assert response.status_code == 302


def test_oversized_body_is_refused(client, app):
    body = b"x" * (app.config["MAX_CONTENT_LENGTH"] + 1)
    response = client.post("/login", data=body, content_type="application/octet-stream")
    assert response.status_code == 413
    assert "5" in text_of(response)


def test_unexpected_error_shows_no_traceback(client, make_user, monkeypatch):
    import bladi_cases.blueprints.main.views as views

    def explode(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(views, "render_template", explode)
    login(client, make_user(Role.FIELD_WORKER))
    response = client.get("/")
    assert response.status_code == 500
    body = response.get_data(as_text=True)
    assert "secret internals" not in body and "Traceback" not in body
    assert "حدث خطأ" in text_of(response)


def test_healthz_reports_the_database(client, monkeypatch):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok"}

    from bladi_cases.extensions import db

    def down(*args, **kwargs):
        raise sa.exc.OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(db.session, "execute", down)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["database"] == "unreachable"


def test_security_headers(client):
    response = client.get("/login")
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
