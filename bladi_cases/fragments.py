"""Parts of pages made once per process and kept, rather than on every request: HTML
fragments that follow from a few things a request names (a role, a language, the app's
root), and URLs that differ only by the record they point to.

Neither may hold a person's data: a fragment's key must name everything it shows, and a
URL pattern is made from placeholders."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Hashable

from flask import current_app, request, url_for
from markupsafe import Markup

# Fragments kept per kind in a process; past this (a script walking odd pages) the kind
# starts again.
FRAGMENT_LIMIT = 2048


def kept_fragment(kind: str, key: Hashable, render: Callable[[], str]) -> Markup:
    """The HTML `render()` makes for `key`, made once per (kind, key) in this process.
    Not kept while templates reload when edited (development: an edit shows at once)."""
    kept = current_app.extensions.setdefault("bladi_fragments", {}).setdefault(kind, {})
    html = kept.get(key)
    if html is None:
        html = Markup(render())
        if not current_app.jinja_env.auto_reload:
            if len(kept) >= FRAGMENT_LIMIT:
                kept.clear()
            kept[key] = html
    return html


# Stand-ins for the record ids of a URL pattern: uuid arguments, each distinct.
_SLOTS = tuple(uuid.UUID(int=n) for n in range(1, 4))


@functools.lru_cache(maxsize=512)  # a few dozen patterns times the app's roots
def _pattern(script_root: str, endpoint: str, names: tuple[str, ...],
             fixed: tuple[tuple[str, str], ...]) -> str:
    return url_for(endpoint, **dict(zip(names, _SLOTS, strict=False)), **dict(fixed))


def url_maker(endpoint: str, *names: str, **fixed: str) -> Callable[..., str]:
    """A function making `url_for(endpoint, **fixed, **ids)` for the uuid arguments
    `names`, from one url_for per app root and process (about 30 µs a call, a dozen or
    thirty links a page): `url_maker("cases.show", "case_id")(case_id=case.uuid)`."""
    if len(names) > len(_SLOTS):
        raise ValueError(f"at most {len(_SLOTS)} record ids in a URL pattern")
    frozen = tuple(sorted(fixed.items()))

    def make(**ids) -> str:
        url = _pattern(request.script_root, endpoint, names, frozen)
        for name, slot in zip(names, _SLOTS, strict=False):
            url = url.replace(str(slot), str(ids[name]))
        return url

    return make
