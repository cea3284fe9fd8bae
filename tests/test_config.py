"""Settings from the environment, with the production safety checks."""

from __future__ import annotations

import json

import pytest

from bladi_cases.config import ConfigError, load_settings
from bladi_cases.privacy import new_key


def test_production_refuses_to_start_without_keys(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_settings({}, tmp_path)
    assert "SECRET_KEY" in str(error.value) and "BLADI_DATA_KEY" in str(error.value)
    with pytest.raises(ConfigError):
        load_settings({"SECRET_KEY": "x" * 40}, tmp_path)


def test_production_with_keys(tmp_path):
    settings = load_settings({"SECRET_KEY": "s" * 40, "BLADI_DATA_KEY": new_key(),
                              "DATABASE_URL": "postgres://u:p@db/bladi"}, tmp_path)
    assert settings["BLADI_ENV"] == "production" and settings["SESSION_COOKIE_SECURE"]
    assert settings["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u:p@db/bladi"
    assert not settings["DEBUG"]


def test_development_generates_keys_once_into_instance(tmp_path):
    first = load_settings({"BLADI_ENV": "development"}, tmp_path)
    second = load_settings({"BLADI_ENV": "development"}, tmp_path)
    assert first["SECRET_KEY"] == second["SECRET_KEY"]
    assert first["BLADI_DATA_KEY"] == second["BLADI_DATA_KEY"]
    stored = json.loads((tmp_path / "secrets.json").read_text())
    assert stored["SECRET_KEY"] == first["SECRET_KEY"]
    assert (tmp_path / "secrets.json").stat().st_mode & 0o077 == 0
    assert first["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'bladi.db'}"


def test_malformed_data_key_is_refused(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_settings({"SECRET_KEY": "s" * 40, "BLADI_DATA_KEY": "k" * 44}, tmp_path)
    assert "BLADI_DATA_KEY" in str(error.value) and "k" * 44 not in str(error.value)


def test_bad_values_fail_fast(tmp_path):
    with pytest.raises(ConfigError):
        load_settings({"BLADI_ENV": "staging"}, tmp_path)
    with pytest.raises(ConfigError):
        load_settings({"BLADI_ENV": "testing", "BLADI_PAGE_SIZE": "many"}, tmp_path)


@pytest.mark.parametrize("value", ["-1", "five", "2.5"])
def test_a_bad_sqlite_busy_timeout_fails_fast(tmp_path, value):
    with pytest.raises(ConfigError) as error:
        load_settings({"BLADI_ENV": "testing", "BLADI_SQLITE_BUSY_SECONDS": value}, tmp_path)
    assert "BLADI_SQLITE_BUSY_SECONDS" in str(error.value)


def test_sqlite_connections_get_wal_and_the_busy_timeout(tmp_path, monkeypatch):
    from bladi_cases import create_app
    from bladi_cases.extensions import db

    assert load_settings({"BLADI_ENV": "testing"}, tmp_path)["BLADI_SQLITE_BUSY_SECONDS"] == 5
    monkeypatch.setenv("BLADI_SQLITE_BUSY_SECONDS", "7")
    app = create_app({"BLADI_ENV": "testing",
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'file.db'}"})
    with app.app_context(), db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 7000
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    with app.app_context():
        db.engine.dispose()


@pytest.mark.parametrize("secret_key", ["hunter2", "s" * 31, "é" * 15])
def test_production_refuses_a_short_secret_key(tmp_path, secret_key):
    with pytest.raises(ConfigError) as error:
        load_settings({"SECRET_KEY": secret_key, "BLADI_DATA_KEY": new_key()}, tmp_path)
    assert "SECRET_KEY" in str(error.value) and "32 bytes" in str(error.value)
    assert secret_key not in str(error.value)


def test_a_secret_key_of_32_bytes_starts(tmp_path):
    settings = load_settings({"SECRET_KEY": "é" * 16, "BLADI_DATA_KEY": new_key()}, tmp_path)
    assert settings["SECRET_KEY"] == "é" * 16  # 16 characters, 32 bytes in UTF-8
    assert load_settings({"BLADI_ENV": "development", "SECRET_KEY": "dev"},
                         tmp_path)["SECRET_KEY"] == "dev", "only production insists"


@pytest.mark.parametrize("data_key", ["not-a-key", "", ","])
def test_production_refuses_a_data_key_that_does_not_parse(tmp_path, data_key):
    with pytest.raises(ConfigError) as error:
        load_settings({"SECRET_KEY": "s" * 40, "BLADI_DATA_KEY": data_key}, tmp_path)
    assert "BLADI_DATA_KEY" in str(error.value)


def test_create_app_refuses_to_start_with_a_short_secret_key(tmp_path, monkeypatch):
    from bladi_cases import create_app

    monkeypatch.setenv("BLADI_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "x")
    monkeypatch.setenv("BLADI_DATA_KEY", new_key())
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'short.db'}")
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        create_app()


@pytest.mark.parametrize("value", ["-1", "two"])
def test_a_bad_proxy_hop_count_fails_fast(tmp_path, value):
    with pytest.raises(ConfigError) as error:
        load_settings({"BLADI_ENV": "testing", "BLADI_PROXY_HOPS": value}, tmp_path)
    assert "BLADI_PROXY_HOPS" in str(error.value)
    assert load_settings({"BLADI_ENV": "testing"}, tmp_path)["BLADI_PROXY_HOPS"] == 0


def test_postgresql_connections_plan_for_ssd_unless_told(tmp_path):
    base = {"BLADI_ENV": "testing"}
    assert load_settings(base, tmp_path)["BLADI_PG_RANDOM_PAGE_COST"] == 1.1
    assert load_settings({**base, "BLADI_PG_RANDOM_PAGE_COST": "2"},
                         tmp_path)["BLADI_PG_RANDOM_PAGE_COST"] == 2.0
    assert load_settings({**base, "BLADI_PG_RANDOM_PAGE_COST": "server"},
                         tmp_path)["BLADI_PG_RANDOM_PAGE_COST"] is None
    for bad in ("0", "-1", "fast", "1e9"):
        with pytest.raises(ConfigError, match="BLADI_PG_RANDOM_PAGE_COST"):
            load_settings({**base, "BLADI_PG_RANDOM_PAGE_COST": bad}, tmp_path)


def test_the_apps_postgresql_connections_use_the_planner_cost(app):
    """On the suite's PostgreSQL pass: the connections the app opens carry the setting."""
    from bladi_cases.extensions import db

    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's planner setting")
    with db.engine.connect() as connection:
        assert connection.exec_driver_sql("SHOW random_page_cost").scalar() == "1.1"
    # Options the URL gives the server stay beside it.
    from bladi_cases import create_app

    url = db.engine.url.update_query_dict({"options": "-c statement_timeout=4321"})
    other = create_app({"BLADI_ENV": "testing", "WTF_CSRF_ENABLED": False,
                        "SQLALCHEMY_DATABASE_URI": url.render_as_string(hide_password=False)})
    with other.app_context():
        with db.engine.connect() as connection:
            assert connection.exec_driver_sql("SHOW random_page_cost").scalar() == "1.1"
            assert connection.exec_driver_sql("SHOW statement_timeout").scalar() == "4321ms"
        db.engine.dispose()
