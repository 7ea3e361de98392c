"""The fake SendKit server: an aiohttp.web app that behaves like the API's five endpoints.

It is strict where the real API is: both auth headers, the workspace-key
rules, JSON bodies, the 10,000-entry cap (the whole batch is rejected, never
trimmed), entry syntax, id syntax, and errors in the documented
``{"error", "message", "code"}`` shape. In front of it stands its edge
(:mod:`._edge`): latency, a rate limit in the shape of your choice (fixed
window, sliding window, token bucket; headers in the ``X-RateLimit-*`` or
IETF spelling, or none; a phantom neighbour spending part of the key),
injected 5xx answers and dropped connections, all repeatable with a seed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextvars import ContextVar
from http import HTTPStatus
from typing import Any, Final, Literal, TypeAlias

import orjson
from aiohttp import web
from typing_extensions import Self

from sendkit_async._clock import Clock, SystemClock
from sendkit_async._errors import ValidationError
from sendkit_async.client import SendKit

from ._edge import APIError, Edge, OverloadedError, RateLimitedError, ServerStats
from ._judge import REASONS, address, all_plain_addresses, domain, is_id
from ._store import DncStore, FakeConversation, Workspace, iso_now, object_ids

__all__ = [
    "DEFAULT_PLATFORM_KEY",
    "DEFAULT_WORKSPACE_ID",
    "DEFAULT_WORKSPACE_KEY",
    "FakeSendKit",
]

DEFAULT_WORKSPACE_KEY: Final = "sk_test_fake_workspace_key"
DEFAULT_PLATFORM_KEY: Final = "sk_user_test_fake_platform_key"
DEFAULT_WORKSPACE_ID: Final = "ws_test"
OTHER_WORKSPACE_ID: Final = "ws_other"
MAX_IMPORT: Final = 10_000
MAX_LIMIT: Final = 100
DEFAULT_LIMIT: Final = 20
ENTRY_TYPES: Final = frozenset({"email", "domain"})
ENTRY_FIELDS: Final = frozenset({"email", "type", "reason"})

_WORKSPACE: ContextVar[Workspace] = ContextVar("sendkit_fake_workspace")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Rejecter = Callable[[str], "str | None"]


ListOrder: TypeAlias = Literal["oldest", "newest"]


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _error(status: int, message: str, **fields: object) -> web.Response:
    return _json({"error": HTTPStatus(status).phrase, "message": message, "code": status, **fields}, status)


class FakeSendKit:
    """An in-process fake of the SendKit API, served on a loopback port.

    Example:
        >>> async with FakeSendKit(latency=0.05, rate_limit=20) as fake:  # doctest: +SKIP
        ...     async with fake.client() as client:
        ...         await client.dnc.import_entries(["a@example.com"])
        ...     assert "a@example.com" in fake.dnc_emails()

    The API itself: its store, routes, auth and rules. What stands in front
    of it (the rate limiter, a queue of servers, latency, injected faults) is
    its :class:`Edge`, a separate object: ``FakeSendKit(edge=Edge(...))``, or
    the edge's knobs given here directly (``FakeSendKit(latency=0.05)``).

    Args:
        edge: the edge in front of the API (a new one from ``knobs`` if not given).
        list_order: ``"oldest"`` first (ids ascending, the default) or
            ``"newest"`` first; cursor mode follows the same order.
        reject: ``reject(email) -> message | None``: server-side rules the
            client cannot know; a batch holding such an entry gets a 400 naming it.
        max_selection_ids: cap on ids per inbox selection (``None``: no cap).
        workspace_keys: workspace key -> workspace id.
        platform_keys: platform key -> workspace ids it may act on.
        host: the address to listen on.
        port: the port to listen on (0 picks a free one).
        clock: the server's time: its latency waits and its rate limiter's
            windows (a :class:`FakeClock` puts them in virtual time; a test
            with ``auto_advance=False`` holds requests in flight until it
            advances the clock).
        knobs: the :class:`Edge`'s fields (``latency``, ``rate_limit``,
            ``fail_rate``, ``seed``...), when no ``edge`` is given.

    Raises:
        ValidationError: a knob out of range, or both an ``edge`` and knobs.
    """

    def __init__(
        self,
        edge: Edge | None = None,
        *,
        list_order: ListOrder = "oldest",
        reject: Rejecter | None = None,
        max_selection_ids: int | None = None,
        workspace_keys: Mapping[str, str] | None = None,
        platform_keys: Mapping[str, Iterable[str]] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock | None = None,
        **knobs: Any,
    ) -> None:
        if edge is not None and knobs:
            raise ValidationError("pass the edge's knobs to the Edge, or give no edge")
        self.clock: Clock = clock if clock is not None else SystemClock()
        if list_order not in ("oldest", "newest"):
            raise ValidationError(f"list_order must be 'oldest' or 'newest', got {list_order!r}")
        self.list_order: ListOrder = list_order
        self.stats = ServerStats()
        self.edge = edge if edge is not None else Edge(**knobs)
        self.edge.bind(self.clock, self.stats)
        self.reject = reject
        self.max_selection_ids = max_selection_ids
        self.workspace_keys = dict(workspace_keys or {DEFAULT_WORKSPACE_KEY: DEFAULT_WORKSPACE_ID})
        self.platform_keys = {
            k: frozenset(v)
            for k, v in (
                platform_keys or {DEFAULT_PLATFORM_KEY: (DEFAULT_WORKSPACE_ID, OTHER_WORKSPACE_ID)}
            ).items()
        }
        self._host = host
        self._port = port
        # One counter for every id the server issues, so ids never repeat and
        # always grow (cursor paging relies on that).
        self._id_prefix = f"{int(time.time()):08x}"
        self._counter = itertools.count(1)
        self._ids = object_ids(self._id_prefix, self._counter)
        self._workspaces: dict[str, Workspace] = {}
        self._runner: web.AppRunner | None = None
        self._validator: concurrent.futures.ThreadPoolExecutor | None = None
        self._site: web.TCPSite | None = None
        self.app = self._build_app()

    # -- lifecycle -------------------------------------------------------

    async def start(self) -> None:
        """Listen on the configured host and port."""
        # Validating a 10,000-entry batch is the costliest thing the fake does;
        # on its own thread it cannot hold up the rate limiter's decision on
        # the requests arriving meanwhile (a real edge limiter is not slowed by
        # the application behind it).
        self._validator = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="fake-sendkit")
        # Like a proxy that aborts upstream work when its client goes away.
        self._runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, handler_cancellation=True
        )
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self._host, self._port)
        await self._site.start()

    async def stop(self) -> None:
        """Stop listening and close open connections."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = self._site = None
        if self._validator is not None:
            self._validator.shutdown(wait=False, cancel_futures=True)
            self._validator = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The port actually bound."""
        if self._site is None or self._site._server is None:  # noqa: SLF001 - aiohttp has no public accessor
            raise RuntimeError("the fake server is not running")
        sockets = self._site._server.sockets  # type: ignore[attr-defined]  # noqa: SLF001
        return int(sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        """Base URL to give a client."""
        return f"http://{self._host}:{self.port}"

    @property
    def api_key(self) -> str:
        """The first workspace key (a fake secret, safe in tests)."""
        return next(iter(self.workspace_keys))

    def client(self, **kwargs: Any) -> SendKit:
        """A :class:`~sendkit_async.SendKit` pointed at this server with its workspace key."""
        kwargs.setdefault("api_key", self.api_key)
        return SendKit(base_url=self.url, **kwargs)

    # -- state for tests ---------------------------------------------------

    def workspace(self, workspace_id: str = DEFAULT_WORKSPACE_ID) -> Workspace:
        """One workspace's state, created on first use."""
        found = self._workspaces.get(workspace_id)
        if found is None:
            found = self._workspaces[workspace_id] = Workspace(
                workspace_id, DncStore(self._id_prefix, self._counter)
            )
        return found

    def dnc_emails(self, workspace_id: str = DEFAULT_WORKSPACE_ID) -> set[str]:
        """Every address on a workspace's DNC list."""
        return self.workspace(workspace_id).dnc.emails()

    def add_dnc(
        self, emails: Iterable[str], *, reason: str = "manual", workspace_id: str = DEFAULT_WORKSPACE_ID
    ) -> None:
        """Put addresses (or domains, without ``@``) on the list directly."""
        store, now = self.workspace(workspace_id).dnc, iso_now()
        for email in emails:
            store.add(email.lower(), "email" if "@" in email else "domain", reason, now)

    def remove_dnc(self, emails: Iterable[str], *, workspace_id: str = DEFAULT_WORKSPACE_ID) -> int:
        """Take addresses off the list directly (the API has no delete); return how many were there."""
        store = self.workspace(workspace_id).dnc
        return sum(store.remove(email.lower()) for email in emails)

    def add_conversation(
        self,
        lead_email: str,
        *,
        unread: int = 1,
        ai_tag: str | None = None,
        tags: Iterable[str] = (),
        campaign_id: str | None = None,
        workspace_id: str = DEFAULT_WORKSPACE_ID,
    ) -> str:
        """Create a conversation and return its id."""
        conversation = FakeConversation(next(self._ids), lead_email, unread, ai_tag, list(tags), campaign_id)
        self.workspace(workspace_id).conversations[conversation.id] = conversation
        return conversation.id

    def conversation(
        self, conversation_id: str, workspace_id: str = DEFAULT_WORKSPACE_ID
    ) -> FakeConversation:
        """A conversation's current state."""
        return self.workspace(workspace_id).conversations[conversation_id]

    # -- the app -----------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024**2)
        app.router.add_post("/v1/dnc/import", self._import)
        app.router.add_get("/v1/dnc", self._list)
        app.router.add_post("/v1/inbox/dnc", self._inbox_dnc)
        app.router.add_post("/v1/inbox/mark-read", self._mark_read)
        app.router.add_patch("/v1/inbox/{id}", self._update)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        stats = self.stats
        stats.requests += 1
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            response = await self._serve(request, handler)
            stats.by_status[response.status] += 1
            return response
        finally:
            stats.in_flight -= 1

    async def _serve(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.resource
        self.stats.by_route[f"{request.method} {route.canonical if route else request.path}"] += 1
        key: str | None = None
        limit_headers: dict[str, str] = {}
        try:
            # Like a real edge: authenticate and count the request on arrival,
            # then spend the processing time.
            key, workspace_id = self._authenticate(request)
            limit_headers = self.edge.admit(key)
            async with self.edge.served():
                if await self.edge.process(request):  # the connection dropped
                    return web.Response(status=499)
                if request.method in {"POST", "PATCH"} and request.content_type != "application/json":
                    raise APIError(415, "Content-Type must be application/json")  # noqa: TRY301
                # Each request runs in its own task, so a context variable carries
                # the authenticated workspace from here to the handler.
                _WORKSPACE.set(self.workspace(workspace_id))
                response = await handler(request)
        except OverloadedError as exc:
            response = _error(503, exc.message)
            response.headers["Retry-After"] = "1"
        except RateLimitedError as exc:
            response = _error(exc.status, exc.message, **exc.fields)
            limit_headers = exc.headers
        except APIError as exc:
            response = _error(exc.status, exc.message)
        except web.HTTPException as exc:  # routing: unknown path or method
            response = _error(exc.status, exc.reason)
        if key is not None and limit_headers:
            response.headers.update(limit_headers)
        # Every answer names itself, as gateways do (the pages do not say the header).
        response.headers["X-Request-Id"] = f"req_{self.stats.requests:08d}"
        return response

    def _authenticate(self, request: web.Request) -> tuple[str, str]:
        key = request.headers.get("X-Api-Key", "")
        if not key:
            raise APIError(401, "Missing X-Api-Key header")
        if request.headers.get("Authorization", "") != f"Bearer {key}":
            raise APIError(401, "Authorization must be 'Bearer <API key>' with the same key as X-Api-Key")
        workspace_header = request.headers.get("X-Workspace-Id")
        if key in self.workspace_keys:
            if workspace_header is not None:
                raise APIError(400, "Workspace API keys must not send X-Workspace-Id")
            return key, self.workspace_keys[key]
        if key in self.platform_keys:
            if not workspace_header:
                raise APIError(400, "Platform API keys need an X-Workspace-Id header")
            if workspace_header not in self.platform_keys[key]:
                raise APIError(403, "This key has no access to that workspace")
            return key, workspace_header
        raise APIError(401, "Invalid API key")

    # -- handlers ----------------------------------------------------------

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        try:
            raw = await request.read()
        except ConnectionResetError:  # the client went away mid-upload (cancelled)
            raise APIError(400, "connection lost while reading the body") from None
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise APIError(400, "Request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise APIError(400, "Request body must be a JSON object")
        return body

    async def _import(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        entries = body.get("entries")
        if not isinstance(entries, list) or not entries:
            raise APIError(400, "entries is required and must be a non-empty array")
        self.stats.largest_batch = max(self.stats.largest_batch, len(entries))
        self.stats.entries_received += len(entries)
        if len(entries) > MAX_IMPORT:
            raise APIError(400, f"entries may hold at most {MAX_IMPORT:,} items, got {len(entries):,}")
        if unknown := set(body) - {"entries"}:
            raise APIError(400, f"unknown fields: {', '.join(sorted(unknown))}")
        if self._validator is None or len(entries) < 100:  # noqa: PLR2004 - small batches stay inline
            rows = self._check_entries(entries)
        else:
            rows = await asyncio.get_running_loop().run_in_executor(
                self._validator, self._check_entries, entries
            )
        if self.edge.latency_per_entry:
            await self.clock.sleep(self.edge.latency_per_entry * len(entries))
        store, now = _WORKSPACE.get().dnc, iso_now()
        imported = store.add_many(rows, now)
        return _json({"success": True, "data": {"imported": imported, "skipped": len(rows) - imported}})

    def _check_entries(self, entries: list[Any]) -> list[tuple[str, str, str]]:
        """Validate a batch: one pass for the common all-clean case, else entry by entry."""
        if self.reject is None:
            try:
                keys: set[str] = set().union(*entries)
                rows = [(e["email"], e.get("type", "email"), e.get("reason", "import")) for e in entries]
            except (TypeError, KeyError):
                rows = []
            else:
                emails = [row[0] for row in rows]
                if (
                    keys <= ENTRY_FIELDS
                    and {row[1] for row in rows} == {"email"}
                    and {row[2] for row in rows} <= REASONS
                    and all(isinstance(email, str) for email in emails)
                    and all_plain_addresses(emails)
                ):
                    return rows
        return [self._check_entry(i, entry) for i, entry in enumerate(entries)]

    def _check_entry(self, index: int, entry: object) -> tuple[str, str, str]:
        # Runs for every entry of every import: the happy path does no
        # string formatting and no set arithmetic.
        if not isinstance(entry, dict):
            raise APIError(400, f"entries[{index}] must be an object")
        if len(entry) > len(ENTRY_FIELDS) or not ENTRY_FIELDS.issuperset(entry):
            unknown = ", ".join(sorted(set(entry) - ENTRY_FIELDS))
            raise APIError(400, f"entries[{index}]: unknown fields: {unknown}")
        email, type_, reason = entry.get("email"), entry.get("type", "email"), entry.get("reason", "import")
        if not isinstance(email, str) or not email:
            raise APIError(400, f"entries[{index}].email is required")
        if type_ not in ENTRY_TYPES:
            raise APIError(400, f"entries[{index}].type must be 'email' or 'domain'")
        if reason not in REASONS:
            raise APIError(400, f"entries[{index}].reason must be one of {', '.join(sorted(REASONS))}")
        normal = address(email) if type_ == "email" else domain(email)
        if normal is None:
            what = "email address" if type_ == "email" else "domain"
            raise APIError(400, f"entries[{index}]: invalid {what} {email!r}")
        if self.reject is not None and (why := self.reject(normal)):
            raise APIError(400, f"entries[{index}]: {why}")
        return normal, type_, reason

    async def _list(self, request: web.Request) -> web.Response:
        query = request.query
        if unknown := set(query) - {"type", "page", "limit", "cursor"}:
            raise APIError(400, f"unknown query parameters: {', '.join(sorted(unknown))}")
        type_ = query.get("type")
        if type_ is not None and type_ not in {"email", "domain"}:
            raise APIError(400, "type must be 'email' or 'domain'")
        limit = _int_param(query, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        workspace: Workspace = _WORKSPACE.get()
        store = workspace.dnc
        total = store.count(type_)
        if "cursor" in query:
            if "page" in query:
                raise APIError(400, "use page or cursor, not both")
            cursor = query["cursor"]
            if not is_id(cursor):
                raise APIError(400, "cursor must be an entry id")
            rows = store.after(type_, cursor, limit + 1, newest=self.list_order == "newest")
            more = len(rows) > limit
            rows = rows[:limit]
            pagination: dict[str, Any] = {
                "total": total,
                "limit": limit,
                "nextCursor": rows[-1].id if more and rows else None,
                "hasMore": more,
            }
        else:
            page = _int_param(query, "page", 1, 1, None)
            rows = store.page(type_, page, limit, newest=self.list_order == "newest")
            pagination = {"total": total, "page": page, "limit": limit, "pages": math.ceil(total / limit)}
        data = [row.wire(workspace.id) for row in rows]
        return _json({"success": True, "data": data, "pagination": pagination})

    def _select(self, body: dict[str, Any]) -> list[FakeConversation]:
        if unknown := set(body) - {"conversationIds", "selectAll", "filters", "excludeIds"}:
            raise APIError(400, f"unknown fields: {', '.join(sorted(unknown))}")
        ids, select_all = body.get("conversationIds"), body.get("selectAll", False)
        conversations: dict[str, FakeConversation] = _WORKSPACE.get().conversations
        if select_all not in {True, False}:
            raise APIError(400, "selectAll must be a boolean")
        if (ids is None) == (not select_all):
            raise APIError(400, "use either conversationIds or selectAll: true")
        if ids is not None:
            if "filters" in body or "excludeIds" in body:
                raise APIError(400, "filters and excludeIds apply only with selectAll")
            self._check_id_list(ids, "conversationIds", allow_empty=False)
            return [conversations[i] for i in dict.fromkeys(ids) if i in conversations]
        filters = body.get("filters") or {}
        # The pages leave filters open: any object of plain values is taken; the fake applies the
        # ones it knows (campaignId, aiTag, tag, unread) and, like a lenient API, ignores the rest.
        if not isinstance(filters, dict):
            raise APIError(400, "filters must be an object")
        for key, value in filters.items():
            if value is not None and not isinstance(value, (str, int, float, bool)):
                raise APIError(400, f"filter {key!r} must be a plain value")
        excluded = set(self._check_id_list(body.get("excludeIds", []), "excludeIds", allow_empty=True))
        return [c for c in conversations.values() if c.id not in excluded and c.matches(filters)]

    def _check_id_list(self, ids: object, field: str, *, allow_empty: bool) -> list[str]:
        if not isinstance(ids, list) or (not ids and not allow_empty):
            raise APIError(
                400, f"{field} must be a non-empty array" if not allow_empty else f"{field} must be an array"
            )
        if self.max_selection_ids is not None and len(ids) > self.max_selection_ids:
            raise APIError(400, f"{field} may hold at most {self.max_selection_ids} ids")
        for index, value in enumerate(ids):
            if not is_id(value):
                raise APIError(400, f"{field}[{index}] is not a valid id")
        return ids

    async def _inbox_dnc(self, request: web.Request) -> web.Response:
        selected = self._select(await self._body(request))
        store, now = _WORKSPACE.get().dnc, iso_now()
        added = 0
        for conversation in selected:
            email = conversation.lead_email.lower()
            added += store.add(email, "email", "manual", now)
        data = {"added": added, "skipped": len(selected) - added, "total": len(selected)}
        return _json({"success": True, "data": data})

    async def _mark_read(self, request: web.Request) -> web.Response:
        selected = self._select(await self._body(request))
        modified = 0
        for conversation in selected:
            if conversation.unread:
                conversation.unread = 0
                modified += 1
        return _json({"success": True, "data": {"modified": modified}})

    async def _update(self, request: web.Request) -> web.Response:
        conversation_id = request.match_info["id"]
        if not is_id(conversation_id):
            raise APIError(400, "Invalid conversation id")
        body = _check_update(await self._body(request))
        conversation = _WORKSPACE.get().conversations.get(conversation_id)
        if conversation is None:
            raise APIError(404, "The requested resource was not found")
        if body.get("markRead"):
            conversation.unread = 0
        if "aiTag" in body:
            conversation.ai_tag = body["aiTag"]
        if "tags" in body:
            conversation.tags = list(body["tags"])
        return _json({"success": True, "data": conversation.wire()})


def _int_param(query: Mapping[str, str], name: str, default: int, low: int, high: int | None) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise APIError(400, f"{name} must be an integer") from None
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise APIError(400, f"{name} must be {bounds}")
    return value


def _check_update(body: dict[str, Any]) -> dict[str, Any]:
    if unknown := set(body) - {"markRead", "aiTag", "tags"}:
        raise APIError(400, f"unknown fields: {', '.join(sorted(unknown))}")
    if not body:
        raise APIError(400, "nothing to update: send markRead, aiTag or tags")
    if "markRead" in body and not isinstance(body["markRead"], bool):
        raise APIError(400, "markRead must be a boolean")
    tag = body.get("aiTag")
    if tag is not None and not (isinstance(tag, str) and tag):
        raise APIError(400, "aiTag must be a non-empty string or null")
    tags = body.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        raise APIError(400, "tags must be an array of non-empty strings")
    return body
