"""The default orchestrator: churnctl's own runner, in this process."""

from __future__ import annotations

from churnctl.stages import Backend


class LocalOrchestrator(Backend):
    name = "local"
    stage = "orchestrator"
    description = "stages run in order in this process, cached by content hash"
