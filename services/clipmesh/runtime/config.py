"""Service configuration: one frozen dataclass per service, filled from its defaults, then
`CLIPMESH_<SERVICE>_<FIELD>` environment variables, then command-line flags, and validated at
start-up with errors that name the bad setting.

A field is declared with `setting(default, help=..., minimum=..., maximum=..., choices=...)`.
Supported types: str, int, float, bool, Path and tuple[str, ...] (comma-separated).
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ConfigError(ValueError):
    """A setting is missing, malformed or out of range. The message names the setting."""


def setting(
    default: Any,
    *,
    help: str,
    minimum: float | None = None,
    maximum: float | None = None,
    choices: tuple[str, ...] | None = None,
    secret: bool = False,
) -> Any:
    """Declares a config field with its documentation, bounds, and whether it is a secret
    (secrets are never logged or shown)."""
    meta = {
        "help": help,
        "minimum": minimum,
        "maximum": maximum,
        "choices": choices,
        "secret": secret,
    }
    # repr=False keeps secrets out of tracebacks and debug prints of the config object.
    return dataclasses.field(default=default, metadata=meta, repr=not secret)


@dataclasses.dataclass(frozen=True)
class ServiceConfig:
    """Settings every clipmesh service has. Subclasses set `SERVICE` and add their own fields."""

    SERVICE: ClassVar[str] = ""
    # Whether the service reads `policy_file` (the public API and the generator's quotas).
    USES_POLICY: ClassVar[bool] = False

    host: str = setting("0.0.0.0", help="Address the gRPC server binds (0.0.0.0 = all).")
    port: int = setting(0, help="gRPC port (0 = any free port).", minimum=0, maximum=65535)
    health_port: int = setting(
        0,
        help="Extra plaintext port serving only the gRPC health service, for Kubernetes gRPC "
        "probes (which cannot speak TLS or send tokens) when the main port uses TLS; "
        "0 = none.",
        minimum=0,
        maximum=65535,
    )
    metrics_host: str = setting("0.0.0.0", help="Address the Prometheus metrics server binds.")
    metrics_port: int = setting(
        0, help="Prometheus metrics HTTP port (0 = any free port).", minimum=0, maximum=65535
    )
    data_dir: Path = setting(Path("clipmesh-data"), help="Directory for the service's state.")
    grace_s: float = setting(
        10.0, help="Seconds in-flight RPCs get to finish on SIGTERM.", minimum=0, maximum=600
    )
    drain_delay_s: float = setting(
        0.0,
        help="Seconds to report NOT_SERVING before refusing new RPCs on SIGTERM, so load "
        "balancers stop routing first (set a few seconds on Kubernetes).",
        minimum=0,
        maximum=120,
    )
    max_message_mb: int = setting(
        64, help="Largest gRPC message accepted or sent, in MiB.", minimum=1, maximum=1024
    )
    keepalive_time_s: float = setting(
        30.0, help="Seconds between HTTP/2 keepalive pings on idle connections.", minimum=1
    )
    keepalive_timeout_s: float = setting(
        10.0, help="Seconds to wait for a keepalive ping's answer.", minimum=1
    )
    max_connection_age_s: float = setting(
        300.0,
        help="Seconds after which a client connection is gracefully closed, so clients "
        "re-resolve and spread over new replicas (0 = never).",
        minimum=0,
    )
    log_level: str = setting(
        "INFO", help="Log level.", choices=("DEBUG", "INFO", "WARNING", "ERROR")
    )
    otlp_endpoint: str = setting(
        "",
        help="OTLP/gRPC collector for traces: http://host:port (plaintext, in-cluster), "
        "https://host:port or host:port (TLS); empty disables export.",
    )
    # Transport security and identity (runtime/security.py, runtime/auth.py, docs/security.md).
    # On Kubernetes the three TLS files are the tls.crt, tls.key and ca.crt of one Secret.
    tls_cert_file: str = setting(
        "",
        help="PEM certificate chain this service presents, as a server and (the orchestrator) "
        "as its client certificate to the other services; empty = plaintext. Re-read when it "
        "changes on disk.",
    )
    tls_key_file: str = setting("", help="PEM private key of tls_cert_file.")
    tls_ca_file: str = setting(
        "",
        help="PEM CA bundle: client certificates must chain to it (tls_client_auth), and the "
        "orchestrator verifies the encoder, index and generator against it (set = TLS to them).",
    )
    tls_client_auth: bool = setting(
        False,
        help="Refuse connections without a client certificate signed by tls_ca_file (mTLS; "
        "for the internal services).",
    )
    max_concurrent_rpcs: int = setting(
        1000,
        help="Most RPCs served at once (health checks excluded); beyond it calls are refused at "
        "once with RESOURCE_EXHAUSTED and a retry hint. 0 = no limit.",
        minimum=0,
    )
    max_concurrent_rpcs_per_caller: int = setting(
        0,
        help="Most RPCs one caller (token identity, else the x-clipmesh-caller header) runs at "
        "once; 0 = no per-caller limit.",
        minimum=0,
    )
    auth_tokens_file: str = setting(
        "",
        help="Bearer tokens accepted, one `caller:sha256:<hex>` (or `caller:<token>`) a line; "
        "empty = token auth off. Re-read when it changes on disk.",
    )
    policy_file: str = setting(
        "",
        help="Authorization policy (YAML: callers' roles, collections, quotas, webhook secrets; "
        "docs/security.md); empty = every caller may do everything. Re-read when it changes on "
        "disk. The orchestrator, previs and the generator read it.",
    )

    def validate(self) -> None:
        """Cross-field checks; subclasses extend. Raises ConfigError."""
        if self.health_port and self.health_port in (self.port, self.metrics_port):
            raise ConfigError(
                f"{self.env_name('health_port')}={self.health_port} is also the gRPC or the "
                "metrics port; give the health-only server a port of its own"
            )
        if self.policy_file and not self.USES_POLICY:
            raise ConfigError(
                f"{self.env_name('policy_file')}: the {self.SERVICE} is internal and reads no "
                "policy; set it on the orchestrator, previs and the generator"
            )

    def require_set(self, *names: str) -> None:
        """Refuses empty values of the settings `names` (addresses of other services)."""
        for name in names:
            if not str(getattr(self, name)).strip():
                raise ConfigError(
                    f"{self.env_name(name)} / {self.flag_name(name)} must not be empty"
                )

    @classmethod
    def env_name(cls, field_name: str) -> str:
        """The environment variable that sets `field_name`."""
        return f"CLIPMESH_{cls.SERVICE.upper()}_{field_name.upper()}"

    @classmethod
    def flag_name(cls, field_name: str) -> str:
        """The command-line flag that sets `field_name`."""
        return "--" + field_name.replace("_", "-")


@dataclasses.dataclass(frozen=True)
class FrontDoorConfig(ServiceConfig):
    """What the services of the public API (the orchestrator, previs) share: a per-caller
    bound, and where the encoder and the index are."""

    USES_POLICY: ClassVar[bool] = True

    max_concurrent_rpcs_per_caller: int = setting(
        128,
        help="Most RPCs one caller runs at once on the public API (token identity, else the "
        "x-clipmesh-caller header): one team's batch cannot take every slot. 0 = no limit.",
        minimum=0,
    )
    encoder_target: str = setting(
        "127.0.0.1:50051",
        help="Encoder address; `dns:///encoder-headless:50051` on Kubernetes.",
    )
    index_target: str = setting("127.0.0.1:50052", help="Index address.")
    default_collection: str = setting("default", help="Collection used when a request names none.")

    def validate(self) -> None:
        super().validate()
        self.require_set("encoder_target", "index_target")
        if self.policy_file and not self.auth_tokens_file:
            raise ConfigError(
                f"{self.env_name('policy_file')} needs {self.env_name('auth_tokens_file')}: "
                "the policy tells callers apart by the identity their token proves"
            )


@dataclasses.dataclass(frozen=True)
class StoreConfig(ServiceConfig):
    """Where a service keeps state its replicas share: SQLite under its data dir by default, or
    one PostgreSQL database."""

    store: str = setting(
        "",
        help="Where the service's state lives: empty for SQLite under the data dir (one "
        "replica); a postgresql:// DSN without its password (store_password_file) for several "
        "replicas sharing one database (docs/operations.md, High availability).",
    )
    store_password_file: Path = setting(
        Path(""),
        help="File holding the PostgreSQL password (a mounted Secret); read at each new "
        "connection, so a rotated password is picked up without a restart.",
    )
    store_pool_size: int = setting(
        8, help="PostgreSQL connections this replica keeps at most.", minimum=2, maximum=200
    )

    def validate(self) -> None:
        super().validate()
        self.database_target()

    def database_target(self):
        """The PostgreSQL database `store` names (a `runtime.database.DatabaseTarget`), or None
        for SQLite; a ConfigError names the setting when the DSN is unusable."""
        if not self.store:
            return None
        from clipmesh.runtime.postgres import DatabaseTarget  # the DSN's own rules

        return DatabaseTarget.parse(
            self.store, self.store_password_file, setting=self.env_name("store")
        )


@dataclasses.dataclass(frozen=True)
class SharedStoreConfig(StoreConfig):
    """A service whose replicas share work, owned through leases (the generator, previs)."""

    lease_s: float = setting(
        15.0,
        help="How long a replica's claim on its work lasts without being renewed (every third "
        "of it); a replica that stops renewing has its work taken over by another after this.",
        minimum=2,
        maximum=600,
    )


ConfigT = TypeVar("ConfigT", bound=ServiceConfig)


def fields_of(config_type: type[ServiceConfig]) -> list[dataclasses.Field[Any]]:
    """The settings of a config class, in declaration order."""
    return [f for f in dataclasses.fields(config_type) if f.init]


def load_config(
    config_type: type[ConfigT],
    *,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, str | None] | None = None,
) -> ConfigT:
    """Builds and validates a config: defaults, then environment, then flags.

    Args:
        config_type: The service's config dataclass.
        environ: Environment to read (defaults to `os.environ`).
        flags: Field name → raw string from the command line; None values are ignored.

    Raises:
        ConfigError: naming the environment variable or flag whose value is bad.
    """
    environ = os.environ if environ is None else environ
    flags = flags or {}
    unknown = set(flags) - {f.name for f in fields_of(config_type)}
    if unknown:
        raise ConfigError(f"unknown setting(s) for {config_type.SERVICE}: {sorted(unknown)}")
    hints = typing.get_type_hints(config_type)
    values: dict[str, Any] = {}
    for field in fields_of(config_type):
        env_var = config_type.env_name(field.name)
        raw, source = flags.get(field.name), config_type.flag_name(field.name)
        if raw is None and env_var in environ:
            raw, source = environ[env_var], env_var
        if raw is None:
            continue
        values[field.name] = _parse(raw, hints[field.name], field, source)
    config = config_type(**values)
    for field in fields_of(config_type):
        _check_bounds(config_type, field, getattr(config, field.name))
    config.validate()
    return config


def _parse_bool(raw: str) -> bool:
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ValueError("expected true/false")


_PARSERS: dict[Any, Any] = {
    bool: _parse_bool,
    int: int,
    float: float,
    str: str,
    Path: lambda raw: Path(raw).expanduser(),
}


def _parse(raw: str, hint: Any, field: dataclasses.Field[Any], source: str) -> Any:
    """Converts one raw string to the field's type, or raises ConfigError naming `source`."""
    raw = raw.strip()
    if typing.get_origin(hint) is tuple:
        return tuple(item.strip() for item in raw.split(",") if item.strip())
    parser = _PARSERS.get(hint)
    if parser is None:
        raise ConfigError(f"{source}: unsupported setting type {hint!r} for {field.name}")
    try:
        return parser(raw)
    except ValueError as exc:
        raise ConfigError(f"{source}={raw!r} is not a valid {_type_name(hint)} ({exc})") from exc


def _check_bounds(
    config_type: type[ServiceConfig], field: dataclasses.Field[Any], value: Any
) -> None:
    meta = field.metadata
    where = f"{config_type.env_name(field.name)} / {config_type.flag_name(field.name)}"
    if meta.get("choices") and value not in meta["choices"]:
        raise ConfigError(f"{where}={value!r} must be one of {list(meta['choices'])}")
    if meta.get("minimum") is not None and value < meta["minimum"]:
        raise ConfigError(f"{where}={value!r} must be at least {meta['minimum']}")
    if meta.get("maximum") is not None and value > meta["maximum"]:
        raise ConfigError(f"{where}={value!r} must be at most {meta['maximum']}")


def _type_name(hint: Any) -> str:
    return {int: "integer", float: "number", bool: "boolean", Path: "path"}.get(hint, str(hint))


def describe(config: ServiceConfig) -> dict[str, Any]:
    """The config as plain values for the start-up log line, secrets redacted."""
    return {
        f.name: "<redacted>" if f.metadata.get("secret") else str(getattr(config, f.name))
        for f in fields_of(type(config))
    }
