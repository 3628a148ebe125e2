"""Authorization: each RPC's declared access rule, checked against the policy in one place.

Every public RPC declares in its `.proto` what a caller must hold
(`option (clipmesh.common.v1.access) = {permission: …, collection_field: …, owned: …}`).
`AccessControl` reads that declaration from the generated descriptors for each call, finds the
collection the request names, and asks the policy (runtime/policy.py) whether the caller holds
the permission there; a refusal is PERMISSION_DENIED with an `ErrorInfo` naming the missing
permission and the collection (`MISSING_PERMISSION`). Handlers never check permissions.

An allowed call runs with its `Principal` (the caller and what the policy says of it) as the
current one, so a service that keeps resources per caller (generation jobs, previs projects)
scopes them with `current_principal().may_see(owner)`: another caller's job is NOT_FOUND, exactly
as a job that does not exist.

The front doors (orchestrator, previs) enforce roles; the generator gateway, an internal service
behind mutual TLS, only establishes the principal — its callers are the front doors, which
checked the caller's roles and name it in the `x-clipmesh-caller` header — and keeps jobs
apart by owner and charges quotas.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import MethodDescriptor
from prometheus_client import Counter

from clipmesh.runtime.config import ConfigError, ServiceConfig
from clipmesh.runtime.errors import PermissionDenied
from clipmesh.runtime.handlers import Behavior, call_unary, iterate_stream, rewrap, split_method
from clipmesh.runtime.identity import caller_of
from clipmesh.runtime.metrics import create_zero_series
from clipmesh.runtime.policy import MAX_POLICY_BYTES, CallerPolicy, Policy, parse_policy
from clipmesh.runtime.reflection import HEALTH_AND_REFLECTION
from clipmesh.runtime.server import StartupError
from clipmesh.runtime.watched import WatchedFile
from clipmesh_api.common.v1 import access_pb2

log = logging.getLogger(__name__)

ANONYMOUS = "anonymous"
# The role each declared permission needs ("" for any authenticated caller).
ROLE_OF = {
    access_pb2.PERMISSION_AUTHENTICATED: "",
    access_pb2.PERMISSION_SEARCH: "search",
    access_pb2.PERMISSION_INGEST: "ingest",
    access_pb2.PERMISSION_DELETE: "delete",
    access_pb2.PERMISSION_GENERATE: "generate",
    access_pb2.PERMISSION_PREVIS: "previs",
    access_pb2.PERMISSION_ADMIN: "admin",
}
EXEMPT_SERVICES = HEALTH_AND_REFLECTION

DENIED = Counter(
    "clipmesh_authz_denied_total",
    "Calls refused PERMISSION_DENIED by the policy, by RPC and missing permission.",
    ("grpc_service", "grpc_method", "permission"),
)


@dataclass(frozen=True)
class Principal:
    """Who a call is for, and what the policy grants it."""

    caller: str
    policy: CallerPolicy
    enforced: bool

    @property
    def admin(self) -> bool:
        return self.policy.admin

    def may_see(self, owner: str) -> bool:
        """True when the caller may see a resource `owner` created (its own, or it is admin)."""
        return self.admin or owner == self.caller

    @property
    def owner_filter(self) -> str | None:
        """The owner a listing is limited to; None for an admin (every owner)."""
        return None if self.admin else self.caller


_PRINCIPAL: ContextVar[Principal | None] = ContextVar("clipmesh_principal", default=None)


def current_principal() -> Principal:
    """The principal of the RPC being served.

    Raises:
        RuntimeError: Called outside an RPC that `AccessControl` admitted (a wiring mistake).
    """
    principal = _PRINCIPAL.get()
    if principal is None:
        raise RuntimeError("no principal: this service's servers need AccessControl")
    return principal


@contextlib.contextmanager
def acting_as(principal: Principal) -> Iterator[None]:
    """Makes `principal` the current one inside the block (tests and background work)."""
    token = _PRINCIPAL.set(principal)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):  # see identity.acting_for
            _PRINCIPAL.reset(token)


class PolicySource:
    """The policy in force: the policy file's, re-read when it changes, or `unrestricted()`."""

    def __init__(self, file: WatchedFile[Policy] | None = None, fixed: Policy | None = None):
        self._file = file
        self._fixed = fixed or Policy.unrestricted()

    @classmethod
    def from_config(cls, config: ServiceConfig) -> PolicySource:
        """The policy of `config.policy_file`, announced at start; unrestricted without one.

        Raises:
            StartupError: The file cannot be read or is not a policy.
        """
        if not config.policy_file:
            log.warning(
                "authorization off: every caller may do everything, with no quotas; set %s "
                "to a policy file",
                config.env_name("policy_file"),
            )
            return cls()
        try:
            file = WatchedFile(
                Path(config.policy_file),
                config.env_name("policy_file"),
                parse_policy,
                what="policy",
                max_bytes=MAX_POLICY_BYTES,
            )
        except ConfigError as exc:
            raise StartupError(str(exc)) from exc
        log.info("authorization on", extra={"callers": len(file.current().callers)})
        return cls(file)

    def current(self) -> Policy:
        return self._file.current() if self._file is not None else self._fixed

    def principal(self, caller: str) -> Principal:
        policy = self.current()
        return Principal(caller, policy.caller(caller), policy.enforced)


