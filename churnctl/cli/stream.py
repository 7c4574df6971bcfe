"""`churnctl stream produce` (replay events into a topic) and `churnctl stream score` (the
real-time scorer). confluent-kafka, pandas and sklearn are imported only when a command runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from churnctl.cli.common import JsonOption, console, err_console, print_json

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


def register(main: typer.Typer) -> None:
    main.add_typer(app, name="stream")
