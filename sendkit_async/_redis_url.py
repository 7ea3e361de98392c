"""Redis as it is deployed: one URL form per topology, a client for each, and what a failure means.

URL forms (the ``limits`` library's spelling):

* ``redis://[user:password@]host:port/db``, ``rediss://...`` (TLS), ``unix:///path.sock?db=0``
* ``redis+cluster://[user:password@]host:port[,host:port...]/`` (``rediss+cluster://`` for TLS):
  any nodes of the cluster; the client finds the rest.
* ``redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]``
  (``rediss+sentinel://``): the Sentinels, and the name of the master they watch; the
  client follows the master through failovers. The password is the data nodes'; Sentinels
  that need one of their own take ``?sentinel_password=...``.

:func:`describe` names where a client points without any password, and never raises.
:func:`misconfigured` tells a Redis error that no retry can fix (a wrong password, a missing
permission, a key in the wrong slot) from an outage.

Needs the ``redis`` extra.
"""

from __future__ import annotations

import contextlib
from typing import Any, TypeAlias
from urllib.parse import parse_qs, unquote

import anyio
import attrs
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import (
    AuthenticationError,
    AuthenticationWrongNumberOfArgsError,
    ClusterCrossSlotError,
    MovedError,
    NoPermissionError,
    RedisClusterException,
    RedisError,
    ResponseError,
)

from ._config import REDIS_URL_SCHEMES
from ._errors import ConfigurationError, ValidationError

__all__ = [
    "SCHEMES",
    "AnyRedis",
    "SentinelView",
    "check_key_part",
    "close",
    "connect",
    "describe",
    "is_redis_url",
    "is_sentinel_managed",
    "misconfigured",
    "outage_errors",
    "refuse_misconfigured",
    "sentinel_view",
    "untyped",
]

AnyRedis: TypeAlias = "aioredis.Redis | RedisCluster"

SCHEMES = REDIS_URL_SCHEMES
_MISCONFIGURED_REPLIES = ("NOPERM", "WRONGPASS", "NOAUTH", "CROSSSLOT", "MOVED", "NOSCRIPT No matching")


def untyped(client: AnyRedis) -> Any:
    """``client`` for a call whose annotations differ between redis-py releases.

    redis-py 5 leaves some constructors untyped and marks ``RedisCluster``
    abstract; later releases type them, and annotate some commands as
    returning "an awaitable or a value". The package supports every release
    from its floor on, so the few calls whose types move go through here
    (a ``type: ignore`` right on one release is an unused one on the next).
    """
    return client


def _untyped(constructor: object) -> Any:
    """A redis-py class whose constructor's annotations differ between releases (see :func:`untyped`)."""
    return constructor


def is_redis_url(value: object) -> bool:
    """Whether ``value`` is a Redis URL in one of the forms above."""
    return isinstance(value, str) and value.lower().startswith(SCHEMES)


def _hosts(netloc: str, url: str) -> list[tuple[str, int]]:
    hosts = []
    for part in netloc.split(","):
        host, _, port = part.strip().rpartition(":")
        if not host:
            host, port = port, "6379"
        host = host.strip("[]")
        if not host or not port.isdigit():
            raise ConfigurationError(f"cannot read the host list of {_redacted(url)!r}: {part!r}")
        hosts.append((host, int(port)))
    return hosts


def redact_url_in(text: str, url: str) -> str:
    """``text`` with ``url``, and the password in it, never shown."""
    _, _, rest = url.partition("://")
    userinfo, at, _ = rest.rpartition("@")
    secret = userinfo.partition(":")[2] if at else ""
    text = text.replace(url, _redacted(url))
    return text.replace(secret, "***") if secret else text


def _redacted(url: str) -> str:
    scheme, _, rest = url.partition("://")
    userinfo, at, hosts = rest.rpartition("@")
    if not at:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user + ':' if user else ':'}***@{hosts}"


