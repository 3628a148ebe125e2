"""TLS credentials and bearer tokens for talking to a secured clipmesh.

    from clipmesh_client import Client, tls_credentials

    credentials = tls_credentials("certs/ca.crt")  # trust the mesh's CA
    with Client("clipmesh.example.com:50050", credentials=credentials, token=token) as client:
        ...

Pass `cert_file` and `key_file` as well to present a client certificate (mTLS), which the
internal services require when their `tls_client_auth` is on.
"""

from __future__ import annotations

from pathlib import Path

import grpc

# The header the orchestrator's auth interceptor reads: `authorization: Bearer <token>`.
AUTHORIZATION_HEADER = "authorization"
BEARER_PREFIX = "Bearer "


def tls_credentials(
    ca_file: str | Path | None = None,
    cert_file: str | Path | None = None,
    key_file: str | Path | None = None,
) -> grpc.ChannelCredentials:
    """Channel credentials from PEM files.

    Args:
        ca_file: CA bundle to verify the server with; None trusts the system's roots.
        cert_file: Client certificate chain, for mTLS (give `key_file` with it).
        key_file: Private key of `cert_file`.

    Raises:
        ValueError: Only one of `cert_file` and `key_file` was given.
        OSError: A file cannot be read (the message names it).
    """
    if (cert_file is None) != (key_file is None):
        raise ValueError("give both cert_file and key_file for a client certificate, or neither")
    return grpc.ssl_channel_credentials(
        root_certificates=_read(ca_file),
        private_key=_read(key_file),
        certificate_chain=_read(cert_file),
    )


def bearer_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """The call metadata that carries `token` (nothing when it is None or empty).

    Send tokens over TLS only: on a plaintext channel anyone on the path can read them.
    """
    if not token:
        return ()
    return ((AUTHORIZATION_HEADER, f"{BEARER_PREFIX}{token}"),)


def _read(path: str | Path | None) -> bytes | None:
    return None if path is None else Path(path).read_bytes()
