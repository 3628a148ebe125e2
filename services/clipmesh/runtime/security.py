"""Transport security: TLS and mutual TLS from the `tls_*` settings of every service.

Server side, `add_port()` binds plaintext when no certificate is configured (the local default,
with a warning at start) and TLS otherwise; with `tls_client_auth` the handshake itself refuses
a client without a certificate signed by `tls_ca_file`, so no RPC of an internal service runs
for an unauthenticated peer. The certificate, key and CA are re-read when any of the files
changes on disk (a renewed Kubernetes Secret, `cert-manager`): gRPC asks `ServerCertificates`
before each new handshake, connections already open keep the certificate they began with.

Client side, `channel_credentials()` gives a service's channels to the others (the orchestrator's
and previs's) the same files: `tls_ca_file` to verify them and `tls_cert_file`/`tls_key_file` as
its client certificate. gRPC's channel credentials are fixed once made, so the caller watches
the files (`FileWatch`) and opens new channels when they change (runtime/dependencies.py).

Every file is checked at start: one that is missing, unreadable, not PEM, a key that does not
match its certificate, or an expired certificate stops the service with a message naming the
setting and the file.
"""

from __future__ import annotations

import datetime
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from prometheus_client import Gauge

from clipmesh.runtime.config import ConfigError, ServiceConfig
from clipmesh.runtime.watched import FileWatch
from clipmesh_client.wire import tls_credentials

log = logging.getLogger(__name__)

# What is in use, not what is on disk: a renewal that a pod never picked up keeps the old date
# here, which is what the ClipmeshCertificateExpiresSoon alert watches.
CERTIFICATE_EXPIRY = Gauge(
    "clipmesh_tls_certificate_expiry_timestamp_seconds",
    "When the certificate in use expires (Unix time), by usage: serving (this service's TLS "
    "port) or client (the orchestrator's channels to the other services).",
    ("usage",),
)


def _record_expiry(usage: str, leaf: x509.Certificate) -> None:
    CERTIFICATE_EXPIRY.labels(usage).set(leaf.not_valid_after_utc.timestamp())


def check_tls_settings(config: ServiceConfig) -> None:
    """Refuses combinations of the `tls_*` settings that cannot work.

    Raises:
        ConfigError: naming the settings that conflict.
    """
    cert, key = config.env_name("tls_cert_file"), config.env_name("tls_key_file")
    if bool(config.tls_cert_file) != bool(config.tls_key_file):
        raise ConfigError(f"{cert} and {key} must be set together")
    if config.tls_client_auth and not (config.tls_cert_file and config.tls_ca_file):
        raise ConfigError(
            f"{config.env_name('tls_client_auth')} needs {cert}, {key} and "
            f"{config.env_name('tls_ca_file')} (the CA client certificates must chain to)"
        )


def tls_file_paths(config: ServiceConfig) -> list[str]:
    """The certificate, key and CA settings' paths, in that order."""
    return [config.tls_cert_file, config.tls_key_file, config.tls_ca_file]


@dataclass(frozen=True)
class _Material:
    """The PEM bytes gRPC takes, and the parsed leaf certificate for the logs."""

    key: bytes
    chain: bytes
    ca: bytes | None
    leaf: x509.Certificate


class ServerCertificates:
    """The server's certificate, key and client CA, re-read when one of the files changes.

    gRPC calls `fetch` before every handshake; it answers None (keep what you have) unless a
    file's modification time, size or inode changed. A changed set that does not load (a key
    renewed before its certificate) is logged and skipped until the next change, so a bad
    rotation never takes a serving service down.
    """

    def __init__(self, config: ServiceConfig) -> None:
        self._config = config
        self._files = FileWatch(tls_file_paths(config))
        self._lock = threading.Lock()
        material = _load_server_material(config)
        self.initial = _certificate_configuration(material)
        _record_expiry("serving", material.leaf)

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """The new configuration when the files changed since the last look, else None."""
        with self._lock:
            material = self._files.reload(lambda: _load_server_material(self._config), "TLS files")
        if material is None:
            return None
        log.info("TLS certificate reloaded", extra=_certificate_fields(material.leaf))
        # Recorded as handed to gRPC: it serves the next handshake with it.
        _record_expiry("serving", material.leaf)
        return _certificate_configuration(material)


