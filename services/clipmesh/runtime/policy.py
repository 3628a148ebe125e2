"""Who may do what: the authorization policy, one YAML file that is re-read when it changes.

```yaml
version: 1
defaults:
  quotas:                                  # every caller's, unless its own say otherwise
    provider_video_seconds_per_day: 3600   # paid seconds of generated video (remote backends)
    concurrent_jobs: 8                     # generation jobs queued or running at once
    ingest_bytes_per_day: 50GiB            # bytes of video ingested (duplicates are free)
webhooks:
  allowed_hosts: ["hooks.example.com", "*.team-a.example"]
  allow_private_networks: false            # true only where receivers live on private ranges
  allow_http_loopback: false               # true in development: http://127.0.0.1:… receivers
callers:
  team-a:
    grants:
      - roles: [search, ingest, delete, previs]
        collections: ["team_a_*"]
      - roles: [search]
        collections: [shared]
      - roles: [generate]
    quotas: {ingest_bytes_per_day: 200GiB}
    webhook_secrets: ["whsec_…"]           # Standard Webhooks secrets; every one signs
    webhook_hosts: ["ci.team-a.example"]   # added to webhooks.allowed_hosts for this caller
  ops:
    grants: [{roles: [admin]}]
```

Roles are `search` (read a collection), `ingest`, `delete`, `generate`, `previs` and `admin`
(everything, everywhere, and every caller's jobs and projects). The collection-scoped roles
(search, ingest, delete, previs) need `collections`: exact names or glob patterns (`*`, `?`). A
caller
absent from the policy holds nothing. Unknown keys, unknown roles, duplicate keys, YAML
aliases and files over 1 MiB are refused with the place named, so a typo never widens or
narrows access silently; a running service keeps the previous policy then (runtime/watched.py).

Without a policy file a service runs `Policy.unrestricted()`: every authenticated caller may do
everything, as before tenancy existed, and the service says so at start.
"""

from __future__ import annotations

import base64
import binascii
import enum
import fnmatch
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from clipmesh.runtime.config import ConfigError
from clipmesh.runtime.identity import CALLER_NAME

ROLES = ("search", "ingest", "delete", "generate", "previs", "admin")
COLLECTION_ROLES = frozenset({"search", "ingest", "delete", "previs"})
MAX_POLICY_BYTES = 1 << 20
WEBHOOK_SECRET_PREFIX = "whsec_"
MIN_WEBHOOK_SECRET_BYTES = 24

# A collection name (runtime: letters, digits and _) with glob wildcards.
_COLLECTION_PATTERN = re.compile(r"[A-Za-z0-9_*?]{1,128}")
_HOST_PATTERN = re.compile(
    r"(\*\.)?[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[?[0-9A-Fa-f:.]+\]?"
)
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?", re.IGNORECASE)
_SIZE_FACTORS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
    "tib": 1 << 40,
}


class Quota(enum.Enum):
    """A per-caller quota; its value is its name in the policy and the API."""

    PROVIDER_VIDEO_SECONDS_PER_DAY = "provider_video_seconds_per_day"
    CONCURRENT_JOBS = "concurrent_jobs"
    INGEST_BYTES_PER_DAY = "ingest_bytes_per_day"

    @property
    def unit(self) -> str:
        return _UNITS[self]

    @property
    def daily(self) -> bool:
        """True when use counts per UTC day and starts from zero at midnight."""
        return self is not Quota.CONCURRENT_JOBS


_UNITS = {
    Quota.PROVIDER_VIDEO_SECONDS_PER_DAY: "seconds",
    Quota.CONCURRENT_JOBS: "jobs",
    Quota.INGEST_BYTES_PER_DAY: "bytes",
}

# A quota's limit; None is unlimited.
Limits = Mapping[Quota, float | None]


@dataclass(frozen=True)
class Grant:
    """Roles, and the collections the collection-scoped ones apply to."""

    roles: frozenset[str]
    collections: tuple[str, ...] = ()

    def allows(self, role: str, collection: str) -> bool:
        """True when this grant gives `role` (on `collection`, "" for an unscoped role)."""
        if "admin" in self.roles:
            return True
        if role not in self.roles:
            return False
        if role not in COLLECTION_ROLES:
            return True
        return any(fnmatch.fnmatchcase(collection, pattern) for pattern in self.collections)


@dataclass(frozen=True)
class CallerPolicy:
    """What the policy says of one caller."""

    name: str
    grants: tuple[Grant, ...] = ()
    quotas: Limits = field(default_factory=dict)
    webhook_secrets: tuple[bytes, ...] = ()
    webhook_hosts: tuple[str, ...] = ()

    @property
    def admin(self) -> bool:
        return any("admin" in grant.roles for grant in self.grants)

    def allows(self, role: str, collection: str = "") -> bool:
        return any(grant.allows(role, collection) for grant in self.grants)

    def holds(self, role: str) -> bool:
        """True when the caller has `role` at all (in some collection, for a scoped role): what
        a call on a resource it owns needs (the resource itself says whose it is)."""
        return any("admin" in grant.roles or role in grant.roles for grant in self.grants)

    def limit(self, quota: Quota) -> float | None:
        """The caller's limit of `quota`; None is unlimited."""
        return self.quotas.get(quota)


