"""Admission control on a real server: past the limit a call is refused at once with
RESOURCE_EXHAUSTED and a retry hint, per caller as well as overall, while health checks
always pass and accepted calls finish normally."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from clipmesh.encoder.config import EncoderConfig
from clipmesh.runtime.admission import AdmissionControl
from clipmesh.runtime.config import load_config
from clipmesh.runtime.errors import ErrorInterceptor
from clipmesh.runtime.server import Application, GrpcService
from clipmesh_api.encoder.v1 import encoder_pb2, encoder_pb2_grpc
from clipmesh_client.errors import ResourceExhaustedError, from_rpc_error
from clipmesh_client.wire import CALLER_HEADER, RETRY_PUSHBACK_HEADER, open_aio_channel
from tests.support import serve_in_process


class HeldEncoder(encoder_pb2_grpc.EncoderServiceServicer):
    """Answers GetModelInfo only once `release` is set: calls pile up in flight."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered = 0

    async def GetModelInfo(self, request, context):
        self.entered += 1
        await self.release.wait()
        return encoder_pb2.GetModelInfoResponse(model_id="held")


@pytest.fixture
async def held_server():
    servicer = HeldEncoder()
    server = grpc.aio.server(
        interceptors=[ErrorInterceptor("test.clipmesh"), AdmissionControl(3, max_per_caller=2)]
    )
    encoder_pb2_grpc.add_EncoderServiceServicer_to_server(servicer, server)
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield servicer, channel
    await server.stop(0)


def _call(channel, caller: str):
    stub = encoder_pb2_grpc.EncoderServiceStub(channel)
    return stub.GetModelInfo(
        encoder_pb2.GetModelInfoRequest(), metadata=((CALLER_HEADER, caller),), timeout=10
    )


async def _until_entered(servicer: HeldEncoder, count: int) -> None:
    while servicer.entered < count:
        await asyncio.sleep(0.01)


async def test_a_call_past_the_limit_is_refused_at_once_with_a_retry_hint(held_server) -> None:
    servicer, channel = held_server
    held = [_call(channel, "team-a"), _call(channel, "team-b"), _call(channel, "team-c")]
    await asyncio.wait_for(_until_entered(servicer, 3), timeout=5)
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _call(channel, "team-d")
    assert time.monotonic() - started < 2  # refused, not queued behind the held calls
    error = from_rpc_error(refused.value)
    assert isinstance(error, ResourceExhaustedError)
    assert error.reason == "SERVER_BUSY" and "3 calls in flight (limit 3)" in error.message
    pushback = dict(refused.value.trailing_metadata())[RETRY_PUSHBACK_HEADER]
    assert 50 <= int(pushback) <= 5000 and error.retry_after_s is not None
    # A busy service still answers its probes.
    reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    servicer.release.set()
    assert [r.model_id for r in await asyncio.gather(*held)] == ["held"] * 3
    assert (await _call(channel, "team-d")).model_id == "held"  # room again


async def test_one_caller_cannot_take_every_slot(held_server) -> None:
    servicer, channel = held_server
    held = [_call(channel, "batch-job"), _call(channel, "batch-job")]
    await asyncio.wait_for(_until_entered(servicer, 2), timeout=5)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _call(channel, "batch-job")
    error = from_rpc_error(refused.value)
    assert error.reason == "CALLER_BUSY" and "'batch-job' has 2 calls in flight" in error.message
    other = _call(channel, "search-ui")  # another caller still gets the last slot
    await asyncio.wait_for(_until_entered(servicer, 3), timeout=5)
    servicer.release.set()
    await asyncio.gather(*held, other)


class HeldApp(Application):
    def __init__(self) -> None:
        self.servicer = HeldEncoder()

    def grpc_services(self) -> list[GrpcService]:
        return [GrpcService.generated(encoder_pb2, encoder_pb2_grpc, self.servicer)]


async def test_every_service_applies_its_configured_limits() -> None:
    config = load_config(
        EncoderConfig,
        environ={
            "CLIPMESH_ENCODER_WEIGHTS": "random:0",
            "CLIPMESH_ENCODER_MAX_CONCURRENT_RPCS": "1",
        },
    )
    app = HeldApp()
    async with (
        serve_in_process(config, app) as service,
        open_aio_channel(service.target) as channel,
    ):
        held = _call(channel, "team-a")
        await asyncio.wait_for(_until_entered(app.servicer, 1), timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _call(channel, "team-b")
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        app.servicer.release.set()
        await held
