"""Synthetic records for demonstrations and benchmarks: young people with plausible
Tunisian names, activities with a term of attendance, case files, survey responses.
Deterministic for a given seed, whatever the day (only dates move with `today`: the same
young people, activities, rosters, cases and survey waves); none of it is real."""

from __future__ import annotations

import random
import uuid as uuid_module
from datetime import date, timedelta
from types import SimpleNamespace

from .extensions import db
from .models import (
    Activity,
    Beneficiary,
    Case,
    CaseNote,
    ConsentScope,
    Organization,
    OrgKind,
    ServiceProvider,
    Site,
    SiteKind,
    Survey,
    SurveyResponse,
    User,
)
from .models.common import refresh_statistics
from .sample_survey import FORM_ID
from .seed import read_csv
from .services.activities.activities import create_activity, enrol_in_activity, record_session
from .services.beneficiaries.registry import create_validated
from .services.beneficiaries.validation import validate_registration
from .services.cases import cases as case_service
from .services.surveys.surveys import submit


def _names() -> dict[str, list[tuple[str, str]]]:
    names: dict[str, list[tuple[str, str]]] = {"female": [], "male": [], "family": []}
    for row in read_csv("names_tn.csv"):
        names[row["kind"]].append((row["name_ar"], row["name_latin"]))
    return names


def _delegations() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for row in read_csv("delegations_tn.csv"):
        found.setdefault(row["governorate_iso"], []).append(row["name_fr"])
    return found


MOBILE_PREFIXES = (20, 22, 23, 24, 25, 26, 27, 28, 29, 50, 52, 53, 54, 55, 56, 58, 90, 92,
                   93, 94, 95, 96, 97, 98, 99)
RELATIONSHIPS = ("أم", "أب", "ولي قانوني", "جدة", "خال")


def demo_registration(rng, org: Organization, sites: list[Site], names, delegations,
                      today: date) -> dict:
    """Synthetic registration values for one young person of `org` (plausible, not real)."""
    sex = rng.choice(("female", "male"))
    first_ar, first_latin = rng.choice(names[sex])
    last_ar, last_latin = rng.choice(names["family"])
    age_days = rng.randint(10 * 365 + 3, 29 * 365 + 300)
    birth = today - timedelta(days=age_days)
    site = rng.choice(sites) if sites else None
    governorate = site.governorate_code if site else org.governorate_code
    minor = (today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))) < 18
    rehab = site is not None and site.kind == SiteKind.REHABILITATION_CENTRE
    scripts = rng.random()
    values = {
        "first_name_ar": first_ar if scripts < 0.85 else None,
        "last_name_ar": last_ar if scripts < 0.85 else None,
        "first_name_latin": first_latin if scripts > 0.3 else None,
        "last_name_latin": last_latin if scripts > 0.3 else None,
        "sex": sex, "birth_date": birth, "governorate_code": governorate,
        "delegation": rng.choice(delegations.get(governorate, [None])),
        "setting_kind": site.kind if site else SiteKind.YOUTH_CENTRE.value,
        "school_status": rng.choice(["in_school", "in_school", "dropped_out",
                                     "vocational_training", "working", "none"]),
        "disability": rng.random() < 0.06,
        "first_contact_date": today - timedelta(days=rng.randint(0, 400)),
        "phone": f"{rng.choice(MOBILE_PREFIXES)}{rng.randint(0, 999_999):06d}"
        if rng.random() < .6 else None,
        "site": site,
        "consent_method": rng.choice(["signed_form", "signed_form", "witnessed_verbal"]),
        "consent_scopes": ["participation", "surveys"] + (["sharing"] if rng.random() < .7
                                                           else []),
    }
    values["consent_date"] = values["first_contact_date"]
    # Drawn for adults too: near an 18th birthday, being a minor depends on the leap days
    # before `today`, and must not change the young people drawn after this one.
    guardian_ar = rng.choice(names[rng.choice(("female", "male"))])[0]
    relationship = rng.choice(RELATIONSHIPS)
    if minor:
        values.update(consent_given_by="authority" if rehab else "guardian",
                      guardian_name=f"{guardian_ar} {last_ar}",
                      guardian_relationship=relationship,
                      consent_authority="إدارة المركز" if rehab else None)
    else:
        values["consent_given_by"] = "self"
    return values


