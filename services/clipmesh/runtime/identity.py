"""Who the current RPC is for: the caller the auth interceptor authenticated.

Kept apart from `auth.py` so that logging and servicers can read the identity without importing
the interceptor. The value lives in a context variable: it is set for the duration of one RPC
and follows tasks that RPC starts (asyncio copies the context), never another RPC.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from contextvars import ContextVar

import grpc

from clipmesh.runtime.errors import InvalidArgument
from clipmesh_client.wire import CALLER_HEADER

# What a caller's name may be (in the tokens file and the policy): it becomes a metric label and
# a log field, so it is short and plain.
CALLER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@/+-]{0,63}")
# The span attribute OpenTelemetry's semantic conventions name for an authenticated user.
SPAN_ATTRIBUTE = "enduser.id"

_CALLER: ContextVar[str | None] = ContextVar("clipmesh_caller", default=None)


def current_caller() -> str | None:
    """The authenticated caller of the RPC being served, or None when auth is off."""
    return _CALLER.get()


def caller_of(context: grpc.aio.ServicerContext) -> str:
    """Who a call is for: the authenticated caller, else the one its x-clipmesh-caller header
    declares, else "".

    With token auth on, the identity the token proves wins and the header is ignored: a caller
    must not claim another's share of per-caller limits. Without auth (plaintext, or mTLS where
    the orchestrator names its previs projects) the header is trusted.

    Raises:
        InvalidArgument: the header is empty, longer than 128 characters or not printable.
    """
    if (authenticated := current_caller()) is not None:
        return authenticated
    for key, value in context.invocation_metadata() or ():
        if key == CALLER_HEADER:
            if not value or len(value) > 128 or not value.isprintable():
                raise InvalidArgument(
                    f"the {CALLER_HEADER} header must be 1–128 printable characters",
                    field=CALLER_HEADER,
                    reason="BAD_CALLER",
                )
            return value
    return ""


@contextlib.contextmanager
def acting_for(caller: str) -> Iterator[None]:
    """Makes `caller` the current caller inside the block."""
    token = _CALLER.set(caller)
    try:
        yield
    finally:
        # A streaming RPC's generator abandoned mid-stream is closed by asyncio in another
        # context, where the token cannot be reset; that context dies with its task anyway.
        with contextlib.suppress(ValueError):
            _CALLER.reset(token)
