"""The one seam: every in-process front end (the CLI, the index job, search) reaches the engines
through `Engines`, in domain types, whether they run in this process or on a server.

    # or RemoteEngines(client, settings): the same calls, answered by a server
    async with InProcessEngines(Runtimes(settings, ["pdf"])) as engines:
        pdf = await engines.open(PDF)  # a PdfEngine
        async for result in pdf.extract(path, ExtractOptions()):
            ...

`open(key)` gives the service's engine interface (`<service>/api.py` declares it and its key).
In this process that is the service's runtime, started on first use, so a folder of photos
never loads Whisper; remotely it is the service's `<service>/remote.py` class over a `Client`,
which converts messages with `<service>/wire.py`. Both return the same domain objects, so a
front end has one code path and prints or indexes the same either way.

Failures: a domain error raises `SensoriumError` (remote ones as `RemoteError`, which also keeps
the server's own words); a server that cannot be used (unreachable, refusing this client, not
hosting the service) raises `EnginesUnavailable`.
"""

from __future__ import annotations

import abc
import asyncio
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast

from sensorium.contract import EngineKey
from sensorium.errors import Reason, SensoriumError
from sensorium.remote import EnginesUnavailable, RemoteError

__all__ = ["Engines", "EnginesUnavailable", "InProcessEngines", "RemoteEngines", "RemoteError"]

if TYPE_CHECKING:
    from sensorium.client import Client
    from sensorium.runtimes import Runtimes
    from sensorium.settings import Settings

E = TypeVar("E")


class Engines(abc.ABC):
    """The engines of this process or of a server (see the module docstring)."""

    local: bool
    """Whether the engines run in this process (the index job sizes its calls by it)."""

    @abc.abstractmethod
    async def open(self, key: EngineKey[E]) -> E:
        """The engine interface of `key`'s service, ready to use."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release what this object started (runtimes, a channel)."""

    async def __aenter__(self: _Self) -> _Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


_Self = TypeVar("_Self", bound=Engines)


class InProcessEngines(Engines):
    """The runtimes of `runtimes`, each started when first opened and closed with this."""

    local = True

    def __init__(self, runtimes: Runtimes) -> None:
        self.runtimes = runtimes
        self.settings = runtimes.settings
        self._started: dict[str, asyncio.Task[None]] = {}

    async def open(self, key: EngineKey[E]) -> E:
        runtime = self.runtimes.get(key.name)  # NOT_HOSTED for a service this process lacks
        task = self._started.get(key.name)
        if task is None:
            task = self._started[key.name] = asyncio.ensure_future(self.runtimes.start(key.name))
        # Shielded: one caller giving up must not cancel the start others wait for.
        await asyncio.shield(task)
        return cast(E, runtime)  # each runtime is its service's in-process engine (mypy checks
        # that beside each runtime class)

    async def close(self) -> None:
        await self.runtimes.close(grace=self.settings.shutdown_grace_seconds)


class RemoteEngines(Engines):
    """The services of the server `client` talks to (its channel closes with this)."""

    local = False

    def __init__(self, client: Client, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self._opened: dict[str, Any] = {}

    async def open(self, key: EngineKey[E]) -> E:
        from sensorium.registry import spec

        engine = self._opened.get(key.name)
        if engine is None:
            make = spec(key.name).remote
            if make is None:
                raise SensoriumError(Reason.NOT_HOSTED, f"the {key.name} service has no remote API")
            engine = self._opened[key.name] = make(self.client, self.settings)
        return cast(E, engine)

    async def close(self) -> None:
        await self.client.__aexit__(None, None, None)
