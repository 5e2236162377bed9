"""TLS on the gRPC API port, from PEM files that are reloaded without a restart.

gRPC calls `ReloadingCertificates` before every TLS handshake (`grpc.dynamic_ssl_server_credentials`),
on one of its own core threads: so it takes a lock, never touches asyncio, and costs a few
`stat` calls unless a file changed. Certificate and key are usually replaced one after the
other (cert-manager, a Kubernetes Secret update, an operator's `cp`), so for a moment the pair
on disk does not match: a pair is only served once the key matches the certificate, and until
then new connections keep getting the previous one (the problem is logged once per state of
the files, not once per connection).
"""

from __future__ import annotations

import datetime
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import grpc
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from sensorium import private
from sensorium.settings import TlsSettings

log = logging.getLogger(__name__)


class TlsError(Exception):
    """The TLS files cannot be served; the message names the file and the fix."""


@dataclass(frozen=True)
class CertificatePair:
    """A checked certificate chain and its key (and the CA that client certificates need)."""

    chain_pem: bytes
    key_pem: bytes
    client_ca_pem: bytes | None
    subject: str
    serial: int
    not_after: datetime.datetime

    def describe(self) -> dict[str, str]:
        """Log fields naming the certificate (never the key)."""
        return {"subject": self.subject, "serial": f"{self.serial:x}",
                "not_after": self.not_after.isoformat()}


def load_pair(cert_file: Path, key_file: Path, client_ca_file: Path | None) -> CertificatePair:
    """Read and check the files: PEM certificate chain, unencrypted PEM key that matches the
    chain's first certificate and that no other user may read (`private`), and PEM CA
    certificate(s). Raises `TlsError`."""
    chain_pem = _read(cert_file, "SENSORIUM_TLS__CERT_FILE")
    key_pem = _read(key_file, "SENSORIUM_TLS__KEY_FILE")
    try:
        problem = private.exposure(key_file, "SENSORIUM_TLS__KEY_FILE")
    except OSError as exc:
        raise TlsError(f"cannot read {key_file} (SENSORIUM_TLS__KEY_FILE): {exc.strerror}") from None
    if problem:
        raise TlsError(problem)
    ca_pem = _read(client_ca_file, "SENSORIUM_TLS__CLIENT_CA_FILE") if client_ca_file else None
    try:
        chain = x509.load_pem_x509_certificates(chain_pem)
    except ValueError:
        raise TlsError(f"{cert_file} holds no PEM certificate (SENSORIUM_TLS__CERT_FILE)") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:  # cryptography's way of saying the key is encrypted
        raise TlsError(
            f"{key_file} is an encrypted key; give the server an unencrypted PEM key "
            "(SENSORIUM_TLS__KEY_FILE), protected by file permissions"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise TlsError(f"{key_file} holds no PEM private key (SENSORIUM_TLS__KEY_FILE)") from None
    leaf = chain[0]
    if _spki(key.public_key()) != _spki(leaf.public_key()):
        raise TlsError(
            f"the key in {key_file} does not belong to the certificate in {cert_file} "
            f"({leaf.subject.rfc4514_string()}); replace both files with a matching pair"
        )
    if ca_pem is not None:
        try:
            x509.load_pem_x509_certificates(ca_pem)
        except ValueError:
            raise TlsError(
                f"{client_ca_file} holds no PEM certificate (SENSORIUM_TLS__CLIENT_CA_FILE)"
            ) from None
    return CertificatePair(chain_pem, key_pem, ca_pem, leaf.subject.rfc4514_string(),
                           leaf.serial_number, leaf.not_valid_after_utc)


class ReloadingCertificates:
    """The server's certificate, reloaded when its files change (see the module docstring)."""

    def __init__(self, settings: TlsSettings) -> None:
        assert settings.cert_file is not None and settings.key_file is not None
        self.cert_file, self.key_file = settings.cert_file, settings.key_file
        self.client_ca_file = settings.client_ca_file
        self._lock = threading.Lock()
        self._seen = self._signature()
        self.current = load_pair(self.cert_file, self.key_file, self.client_ca_file)
        _warn_if_expired(self.current)
        log.info("TLS on", extra={**self.current.describe(),
                                  "client_certificates": "required" if self.client_ca_file
                                  else "not asked for"})

    def credentials(self) -> grpc.ServerCredentials:
        # grpc documents None from the fetcher as "keep the current configuration"; its type
        # stubs leave None out.
        fetcher = cast("Callable[[], grpc.ServerCertificateConfiguration]", self)
        return grpc.dynamic_ssl_server_credentials(
            _configuration(self.current), fetcher,
            require_client_authentication=self.client_ca_file is not None,
        )

    def __call__(self) -> grpc.ServerCertificateConfiguration | None:
        """The fetcher gRPC calls before each handshake: a new configuration, or None to keep
        the one in use. Never raises: an exception here would fail the client's handshake."""
        try:
            with self._lock:
                return self._reload_if_changed()
        except Exception:
            log.exception("checking the TLS files failed; still serving the previous certificate")
            return None

    def _reload_if_changed(self) -> grpc.ServerCertificateConfiguration | None:
        before = self._signature()
        if before == self._seen:
            return None
        try:
            pair = load_pair(self.cert_file, self.key_file, self.client_ca_file)
        except TlsError as exc:
            problem: TlsError | None = exc
        else:
            problem = None
        if self._signature() != before:
            return None  # a file changed while it was read: look again at the next handshake
        self._seen = before
        if problem is not None:
            log.error("the TLS files changed but cannot be served yet; new connections still get "
                      "the previous certificate", extra={"why": str(problem),
                                                         **self.current.describe()})
            return None
        self.current = pair
        _warn_if_expired(pair)
        log.info("TLS certificate reloaded", extra=pair.describe())
        return _configuration(pair)

    def _signature(self) -> tuple[object, ...]:
        """What changes when any file is replaced or rewritten (a Secret volume swaps a
        symlink; `stat` follows it)."""
        files = [self.cert_file, self.key_file, self.client_ca_file]
        return tuple(_stat(path) for path in files if path is not None)


def _stat(path: Path) -> object:
    try:
        st = os.stat(path)
    except OSError as exc:
        return exc.errno
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _configuration(pair: CertificatePair) -> grpc.ServerCertificateConfiguration:
    return grpc.ssl_server_certificate_configuration(
        [(pair.key_pem, pair.chain_pem)], root_certificates=pair.client_ca_pem
    )


def _read(path: Path, setting: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TlsError(f"cannot read {path} ({setting}): {exc.strerror}") from None


def _spki(public_key: PublicKeyTypes) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _warn_if_expired(pair: CertificatePair) -> None:
    if pair.not_after < datetime.datetime.now(datetime.UTC):
        log.warning("the TLS certificate has expired: clients will refuse it; replace it",
                    extra=pair.describe())
