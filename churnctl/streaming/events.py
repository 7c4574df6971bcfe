"""Events on the wire: one JSON object per Kafka record, keyed by user_id, checked against the
event contract (domain/schema.py) on the way in. A record that breaks it gets a reason."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

from churnctl.domain.schema import EVENTS, Column

EVENT_FIELDS = tuple(column.name for column in EVENTS)


class MalformedEvent(ValueError):
    """A record that is not a valid event; the message is the reason (for the dead letter)."""


def json_value(value: Any) -> Any:
    """A table cell as JSON: missing (None, NaN, pandas NA/NaT) as null, times as ISO text."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if type(value).__name__ in ("NAType", "NaTType"):
        return None
    if isinstance(value, datetime) or hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return json_value(value.item())
    return value


def encode_event(event: dict[str, Any]) -> tuple[bytes, bytes]:
    """(key, value) of the record for one event: key user_id, value the event as JSON."""
    body = {name: json_value(event.get(name)) for name in EVENT_FIELDS}
    return str(body["user_id"]).encode(), json.dumps(body, separators=(",", ":")).encode()


def _number(name: str, value: Any, column: Column) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedEvent(f"field {name!r} is {type(value).__name__} {value!r}, not a number")
    if column.kind == "int" and float(value) != int(value):
        raise MalformedEvent(f"field {name!r} is {value!r}, not a whole number")
    if column.minimum is not None and value < column.minimum:
        raise MalformedEvent(f"field {name!r} is {value!r}, below {column.minimum:g}")
    if column.maximum is not None and value > column.maximum:
        raise MalformedEvent(f"field {name!r} is {value!r}, above {column.maximum:g}")
    return value


def decode_event(value: bytes | None) -> dict[str, Any]:
    """The event in a record value, its fields checked; MalformedEvent says what is wrong."""
    if value is None:
        raise MalformedEvent("empty record (no value)")
    try:
        raw = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedEvent(f"not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise MalformedEvent(f"not a JSON object but {type(raw).__name__}")
    missing = [c.name for c in EVENTS if c.name not in raw and not c.optional]
    if missing:
        raise MalformedEvent(f"missing field(s) {', '.join(missing)}")
    event: dict[str, Any] = {}
    for column in EVENTS:
        value = raw.get(column.name)
        if value is None:
            if column.required:
                raise MalformedEvent(f"field {column.name!r} is blank")
            event[column.name] = None
        elif column.kind in ("int", "float"):
            number = _number(column.name, value, column)
            event[column.name] = int(number) if column.kind == "int" else float(number)
        elif column.kind == "datetime":
            try:
                event[column.name] = datetime.fromisoformat(str(value))
            except ValueError:
                raise MalformedEvent(f"field {column.name!r} is {value!r}, not an ISO "
                                     "date-time") from None
        else:
            if column.allowed and value not in column.allowed:
                raise MalformedEvent(f"field {column.name!r} is {value!r}; allowed: "
                                     f"{', '.join(column.allowed)}")
            event[column.name] = str(value)
    return event
