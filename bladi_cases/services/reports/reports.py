"""Upward reporting: the BLADI indicator set, targets, figures per CSO and quarter, the
quarterly report workflow (generate, submit, return, approve and freeze), and what the
dashboards show. Everything a reviewer or the donor sees goes through privacy.suppress()."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _

from ...extensions import db
from ...models import (
    FiguresSnapshot,
    Indicator,
    ManualValue,
    Organization,
    OrgKind,
    QuarterlyReport,
    ReportStatus,
    ReportStep,
    Target,
    User,
)
from ...models.reports import ReportStepAction
from ...privacy.suppression import WITHHELD, published
from .. import ValidationError
from ..audit import Action, record
from .indicators import RULES, Period, totals_by_org


def reporting_years(today: date | None = None) -> range:
    """The fiscal years that have figures: from the award's first (BLADI_AWARD_FIRST_FY) to
    the current one + 1 (targets are set a year ahead). Every report and export refuses
    any other year before computing anything."""
    current = Period.containing(today or date.today()).fiscal_year
    return range(current_app.config["BLADI_AWARD_FIRST_FY"], current + 2)


# code, kind, unit, rule, names (ar, fr, en), definitions (ar, fr, en)
INDICATOR_SET = [
    ("youth_reached", "output", "youth", "youth_reached",
     ("الشباب المستفيدون", "Jeunes touchés", "Youth reached"),
     ("عدد الشباب الملتحقين بنشاط أو موقع خلال الفترة", "Jeunes inscrits à une activité ou un "
      "site pendant la période", "Unique youth enrolled at a site or activity in the period")),
    ("youth_10_sessions", "output", "youth", "youth_10_sessions",
     ("الشباب الذين حضروا 10 حصص على الأقل", "Jeunes présents à au moins 10 séances",
      "Youth who attended at least 10 sessions"),
     ("شباب حضروا 10 حصص أو أكثر خلال الفترة", "Jeunes présents à 10 séances ou plus dans "
      "la période", "Unique youth present at 10 or more sessions in the period")),
    ("sessions_held", "output", "sessions", "sessions_held",
     ("الحصص المنجزة", "Séances réalisées", "Sessions held"),
     ("عدد حصص الأنشطة خلال الفترة", "Séances d'activités tenues dans la période",
      "Activity sessions held in the period")),
    ("participation_hours", "output", "hours", "participation_hours",
     ("ساعات المشاركة", "Heures de participation", "Hours of participation"),
     ("مجموع ساعات حضور الشباب", "Somme des heures de présence des jeunes",
      "Sum of the hours youth were present")),
    ("youth_baseline_endline", "outcome", "youth", "youth_baseline_endline",
     ("الشباب ذوو قياس قبلي وبعدي", "Jeunes avec situation de départ et de fin",
      "Youth with a baseline and an endline"),
     ("شباب أتموا القياس البعدي خلال الفترة ولهم قياس قبلي", "Jeunes dont la mesure de fin "
      "est dans la période et qui ont une mesure de départ",
      "Youth whose endline is in the period and who have a baseline")),
    ("referrals_completed", "output", "referrals", "referrals_completed",
     ("التوجيهات المنجزة", "Orientations abouties", "Referrals completed"),
     ("توجيهات تلقى فيها الشاب الخدمة خلال الفترة", "Orientations où le jeune a reçu le "
      "service dans la période", "Referrals where the youth received the service")),
    ("youth_placed", "outcome", "youth", "youth_placed",
     ("الشباب المدمجون", "Jeunes insérés", "Youth placed"),
     ("شباب حصلوا على عمل أو تكوين أو عادوا إلى الدراسة أو بعثوا مشروعًا",
      "Jeunes ayant obtenu un emploi, une formation, un retour à l'école ou créé une activité",
      "Youth placed in a job, training, back in school or in their own business")),
    ("youth_improved", "outcome", "youth", "youth_improved",
     ("الشباب الذين تحسّن مقياسهم", "Jeunes dont le score s'est amélioré",
      "Youth whose score improved"),
     ("شباب أتموا القياس البعدي خلال الفترة وكانت نتيجتهم فيه أعلى من القياس القبلي",
      "Jeunes dont le score de fin, mesuré dans la période, dépasse celui de départ",
      "Youth whose endline score, taken in the period, is above their baseline score")),
    ("score_change", "outcome", "points", "score_change",
     ("متوسط تغيّر المقياس", "Évolution moyenne du score", "Mean score change"),
     ("متوسط الفرق بين القياس البعدي والقبلي للشباب الذين أتموا القياس البعدي خلال الفترة",
      "Moyenne de (score de fin moins score de départ) des jeunes mesurés en fin de période",
      "Mean of endline minus baseline score, over youth whose endline is in the period")),
    ("youth_employed_3m", "outcome", "youth", "youth_employed_3m",
     ("الشباب الذين ما زالوا يعملون بعد 3 أشهر", "Jeunes toujours en emploi après 3 mois",
      "Youth still employed after 3 months"),
     ("شباب وجدوا عملًا أو بعثوا مشروعًا وما زالوا فيه عند متابعة الأشهر الثلاثة",
      "Jeunes placés en emploi ou à leur compte, toujours en poste au suivi à 3 mois",
      "Youth placed in a job or own business and still in it at the 3-month check")),
    ("youth_employed_6m", "outcome", "youth", "youth_employed_6m",
     ("الشباب الذين ما زالوا يعملون بعد 6 أشهر", "Jeunes toujours en emploi après 6 mois",
      "Youth still employed after 6 months"),
     ("شباب وجدوا عملًا أو بعثوا مشروعًا وما زالوا فيه عند متابعة الأشهر الستة",
      "Jeunes placés en emploi ou à leur compte, toujours en poste au suivi à 6 mois",
      "Youth placed in a job or own business and still in it at the 6-month check")),
    ("staff_trained", "output", "people", None,
     ("أعضاء الفريق المكوَّنون (يُدخل يدويًا)", "Membres formés (saisie manuelle)",
      "Staff trained (entered by hand)"),
     ("عدد أعضاء فريق الجمعية الذين تابعوا تكوينًا، مع الإثبات", "Membres de l'OSC formés, "
      "avec la preuve", "CSO staff who completed a training, with the evidence")),
]


def seed_indicators() -> int:
    """Load the BLADI indicator set (idempotent). Returns how many were added."""
    added = 0
    for position, (code, kind, unit, rule, names, definitions) in enumerate(INDICATOR_SET):
        indicator = db.session.scalars(sa.select(Indicator).where(Indicator.code == code)).first()
        if indicator is None:
            indicator = Indicator(code=code)
            db.session.add(indicator)
            added += 1
        indicator.kind, indicator.unit, indicator.rule, indicator.position = kind, unit, rule, \
            position
        indicator.name = dict(zip(("ar", "fr", "en"), names, strict=True))
        indicator.definition = dict(zip(("ar", "fr", "en"), definitions, strict=True))
        indicator.age_bands = [[10, 14], [15, 17], [18, 24], [25, 29]]
    db.session.flush()
    return added


def indicators() -> list[Indicator]:
    """All indicators, in their reporting order."""
    return db.session.scalars(sa.select(Indicator).order_by(Indicator.position)).all()


def funded_csos() -> list[Organization]:
    """The funded CSOs, by code."""
    return db.session.scalars(sa.select(Organization).where(
        Organization.kind == OrgKind.FUNDED_CSO).order_by(Organization.code)).all()


# --- Figures -----------------------------------------------------------------------------

def value_of(indicator: Indicator, org: Organization, period: Period) -> float:
    """An indicator's true value for one CSO and period (manual ones: the sum entered)."""
    return values_by_org(indicator, period, [org])[org.id]