@dataclass(frozen=True)
class WebhookRules:
    """Where webhooks may go (generator/webhook_urls.py applies them)."""

    allowed_hosts: tuple[str, ...] = ()
    allow_private_networks: bool = False
    allow_http_loopback: bool = False


@dataclass(frozen=True)
class Policy:
    """The whole policy.

    Attributes:
        enforced: False for `unrestricted()`: every caller may do everything.
        callers: Each named caller's policy.
        default_quotas: The limits of callers (and quotas) the policy does not set.
        webhooks: Where webhooks may go.
    """

    enforced: bool
    callers: Mapping[str, CallerPolicy]
    default_quotas: Limits
    webhooks: WebhookRules

    @classmethod
    def unrestricted(cls) -> Policy:
        """No policy: every caller is an admin without quotas, and no caller has a webhook
        secret."""
        return cls(False, {}, {}, WebhookRules())

    def caller(self, name: str) -> CallerPolicy:
        """The policy of caller `name` (nothing granted when the policy does not list it)."""
        if not self.enforced:
            return CallerPolicy(name, grants=(Grant(frozenset({"admin"})),))
        known = self.callers.get(name)
        if known is not None:
            return known
        return CallerPolicy(name, quotas=self.default_quotas)


def parse_policy(text: str, source: str) -> Policy:
    """Reads a policy file's text.

    Raises:
        ConfigError: The text is not a policy; the message names `source` and the place.
    """
    document = _load_yaml(text, source)
    where = _Where(source)
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: a policy is a mapping with `callers` (see docs/security.md)")
    _only_keys(document, {"version", "defaults", "webhooks", "callers"}, where)
    if document.get("version", 1) != 1:
        raise ConfigError(f"{where.at('version')}: this release reads policy version 1")
    defaults = _mapping(document.get("defaults", {}), where.at("defaults"))
    _only_keys(defaults, {"quotas"}, where.at("defaults"))
    default_quotas = _quotas(defaults.get("quotas", {}), where.at("defaults").at("quotas"))
    webhooks = _webhook_rules(document.get("webhooks", {}), where.at("webhooks"))
    callers_doc = _mapping(document.get("callers"), where.at("callers"))
    callers = {
        str(name): _caller(name, spec, default_quotas, where.at("callers").at(str(name)))
        for name, spec in callers_doc.items()
    }
    return Policy(True, callers, default_quotas, webhooks)


