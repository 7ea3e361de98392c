"""What the Redis-backed parts share: a client they may own, and closing it once they are done.

Needs the ``redis`` extra: ``pip install 'sendkit-async[redis]'``.
"""

from __future__ import annotations

from types import TracebackType

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from typing_extensions import Self

from ._errors import ConfigurationError
from ._redis_url import AnyRedis, close

__all__ = ["RedisOwner"]


class RedisOwner:
    """Holds a ``redis.asyncio`` client (plain, Sentinel-managed or cluster) and closes it if it opened it.

    Only a client made by ``from_url`` is closed on exit.
    """

    __slots__ = ("_owns", "_redis")

    def __init__(self, client: AnyRedis) -> None:
        if not isinstance(client, (Redis, RedisCluster)):
            raise ConfigurationError(
                "client must be a redis.asyncio.Redis (plain, or from a Sentinel's master_for) or a "
                f"redis.asyncio.RedisCluster, got {type(client).__name__}"
            )
        self._redis = client
        self._owns = False

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the Redis connection pool if this object opened it."""
        if self._owns:
            await close(self._redis)

    def owning_client(self) -> Self:
        """This object, now closing its client's pool in :meth:`aclose` (``from_url`` calls it)."""
        self._owns = True
        return self