def values_by_org(indicator: Indicator, period: Period,
                  orgs: list[Organization]) -> dict[int, float]:
    """An indicator's true value for each CSO, in one query."""
    ids = [o.id for o in orgs]
    if indicator.rule in RULES:
        return totals_by_org(indicator.rule, period, ids)
    query = sa.select(ManualValue.organization_id, sa.func.sum(ManualValue.value)).where(
        ManualValue.indicator_id == indicator.id, ManualValue.organization_id.in_(ids),
        ManualValue.fiscal_year == period.fiscal_year).group_by(ManualValue.organization_id)
    if period.quarter:
        query = query.where(ManualValue.quarter == period.quarter)
    found = dict(db.session.execute(query).all())
    return {i: float(found.get(i) or 0) for i in ids}


def figures(org: Organization, period: Period) -> dict[str, float]:
    """Every indicator's value for one CSO and period."""
    return {i.code: value_of(i, org, period) for i in indicators()}


def target_for(indicator: Indicator, org: Organization, fiscal_year: int | None,
               quarter: int | None = None) -> Target | None:
    """The target of a period (fiscal_year None: life of award)."""
    return db.session.scalars(sa.select(Target).where(
        Target.indicator_id == indicator.id, Target.organization_id == org.id,
        Target.fiscal_year.is_(None) if fiscal_year is None else Target.fiscal_year == fiscal_year,
        Target.quarter.is_(None) if quarter is None else Target.quarter == quarter)).first()


