"""The indicator engine: fiscal periods, and indicators computed from the records."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from bladi_cases.extensions import db
from bladi_cases.models import Role
from bladi_cases.services.activities import activities
from bladi_cases.services.reports import reports
from bladi_cases.services.reports.indicators import Period
from bladi_cases.services.reports.release import year_release

TODAY = date.today()


@pytest.mark.parametrize("day,expected", [
    (date(2026, 10, 1), (2027, 1)), (date(2026, 12, 31), (2027, 1)),
    (date(2027, 1, 1), (2027, 2)), (date(2027, 6, 30), (2027, 3)),
    (date(2027, 9, 30), (2027, 4)),
])
def test_us_fiscal_quarters(day, expected):
    period = Period.containing(day)
    assert (period.fiscal_year, period.quarter) == expected
    assert period.start <= day <= period.end


def test_period_bounds():
    assert (Period(2027, 1).start, Period(2027, 1).end) == (date(2026, 10, 1), date(2026, 12, 31))
    assert (Period(2027, 4).start, Period(2027, 4).end) == (date(2027, 7, 1), date(2027, 9, 30))
    assert (Period(2027).start, Period(2027).end) == (date(2026, 10, 1), date(2027, 9, 30))
    assert str(Period(2027, 2)) == "FY2027 Q2"


def test_indicators_from_the_records(make_user, make_site, make_beneficiary, make_activity,
                                     make_case, org):
    worker = make_user(Role.FIELD_WORKER, "BA")
    site = make_site("BA")
    girl = make_beneficiary("BA", site=site)
    boy = make_beneficiary("BA", sex="male", first_name_ar="وسيم", site=site)
    make_beneficiary("ACEC")  # another CSO: never counted for BA
    activity, _session, _event = make_activity(site, girl, worker)
    activities.enrol_in_activity(worker, boy, activity, TODAY - timedelta(days=30))
    days = [d for d in range(1, 12) if d != 7]  # the factory's session is 7 days ago
    for days_ago in days:
        activities.record_session(worker, activity, {
            "date": TODAY - timedelta(days=days_ago), "start_time": None,
            "duration_minutes": 60}, {girl.id: "present", boy.id: "absent"})
    make_case(girl, worker)
    db.session.commit()
    wide = Period(Period.containing(TODAY).fiscal_year)
    ba = org("BA")
    # What the pages call: the CSO's figures (dashboard, quarterly report) and the year's
    # release (reviewers' dashboard, tracking table and its disaggregation sheet).
    indicator = {i.code: i for i in reports.indicators()}
    release = year_release(wide.fiscal_year, k=5)
    # The true counts its tables are built from (by sex...; by CSO and setting).
    true, settings = release.payload["dimensions"], release.payload["settings"]
    # Near 1 October the sessions straddle two fiscal years: count them in each.
    years = {Period.containing(TODAY - timedelta(days=d)).fiscal_year for d in days + [7]}
    reached = indicator["youth_reached"]
    assert reports.value_of(reached, ba, wide) == 2
    assert true["youth_reached"]["sex"] == {"female": 1, "male": 1}
    assert {c: sum(s.values()) for c, s in settings["youth_reached"].items() if s} == {"BA": 2}
    assert true["youth_placed"]["sex"] == {"female": 1}
    assert sum(reports.value_of(indicator["sessions_held"], ba, Period(y)) for y in years) == 11
    hours = sum(reports.value_of(indicator["participation_hours"], ba, Period(y))
                for y in years)
    assert hours == 11.5  # ten sessions of 1 h and the factory's of 1.5 h
    if len(years) == 1:  # 11 sessions, the girl present at 11: at least 10 in the period
        assert true["youth_10_sessions"]["sex"] == {"female": 1}
    assert reports.value_of(reached, org("KS"), wide) == 0
    # What a reviewer gets: the counts of 1 are never shown.
    assert dict(release.dimension(reached, "sex")) == {"female": "…", "male": "…"}
    assert release.year(reached, "BA") == "…"
