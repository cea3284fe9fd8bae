"""The beneficiary registry through its pages: registration, record, consent, enrolment,
search, duplicates, access and erasure requests, and who may see what."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from bladi_cases.extensions import db
from bladi_cases.models import AuditEntry, Beneficiary, BeneficiaryNameIndex, Consent, Role

from .conftest import compiled_sql, get_file, login, sqlite_plan, text_of


def _count(model=Beneficiary, *where):
    return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


def _form(**overrides) -> dict:
    """Registration form data (strings, as a browser sends them)."""
    data = {"first_name_ar": "سلمى", "last_name_ar": "العياري", "first_name_latin": "Salma",
            "last_name_latin": "Ayari", "sex": "female", "birth_date": "2005-02-11",
            "governorate_code": "TN-61", "setting_kind": "youth_centre", "site": "",
            "phone": "", "consent_given_by": "self", "consent_method": "signed_form",
            "consent_date": "", "consent_scopes": ["participation", "surveys"]}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def _actions(actor):
    return db.session.scalars(sa.select(AuditEntry.action)
                              .where(AuditEntry.actor_id == actor.id)).all()


@pytest.fixture
def worker(client, make_user):
    user = make_user(Role.FIELD_WORKER, "BA")
    login(client, user)
    return user


def test_register_show_and_audit(client, worker, make_site):
    site = make_site("BA")
    response = client.post("/beneficiaries/new", data=_form(site=str(site.uuid),
                                                            phone="+216 98 765 432"))
    assert response.status_code == 302, text_of(response)[-500:]
    youth = db.session.scalars(sa.select(Beneficiary).order_by(Beneficiary.id.desc())).first()
    assert re.fullmatch(r"BA-\d{4}", youth.code)
    assert response.headers["Location"].endswith(f"/beneficiaries/{youth.uuid}")
    page = text_of(client.get(f"/beneficiaries/{youth.uuid}"))
    assert "سلمى العياري" in page and "+21698765432" in page and site.name in page
    assert youth.enrolments[0].site_id == site.id and youth.status(date.today()) == "active"
    assert {"beneficiary_created", "beneficiary_viewed"} <= set(_actions(worker))


def test_codes_are_sequential_per_cso(make_beneficiary):
    first = make_beneficiary("BA", first_name_ar="هالة")
    second = make_beneficiary("BA", first_name_ar="رحمة")
    other = make_beneficiary("ACEC")
    assert second.sequence == first.sequence + 1
    assert other.code.startswith("ACEC-")


@pytest.mark.parametrize("overrides,message", [
    ({"birth_date": (date.today() + timedelta(days=3)).isoformat()}, "في المستقبل"),
    ({"birth_date": (date.today() - timedelta(days=365 * 7)).isoformat()}, "8"),
    ({"birth_date": "1980-01-01"}, "35"),
    ({"birth_date": ""}, "تاريخ الولادة"),
    ({"phone": "+33 6 12 34 56 78"}, "تونسي"),
    ({"phone": "123"}, "تونسي"),
    ({"first_name_ar": "ا" * 61}, "60"),
    ({"first_name_ar": "", "first_name_latin": ""}, "الاسم"),
    ({"sex": ""}, "إلزامي"),
    ({"governorate_code": "TN-99"}, "اختيار غير صحيح"),
    ({"site": "00000000-0000-0000-0000-000000000000"}, "موقع"),
    ({"birth_date": "2012-01-01", "consent_given_by": "self"}, "الولي"),
    ({"consent_given_by": "guardian"}, "18"),
    ({"birth_date": "2012-01-01", "consent_given_by": "guardian", "guardian_name": "",
      "guardian_relationship": ""}, "مطلوب عند موافقة الولي"),
    ({"birth_date": "2012-01-01", "setting_kind": "rehabilitation_centre",
      "consent_given_by": "guardian", "guardian_name": "منية", "guardian_relationship": "أم",
      "consent_authority": ""}, "السلطة"),
    ({"consent_given_by": "", "phone": "98123456"}, "الموافقة"),
    ({"consent_scopes": []}, "الموافقة"),
])
def test_registration_bad_input_saves_nothing(client, worker, overrides, message):
    before = _count()
    response = client.post("/beneficiaries/new", data=_form(**overrides))
    assert response.status_code == 422
    assert message in text_of(response), text_of(response)[-1500:]
    assert _count() == before


# Names that read otherwise than typed, or are no name at all (see `name_problems`).
RLO_NAME = "\u202eيرسلبارطلا"          # a right-to-left override in front
ZERO_WIDTH_NAME = "\u200b\u200c\u200d"  # only zero-width characters
BIDI_MESSAGE = "أحرف غير مرئية تغيّر اتجاه النص"
NO_LETTER_MESSAGE = "يجب أن يحتوي الاسم على حرف واحد على الأقل"


@pytest.mark.parametrize("overrides,message", [
    ({"last_name_ar": RLO_NAME}, BIDI_MESSAGE),
    ({"first_name_latin": "Sal\u2067ma"}, BIDI_MESSAGE),
    ({"last_name_latin": "Ayari\u200f"}, BIDI_MESSAGE),
    ({"first_name_ar": ZERO_WIDTH_NAME}, NO_LETTER_MESSAGE),
    ({"last_name_ar": "123 - 456"}, NO_LETTER_MESSAGE),
    ({"first_name_ar": "ـــ"}, NO_LETTER_MESSAGE),  # tatweel only
    ({"birth_date": "2012-01-01", "consent_given_by": "guardian",
      "guardian_name": "\u202dمنية", "guardian_relationship": "أم"}, BIDI_MESSAGE),
])
def test_names_with_direction_controls_or_no_letter_are_refused(client, worker, overrides,
                                                                  message):
    before = _count(), _count(BeneficiaryNameIndex), _count(Consent)
    response = client.post("/beneficiaries/new", data=_form(**overrides))
    assert response.status_code == 422
    assert message in text_of(response), text_of(response)[-1500:]
    assert (_count(), _count(BeneficiaryNameIndex), _count(Consent)) == before


def test_an_edit_cannot_bring_in_a_direction_control(client, worker, make_beneficiary):
    youth = make_beneficiary("BA")
    data = _form(first_name_latin="\u202eAmira", school_status="in_school", disability="no")
    for key in ("site", "consent_given_by", "consent_method", "consent_scopes", "consent_date"):
        data.pop(key)
    response = client.post(f"/beneficiaries/{youth.uuid}/edit", data=data)
    assert response.status_code == 422 and BIDI_MESSAGE in text_of(response)
    db.session.expire_all()
    assert youth.school_status is None
    assert "\u202e" not in client.get(f"/beneficiaries/{youth.uuid}").get_data(as_text=True)


def test_names_of_any_script_with_marks_and_joiners_are_accepted(client, worker):
    response = client.post("/beneficiaries/new", data=_form(
        first_name_ar="مُحَمَّد", last_name_ar="بن\u200cعلي", first_name_latin="Zoé",
        last_name_latin="O'Brien-Ben Ali"))
    assert response.status_code == 302, text_of(response)[-800:]


def test_minor_with_guardian_consent_and_minimal_record_without_consent(client, worker):
    minor = _form(birth_date="2013-06-01", consent_given_by="guardian", guardian_name="منية",
                  guardian_relationship="أم", guardian_phone="22 333 444")
    assert client.post("/beneficiaries/new", data=minor).status_code == 302
    consent = db.session.scalars(sa.select(Consent).order_by(Consent.id.desc())).first()
    assert consent.given_by == "guardian" and b"\xd9\x85" not in consent.giver_name_enc
    minimal = _form(first_name_ar="ريم", consent_given_by="", consent_scopes=[])
    assert client.post("/beneficiaries/new", data=minimal).status_code == 302


def test_rehabilitation_centre_minor_needs_the_authority(client, worker):
    data = _form(birth_date="2010-06-01", setting_kind="rehabilitation_centre",
                 consent_given_by="authority", consent_authority="مركز إصلاح الأحداث بصفاقس")
    assert client.post("/beneficiaries/new", data=data).status_code == 302


def test_duplicates_are_shown_before_saving(client, worker, make_beneficiary):
    existing = make_beneficiary("BA", first_name_ar="أميرة", last_name_ar="الطرابلسي",
                                birth_date=date(2006, 1, 2))
    before = _count()
    # Same name with other spellings (ة/ه, أ/ا, tashkeel) and the same birth year.
    data = _form(first_name_ar="اميره", last_name_ar="الطَّرابلسي", first_name_latin="",
                 last_name_latin="", birth_date="2006-09-30")
    response = client.post("/beneficiaries/new", data=data)
    assert response.status_code == 200 and existing.code in text_of(response)
    assert _count() == before
    confirmed = client.post("/beneficiaries/new", data={**data, "confirmed_new": "1"})
    assert confirmed.status_code == 302 and _count() == before + 1


def test_invisible_characters_in_a_name_neither_hide_a_duplicate_nor_a_search(
        app, client, worker, make_beneficiary):
    """A name typed or pasted with a zero-width space or joiner is the same name: the
    duplicate check shows the youth already registered, and a search without them finds a
    youth registered with them, also after `flask keys reindex` rebuilds the indexes."""
    existing = make_beneficiary("BA", first_name_ar="أمي\u200bرة", last_name_ar="الطرابلسي",
                                birth_date=date(2006, 1, 2))
    data = _form(first_name_ar="أميرة", last_name_ar="الطراب\u200dلسي", first_name_latin="",
                 last_name_latin="", birth_date="2006-09-30")
    before = _count()
    response = client.post("/beneficiaries/new", data=data)
    assert response.status_code == 200 and existing.code in text_of(response)
    assert _count() == before
    assert existing.code in text_of(client.get("/beneficiaries/?q=اميرة"))
    # A youth whose digests were made before (here: none at all): not found until
    # `keys reindex` rebuilds them from the encrypted name.
    db.session.execute(sa.delete(BeneficiaryNameIndex).where(
        BeneficiaryNameIndex.beneficiary_id == existing.id))
    existing.name_key_ar = existing.name_key_latin = None
    db.session.commit()
    assert existing.code not in text_of(client.get("/beneficiaries/?q=اميرة"))
    refused = app.test_cli_runner().invoke(args=["keys", "reindex", "--batch-size", "0"])
    assert refused.exit_code != 0 and "--batch-size" in refused.output, refused.output
    result = app.test_cli_runner().invoke(args=["keys", "reindex", "--batch-size", "2"])
    assert result.exit_code == 0 and "rebuilt" in result.output, result.output
    assert existing.code in text_of(client.get("/beneficiaries/?q=اميرة"))
    assert client.post("/beneficiaries/new", data=data).status_code == 200, "a duplicate"


def test_duplicates_are_per_cso(client, worker, make_beneficiary):
    make_beneficiary("ACEC", first_name_ar="سلمى", last_name_ar="العياري",
                     birth_date=date(2005, 3, 3), first_name_latin="", last_name_latin="")
    assert client.post("/beneficiaries/new", data=_form()).status_code == 302


def test_edit_record(client, worker, make_beneficiary):
    youth = make_beneficiary("BA")
    page = client.get(f"/beneficiaries/{youth.uuid}/edit")
    assert "أميرة" in page.get_data(as_text=True)
    data = _form(first_name_ar="أمira", last_name_ar="الطرابلسي", school_status="in_school",
                 disability="no")
    for key in ("site", "consent_given_by", "consent_method", "consent_scopes", "consent_date"):
        data.pop(key)
    bad = client.post(f"/beneficiaries/{youth.uuid}/edit", data={**data, "phone": "12"})
    assert bad.status_code == 422 and youth.school_status is None
    ok = client.post(f"/beneficiaries/{youth.uuid}/edit", data=data)
    assert ok.status_code == 302
    db.session.refresh(youth)
    assert youth.school_status == "in_school" and youth.disability is False


def test_withdrawn_consent_stops_collection(client, worker, make_beneficiary, make_site):
    site = make_site("BA")
    youth = make_beneficiary("BA")
    assert client.post(f"/beneficiaries/{youth.uuid}/consent/withdraw",
                       data={"withdrawn_on": date.today().isoformat()}).status_code == 302
    db.session.refresh(youth)
    assert youth.consent_withdrawn and not youth.allows("participation")
    page = text_of(client.get(f"/beneficiaries/{youth.uuid}"))
    assert "سُحبت الموافقة" in page or "الموافقة" in page
    client.post(f"/beneficiaries/{youth.uuid}/enrol", data={"site": str(site.uuid)})
    db.session.refresh(youth)
    assert youth.enrolments == []
    listing = text_of(client.get("/beneficiaries/"))
    assert youth.code in listing
    # A new consent (e.g. given again) re-opens collection.
    client.post(f"/beneficiaries/{youth.uuid}/consent", data={
        "consent_given_by": "self", "consent_method": "witnessed_verbal",
        "consent_scopes": ["participation"]})
    db.session.refresh(youth)
    assert youth.allows("participation")


def test_list_lines_show_each_youths_status_and_flags(app, client, worker, make_beneficiary,
                                                     make_site):
    from datetime import datetime

    from flask_babel import force_locale

    from bladi_cases.models import BeneficiaryStatus, Sex

    site = make_site("BA")
    active, exited = make_beneficiary("BA", site=site), make_beneficiary("BA", site=site)
    withdrawn, erased, plain = (make_beneficiary("BA"), make_beneficiary("BA"),
                                make_beneficiary("BA"))
    ended = exited.enrolments[0]
    ended.start_date, ended.end_date = date.today() - timedelta(days=30), date.today() - \
        timedelta(days=1)
    ended.exit_reason = "moved"
    erased.erased_at = datetime.now()
    db.session.commit()
    renewed = make_beneficiary("BA")  # withdrawn, then given again: the newest counts
    for youth in (withdrawn, renewed):
        assert client.post(f"/beneficiaries/{youth.uuid}/consent/withdraw",
                           data={"withdrawn_on": date.today().isoformat()}).status_code == 302
    assert client.post(f"/beneficiaries/{renewed.uuid}/consent", data={
        "consent_given_by": "self", "consent_method": "witnessed_verbal",
        "consent_scopes": ["participation"]}).status_code == 302
    html = client.get("/beneficiaries/").get_data(as_text=True)
    lines = {code: text_of_line for code, text_of_line in re.findall(
        r'<li>\s*<a href="/beneficiaries/[^"]+"><span dir="ltr">(BA-\d+)</span>(.*?)</li>',
        html, re.S)}
    with app.test_request_context(), force_locale("ar"):
        flags = {"withdrawn": "<strong class=\"flag\">سُحبت الموافقة</strong>"}
        for youth in (active, exited, withdrawn, renewed, erased, plain):
            db.session.refresh(youth)
            line = lines[youth.code]
            status = str(BeneficiaryStatus.label_of(youth.status(date.today())))
            assert f"{Sex.label_of(youth.sex)} · " in line and f" · {status}" in line, line
            assert (flags["withdrawn"] in line) == youth.consent_withdrawn, line
            assert ('class="flag"' in line) == (youth.consent_withdrawn or youth is erased)
    assert {active.status(date.today()), exited.status(date.today()),
            plain.status(date.today())} == {"active", "exited", "not_enrolled"}
    assert withdrawn.consent_withdrawn and len(renewed.consents) == 2 \
        and not renewed.consent_withdrawn


def test_record_timeline_shows_the_case_lines_its_reader_may_see(app, client, make_user,
                                                                 make_beneficiary, make_case):
    from flask_babel import force_locale, format_date
    from flask_babel import gettext as _

    from bladi_cases.models.cases import CaseStatus, NoteKind, OutcomeKind, ServiceType
    from bladi_cases.services.cases import cases as case_service

    worker, colleague = make_user(Role.FIELD_WORKER, "BA"), make_user(Role.FIELD_WORKER, "BA")
    youth = make_beneficiary("BA")
    case, _provider = make_case(youth, worker)
    case_service.add_note(worker, case, {"kind": "home_visit", "text": "سري",
                                         "confidential": True})
    db.session.commit()

    def timeline(user):
        login(client, user)
        html = client.get(f"/beneficiaries/{youth.uuid}").get_data(as_text=True)
        items = html.split('<ol class="timeline">')[1].split("</ol>")[0].split("<li>")[1:]
        return [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", item)).strip() for item in items]

    with app.test_request_context(), force_locale("ar"):
        def line(label, value):
            return f"{format_date(date.today())} {_(label)}: {value}"

        status = line("Case", CaseStatus.label_of(case.status))
        visit, call = (line("Case note", NoteKind.label_of(kind))
                       for kind in ("home_visit", "phone_call"))
        referral = line("Referral", ServiceType.label_of("employment"))
        outcome = line("Outcome", OutcomeKind.label_of("job"))
    mine, theirs = timeline(worker), timeline(colleague)
    for expected in (status, call, referral, outcome):
        assert expected in mine and expected in theirs, (expected, mine)
    assert visit in mine and visit not in theirs, "a confidential note is its author's"
    assert mine.index(status) < mine.index(call) < mine.index(visit) < mine.index(referral) \
        < mine.index(outcome), "the same day's lines: status, notes, referrals, outcomes"


def test_enrol_and_end_enrolment(client, worker, make_beneficiary, make_site):
    site = make_site("BA")
    youth = make_beneficiary("BA")
    assert client.post(f"/beneficiaries/{youth.uuid}/enrol",
                       data={"site": str(site.uuid)}).status_code == 302
    db.session.refresh(youth)
    enrolment = youth.enrolments[0]
    bad = client.post(f"/beneficiaries/{youth.uuid}/enrolments/{enrolment.uuid}/end",
                      data={"end_date": "2001-01-01", "exit_reason": "completed"},
                      follow_redirects=True)
    assert "بين" in text_of(bad)
    client.post(f"/beneficiaries/{youth.uuid}/enrolments/{enrolment.uuid}/end",
                data={"end_date": date.today().isoformat(), "exit_reason": "moved"})
    db.session.refresh(enrolment)
    assert enrolment.exit_reason == "moved"
    assert youth.status(date.today() + timedelta(days=1)) == "exited"


def test_each_open_enrolments_end_form_labels_its_own_fields(client, worker, make_beneficiary,
                                                            make_site):
    """Two open enrolments, two end forms on the record: each form's labels name its own
    inputs (ids of their own), and the form posted still reads the fields by their names."""
    youth = make_beneficiary("BA", site=make_site("BA"))
    client.post(f"/beneficiaries/{youth.uuid}/enrol", data={"site": str(make_site("BA").uuid)})
    db.session.refresh(youth)
    first, second = youth.enrolments
    html = client.get(f"/beneficiaries/{youth.uuid}").get_data(as_text=True)
    for enrolment in (first, second):
        form = re.search(rf'<form[^>]*action="[^"]*/enrolments/{enrolment.uuid}/end".*?</form>',
                         html, re.S).group(0)
        for name in ("end_date", "exit_reason"):
            own = f"{name}-{enrolment.uuid}"
            assert f'<label for="{own}">' in form and f'id="{own}" name="{name}"' in form
    client.post(f"/beneficiaries/{youth.uuid}/enrolments/{second.uuid}/end",
                data={"end_date": date.today().isoformat(), "exit_reason": "completed"})
    db.session.refresh(second)
    db.session.refresh(first)
    assert (first.exit_reason, second.exit_reason) == (None, "completed")


def test_search_by_name_prefix_code_site_status_age(client, worker, make_beneficiary, make_site):
    site = make_site("BA")
    amira = make_beneficiary("BA", site=site, birth_date=date(date.today().year - 16, 1, 1),
                             consent_given_by="guardian", guardian_name="منية",
                             guardian_relationship="أم")
    hela = make_beneficiary("BA", first_name_ar="هالة", last_name_ar="الغربي",
                            first_name_latin="Hela", last_name_latin="Gharbi",
                            birth_date=date(date.today().year - 22, 1, 1))
    other = make_beneficiary("ACEC")  # same name as amira, another CSO

    def codes(**params):
        return set(re.findall(r"(?:BA|ACEC)-\d{4}", text_of(client.get("/beneficiaries/",
                                                                        query_string=params))))

    assert amira.code in codes(q="أمي") and hela.code not in codes(q="أمي")
    assert codes(q="trab") >= {amira.code} and other.code not in codes(q="trab")
    assert codes(q="Hela Ghar") == {hela.code}
    assert codes(q="الطرابلسي") >= {amira.code}
    assert codes(q=hela.code) == {hela.code}
    assert codes(site=str(site.uuid)) == {amira.code}
    assert amira.code in codes(status="active") and hela.code in codes(status="not_enrolled")
    assert codes(age="15-17") >= {amira.code} and hela.code not in codes(age="15-17")
    assert hela.code in codes(age="18-24")
    assert codes(q="x") == set()
    assert client.get("/beneficiaries/", query_string={"page": "zz"}).status_code == 200


# Names the next test registers, each first name with each last name, so that prefixes
# match many youth, some and none, alone and together.
_FIRST = [("Mohamed", "محمد"), ("Mouna", "منى"), ("Amel", "أمل"), ("Moez", "معز")]
_LAST = [("Talbi", "الطالبي"), ("Tounsi", "التونسي"), ("Gharbi", "الغربي")]
# What each search finds among them, worked out from the names: each typed word begins a
# word of the name.
_FOUND = {"mo": 9, "Mo Ta": 3, "mou": 3, "محمد": 3, "ta mo": 3, "gharbi": 4, "zz": 0,
          "amel tounsi": 1, "Moez Gharbi Talbi": 0, "mo to gh": 0}


def _every_page(user, per_page: int = 2, **criteria) -> tuple[list[str], int]:
    """The codes of every page of a search, in order, and the count it gave."""
    from bladi_cases.services.beneficiaries.search import search

    first = search(user, per_page=per_page, **criteria)
    codes = [row.code for row in first.items]
    for number in range(2, first.pages + 1):
        codes += [row.code for row in search(user, per_page=per_page, page=number,
                                             **criteria).items]
    return codes, first.total


def test_a_name_search_reads_the_same_youth_in_the_same_order_under_one_key_or_two(
        app, worker, make_beneficiary, make_site, monkeypatch):
    """A search by name under one key is read from the first word's index entries in youth
    order (`search._names_driven`); during a key rotation each word is looked up under both
    keys through `IN (...)`. Both find the youth the names say, newest first, page after
    page, with the same count, alone and with the other filters; another CSO's youth of the
    same names never."""
    from bladi_cases.privacy.crypto import FieldCipher

    site = make_site("BA")
    youth, others = [], []
    for n, (first, last) in enumerate((f, la) for f in _FIRST for la in _LAST):
        names = {"first_name_latin": first[0], "first_name_ar": first[1],
                 "last_name_latin": last[0], "last_name_ar": last[1]}
        # Every other youth enrolled at the site, every third one 16 years old.
        youth.append(make_beneficiary("BA", **names, **({"site": site} if n % 2 else {}), **(
            {"birth_date": date(date.today().year - 16, 1, 1), "consent_given_by": "guardian",
             "guardian_name": "منية", "guardian_relationship": "أم"} if n % 3 == 0 else {})))
        others.append(make_beneficiary("ACEC", **names))
    criteria = [{"q": q} for q in _FOUND] + [
        {"q": "mo", "status": "not_enrolled"}, {"q": "mo ta", "age_band": "15-17"},
        {"q": "ta", "site": site}, {"q": "mo gharbi", "site": site, "status": "active"}]
    one_key = {str(c): _every_page(worker, **c) for c in criteria}
    variants = FieldCipher.index_variants
    monkeypatch.setattr(FieldCipher, "index_variants",
                        lambda self: variants(self) + variants(self)[:1])
    assert {str(c): _every_page(worker, **c) for c in criteria} == one_key
    mine = {b.code for b in youth}
    for codes, total in one_key.values():
        assert len(codes) == total == len(set(codes)) and set(codes) <= mine
        assert codes == sorted(codes, reverse=True)  # newest first: codes grow with time
    assert not {b.code for b in others} & {c for codes, _ in one_key.values() for c in codes}
    assert {q: one_key[str({"q": q})][1] for q in _FOUND} == _FOUND
    # The filters narrowed something, so that they were applied and compared.
    assert 0 < one_key[str(criteria[-3])][1] < _FOUND["mo"]
    assert 0 < one_key[str(criteria[-2])][1] < 4  # 3 Ta* youth, half at the site


def test_a_name_search_counts_up_to_the_cap(app, worker, make_beneficiary, monkeypatch):
    """Past COUNT_CAP matches the count stops, alone or with a filter: the page says "more
    than"."""
    from bladi_cases import policy
    from bladi_cases.services.beneficiaries import search as module

    monkeypatch.setattr(module, "COUNT_CAP", 2)
    # The statements are built with the cap in them: none kept from before, and those
    # built here forgotten after.
    monkeypatch.setattr(policy, "_kept_statements", {})
    for last in ("Talbi", "Tounsi", "Gharbi"):
        make_beneficiary("BA", first_name_latin="Mohamed", last_name_latin=last)
    for criteria in ({"q": "moh"}, {"q": "moh", "status": "not_enrolled"}):
        found = module.search(worker, per_page=25, **criteria)
        assert (found.total, found.capped, len(found.items)) == (2, True, 3), criteria


