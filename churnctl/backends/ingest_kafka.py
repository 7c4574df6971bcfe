"""Ingest the v4 way: the events topic into the workspace as a bounded artifact.

From the group's committed offsets to the end offsets seen at start (streaming/topic_range.py);
the range is in the artifact's metadata and its cache key. Offsets are committed in `publish`,
after the artifact commits: a run killed in between reads the same range again (at-least-once
reading); events are de-duplicated by event_id (exactly-once result).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from churnctl.errors import UserError
from churnctl.stages import ArtifactRef, Backend, StageContext, StageOutput, StrictOptions
from churnctl.streaming.topic_range import TopicRange
from churnctl.workspace import Workspace

# The range the last cache key was made of, per (workspace, bootstrap, topic, group): the run
# right after reads exactly that range, even if more events arrived since the key was computed.
_PLANNED: dict[tuple[str, str, str, str], TopicRange] = {}


class KafkaIngestOptions(StrictOptions):
    topic: str = "churn-events"
    bootstrap: str | None = None  # default: $CHURNCTL_KAFKA_BOOTSTRAP, else 127.0.0.1:9092
    group: str = "churnctl-ingest"
    # Users keyed by user_id (the newest record per user wins; default churn-users), or a
    # users table (CSV/Parquet) read like ingest.files: one of the two.
    users_topic: str | None = None
    users_file: Path | None = None
    timeout: float = Field(30.0, gt=0)  # seconds without progress before the read gives up


class KafkaIngest(Backend):
    name = "kafka"
    stage = "ingest"
    description = ("reads the events topic (committed offsets to the end seen at start) into "
                   "a bounded artifact; commits the offsets after it")
    Options = KafkaIngestOptions
    extra = "kafka"
    modules = ("confluent_kafka", "pandas", "pyarrow")

    @classmethod
    def services(cls, options: dict[str, Any]) -> list[tuple[str, str]]:
        from churnctl.streaming.kafka_client import bootstrap_servers

        return [("kafka", bootstrap_servers(options.get("bootstrap")))]

    def external_inputs(self, options: KafkaIngestOptions, workspace: Workspace) -> list[Path]:
        return [workspace.root / options.users_file] if options.users_file else []

    def input_digests(self, options: KafkaIngestOptions, workspace: Workspace) -> dict[str, str]:
        from churnctl.streaming.topic_read import plan_events, users_range

        _check_users(options)
        planned = plan_events(options, workspace)
        _PLANNED[_slot(options, workspace)] = planned
        digests = {"kafka:events": planned.digest()}
        if not options.users_file:
            digests["kafka:users"] = users_range(options).digest()
        return digests

    def run(self, ctx: StageContext) -> StageOutput:
        from churnctl.streaming.topic_read import plan_events, read_events, read_users

        opts: KafkaIngestOptions = ctx.options
        planned = _PLANNED.pop(_slot(opts, ctx.workspace), None) or plan_events(opts,
                                                                                ctx.workspace)
        if not sum(planned.to[p] - planned.covered_from[p] for p in planned.to):
            raise UserError(_nothing_to_read(opts, planned))
        events, summary = read_events(opts, planned)
        users = read_users(opts, ctx.workspace)
        events.to_parquet(ctx.out_dir / "events.parquet", index=False)
        users.to_parquet(ctx.out_dir / "users.parquet", index=False)
        ctx.log(f"read {summary['new_events']:,} events from {opts.topic!r} "
                f"({summary['events_rows']:,} in the artifact)")
        return StageOutput(summary={**summary, "users_rows": len(users)},
                           tables={"events": "events.parquet", "users": "users.parquet"},
                           meta={"kafka": {**planned.as_meta(), "group": opts.group}})

    def publish(self, ctx: StageContext, artifact: ArtifactRef) -> dict[str, Any]:
        from churnctl.streaming.topic_read import commit_offsets

        meta = artifact.meta("kafka")
        commit_offsets(ctx.options, meta)
        return {"committed_offsets": meta["to"]}


def _slot(options: KafkaIngestOptions, workspace: Workspace) -> tuple[str, str, str, str]:
    from churnctl.streaming.kafka_client import bootstrap_servers

    return (str(workspace.root.resolve()), bootstrap_servers(options.bootstrap), options.topic,
            options.group)


def _nothing_to_read(options: KafkaIngestOptions, planned: TopicRange) -> str:
    """Why the range is empty: an empty topic, or a group already at its end (another
    workspace's ingest committed it) with no earlier artifact here to chain onto. An empty
    artifact would go on to train on nothing."""
    from churnctl.streaming.kafka_client import bootstrap_servers

    where = f"{options.topic!r} on {bootstrap_servers(options.bootstrap)}"
    if not any(planned.to.values()):
        return (f"ingest.kafka: {where} has no events; produce some first "
                f"(`churnctl stream produce --topic {options.topic}`)")
    return (f"ingest.kafka: nothing to read from {where}: group {options.group!r} has "
            "committed offsets at the end of the topic (another workspace's ingest?) and this "
            "workspace has no earlier ingest to extend; read the topic from its start with a "
            "group of its own (--set ingest.group=NAME)")


def _check_users(options: KafkaIngestOptions) -> None:
    if options.users_topic and options.users_file:
        raise UserError("ingest.kafka reads users from users_topic or users_file, not both; "
                        "drop one of them")
