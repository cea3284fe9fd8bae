"""Translated labels of the registry's coded values, for templates."""

from ...models.admin import SITE_KIND_LABELS
from ...models.beneficiaries import (
    CONSENT_GIVER_LABELS,
    CONSENT_METHOD_LABELS,
    CONSENT_SCOPE_LABELS,
    EXIT_REASON_LABELS,
    SCHOOL_STATUS_LABELS,
    SEX_LABELS,
)
from ...models.cases import CASE_STATUS_LABELS, NOTE_KIND_LABELS, OUTCOME_LABELS, SERVICE_LABELS
from ...services.beneficiaries.registry import STATUS_LABELS


def labels_context() -> dict:
    """Label dictionaries keyed by stored value."""
    return {
        "sex_labels": SEX_LABELS,
        "setting_labels": SITE_KIND_LABELS,
        "school_labels": SCHOOL_STATUS_LABELS,
        "exit_labels": EXIT_REASON_LABELS,
        "giver_labels": CONSENT_GIVER_LABELS,
        "method_labels": CONSENT_METHOD_LABELS,
        "scope_labels": CONSENT_SCOPE_LABELS,
        "status_labels": STATUS_LABELS,
        "case_status_labels": CASE_STATUS_LABELS,
        "note_kind_labels": NOTE_KIND_LABELS,
        "service_labels": SERVICE_LABELS,
        "outcome_labels": OUTCOME_LABELS,
    }