def decode_webhook_secret(secret: str, where: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret (`whsec_` + base64 of ≥ 24 random bytes)."""
    if not isinstance(secret, str) or not secret.startswith(WEBHOOK_SECRET_PREFIX):
        raise ConfigError(f"{where}: a webhook secret is `{WEBHOOK_SECRET_PREFIX}<base64>`")
    try:
        key = base64.b64decode(secret.removeprefix(WEBHOOK_SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"{where}: the webhook secret is not valid base64") from exc
    if len(key) < MIN_WEBHOOK_SECRET_BYTES:
        raise ConfigError(
            f"{where}: the webhook secret holds {len(key)} bytes; at least "
            f"{MIN_WEBHOOK_SECRET_BYTES} random bytes are needed (`clipmesh webhook-secret`)"
        )
    return key


# Reading the document.


# libyaml's parser where PyYAML has it (its wheels do): the pure-Python one takes quadratic time
# on deeply nested flow collections, a minute for a 40 KB file.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_SafeLoader):  # type: ignore[misc, valid-type]
    """Safe YAML that refuses a key given twice in one mapping (the later would silently win)."""


def _construct_mapping(loader: Any, node: yaml.MappingNode) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"the key {key!r} is given twice", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _load_yaml(text: str, source: str) -> Any:
    if len(text.encode()) > MAX_POLICY_BYTES:
        raise ConfigError(f"{source}: the policy is larger than {MAX_POLICY_BYTES:,} bytes")
    try:
        # Aliases can expand a small file into a huge document ("billion laughs"); a policy
        # has no use for them.
        for event in yaml.parse(text, Loader=_SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                line = event.start_mark.line + 1
                raise ConfigError(f"{source}:{line}: YAML aliases (*name) are not allowed")
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader: plain data only
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{source}{line}: not valid YAML ({problem})") from exc
    except RecursionError as exc:
        raise ConfigError(f"{source}: the document is nested too deeply") from exc


class _Where:
    """A place in the document, for messages: `policy.yaml: callers.team-a.grants[0]`."""

    def __init__(self, source: str, path: str = "") -> None:
        self.source, self.path = source, path

    def at(self, key: str | int) -> _Where:
        if isinstance(key, int):
            return _Where(self.source, f"{self.path}[{key}]")
        return _Where(self.source, f"{self.path}.{key}" if self.path else key)

    def __str__(self) -> str:
        return f"{self.source}: {self.path}" if self.path else self.source


def _only_keys(mapping: dict, allowed: set[str], where: _Where) -> None:
    unknown = sorted(str(k) for k in mapping if k not in allowed)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r}; known: {', '.join(sorted(allowed))}"
        )


def _mapping(value: Any, where: _Where) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping")
    return value


def _strings(value: Any, where: _Where) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{where}: expected a list of strings")
    return value


def _caller(name: Any, spec: Any, default_quotas: Limits, where: _Where) -> CallerPolicy:
    if not isinstance(name, str) or not CALLER_NAME.fullmatch(name):
        raise ConfigError(f"{where}: a caller's name is 1-64 letters, digits or ._@/+-")
    spec = _mapping(spec, where)
    _only_keys(spec, {"grants", "quotas", "webhook_secrets", "webhook_hosts"}, where)
    grants_doc = spec.get("grants") or []
    if not isinstance(grants_doc, list):
        raise ConfigError(f"{where.at('grants')}: expected a list of grants")
    grants = tuple(_grant(item, where.at("grants").at(i)) for i, item in enumerate(grants_doc))
    own = _quotas(spec.get("quotas", {}), where.at("quotas"))
    secrets = tuple(
        decode_webhook_secret(secret, str(where.at("webhook_secrets").at(i)))
        for i, secret in enumerate(
            _strings(spec.get("webhook_secrets"), where.at("webhook_secrets"))
        )
    )
    hosts = _hosts(spec.get("webhook_hosts"), where.at("webhook_hosts"))
    return CallerPolicy(name, grants, {**default_quotas, **own}, secrets, hosts)


def _grant(spec: Any, where: _Where) -> Grant:
    spec = _mapping(spec, where)
    _only_keys(spec, {"roles", "collections"}, where)
    roles = _strings(spec.get("roles"), where.at("roles"))
    if not roles:
        raise ConfigError(f"{where.at('roles')}: a grant names at least one role")
    for i, role in enumerate(roles):
        if role not in ROLES:
            raise ConfigError(
                f"{where.at('roles').at(i)}: unknown role {role!r}; roles: {', '.join(ROLES)}"
            )
    collections = _strings(spec.get("collections"), where.at("collections"))
    for i, pattern in enumerate(collections):
        if not _COLLECTION_PATTERN.fullmatch(pattern):
            raise ConfigError(
                f"{where.at('collections').at(i)}: {pattern!r} is not a collection name or a "
                "pattern of letters, digits, _, * and ?"
            )
    scoped = sorted(COLLECTION_ROLES.intersection(roles))
    if scoped and not collections and "admin" not in roles:
        raise ConfigError(
            f"{where}: roles {', '.join(scoped)} apply to collections; list them in "
            '`collections` (["*"] for every collection)'
        )
    return Grant(frozenset(roles), tuple(collections))


def _quotas(spec: Any, where: _Where) -> dict[Quota, float | None]:
    spec = _mapping(spec, where)
    _only_keys(spec, {quota.value for quota in Quota}, where)
    return {Quota(name): _limit(Quota(name), value, where.at(name)) for name, value in spec.items()}


def _limit(quota: Quota, value: Any, where: _Where) -> float | None:
    if value == "unlimited":
        return None
    if isinstance(value, str) and quota is Quota.INGEST_BYTES_PER_DAY:
        match = _SIZE.fullmatch(value.strip())
        if match is None:
            raise ConfigError(f"{where}: {value!r} is not a size (e.g. 500MB, 50GiB)")
        value = float(match.group(1)) * _SIZE_FACTORS[(match.group(2) or "b").lower()]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{where}: expected a number of {quota.unit}, or `unlimited`")
    if value < 0:
        raise ConfigError(f"{where}: a limit cannot be negative")
    if quota is Quota.CONCURRENT_JOBS and value != int(value):
        raise ConfigError(f"{where}: a number of jobs is a whole number")
    return float(value)


def _webhook_rules(spec: Any, where: _Where) -> WebhookRules:
    spec = _mapping(spec, where)
    _only_keys(spec, {"allowed_hosts", "allow_private_networks", "allow_http_loopback"}, where)
    flags = {}
    for key in ("allow_private_networks", "allow_http_loopback"):
        value = spec.get(key, False)
        if not isinstance(value, bool):
            raise ConfigError(f"{where.at(key)}: expected true or false")
        flags[key] = value
    return WebhookRules(_hosts(spec.get("allowed_hosts"), where.at("allowed_hosts")), **flags)


def _hosts(value: Any, where: _Where) -> tuple[str, ...]:
    hosts = _strings(value, where)
    for i, host in enumerate(hosts):
        if not _HOST_PATTERN.fullmatch(host):
            raise ConfigError(
                f"{where.at(i)}: {host!r} is not a host name, `*.domain` or an IP address"
            )
    return tuple(host.lower().strip("[]") for host in hosts)