def connect(url: str, *, timeout: float, retry: bool = True) -> AnyRedis:
    """A client for ``url``, its calls timing out after ``timeout`` seconds (no retries with ``retry=False``).

    Raises:
        ConfigurationError: a scheme the SDK does not know, or a URL it cannot read
            (the message never shows the password).
    """
    if not isinstance(url, str):
        raise ConfigurationError(f"a Redis URL must be a string, got {type(url).__name__}")
    lowered = url.lower()
    timeouts: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    if not retry:
        timeouts["retry"] = Retry(_untyped(NoBackoff)(), 0)
    if lowered.startswith(("redis://", "rediss://", "unix://")):
        try:
            plain: aioredis.Redis = aioredis.Redis.from_url(url, **timeouts)
        except ValueError as exc:  # redis-py's word for a URL it cannot read; the message may quote it
            reason = redact_url_in(str(exc), url)
            raise ConfigurationError(f"cannot read the Redis URL {_redacted(url)!r}: {reason}") from None
        return plain
    if not lowered.startswith(SCHEMES):
        raise ConfigurationError(
            f"unknown Redis URL {_redacted(url)!r}: use redis://, rediss://, unix://, "
            "redis+cluster://host:port[,host:port]/ or redis+sentinel://host:port[,host:port]/service[/db]"
        )
    scheme, _, rest = url.partition("://")
    rest, _, query = rest.partition("?")
    userinfo, _, location = rest.rpartition("@")
    netloc, _, path = location.partition("/")
    user, _, secret = (unquote(p) for p in userinfo.partition(":"))
    username, password = user or None, secret or None
    tls = scheme.lower().startswith("rediss")
    nodes = _hosts(netloc, url)
    if "cluster" in scheme.lower():
        startup = [ClusterNode(host, port) for host, port in nodes]
        cluster: RedisCluster = _untyped(RedisCluster)(
            startup_nodes=startup, ssl=tls, username=username, password=password, **timeouts
        )
        return cluster
    parts = [p for p in path.split("/") if p]
    if not parts:
        raise ConfigurationError(f"{_redacted(url)!r} names no service: redis+sentinel://host:port/service")
    service = unquote(parts[0])
    db = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    sentinel_password = parse_qs(query).get("sentinel_password", [None])[0]
    sentinel_kwargs = {**timeouts, "password": sentinel_password}
    sentinel = _untyped(Sentinel)(
        nodes,
        sentinel_kwargs=sentinel_kwargs,
        ssl=tls,
        db=db,
        username=username,
        password=password,
        **timeouts,
    )
    master: aioredis.Redis = sentinel.master_for(service)
    return master


async def close(client: AnyRedis) -> None:
    """Close a client made by :func:`connect`, with the Sentinel connections behind it."""
    pool = getattr(client, "connection_pool", None)
    await client.aclose()
    if isinstance(pool, SentinelConnectionPool):
        for sentinel in pool.sentinel_manager.sentinels:
            await sentinel.aclose()


# A cluster client maps the slots on its first call: more than one call's worth of time.
FIRST_CALL_TIMEOUT = 2.0


async def first_call(client: AnyRedis) -> None:
    """Do what a client does before its first command (a cluster maps its slots), within its own time.

    A budget gives each call a fraction of a second; the first one to a
    cluster also connects to every node, which can take longer on a loaded
    host, and should not be taken for an outage.
    """
    if isinstance(client, RedisCluster):
        with anyio.fail_after(FIRST_CALL_TIMEOUT):
            await client.initialize()


async def follow_master(client: AnyRedis) -> None:
    """Ask a Sentinel-managed client's Sentinels where the master is now; idle connections move there.

    A write the master could not get a replica to confirm may be going to a
    demoted master that does not know it yet: asking the Sentinels moves the
    next write to the promoted one. Other clients follow on their own (a
    cluster on ``MOVED``). Never raises for an outage.
    """
    pool = getattr(client, "connection_pool", None)
    if isinstance(pool, SentinelConnectionPool):
        with contextlib.suppress(*outage_errors()):
            await pool.get_master_address()  # type: ignore[no-untyped-call]
            # Idle connections reconnect through the Sentinels on their next
            # use, also those that were busy when the master last changed.
            await pool.disconnect(inuse_connections=False)


