"""The role's home page: what it shows, read in one call (`home_page`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from sqlalchemy.orm import joinedload

from ..extensions import db
from ..models import BeneficiaryCount, Organization, OrgKind, Role, Site, User
from ..policy import kept_statement, scoped
from .activities.activities import today_items
from .admin import notices_for
from .cases.cases import due_page


@dataclass(frozen=True, slots=True)
class HomePage:
    """What a home page shows: CSO staff see their sites, today's activities, follow-ups
    due and the youth count (a manager also the notices and active staff); reviewers, the
    donor and administrators the funded CSOs with their sites' count. What a role does
    not see is None."""

    sites: list | None = None
    items: list | None = None  # (activity, its session today or None)
    due: list | None = None  # DueItem, the most urgent first (at most the limit asked)
    due_total: int | None = None
    youth_count: int | None = None
    notices: list | None = None
    staff_count: int | None = None
    csos: list | None = None  # (organization, number of sites)

    def context(self) -> dict:
        """The template's variables: those the role sees (`due` apart: the view prints
        its lines)."""
        return {name: getattr(self, name) for name in self.__slots__
                if name != "due" and getattr(self, name) is not None}


def home_page(user: User, today: date, due_limit: int | None) -> HomePage:
    """Read the home page of `user`: the follow-ups up to `due_limit` (None: all)."""
    if user.is_cso_staff:
        # The statements kept per user (`policy.kept_statement`): building them cost more
        # than running them.
        sites = db.session.scalars(kept_statement("home.sites", user, lambda who: scoped(
            Site, who).order_by(Site.name).options(joinedload(Site.governorate)))).all()
        due, due_total = due_page(user, today, due_limit)
        # The count the database keeps (BeneficiaryCount): one row, where counting read
        # one index entry per youth (100,000 a view at 100,000 youth). No row: no youth yet.
        youth_count = db.session.scalar(kept_statement(
            "home.youth_count", user, lambda who: scoped(BeneficiaryCount, who)
            .with_only_columns(BeneficiaryCount.live))) or 0
        manager = user.role == Role.CSO_MANAGER
        return HomePage(
            sites=sites, items=today_items(user, today), due=due, due_total=due_total,
            youth_count=youth_count, notices=notices_for(user) if manager else None,
            staff_count=db.session.scalar(sa.select(sa.func.count()).select_from(
                scoped(User, user).where(User.active.is_(True)).subquery()))
            if manager else None)
    if user.role in (Role.REVIEWER, Role.DONOR, Role.ADMIN):
        return HomePage(csos=db.session.execute(
            scoped(Organization, user).add_columns(sa.func.count(Site.id))
            .where(Organization.kind == OrgKind.FUNDED_CSO)
            .outerjoin(Organization.sites)
            .group_by(Organization.id).order_by(Organization.code)).all())
    return HomePage()
