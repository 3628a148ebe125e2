"""The clipmesh Python SDK: search videos, and the moments inside them, by image, text or clip.

    from clipmesh_client import Client, IngestSummary, all_of, between, equals

    with Client("127.0.0.1:50050", timeout_s=5) as client:
        client.wait_until_ready(timeout_s=30)
        for event in client.ingest(["/data/clips/beach.mp4"], labels={"project": "demo"}):
            print(event)  # IngestProgress per video, then one IngestSummary
        result = client.search(text="a dog running on a beach", not_text="night", top_k=5,
                               filter=all_of(equals("labels.project", "demo"),
                                             between("duration_s", max=120)))
        for hit in result.hits:
            print(hit.video.title, hit.score, [(m.start_s, m.end_s) for m in hit.moments])

Against a secured mesh, pass `credentials=tls_credentials("ca.crt")` and `token=...`;
`client.whoami()` says who the token proves you are, your roles and your quotas (`CallerInfo`).
`AsyncClient` takes the same arguments (`async with`, `await`, `async for`). Failed calls raise
the typed errors below, chained from the `grpc.RpcError`; match on the class or `.reason`
(`QuotaExceededError` names the quota and when it resets, `PermissionDeniedError` the missing
role). Generation: `GeneratorClient`; a receiver of its job webhooks checks each request with
`clipmesh_client.webhooks.verify(secret, headers, body)`. Previs (a script to a reviewed cut):
`PrevisClient`. `AsyncGeneratorClient` and `AsyncPrevisClient` are their asyncio forms, as
`AsyncClient` is `Client`'s.
"""

from clipmesh_client.async_client import AsyncClient
from clipmesh_client.async_generation import AsyncGeneratorClient
from clipmesh_client.async_previs import AsyncPrevisClient
from clipmesh_client.client import Client
from clipmesh_client.errors import (
    AlreadyExistsError,
    CancelledError,
    ClipmeshError,
    DeadlineExceededError,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
    from_rpc_error,
)
from clipmesh_client.filters import all_of, any_of, between, equals, not_
from clipmesh_client.generation import GeneratorClient
from clipmesh_client.models import (
    CallerInfo,
    DeleteResult,
    Grant,
    IngestEvent,
    IngestProgress,
    IngestSummary,
    Moment,
    QuotaUsage,
    SearchResult,
    Video,
    VideoHit,
)
from clipmesh_client.previs import PrevisClient
from clipmesh_client.wire import tls_credentials

__all__ = [
    "AlreadyExistsError",
    "AsyncClient",
    "AsyncGeneratorClient",
    "AsyncPrevisClient",
    "CallerInfo",
    "CancelledError",
    "Client",
    "ClipmeshError",
    "DeadlineExceededError",
    "DeleteResult",
    "FailedPreconditionError",
    "GeneratorClient",
    "Grant",
    "IngestEvent",
    "IngestProgress",
    "IngestSummary",
    "InternalError",
    "InvalidArgumentError",
    "Moment",
    "NotFoundError",
    "PermissionDeniedError",
    "PrevisClient",
    "QuotaExceededError",
    "QuotaUsage",
    "ResourceExhaustedError",
    "SearchResult",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "Video",
    "VideoHit",
    "all_of",
    "any_of",
    "between",
    "equals",
    "from_rpc_error",
    "not_",
    "tls_credentials",
]
