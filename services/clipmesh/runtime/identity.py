"""Who the current RPC is for: the caller the auth interceptor authenticated.

Kept apart from `auth.py` so that logging and servicers can read the identity without importing
the interceptor. The value lives in a context variable: it is set for the duration of one RPC
and follows tasks that RPC starts (asyncio copies the context), never another RPC.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

# The span attribute OpenTelemetry's semantic conventions name for an authenticated user.
SPAN_ATTRIBUTE = "enduser.id"

_CALLER: ContextVar[str | None] = ContextVar("clipmesh_caller", default=None)


def current_caller() -> str | None:
    """The authenticated caller of the RPC being served, or None when auth is off."""
    return _CALLER.get()


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
