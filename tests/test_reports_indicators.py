"""The indicator engine: fiscal periods, and indicators computed from the records."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from bladi_cases.extensions import db
from bladi_cases.models import Role
from bladi_cases.privacy import suppress
from bladi_cases.services.activities import activities
from bladi_cases.services.reports.indicators import Period, compute

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
    ba = [org("BA")]
    # Near 1 October the sessions straddle two fiscal years: count them in each.
    years = {Period.containing(TODAY - timedelta(days=d)).fiscal_year for d in days + [7]}
    reached = compute("youth_reached", wide, ba)
    assert reached.total == 2 and reached.by["sex"] == {"female": 1, "male": 1}
    assert reached.by["cso"] == {"BA": 2}
    assert compute("youth_placed", wide, ba).by["sex"] == {"female": 1}
    assert sum(compute("sessions_held", Period(y), ba).total for y in years) == 11
    hours = sum(compute("participation_hours", Period(y), ba).total for y in years)
    assert hours == 11.5  # ten sessions of 1 h and the factory's of 1.5 h
    if len(years) == 1:  # 11 sessions, the girl present at 11: at least 10 in the period
        assert compute("youth_10_sessions", wide, ba).by["sex"] == {"female": 1}
    assert compute("youth_reached", wide, [org("KS")]).total == 0
    # What a reviewer would get: the counts of 1 are never shown.
    table = suppress({(k, "all"): v for k, v in reached.by["sex"].items()},
                     ["female", "male"], ["all"], k=5)
    assert set(table.cells.values()) == {"<5"}
