"""All models, imported here so the metadata (and migrations) see every table."""

from .activities import (
    Activity,
    ActivityKind,
    ActivitySession,
    Attendance,
    AttendanceStatus,
    CompletionRule,
    GroupEvent,
    GroupEventCount,
)
from .admin import Governorate, Organization, OrgKind, Site, SiteKind, site_organization
from .audit import AuditEntry
from .auth import CSO_ROLES, LANGUAGES, PasswordReset, Role, User
from .beneficiaries import (
    Beneficiary,
    BeneficiaryNameIndex,
    Consent,
    ConsentGiver,
    ConsentMethod,
    ConsentScope,
    Enrolment,
    ExitReason,
    SchoolStatus,
    Sex,
)

__all__ = [
    "Activity",
    "ActivityKind",
    "ActivitySession",
    "Attendance",
    "AttendanceStatus",
    "CompletionRule",
    "GroupEvent",
    "GroupEventCount",
    "AuditEntry",
    "Beneficiary",
    "BeneficiaryNameIndex",
    "Consent",
    "ConsentGiver",
    "ConsentMethod",
    "ConsentScope",
    "Enrolment",
    "ExitReason",
    "SchoolStatus",
    "Sex",
    "CSO_ROLES",
    "Governorate",
    "LANGUAGES",
    "OrgKind",
    "Organization",
    "PasswordReset",
    "Role",
    "Site",
    "SiteKind",
    "User",
    "site_organization",
]
