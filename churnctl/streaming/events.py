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


try:  # the serve extra's JSON library (stream score needs that extra for its model anyway)
    from orjson import JSONDecodeError as _JSONError
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - produce and ingest work with the kafka extra alone
    _JSONError = json.JSONDecodeError  # type: ignore[misc]
    _loads = json.loads

_DATETIME = datetime.fromisoformat
# (name, kind, required, allowed, column) per field, looked up once, not per record.
_SPECS = tuple((c.name, c.kind, c.required, frozenset(c.allowed), c) for c in EVENTS)
_NEEDED = tuple(c.name for c in EVENTS if not c.optional)


def decode_event(value: bytes | None) -> dict[str, Any]:
    """The event in a record value, its fields checked; MalformedEvent says what is wrong."""
    if value is None:
        raise MalformedEvent("empty record (no value)")
    try:
        raw = _loads(value)
    except (UnicodeDecodeError, _JSONError) as exc:
        raise MalformedEvent(f"not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise MalformedEvent(f"not a JSON object but {type(raw).__name__}")
    missing = [name for name in _NEEDED if name not in raw]
    if missing:
        raise MalformedEvent(f"missing field(s) {', '.join(missing)}")
    event: dict[str, Any] = {}
    for name, kind, required, allowed, column in _SPECS:
        value = raw.get(name)
        if value is None:
            if required:
                raise MalformedEvent(f"field {name!r} is blank")
            event[name] = None
        elif kind == "int":
            if type(value) is not int or column.minimum is not None or column.maximum is not None:
                value = int(_number(name, value, column))
            event[name] = value
        elif kind == "float":
            low, high = column.minimum, column.maximum
            if (type(value) is float or type(value) is int) and (
                    low is None or value >= low) and (high is None or value <= high):
                event[name] = float(value)
            else:  # NaN compares false too and lands here
                event[name] = float(_number(name, value, column))
        elif kind == "datetime":
            try:
                event[name] = _DATETIME(value) if type(value) is str else _DATETIME(str(value))
            except ValueError:
                raise MalformedEvent(f"field {name!r} is {value!r}, not an ISO "
                                     "date-time") from None
        else:
            if allowed and (type(value) is not str or value not in allowed):
                raise MalformedEvent(f"field {name!r} is {value!r}; allowed: "
                                     f"{', '.join(column.allowed)}")
            event[name] = value if type(value) is str else str(value)
    return event
