"""Privacy primitives: field encryption, blind indexes, normalisation, small-cell
suppression."""

from .crypto import (
    DataKeyError,
    FieldCipher,
    UndecryptableValueError,
    cipher_from_config,
    new_key,
    parse_keys,
)
from .normalize import name_tokens, normalize_text
from .suppression import WITHHELD, PublishedTable, is_withheld, percentage, published, suppress

__all__ = [
    "DataKeyError",
    "PublishedTable",
    "FieldCipher",
    "cipher_from_config",
    "name_tokens",
    "new_key",
    "normalize_text",
    "parse_keys",
    "WITHHELD",
    "is_withheld",
    "percentage",
    "published",
    "suppress",
    "UndecryptableValueError",
]
