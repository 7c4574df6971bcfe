"""`churnctl stream produce` (replay events into a topic) and `churnctl stream score` (the
real-time scorer). confluent-kafka, pandas and sklearn are imported only when a command runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from churnctl.cli.common import (
    JsonOption,
    ProfileOption,
    WorkspaceOption,
    console,
    err_console,
    print_json,
    workspace_at,
)

app = typer.Typer(help="Kafka streaming (v4): produce events, score them in real time.",
                  no_args_is_help=True)

BootstrapOption = Annotated[str | None, typer.Option(
    "--bootstrap", help="Kafka bootstrap servers HOST:PORT[,...] (default: "
    "$CHURNCTL_KAFKA_BOOTSTRAP, else 127.0.0.1:9092).", show_default=False)]
TopicOption = Annotated[str, typer.Option("--topic", help="Events topic.")]


@app.command("produce")
def produce_command(
    topic: TopicOption = "churn-events",
    rate: Annotated[float, typer.Option("--rate", min=0.0,
                                        help="Events per second (0: as fast as possible).")] = 0.0,
    from_file: Annotated[Path | None, typer.Option(
        "--from", dir_okay=False, show_default=False,
        help="An events table (.csv or .parquet, the columns of ingest.files' events) to "
             "replay instead of the built-in data.")] = None,
    users: Annotated[int, typer.Option(min=1, help="Built-in data: number of users.")] = 200,
    days: Annotated[int, typer.Option(min=1, help="Built-in data: days of events.")] = 60,
    seed: Annotated[int, typer.Option(min=0, help="Built-in data: random seed.")] = 42,
    users_topic: Annotated[str | None, typer.Option(
        "--users-topic", show_default=False,
        help="Also send the built-in users (keyed by user_id) to this topic.")] = None,
    bootstrap: BootstrapOption = None,
    json_out: JsonOption = False,
) -> None:
    """Replay events into a Kafka topic, keyed by user_id, with an idempotent producer.

    Events go in event-time order; each record's value is the event as JSON.

    Examples:

      churnctl stream produce --bootstrap 127.0.0.1:9092

      churnctl stream produce --rate 1000 --users 50 --users-topic churn-users

      churnctl stream produce --from data/events.parquet --topic churn-events
    """
    from churnctl.errors import UserError
    from churnctl.streaming.kafka_client import bootstrap_servers
    from churnctl.streaming.produce import BuiltinEvents, load_events, produce

    servers = bootstrap_servers(bootstrap)
    source = from_file if from_file is not None else BuiltinEvents(users, days, seed)
    events, user_table = load_events(source)
    if users_topic and user_table is None:
        raise UserError("--users-topic sends the built-in users; with --from, send users "
                        "another way or read them from a file in ingest.kafka (users_file)")
    sent = produce(servers, topic, events, rate=rate, users=user_table, users_topic=users_topic,
                   progress=lambda n: err_console().print(f"{n:,} events sent"))
    result = {"topic": topic, "bootstrap": servers, **sent}
    if json_out:
        print_json(result)
    else:
        extra = f" and {sent['users']:,} users to {users_topic!r}" if users_topic else ""
        console().print(f"sent {sent['events']:,} events to {topic!r}{extra} on {servers}")


@app.command("score")
def score_command(
    topic: TopicOption = "churn-events",
    output_topic: Annotated[str, typer.Option(
        "--output-topic", help="Where the scores go, keyed by user_id.")] = "churn-scores",
    dead_letter_topic: Annotated[str, typer.Option(
        "--dead-letter-topic", help="Where malformed events go, with reason and source "
        "offset.")] = "churn-events-dlq",
    group: Annotated[str, typer.Option("--group", help="Consumer group.")] = "churnctl-scorer",
    batch: Annotated[int, typer.Option("--batch", min=1, max=100_000,
                                       help="Events per batch (scored, then committed).")] = 500,
    max_wait_ms: Annotated[int, typer.Option(
        "--max-wait-ms", min=1, max=60_000,
        help="Close a batch after this long even if it is not full (latency at low "
             "rates).")] = 10,
    commit_interval_ms: Annotated[int, typer.Option(
        "--commit-interval-ms", min=0, max=600_000,
        help="Commit state and offsets (and write the Feast online store) at most this "
             "often; 0: after every batch. Scores still go out per batch.")] = 0,
    unknown_users: Annotated[str, typer.Option(
        "--unknown-users", help="An event of a user without a users row: `default` scores it "
        "with default attributes, `dead-letter` sends it to the dead-letter topic.")] = "default",
    users_file: Annotated[Path | None, typer.Option(
        "--users", dir_okay=False, show_default=False,
        help="Users table (CSV/Parquet; default: the users of the latest ingest).")] = None,
    metrics_port: Annotated[int | None, typer.Option(
        "--metrics-port", min=0, max=65535, show_default=False,
        help="Serve Prometheus /metrics on 127.0.0.1:PORT.")] = None,
    stop_when_idle: Annotated[float, typer.Option(
        "--stop-when-idle", min=0.0, help="Exit after this many seconds without events "
        "(0: run until SIGTERM or Ctrl-C).")] = 0.0,
    session_timeout_ms: Annotated[int, typer.Option(
        "--session-timeout-ms", min=1000, help="Consumer group session timeout.")] = 6000,
    bootstrap: BootstrapOption = None,
    profile: ProfileOption = None,
    workspace: WorkspaceOption = Path("."),
    json_out: JsonOption = False,
) -> None:
    """Score every event of a topic in real time with the production model.

    A consumer group (run several for more partitions at once): each event updates its
    user's online features, is scored by the registry's production model (a promotion is
    picked up without a restart) and gives one record on the output topic with event_id,
    score, model_version and the source offset. SIGTERM stops after the current batch.

    Examples:

      churnctl stream score --bootstrap 127.0.0.1:9092 --metrics-port 9108

      churnctl stream score --unknown-users dead-letter --stop-when-idle 10
    """
    from churnctl.errors import UserError
    from churnctl.streaming.kafka_client import bootstrap_servers
    from churnctl.streaming.score_setup import run_scorer
    from churnctl.streaming.scorer import ScoreOptions

    if unknown_users not in ("default", "dead-letter"):
        raise UserError(f"--unknown-users {unknown_users!r}: use default or dead-letter")
    options = ScoreOptions(
        bootstrap=bootstrap_servers(bootstrap), topic=topic, output_topic=output_topic,
        dead_letter_topic=dead_letter_topic, group=group, batch=batch,
        max_wait=max_wait_ms / 1000, commit_interval=commit_interval_ms / 1000,
        unknown_users=unknown_users,  # type: ignore[arg-type]
        metrics_port=metrics_port, stop_when_idle=stop_when_idle,
        session_timeout_ms=session_timeout_ms)
    totals = run_scorer(options, workspace_at(workspace), profile, users_file,
                        log=lambda line: err_console().print(line))
    if json_out:
        print_json(totals)
    else:
        console().print(f"scored {totals['scored']:,} events, {totals['dead_letter']:,} to the "
                        f"dead-letter topic, in {totals['batches']:,} batches")


def register(main: typer.Typer) -> None:
    main.add_typer(app, name="stream")