def test_a_name_search_reads_the_first_words_entries_in_youth_order_on_sqlite(app, worker):
    """SQLite's plan of a one-word search: the page's youth are the first entries of the
    name index under (CSO, digest), each joined to its youth; the count reads the index
    alone. Through `IN (...)` it gathered every youth of the prefix twice (the page's list
    and the count's), 3,576 for "mo" among 100,000 youth."""
    from bladi_cases.policy import ScopeOf
    from bladi_cases.services.beneficiaries.search import _search_statements

    if db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's plan: PostgreSQL plans from its statistics")
    page, _count = _search_statements(ScopeOf.of(worker), (("names", 1, True),))
    plan = sqlite_plan(compiled_sql(page.params(
        status_today=date.today(), digest_0="d", page_limit=25, page_offset=0)))
    entries = ("SEARCH beneficiary_name_index USING COVERING INDEX "
               "ix_beneficiary_name_index_org_digest (organization_id=? AND digest=?)")
    assert plan.count(entries) == 2, plan  # the page's, then the count's
    assert plan.count("LIST SUBQUERY") == 1, plan  # the page's 25 ids, nothing gathered
    # Within the page's ids, the entries first, then each one's youth; not in the count.
    page_ids, count = plan.split("CORRELATED", 1)[0], plan.rsplit("SCALAR SUBQUERY", 1)[1]
    page_ids = page_ids[page_ids.index("LIST SUBQUERY"):]
    assert page_ids.index(entries) < page_ids.index("SEARCH beneficiary USING"), plan
    assert "SEARCH beneficiary USING" not in count and entries in count, plan


