"""The reference page of bench/load.py: a bare Flask app rendering a 25-item Jinja list,
served by the same gunicorn settings as the app, so each page's throughput reads as a share
of what Flask, Jinja and gunicorn cost alone on this machine in the same run.

Run alone: `.venv/bin/gunicorn --chdir bench bare:app`.
"""

from __future__ import annotations

from flask import Flask, render_template_string

app = Flask(__name__)

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title></head>
<body><h1>{{ title }}</h1>
<ul>{% for item in items %}
  <li><a href="/items/{{ item.id }}">{{ item.name }}</a> <span>{{ item.code }}</span></li>
{% endfor %}</ul>
</body></html>"""
ITEMS = [{"id": n, "name": f"Item number {n}", "code": f"BA-{n:04d}"} for n in range(25)]


@app.get("/")
def page():
    """The 25-item list."""
    return render_template_string(PAGE, title="Bare page", items=ITEMS)
