"""``sendkit-async inbox ...``: mark read, add leads to the DNC list, update conversations."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click

from sendkit_async.client import SendKit

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


def _read_ids(path: str | None) -> list[str] | None:
    if path is None:
        return None
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def _selection_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        [
            click.option(
                "--ids-file", type=click.Path(), help="conversation ids, one per line (- for stdin)"
            ),
            click.option(
                "--all", "select_all", is_flag=True, help="every conversation (narrow with --filter)"
            ),
            click.option(
                "--exclude-file", type=click.Path(), help="with --all: ids to leave out, one per line"
            ),
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
        "conversation_ids": _read_ids(ids_file),
        "select_all": select_all,
        "filters": parsed or None,
        "exclude_ids": _read_ids(exclude_file),
    }


def _filter_value(value: str) -> Any:
    lowered = value.lower()
    if lowered in {"true", "false"}:
        return lowered == "true"
    return None if lowered == "null" else value


def _selection_command(
    name: str, summary: str, call: Callable[[SendKit, dict[str, Any]], Awaitable[str]]
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
        filters: tuple[str, ...],
    ) -> None:
        selection = _selection(ids_file, select_all, exclude_file, filters)

        async def work() -> int:
            async with open_client(settings) as client:
                out.print(await call(client, selection))
            return EXIT_OK

        run(settings, work)


async def _mark_read(client: SendKit, selection: dict[str, Any]) -> str:
    result = await client.inbox.mark_read(**selection)
    return f"marked {result.modified:,} conversations read"


async def _add_to_dnc(client: SendKit, selection: dict[str, Any]) -> str:
    result = await client.inbox.add_leads_to_dnc(**selection)
    already = f"{result.skipped:,} already there ({result.total:,} in all)"
    return f"added {result.added:,} leads to the DNC list, {already}"


_selection_command("mark-read", "Mark the selected conversations' unread replies as read.", _mark_read)
_selection_command("add-to-dnc", "Put the selected conversations' leads on the DNC list.", _add_to_dnc)


@inbox.command("update")
@click.argument("conversation_id")
@click.option("--mark-read", is_flag=True, help="mark its unread replies as read")
@click.option("--ai-tag", help="set the AI tag")
@click.option("--clear-ai-tag", is_flag=True, help="remove the AI tag")
@click.option("--tag", "tags", multiple=True, help="set the custom tags (repeat for several)")
@click.pass_obj
def inbox_update(
    settings: Settings,
    conversation_id: str,
    mark_read: bool,
    ai_tag: str | None,
    clear_ai_tag: bool,
    tags: tuple[str, ...],
) -> None:
    """Update one conversation."""
    if ai_tag is not None and clear_ai_tag:
        raise click.UsageError("--ai-tag and --clear-ai-tag exclude each other")
    changes: dict[str, Any] = {}
    if mark_read:
        changes["mark_read"] = True
    if ai_tag is not None or clear_ai_tag:
        changes["ai_tag"] = ai_tag
    if tags:
        changes["tags"] = list(tags)
    if not changes:
        raise click.UsageError("nothing to update: pass --mark-read, --ai-tag, --clear-ai-tag or --tag")

    async def work() -> int:
        async with open_client(settings) as client:
            conversation = await client.inbox.update(conversation_id, **changes)
        out.print(f"{conversation.id}: ai tag {conversation.ai_tag!r}, tags {list(conversation.tags)}")
        return EXIT_OK

    run(settings, work)
