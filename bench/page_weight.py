"""Page weight: bytes transferred (gzip) for each page of the foundation, with its CSS/JS.

Budget: 30 KB per page. Run: `make bench` (or .venv/bin/python bench/page_weight.py).
Builds a throwaway SQLite database with the demo data; prints a Markdown table.
"""

from __future__ import annotations

import gzip
import os
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BUDGET = 30 * 1024
PAGES = {
    None: ["/login"],
    "worker@demo.bladi.tn": ["/", "/account/password", "/beneficiaries/", "/beneficiaries/new",
                             "RECORD", "RECORD/edit", "/activities/", "/activities/today",
                             "ACTIVITY", "ACTIVITY/sessions/new", "/activities/events/new",
                             "/field", "/account/sessions"],
    "manager@demo.bladi.tn": ["/", "/admin/users", "/admin/users/new", "/audit/",
                              "/beneficiaries/import"],
    "reviewer@demo.bladi.tn": ["/"],
    "admin@demo.bladi.tn": ["/", "/admin/organizations", "/admin/organizations/new",
                            "/admin/sites", "/admin/sites/new", "/admin/users", "/audit/"],
}


def main() -> int:
    """Measure every page; exit 1 if one is over budget."""
    tmp = Path(tempfile.mkdtemp(prefix="bladi-bench-"))
    os.environ.update(BLADI_ENV="development", BLADI_INSTANCE_PATH=str(tmp),
                      DATABASE_URL=f"sqlite:///{tmp / 'bench.db'}")
    from flask_migrate import upgrade

    from bladi_cases import create_app
    from bladi_cases.demo import seed_demo_activities, seed_demo_beneficiaries
    from bladi_cases.extensions import db
    from bladi_cases.models import Activity, Beneficiary, Organization, User
    from bladi_cases.seed import seed_demo
    from bladi_cases.services.auth import sessions as auth_sessions

    app = create_app({"WTF_CSRF_ENABLED": False})
    with app.app_context():
        upgrade()
        seed_demo()
        seed_demo_beneficiaries(330, seed=1)
        seed_demo_activities(seed=1)
        db.session.commit()
        ba = db.session.scalars(db.select(Organization).where(Organization.code == "BA")).one()
        record = db.session.scalars(db.select(Beneficiary).where(
            Beneficiary.organization_id == ba.id)).first()
        record_url = f"/beneficiaries/{record.uuid}"
        biggest = max(db.session.scalars(db.select(Activity).where(
            Activity.organization_id == ba.id)), key=lambda a: len(a.sessions))
        activity_url = f"/activities/{biggest.uuid}"
    headers = {"Accept-Encoding": "gzip", "Accept-Language": "ar"}
    print("| page | who | HTML (raw) | HTML (gzip) | CSS+JS+icons (gzip) | total | budget |")
    print("|---|---|---:|---:|---:|---:|---|")
    worst = 0
    for email, urls in PAGES.items():
        client = app.test_client()
        if email:
            with app.app_context():
                user = db.session.scalars(db.select(User).where(User.email == email)).one()
                identity = user.get_id()
                token = auth_sessions.start(user, "bench")  # a live login session
                db.session.commit()
            with client.session_transaction() as session:
                session["_user_id"] = identity
                session[auth_sessions.TOKEN_KEY] = token
        for url in urls:
            label = url.replace("RECORD", "/beneficiaries/<id>").replace(
                "ACTIVITY", "/activities/<id>")
            url = url.replace("RECORD", record_url).replace("ACTIVITY", activity_url)
            page = client.get(url, headers=headers)
            body = page.get_data()
            html = gzip.decompress(body) if page.headers.get("Content-Encoding") else body
            assets = re.findall(rb'(?:href|src)="(/static/[^"]+)"', html)
            asset_bytes = sum(len(client.get(a.decode(), headers=headers).get_data())
                              for a in assets)
            total = len(body) + asset_bytes
            worst = max(worst, total)
            verdict = "ok" if total <= BUDGET else "OVER"
            print(f"| {label} | {email.split('@')[0] if email else 'anonymous'} | {len(html):,} | "
                  f"{len(body):,} | {asset_bytes:,} | {total:,} | {verdict} |")
    print(f"\nLargest page: {worst:,} bytes of {BUDGET:,} allowed.")
    return 0 if worst <= BUDGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