def test_a_name_search_and_its_index_are_scoped_alike(make_user):
    """A search by names alone counts the name index's entries, not the youth they join
    (`search._names_driven`): right only while both are scoped by one rule, the CSO's."""
    from bladi_cases.policy import row_filter

    for role in Role:
        user = make_user(role)
        youth = str(row_filter(Beneficiary, user).compile(db.engine))
        entries = str(row_filter(BeneficiaryNameIndex, user).compile(db.engine))
        assert youth.replace("beneficiary.", "beneficiary_name_index.") == entries, role


def test_long_name_words_match_whole_words(worker, make_beneficiary):
    from bladi_cases.services.beneficiaries.search import search

    long_name = make_beneficiary("BA", first_name_latin="Abderrahmane", last_name_latin="Ben Hmida")
    make_beneficiary("BA", first_name_latin="Abderrahmanx", last_name_latin="Ben Hmida",
                     first_name_ar="عبد", last_name_ar="بن حميدة")
    found = search(worker, q="abderrahmane").items
    assert [b.code for b in found] == [long_name.code]


def test_list_reads_are_audited_with_the_codes_shown(client, worker, make_beneficiary):
    youth = make_beneficiary("BA")
    client.get("/beneficiaries/")
    entry = db.session.scalars(sa.select(AuditEntry).where(
        AuditEntry.actor_id == worker.id, AuditEntry.action == "beneficiaries_listed")).first()
    assert youth.code in entry.detail["codes"]


