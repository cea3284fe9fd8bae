"""The offline field app: what a phone downloads before going out, and the retry-safe
sync of what it recorded offline."""
