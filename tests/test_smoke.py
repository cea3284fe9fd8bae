"""Quick checks that the main pages render for each role."""

import pytest

from bladi_cases.models import Role

from .conftest import login


def test_login_page_is_arabic_rtl_by_default(client):
    response = client.get("/login")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert '<html lang="ar" dir="rtl">' in html


@pytest.mark.parametrize("role", list(Role))
def test_home_renders_for_each_role(client, make_user, role):
    login(client, make_user(role))
    response = client.get("/")
    assert response.status_code == 200