def test_names_are_revealed_only_from_rows_of_the_readers_cso(app, worker, make_beneficiary):
    """`reveal_many` as the listings call it, on Core rows of `revealable_columns()`: a
    list holding one youth of another CSO reveals nothing and writes no audit entry."""
    from bladi_cases.services.beneficiaries.registry import reveal_many, revealable_columns

    own, other = make_beneficiary("BA", first_name_ar="سلمى"), make_beneficiary("ACEC")
    rows = db.session.execute(sa.select(*revealable_columns()).where(
        Beneficiary.id.in_([own.id, other.id])).order_by(Beneficiary.id)).all()
    before = len(_actions(worker))
    with pytest.raises(PermissionError):
        reveal_many(rows, worker, fields=("first_name_ar",))
    assert len(_actions(worker)) == before
    names = reveal_many([r for r in rows if r.id == own.id], worker, fields=("first_name_ar",))
    assert names[own.id].first_name_ar == "سلمى"
    assert len(_actions(worker)) == before + 1


def test_identities_are_unreadable_in_the_database(make_beneficiary):
    youth = make_beneficiary("BA", first_name_ar="زينب", last_name_ar="المنصوري",
                             first_name_latin="Zeineb", last_name_latin="Mansouri",
                             phone="55 443 322", birth_date=date(2004, 7, 19),
                             address="نهج الحرية 12", guardian_name="سعاد")
    secrets = ["زينب", "المنصوري", "Zeineb", "Mansouri", "55443322", "2004-07-19",
               "الحرية", "سعاد"]
    for table in ("beneficiary", "consent", "beneficiary_name_index", "enrolment",
                  "audit_entry"):
        rows = db.session.execute(sa.text(f"SELECT * FROM {table}")).all()
        dump = repr(rows)
        for secret in secrets:
            assert secret not in dump, (table, secret)
    assert youth.birth_year == 2004 and youth.birth_month == 7