def seed_demo_beneficiaries(count: int, seed: int = 1, today: date | None = None,
                            org_codes: list[str] | None = None) -> int:
    """`count` synthetic young people spread over the 11 CSOs (or `org_codes`), the same
    for the same seed."""
    today = today or date.today()
    rng = random.Random(seed)
    names, delegations = _names(), _delegations()
    csos = db.session.scalars(db.select(Organization).where(
        Organization.kind == OrgKind.FUNDED_CSO).order_by(Organization.code)).all()
    if org_codes:
        csos = [o for o in csos if o.code in org_codes]
    pending: dict[int, list] = {o.id: [] for o in csos}
    for index in range(count):
        org = csos[index % len(csos)]
        values = demo_registration(rng, org, list(org.sites), names, delegations, today)
        pending[org.id].append(validate_registration(values, org, today))
        if len(pending[org.id]) == 500:
            create_validated(None, org, pending[org.id])
            pending[org.id] = []
    for org in csos:
        if pending[org.id]:
            create_validated(None, org, pending[org.id])
    refresh_statistics(db.session, "beneficiary", "beneficiary_name_index")
    return count


ACTIVITY_PLANS = {
    SiteKind.SCHOOL: [("نادي المسرح", "drama"), ("نادي الموسيقى", "music"),
                      ("ورشة الفنون التشكيلية", "arts")],
    SiteKind.YOUTH_CENTRE: [("ورشة المهارات الحياتية", "life_skills"),
                            ("حلقات توعية حول الهجرة غير النظامية", "awareness_session"),
                            ("نادي الرياضة", "sport")],
    SiteKind.REHABILITATION_CENTRE: [("تكوين مهني: الكهرباء", "vocational_training"),
                                     ("مرافقة نفسية اجتماعية", "psychosocial_support")],
}


