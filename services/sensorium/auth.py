"""Bearer-token authentication, and who a client is (for per-client limits and logs).

The tokens file (`SENSORIUM_AUTH__TOKENS_FILE`) holds one token per line, optionally followed
by whitespace and the comma-separated services it may call:

    # indexer: every service
    3f9c...e1
    # the search front end: embedding only
    7a2b...90 embedding

Only SHA-256 digests of the tokens are kept, and a presented token is compared with every one
of them with `hmac.compare_digest`: the time a check takes says nothing about how much of a
token was right, nor which one matched. Tokens never reach a log line or a metric; a client
authenticated by a token is named by `token:` and a short hash of it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from sensorium import metrics, private
from sensorium.errors import Reason, SensoriumError

log = logging.getLogger(__name__)

METADATA_KEY = "authorization"
SCHEME = "bearer"
# Tokens shorter than this are easy to guess; they are accepted, with a warning.
MIN_TOKEN_CHARS = 24


class TokenFileError(Exception):
    """The tokens file cannot be used; the message names the line and the fix."""


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: its log name and the services it may call (None = all)."""

    label: str
    services: frozenset[str] | None

    def may_call(self, service: str) -> bool:
        return self.services is None or service in self.services


def label_of(token: str) -> str:
    """The name a token's holder goes by in logs: a short hash, never the token."""
    return "token:" + hashlib.sha256(token.encode()).hexdigest()[:12]


def parse_tokens(
    text: str, known_services: Iterable[str], source: str = "tokens file"
) -> dict[bytes, Principal]:
    """Token digests and their principals. Raises `TokenFileError` naming the bad line."""
    known = set(known_services)
    entries: dict[bytes, Principal] = {}
    lines: dict[bytes, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        token, *rest = line.split(None, 1)
        services: frozenset[str] | None = None
        if rest:
            names = [name.strip().lower() for name in rest[0].split(",")]
            if not set(names) <= known:  # also catches "pdf embedding" (no comma) and "pdf,"
                raise TokenFileError(
                    f"{source} line {number}: after the token comes a comma-separated list of "
                    f"services from {', '.join(sorted(known))}; found {rest[0]!r}"
                )
            services = frozenset(names)
        digest = hashlib.sha256(token.encode()).digest()
        if digest in entries:
            raise TokenFileError(f"{source} line {number} repeats the token of line {lines[digest]}")
        if len(token) < MIN_TOKEN_CHARS:
            log.warning("a short token is easy to guess; use at least %d random characters "
                        "(e.g. `openssl rand -hex 32`)", MIN_TOKEN_CHARS,
                        extra={"file": source, "line": number})
        entries[digest] = Principal(label_of(token), services)
        lines[digest] = number
    return entries


class TokenFile:
    """The accepted tokens, re-read when the file changes (checked with one `stat` per call).

    Revocation fails closed: a file that changes into something unusable (a syntax error, an
    unknown service, permissions that let others read it, unreadable, deleted) leaves no token
    in force, so every call is refused until it is fixed; the problem is logged once per state
    of the file, and `sensorium_auth_tokens_file_usable` is 0 meanwhile. (Deploy tools replace
    the file atomically, by rename or a Secret volume's symlink swap: no call sees it half
    written or missing.)
    """

    def __init__(self, path: Path, known_services: Iterable[str]) -> None:
        self.path = path
        self.known_services = frozenset(known_services)
        self._seen = _stat(path)
        self._entries = self._read()
        self._set_state(usable=True)
        self._log_loaded("tokens loaded")

    def _read(self) -> dict[bytes, Principal]:
        """The file's tokens; raises `TokenFileError` saying what is wrong."""
        try:
            problem = private.exposure(self.path, "SENSORIUM_AUTH__TOKENS_FILE")
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TokenFileError(
                f"cannot read {self.path} (SENSORIUM_AUTH__TOKENS_FILE): {exc}") from None
        if problem:
            raise TokenFileError(problem)
        return parse_tokens(text, self.known_services, str(self.path))

    def _set_state(self, *, usable: bool) -> None:
        metrics.AUTH_TOKENS_FILE_USABLE.set(1 if usable else 0)
        metrics.AUTH_TOKENS.set(len(self._entries))

    def authenticate(self, metadata: Mapping[str, str]) -> Principal:
        """The caller named by `authorization: Bearer TOKEN`; raises UNAUTHENTICATED."""
        self._reload_if_changed()
        value = metadata.get(METADATA_KEY)
        if not value:
            raise SensoriumError(
                Reason.UNAUTHENTICATED,
                "this server needs a bearer token: send `authorization: Bearer TOKEN` metadata "
                "(the sensorium CLI: --token-file FILE)",
            )
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() != SCHEME or not token.strip():
            raise SensoriumError(
                Reason.UNAUTHENTICATED, "the authorization metadata must read `Bearer TOKEN`"
            )
        presented = hashlib.sha256(token.strip().encode()).digest()
        found: Principal | None = None
        for digest, principal in self._entries.items():  # every one: see the module docstring
            if hmac.compare_digest(presented, digest):
                found = principal
        if found is None:
            raise SensoriumError(
                Reason.UNAUTHENTICATED,
                "the bearer token is not accepted by this server; ask its operator for a valid one",
            )
        return found

    def _reload_if_changed(self) -> None:
        signature = _stat(self.path)
        if signature == self._seen:
            return
        self._seen = signature
        try:
            entries = self._read()
        except TokenFileError as exc:
            self._entries = {}
            self._set_state(usable=False)
            log.error("the tokens file changed and cannot be used: every call is refused until it "
                      "is fixed", extra={"why": str(exc)})
            return
        if _stat(self.path) != signature:
            self._seen = None  # changed while it was read: read it again at the next call
        self._entries = entries
        self._set_state(usable=True)
        self._log_loaded("tokens reloaded")

    def _log_loaded(self, message: str) -> None:
        if not self._entries:
            log.warning("the tokens file holds no token: every data-plane call is refused",
                        extra={"file": str(self.path)})
        else:
            log.info(message, extra={"file": str(self.path), "tokens": len(self._entries)})


def permission_denied(principal: Principal, service: str) -> SensoriumError:
    allowed = ", ".join(sorted(principal.services or ()))
    return SensoriumError(
        Reason.PERMISSION_DENIED,
        f"this token may call {allowed or 'no service'}, not {service}; ask the server's "
        "operator to add the service to its line in the tokens file",
        {"service": service},
    )


def client_identity(principal: Principal | None, certificate_subject: str, peer: str) -> str:
    """Who a call comes from, for per-client limits and logs: the token (as its label), else
    the TLS client certificate's subject, else the peer's IP address (without the port: one
    client opens many connections)."""
    if principal is not None:
        return principal.label
    if certificate_subject:
        return f"cert:{certificate_subject}"
    return f"ip:{peer_host(peer)}"


def peer_host(peer: str) -> str:
    """"ipv4:10.0.0.7:53412" -> "10.0.0.7"; "ipv6:[::1]:53412" -> "::1"; others unchanged."""
    kind, _, address = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        host = address.rsplit(":", 1)[0]
        return host.strip("[]")
    return peer


def _stat(path: Path) -> object:
    try:
        st = os.stat(path)
    except OSError as exc:
        return exc.errno
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