def test_sqlite_file_holds_no_readable_name_before_or_after_erasure(file_app, tmp_path):
    """A youth's name written into every encrypted field (`encrypted_columns()`, checked
    filled) is nowhere in the SQLite file, WAL included: not at rest, and not after the
    erasure, a commit and VACUUM, not even decrypted with the key."""
    from flask_migrate import upgrade

    from bladi_cases.models import Organization, SurveyResponse, User
    from bladi_cases.seed import seed_reference

    from .conftest import TEST_PASSWORD, _hashed
    from .free_text import (
        NAME_WORDS,
        check_every_encrypted_column_is_filled,
        decrypted_everything,
        name_forms,
        register_named_youth,
        write_everywhere,
    )

    def file_bytes() -> bytes:
        return b"".join(p.read_bytes() for p in tmp_path.glob("file.db*"))

    with file_app.app_context():
        upgrade()
        seed_reference()
        ba, acec = (db.session.scalars(sa.select(Organization).where(Organization.code == code))
                    .one() for code in ("BA", "ACEC"))
        worker, manager = (User(email=f"{role}@example.tn", display_name=role, role=role,
                                organization_id=ba.id, password_hash=_hashed(TEST_PASSWORD))
                           for role in (Role.FIELD_WORKER, Role.CSO_MANAGER))
        db.session.add_all([worker, manager])
        youth = register_named_youth(ba)
        written = write_everywhere(worker, youth, acec)
        db.session.commit()
        check_every_encrypted_column_is_filled(youth)
        at_rest = file_bytes()
        for form in name_forms():
            assert form not in at_rest, form
        assert b"98765432" not in at_rest

        client = file_app.test_client()
        login(client, manager)

        pages = (f"/cases/{written.case.uuid}",
                 f"/surveys/{written.version.survey.uuid}/responses.csv")

        def shown() -> str:
            return "".join(get_file(client, page).get_data(as_text=True) for page in pages)

        assert all(word in shown() for word in NAME_WORDS)  # what the check below looks for
        assert client.post(f"/beneficiaries/{youth.uuid}/erase",
                           data={"confirm": youth.code}).status_code == 302
        db.session.commit()
        db.session.remove()
        assert not [word for word in NAME_WORDS if word in decrypted_everything()]
        assert not [word for word in NAME_WORDS if word in shown()]
        response = db.session.scalars(sa.select(SurveyResponse)).one()
        assert response.answers["situation"] == "working"  # the figures' answers stay
        db.session.remove()
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM")
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        db.engine.dispose()
    erased = file_bytes()
    for form in name_forms():
        assert form not in erased, form