def targets_of(fiscal_year: int) -> dict[tuple[int, int, int | None], Target]:
    """Every target bearing on a fiscal year (its own and the life of the award's), by
    (indicator id, CSO id, fiscal year or None), in one query: pages list dozens."""
    rows = db.session.scalars(sa.select(Target).where(
        Target.quarter.is_(None),
        sa.or_(Target.fiscal_year == fiscal_year, Target.fiscal_year.is_(None))))
    return {(t.indicator_id, t.organization_id, t.fiscal_year): t for t in rows}


def _closed(org: Organization, fiscal_year: int | None, quarter: int | None) -> bool:
    """A period is closed once its quarterly report (or, for a year, its Q4) is approved."""
    if fiscal_year is None:
        return False
    return bool(db.session.scalar(sa.select(sa.func.count()).select_from(QuarterlyReport).where(
        QuarterlyReport.organization_id == org.id, QuarterlyReport.fiscal_year == fiscal_year,
        QuarterlyReport.quarter == (quarter or 4),
        QuarterlyReport.status == ReportStatus.APPROVED)))


def set_target(actor: User, indicator: Indicator, org: Organization, fiscal_year: int | None,
               quarter: int | None, value, baseline=None) -> Target:
    """Set a target (and baseline); refused when negative or for a closed period."""
    errors: dict[str, list[str]] = {}
    try:
        value = float(value)
        if value < 0:
            raise ValueError
    except (TypeError, ValueError):
        errors["value"] = [_("A target is a number, zero or more.")]
    if baseline not in (None, ""):
        try:
            baseline = float(baseline)
            if baseline < 0:
                raise ValueError
        except (TypeError, ValueError):
            errors["baseline"] = [_("A baseline is a number, zero or more.")]
    else:
        baseline = None
    if quarter is not None and quarter not in (1, 2, 3, 4):
        errors["quarter"] = [_("Choose a value from the list.")]
    if not errors and _closed(org, fiscal_year, quarter):
        errors["value"] = [_("This period's report is approved: its targets are closed.")]
    if errors:
        raise ValidationError(errors)
    target = target_for(indicator, org, fiscal_year, quarter) or Target(
        indicator_id=indicator.id, organization_id=org.id, fiscal_year=fiscal_year,
        quarter=quarter, value=0)
    target.value, target.baseline = value, baseline
    db.session.add(target)
    db.session.flush()
    record(Action.TARGET_SET, actor=actor, organization_id=org.id,
           detail={"indicator": indicator.code, "fy": fiscal_year, "q": quarter, "value": value})
    return target


AGE_LIMITS = (0, 99)