@functools.cache
def access_rule(method: str) -> access_pb2.AccessRule | None:
    """The access rule `/package.Service/Method` declares, or None when it declares none."""
    service, name = split_method(method)
    try:
        descriptor = descriptor_pool.Default().FindMethodByName(f"{service}.{name}")
    except KeyError:
        return None
    options = descriptor.GetOptions()
    if not options.HasExtension(access_pb2.access):
        return None
    return options.Extensions[access_pb2.access]


class AccessControl(grpc.aio.ServerInterceptor):
    """Establishes each call's principal and, with `enforce_roles`, refuses what the policy does
    not grant. Place it inside the error interceptor, so its refusals become statuses.

    Args:
        policies: The policy in force.
        default_collection: The collection a request's empty collection field means.
        enforce_roles: Check the declared permission (the public API). False: only establish
            the principal (an internal service whose callers checked roles already).
    """

    def __init__(
        self, policies: PolicySource, *, default_collection: str = "", enforce_roles: bool = True
    ) -> None:
        self._policies = policies
        self._default_collection = default_collection
        self._enforce_roles = enforce_roles

    def create_series(self, methods: Sequence[MethodDescriptor]) -> None:
        """The denial series of every method it may refuse, at 0, labelled with the permission
        the method declares (`undeclared` for none: refused to everyone)."""
        if not self._enforce_roles:
            return
        for method in methods:
            service = method.containing_service.full_name
            rule = access_rule(f"/{service}/{method.name}")
            if rule is None or rule.permission == access_pb2.PERMISSION_UNSPECIFIED:
                permission = "undeclared"
            elif not (permission := ROLE_OF[rule.permission]):
                continue  # any authenticated caller may call it: never refused
            create_zero_series(
                DENIED, grpc_service=[service], grpc_method=[method.name], permission=[permission]
            )

    async def intercept_service(self, continuation, handler_call_details):  # type: ignore[override]
        handler = await continuation(handler_call_details)
        service, method = split_method(handler_call_details.method)
        if handler is None or service in EXEMPT_SERVICES:
            return handler
        rule = access_rule(handler_call_details.method)

        def wrap_unary(behavior: Behavior):
            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                with acting_as(self._admit(rule, request, context, service, method)):
                    return await call_unary(behavior, request, context)

            return unary

        def wrap_stream(behavior: Behavior):
            async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                with acting_as(self._admit(rule, request, context, service, method)):
                    async for response in iterate_stream(behavior, request, context):
                        yield response

            return stream

        return rewrap(handler, wrap_unary, wrap_stream)

    def _admit(
        self,
        rule: access_pb2.AccessRule | None,
        request: Any,
        context: grpc.aio.ServicerContext,
        service: str,
        method: str,
    ) -> Principal:
        """The call's principal, or PermissionDenied naming what it lacks."""
        principal = self._policies.principal(caller_of(context) or ANONYMOUS)
        if not self._enforce_roles or not principal.enforced:
            return principal
        if rule is None or rule.permission == access_pb2.PERMISSION_UNSPECIFIED:
            # Fail closed: an RPC nobody declared a rule for is nobody's.
            DENIED.labels(service, method, "undeclared").inc()
            raise PermissionDenied(
                f"{service}.{method} declares no access rule; no caller may call it",
                reason="NO_ACCESS_RULE",
            )
        role = ROLE_OF[rule.permission]
        collection = ""
        if rule.collection_field:
            collection = getattr(request, rule.collection_field, "") or self._default_collection
            allowed = principal.policy.allows(role, collection)
        else:
            allowed = principal.policy.holds(role)
        if not role or allowed:
            return principal
        DENIED.labels(service, method, role).inc()
        where = f" in collection {collection!r}" if rule.collection_field else ""
        log.info(
            "rpc denied",
            extra={"rpc": f"/{service}/{method}", "permission": role, "collection": collection},
        )
        raise PermissionDenied(
            f"caller {principal.caller!r} may not {role}{where}: the policy grants no `{role}` "
            f"role{' there' if where else ''}",
            reason="MISSING_PERMISSION",
            metadata={"permission": role, "collection": collection, "caller": principal.caller},
        )
