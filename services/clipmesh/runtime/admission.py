"""Admission control: a bound on the RPCs a service runs at once, overall and per caller.

A saturated service that accepts every call makes every caller slow; one that refuses the
excess at once keeps the accepted calls fast and tells the rest when to come back. Past the
limit a call fails with RESOURCE_EXHAUSTED at once, before any work, carrying a retry hint
(`grpc-retry-pushback-ms` and a `RetryInfo`, written by the error interceptor) sized from how
long calls have recently taken. Health checks and reflection are never refused: a busy
service must not look dead to its probes.

The per-caller bound keeps one team's batch job from taking every slot of the public API;
callers are told apart by `identity.caller_of`: the identity the auth interceptor established,
or the x-clipmesh-caller header when auth is off.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from prometheus_client import Counter, Gauge

from clipmesh.runtime.errors import ResourceExhausted
from clipmesh.runtime.handlers import Behavior, call_unary, iterate_stream, rewrap, split_method
from clipmesh.runtime.identity import caller_of
from clipmesh.runtime.reflection import HEALTH_AND_REFLECTION

__all__ = ["AdmissionControl"]

EXEMPT_SERVICES = HEALTH_AND_REFLECTION
# Bounds on the retry hint: not so short that refused callers come straight back, not so long
# that capacity sits idle.
MIN_RETRY_S, MAX_RETRY_S = 0.05, 5.0

IN_FLIGHT = Gauge("clipmesh_rpcs_in_flight", "RPCs running now (health and reflection excluded).")
REFUSED = Counter(
    "clipmesh_admission_refused_total",
    "RPCs refused at admission, by limit (service or caller).",
    ["grpc_service", "grpc_method", "limit"],
)


class AdmissionControl(grpc.aio.ServerInterceptor):
    """Refuses RPCs beyond `max_in_flight` at once, or beyond `max_per_caller` for one caller.

    Place it inside the error interceptor (later in the list) so its ResourceExhausted is
    mapped to a status with the retry hint.

    Args:
        max_in_flight: Most RPCs running at once; 0 = no limit.
        max_per_caller: Most RPCs one caller runs at once; 0 = no per-caller limit.
        caller_of: The caller of a call, from its context ("" when unknown); called when the
            call starts, inside any interceptor placed before this one.
    """

    def __init__(
        self,
        max_in_flight: int,
        max_per_caller: int = 0,
        caller_of: Callable[[grpc.aio.ServicerContext], str] = caller_of,
    ) -> None:
        self.max_in_flight = max_in_flight
        self.max_per_caller = max_per_caller
        self._caller_of = caller_of
        self.in_flight = 0
        self._per_caller: Tally[str] = Tally()
        self._typical_call_s = 0.1  # moving average of finished calls, for the retry hint

    async def intercept_service(self, continuation, handler_call_details):  # type: ignore[override]
        handler = await continuation(handler_call_details)
        service, method = split_method(handler_call_details.method)
        if handler is None or service in EXEMPT_SERVICES:
            return handler

        def wrap_unary(behavior: Behavior):
            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                caller = self._admit(service, method, context)
                started = time.monotonic()
                try:
                    return await call_unary(behavior, request, context)
                finally:
                    self._release(caller, time.monotonic() - started)

            return unary

        def wrap_stream(behavior: Behavior):
            async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                caller = self._admit(service, method, context)
                started = time.monotonic()
                try:
                    async for response in iterate_stream(behavior, request, context):
                        yield response
                finally:
                    self._release(caller, time.monotonic() - started)

            return stream

        return rewrap(handler, wrap_unary, wrap_stream)

    def _admit(self, service: str, method: str, context: grpc.aio.ServicerContext) -> str:
        """Takes a slot for the current call or raises ResourceExhausted; returns its caller."""
        caller = self._caller_of(context)
        if self.max_in_flight and self.in_flight >= self.max_in_flight:
            REFUSED.labels(service, method, "service").inc()
            raise ResourceExhausted(
                f"server busy: {self.in_flight} calls in flight (limit {self.max_in_flight}); "
                "retry later",
                reason="SERVER_BUSY",
                retry_after_s=self._retry_after_s(),
                metadata={"in_flight": self.in_flight, "limit": self.max_in_flight},
            )
        if caller and self.max_per_caller and self._per_caller[caller] >= self.max_per_caller:
            REFUSED.labels(service, method, "caller").inc()
            raise ResourceExhausted(
                f"caller {caller!r} has {self._per_caller[caller]} calls in flight "
                f"(limit {self.max_per_caller} per caller); retry later",
                reason="CALLER_BUSY",
                retry_after_s=self._retry_after_s(),
                metadata={"caller": caller, "limit": self.max_per_caller},
            )
        self.in_flight += 1
        IN_FLIGHT.inc()
        if caller:
            self._per_caller[caller] += 1
        return caller

    def _release(self, caller: str, elapsed_s: float) -> None:
        self.in_flight -= 1
        IN_FLIGHT.dec()
        if caller:
            self._per_caller[caller] -= 1
            if not self._per_caller[caller]:
                del self._per_caller[caller]
        # Long streams (ingest, generation) would swamp the average; unary-sized calls set it.
        if elapsed_s < MAX_RETRY_S:
            self._typical_call_s = 0.9 * self._typical_call_s + 0.1 * elapsed_s

    def _retry_after_s(self) -> float:
        return min(MAX_RETRY_S, max(MIN_RETRY_S, self._typical_call_s))
