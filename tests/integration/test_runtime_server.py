"""The shared runtime on a real in-process gRPC server: error mapping, metrics, health,
reflection, drain, and the channel factory's deadline and retry policy."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace

import grpc
import httpx
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from clipmesh.encoder.config import EncoderConfig
from clipmesh.runtime import errors
from clipmesh.runtime.config import load_config
from clipmesh.runtime.server import Application, GrpcService, serve
from clipmesh_api.encoder.v1 import encoder_pb2, encoder_pb2_grpc
from clipmesh_api.generator.v1 import generator_pb2, generator_pb2_grpc
from clipmesh_client import errors as client_errors
from clipmesh_client.wire import ChannelPolicy, open_aio_channel
from tests.support import serve_in_process

ENCODER = "clipmesh.encoder.v1.EncoderService"


class ScriptedEncoder(encoder_pb2_grpc.EncoderServiceServicer):
    """EmbedTexts behaves as its first text says; GetModelInfo stays unimplemented."""

    def __init__(self) -> None:
        self.calls = 0

    async def EmbedTexts(self, request, context):
        self.calls += 1
        command = request.texts[0]
        if command == "invalid":
            raise errors.InvalidArgument("texts[0] is empty", field="texts[0]", reason="EMPTY_TEXT")
        if command == "missing":
            raise errors.NotFound("no such model", metadata={"model": "x"})
        if command == "full":
            raise errors.ResourceExhausted("queue full", retry_after_s=0.2, reason="QUEUE_FULL")
        if command == "boom":
            raise RuntimeError("secret internal detail")
        if command == "slow":
            await asyncio.sleep(2)
        if command == "deadline":
            self.seen_remaining_s = context.time_remaining()
        if command == "flaky" and self.calls < 3:
            raise errors.Unavailable("warming up")
        return encoder_pb2.EmbedTextsResponse(model_id="test", dimension=2)


class ScriptedGenerator(generator_pb2_grpc.GeneratorServiceServicer):
    """WatchJob sends one event, then fails as its job id says."""

    async def WatchJob(self, request, context):
        yield generator_pb2.WatchJobResponse(event=generator_pb2.JobEvent(message="queued"))
        if request.job_id == "vanishes":
            raise errors.NotFound(f"job {request.job_id} was deleted")


class ScriptedApp(Application):
    def __init__(self, ready: asyncio.Event | None = None) -> None:
        self.encoder = ScriptedEncoder()
        self._ready = ready
        self.stopped = False

    def grpc_services(self) -> list[GrpcService]:
        return [
            GrpcService.generated(encoder_pb2, encoder_pb2_grpc, self.encoder),
            GrpcService.generated(generator_pb2, generator_pb2_grpc, ScriptedGenerator()),
        ]

    async def start(self) -> None:
        if self._ready is not None:
            await self._ready.wait()

    async def stop(self) -> None:
        self.stopped = True


@pytest.fixture
async def service():
    config = load_config(EncoderConfig, environ={"CLIPMESH_ENCODER_WEIGHTS": "random:0"})
    app = ScriptedApp()
    async with serve_in_process(config, app) as running:
        running.app = app
        yield running


async def _embed(target: str, text: str, **options) -> encoder_pb2.EmbedTextsResponse:
    async with open_aio_channel(target, ChannelPolicy(**options)) as channel:
        stub = encoder_pb2_grpc.EncoderServiceStub(channel)
        return await stub.EmbedTexts(encoder_pb2.EmbedTextsRequest(texts=[text]))


async def _typed_error(target: str, text: str) -> client_errors.ClipmeshError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _embed(target, text, max_attempts=1)
    return client_errors.from_rpc_error(caught.value)


async def test_invalid_argument_reaches_the_client_with_error_info(service) -> None:
    error = await _typed_error(service.target, "invalid")
    assert isinstance(error, client_errors.InvalidArgumentError)
    assert error.message == "texts[0] is empty"
    assert (error.reason, error.domain) == ("EMPTY_TEXT", "encoder.clipmesh")
    assert error.metadata == {"field": "texts[0]"}


async def test_not_found_and_resource_exhausted_map_to_their_codes(service) -> None:
    missing = await _typed_error(service.target, "missing")
    assert isinstance(missing, client_errors.NotFoundError)
    assert missing.metadata == {"model": "x"}
    full = await _typed_error(service.target, "full")
    assert isinstance(full, client_errors.ResourceExhaustedError)
    assert full.retry_after_s == pytest.approx(0.2)


async def test_unknown_exceptions_are_internal_generic_and_logged(service, caplog) -> None:
    with caplog.at_level(logging.ERROR, logger="clipmesh.runtime.errors"):
        error = await _typed_error(service.target, "boom")
    assert isinstance(error, client_errors.InternalError)
    assert "secret internal detail" not in error.message
    assert "details are in the service log" in error.message
    logged = [r for r in caplog.records if r.exc_info]
    assert logged and "secret internal detail" in str(logged[0].exc_info[1])


async def test_an_rpc_not_yet_built_answers_unimplemented(service) -> None:
    async with open_aio_channel(service.target) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await encoder_pb2_grpc.EncoderServiceStub(channel).GetModelInfo(
                encoder_pb2.GetModelInfoRequest()
            )
    error = client_errors.from_rpc_error(caught.value)
    assert isinstance(error, client_errors.UnimplementedError)
    assert "GetModelInfo" in error.message


async def test_an_error_mid_stream_ends_the_stream_with_its_code(service) -> None:
    received = []
    async with open_aio_channel(service.target) as channel:
        stub = generator_pb2_grpc.GeneratorServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for response in stub.WatchJob(generator_pb2.WatchJobRequest(job_id="vanishes")):
                received.append(response.event.message)
    assert received == ["queued"]
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert client_errors.from_rpc_error(caught.value).message == "job vanishes was deleted"


def _handled(method: str, code: str) -> float:
    labels = {
        "grpc_type": "unary",
        "grpc_service": ENCODER,
        "grpc_method": method,
        "grpc_code": code,
    }
    return REGISTRY.get_sample_value("grpc_server_handled_total", labels) or 0.0


async def test_the_metrics_interceptor_counts_final_codes_and_times_calls(service) -> None:
    before_ok, before_invalid = (
        _handled("EmbedTexts", "OK"),
        _handled("EmbedTexts", "INVALID_ARGUMENT"),
    )
    before_internal = _handled("EmbedTexts", "INTERNAL")
    await _embed(service.target, "ok")
    await _typed_error(service.target, "invalid")
    await _typed_error(service.target, "boom")
    assert _handled("EmbedTexts", "OK") == before_ok + 1
    assert _handled("EmbedTexts", "INVALID_ARGUMENT") == before_invalid + 1
    assert _handled("EmbedTexts", "INTERNAL") == before_internal + 1
    count = REGISTRY.get_sample_value(
        "grpc_server_handling_seconds_count",
        {"grpc_type": "unary", "grpc_service": ENCODER, "grpc_method": "EmbedTexts"},
    )
    assert count >= 3
    async with httpx.AsyncClient() as http:
        body = (await http.get(f"http://127.0.0.1:{service.metrics_port}/metrics")).text
    families = {f.name for f in text_string_to_metric_families(body)}
    assert {
        "grpc_server_handled",
        "grpc_server_handling_seconds",
        "process_cpu_seconds",
    } <= families


async def test_stream_metrics_count_messages_and_the_final_code(service) -> None:
    labels = {
        "grpc_type": "server_stream",
        "grpc_service": "clipmesh.generator.v1.GeneratorService",
        "grpc_method": "WatchJob",
    }
    before = (
        REGISTRY.get_sample_value("grpc_server_handled_total", {**labels, "grpc_code": "NOT_FOUND"})
        or 0
    )
    async with open_aio_channel(service.target) as channel:
        stub = generator_pb2_grpc.GeneratorServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError):
            async for _ in stub.WatchJob(generator_pb2.WatchJobRequest(job_id="vanishes")):
                pass
    assert (
        REGISTRY.get_sample_value("grpc_server_handled_total", {**labels, "grpc_code": "NOT_FOUND"})
        == before + 1
    )
    assert REGISTRY.get_sample_value("grpc_server_msg_sent_total", labels) >= 1


async def test_every_method_served_has_a_series_per_status_code_under_the_labels_calls_use(
    service,
) -> None:
    """Created at start, at 0: a dashboard draws 0 before the first call, and a first failure is
    an increase from 0; the calls then count on the same series, not on twins of their own."""
    await _embed(service.target, "ok")
    await _typed_error(service.target, "invalid")
    with pytest.raises(grpc.aio.AioRpcError):
        async with open_aio_channel(service.target) as channel:
            stub = generator_pb2_grpc.GeneratorServiceStub(channel)
            async for _ in stub.WatchJob(generator_pb2.WatchJobRequest(job_id="vanishes")):
                pass
    async with httpx.AsyncClient() as http:
        body = (await http.get(f"http://127.0.0.1:{service.metrics_port}/metrics")).text
    (handled,) = (
        f for f in text_string_to_metric_families(body) if f.name == "grpc_server_handled"
    )
    series = {
        tuple(s.labels[k] for k in ("grpc_service", "grpc_method", "grpc_type", "grpc_code"))
        for s in handled.samples
        if s.name.endswith("_total")
    }
    for messages in (encoder_pb2, generator_pb2):
        for descriptor in messages.DESCRIPTOR.services_by_name.values():
            for method in descriptor.methods:
                found = {
                    (t, c) for s, m, t, c in series if (s, m) == (descriptor.full_name, method.name)
                }
                grpc_type = "server_stream" if method.server_streaming else "unary"
                assert found == {(grpc_type, code.name) for code in grpc.StatusCode}, method.name


async def test_the_channel_deadline_bounds_a_slow_call(service) -> None:
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _embed(service.target, "slow", timeout_s=0.3, max_attempts=1)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 1.5  # the 2 s handler was not waited for


async def test_the_default_deadline_is_sent_and_does_not_cut_calls_short(service) -> None:
    await _embed(service.target, "deadline", timeout_s=7.0)
    assert 6.0 < service.app.encoder.seen_remaining_s <= 7.1
    response = await _embed(service.target, "slow", timeout_s=5.0, max_attempts=1)
    assert response.model_id == "test"  # a 2 s call inside a 5 s default deadline completes


async def test_the_channel_retries_unavailable_within_its_policy(service) -> None:
    response = await _embed(service.target, "flaky", max_attempts=3, initial_backoff_s=0.01)
    assert response.model_id == "test"
    assert service.app.encoder.calls == 3


async def test_the_channel_does_not_retry_other_codes(service) -> None:
    await _typed_error(service.target, "invalid")
    assert service.app.encoder.calls == 1


async def _health(target: str, name: str = "") -> int:
    async with grpc.aio.insecure_channel(target) as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=name), timeout=2
        )
    return response.status


async def test_health_is_serving_only_after_start_and_not_serving_while_draining() -> None:
    ready, stop = asyncio.Event(), asyncio.Event()
    app = ScriptedApp(ready=ready)
    config = load_config(
        EncoderConfig,
        environ={"CLIPMESH_ENCODER_WEIGHTS": "random:0", "CLIPMESH_ENCODER_DRAIN_DELAY_S": "0.5"},
    )
    config = replace(config, host="127.0.0.1", port=0, metrics_host="127.0.0.1", metrics_port=0)
    bound: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    serving = asyncio.create_task(
        serve(config, app, stop=stop, on_bound=lambda port, _: bound.set_result(port))
    )
    target = f"127.0.0.1:{await asyncio.wait_for(bound, 10)}"
    assert await _health(target) == health_pb2.HealthCheckResponse.NOT_SERVING  # still starting
    ready.set()
    await _until(lambda: _health(target), health_pb2.HealthCheckResponse.SERVING)
    assert await _health(target, ENCODER) == health_pb2.HealthCheckResponse.SERVING
    stop.set()  # what SIGTERM does
    await _until(lambda: _health(target), health_pb2.HealthCheckResponse.NOT_SERVING)
    await asyncio.wait_for(serving, 10)
    assert app.stopped


async def test_reflection_lists_the_application_services(service) -> None:
    from clipmesh.cli.probe import list_services

    names = await asyncio.to_thread(list_services, service.target)
    assert ENCODER in names
    assert "clipmesh.generator.v1.GeneratorService" in names
    assert "grpc.health.v1.Health" in names
    assert {
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= set(names)


# Reflection v1's request, written field by field from the published grpc.reflection.v1 proto
# rather than with this package's own v1 classes: `file_containing_symbol` is field 4 (a
# string), `list_services` field 7.
def _v1_request(field: int, text: str) -> bytes:
    data = text.encode()
    return bytes([field << 3 | 2, len(data)]) + data


@pytest.mark.parametrize("path_version", ["v1", "v1alpha"])
async def test_reflection_v1_and_v1alpha_describe_the_services(service, path_version) -> None:
    """A generic tool asks either version for the schema of an application service."""
    from grpc_reflection.v1alpha import reflection_pb2  # the same wire types as v1

    async with grpc.aio.insecure_channel(service.target) as channel:
        info = channel.stream_stream(
            f"/grpc.reflection.{path_version}.ServerReflection/ServerReflectionInfo",
            request_serializer=lambda raw: raw,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        requests = [_v1_request(7, ""), _v1_request(4, ENCODER), _v1_request(4, "no.such.Thing")]
        listed, described, missing = [answer async for answer in info(iter(requests))]
    assert ENCODER in {s.name for s in listed.list_services_response.service}
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in described.file_descriptor_response.file_descriptor_proto
    ]
    assert "clipmesh/encoder/v1/encoder.proto" in {f.name for f in files}
    assert "EncoderService" in {s.name for f in files for s in f.service}
    assert missing.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]


async def test_reflection_v1_describes_itself(service) -> None:
    """The v1 schema served is v1's: its package, file name and message types."""
    from grpc_reflection.v1alpha import reflection_pb2

    async with grpc.aio.insecure_channel(service.target) as channel:
        info = channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=lambda raw: raw,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        requests = [_v1_request(4, "grpc.reflection.v1.ServerReflection")]
        (answer,) = [answer async for answer in info(iter(requests))]
    (raw,) = answer.file_descriptor_response.file_descriptor_proto
    schema = descriptor_pb2.FileDescriptorProto.FromString(raw)
    assert (schema.name, schema.package) == (
        "grpc/reflection/v1/reflection.proto",
        "grpc.reflection.v1",
    )
    (method,) = schema.service[0].method
    assert method.input_type == ".grpc.reflection.v1.ServerReflectionRequest"
    assert method.client_streaming and method.server_streaming
    fields = {
        m.name: {f.name: (f.number, f.type_name) for f in m.field} for m in schema.message_type
    }
    assert fields["ServerReflectionRequest"]["list_services"][0] == 7
    assert fields["ServerReflectionResponse"]["original_request"] == (
        2,
        ".grpc.reflection.v1.ServerReflectionRequest",
    )


async def _until(probe, expected, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while (value := await probe()) != expected:
        assert time.monotonic() < deadline, f"still {value}, wanted {expected}"
        await asyncio.sleep(0.05)
