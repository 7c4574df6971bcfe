"""Reusable option types and output helpers shared by the command modules."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from churnctl.workspace import Workspace

ProfileOption = Annotated[
    str | None,
    typer.Option(
        "--profile",
        "-p",
        help="Profile name (v1..v4) or a profile YAML path "
        "(default: CHURNCTL_PROFILE, else `profile:` in churnctl.yaml, else v1).",
        show_default=False,
    ),
]
WorkspaceOption = Annotated[
    Path,
    typer.Option(
        "--workspace",
        "-w",
        envvar="CHURNCTL_WORKSPACE",
        help="Project directory holding .churnctl/ state (default: current directory).",
        file_okay=False,
    ),
]


def _json_mode(ctx: typer.Context, value: bool) -> bool:
    # Held until the command returns: its children's stdout goes to stderr (json_stdout).
    if value:
        ctx.with_resource(json_stdout())
    return value


JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object for scripts.",
                                          callback=_json_mode)]

# rich is imported on first use: at module level it costs ~40 ms of every command's start-up.
def console() -> Any:
    from rich.console import Console

    return Console(stderr=False, highlight=False)


def err_console() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def new_table(*args: Any, **kwargs: Any) -> Any:
    """A rich Table (imported on first use)."""
    from rich.table import Table

    return Table(*args, **kwargs)


def escape(text: str) -> str:
    """Escape rich markup in text that may hold brackets (paths, pip extras)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def workspace_at(path: Path) -> Workspace:
    return Workspace(path.resolve())


_json_fd: int | None = None  # the real stdout while json_stdout() holds fd 1 on stderr


@contextmanager
def json_stdout() -> Iterator[None]:
    """Keep stdout for the one JSON document: while the block runs, fd 1 is stderr.

    What a command starts inherits fd 1: the Spark JVM (HotSpot prints its warnings on stdout),
    DVC's stage processes, native libraries. One line from any of them made `run --json`
    unparseable at 1M users; this way they all land on stderr, and print_json alone writes
    the real stdout.
    """
    global _json_fd
    if _json_fd is not None or not _stdout_is_fd_1():
        yield  # (sys.stdout replaced, as by Typer's CliRunner: child output never reaches it)
        return
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    _json_fd = saved
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        _json_fd = None


def _stdout_is_fd_1() -> bool:
    try:
        return sys.stdout.fileno() == 1
    except (AttributeError, OSError, ValueError):
        return False


def print_json(data: Any) -> None:
    text = json.dumps(data, indent=2, default=str) + "\n"
    if _json_fd is None:
        sys.stdout.write(text)
        return
    sys.stdout.flush()
    with os.fdopen(os.dup(_json_fd), "w", encoding="utf-8") as real_stdout:
        real_stdout.write(text)


def debug_enabled() -> bool:
    return os.environ.get("CHURNCTL_DEBUG", "") not in ("", "0", "false")


def stage_backend(profile_name: str, stage: str, flags: dict[str, Any],
                  verbs: tuple[str, ...]) -> tuple[Any, Any, Any]:
    """(profile, backend instance, options) for a command that acts as one stage's backend.

    Flags override the profile's options; every invalid option is one line naming it.
    """
    from pydantic import ValidationError

    from churnctl.errors import UserError
    from churnctl.profile import load_profile
    from churnctl.registry import backend_class

    loaded = load_profile(profile_name)
    binding = loaded.stages.get(stage)
    if binding is None:
        raise UserError(f"profile {profile_name!r} has no {stage} stage; add `stages.{stage}`")
    cls = backend_class(stage, binding.backend)
    if not all(hasattr(cls, verb) for verb in verbs):
        raise UserError(f"{stage} backend {binding.backend!r} cannot be run by "
                        f"`churnctl {stage}`")
    try:
        options = cls.Options.model_validate({**binding.options, **flags})
    except ValidationError as exc:
        problems = [f"{stage} option {'.'.join(map(str, err['loc']))}: "
                    f"{str(err['msg']).removeprefix('Value error, ')}" for err in exc.errors()]
        raise UserError("\n".join(problems)) from None
    return loaded, cls(), options
