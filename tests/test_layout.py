"""Phone-first delivery: fingerprinted, cached, compressed assets; small pages; logical CSS."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest

from bladi_cases.extensions import db
from bladi_cases.models import Role

from .conftest import login

CSS = Path(__file__).resolve().parent.parent / "bladi_cases" / "static" / "css" / "app.css"
BUDGET = 30 * 1024  # bytes transferred (compressed) for a page with its CSS and JS


def _assets(html: str) -> list[str]:
    return re.findall(r'(?:href|src)="(/static/[^"]+)"', html)


def test_static_files_are_fingerprinted_and_cached_for_a_year(client):
    html = client.get("/login").get_data(as_text=True)
    css = next(a for a in _assets(html) if a.endswith(".css"))
    assert re.search(r"/static/css/app\.[0-9a-f]{10}\.css$", css)
    response = client.get(css)
    assert response.status_code == 200
    assert "immutable" in response.headers["Cache-Control"]
    assert "max-age=31536000" in response.headers["Cache-Control"]
    # An outdated fingerprint still answers, but is not cached for long.
    stale = client.get(re.sub(r"\.[0-9a-f]{10}\.", ".0000000000.", css))
    assert stale.status_code == 200 and "immutable" not in stale.headers["Cache-Control"]
    assert client.get("/static/css/nothing.css").status_code == 404
    assert client.get("/static/../wsgi.py").status_code == 404


def test_text_is_gzipped_when_accepted(client):
    plain = client.get("/login")
    zipped = client.get("/login", headers={"Accept-Encoding": "gzip, deflate"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.get_data()) == plain.get_data()
    assert "Content-Encoding" not in plain.headers


def _weight(client, url: str) -> int:
    headers = {"Accept-Encoding": "gzip"}
    page = client.get(url, headers=headers)
    assert page.status_code == 200, url
    total = len(page.get_data())
    html = gzip.decompress(page.get_data()) if page.headers.get("Content-Encoding") \
        else page.get_data()
    for asset in _assets(html.decode()):
        total += len(client.get(asset, headers=headers).get_data())
    return total


@pytest.mark.parametrize("role,urls", [
    (None, ["/login"]),
    (Role.FIELD_WORKER, ["/", "/account/password", "/account/sessions", "/beneficiaries/",
                         "/beneficiaries/new", "/field"]),
    (Role.CSO_MANAGER, ["/", "/admin/users", "/admin/users/new", "/audit/",
                        "/beneficiaries/import", "/reports/", "/cases/", "/surveys/"]),
    (Role.REVIEWER, ["/", "/reports/", "/reports/targets", "/reports/exports"]),
    (Role.ADMIN, ["/", "/admin/organizations", "/admin/organizations/new", "/admin/sites",
                  "/admin/sites/new", "/admin/users", "/audit/"]),
])
def test_pages_fit_the_30_kb_budget(client, make_user, role, urls):
    if role is not None:
        login(client, make_user(role))
    for url in urls:
        assert _weight(client, url) <= BUDGET, url


def test_stylesheet_uses_logical_properties_only():
    css = CSS.read_text(encoding="utf-8")
    physical = re.findall(
        r"(?:margin|padding|border)-(?:left|right)|(?<![-\w])(?:left|right)\s*:|"
        r"text-align\s*:\s*(?:left|right)|float\s*:\s*(?:left|right)", css)
    assert physical == [], "use inline-start/inline-end so one stylesheet serves RTL and LTR"


def test_tap_targets_and_focus_are_styled():
    css = CSS.read_text(encoding="utf-8")
    assert "--tap: 44px" in css and "min-block-size: var(--tap)" in css
    assert ":focus-visible" in css


@pytest.mark.parametrize("role,urls", [
    (Role.ADMIN, ["/admin/users/new", "/admin/organizations/new", "/admin/sites/new",
                  "/audit/", "/account/password"]),
    (Role.CSO_MANAGER, ["/beneficiaries/", "/beneficiaries/new", "/beneficiaries/import"]),
])
def test_every_input_has_a_label(client, make_user, role, urls):
    login(client, make_user(role))
    for url in urls:
        html = client.get(url).get_data(as_text=True)
        ids = re.findall(r'<(?:input|select|textarea)[^>]*\bid="([^"]+)"', html)
        hidden = set(re.findall(r'<input[^>]*type="hidden"[^>]*id="([^"]+)"', html))
        hidden |= set(re.findall(r'<input[^>]*id="([^"]+)"[^>]*type="hidden"', html))
        labelled = set(re.findall(r'<label[^>]*for="([^"]+)"', html))
        assert [i for i in ids if i not in labelled and i not in hidden] == [], url


def _menu(response) -> str:
    assert response.status_code == 200
    return re.search(r'<nav class="main-nav".*?</nav>', response.get_data(as_text=True),
                     re.S).group(0)


def test_each_role_language_and_page_gets_its_own_menu(app, make_user):
    """The menu is rendered once per role, language and page in a process (bladi_cases/
    menu.py): what one person was shown is never what another role or language gets."""
    worker, manager = make_user(Role.FIELD_WORKER), make_user(Role.CSO_MANAGER)
    as_worker, as_manager = app.test_client(), app.test_client()
    login(as_worker, worker)
    login(as_manager, manager)
    headers = {"Accept-Language": "ar"}
    first = _menu(as_worker.get("/activities/", headers=headers))
    assert "الشباب" in first and "حسابات الموظفين" not in first
    assert re.search(r'href="/activities/" aria-current="page"', first)
    managers = _menu(as_manager.get("/activities/", headers=headers))
    assert "حسابات الموظفين" in managers and 'href="/admin/users' in managers
    assert _menu(as_worker.get("/activities/", headers=headers)) == first
    on_list = _menu(as_worker.get("/beneficiaries/", headers=headers))
    assert re.search(r'href="/beneficiaries/" aria-current="page"', on_list)
    assert 'href="/activities/" aria-current' not in on_list
    worker.preferred_language = "fr"
    db.session.commit()
    french = _menu(as_worker.get("/activities/", headers=headers))
    assert "Accueil" in french and "Jeunes" in french and "الشباب" not in french
    assert "Comptes du personnel" not in french