def test_access_request_downloads_the_whole_record(client, make_user, make_beneficiary):
    manager = make_user(Role.CSO_MANAGER, "BA")
    youth = make_beneficiary("BA", guardian_name=None)
    login(client, manager)
    wrong = client.post(f"/beneficiaries/{youth.uuid}/access-request", data={"confirm": "BA-9"})
    assert wrong.status_code == 422 and youth.code in text_of(wrong)
    response = client.post(f"/beneficiaries/{youth.uuid}/access-request",
                           data={"confirm": youth.code.lower()})
    assert response.status_code == 200
    assert "attachment" in response.headers["Content-Disposition"]
    body = response.get_data(as_text=True)
    assert "أميرة" in body and "Trabelsi" in body and "+21698123456" in body
    assert "access_request_exported" in _actions(manager)


def test_field_worker_cannot_make_rights_requests(client, worker, make_beneficiary):
    youth = make_beneficiary("BA")
    assert client.get(f"/beneficiaries/{youth.uuid}/erase").status_code == 403
    assert client.get(f"/beneficiaries/{youth.uuid}/access-request").status_code == 403


def test_erasure_destroys_identity_and_keeps_deidentified_data(client, make_user,
                                                              make_beneficiary, make_site):
    manager = make_user(Role.CSO_MANAGER, "BA")
    youth = make_beneficiary("BA", site=make_site("BA"))
    login(client, manager)
    refused = client.post(f"/beneficiaries/{youth.uuid}/erase", data={"confirm": "nope"})
    assert refused.status_code == 422 and youth.erased_at is None
    assert client.post(f"/beneficiaries/{youth.uuid}/erase",
                       data={"confirm": youth.code}).status_code == 302
    db.session.refresh(youth)
    assert youth.erased_at is not None
    assert all(getattr(youth, f"{n}_enc") is None for n in (
        "first_name_ar", "last_name_ar", "first_name_latin", "last_name_latin", "birth_date",
        "phone", "guardian_name", "guardian_phone", "address"))
    assert _count(BeneficiaryNameIndex, BeneficiaryNameIndex.beneficiary_id == youth.id) == 0
    assert youth.sex == "female" and youth.birth_year == 2006 and len(youth.enrolments) == 1
    page = text_of(client.get(f"/beneficiaries/{youth.uuid}"))
    assert "أميرة" not in page and youth.code in page
    assert youth.code not in text_of(client.get("/beneficiaries/", query_string={"q": "أميرة"}))
    assert "beneficiary_erased" in _actions(manager)
    again = client.post(f"/beneficiaries/{youth.uuid}/edit", data=_form())
    assert again.status_code == 404


