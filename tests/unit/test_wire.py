"""The one wire layer: the channel policy every client shares, and a deadline on every call."""

from __future__ import annotations

import asyncio
import json
import time

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from clipmesh_client.wire import (
    ChannelPolicy,
    channel_arguments,
    open_aio_channel,
    open_channel,
    service_config,
)


def test_service_config_balances_round_robin_and_retries_only_unavailable() -> None:
    config = json.loads(service_config(ChannelPolicy(timeout_s=0.5, max_attempts=4)))
    assert config["loadBalancingConfig"] == [{"round_robin": {}}]
    (method,) = config["methodConfig"]
    assert method["name"] == [{}]
    # Deadlines come from an interceptor: a service-config timeout would cap long streams.
    assert "timeout" not in method
    assert method["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert method["retryPolicy"]["maxAttempts"] == 4


def test_retry_attempts_are_capped_and_can_be_disabled() -> None:
    capped = json.loads(service_config(ChannelPolicy(max_attempts=50)))
    assert capped["methodConfig"][0]["retryPolicy"]["maxAttempts"] == 5  # gRPC's cap
    none = json.loads(service_config(ChannelPolicy(max_attempts=1)))
    assert "retryPolicy" not in none["methodConfig"][0]


def test_message_sizes_keepalive_and_reconnect_backoff_are_explicit() -> None:
    args = dict(channel_arguments(ChannelPolicy(max_message_mb=8, keepalive_time_s=20)))
    assert args["grpc.max_receive_message_length"] == 8 * 1024 * 1024
    assert args["grpc.max_send_message_length"] == 8 * 1024 * 1024
    assert args["grpc.keepalive_time_ms"] == 20_000
    assert args["grpc.max_reconnect_backoff_ms"] <= 5000  # back within seconds of a restart


@pytest.fixture
async def health_target():
    """A real server whose health Watch stream never ends on its own."""
    # Cancelled streams make the client ping; a bare server would answer "too many pings".
    server = grpc.aio.server(options=[("grpc.http2.max_ping_strikes", 0)])
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(0)


async def test_an_asyncio_call_without_a_deadline_gets_the_policys(health_target) -> None:
    async with open_aio_channel(health_target, ChannelPolicy(timeout_s=0.3)) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            async for _ in stub.Watch(health_pb2.HealthCheckRequest()):
                pass
        assert ended.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 5
        # A call's own deadline wins over the policy's.
        with pytest.raises(grpc.aio.AioRpcError) as own:
            await asyncio.wait_for(
                _drain(stub.Watch(health_pb2.HealthCheckRequest(), timeout=0.05)), 5
            )
        assert own.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_a_blocking_call_without_a_deadline_gets_the_policys(health_target) -> None:
    def watch() -> grpc.StatusCode:
        with open_channel(health_target, ChannelPolicy(timeout_s=0.3)) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            try:
                for _ in stub.Watch(health_pb2.HealthCheckRequest()):
                    pass
            except grpc.RpcError as error:
                return error.code()
        return grpc.StatusCode.OK

    assert await asyncio.wait_for(asyncio.to_thread(watch), 10) == (
        grpc.StatusCode.DEADLINE_EXCEEDED
    )


async def _drain(call) -> None:
    async for _ in call:
        pass
