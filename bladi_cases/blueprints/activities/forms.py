"""Forms of the activities blueprint. Attendance radios are read by the view (one per youth)."""

from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
    TimeField,
)
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from ...models.activities import WEEKDAY_LABELS, ActivityKind, CompletionRule
from .. import Form
from ..admin.forms import CheckboxListField


class ActivityForm(Form):
    """An activity's definition."""

    name = StringField(_l("Name"), validators=[InputRequired(), Length(max=120)],
                       render_kw={"dir": "auto"})
    kind = SelectField(_l("Kind"), choices=ActivityKind.choices())
    site = SelectField(_l("Site"), choices=[])
    facilitators = CheckboxListField(_l("Facilitators"), choices=[], coerce=int)
    planned_start = DateField(_l("Planned start"), validators=[Optional()])
    planned_end = DateField(_l("Planned end"), validators=[Optional()])
    planned_sessions = IntegerField(_l("Planned number of sessions"),
                                    validators=[Optional(), NumberRange(1, 1000)])
    weekdays = CheckboxListField(_l("Meeting days"), coerce=int,
                                 choices=list(enumerate(WEEKDAY_LABELS)))
    default_duration_minutes = IntegerField(_l("Usual length of a session (minutes)"),
                                            default=90, validators=[Optional()])
    completion_rule = SelectField(_l("Completion rule"),
                                  choices=CompletionRule.choices())
    completion_threshold = IntegerField(
        _l("Completion threshold"), default=75, validators=[Optional()],
        description=_l("A percentage of held sessions, or a number of hours."))
    present_by_default = BooleanField(_l("Mark everyone present by default"), default=True)
    active = BooleanField(_l("Active"), default=True)


class SessionForm(Form):
    """A session's facts; the attendance radios (att-<youth uuid>) come with it."""

    session_uuid = HiddenField()
    date = DateField(_l("Date"), validators=[Optional()])
    start_time = TimeField(_l("Start time"), validators=[Optional()])
    duration_minutes = IntegerField(_l("Length (minutes)"), validators=[Optional()])
    topic = StringField(_l("Topic"), validators=[Optional(), Length(max=200)],
                        render_kw={"dir": "auto"})
    notes = TextAreaField(_l("Notes (no names or personal details)"),
                          validators=[Optional(), Length(max=1000)],
                          render_kw={"dir": "auto", "rows": 3})


class QuickAddForm(Form):
    """Add a registered youth of the CSO to the activity, by code."""

    code = StringField(_l("Add a young person by code"), validators=[InputRequired(),
                                                                    Length(max=30)],
                       render_kw={"dir": "ltr", "autocomplete": "off"})
    start_date = DateField(_l("From"), validators=[Optional()])
    next = HiddenField()


class GroupEventForm(Form):
    """A group event; the counts (count-<sex>-<band>) come with it."""

    title = StringField(_l("Name"), validators=[InputRequired(), Length(max=200)],
                        render_kw={"dir": "auto"})
    kind = SelectField(_l("Kind"), choices=ActivityKind.choices(),
                       default="community_event")
    site = SelectField(_l("Site"), choices=[], default="")
    place = StringField(_l("Place"), validators=[Optional(), Length(max=200)],
                        render_kw={"dir": "auto"})
    date = DateField(_l("Date"), validators=[Optional()])
    duration_minutes = IntegerField(_l("Length (minutes)"), validators=[Optional()])
