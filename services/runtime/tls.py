"""TLS for Drape's servers and channels, from :class:`TlsConfig`.

A server reads its certificate and key when it starts and again whenever either file
changes (checked at each new connection's handshake), so a rotated certificate (cert-manager
renewing a mounted Secret) is served without a restart; connections already open keep the
one they started with. With ``client_ca`` it requires a client certificate signed by it
(mTLS). A channel verifies its server against ``ca`` and presents the service's own
certificate when it has one.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import grpc

from drape.services.runtime.config import TlsConfig
from drape.services.runtime.watched import file_stamp

log = logging.getLogger("drape.tls")


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None


class _RotatingCertificate:
    """The server's certificate configuration, re-read when its files change."""

    def __init__(self, tls: TlsConfig) -> None:
        self.tls = tls
        self._paths = [p for p in (tls.certificate, tls.private_key, tls.client_ca) if p]
        self._lock = threading.Lock()
        self._stamps = self._now()
        self.initial = self._load()

    def _now(self) -> list[tuple[int, int] | None]:
        return [file_stamp(Path(p)) for p in self._paths]

    def _load(self) -> grpc.ServerCertificateConfiguration:
        pair = (
            _read(self.tls.private_key, "private key"),
            _read(self.tls.certificate, "certificate"),
        )
        roots = _read(self.tls.client_ca, "client CA bundle") if self.tls.client_ca else None
        return grpc.ssl_server_certificate_configuration([pair], root_certificates=roots)

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """Called by gRPC at each handshake: a new configuration if the files changed."""
        stamps = self._now()
        if stamps == self._stamps:
            return None
        with self._lock:
            if stamps == self._stamps:
                return None
            try:
                loaded = self._load()
            except ValueError as exc:  # mid-rotation (one file written, not the other): next time
                log.warning("certificate not reloaded yet: %s", exc)
                return None
            self._stamps = stamps
        log.info("serving a rotated certificate", extra={"certificate": self.tls.certificate})
        return loaded


def server_credentials(tls: TlsConfig) -> grpc.ServerCredentials:
    certificate = _RotatingCertificate(tls)
    return grpc.dynamic_ssl_server_credentials(
        certificate.initial, certificate.fetch, require_client_authentication=bool(tls.client_ca)
    )


def channel_credentials(tls: TlsConfig) -> grpc.ChannelCredentials | None:
    """Credentials to call TLS servers with, or None (plaintext) without a CA bundle."""
    if not tls.ca:
        return None
    key = _read(tls.private_key, "private key") if tls.private_key else None
    chain = _read(tls.certificate, "certificate") if tls.certificate else None
    return grpc.ssl_channel_credentials(_read(tls.ca, "CA bundle"), key, chain)
