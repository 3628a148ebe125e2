"""The clipmesh Python SDK: typed errors today; typed sync and asyncio clients build on them."""

from clipmesh_client.errors import (
    ClipmeshError,
    DeadlineExceededError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnavailableError,
    UnimplementedError,
    from_rpc_error,
)

__all__ = [
    "ClipmeshError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "InvalidArgumentError",
    "NotFoundError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "UnavailableError",
    "UnimplementedError",
    "from_rpc_error",
]
