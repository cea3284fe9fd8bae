"""Reference data (governorates, the BLADI organisations) and demo data; idempotent."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from .extensions import db
from .models import Governorate, Organization, OrgKind, Role, Site, SiteKind, Survey, User
from .sample_survey import FORM_ID, workbook_bytes
from .services.auth import hash_password
from .services.reports.reports import seed_indicators
from .services.surveys.surveys import import_version

DATA = Path(__file__).parent / "data"

# Reviewing partners and the donor (not in the CSV of funded CSOs).
PARTNERS = [
    ("AMIDEAST", "أمديست", "AMIDEAST", "AMIDEAST", "AMIDEAST", OrgKind.PARTNER),
    ("JAMAITY", "جمعيتي", "Jamaity", "Jamaity", None, OrgKind.PARTNER),
    ("SHANTI", "شانتي", "Shanti", "Shanti", None, OrgKind.PARTNER),
    ("DOS", "وزارة الخارجية الأمريكية", "Département d'État des États-Unis",
     "US Department of State", None, OrgKind.DONOR),
]


def read_csv(name: str) -> list[dict]:
    """The rows of a reference CSV shipped in bladi_cases/data/."""
    with (DATA / name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _upsert(model, key: dict, values: dict):
    obj = db.session.scalars(db.select(model).filter_by(**key)).first()
    if obj is None:
        obj = model(**key, **values)
        db.session.add(obj)
        return obj, True
    for name, value in values.items():
        setattr(obj, name, value)
    return obj, False


def seed_reference() -> dict[str, int]:
    """Load the 24 governorates, the 11 funded CSOs, the partners and the donor."""
    created = {"governorates": 0, "organizations": 0}
    for row in read_csv("governorates.csv"):
        _, new = _upsert(Governorate, {"iso_code": row["iso_code"]},
                         {"name_ar": row["name_ar"], "name_fr": row["name_fr"],
                          "name_en": row["name_en"]})
        created["governorates"] += new
    db.session.flush()
    for row in read_csv("bladi_csos.csv"):
        _, new = _upsert(Organization, {"code": row["code"]}, {
            "name_ar": row["name_ar"], "name_fr": row["name_latin"],
            "name_en": row["name_latin"], "acronym": row["acronym"] or None,
            "kind": OrgKind.FUNDED_CSO.value, "governorate_code": row["governorate_iso"],
            "locality": row["locality_latin"],
        })
        created["organizations"] += new
    for code, name_ar, name_fr, name_en, acronym, kind in PARTNERS:
        _, new = _upsert(Organization, {"code": code}, {
            "name_ar": name_ar, "name_fr": name_fr, "name_en": name_en, "acronym": acronym,
            "kind": kind.value, "governorate_code": "TN-11", "locality": "Tunis",
        })
        created["organizations"] += new
    db.session.flush()
    created["surveys"] = int(seed_sample_survey())

    created["indicators"] = seed_indicators()
    return created


# Synthetic sites, one or two per CSO, matching what each CSO does (PROGRAM.md).
DEMO_SITES = [
    ("ACEC", "École primaire Ibn Khaldoun, El Kabaria", SiteKind.SCHOOL, "TN-11", "El Kabaria"),
    ("KS", "Maison des jeunes de Séjoumi", SiteKind.YOUTH_CENTRE, "TN-11", "Séjoumi"),
    ("KHATWA", "Maison des jeunes de Khaznadar", SiteKind.YOUTH_CENTRE, "TN-11", "Khaznadar"),
    ("ARA", "Collège d'Amdoun", SiteKind.SCHOOL, "TN-31", "Amdoun"),
    ("BA", "Centre de rééducation des mineurs, Sfax", SiteKind.REHABILITATION_CENTRE,
     "TN-61", "Sfax"),
    ("BA", "Maison des jeunes de Sfax Médina", SiteKind.YOUTH_CENTRE, "TN-61", "Sfax"),
    ("ATTEJ", "Lycée Habib Bourguiba, Sfax", SiteKind.SCHOOL, "TN-61", "Sfax"),
    ("SOUTKOM", "Maison des jeunes de Gabès", SiteKind.YOUTH_CENTRE, "TN-81", "Gabès"),
    ("AFEK", "Maison des jeunes de Kébili", SiteKind.YOUTH_CENTRE, "TN-73", "Kébili"),
    ("COMM", "Maison des jeunes de Ben Guerdane", SiteKind.YOUTH_CENTRE, "TN-82",
     "Ben Guerdane"),
    ("HE", "École primaire El Menzel, Gabès", SiteKind.SCHOOL, "TN-81", "Gabès"),
    ("HE", "École primaire de Médenine Nord", SiteKind.SCHOOL, "TN-82", "Médenine"),
    ("MASHHAD", "Collège de Gafsa Ville", SiteKind.SCHOOL, "TN-71", "Gafsa"),
]


@dataclass(frozen=True)
class DemoUser:
    """A demo account; its password is printed by `seed demo`."""

    email: str
    name: str
    role: Role
    org: str | None
    password: str


DEMO_USERS = [
    DemoUser("worker@demo.bladi.tn", "Amal Trabelsi", Role.FIELD_WORKER, "BA", "Olive-Tree-4821"),
    DemoUser("manager@demo.bladi.tn", "Sami Ben Salah", Role.CSO_MANAGER, "BA",
             "Sahara-Wind-7305"),
    DemoUser("worker.acec@demo.bladi.tn", "Hela Gharbi", Role.FIELD_WORKER, "ACEC",
             "Kasbah-Door-6610"),
    DemoUser("reviewer@demo.bladi.tn", "Leila Mansour", Role.REVIEWER, "AMIDEAST",
             "Medina-Gate-1944"),
    DemoUser("donor@demo.bladi.tn", "John Carter", Role.DONOR, "DOS", "Carthage-Sun-5560"),
    DemoUser("admin@demo.bladi.tn", "Nadia Jaziri", Role.ADMIN, None, "Djerba-Sea-3172"),
]


def seed_demo() -> list[DemoUser]:
    """Reference data, demo sites and one demo account per role (passwords reset to the
    demo ones each run, so the printed list is always right)."""
    seed_reference()
    orgs = {o.code: o for o in db.session.scalars(db.select(Organization))}
    for code, name, kind, governorate, locality in DEMO_SITES:
        site, _ = _upsert(Site, {"name": name}, {"kind": kind.value,
                                                 "governorate_code": governorate,
                                                 "locality": locality})
        if orgs[code] not in site.organizations:
            site.organizations.append(orgs[code])
    for demo in DEMO_USERS:
        _upsert(User, {"email": demo.email}, {
            "display_name": demo.name, "role": demo.role.value,
            "organization_id": orgs[demo.org].id if demo.org else None,
            "password_hash": hash_password(demo.password), "active": True,
            "locked_until": None, "failed_login_count": 0,
        })
    db.session.flush()
    return DEMO_USERS


def seed_sample_survey() -> bool:
    """Import and publish the shipped sample survey once (program-wide). True if added."""
    if db.session.scalars(db.select(Survey).where(Survey.code == FORM_ID,
                                                  Survey.organization_id.is_(None))).first():
        return False
    import_version(None, workbook_bytes(), None, publish=True)
    return True
