"""A youth's record page: everything it shows, read in one call (`record_page`), the
identity decrypted for the owning CSO and audited (`registry.reveal`)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from sqlalchemy.orm.attributes import set_committed_value

from ...extensions import db
from ...models import (
    Beneficiary,
    Case,
    Consent,
    Enrolment,
    Survey,
    SurveyResponse,
    SurveyVersion,
)
from ...policy import ScopeOf, kept_statement, scoped
from ..activities import participation
from ..cases.cases import case_events
from ..surveys.surveys import score_changes
from .registry import Identity, TimelineEvent, reveal, timeline
from .search import age_band_of


@dataclass(frozen=True, slots=True)
class RecordPage:
    """What the record page shows besides the youth's row (whose consents, enrolments and
    governorate are loaded on it)."""

    today: date
    identity: Identity | None  # None once erased
    timeline: list[TimelineEvent]  # newest first
    cases: list[sa.Row]  # id, uuid, status, opened_on; newest first
    responses: list[SurveyResponse]
    surveys: list[Survey]  # those with a published version
    changes: list  # each scale's baseline -> endline change (`score_changes`)
    age_band: str | None
    participations: list


def record_page(beneficiary: Beneficiary, user, today: date) -> RecordPage:
    """Read the record page of a youth the policy let `user` open (`get_or_404`): the
    identity (audited, unless erased), consents, enrolments, governorate, case files,
    survey responses, the surveys to fill, the timeline and each activity's attendance."""
    identity = None if beneficiary.erased_at else reveal(beneficiary, user)
    youth = {"beneficiary_id": beneficiary.id}
    # The consents and enrolments the page reads, given to their relationships as loaded:
    # the rows (and order) of their lazy loads, at half the CPU. (The governorate comes
    # with the youth's row, `joinedload` in the view; else its lazy load reads it.)
    for model, name in ((Consent, "consents"), (Enrolment, "enrolments")):
        set_committed_value(beneficiary, name, db.session.scalars(
            _youth_rows(model, name), youth).all())
    # The case files as rows (the page shows their uuid, status and date; the timeline reads
    # their id), not objects.
    cases = db.session.execute(kept_statement("record.cases", user, _record_cases),
                               youth).all()
    responses = db.session.scalars(kept_statement(
        "record.responses", user, _record_responses), youth).all()
    surveys = db.session.scalars(kept_statement("record.surveys", user, _record_surveys)).all()
    events = timeline(beneficiary) + case_events(cases, user) + [
        TimelineEvent(r.submitted_on, "survey", {"response": r}) for r in responses]
    return RecordPage(
        today=today, identity=identity,
        timeline=sorted(events, key=lambda e: e.on, reverse=True), cases=cases,
        responses=responses, surveys=surveys, changes=score_changes(responses),
        age_band=age_band_of(beneficiary, today),
        participations=participation.for_beneficiary(beneficiary, today))


@functools.cache
def _youth_rows(model, relationship: str):
    """The statement of a youth's `Beneficiary.<relationship>` (built once)."""
    order = getattr(Beneficiary, relationship).property.order_by
    return sa.select(model).where(model.beneficiary_id == sa.bindparam("beneficiary_id"))\
        .order_by(*order)


# The record's statements, built once per user (policy.kept_statement), the youth a
# parameter. The ids go through the youth's index: SQLite has no statistics of these
# tables, and would read every case file (every response) of the CSO through the
# organization index.
def _record_cases(user: ScopeOf) -> sa.Select:
    return scoped(Case, user).with_only_columns(
        Case.id, Case.uuid, Case.status, Case.opened_on).where(Case.id.in_(
            sa.select(Case.id).where(Case.beneficiary_id == sa.bindparam("beneficiary_id"))))\
        .order_by(Case.opened_on.desc())


def _record_responses(user: ScopeOf) -> sa.Select:
    return scoped(SurveyResponse, user).where(SurveyResponse.id.in_(
        sa.select(SurveyResponse.id).where(
            SurveyResponse.beneficiary_id == sa.bindparam("beneficiary_id"))))\
        .order_by(SurveyResponse.id)


def _record_surveys(user: ScopeOf) -> sa.Select:
    """The surveys with a published version (`Survey.current`), asked in the query: not
    one query per survey for its versions."""
    return scoped(Survey, user).where(Survey.versions.any(
        SurveyVersion.published_at.is_not(None))).order_by(Survey.code)
