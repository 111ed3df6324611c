"""TLS and mutual TLS for the gateway's port, reloaded from disk without a restart.

``server.tls_cert`` and ``server.tls_key`` (PEM files) turn TLS on; ``server.tls_client_ca`` adds
mutual TLS: a client must present a certificate that CA signed. The port then speaks only TLS, so
a plaintext client fails its handshake. The files are read again whenever one of them changes
(size, mtime or inode): gRPC asks for the certificate configuration at each new handshake, so a
renewed certificate (write the key first, then the certificate, each by rename) is served to the
next connection while existing ones keep theirs.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import grpc

from serving.config import ConfigError, ServerSection

log = logging.getLogger("toitsu.tls")


def tls_enabled(cfg: ServerSection) -> bool:
    if bool(cfg.tls_cert) != bool(cfg.tls_key):
        raise ConfigError("server.tls_cert and server.tls_key go together: set both (PEM files) or neither")
    if cfg.tls_client_ca and not cfg.tls_cert:
        raise ConfigError("server.tls_client_ca (mutual TLS) needs server.tls_cert and server.tls_key")
    return bool(cfg.tls_cert)


class ReloadingCredentials:
    """The server credentials, plus the fetcher gRPC calls at each handshake."""

    def __init__(self, cfg: ServerSection) -> None:
        self._paths = [Path(p) for p in (cfg.tls_cert, cfg.tls_key, cfg.tls_client_ca) if p]
        self._mutual = bool(cfg.tls_client_ca)
        self._cert, self._key = Path(cfg.tls_cert), Path(cfg.tls_key)
        self._ca = Path(cfg.tls_client_ca) if cfg.tls_client_ca else None
        self._lock = threading.Lock()
        self.reloads = 0
        self._stamp = self._stat()
        self.credentials = grpc.dynamic_ssl_server_credentials(
            self._configuration(), self._fetch, require_client_authentication=self._mutual
        )

    def _stat(self) -> tuple[tuple[int, int, int], ...]:
        try:
            stats = [os.stat(p) for p in self._paths]
        except OSError as exc:
            raise ConfigError(f"cannot read TLS file {exc.filename}: {exc.strerror}") from None
        return tuple((s.st_mtime_ns, s.st_size, s.st_ino) for s in stats)

    def _configuration(self) -> grpc.ServerCertificateConfiguration:
        try:
            key, cert = self._key.read_bytes(), self._cert.read_bytes()
            ca = self._ca.read_bytes() if self._ca is not None else None
        except OSError as exc:
            raise ConfigError(f"cannot read TLS file {exc.filename}: {exc.strerror}") from None
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """None (keep the current configuration) unless a file changed since it was read."""
        with self._lock:
            try:
                stamp = self._stat()
                if stamp == self._stamp:
                    return None
                configuration = self._configuration()
            except (ConfigError, ValueError) as exc:  # mid-rotation or gone: keep serving what we have
                log.warning("TLS files not reloaded: %s", exc)
                return None
            self._stamp = stamp
            self.reloads += 1
        log.info("TLS certificate reloaded from %s", self._cert)
        return configuration
