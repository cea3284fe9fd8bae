"""Security headers on every kind of response, secure cookies outside development, and
templates that need no 'unsafe-inline' (no inline script, event handler or style)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bladi_cases import create_app
from bladi_cases.config import load_settings
from bladi_cases.models import Role
from bladi_cases.privacy import new_key

from .conftest import login

TEMPLATES = Path(__file__).resolve().parent.parent / "bladi_cases" / "templates"
# A downloaded, self-contained file (opened from disk, where no CSP applies): its own style.
STANDALONE = {"beneficiaries/access_export.html"}


def _policy(header: str) -> dict[str, list[str]]:
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def _assert_secure_headers(response, what: str) -> None:
    headers = response.headers
    policy = _policy(headers.get("Content-Security-Policy", ""))
    scripts = policy.get("script-src", policy.get("default-src"))
    assert scripts == ["'self'"], (what, scripts)
    assert not any("unsafe" in v for values in policy.values() for v in values), what
    assert policy["object-src"] == ["'none'"] and policy["base-uri"] == ["'self'"], what
    assert policy["frame-ancestors"] == ["'none'"], what
    assert headers.get("X-Frame-Options") == "DENY", what
    assert headers.get("X-Content-Type-Options") == "nosniff", what
    assert headers.get("Referrer-Policy") == "same-origin", what


def _asset(client, html: str) -> str:
    return re.search(r'href="(/static/css/[^"]+)"', html).group(1)


def test_every_kind_of_response_carries_the_headers(client, make_user):
    login_page = client.get("/login", headers={"Accept-Encoding": "gzip"})
    samples = {
        "HTML page": login_page,
        "static file": client.get(_asset(client, client.get("/login").get_data(as_text=True))),
        "error page": client.get("/nowhere"),
        "redirect": client.get("/beneficiaries/"),
        "JSON": client.get("/healthz"),
    }
    login(client, make_user(Role.FIELD_WORKER))
    samples["page with personal data"] = client.get("/beneficiaries/")
    samples["redirect after a form"] = client.post("/language", data={"lang": "fr",
                                                                      "next": "/"})
    expected = {"HTML page": 200, "static file": 200, "error page": 404, "redirect": 302,
                "JSON": 200, "page with personal data": 200, "redirect after a form": 302}
    for what, response in samples.items():
        assert response.status_code == expected[what], what
        _assert_secure_headers(response, what)
    assert samples["static file"].mimetype == "text/css"
    assert samples["JSON"].is_json
    assert samples["page with personal data"].headers["Cache-Control"] == "no-store"


def test_templates_have_no_inline_script_handler_or_style():
    inline_script = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
    handler = re.compile(r"<[^>]*\son[a-z]+\s*=", re.IGNORECASE)
    style = re.compile(r"<[^>]*\sstyle\s*=|<style[\s>]", re.IGNORECASE)
    found = []
    for template in sorted(TEMPLATES.rglob("*.html")):
        if template.relative_to(TEMPLATES).as_posix() in STANDALONE:
            continue
        text = template.read_text(encoding="utf-8")
        for name, pattern in (("inline script", inline_script), ("event handler", handler),
                              ("inline style", style), ("javascript: URL",
                                                        re.compile(r"javascript:", re.I))):
            found += [f"{template.relative_to(TEMPLATES)}: {name}"
                      for _ in pattern.finditer(text)]
    assert not found


def test_production_settings_make_cookies_secure(tmp_path):
    keys = {"SECRET_KEY": "s" * 40, "BLADI_DATA_KEY": new_key()}
    production = load_settings(keys, tmp_path)
    for cookie in ("SESSION", "REMEMBER"):
        assert production[f"{cookie}_COOKIE_SECURE"] is True
        assert production[f"{cookie}_COOKIE_HTTPONLY"] is True
        assert production[f"{cookie}_COOKIE_SAMESITE"] == "Lax"
    assert not load_settings({"BLADI_ENV": "development"}, tmp_path)["SESSION_COOKIE_SECURE"]
    behind_proxy = load_settings({**keys, "BLADI_INSECURE_COOKIES": "1"}, tmp_path)
    assert not behind_proxy["SESSION_COOKIE_SECURE"]


@pytest.fixture
def production_client(tmp_path, monkeypatch):
    """A client of an app started as in production (its own empty SQLite file)."""
    monkeypatch.setenv("BLADI_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "p" * 40)
    monkeypatch.setenv("BLADI_DATA_KEY", new_key())
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'production.db'}")
    app = create_app()
    assert app.config["BLADI_ENV"] == "production" and not app.debug
    return app.test_client()


def test_production_cookies_are_secure_httponly_samesite(production_client):
    page = production_client.get("/login")
    session = next(c for c in page.headers.getlist("Set-Cookie") if c.startswith("session="))
    assert {"Secure", "HttpOnly", "SameSite=Lax"} <= {p.strip() for p in session.split(";")}
    _assert_secure_headers(page, "production page")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))[1]
    switched = production_client.post("/language", data={"lang": "fr", "next": "/login",
                                                          "csrf_token": token})
    assert switched.status_code == 302
    lang = next(c for c in switched.headers.getlist("Set-Cookie") if c.startswith("lang="))
    assert {"Secure", "HttpOnly", "SameSite=Lax"} <= {p.strip() for p in lang.split(";")}


def _max_age(hsts: str) -> int:
    return int(re.search(r"max-age=(\d+)", hsts)[1])


def test_hsts_on_https_responses_only(client):
    for path in ("/login", "/nowhere", "/healthz"):
        secure = client.get(path, base_url="https://bladi.test")
        hsts = secure.headers.get("Strict-Transport-Security", "")
        assert _max_age(hsts) >= 180 * 24 * 3600 and "includeSubDomains" in hsts, path
        assert "Strict-Transport-Security" not in client.get(path).headers, path
    # Without a trusted proxy, a client's own X-Forwarded-Proto changes nothing.
    forged = client.get("/login", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" not in forged.headers


@pytest.fixture
def proxied_client(tmp_path, monkeypatch):
    """A production app behind one trusted reverse proxy that terminates TLS."""
    monkeypatch.setenv("BLADI_PROXY_HOPS", "1")
    monkeypatch.setenv("BLADI_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "p" * 40)
    monkeypatch.setenv("BLADI_DATA_KEY", new_key())
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'proxied.db'}")
    return create_app().test_client()


def test_behind_the_proxy_x_forwarded_proto_makes_the_request_secure(proxied_client):
    over_https = proxied_client.get("/login", headers={"X-Forwarded-Proto": "https",
                                                       "X-Forwarded-For": "198.51.100.7"})
    assert over_https.status_code == 200
    assert _max_age(over_https.headers["Strict-Transport-Security"]) >= 15552000
    plain = proxied_client.get("/login", headers={"X-Forwarded-Proto": "http"})
    assert "Strict-Transport-Security" not in plain.headers


def test_the_proxy_sets_the_client_address(proxied_client):
    from flask import request

    app = proxied_client.application
    seen = []
    app.before_request_funcs.setdefault(None, []).insert(
        0, lambda: seen.append(request.remote_addr))
    proxied_client.get("/healthz", headers={"X-Forwarded-For": "203.0.113.9, 198.51.100.7"},
                       environ_base={"REMOTE_ADDR": "10.0.0.2"})
    assert seen == ["198.51.100.7"], "one hop: the address the proxy saw, not a forged one"
