"""The OpenAPI 3 document of the API, generated from the code: the blueprint's routes in
the app's url_map, the permission and schemas each view declares (@documented), and the
schemas of schemas.py. Nothing here is written by hand twice."""

from __future__ import annotations

import re

from apispec import APISpec
from flask import Flask

from ...policy import PUBLIC
from .schemas import SCHEMAS

OPENAPI_VERSION = "3.0.3"
_ERRORS = {400: "Malformed request, or the CSRF token is missing or expired",
           401: "Not logged in", 403: "The role may not use this",
           404: "Not found (or another CSO's)", 405: "Method not allowed",
           413: "Too many records, or the body is too large",
           429: "Too many batches from this user in a short time (BLADI_RATELIMIT_SYNC); "
                "try again after Retry-After seconds"}


def documented(summary: str, response: str, request: str | None = None,
               errors: tuple[int, ...] = (401, 403)):
    """Declare what a view returns (and takes): the schema names of schemas.py."""

    def mark(view):
        view.api_doc = {"summary": summary, "response": response, "request": request,
                        "errors": errors}
        return view

    return mark


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str) -> dict:
    return {"application/json": {"schema": _ref(name)}}


def _operation(view, method: str) -> dict:
    doc = view.api_doc
    operation = {"summary": doc["summary"], "operationId": view.__name__,
                 "description": (view.__doc__ or "").strip(),
                 "responses": {"200": {"description": "OK", "content": _json(doc["response"])}}}
    errors = doc["errors"]
    if getattr(view, "permission", None) == PUBLIC:
        operation["security"] = []
        errors = tuple(e for e in errors if e not in (401, 403))
    for code in errors:
        operation["responses"][str(code)] = {"description": _ERRORS[code],
                                             "content": _json("Error")}
    if doc["request"]:
        operation["requestBody"] = {"required": True, "content": _json(doc["request"])}
        operation["parameters"] = [{"name": "X-CSRFToken", "in": "header", "required": True,
                                    "schema": {"type": "string"},
                                    "description": "csrf_token of GET /api/v1/me"}]
    return operation


def build_spec(app: Flask, blueprint: str = "field.api") -> dict:
    """The OpenAPI document of every documented route of the blueprint."""
    spec = APISpec(title="BLADI Cases field API", version="1", openapi_version=OPENAPI_VERSION,
                   info={"description": "What the offline field app downloads, and the "
                         "retry-safe batch sync of the records made offline. Log in with "
                         "the web form: the session cookie authenticates the API."})
    spec.components.security_scheme("session", {"type": "apiKey", "in": "cookie",
                                                "name": app.config.get("SESSION_COOKIE_NAME",
                                                                       "session")})
    for name, schema in SCHEMAS.items():
        spec.components.schema(name, schema)
    rules = sorted((r for r in app.url_map.iter_rules()
                    if r.endpoint.startswith(f"{blueprint}.")), key=lambda r: r.rule)
    for rule in rules:
        view = app.view_functions[rule.endpoint]
        if not hasattr(view, "api_doc"):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        methods = sorted(m for m in rule.methods if m not in ("HEAD", "OPTIONS"))
        spec.path(path=path, operations={m.lower(): _operation(view, m) for m in methods})
    document = spec.to_dict()
    document["security"] = [{"session": []}]
    return document
