"""The beneficiary registry: list and search, registration, record, consent, enrolment,
spreadsheet import, access and erasure requests."""

from flask import Blueprint

bp = Blueprint("beneficiaries", __name__, url_prefix="/beneficiaries")

from . import imports, views  # noqa: E402,F401