def test_erasure_leaves_the_name_in_no_table_and_on_no_page(client, make_user, org):
    """The name written into every free-text field is, after the erasure, in no row of any
    table (this database: SQLite or PostgreSQL), in no value decrypted with the key, and on
    neither the case page nor the survey export; the figures' data stays."""
    from bladi_cases.models import CaseGoal, SurveyResponse

    from .free_text import (
        NAME_WORDS,
        check_every_encrypted_column_is_filled,
        decrypted_everything,
        every_table_dump,
        register_named_youth,
        write_everywhere,
    )

    worker = make_user(Role.FIELD_WORKER, "BA")
    manager = make_user(Role.CSO_MANAGER, "BA", preferred_language="en")
    youth = register_named_youth(org("BA"))
    written = write_everywhere(worker, youth, org("ACEC"))
    db.session.commit()
    check_every_encrypted_column_is_filled(youth)
    assert not [word for word in NAME_WORDS if word in every_table_dump()]  # encrypted
    pages = (f"/cases/{written.case.uuid}", "/cases/transfers",
             f"/surveys/{written.version.survey.uuid}/responses.csv")
    login(client, manager)

    def shown() -> str:
        return "".join(get_file(client, page).get_data(as_text=True) for page in pages)

    assert all(word in shown() for word in NAME_WORDS)
    assert all(word in decrypted_everything() for word in NAME_WORDS)
    assert client.post(f"/beneficiaries/{youth.uuid}/erase",
                       data={"confirm": youth.code}).status_code == 302
    db.session.expire_all()
    assert not [word for word in NAME_WORDS if word in decrypted_everything()]
    assert not [word for word in NAME_WORDS if word in every_table_dump()]
    assert not [word for word in NAME_WORDS if word in shown()]
    case_page = text_of(client.get(f"/cases/{written.case.uuid}"))
    assert "Erased" in case_page
    goal = db.session.scalars(sa.select(CaseGoal).where(
        CaseGoal.case_id == written.case.id)).one()
    assert goal.description_enc is None and goal.status == "planned"
    response = db.session.scalars(sa.select(SurveyResponse).where(
        SurveyResponse.beneficiary_id == youth.id)).one()
    assert response.text_answers_enc is None and response.answers["w1"] == "4"
    assert response.scores  # reports read these
    assert client.post(f"/cases/{written.case.uuid}/goals",
                       data={"goal-description": "جديد"}).status_code == 302
    assert db.session.scalar(sa.select(sa.func.count()).select_from(CaseGoal).where(
        CaseGoal.case_id == written.case.id)) == 1, "no new free text about an erased youth"


def test_large_result_counts_are_capped(client, worker, make_beneficiary, monkeypatch):
    from bladi_cases.services.beneficiaries import search as beneficiary_search

    for first in ("أمل", "أماني", "أمينة"):
        make_beneficiary("BA", first_name_ar=first)
    monkeypatch.setattr(beneficiary_search, "COUNT_CAP", 2)
    page = text_of(client.get("/beneficiaries/", query_string={"q": "أم"}))
    assert "أكثر من 2" in page
    assert len(re.findall(r"BA-\d{4}", page)) == 3


def test_the_list_shows_bladi_page_size_rows(app, client, worker, make_beneficiary, monkeypatch):
    for first in ("أمل", "أماني", "أمينة"):
        make_beneficiary("BA", first_name_ar=first)
    monkeypatch.setitem(app.config, "BLADI_PAGE_SIZE", 2)
    first_page = text_of(client.get("/beneficiaries/", query_string={"q": "أم"}))
    second_page = text_of(client.get("/beneficiaries/", query_string={"q": "أم", "page": 2}))
    assert len(set(re.findall(r"BA-\d{4}", first_page))) == 2
    assert len(set(re.findall(r"BA-\d{4}", second_page))) == 1
