"""Static files with fingerprinted names, long cache headers and gzip.

`asset_url("css/app.css")` gives `/static/css/app.<hash>.css`; the hash changes with the
content, so browsers may cache a file for a year and still see every new version. Phones
on 3G pay for every byte, so text responses are gzip-compressed when the client accepts it.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
import re
from pathlib import Path

from flask import Flask, Response, abort, request

from .policy import public

ONE_YEAR = 365 * 24 * 3600
_FINGERPRINT_RE = re.compile(r"^(?P<stem>.+)\.(?P<digest>[0-9a-f]{10})(?P<ext>\.[a-z0-9]+)$")
COMPRESSIBLE = ("text/", "application/json", "application/javascript", "image/svg+xml",
                "application/manifest+json")
MIN_COMPRESS_BYTES = 500


class AssetStore:
    """Reads the static folder once: content, digest and gzip of every file."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.files: dict[str, tuple[bytes, str]] = {}
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                body = path.read_bytes()
                rel = path.relative_to(folder).as_posix()
                self.files[rel] = (body, hashlib.sha256(body).hexdigest()[:10])
        self._gzipped: dict[str, bytes] = {}

    def fingerprinted(self, name: str) -> str:
        """The versioned file name of a static file, e.g. css/app.0123456789.css."""
        if name not in self.files:
            raise KeyError(f"No static file {name!r}")
        stem, dot, ext = name.rpartition(".")
        return f"{stem}.{self.files[name][1]}.{ext}" if dot else name

    def resolve(self, requested: str) -> tuple[str, bool] | None:
        """(real name, is_current_version) for a requested (maybe fingerprinted) name."""
        match = _FINGERPRINT_RE.match(requested)
        if match:
            name = match["stem"] + match["ext"]
            if name in self.files:
                return name, self.files[name][1] == match["digest"]
        if requested in self.files:
            return requested, False
        return None

    def gzipped(self, name: str) -> bytes:
        """The gzip of a file, computed once."""
        if name not in self._gzipped:
            self._gzipped[name] = gzip.compress(self.files[name][0], compresslevel=9, mtime=0)
        return self._gzipped[name]


def _accepts_gzip() -> bool:
    return "gzip" in request.headers.get("Accept-Encoding", "").lower()


def _is_compressible(mimetype: str | None) -> bool:
    return bool(mimetype) and mimetype.startswith(COMPRESSIBLE)


def init_assets(app: Flask) -> None:
    """Register the static route, `asset_url` for templates and response compression."""
    store = AssetStore(Path(app.root_path) / "static")
    app.extensions["bladi_assets"] = store

    @public
    def static(filename: str):
        """A static file; a current fingerprinted name is cached for a year."""
        found = store.resolve(filename)
        if found is None:
            abort(404)
        name, current = found
        mimetype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if _is_compressible(mimetype) and _accepts_gzip():
            response = Response(store.gzipped(name), mimetype=mimetype)
            response.headers["Content-Encoding"] = "gzip"
        else:
            response = Response(store.files[name][0], mimetype=mimetype)
        response.headers["Vary"] = "Accept-Encoding"
        if current:
            response.headers["Cache-Control"] = f"public, max-age={ONE_YEAR}, immutable"
        else:
            response.headers["Cache-Control"] = "public, max-age=300"
        return response

    app.add_url_rule("/static/<path:filename>", endpoint="static", view_func=static)
    app.jinja_env.globals["asset_url"] = lambda name: f"/static/{store.fingerprinted(name)}"

    @app.after_request
    def compress(response: Response) -> Response:
        if (response.direct_passthrough or response.is_streamed
                or "Content-Encoding" in response.headers
                or not _is_compressible(response.mimetype) or not _accepts_gzip()):
            return response
        body = response.get_data()
        if len(body) < MIN_COMPRESS_BYTES:
            return response
        response.set_data(gzip.compress(body, compresslevel=6, mtime=0))
        response.headers["Content-Encoding"] = "gzip"
        response.vary.add("Accept-Encoding")
        return response
