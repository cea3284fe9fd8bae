"""The write side: rules, validation beyond the form, audit entries. Services flush,
never commit: the request commits once (see bladi_cases.__init__)."""

from flask_babel import gettext as _

MAX_MESSAGES = 50  # a page lists at most this many problems, then how many more there are


def capped(messages) -> list:
    """The first MAX_MESSAGES messages, then one saying how many more there are (100,000
    bad rows must not make a page of megabytes)."""
    messages = list(messages) if isinstance(messages, list | tuple) else [messages]
    if len(messages) <= MAX_MESSAGES:
        return messages
    return messages[:MAX_MESSAGES] + [_("…and %(n)s more.", n=len(messages) - MAX_MESSAGES)]


class ValidationError(Exception):
    """A rule refused the change; `errors` maps a form field name (or '') to messages."""

    def __init__(self, errors: dict[str, list[str]]):
        errors = {name: capped(messages) for name, messages in errors.items()}
        super().__init__("; ".join(str(m) for msgs in errors.values() for m in msgs))
        self.errors = errors

    @classmethod
    def one(cls, field: str, message) -> "ValidationError":
        """A failure with a single message on one field."""
        return cls({field: [message]})


def apply_errors(form, failure: ValidationError) -> None:
    """Attach a service's messages to the matching fields of a WTForms form."""
    for name, messages in failure.errors.items():
        field = form._fields.get(name) if name else None
        target = field.errors if field is not None else form.form_errors
        if isinstance(target, tuple):
            target = list(target)
            if field is not None:
                field.errors = target
        target.extend(str(m) for m in messages)