def add_port(server: grpc.aio.Server, address: str, config: ServiceConfig) -> int:
    """Binds `address` with TLS when `tls_cert_file` is set, plaintext otherwise.

    Returns:
        The bound port (0 when binding failed, as gRPC reports it).

    Raises:
        ConfigError: A TLS setting or file is unusable (the message names it).
    """
    check_tls_settings(config)
    if not config.tls_cert_file:
        return server.add_insecure_port(address)
    certificates = ServerCertificates(config)
    credentials = grpc.dynamic_ssl_server_credentials(
        certificates.initial,
        certificates.fetch,
        require_client_authentication=config.tls_client_auth,
    )
    return server.add_secure_port(address, credentials)


def channel_credentials(config: ServiceConfig) -> grpc.ChannelCredentials | None:
    """Credentials for this service's channels to the others; None (plaintext) without a CA.

    Raises:
        ConfigError: A TLS setting or file is unusable (the message names it).
    """
    check_tls_settings(config)
    if not config.tls_ca_file:
        return None
    _read_certificates(config, "tls_ca_file")
    if not config.tls_cert_file:
        return tls_credentials(config.tls_ca_file)
    material = _load_server_material(config)  # the server's checks: readable, matching
    _record_expiry("client", material.leaf)
    return tls_credentials(config.tls_ca_file, config.tls_cert_file, config.tls_key_file)


def log_transport_security(config: ServiceConfig) -> None:
    """Says at start how the service's port is protected: a warning when it is not."""
    if not config.tls_cert_file:
        log.warning(
            "plaintext (no TLS): traffic to this port is unencrypted and unauthenticated; set "
            "%s and %s to turn TLS on",
            config.env_name("tls_cert_file"),
            config.env_name("tls_key_file"),
        )
        return
    leaf = _certificate(Path(config.tls_cert_file).read_bytes())
    mode = "mTLS (client certificates required)" if config.tls_client_auth else "TLS"
    log.info("%s on", mode, extra=_certificate_fields(leaf))


def _load_server_material(config: ServiceConfig) -> _Material:
    chain = _read_certificates(config, "tls_cert_file")
    key = _read(config, "tls_key_file")
    try:
        private_key = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError) as exc:
        raise _file_error(config, "tls_key_file", "is not an unencrypted PEM private key") from exc
    leaf = _certificate(chain)
    if _public_key(leaf) != _public_key(private_key):
        raise _file_error(config, "tls_key_file", f"does not match {config.tls_cert_file}")
    if leaf.not_valid_after_utc < datetime.datetime.now(datetime.UTC):
        raise _file_error(
            config, "tls_cert_file", f"expired on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
        )
    ca = _read_certificates(config, "tls_ca_file") if config.tls_ca_file else None
    return _Material(key=key, chain=chain, ca=ca, leaf=leaf)


def _certificate_configuration(material: _Material) -> grpc.ServerCertificateConfiguration:
    return grpc.ssl_server_certificate_configuration(
        [(material.key, material.chain)], root_certificates=material.ca
    )


def _read(config: ServiceConfig, setting: str) -> bytes:
    path = getattr(config, setting)
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise _file_error(config, setting, f"cannot be read ({exc.strerror})") from exc


def _read_certificates(config: ServiceConfig, setting: str) -> bytes:
    """The file's bytes, after checking it holds at least one PEM certificate."""
    pem = _read(config, setting)
    try:
        x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise _file_error(config, setting, "holds no PEM certificate") from exc
    return pem


def _certificate(chain: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificates(chain)[0]


def _public_key(holder: x509.Certificate | PrivateKeyTypes) -> bytes:
    return holder.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _certificate_fields(leaf: x509.Certificate) -> dict[str, str]:
    return {
        "tls_subject": leaf.subject.rfc4514_string(),
        "tls_not_after": leaf.not_valid_after_utc.isoformat(),
    }


def _file_error(config: ServiceConfig, setting: str, problem: str) -> ConfigError:
    return ConfigError(f"{config.env_name(setting)}={getattr(config, setting)}: {problem}")