def set_age_bands(actor: User, indicator: Indicator, text: str) -> Indicator:
    """Set the age bands an indicator is disaggregated by, written "10-14, 15-17, ...":
    each band low-high in years, in order, not overlapping."""
    bands = []
    for part in (text or "").replace("،", ",").split(","):
        part = part.strip()
        if not part:
            continue
        low, dash, high = part.partition("-")
        try:
            low, high = int(low), int(high)
        except ValueError:
            raise ValidationError.one("age_bands", _(
                "Write the bands as ages from-to, separated by commas: 10-14, 15-17.")) from None
        if not dash or not AGE_LIMITS[0] <= low <= high <= AGE_LIMITS[1]:
            raise ValidationError.one("age_bands", _(
                "Write the bands as ages from-to, separated by commas: 10-14, 15-17."))
        if bands and low <= bands[-1][1]:
            raise ValidationError.one("age_bands", _(
                "The bands must follow each other without overlapping."))
        bands.append([low, high])
    if not bands:
        raise ValidationError.one("age_bands", _(
            "Write the bands as ages from-to, separated by commas: 10-14, 15-17."))
    indicator.age_bands = bands
    db.session.flush()
    record(Action.AGE_BANDS_SET, actor=actor,
           detail={"indicator": indicator.code, "bands": bands})
    return indicator


def enter_manual_value(actor: User, indicator: Indicator, org: Organization, period: Period,
                       value, evidence: str) -> ManualValue:
    """A manual indicator's value for a quarter, with the evidence behind it."""
    errors: dict[str, list[str]] = {}
    if indicator.rule is not None:
        errors["indicator"] = [_("This indicator is computed from the records.")]
    try:
        value = float(value)
        if value < 0:
            raise ValueError
    except (TypeError, ValueError):
        errors["value"] = [_("Enter a number, zero or more.")]
    evidence = (evidence or "").strip()
    if not evidence or len(evidence) > 500:
        errors["evidence"] = [_("Say what the figure rests on (at most 500 characters).")]
    if errors:
        raise ValidationError(errors)
    row = db.session.scalars(sa.select(ManualValue).where(
        ManualValue.indicator_id == indicator.id, ManualValue.organization_id == org.id,
        ManualValue.fiscal_year == period.fiscal_year,
        ManualValue.quarter == period.quarter)).first() or ManualValue(
        indicator_id=indicator.id, organization_id=org.id, fiscal_year=period.fiscal_year,
        quarter=period.quarter, value=0, evidence="")
    row.value, row.evidence, row.entered_by_id = value, evidence, actor.id
    db.session.add(row)
    db.session.flush()
    return row


# --- Quarterly reports -------------------------------------------------------------------

def _step(report: QuarterlyReport, actor: User, action: ReportStepAction,
          comment: str = "") -> None:
    report.steps.append(ReportStep(action=action, comment=comment.strip(), by_id=actor.id))


def generate_report(actor: User, org: Organization, period: Period) -> QuarterlyReport:
    """Create (or refresh, while not approved) a CSO's report for a quarter from the data."""
    if not period.quarter:
        raise ValidationError.one("quarter", _("Choose a quarter."))
    report = db.session.scalars(sa.select(QuarterlyReport).where(
        QuarterlyReport.organization_id == org.id,
        QuarterlyReport.fiscal_year == period.fiscal_year,
        QuarterlyReport.quarter == period.quarter)).first()
    if report is not None and report.status == ReportStatus.APPROVED:
        raise ValidationError.one("", _("This report is approved: its figures are frozen."))
    if report is None:
        report = QuarterlyReport(organization_id=org.id, fiscal_year=period.fiscal_year,
                                 quarter=period.quarter, author_id=actor.id)
        db.session.add(report)
    report.figures = figures(org, period)
    _step(report, actor, ReportStepAction.GENERATED)
    db.session.flush()
    return report


NARRATIVE = ("achievements", "challenges", "lessons", "success_story")


def save_narrative(actor: User, report: QuarterlyReport, values: dict) -> QuarterlyReport:
    """Edit the narrative of a report that is still the CSO's to change."""
    if report.status not in (ReportStatus.DRAFT, ReportStatus.RETURNED):
        raise ValidationError.one("", _("A submitted or approved report cannot be changed."))
    for name in NARRATIVE:
        text = (values.get(name) or "").strip()
        if len(text) > 5000:
            raise ValidationError.one(name, _("At most %(n)d characters.", n=5000))
        setattr(report, name, text)
    db.session.flush()
    return report


