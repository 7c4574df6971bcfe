"""The churn column of a customer table: which value means "churned", and 0/1 labels.

Exports spell the two classes many ways (Yes/No, TRUE/FALSE, 1/0, Churned/Stayed, Exited,
"Attrited Customer"/"Existing Customer"). Common spellings are recognised in any case; a pair
that says nothing about which side is churn must be named with --positive.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from churnctl.domain.table_parse import as_text, blank_mask, via_unique
from churnctl.errors import DataError

POSITIVE_WORDS = frozenset({
    "yes", "y", "true", "t", "1", "churn", "churned", "churner", "churning", "exited", "exit",
    "left", "lost", "cancelled", "canceled", "cancel", "attrited", "attrition", "closed", "gone",
    "inactive", "terminated", "lapsed", "quit", "departed", "unsubscribed",
})
NEGATIVE_WORDS = frozenset({
    "no", "n", "false", "f", "0", "stayed", "stay", "retained", "active", "existing", "remained",
    "current", "kept", "open", "renewed", "loyal", "subscribed",
})
_NEGATIONS = ("no", "not", "non", "never")
_TRUTHY = frozenset({"yes", "y", "true", "t", "1", "on"})


def canonical(value: str) -> str:
    """Lower-case, stripped; "1.0" and "1" are the same label."""
    text = value.strip().lower()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text


def polarity(value: str) -> int:
    """+1 when a label reads as churned, -1 as stayed, 0 when it does not say."""
    if value in NEGATIVE_WORDS:
        return -1
    if value in POSITIVE_WORDS:
        return 1
    words = [w for w in re.split(r"[^a-z0-9]+", value) if w]
    if not words:
        return 0
    if words[0] in _NEGATIONS:
        return -1
    if any(w in POSITIVE_WORDS for w in words if len(w) > 1):
        return 1
    if any(w in NEGATIVE_WORDS for w in words if len(w) > 1):
        return -1
    return 0


def _labels(series: pd.Series) -> pd.Series:
    text = as_text(series)
    return via_unique(text, lambda t: t.where(~blank_mask(t), "").map(canonical).astype(object))


def resolve_target(series: pd.Series, path: Path, column: str,
                   positive: str | None) -> tuple[str, str]:
    """(positive, negative) canonical labels; DataError for blank, one-class or >2-class columns."""
    labels = _labels(series)
    counts = labels[labels != ""].value_counts()
    if counts.empty:
        raise DataError(f"{path}: column {column} (the target) is blank in every row; "
                        "give the churn column with --target")
    shown = ", ".join(f"{spelling(series, v)!r} ({n:,})" for v, n in counts.head(6).items())
    if len(counts) > 2:
        raise DataError(f"{path}: column {column} (the target) has {len(counts)} values "
                        f"({shown}{', ...' if len(counts) > 6 else ''}); churn needs exactly two: "
                        "map the others to churned/stayed or drop those rows")
    if len(counts) == 1:
        raise DataError(f"{path}: column {column} (the target) has one value only ({shown}); a "
                        "churn model needs customers who churned and customers who stayed")
    first, second = (str(v) for v in counts.index)
    if positive is not None:
        wanted = canonical(str(positive))
        if wanted not in (first, second) and wanted in _TRUTHY:
            # `--positive yes` given to a true/false column (or the reverse) means the truthy one
            wanted = next((v for v in (first, second) if v in _TRUTHY), wanted)
        if wanted not in (first, second):
            raise DataError(f"{path}: --positive {positive!r} is not a value of column {column} "
                            f"(values: {shown})")
        return wanted, second if wanted == first else first
    a, b = polarity(first), polarity(second)
    if (a == 1 and b != 1) or (a == 0 and b == -1):
        return first, second
    if (b == 1 and a != 1) or (b == 0 and a == -1):
        return second, first
    raise DataError(f"{path}: cannot tell which value of column {column} means churn ({shown}); "
                    f"pass --positive {spelling(series, first)!r} (or the other value)")


def spelling(series: pd.Series, label: str) -> str:
    """A value as the file writes it, for messages."""
    text = as_text(series)
    match = text[_labels(series) == label]
    return str(match.iloc[0]) if len(match) else label


def encode_target(series: pd.Series, positive: str, negative: str) -> pd.Series:
    """1.0 for the positive label, 0.0 for the negative, NaN for blanks and anything else."""
    labels = _labels(series)
    return pd.Series(np.where(labels == positive, 1.0, np.where(labels == negative, 0.0, np.nan)),
                     index=series.index)
