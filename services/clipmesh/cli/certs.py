"""`clipmesh dev-certs DIR`: a local certificate authority, one certificate per service, and a
bearer token: the development credentials `clipmesh up --tls` runs on.

For trying TLS, mTLS and token auth on one machine, never for production (use cert-manager or
your own PKI there, and tokens of your own). The directory gets:

- `ca.crt` / `ca.key`: the development CA (EC P-256, self-signed).
- `<service>.crt` / `<service>.key` for encoder, index, generator, orchestrator and previs:
  usable as a server certificate *and* as the service's client certificate for mTLS
  (serverAuth and clientAuth), with SANs for the service's name, localhost, 127.0.0.1 and ::1.
- `client.crt` / `client.key`: a client-only certificate for the CLI or an operator calling an
  internal service (such as the generator gateway) directly.
- `tokens.txt`: the tokens file of the public services (orchestrator and previs), holding only
  the SHA-256 of the token, and `local.token`: the token itself (for `CLIPMESH_TOKEN`).

Keys and the token are created 0600; nothing is overwritten unless asked to.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import click
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from clipmesh.cli.services import SERVICE_NAMES
from clipmesh.runtime.auth import token_digest

CA_NAME = "ca"
CLIENT_NAME = "client"
DEV_CALLER = "local"
DEFAULT_VALID_DAYS = 365
_LOCAL_DNS = ("localhost",)
_LOCAL_IPS = ("127.0.0.1", "::1")
# Clocks of containers and laptops drift; a certificate valid from a minute ago is not refused.
_BACKDATE = datetime.timedelta(minutes=5)


@dataclass(frozen=True)
class DevCredentials:
    """The files of a development credentials directory.

    Attributes:
        directory: The folder holding every file.
    """

    directory: Path

    @property
    def ca_file(self) -> Path:
        return self.directory / f"{CA_NAME}.crt"

    @property
    def tokens_file(self) -> Path:
        """The tokens file for `auth_tokens_file` (digests only)."""
        return self.directory / "tokens.txt"

    @property
    def token_file(self) -> Path:
        """The development caller's token, in plain text, for `CLIPMESH_TOKEN`."""
        return self.directory / f"{DEV_CALLER}.token"

    def cert_file(self, name: str) -> Path:
        """The certificate of `name` (a service, or "client")."""
        return self.directory / f"{name}.crt"

    def key_file(self, name: str) -> Path:
        """The private key of `name` (a service, or "client")."""
        return self.directory / f"{name}.key"

    @staticmethod
    def names() -> tuple[str, ...]:
        """Every name that gets a certificate besides the CA."""
        return (*SERVICE_NAMES, CLIENT_NAME)

    def files(self) -> list[Path]:
        """Every file the directory holds when complete."""
        files = [self.ca_file, self.key_file(CA_NAME), self.tokens_file, self.token_file]
        return files + [f for n in self.names() for f in (self.cert_file(n), self.key_file(n))]

    def ensure(self) -> None:
        """Makes the credentials when any file is missing (all anew: they belong together)."""
        if not all(f.is_file() for f in self.files()):
            make_dev_credentials(self.directory, overwrite=True)


def make_dev_credentials(
    directory: Path, *, valid_days: int = DEFAULT_VALID_DAYS, overwrite: bool = False
) -> DevCredentials:
    """Writes a fresh development CA, its certificates and a token into `directory`.

    Args:
        directory: Created if missing (0700).
        valid_days: Lifetime of the CA and of every certificate.
        overwrite: Replace files that exist; otherwise an existing file is an error.

    Raises:
        FileExistsError: A file to write exists and `overwrite` is False.
    """
    credentials = DevCredentials(directory)
    existing = [f for f in credentials.files() if f.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]} exists")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    not_before = datetime.datetime.now(datetime.UTC) - _BACKDATE
    validity = (not_before, not_before + datetime.timedelta(days=valid_days))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("clipmesh development CA")
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key(), validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_secret(credentials.key_file(CA_NAME), _pem_key(ca_key))
    _write_public(credentials.ca_file, ca_cert.public_bytes(serialization.Encoding.PEM))
    for name in credentials.names():
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(name, key.public_key(), ca_name, ca_key, validity)
        _write_secret(credentials.key_file(name), _pem_key(key))
        _write_public(credentials.cert_file(name), cert.public_bytes(serialization.Encoding.PEM))
    token = secrets.token_urlsafe(32)
    _write_secret(credentials.token_file, f"{token}\n".encode())
    tokens = f"# clipmesh dev-certs: the token in {credentials.token_file.name}\n"
    _write_public(credentials.tokens_file, f"{tokens}{DEV_CALLER}:{token_digest(token)}\n".encode())
    return credentials


def _issue(
    name: str,
    public_key: ec.EllipticCurvePublicKey,
    ca_name: x509.Name,
    ca_key: ec.EllipticCurvePrivateKey,
    validity: tuple[datetime.datetime, datetime.datetime],
) -> x509.Certificate:
    """A certificate for a service (server and client use) or for the client (client use)."""
    builder = (
        _builder(_name(name), ca_name, public_key, validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
    )
    if name == CLIENT_NAME:
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    else:
        usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        builder = builder.add_extension(_local_names(name), critical=False)
    builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    validity: tuple[datetime.datetime, datetime.datetime],
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _local_names(service: str) -> x509.SubjectAlternativeName:
    """The names a client may dial the service by on one machine or in a compose network."""
    dns = [x509.DNSName(n) for n in (service, *_LOCAL_DNS)]
    ips = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in _LOCAL_IPS]
    return x509.SubjectAlternativeName([*dns, *ips])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_secret(path: Path, content: bytes) -> None:
    # Created 0600 (not chmod-ed afterwards), so the secret is never readable by others.
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(content)


def _write_public(path: Path, content: bytes) -> None:
    path.write_bytes(content)
    path.chmod(0o644)


@click.command("dev-certs")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--days", type=click.IntRange(1, 3650), default=DEFAULT_VALID_DAYS, show_default=True)
@click.option("--force", is_flag=True, help="Replace credentials already in DIRECTORY.")
def dev_certs(directory: Path, days: int, force: bool) -> None:
    """Make a local CA, TLS certificates for every service and a token in DIRECTORY.

    For development only: `clipmesh up --tls` makes the same in its data directory.
    """
    try:
        credentials = make_dev_credentials(directory, valid_days=days, overwrite=force)
    except FileExistsError as exc:
        raise click.ClickException(f"{exc}; pass --force to replace the credentials") from exc
    rows = [("CA", f"{credentials.ca_file}")]
    rows += [
        (n, f"{credentials.cert_file(n)}  {credentials.key_file(n)}") for n in credentials.names()
    ]
    rows += [("tokens", f"{credentials.tokens_file}  (the token: {credentials.token_file})")]
    for name, files in rows:
        click.echo(f"{name:<14}{files}")
