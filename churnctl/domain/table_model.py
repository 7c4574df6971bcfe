"""A churn model trained on a customer table: the usual ChurnModel plus its column plan.

The plan (types, spellings, pooled levels, date references) travels inside the registered
model, so scoring a new export months later reads cells exactly as training did, whatever
the workspace's latest ingest looks like by then. It is plain JSON data in the model file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from churnctl.domain.model import ChurnModel


@dataclass
class TableChurnModel(ChurnModel):
    plan: dict[str, Any] = field(default_factory=dict)  # TablePlan.to_dict()
    kind: ClassVar[str] = "table"
