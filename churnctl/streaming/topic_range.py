"""The offset range an ingest reads: per partition, from the group's committed offset to the
end seen at start, chained onto the previous artifact when that one ends where this starts.

`covered` is what the artifact holds (the chain's first offsets to this end); it, not the read
range, is the cache key's part: a run with nothing new finds the same key and the cached
artifact, and a run killed before its offsets were committed reads its range again into the
same key (or a longer one) instead of losing or doubling events.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Offsets = dict[int, int]


@dataclass(frozen=True)
class TopicRange:
    topic: str
    read_from: Offsets  # where this run starts reading (the group's committed offsets)
    to: Offsets  # the end offsets seen at start: this run reads up to, not including, them
    covered_from: Offsets  # where the events in the artifact begin (earlier runs included)
    previous: str | None = None  # the artifact directory this one extends

    def digest(self) -> str:
        """The cache key's part: topic and covered range, partition by partition."""
        parts = ",".join(f"{p}:{self.covered_from[p]}-{self.to[p]}" for p in sorted(self.to))
        return f"{self.topic}[{parts}]"

    def pending(self) -> int:
        return sum(max(self.to[p] - self.read_from[p], 0) for p in self.to)

    def as_meta(self) -> dict[str, Any]:
        return {"topic": self.topic, "read_from": _keys(self.read_from), "to": _keys(self.to),
                "covered_from": _keys(self.covered_from)}


def _keys(offsets: Offsets) -> dict[str, int]:
    return {str(p): o for p, o in sorted(offsets.items())}


def from_meta(meta: dict[str, Any], key: str) -> Offsets:
    return {int(p): int(o) for p, o in meta[key].items()}


def previous_range(latest_dir: Path | None, topic: str) -> dict[str, Any] | None:
    """The `kafka` metadata of the stage's latest artifact when it read the same topic."""
    if latest_dir is None or not (latest_dir / "manifest.json").is_file():
        return None
    manifest = json.loads((latest_dir / "manifest.json").read_text())
    meta = manifest.get("contents", {}).get("meta", {}).get("kafka")
    return meta if isinstance(meta, dict) and meta.get("topic") == topic else None


def plan_range(topic: str, committed: Offsets, ends: Offsets,
               previous: dict[str, Any] | None, previous_dir: str | None) -> TopicRange:
    """Chain onto `previous` when it ended exactly where the group's offsets now stand (its
    offsets were committed); otherwise the artifact holds just committed..end."""
    chained = previous is not None and all(
        from_meta(previous, "to").get(p, committed[p]) == committed[p] for p in committed)
    if chained:
        assert previous is not None
        before = from_meta(previous, "covered_from")
        covered = {p: before.get(p, committed[p]) for p in committed}
        return TopicRange(topic, committed, ends, covered, previous_dir)
    return TopicRange(topic, committed, ends, dict(committed))
