"""Privacy primitives: field encryption, blind indexes, normalisation."""

from .crypto import DataKeyError, FieldCipher, cipher_from_config, new_key, parse_keys
from .normalize import name_tokens, normalize_text

__all__ = [
    "DataKeyError",
    "FieldCipher",
    "cipher_from_config",
    "name_tokens",
    "new_key",
    "normalize_text",
    "parse_keys",
]