def seed_demo_activities(seed: int = 1, today: date | None = None, weeks: int = 12) -> int:
    """For each CSO without activities: one per site, a term of sessions twice a week and
    attendance (most youth come often, a few stop coming). Returns sessions created."""
    today = today or date.today()
    rng = random.Random(seed)
    start = today - timedelta(weeks=weeks)
    created = 0
    for org in db.session.scalars(db.select(Organization).where(
            Organization.kind == OrgKind.FUNDED_CSO).order_by(Organization.code)):
        if db.session.scalar(db.select(db.func.count()).select_from(Activity).where(
                Activity.organization_id == org.id)):
            continue
        staff = db.session.scalars(db.select(User).where(
            User.organization_id == org.id, User.active.is_(True))).all()
        youth = [b for b in db.session.scalars(db.select(Beneficiary).where(
            Beneficiary.organization_id == org.id, Beneficiary.erased_at.is_(None)))
            if b.allows(ConsentScope.PARTICIPATION)]
        if not youth:
            continue
        actor = staff[0] if staff else None  # None: the demo generator itself
        for site in org.sites:
            name, kind = rng.choice(ACTIVITY_PLANS[SiteKind(site.kind)])
            days = sorted(rng.sample(range(6), 2))
            activity = create_activity(actor, org, {
                "name": name, "kind": kind, "site": site, "planned_start": start,
                "planned_end": today + timedelta(weeks=4), "planned_sessions": 2 * (weeks + 4),
                "default_duration_minutes": rng.choice((60, 90, 120)),
                "completion_rule": "percent", "completion_threshold": 75,
                "present_by_default": True, "weekdays": days, "facilitators": staff})
            members = rng.sample(youth, min(len(youth), rng.randint(12, 25)))
            for member in members:
                enrol_in_activity(actor, member, activity, start)
            habits = {m.id: rng.choice((0.95, 0.9, 0.8, 0.7, 0.5)) for m in members}
            dropped = {m.id for m in rng.sample(members, max(1, len(members) // 8))}
            day = start
            while day < today:
                if day.weekday() in days:
                    recent = (today - day).days < 12
                    marks = {}
                    for member in members:
                        # Drawn even for those who stopped coming: how many sessions are
                        # recent depends on today's weekday, and must not change the draws
                        # (so the activities and rosters) that follow.
                        mark = "present" if rng.random() < habits[member.id] else \
                            rng.choice(("absent", "absent", "excused"))
                        marks[member.id] = "absent" if member.id in dropped and recent \
                            else mark
                    record_session(actor, activity, {
                        "date": day, "duration_minutes": activity.default_duration_minutes,
                        "facilitator_id": getattr(actor, "id", None), "topic": None}, marks,
                        today=today)
                    created += 1
                day += timedelta(days=1)
    return created


DEMO_PROVIDERS = [
    ("مكتب التشغيل والعمل المستقل", "employment"),
    ("مركز التكوين والتدريب المهني", "vocational_training"),
    ("مركز الصحة الأساسية", "health"),
    ("جمعية المساعدة القانونية", "legal_aid"),
]
DEMO_NOTES = [
    ("phone_call", "اتصال هاتفي مع الشاب(ة): الوضع مستقر، يرغب في تكوين مهني."),
    ("home_visit", "زيارة منزلية: العائلة متعاونة، نحتاج إلى وثائق الهوية."),
    ("centre_visit", "لقاء في المركز لتحضير ملف التسجيل في التكوين."),
    ("family_contact", "اتصال مع الأم لمتابعة الحضور في الورشات."),
]
DEMO_GOALS = ["استخراج بطاقة التعريف الوطنية", "التسجيل في تكوين مهني",
              "إيجاد تربص في مؤسسة", "العودة إلى الدراسة في السنة المقبلة"]


def seed_demo_cases(seed: int = 1, today: date | None = None) -> int:
    """For each CSO without cases: a service directory and case files for some of its youth
    (needs, a plan, notes, referrals, outcomes), with follow-ups due today and overdue."""
    today = today or date.today()
    rng = random.Random(seed)
    opened = 0
    for org in db.session.scalars(db.select(Organization).where(
            Organization.kind == OrgKind.FUNDED_CSO).order_by(Organization.code)):
        if db.session.scalar(db.select(db.func.count()).select_from(Case).where(
                Case.organization_id == org.id)):
            continue
        youth = db.session.scalars(db.select(Beneficiary).where(
            Beneficiary.organization_id == org.id, Beneficiary.erased_at.is_(None))
            .order_by(Beneficiary.id)).all()
        if not youth:
            continue
        staff = db.session.scalars(db.select(User).where(User.organization_id == org.id)
                                   .order_by(User.role != "field_worker", User.id)).all()
        actor = staff[0] if staff else None
        providers = [db.session.scalars(db.select(ServiceProvider).where(
            ServiceProvider.organization_id == org.id, ServiceProvider.name == name)).first()
            or case_service.save_provider(actor, org.id, {
                "name": name, "service_type": kind, "governorate_code": org.governorate_code})
            for name, kind in DEMO_PROVIDERS]
        for member in rng.sample(youth, max(2, len(youth) // 7)):
            start = max(member.first_contact_date, today - timedelta(days=200))
            case = case_service.open_case(actor or _system_actor(org), member, {
                "opened_on": start, "workers": list(staff[:1]), "risk_level":
                rng.choice(("low", "medium", "high")),
                "needs": {n: rng.randint(1, 3) for n in rng.sample(
                    ["education", "vocational_training", "employment", "psychosocial_support",
                     "family", "documents", "health"], rng.randint(1, 3))}}, today=today)
            writer = actor or _system_actor(org)
            case_service.change_status(writer, case, "active", None, today)
            case_service.add_goal(writer, case, {"description": rng.choice(DEMO_GOALS),
                                                 "target_date": today + timedelta(
                                                     days=rng.randint(0, 30))}, today)
            for kind, text in rng.sample(DEMO_NOTES, rng.randint(1, 3)):
                case_service.add_note(writer, case, {
                    "kind": kind, "text": text, "confidential": rng.random() < 0.15,
                    "note_date": today - timedelta(days=rng.randint(0, 60)),
                    "due_date": today + timedelta(days=rng.randint(0, 10))
                    if rng.random() < 0.5 else None}, today)
            provider = rng.choice(providers)
            referral = case_service.add_referral(writer, case, {
                "provider": provider, "service_type": provider.service_type,
                "proposed_on": today - timedelta(days=40)}, today)
            if rng.random() < 0.7:
                case_service.update_referral(writer, referral, "made",
                                             today - timedelta(days=30), None, today)
                if rng.random() < 0.6:
                    case_service.update_referral(writer, referral, "completed",
                                                 today - timedelta(days=10), None, today)
            if rng.random() < 0.3:
                case_service.add_outcome(writer, case, {
                    "kind": rng.choice(("job", "training_completed", "returned_to_school")),
                    "on_date": max(start, today - timedelta(days=rng.randint(20, 190))),
                    "sector": rng.choice(("فلاحة", "بناء", "خدمات", "صناعات تقليدية")),
                    "formal": rng.random() < 0.4, "full_time": rng.random() < 0.6}, today)
            opened += 1
        # A few follow-ups already late, as in real life.
        for note in db.session.scalars(db.select(CaseNote).where(
                CaseNote.organization_id == org.id, CaseNote.due_date.is_not(None)).limit(2)):
            note.due_date = today - timedelta(days=rng.randint(1, 5))
    if opened:
        # Written in bulk: the planner's statistics now (without them, on PostgreSQL with
        # autovacuum off as on SQLite, a worker's follow-ups read the whole CSO's notes).
        db.session.flush()
        refresh_statistics(db.session, "case_file", "case_worker", "case_note", "case_goal",
                           "referral", "outcome", "case_event")
    return opened


def _system_actor(org: Organization):
    """A stand-in author for demo writes in a CSO that has no staff account."""
    return SimpleNamespace(id=None, organization_id=org.id, role="cso_manager",
                           is_cso_staff=True)


def _demo_answers(rng, definition: dict, level: float) -> dict:
    """Plausible answers; `level` (0-1) moves the wellbeing items up (an endline)."""
    answers = {"situation": rng.choice(["studying", "training", "working", "none"])}
    if answers["situation"] != "studying":
        answers["has_job"] = "yes" if answers["situation"] == "working" else "no"
        if answers["has_job"] == "yes":
            answers["job_hours"] = str(rng.randint(10, 48))
    answers["activities"] = rng.sample(["arts", "sport", "music", "volunteering"],
                                       rng.randint(1, 2))
    for item in ("w1", "w3", "w4", "trust_staff"):
        answers[item] = str(max(1, min(5, round(rng.gauss(2.6 + 2 * level, 0.8)))))
    for item in ("w2", "w5"):  # reverse-coded: agreeing is worse
        answers[item] = str(max(1, min(5, round(rng.gauss(3.4 - 2 * level, 0.8)))))
    return answers


def seed_demo_responses(seed: int = 1, today: date | None = None) -> int:
    """Baseline responses for about 40% of youth with survey consent, endlines (better on
    average) for half of those. Only when the sample survey has no response yet."""
    today = today or date.today()
    rng = random.Random(seed)
    survey = db.session.scalars(db.select(Survey).where(
        Survey.code == FORM_ID, Survey.organization_id.is_(None))).first()
    if survey is None or survey.current is None or db.session.scalar(
            db.select(db.func.count()).select_from(SurveyResponse)):
        return 0
    version, made = survey.current, 0
    for org in db.session.scalars(db.select(Organization).where(
            Organization.kind == OrgKind.FUNDED_CSO).order_by(Organization.code)):
        actor = db.session.scalars(db.select(User).where(User.organization_id == org.id)
                                   .order_by(User.id)).first() or _system_actor(org)
        youth = [b for b in db.session.scalars(db.select(Beneficiary).where(
            Beneficiary.organization_id == org.id).order_by(Beneficiary.id))
            if b.allows(ConsentScope.SURVEYS)]
        for member in rng.sample(youth, int(len(youth) * 0.4)):
            waves = [("baseline", 0.0)] + ([("endline", 0.4)] if rng.random() < 0.5 else [])
            for wave, level in waves:
                submit(actor, version, member, wave, _demo_answers(rng, version.definition,
                                                                   level),
                       uuid_module.UUID(int=rng.getrandbits(128)), "en",
                       today - timedelta(days=120 if wave == "baseline" else 5))
                made += 1
    return made
