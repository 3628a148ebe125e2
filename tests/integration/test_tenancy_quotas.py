"""Durable per-caller quotas on real services: provider video-seconds and jobs at once at the
generator gateway (against the faithful DashScope), ingest bytes at the orchestrator. Exhausted,
restarted, still exhausted; refused with a QuotaFailure and the reset time; readable by the
caller and exported as metrics."""

from __future__ import annotations

import datetime

import grpc
import pytest

from clipmesh.demo.library import make_library
from clipmesh.generator.config import GeneratorConfig
from clipmesh.generator.server import create_app as create_gateway
from clipmesh.runtime.config import load_config
from clipmesh_api.generator.v1 import generator_pb2, generator_pb2_grpc
from clipmesh_api.orchestrator.v1 import account_pb2, account_pb2_grpc, ingest_pb2, ingest_pb2_grpc
from clipmesh_client import QuotaExceededError, from_rpc_error
from clipmesh_client.wire import CALLER_HEADER, ChannelPolicy, bearer_metadata, open_aio_channel
from tests.integration.conftest import gateway_environ
from tests.mesh import in_process_mesh
from tests.support import scrape_metrics, serve_in_process

pytestmark = pytest.mark.asyncio(loop_scope="module")
SECONDS = "provider_video_seconds_per_day"
CALLS = ChannelPolicy(timeout_s=120, max_attempts=1)


def _policy(tmp_path, text: str) -> str:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return str(path)


async def _quota_refusal(call) -> QuotaExceededError:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        async for _ in call:
            pass
    error = from_rpc_error(refused.value)
    assert isinstance(error, QuotaExceededError), error
    return error


def _spec(prompt: str) -> generator_pb2.GenerationSpec:
    return generator_pb2.GenerationSpec(prompt=prompt, backend="dashscope")  # 5 s by default


async def test_provider_seconds_run_out_stay_out_across_a_restart_and_failures_are_free(
    tmp_path, fake
) -> None:
    policy = _policy(
        tmp_path,
        "callers:\n"
        f"  team-a: {{grants: [{{roles: [generate]}}], quotas: {{{SECONDS}: 10}}}}\n"
        "  team-b: {grants: [{roles: [generate]}], quotas: {concurrent_jobs: 1}}\n",
    )
    environ = gateway_environ(tmp_path / "generator", fake, CLIPMESH_GENERATOR_POLICY_FILE=policy)
    config = load_config(GeneratorConfig, environ=environ)
    team_a = ((CALLER_HEADER, "team-a"),)

    async def generate(stub, prompt: str, metadata=team_a):
        request = generator_pb2.GenerateRequest(spec=_spec(prompt))
        return [r.event async for r in stub.Generate(request, metadata=metadata)]

    async with (
        serve_in_process(config, create_gateway(config)) as gateway,
        open_aio_channel(gateway.target, CALLS) as channel,
    ):
        stub = generator_pb2_grpc.GeneratorServiceStub(channel)
        # A job the provider refuses made no video: its seconds come back.
        failed = (await generate(stub, "[fail:DataInspectionFailed] a crowd"))[-1].job
        assert failed.state == generator_pb2.JOB_STATE_FAILED
        for n in range(2):
            done = (await generate(stub, f"harbour at dawn, take {n}"))[-1].job
            assert done.state == generator_pb2.JOB_STATE_SUCCEEDED, done
        error = await _quota_refusal(
            stub.Generate(generator_pb2.GenerateRequest(spec=_spec("one more")), metadata=team_a)
        )
        assert (error.reason, error.quota, error.limit, error.used) == (
            "QUOTA_EXCEEDED",
            SECONDS,
            10,
            10,
        )
        assert error.reset_time > datetime.datetime.now(datetime.UTC)
        assert error.retry_after_s > 0
        assert error.quota_violations[0].subject == "caller:team-a"
        samples = await scrape_metrics(gateway.metrics_port)
        labels = (("caller", "team-a"), ("quota", SECONDS))
        assert samples[("clipmesh_quota_used", labels)] == 10
        assert samples[("clipmesh_quota_limit", labels)] == 10
        # Jobs at once: team b may hold one.
        request = generator_pb2.GenerateRequest(spec=_spec("a long pan"))
        team_b = ((CALLER_HEADER, "team-b"),)
        first = stub.Generate(request, metadata=team_b)
        await first.read()  # admitted: QUEUED
        error = await _quota_refusal(
            stub.Generate(generator_pb2.GenerateRequest(spec=_spec("x")), metadata=team_b)
        )
        assert (error.reason, error.quota, error.reset_time) == (
            "TOO_MANY_JOBS",
            "concurrent_jobs",
            None,
        )
        async for _ in first:  # the first one ends; then there is room again
            pass
        assert (await generate(stub, "a second pan", team_b))[-1].job.state == (
            generator_pb2.JOB_STATE_SUCCEEDED
        )
    async with (
        serve_in_process(config, create_gateway(config)) as gateway,  # a restart
        open_aio_channel(gateway.target, CALLS) as channel,
    ):
        stub = generator_pb2_grpc.GeneratorServiceStub(channel)
        error = await _quota_refusal(
            stub.Generate(generator_pb2.GenerateRequest(spec=_spec("again")), metadata=team_a)
        )
        assert error.used == 10
        usage = await stub.GetUsage(generator_pb2.GetUsageRequest(), metadata=team_a)
        by_quota = {q.quota: q for q in usage.quotas}
        assert (by_quota[SECONDS].used, by_quota[SECONDS].limit) == (10, 10)
        assert by_quota[SECONDS].HasField("reset_time")


