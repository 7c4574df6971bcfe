"""The churn event data model (DESIGN.md §2) as column specs both ingest and validate use."""

from __future__ import annotations

from dataclasses import dataclass

PLANS = ("free", "paid")
COUNTRIES = ("IN", "US", "UK", "CA", "AU", "SG")
MARKETING_SOURCES = ("organic", "referral", "ads", "youtube", "community")
EVENT_TYPES = (
    "login",
    "course_enroll",
    "video_watch",
    "quiz_attempt",
    "payment_success",
    "payment_failed",
    "support_ticket",
)


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # int | float | str | date | datetime
    required: bool = True  # blanks are an error when True
    allowed: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    optional: bool = False  # the file may lack the column altogether


USERS: tuple[Column, ...] = (
    Column("user_id", "int"),
    Column("signup_date", "date"),
    Column("plan", "str", allowed=PLANS),
    Column("is_paid", "int", minimum=0, maximum=1),
    Column("country", "str", allowed=COUNTRIES),
    Column("marketing_source", "str", allowed=MARKETING_SOURCES),
    # With it, users is a history: one row per user and date the attributes took effect, and
    # features join each snapshot to the values valid on its day.
    Column("valid_from", "date", required=False, optional=True),
)

EVENTS: tuple[Column, ...] = (
    Column("event_id", "int"),
    Column("user_id", "int"),
    Column("event_time", "datetime"),
    Column("event_type", "str", allowed=EVENT_TYPES),
    Column("course_id", "int", required=False),
    Column("watch_minutes", "float", minimum=0),
    Column("quiz_score", "float", required=False, minimum=0, maximum=100),
    Column("amount", "float", minimum=0),
)

TABLES: dict[str, tuple[Column, ...]] = {"users": USERS, "events": EVENTS}
PRIMARY_KEYS: dict[str, str] = {"users": "user_id", "events": "event_id"}
