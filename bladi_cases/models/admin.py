"""Organisations (funded CSOs, partners, the donor), governorates and sites."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .common import PublicIdMixin, TitledEnum, utcnow


class OrgKind(TitledEnum):
    """What an organisation is to the program."""

    FUNDED_CSO = "funded_cso"
    PARTNER = "partner"
    DONOR = "donor"

    __titles__ = {"funded_cso": _l("Funded CSO"), "partner": _l("Partner"), "donor": _l("Donor")}


class SiteKind(TitledEnum):
    """The setting where activities happen (a disaggregation of every indicator)."""

    REHABILITATION_CENTRE = "rehabilitation_centre"
    YOUTH_CENTRE = "youth_centre"
    SCHOOL = "school"

    __titles__ = {
        "rehabilitation_centre": _l("Rehabilitation centre"),
        "youth_centre": _l("Youth centre"),
        "school": _l("School"),
    }


def localized(obj, field: str, lang: str) -> str:
    """The `field_<lang>` value of obj, falling back to French, then Arabic."""
    for code in (lang, "fr", "ar"):
        value = getattr(obj, f"{field}_{code}", None)
        if value:
            return value
    return ""


class Governorate(db.Model):
    """One of Tunisia's 24 governorates, keyed by its ISO 3166-2 code."""

    __tablename__ = "governorate"

    iso_code: Mapped[str] = mapped_column(sa.String(5), primary_key=True)
    name_ar: Mapped[str] = mapped_column(sa.String(60))
    name_fr: Mapped[str] = mapped_column(sa.String(60))
    name_en: Mapped[str] = mapped_column(sa.String(60))

    def name(self, lang: str) -> str:
        """The governorate's name in a UI language code (ar, fr, en)."""
        return localized(self, "name", lang)


site_organization = sa.Table(
    "site_organization",
    db.metadata,
    sa.Column("site_id", sa.ForeignKey("site.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("organization_id", sa.ForeignKey("organization.id", ondelete="CASCADE"),
              primary_key=True),
)


class Organization(PublicIdMixin, db.Model):
    """A funded CSO, a reviewing partner (AMIDEAST, Jamaity, Shanti) or the donor."""

    __tablename__ = "organization"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(20), unique=True)
    name_ar: Mapped[str] = mapped_column(sa.String(200))
    name_fr: Mapped[str] = mapped_column(sa.String(200))
    name_en: Mapped[str] = mapped_column(sa.String(200))
    acronym: Mapped[str | None] = mapped_column(sa.String(30))
    kind: Mapped[str] = mapped_column(sa.String(20))
    governorate_code: Mapped[str | None] = mapped_column(sa.ForeignKey("governorate.iso_code"))
    locality: Mapped[str | None] = mapped_column(sa.String(120))
    active: Mapped[bool] = mapped_column(default=True)
    # Last sequence number given to a beneficiary code of this CSO (BA-0042 -> 42).
    beneficiary_counter: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    governorate: Mapped[Governorate | None] = relationship()
    sites: Mapped[list[Site]] = relationship(
        secondary=site_organization, back_populates="organizations", order_by="Site.name"
    )

    __table_args__ = (
        sa.CheckConstraint(f"kind IN {tuple(k.value for k in OrgKind)}", name="kind"),
    )

    def name(self, lang: str) -> str:
        """The organisation's name in a UI language code."""
        return localized(self, "name", lang)

    @property
    def is_funded_cso(self) -> bool:
        """True for the CSOs whose staff record beneficiaries."""
        return self.kind == OrgKind.FUNDED_CSO


class Site(PublicIdMixin, db.Model):
    """A place where activities happen: a rehabilitation centre, youth centre or school."""

    __tablename__ = "site"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    kind: Mapped[str] = mapped_column(sa.String(30))
    governorate_code: Mapped[str] = mapped_column(sa.ForeignKey("governorate.iso_code"))
    locality: Mapped[str | None] = mapped_column(sa.String(120))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    governorate: Mapped[Governorate] = relationship()
    organizations: Mapped[list[Organization]] = relationship(
        secondary=site_organization, back_populates="sites", order_by="Organization.code"
    )

    __table_args__ = (
        sa.CheckConstraint(f"kind IN {tuple(k.value for k in SiteKind)}", name="kind"),
    )