async def test_ingest_bytes_run_out_item_by_item_then_for_the_whole_request(tmp_path) -> None:
    media = tmp_path / "media"
    first, second = make_library(media, count=2, seed=21)
    corrupt = media / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\x17" * 5000)
    limit = first.path.stat().st_size  # room for the first video exactly
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("team-a:token-a\n")
    policy = _policy(
        tmp_path,
        "callers:\n  team-a:\n    grants: [{roles: [search, ingest], collections: ['*']}]\n"
        f"    quotas: {{ingest_bytes_per_day: {limit}}}\n",
    )
    env = {
        "orchestrator": {
            "CLIPMESH_ORCHESTRATOR_ALLOWED_ROOTS": str(media),
            "CLIPMESH_ORCHESTRATOR_AUTH_TOKENS_FILE": str(tokens),
            "CLIPMESH_ORCHESTRATOR_POLICY_FILE": policy,
            "CLIPMESH_ORCHESTRATOR_INGEST_CONCURRENCY": "1",
        }
    }
    metadata = bearer_metadata("token-a")

    def batch(*paths) -> ingest_pb2.IngestVideosRequest:
        return ingest_pb2.IngestVideosRequest(
            items=[ingest_pb2.IngestItem(uri=str(p)) for p in paths]
        )

    state, services = tmp_path / "state", ("encoder", "index", "orchestrator")
    async with in_process_mesh(state, services, env=env) as mesh:
        ingest = mesh.stub("orchestrator", ingest_pb2_grpc.IngestServiceStub, CALLS)
        events = [
            e
            async for e in ingest.IngestVideos(
                batch(corrupt, first.path, second.path), metadata=metadata
            )
        ]
        final = {e.progress.uri: e.progress for e in events if e.WhichOneof("event") == "progress"}
        # A file that fails costs nothing, so the first video still fits; the second does not.
        assert final[str(corrupt)].error.reason == "CORRUPT_MEDIA"
        assert final[str(first.path)].stage == ingest_pb2.INGEST_STAGE_DONE
        assert final[str(second.path)].error.reason == "QUOTA_EXCEEDED"
        assert "resets at" in final[str(second.path)].error.message
        # A duplicate is free, but with nothing left the next request is refused whole.
        error = await _quota_refusal(ingest.IngestVideos(batch(first.path), metadata=metadata))
        assert (error.quota, error.used, error.limit) == ("ingest_bytes_per_day", limit, limit)
        samples = await scrape_metrics(mesh.services["orchestrator"].metrics_port)
        labels = (("caller", "team-a"), ("quota", "ingest_bytes_per_day"))
        assert samples[("clipmesh_quota_used", labels)] == limit
    async with in_process_mesh(state, services, env=env) as mesh:  # a restart, the same state
        ingest = mesh.stub("orchestrator", ingest_pb2_grpc.IngestServiceStub, CALLS)
        error = await _quota_refusal(ingest.IngestVideos(batch(second.path), metadata=metadata))
        assert error.used == limit
        account = mesh.stub("orchestrator", account_pb2_grpc.AccountServiceStub, CALLS)
        me = await account.GetCaller(account_pb2.GetCallerRequest(), metadata=metadata)
        quotas = {q.quota: q for q in me.quotas}
        assert (quotas["ingest_bytes_per_day"].used, quotas["ingest_bytes_per_day"].limit) == (
            limit,
            limit,
        )
        assert me.warnings  # no generator runs here: its quotas are unknown, and said so
