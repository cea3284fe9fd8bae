"""WSGI entry point: `gunicorn wsgi:app`, `flask --app wsgi ...`."""

from bladi_cases import create_app

app = create_app()
