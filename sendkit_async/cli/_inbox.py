"""``sendkit-async inbox ...``: mark read, add leads to the DNC list, update conversations."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click
import orjson

from sendkit_async.client import SendKit
from sendkit_async.inbox import is_object_id

from ._runner import (
    EXIT_OK,
    Settings,
    open_client,
    out,
    run,
)

__all__ = ["inbox"]


@click.group()
def inbox() -> None:
    """Conversations."""


def _read_ids(path: str | None, option: str) -> list[str] | None:
    """The ids of an ids file, one per line; blank lines and ``#`` comments skipped.

    Raises:
        click.BadParameter: a line that is not a 24-hex-digit id, named by its
            1-based line number, before anything is sent.
    """
    if path is None:
        return None
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8-sig", errors="replace")
    ids = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if not is_object_id(line):
            name = "standard input" if path == "-" else path
            raise click.BadParameter(
                f"{name} line {number}: {line!r} is not a conversation id (24 hex digits)", param_hint=option
            )
        ids.append(line)
    return ids


def _selection_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        [
            click.option(
                "--ids-file",
                type=click.Path(exists=True, dir_okay=False, allow_dash=True),
                help="conversation ids, one per line (- for stdin; # starts a comment)",
            ),
            click.option(
                "--all", "select_all", is_flag=True, help="every conversation (narrow with --filter)"
            ),
            click.option(
                "--exclude-file",
                type=click.Path(exists=True, dir_okay=False, allow_dash=True),
                help="with --all: ids to leave out, one per line",
            ),
            click.option("--json", "as_json", is_flag=True, help="print the result as one JSON object"),
            click.option(
                "--filter", "filters", multiple=True, metavar="KEY=VALUE", help="with --all: a filter"
            ),
        ]
    ):
        command = option(command)
    return command


def _selection(
    ids_file: str | None, select_all: bool, exclude_file: str | None, filters: tuple[str, ...]
) -> dict[str, Any]:
    if (ids_file is None) == (not select_all):
        raise click.UsageError("pass --ids-file FILE or --all")
    parsed: dict[str, Any] = {}
    for item in filters:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.UsageError(f"--filter takes KEY=VALUE, got {item!r}")
        parsed[key] = _filter_value(value)
    if (filters or exclude_file) and not select_all:
        raise click.UsageError("--filter and --exclude-file go with --all")
    return {
        "conversation_ids": _read_ids(ids_file, "--ids-file"),
        "select_all": select_all,
        "filters": parsed or None,
        "exclude_ids": _read_ids(exclude_file, "--exclude-file"),
    }


def _filter_value(value: str) -> Any:
    lowered = value.lower()
    if lowered in {"true", "false"}:
        return lowered == "true"
    return None if lowered == "null" else value


def _show(result: Any, text: str, *, as_json: bool) -> None:
    """A command's result: a sentence, or with ``--json`` one JSON object (with its request id)."""
    if as_json:
        data = {**result.to_dict(), "request_id": result.request_id}
        sys.stdout.buffer.write(orjson.dumps(data) + b"\n")
        sys.stdout.flush()
    else:
        out.print(text)


def _selection_command(
    name: str, summary: str, call: Callable[[SendKit, dict[str, Any]], Awaitable[tuple[Any, str]]]
) -> None:
    """Add an inbox command that sends a selection (--ids-file, or --all with filters)."""

    @inbox.command(name, help=summary)
    @_selection_options
    @click.pass_obj
    def command(
        settings: Settings,
        ids_file: str | None,
        select_all: bool,
        exclude_file: str | None,
        as_json: bool,
        filters: tuple[str, ...],
    ) -> None:
        selection = _selection(ids_file, select_all, exclude_file, filters)

        async def work() -> int:
            async with open_client(settings) as client:
                result, text = await call(client, selection)
            _show(result, text, as_json=as_json)
            return EXIT_OK

        run(settings, work)


async def _mark_read(client: SendKit, selection: dict[str, Any]) -> tuple[Any, str]:
    result = await client.inbox.mark_read(**selection)
    return result, f"marked {result.modified:,} conversations read"


async def _add_to_dnc(client: SendKit, selection: dict[str, Any]) -> tuple[Any, str]:
    result = await client.inbox.add_leads_to_dnc(**selection)
    already = f"{result.skipped:,} already there ({result.total:,} in all)"
    return result, f"added {result.added:,} leads to the DNC list, {already}"


_selection_command("mark-read", "Mark the selected conversations' unread replies as read.", _mark_read)
_selection_command("add-to-dnc", "Put the selected conversations' leads on the DNC list.", _add_to_dnc)


@inbox.command("update")
@click.argument("conversation_id")
@click.option("--mark-read", is_flag=True, help="mark its unread replies as read")
@click.option("--ai-tag", help="set the AI tag")
@click.option("--clear-ai-tag", is_flag=True, help="remove the AI tag")
@click.option("--tag", "tags", multiple=True, help="set the custom tags (repeat for several)")
@click.option("--clear-tags", is_flag=True, help="remove every custom tag")
@click.option("--json", "as_json", is_flag=True, help="print the conversation as one JSON object")
@click.pass_obj
def inbox_update(
    settings: Settings,
    conversation_id: str,
    mark_read: bool,
    ai_tag: str | None,
    clear_ai_tag: bool,
    tags: tuple[str, ...],
    clear_tags: bool,
    as_json: bool,
) -> None:
    """Update one conversation."""
    if ai_tag is not None and clear_ai_tag:
        raise click.UsageError("--ai-tag and --clear-ai-tag exclude each other")
    if tags and clear_tags:
        raise click.UsageError("--tag and --clear-tags exclude each other")
    changes: dict[str, Any] = {}
    if mark_read:
        changes["mark_read"] = True
    if ai_tag is not None or clear_ai_tag:
        changes["ai_tag"] = ai_tag
    if tags or clear_tags:
        changes["tags"] = list(tags)
    if not changes:
        raise click.UsageError(
            "nothing to update: pass --mark-read, --ai-tag, --clear-ai-tag, --tag or --clear-tags"
        )

    async def work() -> int:
        async with open_client(settings) as client:
            conversation = await client.inbox.update(conversation_id, **changes)
        text = f"{conversation.id}: ai tag {conversation.ai_tag!r}, tags {list(conversation.tags)}"
        _show(conversation, text, as_json=as_json)
        return EXIT_OK

    run(settings, work)
