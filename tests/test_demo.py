"""The demo generator: the same seed gives the same data whatever the day it is run.

Only dates move with `today`. The browser tests seed the demo on the day they run, then
choose what they need in it: data that changed with the weekday once made them pass on some
days and fail on others.
"""

from __future__ import annotations

import random
from datetime import date, timedelta

import sqlalchemy as sa

from bladi_cases import demo
from bladi_cases.extensions import db
from bladi_cases.models import Activity, Beneficiary, Case, Organization, SurveyResponse
from bladi_cases.seed import seed_demo
from bladi_cases.services.activities.activities import rosters


def _seeded_on(today: date) -> dict:
    """Seed the whole demo as on `today` (inside a savepoint, undone after) and describe
    what must not depend on the day: who, in which activity, with which case and wave."""
    savepoint = db.session.begin_nested()
    try:
        demo.seed_demo_beneficiaries(110, 3, today=today)
        demo.seed_demo_activities(3, today=today, weeks=2)  # recent sessions and older ones
        demo.seed_demo_cases(3, today=today)
        demo.seed_demo_responses(3, today=today)
        code = dict(db.session.execute(sa.select(Beneficiary.id, Beneficiary.code)).all())
        return {
            "youth": sorted(db.session.execute(sa.select(
                Beneficiary.code, Beneficiary.sex, Beneficiary.governorate_code)).all()),
            "activities": sorted(
                (a.organization_id, a.site.name, a.name, a.kind, tuple(a.weekday_numbers),
                 tuple(sorted(b.code for b in rosters([a], today)[a.id])))
                for a in db.session.scalars(sa.select(Activity))),
            "cases": sorted(code[i] for i in db.session.scalars(sa.select(Case.beneficiary_id))),
            "waves": sorted((code[i], wave) for i, wave in db.session.execute(sa.select(
                SurveyResponse.beneficiary_id, SurveyResponse.wave))),
        }
    finally:
        savepoint.rollback()
        db.session.expunge_all()  # the bulk-inserted rows too: their ids are given again


def test_the_demo_is_the_same_on_every_day_of_the_week(app):
    seed_demo()  # the demo sites and accounts
    week = [date.today() - timedelta(days=days) for days in range(7)]
    first = _seeded_on(week[0])
    assert first["activities"] and first["cases"] and first["waves"]
    for day in week[1:]:
        assert _seeded_on(day) == first, f"the demo seeded on {day:%A %Y-%m-%d} differs"


class _AgedRandom(random.Random):
    """Draws as usual, except the first integer: a demo youth's age in days."""

    def __init__(self, seed: int, age_days: int):
        super().__init__(seed)
        self.age_days = age_days

    def randint(self, a: int, b: int) -> int:
        if self.age_days is None:
            return super().randint(a, b)
        age_days, self.age_days = self.age_days, None
        return age_days


def test_a_demo_youth_takes_the_same_draws_minor_or_adult(app):
    # 18 years and 4 days: a minor on 28 February 2026 (5 leap days in her 18 years), an
    # adult on 30 November 2026 (4). The youth drawn after her must not change with that.
    ba = db.session.scalars(sa.select(Organization).where(Organization.code == "BA")).one()
    names, delegations = demo._names(), demo._delegations()
    given_by, next_draw = [], []
    for today in (date(2026, 2, 28), date(2026, 11, 30)):
        rng = _AgedRandom(7, 18 * 365 + 4)
        values = demo.demo_registration(rng, ba, [], names, delegations, today)
        given_by.append(values["consent_given_by"])
        next_draw.append(rng.random())
    assert given_by == ["guardian", "self"]
    assert next_draw[0] == next_draw[1]