def submit_report(actor: User, report: QuarterlyReport) -> QuarterlyReport:
    """Send the report to the reviewers (figures recomputed from the data first)."""
    if report.status not in (ReportStatus.DRAFT, ReportStatus.RETURNED):
        raise ValidationError.one("", _("This report was already submitted."))
    if not report.achievements.strip():
        raise ValidationError.one("achievements", _("Describe the quarter's achievements."))
    report.figures = figures(report.organization, Period(report.fiscal_year, report.quarter))
    report.status = ReportStatus.SUBMITTED
    _step(report, actor, ReportStepAction.SUBMITTED)
    db.session.flush()
    record(Action.REPORT_SUBMITTED, actor=actor, obj=report)
    return report


def review_report(actor: User, report: QuarterlyReport, decision: str,
                  comment: str) -> QuarterlyReport:
    """A reviewer comments on, returns or approves a submitted report. Approving freezes
    the figures; nobody approves a report they wrote."""
    if decision not in ("comment", "return", "approve"):
        raise ValidationError.one("decision", _("Choose a value from the list."))
    if decision != "comment" and report.status != ReportStatus.SUBMITTED:
        raise ValidationError.one("", _("Only a submitted report can be returned or approved."))
    if decision == "approve" and report.author_id == actor.id:
        raise ValidationError.one("", _("A report cannot be approved by its own author."))
    if decision in ("comment", "return") and not (comment or "").strip():
        raise ValidationError.one("comment", _("Write the comment."))
    if decision == "return":
        report.status = ReportStatus.RETURNED
    elif decision == "approve":
        report.figures = figures(report.organization,
                                 Period(report.fiscal_year, report.quarter))
        report.status = ReportStatus.APPROVED
        # The year's published figures now include these frozen ones: recompute them at
        # the next view. The snapshot is aged, not deleted: it keeps the age bands the
        # year was released with (docs/PRIVACY.md).
        db.session.execute(sa.update(FiguresSnapshot).where(
            FiguresSnapshot.fiscal_year == report.fiscal_year).values(
            computed_at=datetime(2000, 1, 1)))
    _step(report, actor, {"comment": ReportStepAction.COMMENTED,
                          "return": ReportStepAction.RETURNED,
                          "approve": ReportStepAction.APPROVED}[decision], comment or "")
    db.session.flush()
    record(Action.REPORT_REVIEWED, actor=actor, obj=report, detail={"decision": decision})
    return report


def differences(report: QuarterlyReport) -> dict[str, tuple[float, float]]:
    """For an approved report: indicators whose current value differs from the frozen one."""
    if report.status != ReportStatus.APPROVED:
        return {}
    now = figures(report.organization, Period(report.fiscal_year, report.quarter))
    return {code: (report.figures.get(code), value) for code, value in now.items()
            if report.figures.get(code) != value}


# --- What dashboards show ----------------------------------------------------------------

@dataclass
class ProgressRow:
    """One indicator for one CSO (or all): the period's value, the year's, and the target."""

    indicator: Indicator
    quarter_value: str
    year_value: str
    target: float | None
    percent: str


def progress(org: Organization, period: Period, k: int | None) -> list[ProgressRow]:
    """Progress against the fiscal-year target; with `k`, counts of 1..k-1 are hidden."""
    rows = []
    targets = targets_of(period.fiscal_year)
    for indicator in indicators():
        quarter = value_of(indicator, org, period)
        year = value_of(indicator, org, Period(period.fiscal_year))
        target = targets.get((indicator.id, org.id, period.fiscal_year))
        hidden = k is not None and 0 < year < k
        percent = "—" if not target or not target.value else (
            WITHHELD if hidden else f"{round(100 * year / target.value)}%")
        rows.append(ProgressRow(indicator, published(quarter, k), published(year, k),
                                target.value if target else None, percent))
    return rows

