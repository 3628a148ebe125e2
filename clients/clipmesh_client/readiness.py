"""Waiting for the orchestrator's standard health service to report SERVING.

`Client` and `AsyncClient` poll `grpc.health.v1.Health/Check` with `wait_for_ready`, so a
server that is not listening yet is waited for rather than failed at once; this class holds
what both loops share: the deadline, what counts as "not yet", and the error for a timeout.
"""

from __future__ import annotations

import time

import grpc
from grpc_health.v1 import health_pb2

from clipmesh_client.errors import UnavailableError, from_rpc_error

_READY_POLL_S = 0.1
# Health answers that mean "not yet": no connection within the attempt, the server going
# away, or the service not registered yet.
_NOT_READY_CODES = frozenset(
    {grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND}
)


class Readiness:
    """One wait for SERVING: the health checks so far and the time left.

    Args:
        target: The server's address, for the timeout's message.
        service: The health service name to check; "" is the server as a whole.
        timeout_s: How long the whole wait may take.

    Attributes:
        request: The health check to send.
        last_error: The last "not yet" failure, to chain the timeout's error from.
    """

    def __init__(self, target: str, service: str, timeout_s: float) -> None:
        self._target, self._service, self._timeout_s = target, service, timeout_s
        self._deadline = time.monotonic() + timeout_s
        self.request = health_pb2.HealthCheckRequest(service=service)
        self.last_error: grpc.RpcError | None = None
        self._last_seen = "no answer"

    def remaining_s(self) -> float:
        """Seconds left; the deadline of the next check."""
        return self._deadline - time.monotonic()

    def pause_s(self) -> float:
        """How long to wait before the next check."""
        return max(0.0, min(_READY_POLL_S, self.remaining_s()))

    def serving(self, response: health_pb2.HealthCheckResponse) -> bool:
        """True when `response` says SERVING."""
        self._last_seen = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
        return response.status == health_pb2.HealthCheckResponse.SERVING

    def failed(self, error: grpc.RpcError) -> None:
        """Records a "not yet" answer; raises the typed error for any other failure."""
        code = error.code()  # type: ignore[attr-defined]
        if code not in _NOT_READY_CODES:
            raise from_rpc_error(error) from error
        self.last_error, self._last_seen = error, code.name

    def timed_out(self) -> UnavailableError:
        """The error to raise when the time is up."""
        service = f"service {self._service!r}" if self._service else "the server"
        return UnavailableError(
            f"{service} at {self._target} was not SERVING within {self._timeout_s:g}s "
            f"(last answer: {self._last_seen})",
            reason="NOT_READY",
            metadata={"target": self._target},
        )