@attrs.frozen
class SentinelView:
    """What a majority of a group's Sentinels say now of its master.

    Attributes:
        address: the master's address, as the Sentinels give it to clients.
        replicating: replicas up with their link to the master ok (caught up).
        alive: replicas the Sentinels do not hold for down, caught up or not.
    """

    address: tuple[str, int]
    replicating: int
    alive: int


def _fields(reply: object) -> dict[str, str]:
    """A Sentinel reply's fields as text, from a dict (recent redis-py) or a flat list (older)."""
    if isinstance(reply, dict):
        pairs = list(reply.items())
    elif isinstance(reply, (list, tuple)):
        pairs = list(zip(reply[::2], reply[1::2], strict=False))
    else:
        return {}
    return {_text(key): _text(value) for key, value in pairs}


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _flags(fields: dict[str, str]) -> set[str]:
    return set(fields.get("flags", "").split(","))


async def sentinel_view(client: AnyRedis, *, within: float) -> SentinelView | None:
    """Ask each of a Sentinel-managed client's Sentinels which node is the master, and of its replicas.

    The master's address a majority of the Sentinels the client knows agree
    on (each asked for at most ``within`` seconds), with the fewest replicas
    any of them sees replicating and the most any sees alive. ``None`` when
    no majority agrees, or when any Sentinel reports a failover under way (or
    a replica being promoted): then no write can be trusted to survive it.
    ``None`` too for a client that is not Sentinel-managed. The master is
    known by its address, not its run id: a Sentinel learns a promoted
    master's run id only at its next poll, seconds later.
    """
    pool = getattr(client, "connection_pool", None)
    if not isinstance(pool, SentinelConnectionPool):
        return None
    sentinels = pool.sentinel_manager.sentinels
    service = pool.service_name
    views: list[SentinelView] = []
    failing_over: list[bool] = []

    async def ask(sentinel: Any) -> None:
        with contextlib.suppress(*outage_errors()), anyio.fail_after(within):
            master = _fields(await sentinel.execute_command("SENTINEL", "MASTER", service))
            replicas = [
                _fields(reply)
                for reply in await sentinel.execute_command("SENTINEL", "REPLICAS", service) or ()
            ]
            flags = _flags(master)
            if "failover_in_progress" in flags or any("promoted" in _flags(r) for r in replicas):
                failing_over.append(True)
            if "master" in flags and master.get("port", "").isdigit():
                alive = [r for r in replicas if not {"s_down", "o_down"} & _flags(r)]
                replicating = [
                    r
                    for r in alive
                    if "disconnected" not in _flags(r) and r.get("master-link-status") == "ok"
                ]
                views.append(
                    SentinelView((master.get("ip", ""), int(master["port"])), len(replicating), len(alive))
                )

    async with anyio.create_task_group() as group:
        for sentinel in sentinels:
            group.start_soon(ask, sentinel)
    if failing_over:
        return None
    for address in {view.address for view in views}:
        agreeing = [view for view in views if view.address == address]
        if len(agreeing) * 2 > len(sentinels):
            return SentinelView(
                address, min(view.replicating for view in agreeing), max(view.alive for view in agreeing)
            )
    return None


# Connection settings a client of one master keeps from its Sentinel-managed pool.
_DIRECT_SETTINGS = ("db", "username", "password", "socket_timeout", "socket_connect_timeout", "retry")


