"""The shipped sample survey: "Youth engagement and wellbeing", baseline/endline, in Arabic,
French and English, with one scored scale. Written for this project (not a copyrighted
instrument), kept as XLSForm rows so it goes through the same importer as any form."""

from __future__ import annotations

from .services.files import Sheet, xlsx_bytes

FORM_ID = "bladi_youth_wellbeing"
LANG_COLUMNS = ("label::Arabic (ar)", "label::French (fr)", "label::English (en)")

AGREE = [
    ("1", "لا أوافق إطلاقًا", "Pas du tout d'accord", "Strongly disagree"),
    ("2", "لا أوافق", "Pas d'accord", "Disagree"),
    ("3", "محايد", "Ni d'accord ni pas d'accord", "Neither agree nor disagree"),
    ("4", "أوافق", "D'accord", "Agree"),
    ("5", "أوافق تمامًا", "Tout à fait d'accord", "Strongly agree"),
]
CHOICES = [("agree5", *row) for row in AGREE] + [
    ("yes_no", "yes", "نعم", "Oui", "Yes"),
    ("yes_no", "no", "لا", "Non", "No"),
    ("situation", "studying", "أدرس", "J'étudie", "Studying"),
    ("situation", "training", "في تكوين مهني", "En formation professionnelle",
     "In vocational training"),
    ("situation", "working", "أعمل", "Je travaille", "Working"),
    ("situation", "none", "لا شيء مما سبق", "Rien de tout cela", "None of these"),
    ("activities", "arts", "فنون ومسرح", "Arts et théâtre", "Arts and drama"),
    ("activities", "sport", "رياضة", "Sport", "Sport"),
    ("activities", "music", "موسيقى", "Musique", "Music"),
    ("activities", "volunteering", "عمل تطوعي", "Bénévolat", "Volunteering"),
    ("activities", "none", "لا شيء", "Aucune", "None"),
]

# type, name, labels (ar, fr, en), required, relevant, constraint, constraint messages
SURVEY = [
    ("begin_group", "g_situation", ("وضعيتك", "Ta situation", "Your situation"), "", "", "", ()),
    ("select_one situation", "situation",
     ("ماذا تفعل حاليًا؟", "Que fais-tu actuellement ?", "What do you do now?"),
     "yes", "", "", ()),
    ("select_one yes_no", "has_job",
     ("هل لديك عمل مدفوع الأجر؟", "As-tu un travail rémunéré ?", "Do you have a paid job?"),
     "yes", "${situation} != 'studying'", "", ()),
    ("integer", "job_hours",
     ("كم ساعة تعمل في الأسبوع؟", "Combien d'heures travailles-tu par semaine ?",
      "How many hours a week do you work?"),
     "yes", "${has_job} = 'yes'", ". >= 1 and . <= 80",
     ("بين 1 و80 ساعة", "Entre 1 et 80 heures", "Between 1 and 80 hours")),
    ("select_multiple activities", "activities",
     ("ما الأنشطة التي شاركت فيها خلال الشهر الماضي؟",
      "À quelles activités as-tu participé le mois dernier ?",
      "Which activities did you take part in last month?"), "no", "", "", ()),
    ("end_group", "", ("", "", ""), "", "", "", ()),
    ("begin_group", "g_wellbeing", ("كيف تشعر", "Comment tu te sens", "How you feel"),
     "", "", "", ()),
    ("note", "wellbeing_intro",
     ("إلى أي حد توافق على الجمل التالية؟", "Dans quelle mesure es-tu d'accord ?",
      "How much do you agree with these sentences?"), "", "", "", ()),
    ("select_one agree5", "w1",
     ("أشعر بالأمل في مستقبلي.", "J'ai de l'espoir pour mon avenir.",
      "I feel hopeful about my future."), "yes", "", "", ()),
    ("select_one agree5", "w2",
     ("أشعر غالبًا أنني لا أنتمي إلى أي مكان.", "Je sens souvent que je n'ai ma place nulle part.",
      "I often feel I do not belong anywhere."), "yes", "", "", ()),
    ("select_one agree5", "w3",
     ("يوجد في حيّي كبار أستطيع الوثوق بهم.", "Il y a dans mon quartier des adultes de confiance.",
      "There are adults I can trust in my neighbourhood."), "yes", "", "", ()),
    ("select_one agree5", "w4",
     ("أستطيع مواجهة المشاكل التي تعترضني.", "Je peux faire face aux problèmes que je rencontre.",
      "I can handle the problems that come my way."), "yes", "", "", ()),
    ("select_one agree5", "w5",
     ("أشعر بأنني بلا فائدة أغلب الوقت.", "Je me sens inutile la plupart du temps.",
      "I feel useless most of the time."), "yes", "", "", ()),
    ("end_group", "", ("", "", ""), "", "", "", ()),
    ("begin_group", "g_association", ("الجمعية", "L'association", "The association"),
     "", "", "", ()),
    ("select_one agree5", "trust_staff",
     ("أثق في فريق الجمعية.", "J'ai confiance dans l'équipe de l'association.",
      "I trust the association's team."), "yes", "", "", ()),
    ("text", "comments",
     ("هل تريد إضافة شيء؟", "Veux-tu ajouter quelque chose ?", "Anything you want to add?"),
     "no", "", ". = '' or string-length(.) <= 500",
     ("500 حرف على الأكثر", "500 caractères au plus", "At most 500 characters")),
    ("end_group", "", ("", "", ""), "", "", "", ()),
]

SCALE = ("wellbeing", ("الرفاه", "Bien-être", "Wellbeing"), "w1,w2,w3,w4,w5", "sum", "w2,w5",
         4, 1, 5)


def workbook_bytes() -> bytes:
    """The sample survey as an XLSForm file."""
    survey = [["type", "name", *LANG_COLUMNS, "required", "relevant", "constraint",
               "constraint_message::Arabic (ar)", "constraint_message::French (fr)",
               "constraint_message::English (en)"]]
    for kind, name, labels, required, relevant, constraint, messages in SURVEY:
        survey.append([kind, name, *labels, required, relevant, constraint,
                       *(messages or ("", "", ""))])
    settings = [["form_title::Arabic (ar)", "form_title::French (fr)",
                 "form_title::English (en)", "form_id", "version"],
                ["انخراط الشباب ورفاههم", "Engagement et bien-être des jeunes",
                 "Youth engagement and wellbeing", FORM_ID, "2026-11"]]
    name, labels, items, method, reverse, minimum, low, high = SCALE
    scales = [["name", *LANG_COLUMNS, "items", "method", "reverse", "min_answered",
               "item_min", "item_max"],
              [name, *labels, items, method, reverse, minimum, low, high]]
    return xlsx_bytes([Sheet("survey", survey),
                       Sheet("choices", [["list_name", "name", *LANG_COLUMNS], *CHOICES]),
                       Sheet("settings", settings), Sheet("scales", scales)])
