"""Text normalisation for search and de-duplication of names (Arabic and Latin script).

The output is only ever compared or hashed (blind indexes), never shown: two spellings a
case worker would consider "the same name" must normalise to the same string.
"""

from __future__ import annotations

import re
import unicodedata

# Arabic letter variants that writers use interchangeably; tatweel and harakat are dropped.
_ARABIC = {
    **{cp: None for cp in range(0x064B, 0x0653)},  # harakat (fathatan .. sukun)
    0x0670: None,  # superscript alef
    0x0640: None,  # tatweel (kashida), purely typographic
    **dict.fromkeys(map(ord, "أإآٱ"), "ا"),
    ord("ى"): "ي",
    ord("ة"): "ه",
    ord("ؤ"): "و",
    ord("ئ"): "ي",
}
# Eastern Arabic (U+0660..) and Persian (U+06F0..) digits, since phones and years mix scripts.
_DIGITS = {
    **{0x0660 + i: str(i) for i in range(10)},
    **{0x06F0 + i: str(i) for i in range(10)},
}
_SPACES = re.compile(r"\s+")


def _is_separator(char: str) -> bool:
    # Punctuation (incl. hyphen, apostrophe, underscore) and symbols split words.
    return unicodedata.category(char)[0] in "PS"


def normalize_text(value: str | None) -> str:
    """Return a case-, accent-, tashkeel- and punctuation-insensitive form of `value`."""
    if not value:
        return ""
    text = unicodedata.normalize("NFKC", value).casefold().translate(_ARABIC)
    # Letter unification runs before NFKD, which would otherwise split أ into ا + hamza.
    text = unicodedata.normalize("NFKD", text)
    # Marks go, and invisible format characters (zero-width space and joiners, soft
    # hyphen, word joiner, byte order mark: Unicode's Cf) too: a name typed or pasted with
    # one reads the same as without, and must not slip past the duplicate check.
    text = "".join(c for c in text
                   if not unicodedata.combining(c) and unicodedata.category(c) != "Cf")
    text = unicodedata.normalize("NFC", text).translate(_DIGITS)
    text = "".join(" " if _is_separator(c) else c for c in text)
    return _SPACES.sub(" ", text).strip()


def name_tokens(*values: str | None) -> list[str]:
    """Return the distinct normalised words of `values`, in first-seen order."""
    seen: dict[str, None] = {}
    for value in values:
        for word in normalize_text(value).split():
            seen.setdefault(word, None)
    return list(seen)
