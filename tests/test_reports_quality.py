"""Data-quality flags on the reviewers' dashboard: counts per CSO, never who."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import sqlalchemy as sa

from bladi_cases.extensions import db
from bladi_cases.models import (
    ActivitySession,
    Consent,
    Organization,
    QuarterlyReport,
    Role,
    Survey,
    SurveyResponse,
)
from bladi_cases.sample_survey import FORM_ID
from bladi_cases.services.reports.indicators import Period
from bladi_cases.services.reports.quality import flags_from, year_quality
from bladi_cases.services.reports.release import year_release

TODAY = date.today()


def _org(code: str) -> Organization:
    return db.session.scalars(sa.select(Organization).where(Organization.code == code)).one()


def _respond(youth, wave: str, day: date) -> None:
    survey = db.session.scalars(sa.select(Survey).where(
        Survey.code == FORM_ID, Survey.organization_id.is_(None))).one()
    db.session.add(SurveyResponse(
        uuid=uuid.uuid4(), organization_id=youth.organization_id, version_id=survey.current.id,
        survey_id=survey.id, beneficiary_id=youth.id, wave=wave, answers={}, scores={},
        content_hash=uuid.uuid4().hex, submitted_on=day))
    db.session.flush()


def _row(flags, code):
    return next(f for f in flags if f.org.code == code)


def _flags(orgs: list[Organization], period: Period, today: date | None = None):
    """A quarter's flags as the reviewers' dashboard reads them: the year's (year_quality,
    kept in the figures snapshot), that quarter's picked out by flags_from."""
    return flags_from(year_quality(orgs, period.fiscal_year, today), orgs, period.quarter)


def test_each_flag_counts_what_it_says(make_user, make_site, make_beneficiary, make_activity,
                                       make_case):
    worker = make_user(Role.FIELD_WORKER, "BA")
    site = make_site("BA")
    youth = [make_beneficiary("BA", first_name_ar=f"ريم{i}", site=site) for i in range(4)]
    activity, session, _event = make_activity(site, youth[0], worker,
                                              planned_start=TODAY - timedelta(days=90))
    # A session with nobody marked: flagged in its own quarter only.
    empty = ActivitySession(uuid=uuid.uuid4(), organization_id=activity.organization_id,
                            activity_id=activity.id, date=TODAY, duration_minutes=60,
                            content_hash="test")
    db.session.add(empty)
    # No consent left for one youth.
    db.session.execute(sa.delete(Consent).where(Consent.beneficiary_id == youth[1].id))
    # Baselines: one whose activity ended three weeks ago (endline due), one of a youth in
    # no finished activity (not due), one with its endline (fine).
    activity.planned_end = TODAY - timedelta(days=20)
    _respond(youth[0], "baseline", TODAY - timedelta(days=25))
    _respond(youth[2], "baseline", TODAY - timedelta(days=10))
    _respond(youth[3], "baseline", TODAY - timedelta(days=300))
    _respond(youth[3], "endline", TODAY - timedelta(days=5))
    make_case(youth[0], worker)  # a note due today: not yet overdue
    db.session.commit()
    period = Period.containing(TODAY)
    flags = _flags([_org("BA"), _org("ACEC")], period)
    ba = _row(flags, "BA")
    assert ba.sessions_without_attendance == 1
    assert ba.youth_without_consent == 1
    assert ba.baselines_without_endline == 1
    assert ba.overdue_follow_ups == 0
    assert _row(_flags([_org("BA")], period, TODAY + timedelta(days=5)),
                "BA").overdue_follow_ups >= 2, "the note and the goal are now late"
    acec = _row(flags, "ACEC")
    assert (acec.sessions_without_attendance, acec.youth_without_consent) == (0, 0)
    # The empty session is flagged in its own quarter only.
    assert sum(year_quality([_org("BA")], period.fiscal_year)["BA"][
        "sessions_without_attendance"]) == 1
    # The copy in the year's figures (what the dashboard is given) says the same.
    stored = flags_from(year_release(period.fiscal_year, 5).payload["quality"], [_org("BA")],
                        period.quarter)
    assert stored == [ba]


def test_a_late_report_is_flagged_until_it_is_sent(make_user):
    manager = make_user(Role.CSO_MANAGER, "BA")
    period = Period(2027, 3)
    day = period.start + timedelta(days=45)  # the Q2 report was due 30 days after Q2
    assert _row(_flags([_org("BA")], period, day), "BA").late_report
    assert not _row(_flags([_org("BA")], period, period.start + timedelta(days=10)),
                    "BA").late_report, "not yet late"
    db.session.add(QuarterlyReport(organization_id=_org("BA").id, fiscal_year=2027, quarter=2,
                                   author_id=manager.id, status="submitted", figures={}))
    db.session.commit()
    assert not _row(_flags([_org("BA")], period, day), "BA").late_report


def test_the_dashboard_hides_small_flag_counts(client, make_user, make_beneficiary):
    from .conftest import login

    youth = make_beneficiary("BA")
    db.session.execute(sa.delete(Consent).where(Consent.beneficiary_id == youth.id))
    db.session.commit()
    login(client, make_user(Role.REVIEWER))
    client.set_cookie("lang", "en", domain="bladi.test")
    html = client.get("/reports/").get_data(as_text=True)
    section = html[html.index("Youth without consent"):]
    assert "<th scope=\"row\">BA</th>" in section
    ba = section[section.index("<th scope=\"row\">BA</th>"):]
    assert ba.split("</tr>")[0].count("…") == 1, "one youth without consent: hidden"
