"""A small asyncio client of a Sensorium server: the channel, TLS, the token, deadlines, and
failed calls decoded. Each service's own calls are in `<service>/remote.py`:

    async with Client("localhost:50051") as client:
        response = await PdfClient(client).extract_document(Path("paper.pdf").read_bytes())

Failed calls raise `ClientError`, whose `details` hold the status code, the Sensorium reason
(e.g. "PDF_PASSWORD_REQUIRED"), the message and any retry delay.

Uploads (the streaming calls) run on grpcio's synchronous stack in a thread: when a server
refuses an upload early (overloaded, too large, draining) while the client is still sending,
grpc.aio's client replaces the server's status with "INTERNAL: Internal error from Core"
(grpc/grpc#36066); the synchronous stack reports the real status and its details.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from sensorium.type.v1 import upload_pb2

CHUNK_BYTES = 1024 * 1024
# Streams carry images and many pages; allow large messages in, whatever the gRPC default.
MAX_RECEIVE_BYTES = 64 * 1024 * 1024
T = TypeVar("T")
M = TypeVar("M", bound=Message)


@dataclass(frozen=True)
class ErrorDetails:
    """What a client learns from a failed call (see `details_from_rpc_error`)."""

    code: grpc.StatusCode
    message: str
    reason: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    retry_after_seconds: float | None = None

    def __str__(self) -> str:
        reason = f" {self.reason}" if self.reason else ""
        return f"{self.code.name}{reason}: {self.message}"


def details_from_rpc_error(error: grpc.RpcError) -> ErrorDetails:
    """Decode the rich status of a failed call; plain statuses give code and message only."""
    call: Any = error
    code: grpc.StatusCode = call.code()
    message: str = call.details() or ""
    status = rpc_status.from_call(call)
    if status is None:
        return ErrorDetails(code, message)
    reason, metadata, retry = "", {}, None
    for detail in status.details:
        info, delay = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            reason, metadata = info.reason, dict(info.metadata)
        elif detail.Unpack(delay):
            retry = delay.retry_delay.ToNanoseconds() / 1e9
    return ErrorDetails(code, status.message, reason, metadata, retry)


class ClientError(Exception):
    """A failed call; `details` decodes its rich status."""

    def __init__(self, details: ErrorDetails) -> None:
        super().__init__(str(details))
        self.details = details


class PlaintextTokenError(ClientError):
    """A token would go over a plaintext connection: refused before anything is sent."""


class Client:
    """Channel and stubs for one server; use as an async context manager.

    TLS: `tls=True` trusts the system's CAs; `tls_ca` (a PEM file, or PEM bytes) trusts that CA
    instead and implies TLS; `tls_cert` and `tls_key` present a client certificate (mutual
    TLS). `token` is sent as `authorization: Bearer TOKEN` with every call this client makes;
    `metadata` holds it for calls made on `channel` directly. A token over plaintext could be
    read by anyone on the path: without TLS it raises `PlaintextTokenError` unless `insecure`
    says the link is protected otherwise (loopback, a mesh's mutual TLS, a tunnel).
    """

    def __init__(
        self,
        target: str,
        *,
        timeout: float | None = None,
        tls: bool = False,
        tls_ca: Path | bytes | None = None,
        tls_cert: Path | bytes | None = None,
        tls_key: Path | bytes | None = None,
        token: str | None = None,
        insecure: bool = False,
    ) -> None:
        credentials = channel_credentials(tls, tls_ca, tls_cert, tls_key)
        if token and credentials is None and not insecure:
            raise PlaintextTokenError(ErrorDetails(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"refusing to send the bearer token to {target} over plaintext, where anyone on "
                "the path could read it: connect with TLS (--tls or --tls-ca FILE; Client(tls=...)), "
                "or say the link is protected another way with --insecure (Client(insecure=True))",
            ))
        self.target = target
        self.timeout = timeout
        options = [
            ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
            ("grpc.max_send_message_length", MAX_RECEIVE_BYTES),
        ]
        self.metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {token}"),) if token else ()
        )
        if credentials is None:
            self.channel = grpc.aio.insecure_channel(target, options=options)
            self._uploads = grpc.insecure_channel(target, options=options)  # see the module docstring
        else:
            self.channel = grpc.aio.secure_channel(target, credentials, options=options)
            self._uploads = grpc.secure_channel(target, credentials, options=options)
        self._health = health_pb2_grpc.HealthStub(self.channel)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.channel.close()
        self._uploads.close()

    async def call(self, method: str, request: Message, response_type: type[M]) -> M:
        """The unary call `method` ("/pkg.Service/Method") with this client's deadline and token."""
        stub = self.channel.unary_unary(method, request_serializer=_serialize,
                                        response_deserializer=response_type.FromString)
        return await self._unary(stub, request)

    async def _unary(self, call: Callable[..., Awaitable[T]], request: Any) -> T:
        try:
            return await call(request, timeout=self.timeout, metadata=self.metadata)
        except grpc.RpcError as exc:
            raise ClientError(details_from_rpc_error(exc)) from None

    def upload_file(
        self, method: str, path: Path, header: Callable[[upload_pb2.UploadHeader], Message],
        chunk: Callable[[bytes], Message], response_type: type[M], media_type: str = "",
        filename: str = "",
    ) -> AsyncGenerator[M, None]:
        """The streaming call `method` for the file at `path`: a first message made by `header`
        from the file's upload header (named `filename`, default the path's name), then its
        content in `chunk` messages of CHUNK_BYTES (read only as they are sent); yields the
        responses."""
        upload = upload_pb2.UploadHeader(filename=filename or path.name, media_type=media_type,
                                         size_bytes=path.stat().st_size)
        return self.stream(method, _chunked(path, header(upload), chunk), response_type)

    async def stream(
        self, method: str, requests: Iterator[Message], response_type: type[M]
    ) -> AsyncGenerator[M, None]:
        """The streaming call `method`: send `requests` (consumed lazily) and yield the
        responses, on the synchronous stack in a thread (see the module docstring)."""
        call = self._uploads.stream_stream(
            method, request_serializer=_serialize, response_deserializer=response_type.FromString
        )(requests, timeout=self.timeout, metadata=self.metadata)
        loop = asyncio.get_running_loop()
        responses: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        # At most this many responses wait for the caller: a slow caller slows the stream
        # (gRPC flow control) instead of piling responses up in memory.
        slots = threading.Semaphore(32)
        stopped = threading.Event()

        def hand_over(kind: str, value: Any) -> None:
            while not slots.acquire(timeout=0.1):
                if stopped.is_set():
                    return  # the caller has left
            loop.call_soon_threadsafe(responses.put_nowait, (kind, value))

        def receive() -> None:
            try:
                for response in call:
                    hand_over("response", response)
            except grpc.RpcError as exc:
                hand_over("error", exc)
            hand_over("end", None)

        receiving = asyncio.ensure_future(asyncio.to_thread(receive))
        try:
            while True:
                kind, value = await responses.get()
                slots.release()
                if kind == "end":
                    break
                if kind == "error":
                    raise ClientError(details_from_rpc_error(value))
                yield value
        finally:
            # A caller that stops early cancels the call, so the server stops working on it.
            stopped.set()
            call.cancel()
            await receiving

    # Health

    async def health(self, service: str = "") -> str:
        """The health status name ("SERVING", "NOT_SERVING", ...) of `service` ("" = overall)."""
        request = health_pb2.HealthCheckRequest(service=service)
        response = await self._unary(self._health.Check, request)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


def channel_credentials(
    tls: bool = False,
    ca: Path | bytes | None = None,
    cert: Path | bytes | None = None,
    key: Path | bytes | None = None,
) -> grpc.ChannelCredentials | None:
    """TLS credentials for a channel (see `Client`), or None for plaintext."""
    if (cert is None) != (key is None):
        raise ValueError("a client certificate needs its key: give both tls_cert and tls_key")
    if not (tls or ca is not None or cert is not None):
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=_pem(ca), private_key=_pem(key), certificate_chain=_pem(cert)
    )


def _pem(value: Path | bytes | None) -> bytes | None:
    return value.read_bytes() if isinstance(value, Path) else value


def _chunked(path: Path, header: Message, wrap: Callable[[bytes], Message]) -> Iterator[Message]:
    yield header
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            yield wrap(chunk)


def _serialize(message: Any) -> bytes:
    data: bytes = message.SerializeToString()
    return data