class AgreedMaster:
    """Clients of the master a Sentinel group agrees on, one per address, for writes that must land there.

    A Sentinel-managed client sends each command wherever its pooled
    connection was opened, which after a failover may be the demoted master;
    a client of one address sends exactly there. Close it after (``aclose``).
    """

    __slots__ = ("_client", "_clients", "within")

    def __init__(self, client: AnyRedis, *, within: float) -> None:
        self._client = client
        self.within = within
        self._clients: dict[tuple[str, int], aioredis.Redis] = {}

    async def view(self) -> SentinelView | None:
        """The Sentinels' view now (see :func:`sentinel_view`)."""
        return await sentinel_view(self._client, within=self.within)

    def client_of(self, address: tuple[str, int]) -> aioredis.Redis:
        """A client of the node at ``address`` alone, with the group's credentials and timeouts."""
        found = self._clients.get(address)
        if found is None:
            pool: Any = getattr(self._client, "connection_pool", None)
            settings = {
                key: value
                for key, value in pool.connection_kwargs.items()
                if key in _DIRECT_SETTINGS or key.startswith("ssl_")
            }
            tls = issubclass(pool.connection_class, aioredis.SSLConnection)
            found = self._clients[address] = aioredis.Redis(
                host=address[0], port=address[1], ssl=tls, **settings
            )
        return found

    async def aclose(self) -> None:
        """Close every client it made."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()


def is_sentinel_managed(client: object) -> bool:
    """Whether ``client`` finds its master through Sentinels (a ``Sentinel.master_for`` client)."""
    return isinstance(getattr(client, "connection_pool", None), SentinelConnectionPool)


def describe(client: object) -> str:
    """Where ``client`` points, with no password: a URL in the forms above. Never raises."""
    try:
        if isinstance(client, RedisCluster):
            nodes = client.get_nodes() or list(client.nodes_manager.startup_nodes.values())
            hosts = ",".join(f"{n.host}:{n.port}" for n in nodes[:3])
            return f"redis+cluster://{hosts}{',...' if len(nodes) > 3 else ''}/"  # noqa: PLR2004
        pool = client.connection_pool  # type: ignore[attr-defined]
        kwargs = pool.connection_kwargs
        if isinstance(pool, SentinelConnectionPool):
            sentinels = pool.sentinel_manager.sentinels
            hosts = ",".join(
                f"{s.connection_pool.connection_kwargs.get('host')}:{s.connection_pool.connection_kwargs.get('port')}"
                for s in sentinels
            )
            return f"redis+sentinel://{hosts}/{pool.service_name}/{kwargs.get('db', 0)}"
        if "path" in kwargs:
            return f"unix://{kwargs['path']}"
        scheme = "rediss" if issubclass(pool.connection_class, aioredis.SSLConnection) else "redis"
        return (
            f"{scheme}://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"
        )
    except Exception:  # noqa: BLE001 - a description must never fail
        return type(client).__name__


def misconfigured(exc: BaseException) -> bool:
    """Whether a Redis failure is a setting to fix (no retry helps), not an outage."""
    wrong = (AuthenticationError, AuthenticationWrongNumberOfArgsError, NoPermissionError, MovedError)
    if isinstance(exc, (*wrong, ClusterCrossSlotError)):
        return True
    return isinstance(exc, ResponseError) and str(exc).upper().startswith(_MISCONFIGURED_REPLIES)


def outage_errors() -> tuple[type[BaseException], ...]:
    """What a Redis that is away (down, stalled, failing over) raises: cluster errors included."""
    return (RedisError, RedisClusterException, OSError, TimeoutError)


def check_key_part(name: str, value: str) -> None:
    """Refuse braces in a key prefix or name: a ``{`` would move a job's keys to other cluster slots.

    Raises:
        ValidationError: the value holds ``{`` or ``}``.
    """
    if "{" in value or "}" in value:
        raise ValidationError(
            f"{name} must not hold braces ({{ or }}): they would spread its Redis keys over cluster slots"
        )


def refuse_misconfigured(exc: BaseException, where: str) -> None:
    """Raise :class:`ConfigurationError` for a failure that is a setting to fix; return for an outage.

    Its message names the problem and the place, never the password.
    """
    if misconfigured(exc):
        reason = str(exc).split("\n", 1)[0][:200]
        raise ConfigurationError(
            f"Redis at {where} refused: {type(exc).__name__}: {reason} (fix the setting)"
        ) from None
